package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/smtptest"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
)

// TestNotificationsEmail drives email notifications over HTTP on the embedded stack, delivered
// to a real SMTP server: templates, retries of 4xx replies, permanent 5xx failures, idempotency
// keys, the per-recipient throttle, tracking, events and bad input.
func TestNotificationsEmail(t *testing.T) {
	mail := smtptest.Start(t)
	mail.SetResponder(func(rcpt string, n int) error {
		switch {
		case strings.HasPrefix(rcpt, "grey@") && n <= 2:
			return smtptest.Temporary()
		case strings.HasPrefix(rcpt, "nobody@"):
			return smtptest.Permanent()
		}
		return nil
	})
	const window = 3 * time.Second
	cfg := testConfig(t, t.TempDir(), map[string]string{
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"SMTP_FROM": "Automation <noreply@example.com>", "SMTP_RATE_PER_SECOND": "200",
		"NOTIFICATION_RETRY_INITIAL_INTERVAL": "200ms", "NOTIFICATION_RETRY_MAX_INTERVAL": "1s",
		"NOTIFICATION_RETRY_MAX_ATTEMPTS": "5",
		"NOTIFICATION_RECIPIENT_LIMIT":    "10", "NOTIFICATION_RECIPIENT_WINDOW": window.String(),
		"RATE_LIMIT_PER_SECOND": "500", "RATE_LIMIT_BURST": "500", "MAX_BODY_BYTES": "65536",
	})
	s := startEmbedded(t, cfg)
	t.Run("health shows email up over SMTP and SMS not configured", func(t *testing.T) {
		c := s.client(t)
		deps := c.get("/health/detailed").JSON(t)["dependencies"].(map[string]any)
		if e := deps["email"].(map[string]any); e["status"] != "up" || e["mode"] != "smtp" {
			t.Errorf("email health: %v", e)
		}
		if e := deps["sms"].(map[string]any); e["status"] != "not_configured" || !strings.Contains(e["error"].(string), "TWILIO_ACCOUNT_SID") {
			t.Errorf("sms health: %v", e)
		}
	})
	t.Run("seed request arrives rendered from the welcome_email template", func(t *testing.T) {
		c := s.client(t)
		// The seed's request with the seeded welcome_email template arrives rendered.
		r := c.post("/api/v1/notifications/email", map[string]any{
			"to": []string{"user@example.com"}, "subject": "Welcome!", "body": "Welcome to our platform!",
			"template_id": "welcome_email", "template_data": map[string]any{"user_name": "John <Doe>", "app_name": "PyAirtable"},
		})
		if r.Status != 202 || r.Header.Get("Location") == "" {
			t.Fatalf("send: %d %s", r.Status, r.Body)
		}
		var queued notificationReply
		r.Decode(t, &queued)
		if queued.Status != "queued" || len(queued.Deliveries) != 1 || queued.Deliveries[0].Status != "queued" || queued.TemplateVersion != 2 {
			t.Errorf("queued: %+v", queued)
		}
		welcome := c.waitNotification(queued.ID, 30*time.Second, "sent")
		msgs := mail.WaitFor(t, 1, 10*time.Second)
		m := msgs[0]
		if m.Subject() != "Welcome to PyAirtable, John <Doe>!" || !strings.Contains(m.Parts["text/plain"], "Hi John <Doe>,") ||
			!strings.Contains(m.Parts["text/html"], "<p>Hi John &lt;Doe&gt;,</p>") || m.To[0] != "user@example.com" {
			t.Errorf("received: subject %q, parts %q, to %v", m.Subject(), m.Parts, m.To)
		}
		d := welcome.Deliveries[0]
		if d.AttemptCount != 1 || len(d.Attempts) != 1 || d.ProviderMessageID != d.ID+"@example.com" ||
			m.Header.Get("Message-Id") != "<"+d.ProviderMessageID+">" || d.SentAt == nil {
			t.Errorf("delivery %+v, message id header %q", d, m.Header.Get("Message-Id"))
		}
	})
	var permN notificationReply // the permanently failed notification, found again by the list filters
	t.Run("a 451 is retried until sent, a 550 fails at once, and events record both", func(t *testing.T) {
		c := s.client(t)
		// 451 twice, then accepted: sent on attempt 3; 550: failed after one attempt.
		grey := c.post("/api/v1/notifications/email", map[string]any{"to": []string{"grey@example.com"}, "subject": "s", "body": "b"})
		perm := c.post("/api/v1/notifications/email", map[string]any{"to": []string{"nobody@example.com"}, "subject": "s", "body": "b"})
		if grey.Status != 202 || perm.Status != 202 {
			t.Fatalf("sends: %d %s / %d %s", grey.Status, grey.Body, perm.Status, perm.Body)
		}
		greyN := c.waitNotification(grey.JSON(t)["id"].(string), 30*time.Second, "sent", "failed")
		gd := greyN.Deliveries[0]
		if greyN.Status != "sent" || gd.AttemptCount != 3 || len(gd.Attempts) != 3 || gd.Attempts[0].ErrorCode != "451 4.7.1" ||
			!gd.Attempts[0].Retryable || gd.Attempts[2].Status != "sent" || mail.RcptCount("grey@example.com") != 3 {
			t.Errorf("greylisted: %+v (rcpt %d)", greyN, mail.RcptCount("grey@example.com"))
		}
		permN = c.waitNotification(perm.JSON(t)["id"].(string), 30*time.Second, "sent", "failed")
		pd := permN.Deliveries[0]
		if permN.Status != "failed" || pd.Status != "failed" || len(pd.Attempts) != 1 || pd.ErrorCode != "550 5.1.1" ||
			pd.Attempts[0].Retryable || !strings.Contains(pd.Error, "550") || mail.RcptCount("nobody@example.com") != 1 {
			t.Errorf("permanent failure: %+v", permN)
		}
		eventually(t, 10*time.Second, "the sent and failed events", func() bool {
			return len(storedEvents(t, cfg, "notification.sent")) >= 2 && len(storedEvents(t, cfg, "notification.failed")) >= 1
		})
		failedEv := storedEvents(t, cfg, "notification.failed")[0]
		var fdata map[string]any
		_ = json.Unmarshal(failedEv.Data, &fdata)
		if failedEv.Subject != permN.ID || fdata["recipient"] != "nobody@example.com" || fdata["error_code"] != "550 5.1.1" {
			t.Errorf("failed event %+v %v", failedEv, fdata)
		}
	})
	t.Run("same Idempotency-Key sends once and another body under it is refused", func(t *testing.T) {
		c := s.client(t)
		// The same Idempotency-Key, five times at once and once more later, sends once; with another
		// body it is refused.
		body := map[string]any{"to": []string{"idem@example.com"}, "subject": "once", "body": "only once"}
		replies := make([]reply, 5)
		var rwg sync.WaitGroup
		for i := range replies {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				replies[i] = c.post("/api/v1/notifications/email", body, "Idempotency-Key", "order-42")
			}()
		}
		rwg.Wait()
		first := replies[0]
		for _, r := range replies {
			if r.Status != 202 || r.JSON(t)["id"] != first.JSON(t)["id"] {
				t.Fatalf("concurrent idempotent sends: %d %s / %d %s", first.Status, first.Body, r.Status, r.Body)
			}
		}
		second := c.post("/api/v1/notifications/email", body, "Idempotency-Key", "order-42")
		if second.Status != 202 || second.JSON(t)["id"] != first.JSON(t)["id"] || second.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("repeated idempotent send: %d %s %v", second.Status, second.Body, second.Header)
		}
		c.waitNotification(first.JSON(t)["id"].(string), 30*time.Second, "sent")
		if r := c.post("/api/v1/notifications/email", map[string]any{"to": []string{"idem@example.com"}, "subject": "other", "body": "x"},
			"Idempotency-Key", "order-42"); r.Status != 422 || !strings.Contains(string(r.Body), "idempotency_key_reused") {
			t.Errorf("reused key with another body: %d %s", r.Status, r.Body)
		}
		time.Sleep(500 * time.Millisecond)
		if n := mail.RcptCount("idem@example.com"); n != 1 {
			t.Errorf("idempotent notification reached the SMTP server %d times", n)
		}
	})
	t.Run("Go API sends once per key, awaits the outcome and continues the cause's chain", func(t *testing.T) {
		// The Go API other domains call (a workflow step, a rule action), on the same stack.
		st, err := store.Open(context.Background(), store.Options{SQLitePath: cfg.SQLitePath()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		svc, err := notify.New(notify.Options{Config: cfg, Store: st, Temporal: s.Temporal, Templates: templating.New(templating.Options{}),
			Events: events.NewBus(st, slog.Default())})
		if err != nil {
			t.Fatal(err)
		}
		cause := store.Event{ID: "evt-user-created-1", CorrelationID: "evt-root", Depth: 1, Type: "user.created"}
		req := notify.EmailRequest{To: []string{"go-api@example.com"}, TemplateID: "welcome_email",
			TemplateData: map[string]any{"user_name": "Grace", "app_name": "Rules"}, IdempotencyKey: "rule:r1:evt-user-created-1", Cause: &cause}
		viaGo, err := svc.SendEmail(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := svc.SendEmail(context.Background(), req)
		if err != nil || again.ID != viaGo.ID || !again.Replayed {
			t.Errorf("repeated Go send: %+v %v", again, err)
		}
		actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		done, err := svc.Await(actx, viaGo.ID)
		cancel()
		if err != nil || done.Status != "sent" || done.Subject != "Welcome to Rules, Grace!" {
			t.Errorf("await: %+v %v", done, err)
		}
		if _, err := svc.SendSMS(context.Background(), notify.SMSRequest{To: []string{"+14155550100"}, Message: "x"}); !errors.Is(err, notify.ErrChannelNotConfigured) {
			t.Errorf("sms without Twilio: %v", err)
		}
		var caused int
		for _, e := range storedEvents(t, cfg, "notification.sent") {
			if e.Subject == viaGo.ID && e.CausationID == cause.ID && e.CorrelationID == "evt-root" && e.Depth == 2 {
				caused++
			}
		}
		if caused != 1 {
			t.Errorf("%d notification.sent events continue the cause's chain, want 1", caused)
		}
	})
	t.Run("bad input is refused with the problem", func(t *testing.T) {
		c := s.client(t)
		// Bad input.
		for _, tc := range []struct {
			body   any
			status int
			want   string
		}{
			{map[string]any{"to": []string{"ok@example.com", "not-an-address"}, "subject": "s", "body": "b"}, 422, `"to[1]"`},
			{map[string]any{"to": []string{"ok@example.com"}, "template_id": "no_such_template"}, 404, "no_such_template"},
			{map[string]any{"to": []string{"ok@example.com"}, "template_id": "welcome_email", "template_data": map[string]any{"app_name": "X"}}, 422, "user_name"},
			{map[string]any{"to": manyAddresses(101), "subject": "s", "body": "b"}, 422, "at most 100"},
			{map[string]any{"to": []string{"ok@example.com"}, "subject": "s", "body": strings.Repeat("x", 70000)}, 413, "payload_too_large"},
			{map[string]any{"to": []string{"ok@example.com"}, "subject": "s", "body": "b", "send_at": "tomorrow"}, 422, "send_at"},
			{`{"to": [`, 400, "invalid JSON"},
		} {
			if r := c.post("/api/v1/notifications/email", tc.body); r.Status != tc.status || !strings.Contains(string(r.Body), tc.want) {
				t.Errorf("bad input %.80v: %d %s", tc.body, r.Status, r.Body)
			}
		}
	})
	t.Run("unknown notification is not found", func(t *testing.T) {
		c := s.client(t)
		if r := c.get("/api/v1/notifications/nope"); r.Status != 404 {
			t.Errorf("unknown notification: %d", r.Status)
		}
	})
	t.Run("templates are created, versioned, rendered, listed and deleted", func(t *testing.T) {
		c := s.client(t)
		// Templates: create, version, preview, delete.
		tpl := map[string]any{"id": "order_shipped", "channel": "email", "subject": "Order {{ order.id }} shipped",
			"body":      "Hi {{ name | title }}, {% if items|length > 1 %}{{ items|length }} items{% else %}one item{% endif %} on the way.",
			"html_body": "<p>{{ name }}</p>"}
		if r := c.post("/api/v1/notifications/templates", tpl); r.Status != 201 {
			t.Fatalf("create template: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/notifications/templates", tpl); r.Status != 409 {
			t.Errorf("duplicate template: %d", r.Status)
		}
		tpl["subject"] = "Your order {{ order.id }} is on its way"
		if r := c.do("PUT", "/api/v1/notifications/templates/order_shipped", tpl); r.Status != 200 || r.JSON(t)["version"] != float64(2) {
			t.Errorf("update template: %d %s", r.Status, r.Body)
		}
		data := map[string]any{"order": map[string]any{"id": 7}, "name": "ada <lovelace>", "items": []any{1, 2}}
		pr := c.post("/api/v1/notifications/templates/order_shipped/render", map[string]any{"data": data})
		if pj := pr.JSON(t); pr.Status != 200 || pj["subject"] != "Your order 7 is on its way" ||
			pj["body"] != "Hi Ada <Lovelace>, 2 items on the way." || pj["html_body"] != "<p>ada &lt;lovelace&gt;</p>" {
			t.Errorf("render: %d %s", pr.Status, pr.Body)
		}
		if pr := c.post("/api/v1/notifications/templates/order_shipped/render", map[string]any{"data": data, "version": 1}); pr.JSON(t)["subject"] != "Order 7 shipped" {
			t.Errorf("render version 1: %s", pr.Body)
		}
		if pr := c.post("/api/v1/notifications/templates/order_shipped/render", map[string]any{"data": map[string]any{"name": "x"}}); pr.Status != 422 || !strings.Contains(string(pr.Body), `undefined variable \"order\"`) {
			t.Errorf("render with a missing variable: %d %s", pr.Status, pr.Body)
		}
		if r := c.get("/api/v1/notifications/templates?channel=email"); r.Status != 200 || !strings.Contains(string(r.Body), "order_shipped") || strings.Contains(string(r.Body), "verification_sms") {
			t.Errorf("list templates: %d %s", r.Status, r.Body)
		}
		if r := c.do("DELETE", "/api/v1/notifications/templates/order_shipped", nil); r.Status != 204 {
			t.Errorf("delete template: %d", r.Status)
		}
		if r := c.get("/api/v1/notifications/templates/order_shipped"); r.Status != 404 {
			t.Errorf("deleted template: %d", r.Status)
		}
	})
	t.Run("invalid template reports every field", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/notifications/templates", map[string]any{"id": "Bad Id", "channel": "fax", "body": "{% include 'x' %}"}); r.Status != 422 ||
			!strings.Contains(string(r.Body), `"id"`) || !strings.Contains(string(r.Body), `"channel"`) || !strings.Contains(string(r.Body), `"body"`) {
			t.Errorf("invalid template: %d %s", r.Status, r.Body)
		}
	})
	t.Run("list filters by channel, status and recipient", func(t *testing.T) {
		if permN.ID == "" {
			t.Skip("needs the permanently failed notification")
		}
		c := s.client(t)
		// Listing with filters.
		var page struct {
			Items []notificationReply `json:"items"`
		}
		c.get("/api/v1/notifications?channel=email&status=failed&recipient=NOBODY@example.com").Decode(t, &page)
		if len(page.Items) != 1 || page.Items[0].ID != permN.ID {
			t.Errorf("filtered list: %+v", page.Items)
		}
	})
	t.Run("bad status filter is refused", func(t *testing.T) {
		c := s.client(t)
		if r := c.get("/api/v1/notifications?status=lost"); r.Status != 422 {
			t.Errorf("bad status filter: %d", r.Status)
		}
	})
	t.Run("starter notifications send-email, show and list", func(t *testing.T) {
		c := s.client(t)
		// The operator CLI.
		out, code := s.starter(t, "notifications", "send-email", "--to", "cli@example.com", "--subject", "From the CLI", "--body", "hello")
		if code != 0 || !strings.Contains(out, "queued") {
			t.Fatalf("starter send-email: exit %d\n%s", code, out)
		}
		id := strings.Fields(out)[0]
		c.waitNotification(id, 30*time.Second, "sent")
		if out, code := s.starter(t, "notifications", "show", id); code != 0 || !strings.Contains(out, "cli@example.com") || !strings.Contains(out, "sent") {
			t.Errorf("starter show: exit %d\n%s", code, out)
		}
		if out, code := s.starter(t, "notifications", "list", "--recipient", "cli@example.com"); code != 0 || !strings.Contains(out, id) {
			t.Errorf("starter list: exit %d\n%s", code, out)
		}
	})
	t.Run("starter templates create, update, show --version and list --all", func(t *testing.T) {
		tplFile := filepath.Join(t.TempDir(), "template.json")
		if err := os.WriteFile(tplFile, []byte(`{"id": "cli_notice", "channel": "email", "subject": "Hi {{ name }}", "body": "Hello {{ name }}"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, code := s.starter(t, "templates", "create", "-f", tplFile); code != 0 || !strings.Contains(out, "template cli_notice (email) version 1") {
			t.Errorf("starter templates create: exit %d\n%s", code, out)
		}
		if err := os.WriteFile(tplFile, []byte(`{"subject": "Hello {{ name }}", "body": "Hi again {{ name }}"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, code := s.starter(t, "templates", "update", "cli_notice", "-f", tplFile); code != 0 || !strings.Contains(out, "version 2") {
			t.Errorf("starter templates update: exit %d\n%s", code, out)
		}
		if out, code := s.starter(t, "templates", "show", "cli_notice", "--version", "1"); code != 0 || !strings.Contains(out, `"body": "Hello {{ name }}"`) {
			t.Errorf("starter templates show --version 1: exit %d\n%s", code, out)
		}
		if out, code := s.starter(t, "-o", "json", "templates", "list", "--all", "--limit", "1"); code != 0 ||
			!strings.Contains(out, `"cli_notice"`) || !strings.Contains(out, `"welcome_email"`) {
			t.Errorf("starter templates list --all: exit %d\n%s", code, out)
		}
	})
	t.Run("starter templates show of a missing template exits 1 with the API error", func(t *testing.T) {
		if out, code := s.starter(t, "-o", "json", "templates", "show", "no_such_template"); code != 1 || !strings.Contains(out, `"status":404`) {
			t.Errorf("starter templates show of a missing template: exit %d\n%s", code, out)
		}
	})
	t.Run("per-recipient throttle delays emails but drops none", func(t *testing.T) {
		c := s.client(t)
		// 50 emails to one recipient under a throttle of 10 per window: all arrive, none dropped,
		// never more than 10 in a window.
		before := len(mail.Messages())
		var ids []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := c.post("/api/v1/notifications/email", map[string]any{"to": []string{"busy@example.com"},
					"subject": fmt.Sprintf("update %d", i), "body": "b"})
				if r.Status != 202 {
					t.Errorf("throttled send %d: %d %s", i, r.Status, r.Body)
					return
				}
				mu.Lock()
				ids = append(ids, r.JSON(t)["id"].(string))
				mu.Unlock()
			}()
		}
		wg.Wait()
		all := mail.WaitFor(t, before+50, 90*time.Second)
		var arrivals []time.Time
		for _, m := range all[before:] {
			if m.To[0] == "busy@example.com" {
				arrivals = append(arrivals, m.Received)
			}
		}
		sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
		if len(arrivals) != 50 {
			t.Fatalf("%d of 50 throttled emails arrived", len(arrivals))
		}
		// Admission is checked when each email is handed to the SMTP server; arrivals follow it
		// within the time an SMTP session takes.
		const slack = 500 * time.Millisecond
		for i := 10; i < len(arrivals); i++ {
			if gap := arrivals[i].Sub(arrivals[i-10]); gap < window-slack {
				t.Errorf("emails %d and %d arrived %v apart: more than 10 in a %v window", i-10, i, gap, window)
			}
		}
		if span := arrivals[49].Sub(arrivals[0]); span < 4*window-slack {
			t.Errorf("50 emails at 10 per %v arrived within %v", window, span)
		}
		var slots []time.Time
		for _, id := range ids {
			n := c.waitNotification(id, 30*time.Second, "sent")
			slots = append(slots, *n.Deliveries[0].ScheduledAt)
		}
		sort.Slice(slots, func(i, j int) bool { return slots[i].Before(slots[j]) })
		for i := 10; i < len(slots); i++ {
			if gap := slots[i].Sub(slots[i-10]); gap < window {
				t.Errorf("slots %d and %d are %v apart, want at least %v", i-10, i, gap, window)
			}
		}
		t.Logf("50 throttled emails arrived over %v", arrivals[49].Sub(arrivals[0]))
	})
}

func manyAddresses(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d@example.com", i)
	}
	return out
}
