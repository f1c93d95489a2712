package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pyairtable/automation-domain/webhooks"
)

// TestWebhookDelivery drives outbound webhooks end to end on the embedded stack with real
// receivers: signatures checked with the official Standard Webhooks library, retries on a short
// schedule, 410, rotation, recovery, ordering, rate limits, circuit-breaking by count, the
// delivery log, metrics and the starter CLI. The scenarios share one stack and run side by side.
func TestWebhookDelivery(t *testing.T) {
	s := startEmbedded(t, testConfig(t, t.TempDir(), webhookEnv(nil)))

	t.Run("endpoint input is refused with the field at fault", func(t *testing.T) {
		c := s.client(t)
		// Refused input, before anything is sent.
		for _, bad := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": "x", "url": "http://10.0.0.1/hook"}, "url"},
			{map[string]any{"name": "x", "url": "ftp://example.com/"}, "url"},
			{map[string]any{"url": "http://127.0.0.1:1/"}, "name"},
			{map[string]any{"name": "x", "url": "http://127.0.0.1:1/", "events": []string{"wo*rk"}}, "events[0]"},
			{map[string]any{"name": "x", "url": "http://127.0.0.1:1/", "headers": map[string]string{"webhook-id": "x"}}, "headers.webhook-id"},
			{map[string]any{"name": "x", "url": "http://127.0.0.1:1/", "secret": "short"}, "secret"},
			{map[string]any{"name": "x", "url": "http://127.0.0.1:1/", "retry_schedule": []string{"soon"}}, "retry_schedule[0]"},
		} {
			r := c.post("/api/v1/webhooks/endpoints", bad.body)
			if r.Status != 422 || !strings.Contains(string(r.Body), `"field":"`+bad.field+`"`) {
				t.Errorf("%v: %d %s, want 422 on %s", bad.body, r.Status, r.Body, bad.field)
			}
		}
	})
	t.Run("deliver without event_type is refused", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/webhooks/deliver", map[string]any{"payload": map[string]any{}}); r.Status != 422 {
			t.Errorf("deliver without event_type: %d", r.Status)
		}
	})
	t.Run("a 300 KiB payload is refused with 413", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/webhooks/deliver", map[string]any{"event_type": "big.one",
			"payload": map[string]string{"blob": strings.Repeat("x", 300<<10)}}); r.Status != 413 {
			t.Errorf("300 KiB payload: %d %s", r.Status, r.Body)
		}
	})
	t.Run("an unknown endpoint is not found", func(t *testing.T) {
		c := s.client(t)
		if r := c.get("/api/v1/webhooks/endpoints/nope"); r.Status != 404 {
			t.Errorf("unknown endpoint: %d", r.Status)
		}
	})
	t.Run("malformed JSON is refused", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/webhooks/deliver", "{"); r.Status != 400 {
			t.Errorf("bad JSON: %d", r.Status)
		}
	})

	// The scenarios run side by side; the metrics are checked once they are all done.
	t.Run("scenarios", func(t *testing.T) { webhookScenarios(t, s) })
	t.Run("metrics", func(t *testing.T) {
		c := s.client(t)
		metrics := string(c.get("/metrics").Body)
		for _, want := range []string{
			`webhook_deliveries_total{endpoint_id="`, `outcome="succeeded"`, `webhook_attempts_total{`,
			`outcome="retrying"`, `webhook_attempt_duration_seconds_bucket{`, `webhook_endpoints_disabled_total{reason="gone"} 1`,
			`webhook_endpoints_disabled_total{reason="failures"} 1`, `webhook_messages_total{source="api"}`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func webhookScenarios(t *testing.T, s *stack) {
	t.Run("signed delivery verifies with the official library", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		rc := newReceiver(t, nil)
		id := createEndpoint(t, c, map[string]any{"name": "signed", "url": rc.URL(), "events": []string{"order.*"},
			"headers": map[string]string{"X-Tenant": "acme"}})
		other := newReceiver(t, nil)
		createEndpoint(t, c, map[string]any{"name": "other", "url": other.URL(), "events": []string{"invoice.paid"}})
		secret := endpointSecret(t, c, id)
		if !strings.HasPrefix(secret, "whsec_") {
			t.Fatalf("generated secret %q", secret)
		}
		msg := deliver(t, c, "order.created", map[string]any{"order": 42, "total": "9.99"})
		eventually(t, 20*time.Second, "the delivery", func() bool { return rc.count() == 1 })
		got := rc.receipts()[0]
		wh, _ := standardwebhooks.NewWebhook(secret)
		if err := wh.Verify(got.Body, got.Header); err != nil {
			t.Fatalf("official library: %v (headers %v)", err, got.Header)
		}
		b := got.decode(t)
		if got.MessageID() != msg || b.Type != "order.created" || string(b.Data) != `{"order":42,"total":"9.99"}` || got.Header.Get("X-Tenant") != "acme" {
			t.Errorf("receiver got id %s type %s data %s tenant %q", got.MessageID(), b.Type, b.Data, got.Header.Get("X-Tenant"))
		}
		var status struct {
			Deliveries []struct {
				EndpointID string `json:"endpoint_id"`
				Status     string `json:"status"`
			} `json:"deliveries"`
		}
		eventually(t, 10*time.Second, "the message to show its delivery succeeded", func() bool {
			c.get("/api/v1/webhooks/messages/"+msg).Decode(t, &status)
			return len(status.Deliveries) == 1 && status.Deliveries[0].EndpointID == id && status.Deliveries[0].Status == "succeeded"
		})
		time.Sleep(300 * time.Millisecond)
		if other.count() != 0 {
			t.Error("an endpoint whose filter does not match got the message")
		}
		// The same idempotency key sends nothing more.
		first := c.post("/api/v1/webhooks/deliver", map[string]any{"event_type": "order.paid", "payload": 1}, "Idempotency-Key", "pay-42").JSON(t)
		again := c.post("/api/v1/webhooks/deliver", map[string]any{"event_type": "order.paid", "payload": 1}, "Idempotency-Key", "pay-42").JSON(t)
		if first["message_id"] != again["message_id"] || again["duplicate"] != true {
			t.Errorf("idempotency: %v then %v", first, again)
		}
		eventually(t, 20*time.Second, "the paid message", func() bool { return rc.count() == 2 })
		time.Sleep(500 * time.Millisecond)
		if rc.count() != 2 {
			t.Errorf("a repeated idempotency key was sent again (%d requests)", rc.count())
		}
		// The log shows it with its attempt.
		ds := deliveriesOf(t, c, "endpoint_id="+id+"&event_type=order.created")
		if len(ds) != 1 || ds[0].Status != "succeeded" || ds[0].MessageID != msg {
			t.Fatalf("log: %+v", ds)
		}
		var detail deliveryDetail
		c.get("/api/v1/webhooks/deliveries/"+ds[0].ID).Decode(t, &detail)
		if len(detail.Attempts) != 1 || detail.Attempts[0].StatusCode != 200 || detail.Attempts[0].Outcome != "succeeded" {
			t.Errorf("attempts %+v", detail.Attempts)
		}
		// A manual retry sends it again.
		if r := c.post("/api/v1/webhooks/deliveries/"+ds[0].ID+"/retry", nil); r.Status != 202 {
			t.Fatalf("retry: %d %s", r.Status, r.Body)
		}
		eventually(t, 20*time.Second, "the manual retry", func() bool { return rc.count() == 3 })
	})

	t.Run("failing three times then delivered with growing gaps", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		rc := newReceiver(t, func(n int, _ *http.Request, _ http.Header) (int, string) {
			if n <= 3 {
				return 500, "not yet"
			}
			return 200, "ok"
		})
		id := createEndpoint(t, c, map[string]any{"name": "flaky", "url": rc.URL(), "events": []string{"flaky.*"},
			"retry_schedule": []string{"1s", "3s", "7s"}})
		deliver(t, c, "flaky.event", map[string]any{"n": 1})
		eventually(t, 40*time.Second, "attempt 4", func() bool { return rc.count() == 4 })
		got := rc.receipts()
		gaps := []time.Duration{got[1].At.Sub(got[0].At), got[2].At.Sub(got[1].At), got[3].At.Sub(got[2].At)}
		// ±20% jitter, and the embedded server may fire a timer up to ~1 s late: the gaps still grow.
		if !(gaps[0] < gaps[1] && gaps[1] < gaps[2]) || gaps[0] < 700*time.Millisecond {
			t.Errorf("gaps %v do not grow from ~1 s", gaps)
			dumpHistory(t, s.Config.TemporalAddress, webhooks.DispatcherWorkflowID(id), time.Time{}, time.Now())
		}
		for _, r := range got {
			if r.MessageID() != got[0].MessageID() {
				t.Errorf("webhook-id changed across retries")
			}
		}
		ds := deliveriesOf(t, c, "endpoint_id="+id)
		var detail deliveryDetail
		eventually(t, 10*time.Second, "the delivery to be logged as succeeded", func() bool {
			c.get("/api/v1/webhooks/deliveries/"+ds[0].ID).Decode(t, &detail)
			return detail.Status == "succeeded"
		})
		if detail.AttemptCount != 4 || len(detail.Attempts) != 4 || detail.Attempts[0].Outcome != "retrying" ||
			detail.Attempts[0].StatusCode != 500 || detail.Attempts[0].ResponseBody != "not yet" || detail.Attempts[3].Outcome != "succeeded" {
			t.Errorf("attempt log: %+v", detail)
		}
		var ep map[string]any
		c.get("/api/v1/webhooks/endpoints/"+id).Decode(t, &ep)
		if ep["failing_since"] != nil || ep["enabled"] != true {
			t.Errorf("a success did not clear the failure tracking: %v", ep)
		}
	})

	t.Run("410 disables the endpoint and emits webhook.endpoint.disabled", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		watcher := newReceiver(t, nil)
		createEndpoint(t, c, map[string]any{"name": "watcher", "url": watcher.URL(), "events": []string{"webhook.endpoint.disabled"}})
		gone := newReceiver(t, func(int, *http.Request, http.Header) (int, string) { return 410, "" })
		id := createEndpoint(t, c, map[string]any{"name": "gone", "url": gone.URL(), "events": []string{"gone.*"}})
		deliver(t, c, "gone.event", 1)
		var ep map[string]any
		eventually(t, 20*time.Second, "the endpoint to be disabled", func() bool {
			c.get("/api/v1/webhooks/endpoints/"+id).Decode(t, &ep)
			return ep["enabled"] == false
		})
		if !strings.Contains(fmt.Sprint(ep["disabled_reason"]), "410") {
			t.Errorf("reason %v", ep["disabled_reason"])
		}
		eventually(t, 20*time.Second, "the disabled event at the watcher", func() bool {
			for _, r := range watcher.receipts() {
				var data struct {
					EndpointID string `json:"endpoint_id"`
					Kind       string `json:"kind"`
				}
				b := r.decode(t)
				if b.Type == "webhook.endpoint.disabled" && json.Unmarshal(b.Data, &data) == nil && data.EndpointID == id && data.Kind == "gone" {
					return true
				}
			}
			return false
		})
		// Disabled endpoints get nothing; re-enabling is an API call.
		deliver(t, c, "gone.event", 2)
		time.Sleep(500 * time.Millisecond)
		if gone.count() != 1 {
			t.Errorf("a disabled endpoint got %d requests", gone.count())
		}
		if r := c.do("PATCH", "/api/v1/webhooks/endpoints/"+id, map[string]any{"enabled": true}); r.Status != 200 || r.JSON(t)["enabled"] != true {
			t.Fatalf("re-enable: %d %s", r.Status, r.Body)
		}
		// The dispatcher's run (a session, then the disable) replays; UPDATE_REPLAY_HISTORY=1
		// keeps it as a fixture.
		saveReplayFixture(t, replayDispatcherRuns(t, s.Config.TemporalAddress, id), "webhook_dispatcher_disable_history.json")
	})

	t.Run("rotation sends two signatures that both verify", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		rc := newReceiver(t, nil)
		old := "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id := createEndpoint(t, c, map[string]any{"name": "rotating", "url": rc.URL(), "events": []string{"rotate.*"}, "secret": old})
		r := c.post("/api/v1/webhooks/endpoints/"+id+"/secret/rotate", nil)
		if r.Status != 200 {
			t.Fatalf("rotate: %d %s", r.Status, r.Body)
		}
		rotated := r.JSON(t)
		newSecret := rotated["key"].(string)
		if newSecret == old || rotated["previous_key_expires_at"] == nil || endpointSecret(t, c, id) != newSecret {
			t.Fatalf("rotated: %v", rotated)
		}
		deliver(t, c, "rotate.now", map[string]any{"x": 1})
		eventually(t, 20*time.Second, "the delivery", func() bool { return rc.count() == 1 })
		got := rc.receipts()[0]
		if sigs := strings.Fields(got.Header.Get("webhook-signature")); len(sigs) != 2 {
			t.Fatalf("signatures %q", got.Header.Get("webhook-signature"))
		}
		for _, sec := range []string{old, newSecret} {
			wh, _ := standardwebhooks.NewWebhook(sec)
			if err := wh.Verify(got.Body, got.Header); err != nil {
				t.Errorf("a receiver with %s…: %v", sec[:10], err)
			}
		}
		// With no grace period the old secret stops at once.
		c.post("/api/v1/webhooks/endpoints/"+id+"/secret/rotate", map[string]any{"grace_period": "0s"})
		deliver(t, c, "rotate.now", map[string]any{"x": 2})
		eventually(t, 20*time.Second, "the second delivery", func() bool { return rc.count() == 2 })
		if sigs := strings.Fields(rc.receipts()[1].Header.Get("webhook-signature")); len(sigs) != 1 {
			t.Errorf("after a rotation without grace: %v", sigs)
		}
	})

	t.Run("recover re-sends failed deliveries", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		var healthy atomic.Bool
		rc := newReceiver(t, func(int, *http.Request, http.Header) (int, string) {
			if healthy.Load() {
				return 200, ""
			}
			return 503, ""
		})
		id := createEndpoint(t, c, map[string]any{"name": "recovering", "url": rc.URL(), "events": []string{"recover.*"}, "max_attempts": 2,
			"retry_schedule": []string{"200ms"}})
		since := time.Now().Add(-time.Second).UTC()
		var msgs []string
		for i := range 3 {
			msgs = append(msgs, deliver(t, c, "recover.me", map[string]any{"i": i}))
		}
		eventually(t, 20*time.Second, "three failed deliveries", func() bool {
			return len(deliveriesOf(t, c, "endpoint_id="+id+"&status=failed")) == 3
		})
		healthy.Store(true)
		r := c.post("/api/v1/webhooks/endpoints/"+id+"/recover", map[string]any{"since": since.Format(time.RFC3339Nano)})
		if r.Status != 202 || r.JSON(t)["recovered"] != float64(3) {
			t.Fatalf("recover: %d %s", r.Status, r.Body)
		}
		eventually(t, 20*time.Second, "the recovered deliveries", func() bool { return len(rc.succeeded()) == 3 })
		got := map[string]bool{}
		for _, r := range rc.succeeded() {
			got[r.MessageID()] = true
		}
		for _, m := range msgs {
			if !got[m] {
				t.Errorf("message %s not re-sent", m)
			}
		}
		if r := c.post("/api/v1/webhooks/endpoints/"+id+"/recover", map[string]any{}); r.Status != 422 {
			t.Errorf("recover without since: %d", r.Status)
		}
	})

	t.Run("ordered endpoint receives in order while failing once", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		rc := newReceiver(t, func(n int, _ *http.Request, _ http.Header) (int, string) {
			if n == 1 {
				return 500, ""
			}
			return 200, ""
		})
		createEndpoint(t, c, map[string]any{"name": "fifo", "url": rc.URL(), "events": []string{"fifo.*"}, "ordered": true,
			"retry_schedule": []string{"500ms"}})
		for i := range 6 {
			deliver(t, c, "fifo.step", map[string]any{"seq": i})
		}
		eventually(t, 30*time.Second, "six successful deliveries", func() bool { return len(rc.succeeded()) == 6 })
		got := rc.receipts()
		var seqs []int
		for _, r := range got {
			var d struct {
				Seq int `json:"seq"`
			}
			_ = json.Unmarshal(r.decode(t).Data, &d)
			seqs = append(seqs, d.Seq)
		}
		if fmt.Sprint(seqs) != "[0 0 1 2 3 4 5]" {
			t.Errorf("order of requests %v, want [0 0 1 2 3 4 5] (the first fails once)", seqs)
		}
	})

	t.Run("rate limit spaces requests", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		rc := newReceiver(t, nil)
		createEndpoint(t, c, map[string]any{"name": "limited", "url": rc.URL(), "events": []string{"limited.*"}, "rate_limit_per_second": 2})
		for i := range 6 {
			deliver(t, c, "limited.event", map[string]any{"i": i})
		}
		eventually(t, 30*time.Second, "six deliveries", func() bool { return rc.count() == 6 })
		got := rc.receipts()
		// A burst of 2, then 2 a second: the last comes at least ~2 s after the first.
		if span := got[5].At.Sub(got[0].At); span < 1500*time.Millisecond {
			t.Errorf("6 requests at 2/s took only %s", span)
		}
	})

	t.Run("consecutive final failures disable the endpoint", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		rc := newReceiver(t, func(int, *http.Request, http.Header) (int, string) { return 400, "bad" })
		id := createEndpoint(t, c, map[string]any{"name": "broken", "url": rc.URL(), "events": []string{"broken.*"}, "disable_after_failures": 2})
		deliver(t, c, "broken.a", 1)
		deliver(t, c, "broken.b", 2)
		var ep map[string]any
		eventually(t, 20*time.Second, "the endpoint to be disabled", func() bool {
			c.get("/api/v1/webhooks/endpoints/"+id).Decode(t, &ep)
			return ep["enabled"] == false
		})
		if rc.count() != 2 || !strings.Contains(fmt.Sprint(ep["disabled_reason"]), "2 deliveries in a row") {
			t.Errorf("%d requests (400 is final), reason %v", rc.count(), ep["disabled_reason"])
		}
	})

	t.Run("a redirect to a private address is not followed", func(t *testing.T) {
		t.Parallel()
		c := s.client(t)
		var hits atomic.Int32
		rc := newReceiver(t, func(_ int, _ *http.Request, h http.Header) (int, string) {
			hits.Add(1)
			h.Set("Location", "http://169.254.169.254/latest/meta-data/")
			return http.StatusFound, ""
		})
		id := createEndpoint(t, c, map[string]any{"name": "redirecting", "url": rc.URL(), "events": []string{"redirect.*"}, "max_attempts": 1})
		deliver(t, c, "redirect.me", 1)
		var ds []deliveryDetail
		eventually(t, 20*time.Second, "the failed delivery", func() bool {
			ds = deliveriesOf(t, c, "endpoint_id="+id+"&status=failed")
			return len(ds) == 1
		})
		var detail deliveryDetail
		c.get("/api/v1/webhooks/deliveries/"+ds[0].ID).Decode(t, &detail)
		if hits.Load() != 1 || detail.Attempts[0].StatusCode != 302 ||
			detail.Attempts[0].ResponseHeaders["Location"] != "http://169.254.169.254/latest/meta-data/" {
			t.Errorf("%d hits, attempt %+v", hits.Load(), detail.Attempts)
		}
	})

	t.Run("starter CLI", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		out, code := s.starter(t, "webhooks", "endpoints", "create", "--name", "cli", "--url", rc.URL(), "--events", "cli.*")
		if code != 0 || !strings.Contains(out, "secret whsec_") {
			t.Fatalf("create: %d %s", code, out)
		}
		epID := strings.Fields(strings.Split(out, "\n")[0])[1]
		if out, code := s.starter(t, "webhooks", "deliver", "--event-type", "cli.hello", "--payload", `{"hi":true}`); code != 0 || !strings.Contains(out, "to 1 endpoints") {
			t.Fatalf("deliver: %d %s", code, out)
		}
		eventually(t, 20*time.Second, "the CLI's message", func() bool { return rc.count() == 1 })
		eventually(t, 10*time.Second, "the log to say succeeded", func() bool {
			out, code := s.starter(t, "webhooks", "deliveries", "list", "--endpoint", epID)
			return code == 0 && strings.Contains(out, "succeeded")
		})
		if out, code := s.starter(t, "webhooks", "endpoints", "list"); code != 0 || !strings.Contains(out, epID) {
			t.Errorf("list: %d %s", code, out)
		}
		if out, code := s.starter(t, "webhooks", "deliver", "--event-type", "cli.bad", "--payload", `{`); code == 0 {
			t.Errorf("bad payload accepted: %s", out)
		}
	})
}
