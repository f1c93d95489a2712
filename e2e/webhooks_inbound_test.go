package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pyairtable/automation-domain/store"
)

// TestWebhookInbound registers inbound sources, sends them signed webhooks (signed with the
// official Standard Webhooks library, and GitHub-style), and checks that good ones are recorded
// as events (which fan out to a subscribed endpoint) while bad signatures, stale timestamps and
// replays are refused with nothing recorded.
func TestWebhookInbound(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), webhookEnv(nil))
	s := startEmbedded(t, cfg)
	c := s.client(t)
	// Senders have no API key: their signature authenticates them.
	sendFor := func(t *testing.T) *call { return &call{t: t, base: s.URL, header: http.Header{}} }

	watcher := newReceiver(t, nil)
	createEndpoint(t, c, map[string]any{"name": "watcher", "url": watcher.URL(), "events": []string{"invoice.*", "push"}})
	signed := func(t *testing.T, wh *standardwebhooks.Webhook, id string, at time.Time, body string) []string {
		t.Helper()
		sig, err := wh.Sign(id, at, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return []string{"webhook-id", id, "webhook-timestamp", strconv.FormatInt(at.Unix(), 10), "webhook-signature", sig}
	}
	body := `{"type":"invoice.paid","data":{"invoice":"in_1","amount":1200}}`
	// GitHub-style: sha256=<hex HMAC of the body>, event type from a header, replay by delivery id.
	push := `{"ref":"refs/heads/main","commits":[]}`
	mac := hmac.New(sha256.New, []byte("gh-webhook-secret-0123"))
	mac.Write([]byte(push))
	ghSig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	var official *standardwebhooks.Webhook // signs with the acme source's secret
	var eventID string                     // the event recorded from the first good webhook
	created := t.Run("a Standard Webhooks source is created with a generated secret", func(t *testing.T) {
		c := s.client(t)
		r := c.post("/api/v1/webhooks/sources", map[string]any{"name": "acme", "event_type_path": "type"})
		if r.Status != 201 {
			t.Fatalf("create source: %d %s", r.Status, r.Body)
		}
		acme := r.JSON(t)
		secret := acme["secret"].(string)
		if acme["inbound_path"] != "/api/v1/webhooks/inbound/acme" || acme["scheme"] != "standard_webhooks" {
			t.Fatalf("source %v", acme)
		}
		var err error
		official, err = standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatalf("the generated secret is not a Standard Webhooks secret: %v", err)
		}
	})
	t.Run("a signed webhook is recorded and fans out to a subscribed endpoint", func(t *testing.T) {
		if !created {
			t.Skip("needs the acme source")
		}
		sender := sendFor(t)
		// A good one is recorded and fans out.
		r := sender.post("/api/v1/webhooks/inbound/acme", body, signed(t, official, "msg_1", time.Now(), body)...)
		if r.Status != 202 {
			t.Fatalf("good signature: %d %s", r.Status, r.Body)
		}
		got := r.JSON(t)
		if got["event_type"] != "invoice.paid" || got["webhook_id"] != "msg_1" {
			t.Errorf("recorded %v", got)
		}
		eventID = got["event_id"].(string)
		eventually(t, 20*time.Second, "the inbound event at the subscribed endpoint", func() bool { return watcher.count() == 1 })
		fanned := watcher.receipts()[0]
		if fanned.MessageID() != eventID || string(fanned.decode(t).Data) != body {
			t.Errorf("fan-out of the inbound event: id %s data %s", fanned.MessageID(), fanned.decode(t).Data)
		}
	})
	t.Run("bad signatures and timestamps are refused", func(t *testing.T) {
		if !created {
			t.Skip("needs the acme source")
		}
		sender := sendFor(t)
		// Refused: nothing recorded.
		other, _ := standardwebhooks.NewWebhook("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
		for name, headers := range map[string][]string{
			"bad signature":    signed(t, other, "msg_2", time.Now(), body),
			"stale timestamp":  signed(t, official, "msg_3", time.Now().Add(-10*time.Minute), body),
			"future timestamp": signed(t, official, "msg_4", time.Now().Add(10*time.Minute), body),
			"no signature":     {"webhook-id", "msg_5", "webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10)},
		} {
			if r := sender.post("/api/v1/webhooks/inbound/acme", body, headers...); r.Status != 401 {
				t.Errorf("%s: %d %s, want 401", name, r.Status, r.Body)
			}
		}
	})
	t.Run("a tampered body is refused", func(t *testing.T) {
		if !created {
			t.Skip("needs the acme source")
		}
		sender := sendFor(t)
		tampered := signed(t, official, "msg_6", time.Now(), body)
		if r := sender.post("/api/v1/webhooks/inbound/acme", `{"type":"invoice.paid","data":{"amount":1}}`, tampered...); r.Status != 401 {
			t.Errorf("tampered body: %d", r.Status)
		}
	})
	t.Run("a replayed webhook id is refused", func(t *testing.T) {
		if eventID == "" {
			t.Skip("needs the recorded webhook")
		}
		sender := sendFor(t)
		if r := sender.post("/api/v1/webhooks/inbound/acme", body, signed(t, official, "msg_1", time.Now(), body)...); r.Status != 409 {
			t.Errorf("replayed webhook id: %d %s, want 409", r.Status, r.Body)
		}
	})
	t.Run("an unknown source is not found", func(t *testing.T) {
		if !created {
			t.Skip("needs the acme source")
		}
		sender := sendFor(t)
		if r := sender.post("/api/v1/webhooks/inbound/nobody", body, signed(t, official, "msg_7", time.Now(), body)...); r.Status != 404 {
			t.Errorf("unknown source: %d", r.Status)
		}
	})
	t.Run("a GitHub-style HMAC source records a push and refuses replays and bad signatures", func(t *testing.T) {
		c := s.client(t)
		sender := sendFor(t)
		r := c.post("/api/v1/webhooks/sources", map[string]any{"name": "github", "scheme": "hmac_sha256",
			"secret": "gh-webhook-secret-0123", "event_type_header": "X-GitHub-Event"})
		if r.Status != 201 {
			t.Fatalf("github source: %d %s", r.Status, r.Body)
		}
		if gh := r.JSON(t); gh["signature_header"] != "X-Hub-Signature-256" || gh["id_header"] != "X-GitHub-Delivery" {
			t.Errorf("github defaults %v", gh)
		}
		r = sender.post("/api/v1/webhooks/inbound/github", push, "X-Hub-Signature-256", ghSig, "X-GitHub-Delivery", "d-1", "X-GitHub-Event", "push")
		if r.Status != 202 || r.JSON(t)["event_type"] != "push" {
			t.Fatalf("github push: %d %s", r.Status, r.Body)
		}
		if r := sender.post("/api/v1/webhooks/inbound/github", push, "X-Hub-Signature-256", ghSig, "X-GitHub-Delivery", "d-1", "X-GitHub-Event", "push"); r.Status != 409 {
			t.Errorf("github replay: %d", r.Status)
		}
		if r := sender.post("/api/v1/webhooks/inbound/github", push, "X-Hub-Signature-256", "sha256=00", "X-GitHub-Delivery", "d-2"); r.Status != 401 {
			t.Errorf("github bad signature: %d", r.Status)
		}
		eventually(t, 20*time.Second, "the push event at the subscribed endpoint", func() bool { return watcher.count() == 2 })
	})
	t.Run("the event log holds exactly the accepted ones", func(t *testing.T) {
		// The event log holds exactly the accepted ones.
		st, err := store.Open(context.Background(), store.Options{SQLitePath: cfg.SQLitePath()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for source, want := range map[string]int64{"webhook/acme": 1, "webhook/github": 1} {
			var n int64
			if err := st.DB().Model(&store.Event{}).Where("source = ?", source).Count(&n).Error; err != nil || n != want {
				t.Errorf("%s events: %d %v, want %d", source, n, err, want)
			}
		}
		e, err := st.GetEvent(context.Background(), eventID)
		if err != nil || e.Type != "invoice.paid" || e.Subject != "msg_1" {
			t.Errorf("recorded event %+v %v", e, err)
		}
	})
	t.Run("a source is shown by name, without its secret", func(t *testing.T) {
		c := s.client(t)
		r := c.get("/api/v1/webhooks/sources/acme")
		got := r.JSON(t)
		if _, leaked := got["secret"]; r.Status != 200 || leaked || got["name"] != "acme" || got["scheme"] != "standard_webhooks" ||
			got["inbound_path"] != "/api/v1/webhooks/inbound/acme" || got["event_type_path"] != "type" {
			t.Errorf("show source: %d %s", r.Status, r.Body)
		}
		if r := c.get("/api/v1/webhooks/sources/nobody"); r.Status != 404 {
			t.Errorf("unknown source: %d %s", r.Status, r.Body)
		}
	})
	t.Run("sources are listed without secrets", func(t *testing.T) {
		c := s.client(t)
		// Sources are listed without secrets and can be deleted.
		list := c.get("/api/v1/webhooks/sources")
		if list.Status != 200 || len(list.JSON(t)["items"].([]any)) != 2 {
			t.Errorf("list sources: %d %s", list.Status, list.Body)
		}
		for _, item := range list.JSON(t)["items"].([]any) {
			if _, ok := item.(map[string]any)["secret"]; ok {
				t.Error("a listed source shows its secret")
			}
		}
	})
	t.Run("a deleted source no longer receives", func(t *testing.T) {
		c := s.client(t)
		sender := sendFor(t)
		if r := c.do("DELETE", "/api/v1/webhooks/sources/github", nil); r.Status != 204 {
			t.Errorf("delete source: %d", r.Status)
		}
		if r := sender.post("/api/v1/webhooks/inbound/github", push, "X-Hub-Signature-256", ghSig, "X-GitHub-Delivery", "d-3"); r.Status != 404 {
			t.Errorf("a deleted source still receives: %d", r.Status)
		}
	})
	t.Run("a bad source name is refused", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/webhooks/sources", map[string]any{"name": "Bad Name"}); r.Status != 422 {
			t.Errorf("bad source name: %d", r.Status)
		}
	})
	t.Run("a duplicate source name is refused", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/webhooks/sources", map[string]any{"name": "acme"}); r.Status != 422 {
			t.Errorf("duplicate source name: %d", r.Status)
		}
	})
}
