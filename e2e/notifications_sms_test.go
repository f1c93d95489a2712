package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/internal/twiliotest"
)

// TestNotificationsSMS sends SMS through twilio-go to a local fake of Twilio's Messages API, takes
// signed status callbacks, and checks what happens without an SMTP server configured.
func TestNotificationsSMS(t *testing.T) {
	fake := twiliotest.Start(t)
	fake.Fail("+15005550001", &twiliotest.Failure{Status: 400, Code: 21211, Message: "The 'To' number +15005550001 is not a valid phone number."})
	fake.Fail("+15005550002", &twiliotest.Failure{Status: 429, Code: 20429, Message: "Too Many Requests"}, nil)
	// This stack keeps its tables in Postgres and its rate limits in Redis (the email test runs
	// on the SQLite files of `make run`).
	dataDir := t.TempDir()
	env := map[string]string{
		"TWILIO_ACCOUNT_SID": twiliotest.AccountSID, "TWILIO_AUTH_TOKEN": twiliotest.AuthToken,
		"TWILIO_FROM_NUMBER": twiliotest.From, "TWILIO_API_URL": fake.URL,
		"NOTIFICATION_RETRY_INITIAL_INTERVAL": "200ms", "NOTIFICATION_RETRY_MAX_INTERVAL": "1s",
		"DATABASE_URL": testenv.PostgresURL(t), "REDIS_URL": testenv.RedisURL(t),
	}
	cfg := testConfig(t, dataDir, env)
	s := startEmbedded(t, cfg)
	t.Run("without SMTP health says the email channel is not configured", func(t *testing.T) {
		c := s.client(t)
		// No SMTP_HOST: the email channel says so in health and refuses sends clearly.
		deps := c.get("/health/detailed").JSON(t)
		if e := deps["dependencies"].(map[string]any)["email"].(map[string]any); e["status"] != "not_configured" ||
			!strings.Contains(e["error"].(string), "SMTP_HOST") || deps["status"] != "healthy" {
			t.Errorf("health without SMTP: %v", deps)
		}
	})
	t.Run("without SMTP an email send is refused with 503", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/notifications/email", map[string]any{"to": []string{"a@example.com"}, "subject": "s", "body": "b"}); r.Status != 503 ||
			!strings.Contains(string(r.Body), "channel_not_configured") || !strings.Contains(string(r.Body), "SMTP_HOST") {
			t.Errorf("email without SMTP: %d %s", r.Status, r.Body)
		}
	})
	// Shared by the callback subtests: the seed's notification, its deliveries and Twilio's requests.
	var (
		n           notificationReply
		ok, limited deliveryReply
		reqs        []twiliotest.Request
		first       twiliotest.Request
	)
	sent := t.Run("seed SMS: an invalid number fails at once, a 429 is retried", func(t *testing.T) {
		c := s.client(t)
		// The seed's request: verification_sms with the message as its fallback text.
		r := c.post("/api/v1/notifications/sms", map[string]any{
			"to": []string{"+1234567890", "+15005550001", "+15005550002"}, "message": "Your verification code is 123456",
			"template_id": "verification_sms",
		})
		if r.Status != 202 {
			t.Fatalf("send sms: %d %s", r.Status, r.Body)
		}
		r.Decode(t, &n)
		n = c.waitNotification(n.ID, 30*time.Second, "partially_failed", "sent", "failed")
		if n.Status != "partially_failed" || n.Body != "Your verification code is 123456" {
			t.Fatalf("sms notification: %+v", n)
		}
		var invalid deliveryReply
		ok, invalid, limited = n.Deliveries[0], n.Deliveries[1], n.Deliveries[2]
		if ok.Status != "sent" || !strings.HasPrefix(ok.ProviderMessageID, "SM") || ok.AttemptCount != 1 {
			t.Errorf("accepted sms: %+v", ok)
		}
		if invalid.Status != "failed" || invalid.ErrorCode != "21211" || len(invalid.Attempts) != 1 || fake.Attempts("+15005550001") != 1 {
			t.Errorf("invalid number (21211) must fail at once: %+v after %d attempts", invalid, fake.Attempts("+15005550001"))
		}
		if limited.Status != "sent" || limited.AttemptCount != 2 || limited.Attempts[0].ErrorCode != "20429" || !limited.Attempts[0].Retryable {
			t.Errorf("429 then accepted: %+v", limited)
		}
		reqs = fake.Requests()
		for _, q := range reqs {
			if q.SID == ok.ProviderMessageID {
				first = q
			}
		}
		if first.From != twiliotest.From || first.Body != "Your verification code is 123456" ||
			first.StatusCallback != s.URL+"/api/v1/notifications/providers/twilio/status?delivery_id="+ok.ID {
			t.Fatalf("twilio request %+v", first)
		}
	})
	t.Run("a forged status callback changes nothing", func(t *testing.T) {
		if !sent {
			t.Skip("needs the seed SMS")
		}
		c := s.client(t)
		// A status callback with a bad signature changes nothing; a signed one marks it delivered.
		if code, err := twiliotest.StatusCallback(first, "delivered", 0, "bm90IGEgc2lnbmF0dXJl"); err != nil || code != 403 {
			t.Errorf("forged callback: %d %v", code, err)
		}
		if d := c.notification(n.ID).Deliveries[0]; d.Status != "sent" {
			t.Errorf("after a forged callback: %s", d.Status)
		}
	})
	t.Run("a signed status callback marks the SMS delivered and emits notification.delivered", func(t *testing.T) {
		if !sent {
			t.Skip("needs the seed SMS")
		}
		c := s.client(t)
		if code, err := twiliotest.StatusCallback(first, "delivered", 0, ""); err != nil || code != 200 {
			t.Fatalf("signed callback: %d %v", code, err)
		}
		if code, _ := twiliotest.StatusCallback(first, "sent", 0, ""); code != 200 {
			t.Errorf("late 'sent' callback: %d", code)
		}
		after := c.notification(n.ID)
		if d := after.Deliveries[0]; d.Status != "delivered" {
			t.Errorf("after the signed callback: %+v", d)
		}
		eventually(t, 10*time.Second, "notification.delivered", func() bool {
			return len(storedEvents(t, cfg, "notification.delivered")) == 1
		})
		ev := storedEvents(t, cfg, "notification.delivered")[0]
		var data map[string]any
		_ = json.Unmarshal(ev.Data, &data)
		if ev.Subject != n.ID || data["delivery_id"] != ok.ID || data["provider_message_id"] != ok.ProviderMessageID {
			t.Errorf("delivered event %+v %v", ev, data)
		}
	})
	t.Run("an undelivered report marks the SMS failed with Twilio's code", func(t *testing.T) {
		if !sent {
			t.Skip("needs the seed SMS")
		}
		c := s.client(t)
		// An undelivered report of the other accepted message marks it failed with Twilio's code.
		var second twiliotest.Request
		for _, q := range reqs {
			if q.SID == limited.ProviderMessageID {
				second = q
			}
		}
		if code, _ := twiliotest.StatusCallback(second, "undelivered", 30003, ""); code != 200 {
			t.Errorf("undelivered callback: %d", code)
		}
		if d := c.notification(n.ID).Deliveries[2]; d.Status != "failed" || d.ErrorCode != "30003" || !strings.Contains(d.Error, "unreachable") {
			t.Errorf("undelivered: %+v", d)
		}
		if got := len(storedEvents(t, cfg, "notification.failed")); got != 2 {
			t.Errorf("%d notification.failed events, want 2 (21211 and 30003)", got)
		}
	})
	t.Run("bad SMS input is refused", func(t *testing.T) {
		c := s.client(t)
		// Bad input: numbers that are not E.164, an email template on the SMS channel, too long.
		for _, tc := range []struct {
			body   map[string]any
			status int
			want   string
		}{
			{map[string]any{"to": []string{"+14155550100", "555-1234"}, "message": "x"}, 422, `"to[1]"`},
			{map[string]any{"to": []string{"+14155550100"}, "template_id": "welcome_email"}, 422, "template_id"},
			{map[string]any{"to": []string{"+14155550100"}, "message": strings.Repeat("x", 1601)}, 422, "1600"},
			{map[string]any{"to": []string{"+14155550100"}}, 422, "message"},
		} {
			if r := c.post("/api/v1/notifications/sms", tc.body); r.Status != tc.status || !strings.Contains(string(r.Body), tc.want) {
				t.Errorf("bad sms %v: %d %s", tc.body, r.Status, r.Body)
			}
		}
	})
	var scheduled string
	var at time.Time
	t.Run("a scheduled SMS is accepted", func(t *testing.T) {
		c := s.client(t)
		// Accepted means durable: a scheduled SMS survives a stop of the whole service and is sent
		// after the restart.
		at = time.Now().Add(3 * time.Second).UTC()
		r := c.post("/api/v1/notifications/sms", map[string]any{"to": []string{"+14155550199"}, "message": "later",
			"send_at": at.Format(time.RFC3339Nano)})
		if r.Status != 202 {
			t.Fatalf("scheduled sms: %d %s", r.Status, r.Body)
		}
		scheduled = r.JSON(t)["id"].(string)
	})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	env["TEMPORAL_PORT"] = fmt.Sprint(cfg.TemporalPort)
	s = startEmbedded(t, testConfig(t, dataDir, env))
	t.Run("the scheduled SMS is sent after the restart, not before its send_at", func(t *testing.T) {
		if scheduled == "" {
			t.Skip("needs the scheduled SMS")
		}
		c := s.client(t)
		if n := c.waitNotification(scheduled, 60*time.Second, "sent", "failed"); n.Status != "sent" {
			t.Errorf("scheduled sms after a restart: %+v", n)
		}
		for _, q := range fake.Requests() {
			if q.To == "+14155550199" && q.At.Before(at) {
				t.Errorf("sent at %v, before its send_at %v", q.At, at)
			}
		}
	})
	t.Run("starter send-sms sends the rendered template", func(t *testing.T) {
		if out, code := s.starter(t, "notifications", "send-sms", "--to", "+14155550123", "--template", "verification_sms",
			"--data", `{"code": "9876", "app_name": "Acme"}`); code != 0 || !strings.Contains(out, "queued") {
			t.Errorf("starter send-sms: exit %d\n%s", code, out)
		}
		eventually(t, 30*time.Second, "the CLI's SMS", func() bool {
			for _, q := range fake.Requests() {
				if q.To == "+14155550123" && q.Body == "Your Acme code is 9876" {
					return true
				}
			}
			return false
		})
	})
	t.Run("starter notifications render", func(t *testing.T) {
		if out, code := s.starter(t, "notifications", "render", "welcome_email", "--data", `{"user_name": "Ada", "app_name": "Acme"}`); code != 0 ||
			!strings.Contains(out, "Subject: Welcome to Acme, Ada!") || !strings.Contains(out, "<strong>Acme</strong>") {
			t.Errorf("starter render: exit %d\n%s", code, out)
		}
	})
	t.Run("starter render with a missing variable exits 1", func(t *testing.T) {
		if out, code := s.starter(t, "notifications", "render", "welcome_email", "--data", `{"app_name": "Acme"}`); code != 1 || !strings.Contains(out, "user_name") {
			t.Errorf("starter render with a missing variable: exit %d\n%s", code, out)
		}
	})
}
