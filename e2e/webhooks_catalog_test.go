package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pyairtable/automation-domain/internal/testenv"
)

// TestWebhookCatalog drives the event catalog and per-endpoint filters and transforms end to end
// on the embedded stack with real receivers: payloads checked against their type's schema on
// both ingest paths (refused with each violation's path), the tenant setting for unknown types,
// the published AsyncAPI document, filters, transforms (signed as sent) and a failing transform
// that leaves the other endpoints and the endpoint's later messages alone.
func TestWebhookCatalog(t *testing.T) {
	s := startEmbedded(t, testConfig(t, t.TempDir(), webhookEnv(nil)))
	orderSchema := map[string]any{
		"type": "object", "required": []string{"order_id", "total"},
		"properties": map[string]any{
			"order_id": map[string]any{"type": "string"},
			"total":    map[string]any{"type": "number", "minimum": 0},
			"items": map[string]any{"type": "array", "items": map[string]any{
				"type": "object", "required": []string{"sku"}, "properties": map[string]any{"sku": map[string]any{"type": "string"}}}},
		},
	}

	t.Run("event types are declared, versioned and refused when invalid", func(t *testing.T) {
		c := s.client(t)
		r := c.post("/api/v1/event-types", map[string]any{"name": "order.created", "description": "An order was placed.",
			"schema": orderSchema, "example": map[string]any{"order_id": "o1", "total": 5}})
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		if v := r.JSON(t)["version"]; v != 1.0 {
			t.Errorf("version %v, want 1", v)
		}
		if r := c.post("/api/v1/event-types", map[string]any{"name": "order.created"}); r.Status != 409 {
			t.Errorf("duplicate: %d %s", r.Status, r.Body)
		}
		for _, bad := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": "bad name"}, "name"},
			{map[string]any{"name": "x.y", "schema": map[string]any{"type": "nonsense"}}, "schema"},
			{map[string]any{"name": "x.z", "schema": map[string]any{"$ref": "https://example.com/s.json"}}, "schema"},
			{map[string]any{"name": "x.w", "schema": orderSchema, "example": map[string]any{"order_id": 3, "total": 1}}, "example.order_id"},
		} {
			r := c.post("/api/v1/event-types", bad.body)
			if r.Status != 422 || !strings.Contains(string(r.Body), `"field":"`+bad.field+`"`) {
				t.Errorf("%v: %d %s, want 422 on %s", bad.body, r.Status, r.Body, bad.field)
			}
		}
		r = c.do("PATCH", "/api/v1/event-types/order.created", map[string]any{"schema": orderSchema, "deprecated": false,
			"description": "An order was placed (v2)."})
		if r.Status != 200 || r.JSON(t)["version"] != 2.0 {
			t.Fatalf("patch: %d %s", r.Status, r.Body)
		}
		if r := c.get("/api/v1/event-types/order.created"); r.Status != 200 || len(r.JSON(t)["versions"].([]any)) != 2 {
			t.Errorf("get: %d %s", r.Status, r.Body)
		}
		if r := c.get("/api/v1/event-types/nope.none"); r.Status != 404 {
			t.Errorf("unknown: %d", r.Status)
		}
		if r := c.get("/api/v1/event-types?limit=10"); r.Status != 200 || !strings.Contains(string(r.Body), "order.created") {
			t.Errorf("list: %d %s", r.Status, r.Body)
		}
		// Another tenant does not see this tenant's catalog.
		if r := c.post("/api/v1/tenants", map[string]any{"id": "catalog-other", "name": "catalog-other"}); r.Status != 201 {
			t.Fatalf("tenant: %d %s", r.Status, r.Body)
		}
		if r := c.get("/api/v1/event-types/order.created", "X-Tenant-ID", "catalog-other"); r.Status != 404 {
			t.Errorf("another tenant's type: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/event-types", map[string]any{"name": "tmp.gone"}); r.Status != 201 {
			t.Fatalf("create tmp: %d", r.Status)
		}
		if r := c.do("DELETE", "/api/v1/event-types/tmp.gone", nil); r.Status != 204 {
			t.Errorf("delete: %d", r.Status)
		}
		if r := c.do("DELETE", "/api/v1/event-types/tmp.gone", nil); r.Status != 404 {
			t.Errorf("delete again: %d", r.Status)
		}
	})

	t.Run("a payload breaking its schema is refused with paths, a valid one delivered", func(t *testing.T) {
		c := s.client(t)
		rc := newReceiver(t, nil)
		createEndpoint(t, c, map[string]any{"name": "orders", "url": rc.URL(), "events": []string{"order.created"}})
		bad := map[string]any{"order_id": 7, "total": -1, "items": []any{map[string]any{"sku": "a"}, map[string]any{}}}
		r := c.post("/api/v1/webhooks/deliver", map[string]any{"event_type": "order.created", "payload": bad})
		if r.Status != 422 {
			t.Fatalf("invalid payload: %d %s", r.Status, r.Body)
		}
		for _, path := range []string{"payload.order_id", "payload.total", "payload.items[1]"} {
			if !strings.Contains(string(r.Body), `"field":"`+path+`"`) {
				t.Errorf("422 does not name %s: %s", path, r.Body)
			}
		}
		r = c.post("/api/v1/events", map[string]any{"type": "order.created", "data": bad})
		if r.Status != 422 || !strings.Contains(string(r.Body), `"field":"data.order_id"`) {
			t.Errorf("invalid event: %d %s", r.Status, r.Body)
		}
		deliver(t, c, "order.created", map[string]any{"order_id": "o-1", "total": 12.5})
		if r := c.post("/api/v1/events", map[string]any{"type": "order.created", "data": map[string]any{"order_id": "o-2", "total": 1}}); r.Status != 202 {
			t.Errorf("valid event: %d %s", r.Status, r.Body)
		}
		eventually(t, 30*time.Second, "both valid orders delivered", func() bool { return len(rc.succeeded()) == 2 })
		// A type outside the catalog goes through until the tenant refuses unknown types.
		deliver(t, c, "misc.thing", map[string]any{"any": true})
		if r := c.do("PATCH", "/api/v1/event-catalog/settings", map[string]any{"reject_unknown_types": true}); r.Status != 200 {
			t.Fatalf("settings: %d %s", r.Status, r.Body)
		}
		defer c.do("PATCH", "/api/v1/event-catalog/settings", map[string]any{"reject_unknown_types": false})
		if r := c.post("/api/v1/webhooks/deliver", map[string]any{"event_type": "misc.thing", "payload": map[string]any{}}); r.Status != 422 ||
			!strings.Contains(string(r.Body), `"field":"event_type"`) {
			t.Errorf("unknown type with the setting: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/events", map[string]any{"type": "misc.thing", "data": map[string]any{}}); r.Status != 422 {
			t.Errorf("unknown event type with the setting: %d %s", r.Status, r.Body)
		}
		if r := c.get("/api/v1/event-catalog/settings"); r.JSON(t)["reject_unknown_types"] != true {
			t.Errorf("settings: %s", r.Body)
		}
	})

	t.Run("the AsyncAPI document lists the types with their schemas", func(t *testing.T) {
		c := s.client(t)
		r := c.get("/api/v1/asyncapi.json")
		if r.Status != 200 {
			t.Fatalf("asyncapi: %d %s", r.Status, r.Body)
		}
		var doc struct {
			AsyncAPI   string `json:"asyncapi"`
			Components struct {
				Messages map[string]struct {
					Name    string `json:"name"`
					Payload struct {
						Schema map[string]any `json:"schema"`
					} `json:"payload"`
				} `json:"messages"`
			} `json:"components"`
			Channels map[string]struct {
				Address string `json:"address"`
			} `json:"channels"`
		}
		r.Decode(t, &doc)
		m, ok := doc.Components.Messages["order.created"]
		if doc.AsyncAPI != "3.0.0" || !ok || m.Payload.Schema["type"] != "object" || doc.Channels["order.created"].Address != "order.created" {
			t.Errorf("document: %s", r.Body)
		}
		out := validateAsyncAPI(t, r.Body)
		if !strings.Contains(out, `"version":"3.0.0"`) || !strings.Contains(out, `"order.created"`) {
			t.Errorf("the AsyncAPI parser read %s", out)
		}
	})

	t.Run("an endpoint with a filter receives only matching events", func(t *testing.T) {
		c := s.client(t)
		rc := newReceiver(t, nil)
		createEndpoint(t, c, map[string]any{"name": "big orders", "url": rc.URL(), "events": []string{"shop.*"},
			"filter": `event.data.total > 100 && event.type == "shop.order"`})
		if r := c.post("/api/v1/webhooks/endpoints", map[string]any{"name": "x", "url": rc.URL(), "filter": "event.data.total >"}); r.Status != 422 ||
			!strings.Contains(string(r.Body), `"field":"filter"`) {
			t.Errorf("bad filter: %d %s", r.Status, r.Body)
		}
		deliver(t, c, "shop.order", map[string]any{"total": 5})
		big := deliver(t, c, "shop.order", map[string]any{"total": 500})
		deliver(t, c, "shop.refund", map[string]any{"total": 500})
		eventually(t, 30*time.Second, "the big order delivered", func() bool { return len(rc.succeeded()) >= 1 })
		time.Sleep(time.Second) // what the filter refused has no delivery; give a wrong one time to show
		got := rc.succeeded()
		if len(got) != 1 || got[0].MessageID() != big {
			t.Errorf("filtered endpoint got %d requests (first %v), want only %s", len(got), got, big)
		}
	})

	t.Run("an endpoint with a transform receives the reshaped body, signed as sent", func(t *testing.T) {
		c := s.client(t)
		rc := newReceiver(t, nil)
		id := createEndpoint(t, c, map[string]any{"name": "reshaped", "url": rc.URL(), "events": []string{"ship.*"},
			"transform": `{body: {kind: .type, amount: .data.total, id: .id}, headers: {"X-Shop": "yes"}, event_type: "ship.reshaped"}`})
		secret := endpointSecret(t, c, id)
		msg := deliver(t, c, "ship.sent", map[string]any{"total": 42})
		eventually(t, 30*time.Second, "the transformed message delivered", func() bool { return len(rc.succeeded()) == 1 })
		got := rc.succeeded()[0]
		var body map[string]any
		if err := json.Unmarshal(got.Body, &body); err != nil || body["kind"] != "ship.sent" || body["amount"] != 42.0 || body["id"] != msg {
			t.Errorf("body %s", got.Body)
		}
		if got.Header.Get("X-Shop") != "yes" || got.Header.Get("Webhook-Event-Type") != "ship.reshaped" {
			t.Errorf("headers %v", got.Header)
		}
		wh, _ := standardwebhooks.NewWebhook(secret)
		if err := wh.Verify(got.Body, got.Header); err != nil {
			t.Errorf("the transformed body is not signed as sent: %v", err)
		}
		// The test tool shows the same without sending.
		r := c.post("/api/v1/webhooks/endpoints/"+id+"/transform/test", map[string]any{"event_type": "ship.sent", "payload": map[string]any{"total": 7}})
		if r.Status != 200 || !strings.Contains(string(r.Body), `"amount":7`) || !strings.Contains(string(r.Body), `"X-Shop":"yes"`) {
			t.Errorf("transform test: %d %s", r.Status, r.Body)
		}
		r = c.post("/api/v1/webhooks/endpoints/"+id+"/transform/test", map[string]any{"event_type": "ship.sent", "transform": `{body: (.data.total | error)}`})
		if r.Status != 422 || !strings.Contains(string(r.Body), `"field":"transform"`) {
			t.Errorf("failing transform test: %d %s", r.Status, r.Body)
		}
		r = c.post("/api/v1/webhooks/endpoints/"+id+"/transform/test", map[string]any{"event_type": "ship.sent", "payload": map[string]any{"total": 7}, "filter": "event.data.total > 10"})
		if r.Status != 200 || r.JSON(t)["delivered"] != false {
			t.Errorf("filter test: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/webhooks/endpoints/nope/transform/test", map[string]any{"event_type": "a.b"}); r.Status != 404 {
			t.Errorf("unknown endpoint: %d", r.Status)
		}
	})

	t.Run("a failing transform fails its delivery only", func(t *testing.T) {
		c := s.client(t)
		broken, healthy := newReceiver(t, nil), newReceiver(t, nil)
		bid := createEndpoint(t, c, map[string]any{"name": "broken", "url": broken.URL(), "events": []string{"fail.*"},
			"transform": `if .data.n == 1 then error("no body for one") else {body: .data} end`})
		hid := createEndpoint(t, c, map[string]any{"name": "healthy", "url": healthy.URL(), "events": []string{"fail.*"}})
		deliver(t, c, "fail.test", map[string]any{"n": 1})
		deliver(t, c, "fail.test", map[string]any{"n": 2})
		eventually(t, 30*time.Second, "the healthy endpoint gets both", func() bool { return len(healthy.succeeded()) == 2 })
		eventually(t, 30*time.Second, "the broken endpoint gets the message its transform handles", func() bool { return len(broken.succeeded()) == 1 })
		if b := string(broken.succeeded()[0].Body); b != `{"n":2}` {
			t.Errorf("broken endpoint got %s", b)
		}
		var failed []deliveryDetail
		eventually(t, 30*time.Second, "the failing transform's delivery failed", func() bool {
			failed = nil
			for _, d := range deliveriesOf(t, c, "endpoint_id="+bid) {
				if d.Status == "failed" {
					failed = append(failed, d)
				}
			}
			return len(failed) == 1
		})
		if !strings.Contains(failed[0].LastError, "no body for one") || failed[0].AttemptCount != 1 {
			t.Errorf("failed delivery: %+v", failed[0])
		}
		for _, d := range deliveriesOf(t, c, "endpoint_id="+hid) {
			if d.Status != "succeeded" {
				t.Errorf("healthy endpoint's delivery %s is %s", d.ID, d.Status)
			}
		}
		if r := c.get("/api/v1/webhooks/endpoints/" + bid); r.JSON(t)["enabled"] != true {
			t.Errorf("the broken endpoint was disabled: %s", r.Body)
		}
	})

	t.Run("endpoint tools: a test event of a chosen type and statistics", func(t *testing.T) {
		c := s.client(t)
		rc := newReceiver(t, func(n int, _ *http.Request, _ http.Header) (int, string) {
			if n == 2 {
				return 500, "once"
			}
			return 200, ""
		})
		id := createEndpoint(t, c, map[string]any{"name": "tools", "url": rc.URL(), "events": []string{"nothing.matches"},
			"retry_schedule": []string{"1s"}})
		r := c.post("/api/v1/webhooks/endpoints/"+id+"/test", map[string]any{"event_type": "order.created"})
		if r.Status != 202 {
			t.Fatalf("test send: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/webhooks/endpoints/"+id+"/test", map[string]any{"event_type": "order.created", "payload": map[string]any{"total": "x"}}); r.Status != 422 ||
			!strings.Contains(string(r.Body), `"field":"payload.total"`) {
			t.Errorf("test send breaking the schema: %d %s", r.Status, r.Body)
		}
		c.post("/api/v1/webhooks/endpoints/"+id+"/test", map[string]any{"event_type": "misc.ping", "payload": map[string]any{"n": 2}})
		eventually(t, 30*time.Second, "both test messages delivered", func() bool { return len(rc.succeeded()) == 2 })
		// The one without a payload carries the type's example from the catalog.
		found := false
		for _, got := range rc.succeeded() {
			if b := got.decode(t); b.Type == "order.created" {
				found = strings.Contains(string(b.Data), `"order_id":"o1"`)
			}
		}
		if !found {
			t.Errorf("no order.created test message with the catalog's example: %v", rc.succeeded())
		}
		var st struct {
			Attempts    int      `json:"attempts"`
			Succeeded   int      `json:"succeeded"`
			SuccessRate *float64 `json:"success_rate"`
			LatencyMS   struct {
				P50 *float64 `json:"p50"`
				P99 *float64 `json:"p99"`
			} `json:"latency_ms"`
			Backlog int `json:"backlog"`
		}
		var last string
		defer func() {
			if t.Failed() {
				t.Logf("last stats: %s; receiver got %d requests", last, len(rc.receipts()))
			}
		}()
		eventually(t, 30*time.Second, "the attempts counted", func() bool {
			r := c.get("/api/v1/webhooks/endpoints/" + id + "/stats?window=1h")
			last = string(r.Body)
			r.Decode(t, &st)
			return r.Status == 200 && st.Attempts == 3 && st.Backlog == 0
		})
		if st.Succeeded != 2 || st.SuccessRate == nil || *st.SuccessRate < 0.66 || *st.SuccessRate > 0.67 ||
			st.LatencyMS.P50 == nil || st.LatencyMS.P99 == nil || *st.LatencyMS.P99 < *st.LatencyMS.P50 {
			t.Errorf("stats: %+v", st)
		}
		if r := c.get("/api/v1/webhooks/endpoints/" + id + "/stats?window=soon"); r.Status != 422 {
			t.Errorf("bad window: %d", r.Status)
		}
		if r := c.get("/api/v1/webhooks/endpoints/nope/stats"); r.Status != 404 {
			t.Errorf("unknown endpoint: %d", r.Status)
		}
	})
}

// validateAsyncAPI checks doc with the AsyncAPI initiative's parser (@asyncapi/parser, run with
// node; testdata/asyncapi) and returns what it read: the version and the message names.
func validateAsyncAPI(t *testing.T, doc []byte) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		if testenv.Required() {
			t.Fatal("npm is required to validate the AsyncAPI document (apt-get install -y npm)")
		}
		t.Skip("npm is not installed")
	}
	dir := t.TempDir()
	for _, name := range []string{"package.json", "validate.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "asyncapi", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "asyncapi.json"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
		}
		return string(out)
	}
	run(npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
	return run("node", "validate.mjs", "asyncapi.json")
}
