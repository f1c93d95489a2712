package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/smtptest"
	"github.com/pyairtable/automation-domain/internal/twiliotest"
)

// TestNotificationsDelivery drives channel fallback and quiet hours over HTTP against a real
// SMTP server and the Twilio fake: an email refused for good (550) falls back to the
// subscriber's phone, and both steps show in the notification's deliveries and attempts; an
// email due inside the subscriber's quiet hours (ending seconds from now, in their zone) waits
// for their end and shows the hold, while a critical one goes at once; a tenant's default quiet
// hours hold its subscribers without their own, and no other tenant's.
func TestNotificationsDelivery(t *testing.T) {
	mail := smtptest.Start(t)
	mail.SetResponder(func(rcpt string, _ int) error {
		if strings.HasPrefix(rcpt, "gone@") {
			return smtptest.Permanent()
		}
		return nil
	})
	fake := twiliotest.Start(t)
	cfg := testConfig(t, t.TempDir(), map[string]string{
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"SMTP_FROM":          "Automation <noreply@example.com>",
		"TWILIO_ACCOUNT_SID": twiliotest.AccountSID, "TWILIO_AUTH_TOKEN": twiliotest.AuthToken,
		"TWILIO_FROM_NUMBER": twiliotest.From, "TWILIO_API_URL": fake.URL,
		"NOTIFICATION_RETRY_INITIAL_INTERVAL": "200ms", "NOTIFICATION_RETRY_MAX_INTERVAL": "1s",
	})
	s := startEmbedded(t, cfg)

	t.Run("an email refused for good falls back to SMS and both steps show", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/subscribers", map[string]any{"external_id": "fallback-1",
			"email": "gone@example.com", "phone": "+14155550123"}); r.Status != 201 {
			t.Fatalf("create subscriber: %d %s", r.Status, r.Body)
		}
		r := c.post("/api/v1/notifications/email", map[string]any{"subscriber_ids": []string{"fallback-1"},
			"channels": []string{"email", "sms"}, "subject": "Your order", "body": "has shipped"})
		if r.Status != 202 {
			t.Fatalf("send: %d %s", r.Status, r.Body)
		}
		var n notificationReply
		r.Decode(t, &n)
		n = c.waitNotification(n.ID, 30*time.Second, "sent", "failed", "partially_failed")
		if n.Status != "sent" || len(n.Deliveries) != 2 {
			t.Fatalf("notification: %+v", n)
		}
		email, text := n.Deliveries[0], n.Deliveries[1]
		if email.Status != "failed" || !strings.HasPrefix(email.ErrorCode, "550") || email.FallbackID != text.ID ||
			len(email.Attempts) != 1 || email.Attempts[0].Retryable {
			t.Errorf("email step: %+v", email)
		}
		if text.Channel != "sms" || text.FallbackOf != email.ID || text.Status != "sent" || text.Recipient != "+14155550123" ||
			!strings.HasPrefix(text.ProviderMessageID, "SM") || len(text.Attempts) != 1 || text.SubscriberID != email.SubscriberID {
			t.Errorf("sms step: %+v", text)
		}
		reqs := fake.Requests()
		if len(reqs) != 1 || reqs[0].To != "+14155550123" || reqs[0].Body != "Your order\n\nhas shipped" {
			t.Errorf("twilio requests: %+v", reqs)
		}
		if len(mail.Messages()) != 0 {
			t.Errorf("the refused email was delivered: %+v", mail.Messages())
		}
	})
	t.Run("a channel list that does not start with the request's channel is a 422", func(t *testing.T) {
		c := s.client(t)
		r := c.post("/api/v1/notifications/email", map[string]any{"to": []string{"a@example.com"},
			"channels": []string{"sms", "email"}, "subject": "s", "body": "b"})
		if r.Status != 422 || !strings.Contains(string(r.Body), `"channels"`) {
			t.Errorf("bad channels: %d %s", r.Status, r.Body)
		}
		r = c.post("/api/v1/notifications/email", map[string]any{"to": []string{"a@example.com"},
			"channels": []string{"email", "email"}, "subject": "s", "body": "b"})
		if r.Status != 422 || !strings.Contains(string(r.Body), "channels[1]") {
			t.Errorf("repeated channel: %d %s", r.Status, r.Body)
		}
	})
	t.Run("quiet hours hold a send until they end, critical ones go at once", func(t *testing.T) {
		c := s.client(t)
		zone, _ := time.LoadLocation("Asia/Kolkata")
		now := time.Now().In(zone)
		quietEnd := now.Add(10 * time.Second).Truncate(time.Second)
		if r := c.post("/api/v1/subscribers", map[string]any{"external_id": "quiet-1", "email": "quiet@example.com",
			"time_zone": "Asia/Kolkata", "quiet_hours_start": now.Add(-time.Hour).Format("15:04:05"),
			"quiet_hours_end": quietEnd.Format("15:04:05")}); r.Status != 201 {
			t.Fatalf("create subscriber: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/subscribers", map[string]any{"external_id": "quiet-2", "quiet_hours_start": "22:00"}); r.Status != 422 ||
			!strings.Contains(string(r.Body), "quiet_hours_end") {
			t.Errorf("half a window: %d %s", r.Status, r.Body)
		}
		send := func(priority string) notificationReply {
			r := c.post("/api/v1/notifications/email", map[string]any{"subscriber_ids": []string{"quiet-1"},
				"subject": "At " + priority, "body": "b", "priority": priority})
			if r.Status != 202 {
				t.Fatalf("send %s: %d %s", priority, r.Status, r.Body)
			}
			var n notificationReply
			r.Decode(t, &n)
			return n
		}
		held := send("normal")
		critical := send("critical")
		var d deliveryReply
		eventually(t, 5*time.Second, "the hold shows", func() bool {
			n := c.notification(held.ID)
			d = n.Deliveries[0]
			return n.Status == "queued" && d.HeldReason == "quiet_hours"
		})
		if d.HeldUntil == nil || !d.HeldUntil.Equal(quietEnd) || d.Status != "queued" {
			t.Errorf("held delivery: %+v, want held until %s", d, quietEnd.UTC())
		}
		if n := c.waitNotification(critical.ID, 10*time.Second, "sent", "failed"); n.Status != "sent" || n.Deliveries[0].HeldReason != "" ||
			time.Now().After(quietEnd) {
			t.Errorf("critical notification: %+v (now %s, quiet hours end %s)", n, time.Now().UTC(), quietEnd.UTC())
		}
		if got := len(mail.Messages()); got != 1 {
			t.Errorf("%d messages before the quiet hours ended, want the critical one", got)
		}
		n := c.waitNotification(held.ID, 30*time.Second, "sent", "failed")
		if n.Status != "sent" || n.Deliveries[0].SentAt == nil || n.Deliveries[0].SentAt.Before(quietEnd) {
			t.Errorf("after the quiet hours: %+v", n)
		}
		if got := len(mail.Messages()); got != 2 {
			t.Errorf("%d messages after the quiet hours, want 2", got)
		}
	})
	t.Run("tenant default quiet hours hold subscribers without their own, in that tenant only", func(t *testing.T) {
		c := s.client(t)
		if r := c.do("PUT", "/api/v1/notifications/settings", `{"quiet_hours_start": `); r.Status != 400 {
			t.Errorf("invalid JSON: %d %s", r.Status, r.Body)
		}
		r := c.do("PUT", "/api/v1/notifications/settings", map[string]any{"quiet_hours_start": "25:00", "time_zone": "Mars/Olympus"})
		if r.Status != 422 || !strings.Contains(string(r.Body), `"quiet_hours_start"`) ||
			!strings.Contains(string(r.Body), `"quiet_hours_end"`) || !strings.Contains(string(r.Body), `"time_zone"`) {
			t.Errorf("invalid settings: %d %s", r.Status, r.Body)
		}
		if r := c.get("/api/v1/notifications/settings"); r.Status != 200 || r.JSON(t)["quiet_hours_start"] != "" {
			t.Fatalf("settings before any put: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/tenants", map[string]any{"id": "quiet-beta", "name": "Quiet beta"}); r.Status != 201 {
			t.Fatalf("create tenant: %d %s", r.Status, r.Body)
		}
		beta := s.client(t)
		beta.header.Set("X-Tenant-ID", "quiet-beta")

		zone, _ := time.LoadLocation("Asia/Kolkata")
		now := time.Now().In(zone)
		quietEnd := now.Add(10 * time.Second).Truncate(time.Second)
		r = c.do("PUT", "/api/v1/notifications/settings", map[string]any{"quiet_hours_start": now.Add(-time.Hour).Format("15:04:05"),
			"quiet_hours_end": quietEnd.Format("15:04:05"), "time_zone": "Asia/Kolkata"})
		if r.Status != 200 || r.JSON(t)["time_zone"] != "Asia/Kolkata" {
			t.Fatalf("put settings: %d %s", r.Status, r.Body)
		}
		t.Cleanup(func() { c.do("PUT", "/api/v1/notifications/settings", map[string]any{}) })
		if r := c.get("/api/v1/notifications/settings"); r.JSON(t)["quiet_hours_end"] != quietEnd.Format("15:04:05") {
			t.Errorf("settings read back: %s", r.Body)
		}
		if r := beta.get("/api/v1/notifications/settings"); r.Status != 200 || r.JSON(t)["quiet_hours_start"] != "" {
			t.Errorf("the other tenant reads these settings: %d %s", r.Status, r.Body)
		}
		for _, who := range []*call{c, beta} {
			email := "default-quiet@example.com"
			if who == beta {
				email = "beta-quiet@example.com"
			}
			if r := who.post("/api/v1/subscribers", map[string]any{"external_id": "default-quiet", "email": email}); r.Status != 201 {
				t.Fatalf("create subscriber: %d %s", r.Status, r.Body)
			}
		}
		send := func(who *call) notificationReply {
			r := who.post("/api/v1/notifications/email", map[string]any{"subscriber_ids": []string{"default-quiet"},
				"subject": "Tenant quiet hours", "body": "b"})
			if r.Status != 202 {
				t.Fatalf("send: %d %s", r.Status, r.Body)
			}
			var n notificationReply
			r.Decode(t, &n)
			return n
		}
		held, free := send(c), send(beta)
		if n := beta.waitNotification(free.ID, 10*time.Second, "sent", "failed"); n.Status != "sent" || n.Deliveries[0].HeldReason != "" ||
			time.Now().After(quietEnd) {
			t.Errorf("the other tenant's notification: %+v (now %s, quiet hours end %s)", n, time.Now().UTC(), quietEnd.UTC())
		}
		var d deliveryReply
		eventually(t, 5*time.Second, "the hold shows", func() bool {
			n := c.notification(held.ID)
			d = n.Deliveries[0]
			return n.Status == "queued" && d.HeldReason == "quiet_hours"
		})
		if d.HeldUntil == nil || !d.HeldUntil.Equal(quietEnd) {
			t.Errorf("held delivery: %+v, want held until %s", d, quietEnd.UTC())
		}
		n := c.waitNotification(held.ID, 30*time.Second, "sent", "failed")
		if n.Status != "sent" || n.Deliveries[0].SentAt == nil || n.Deliveries[0].SentAt.Before(quietEnd) {
			t.Errorf("after the default quiet hours: %+v", n)
		}
		var got []string
		for _, m := range mail.Messages() {
			if m.Subject() == "Tenant quiet hours" {
				got = append(got, m.To...)
			}
		}
		if len(got) != 2 || got[0] != "beta-quiet@example.com" || got[1] != "default-quiet@example.com" {
			t.Errorf("messages in order of arrival: %v, want beta's first", got)
		}
	})
}
