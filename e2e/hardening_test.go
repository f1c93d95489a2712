package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

// TestHostileInputAndLeaks drives the save-time SSRF checks, inbound replay protection and the
// small leaks of issue 9 over HTTP on the embedded stack (with Redis as the limiter when
// TEST_REDIS_URL is set, as in production): refused destinations at save time and at the
// request, replayed and re-typed inbound webhooks, encrypted and redacted endpoint headers, SQL
// logged without values, throttled failed authentications and the public view of
// /health/detailed.
func TestHostileInputAndLeaks(t *testing.T) {
	env := webhookEnv(map[string]string{"AUTH_FAILURE_LIMIT": "3", "AUTH_FAILURE_WINDOW": "1m"})
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		env["REDIS_URL"] = u
	}
	s := startEmbedded(t, testConfig(t, t.TempDir(), env))
	rcv := newRecorder(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(rcv.URL, "http://"))

	t.Run("http_request destinations are refused at save time", func(t *testing.T) {
		c := s.client(t)
		body := mustJSON(t, map[string]any{"name": "ssrf", "trigger_type": "manual", "steps": []any{
			map[string]any{"id": "meta", "type": "http_request", "config": map[string]any{"url": "http://169.254.169.254/latest/meta-data/"}},
			map[string]any{"id": "compat", "type": "http_request", "config": map[string]any{"url": "http://[::127.0.0.1]:" + port + "/x"}},
			map[string]any{"id": "decimal", "type": "http_request", "config": map[string]any{"url": "http://2130706433:" + port + "/x"}},
			map[string]any{"id": "octal", "type": "http_request", "config": map[string]any{"url": "http://0177.0.0.1:" + port + "/x"}},
			map[string]any{"id": "nat64", "type": "http_request", "config": map[string]any{"url": "http://[64:ff9b::a9fe:a9fe]/"}},
			map[string]any{"id": "templated", "type": "http_request", "config": map[string]any{"url": "http://10.1.2.3/{{ input.path }}"}},
			map[string]any{"id": "inside", "type": "branch", "config": map[string]any{"cases": []any{map[string]any{
				"when": "true", "steps": []any{map[string]any{"id": "deep", "type": "http_request",
					"config": map[string]any{"url": "http://[::1]:" + port + "/x"}}}}}}},
			map[string]any{"id": "ok", "type": "http_request", "config": map[string]any{"url": "http://127.0.0.1:" + port + "/ok"}},
			map[string]any{"id": "later", "type": "http_request", "config": map[string]any{"url": "http://{{ input.host }}:" + port + "/x"}},
		}})
		got := problems(t, c.post("/api/v1/workflows", body))
		want := map[string]string{
			"steps[0].config.url":                          "link-local address",
			"steps[1].config.url":                          "IPv4-compatible address",
			"steps[2].config.url":                          "unusual spelling of the IPv4 address 127.0.0.1",
			"steps[3].config.url":                          "unusual spelling of the IPv4 address 127.0.0.1",
			"steps[4].config.url":                          "NAT64 address embedding 169.254.169.254",
			"steps[5].config.url":                          "private address",
			"steps[6].config.cases[0].steps[0].config.url": "loopback address",
		}
		for field, msg := range want {
			if !strings.Contains(got[field], msg) {
				t.Errorf("%s: %q, want %q", field, got[field], msg)
			}
		}
		if len(got) != len(want) {
			t.Errorf("problems %v, want exactly %d (127.0.0.1 is allowed, a templated host waits for the run)", got, len(want))
		}
		// An update is checked the same way and leaves the definition as it was.
		id := createWorkflow(t, c, `{"name": "fine", "trigger_type": "manual", "steps": [
			{"id": "ok", "type": "http_request", "config": {"url": "http://127.0.0.1:`+port+`/ok"}}]}`)
		got = problems(t, c.do("PUT", "/api/v1/workflows/"+id, `{"name": "fine", "trigger_type": "manual", "steps": [
			{"id": "ok", "type": "http_request", "config": {"url": "http://[::ffff:0:a9fe:a9fe]/"}}]}`))
		if !strings.Contains(got["steps[0].config.url"], "IPv4-translated address embedding 169.254.169.254") {
			t.Errorf("update: %v", got)
		}
		if r := c.get("/api/v1/workflows/" + id); r.JSON(t)["version"] != 1.0 {
			t.Errorf("a refused update made a version: %s", r.Body)
		}
	})

	t.Run("http_request destinations are refused at the request", func(t *testing.T) {
		c := s.client(t)
		id := createWorkflow(t, c, `{"name": "templated host", "trigger_type": "manual", "steps": [
			{"id": "call", "type": "http_request", "retry": {"max_attempts": 3, "initial_interval": "1s"},
			 "config": {"url": "http://{{ input.host }}:`+port+`/templated"}}]}`)
		for host, why := range map[string]string{
			"2130706433":    "unusual spelling of the IPv4 address 127.0.0.1",
			"0x7f.1":        "unusual spelling of the IPv4 address 127.0.0.1",
			"[::127.0.0.1]": "IPv4-compatible address",
			"127.0.0.2":     "loopback address",
		} {
			e := waitFinished(t, c, execute(t, c, id, map[string]any{"input_data": map[string]any{"host": host}}), 60*time.Second)
			step := e.step(t, "call")
			if e.Status != "failed" || step.Attempts != 1 || !strings.Contains(step.Error, why) {
				t.Errorf("host %s: execution %s, step %s after %d attempt(s): %s (want a final refusal: %s)",
					host, e.Status, step.Status, step.Attempts, step.Error, why)
			}
		}
		if n := rcv.count("/templated"); n != 0 {
			t.Errorf("a refused destination was reached %d time(s)", n)
		}
		e := waitFinished(t, c, execute(t, c, id, map[string]any{"input_data": map[string]any{"host": "127.0.0.1"}}), 60*time.Second)
		if e.Status != "completed" || rcv.count("/templated") != 1 {
			t.Errorf("the allowed 127.0.0.1: %s %+v", e.Status, e.Steps)
		}
	})

	t.Run("webhook endpoints are refused at registration", func(t *testing.T) {
		c := s.client(t)
		for u, why := range map[string]string{
			"http://[::127.0.0.1]:" + port + "/hook":   "IPv4-compatible address",
			"http://2130706433:" + port + "/hook":      "unusual spelling",
			"http://0x7f000001:" + port + "/hook":      "unusual spelling",
			"http://127.1:" + port + "/hook":           "unusual spelling",
			"http://[2002:a9fe:a9fe::1]:" + port + "/": "6to4 address embedding 169.254.169.254",
			"http://[2002:7f00:1::1]:" + port + "/":    "6to4 address", // 127.0.0.1 is allowed, 6to4 is not
			"http://[64:ff9b::7f00:1]:" + port + "/":   "NAT64",
			"http://１２７.０.０.２:" + port + "/hook":       "loopback address",
		} {
			r := c.post("/api/v1/webhooks/endpoints", map[string]any{"name": "x", "url": u})
			if got := problems(t, r); !strings.Contains(got["url"], why) {
				t.Errorf("%s: %v, want %q", u, got, why)
			}
		}
		// The allowed 127.0.0.1, also as an IPv4-mapped IPv6 address.
		createEndpoint(t, c, map[string]any{"name": "mapped", "url": "http://[::ffff:127.0.0.1]:" + port + "/hook", "events": []string{"none.*"}})
	})

	t.Run("inbound hmac_sha256 replays are refused and the type comes from the signed body", func(t *testing.T) {
		c := s.client(t)
		sender := &call{t: t, base: s.URL, header: http.Header{}}
		const secret = "gh-webhook-secret-0123"
		r := c.post("/api/v1/webhooks/sources", map[string]any{"name": "gh-signed", "scheme": "hmac_sha256", "secret": secret,
			"event_type_path": "action", "event_type_header": "X-GitHub-Event"})
		if r.Status != 201 || r.JSON(t)["event_type_path"] != "action" {
			t.Fatalf("create source: %d %s", r.Status, r.Body)
		}
		post := func(body, delivery, event string) reply {
			return sender.post("/api/v1/webhooks/inbound/gh-signed", body, "X-Hub-Signature-256",
				webhooks.SignHexHMAC([]byte(secret), []byte(body)), "X-GitHub-Delivery", delivery, "X-GitHub-Event", event)
		}
		opened := `{"action":"opened","number":42}`
		r = post(opened, "d-1", "pull_request")
		if r.Status != 202 || r.JSON(t)["event_type"] != "opened" {
			t.Fatalf("first delivery: %d %s", r.Status, r.Body)
		}
		for what, again := range map[string][3]string{
			"the same request":                       {opened, "d-1", "pull_request"},
			"a new delivery id":                      {opened, "d-2", "pull_request"},
			"a new delivery id and a swapped header": {opened, "d-3", "release"},
			"no delivery id":                         {opened, "", "release"},
			"a seen delivery id with another body":   {`{"action":"closed","number":42}`, "d-1", "pull_request"},
		} {
			if r := post(again[0], again[1], again[2]); r.Status != 409 || !strings.Contains(string(r.Body), "replayed") {
				t.Errorf("%s: %d %s, want 409", what, r.Status, r.Body)
			}
		}
		// A header cannot retype a signed body; it is the fallback when the body has no type.
		r = post(`{"action":"closed","number":42}`, "d-4", "release")
		if r.Status != 202 || r.JSON(t)["event_type"] != "closed" {
			t.Errorf("closed: %d %s", r.Status, r.Body)
		}
		r = post(`{"zen":"Anything added dilutes everything else.","hook_id":9}`, "d-5", "ping")
		if r.Status != 202 || r.JSON(t)["event_type"] != "ping" {
			t.Errorf("ping: %d %s", r.Status, r.Body)
		}
		st, err := store.Open(context.Background(), store.Options{SQLitePath: s.Config.SQLitePath()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var recorded []store.Event
		if err := st.DB().Where("source = ?", "webhook/gh-signed").Find(&recorded).Error; err != nil {
			t.Fatal(err)
		}
		types := map[string]int{}
		for _, e := range recorded {
			types[e.Type]++
		}
		if len(types) != 3 || types["opened"] != 1 || types["closed"] != 1 || types["ping"] != 1 {
			t.Errorf("events recorded from gh-signed: %v", types)
		}
	})

	t.Run("endpoint headers are encrypted at rest and redacted", func(t *testing.T) {
		c := s.client(t)
		hook := newReceiver(t, nil)
		token := "Bearer crm-" + testenv.RandomHex(8)
		id := createEndpoint(t, c, map[string]any{"name": "crm", "url": hook.URL(), "events": []string{"crm.*"},
			"headers": map[string]string{"Authorization": token, "X-Tenant": "acme"}})
		secret := endpointSecret(t, c, id)
		for _, r := range []reply{c.get("/api/v1/webhooks/endpoints/" + id), c.get("/api/v1/webhooks/endpoints")} {
			if r.Status != 200 || strings.Contains(string(r.Body), token) || strings.Contains(string(r.Body), "acme") ||
				!strings.Contains(string(r.Body), `"Authorization":"[redacted]"`) {
				t.Errorf("the API shows header values: %s", r.Body)
			}
		}
		st, err := store.Open(context.Background(), store.Options{SQLitePath: s.Config.SQLitePath()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		row, err := st.GetWebhookEndpoint(context.Background(), id)
		if err != nil || strings.Contains(string(row.Headers), token) || strings.Contains(string(row.Headers), "acme") ||
			!strings.Contains(string(row.Headers), "Authorization") {
			t.Errorf("stored headers %s %v", row.Headers, err)
		}
		deliver(t, c, "crm.sync", map[string]any{"n": 1})
		eventually(t, 20*time.Second, "the first delivery", func() bool { return hook.count() == 1 })
		if h := hook.receipts()[0].Header; h.Get("Authorization") != token || h.Get("X-Tenant") != "acme" {
			t.Errorf("sent headers %v", h)
		}
		// Written back as read, with one value changed: the redacted one keeps its value.
		r := c.do("PATCH", "/api/v1/webhooks/endpoints/"+id, map[string]any{"headers": map[string]string{
			"Authorization": webhooks.RedactedHeaderValue, "X-Tenant": "globex"}})
		if r.Status != 200 {
			t.Fatalf("patch: %d %s", r.Status, r.Body)
		}
		deliver(t, c, "crm.sync", map[string]any{"n": 2})
		eventually(t, 20*time.Second, "the second delivery", func() bool { return hook.count() == 2 })
		if h := hook.receipts()[1].Header; h.Get("Authorization") != token || h.Get("X-Tenant") != "globex" {
			t.Errorf("sent headers after the patch %v", h)
		}
		if got := problems(t, c.do("PATCH", "/api/v1/webhooks/endpoints/"+id, map[string]any{"headers": map[string]string{
			"X-Unknown": webhooks.RedactedHeaderValue}})); !strings.Contains(got["headers.X-Unknown"], "no header X-Unknown") {
			t.Errorf("a redacted value for a header the endpoint lacks: %v", got)
		}
		for _, leaked := range []string{token, secret, row.Secret} {
			if strings.Contains(s.Logs.String(), leaked) {
				t.Errorf("the log holds %q", leaked)
			}
		}
	})

	// The store logs failed statements without their bound values (store tests); a duplicate
	// refused by a unique key is an outcome the API handles, not a failure to log as one.
	t.Run("a refused duplicate is answered, not logged as a failed statement, and no values are", func(t *testing.T) {
		c := s.client(t)
		marker := "source-description-" + testenv.RandomHex(8)
		body := map[string]any{"name": "dup", "description": marker, "secret": "dup-source-secret-" + testenv.RandomHex(8)}
		if r := c.post("/api/v1/webhooks/sources", body); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/webhooks/sources", body); r.Status != 422 {
			t.Fatalf("a second source named dup: %d %s", r.Status, r.Body)
		}
		logs := s.Logs.String()
		if strings.Contains(logs, "SQL executed") && strings.Contains(logs, "webhook_sources") {
			t.Errorf("the refused duplicate INSERT is logged as a failed statement")
		}
		for _, leaked := range []string{marker, body["secret"].(string), "v1:"} {
			if strings.Contains(logs, leaked) {
				t.Errorf("the log holds the bound value %q", leaked)
			}
		}
	})

	t.Run("failed authentications are throttled per client address", func(t *testing.T) {
		// A loopback address of its own (the Redis budget outlives a run): 127.x.y.z.
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		attacker := net.IPv4(127, b[0], b[1], max(b[2], 2))
		from := func(ip net.IP, key string) *http.Response {
			hc := contractClient(t, &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}).DialContext})
			req, _ := http.NewRequest("GET", s.URL+"/api/v1/workflows?limit=1", nil)
			req.Header.Set("X-API-Key", key)
			res, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return res
		}
		for i := range 3 {
			if res := from(attacker, "guess-"+strconv.Itoa(i)); res.StatusCode != 401 {
				t.Fatalf("guess %d: %d, want 401", i+1, res.StatusCode)
			}
		}
		for _, key := range []string{"guess-3", s.APIKey} {
			res := from(attacker, key)
			if retry, _ := strconv.Atoi(res.Header.Get("Retry-After")); res.StatusCode != 429 || retry < 1 {
				t.Errorf("from the throttled address (valid key: %v): %d Retry-After %q", key == s.APIKey, res.StatusCode, res.Header.Get("Retry-After"))
			}
		}
		if res := from(net.IPv4(127, 0, 0, 1), s.APIKey); res.StatusCode != 200 {
			t.Errorf("the valid key from another address: %d", res.StatusCode)
		}
		if !strings.Contains(s.Logs.String(), "failed authentications from one address reached the limit") {
			t.Error("the throttling was not logged")
		}
	})

	t.Run("/health/detailed shows details only to authenticated callers", func(t *testing.T) {
		c := s.client(t)
		anon := &call{t: t, base: s.URL, header: http.Header{}}
		r := anon.get("/health/detailed")
		var public struct {
			Dependencies map[string]map[string]any `json:"dependencies"`
		}
		r.Decode(t, &public)
		if r.Status != 200 || public.Dependencies["database"]["status"] != "up" || public.Dependencies["temporal"]["status"] != "up" {
			t.Fatalf("public view: %d %s", r.Status, r.Body)
		}
		for name, d := range public.Dependencies {
			for field := range d {
				if field != "status" && field != "latency_ms" {
					t.Errorf("the public view shows %s.%s: %s", name, field, r.Body)
				}
			}
		}
		if strings.Contains(string(r.Body), s.Config.TemporalAddress) {
			t.Errorf("the public view names the Temporal address: %s", r.Body)
		}
		var full struct {
			Dependencies map[string]map[string]any `json:"dependencies"`
		}
		c.get("/health/detailed").Decode(t, &full)
		if full.Dependencies["database"]["mode"] != "sqlite" || full.Dependencies["temporal"]["mode"] == nil {
			t.Errorf("the authenticated view: %v", full.Dependencies)
		}
	})
}

// TestEndpointHeadersAreEncryptedOnUpgrade restarts the service on a database whose endpoint
// headers are in plain text, as before migration 00007: the migration encrypts them at start-up
// with WEBHOOK_SECRET_KEY, the API shows them redacted and deliveries still carry them.
func TestEndpointHeadersAreEncryptedOnUpgrade(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, webhookEnv(nil))
	s := startEmbedded(t, cfg)
	c := s.client(t)
	hook := newReceiver(t, nil)
	id := createEndpoint(t, c, map[string]any{"name": "legacy", "url": hook.URL(), "events": []string{"legacy.*"}})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	// The database as an older version left it: plain header values, 00007 not applied.
	st, err := store.Open(context.Background(), store.Options{SQLitePath: cfg.SQLitePath()})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(map[string]string{"Authorization": "Bearer legacy-tok-" + testenv.RandomHex(8)})
	if err := st.DB().WithContext(tenant.System(context.Background())).Exec("UPDATE webhook_endpoints SET headers = ? WHERE id = ?", string(plain), id).Error; err != nil {
		t.Fatal(err)
	}
	if err := st.DB().Exec("DELETE FROM goose_db_version WHERE version_id = 7").Error; err != nil {
		t.Fatal(err)
	}
	st.Close()

	s = startEmbedded(t, testConfig(t, dir, webhookEnv(nil)))
	c = s.client(t)
	var want map[string]string
	_ = json.Unmarshal(plain, &want)
	if r := c.get("/api/v1/webhooks/endpoints/" + id); strings.Contains(string(r.Body), want["Authorization"]) ||
		!strings.Contains(string(r.Body), `"Authorization":"[redacted]"`) {
		t.Errorf("after the upgrade the API shows %s", r.Body)
	}
	st, err = store.Open(context.Background(), store.Options{SQLitePath: cfg.SQLitePath()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if row, err := st.GetWebhookEndpoint(context.Background(), id); err != nil || strings.Contains(string(row.Headers), want["Authorization"]) {
		t.Errorf("after the upgrade the database holds %s %v", row.Headers, err)
	}
	deliver(t, c, "legacy.ping", map[string]any{"n": 1})
	eventually(t, 20*time.Second, "the delivery", func() bool { return hook.count() == 1 })
	if got := hook.receipts()[0].Header.Get("Authorization"); got != want["Authorization"] {
		t.Errorf("the receiver got Authorization %q, want %q", got, want["Authorization"])
	}
}
