package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/smtptest"
	"github.com/pyairtable/automation-domain/internal/twiliotest"
)

// TestNotificationsDigest drives digests over HTTP against a real SMTP server and the Twilio
// fake: three notifications in a digested category within its window arrive as one email
// listing the three, rendered with the category's template, while each shows its hold; another
// tenant's digest is its own and rendered as the default list; a critical notification is not
// held; an SMS digest lists its items; invalid digest settings are 422s naming their fields.
func TestNotificationsDigest(t *testing.T) {
	mail := smtptest.Start(t)
	fake := twiliotest.Start(t)
	cfg := testConfig(t, t.TempDir(), map[string]string{
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"SMTP_FROM": "Automation <noreply@example.com>", "SMTP_RATE_PER_SECOND": "200",
		"TWILIO_ACCOUNT_SID": twiliotest.AccountSID, "TWILIO_AUTH_TOKEN": twiliotest.AuthToken,
		"TWILIO_FROM_NUMBER": twiliotest.From, "TWILIO_API_URL": fake.URL,
		"RATE_LIMIT_PER_SECOND": "500", "RATE_LIMIT_BURST": "500",
	})
	s := startEmbedded(t, cfg)
	s.createTenants(t, "acme", "beta")
	as := s.as
	post := func(t *testing.T, c *call, path string, body map[string]any) string {
		t.Helper()
		r := c.post(path, body)
		if r.Status != 202 {
			t.Fatalf("send %v: %d %s", body, r.Status, r.Body)
		}
		return r.JSON(t)["id"].(string)
	}
	const window = 3 * time.Second

	t.Run("invalid digest settings are 422s naming each field", func(t *testing.T) {
		c := as(t, "acme")
		for _, bad := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"id": "x1", "digest": map[string]any{"window": "1h", "until": "09:00"}}, `"digest"`},
			{map[string]any{"id": "x2", "digest": map[string]any{"window": "soon"}}, `"digest.window"`},
			{map[string]any{"id": "x3", "digest": map[string]any{"until": "25:61"}}, `"digest.until"`},
			{map[string]any{"id": "x4", "transactional": true, "digest": map[string]any{"window": "1h"}}, `"digest"`},
			{map[string]any{"id": "x5", "digest": map[string]any{"window": "1h", "template_id": "no_such_template"}}, `"digest.template_id"`},
			{map[string]any{"id": "x6", "digest": map[string]any{"window": "1h", "template_id": "verification_sms"}}, `"digest.template_id"`},
		} {
			r := c.post("/api/v1/notification-categories", bad.body)
			if r.Status != 422 || !strings.Contains(string(r.Body), bad.field) {
				t.Errorf("%v: %d %s", bad.body, r.Status, r.Body)
			}
		}
	})

	// acme: a template for its digest, a digested category, a subscriber with email and phone.
	setup := t.Run("a digested category and its template", func(t *testing.T) {
		c := as(t, "acme")
		if r := c.post("/api/v1/notifications/templates", map[string]any{"id": "updates_digest", "channel": "email",
			"subject": "{{ count }} updates for {{ subscriber.external_id }}",
			"body":    "{% for it in items %}* {{ it.subject }}: {{ it.body }}\n{% endfor %}"}); r.Status != 201 {
			t.Fatalf("template: %d %s", r.Status, r.Body)
		}
		r := c.post("/api/v1/notification-categories", map[string]any{"id": "updates",
			"digest": map[string]any{"window": window.String(), "template_id": "updates_digest"}})
		if r.Status != 201 {
			t.Fatalf("category: %d %s", r.Status, r.Body)
		}
		if d, _ := r.JSON(t)["digest"].(map[string]any); d["window_seconds"] != float64(3) || d["template_id"] != "updates_digest" {
			t.Errorf("category digest: %s", r.Body)
		}
		if r := c.post("/api/v1/notification-categories", map[string]any{"id": "texts", "digest": map[string]any{"window_seconds": 3}}); r.Status != 201 {
			t.Fatalf("sms category: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/subscribers", map[string]any{"external_id": "ada", "email": "ada@example.com", "phone": "+14155550123"}); r.Status != 201 {
			t.Fatalf("subscriber: %d %s", r.Status, r.Body)
		}
		b := as(t, "beta")
		if r := b.post("/api/v1/notification-categories", map[string]any{"id": "updates", "digest": map[string]any{"window": window.String()}}); r.Status != 201 {
			t.Fatalf("beta category: %d %s", r.Status, r.Body)
		}
		if r := b.post("/api/v1/subscribers", map[string]any{"external_id": "ada", "email": "ada@beta.example"}); r.Status != 201 {
			t.Fatalf("beta subscriber: %d %s", r.Status, r.Body)
		}
	})
	if !setup {
		return
	}

	t.Run("three notifications within the window arrive as one email listing the three", func(t *testing.T) {
		c, b := as(t, "acme"), as(t, "beta")
		var ids []string
		for i := 1; i <= 3; i++ {
			ids = append(ids, post(t, c, "/api/v1/notifications/email", map[string]any{"subscriber_ids": []string{"ada"},
				"category": "updates", "subject": fmt.Sprintf("Update %d", i), "body": fmt.Sprintf("body %d", i)}))
		}
		betaID := post(t, b, "/api/v1/notifications/email", map[string]any{"subscriber_ids": []string{"ada"},
			"category": "updates", "subject": "Beta news", "body": "only for beta"})
		// A critical one in the same category is not held.
		critical := post(t, c, "/api/v1/notifications/email", map[string]any{"subscriber_ids": []string{"ada"},
			"category": "updates", "priority": "critical", "subject": "Urgent", "body": "now"})
		if n := c.waitNotification(critical, 15*time.Second, "sent", "failed"); n.Status != "sent" {
			t.Errorf("critical: %+v", n)
		}

		var digestID, digestNotification string
		for _, id := range ids {
			n := c.waitNotification(id, 15*time.Second, "digested", "sent", "failed")
			d := n.Deliveries[0]
			if n.Status != "digested" || d.Status != "digested" || d.HeldReason != "digest" || d.HeldUntil == nil ||
				d.DigestID == "" || d.DigestNotificationID == "" {
				t.Fatalf("held notification: %+v", n)
			}
			if digestID != "" && (d.DigestID != digestID || d.DigestNotificationID != digestNotification) {
				t.Errorf("notifications in one window point at different digests: %s/%s and %s/%s", digestID, digestNotification, d.DigestID, d.DigestNotificationID)
			}
			digestID, digestNotification = d.DigestID, d.DigestNotificationID
		}
		if got := len(messagesTo(mail, "ada@example.com")); got != 1 {
			t.Errorf("emails to ada before the window closed: %d (want only the critical one)", got)
		}
		// The digest's own notification exists once the window closed, and is sent.
		var dn notificationReply
		eventually(t, window+20*time.Second, "the digest notification", func() bool {
			r := c.get("/api/v1/notifications/" + digestNotification)
			if r.Status != 200 {
				return false
			}
			r.Decode(t, &dn)
			return dn.Status == "sent"
		})
		if dn.TemplateID != "updates_digest" || dn.Subject != "3 updates for ada" || len(dn.Deliveries) != 1 || dn.Deliveries[0].Recipient != "ada@example.com" {
			t.Errorf("digest notification: %+v", dn)
		}
		msgs := messagesTo(mail, "ada@example.com")
		var digest *smtptest.Message
		for i := range msgs {
			if msgs[i].Subject() == "3 updates for ada" {
				digest = &msgs[i]
			}
		}
		if len(msgs) != 2 || digest == nil {
			t.Fatalf("emails to ada: %d, digest %v", len(msgs), digest != nil)
		}
		text := digest.Parts["text/plain"]
		for i := 1; i <= 3; i++ {
			if !strings.Contains(text, fmt.Sprintf("* Update %d: body %d", i, i)) {
				t.Errorf("digest lacks update %d:\n%s", i, text)
			}
		}
		if strings.Contains(text, "Beta") || strings.Contains(text, "Urgent") {
			t.Errorf("digest holds what is not its own:\n%s", text)
		}
		// beta's digest: its own window, the default rendering.
		bn := b.waitNotification(betaID, 15*time.Second, "digested")
		var bd notificationReply
		eventually(t, window+20*time.Second, "beta's digest", func() bool {
			r := b.get("/api/v1/notifications/" + bn.Deliveries[0].DigestNotificationID)
			if r.Status != 200 {
				return false
			}
			r.Decode(t, &bd)
			return bd.Status == "sent"
		})
		if bd.Subject != "Beta news" || !strings.Contains(bd.Body, "• Beta news\n  only for beta") {
			t.Errorf("beta's digest: %+v", bd)
		}
		if r := b.get("/api/v1/notifications/" + digestNotification); r.Status != 404 {
			t.Errorf("beta reads acme's digest: %d", r.Status)
		}
		// A notification after the window opens the next one.
		next := post(t, c, "/api/v1/notifications/email", map[string]any{"subscriber_ids": []string{"ada"},
			"category": "updates", "subject": "Update 4", "body": "body 4"})
		if d := c.waitNotification(next, 15*time.Second, "digested").Deliveries[0]; d.DigestID == digestID {
			t.Errorf("a notification after the close joined the closed window")
		}
	})

	t.Run("an SMS digest lists its notifications in one message", func(t *testing.T) {
		c := as(t, "acme")
		var ids []string
		for i := 1; i <= 3; i++ {
			ids = append(ids, post(t, c, "/api/v1/notifications/sms", map[string]any{"subscriber_ids": []string{"ada"},
				"category": "texts", "message": fmt.Sprintf("Text %d", i)}))
		}
		n := c.waitNotification(ids[0], 15*time.Second, "digested")
		eventually(t, window+20*time.Second, "the SMS digest", func() bool {
			r := c.get("/api/v1/notifications/" + n.Deliveries[0].DigestNotificationID)
			return r.Status == 200 && r.JSON(t)["status"] == "sent"
		})
		var bodies []string
		for _, r := range fake.Requests() {
			if r.To == "+14155550123" {
				bodies = append(bodies, r.Body)
			}
		}
		if len(bodies) != 1 || !strings.HasPrefix(bodies[0], "3 notifications:") || !strings.Contains(bodies[0], "- Text 3") {
			t.Errorf("SMS to ada: %q", bodies)
		}
	})
}

// TestNotificationsDigestSurvivesRestart: a digest window open when the service stops closes on
// time after it starts again, and its email lists what was held before the stop.
func TestNotificationsDigestSurvivesRestart(t *testing.T) {
	mail := smtptest.Start(t)
	dataDir := t.TempDir()
	env := map[string]string{
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"SMTP_FROM": "Automation <noreply@example.com>",
	}
	cfg := testConfig(t, dataDir, env)
	s := startEmbedded(t, cfg)
	c := s.client(t)
	if r := c.post("/api/v1/notification-categories", map[string]any{"id": "weekly", "digest": map[string]any{"window": "6s"}}); r.Status != 201 {
		t.Fatalf("category: %d %s", r.Status, r.Body)
	}
	if r := c.post("/api/v1/subscribers", map[string]any{"external_id": "grace", "email": "grace@example.com"}); r.Status != 201 {
		t.Fatalf("subscriber: %d %s", r.Status, r.Body)
	}
	var held deliveryReply
	for i := 1; i <= 2; i++ {
		r := c.post("/api/v1/notifications/email", map[string]any{"subscriber_ids": []string{"grace"}, "category": "weekly",
			"subject": fmt.Sprintf("Item %d", i), "body": "held across a restart"})
		if r.Status != 202 {
			t.Fatalf("send: %d %s", r.Status, r.Body)
		}
		held = c.waitNotification(r.JSON(t)["id"].(string), 15*time.Second, "digested").Deliveries[0]
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	env["TEMPORAL_PORT"] = fmt.Sprint(cfg.TemporalPort)
	s = startEmbedded(t, testConfig(t, dataDir, env))
	c = s.client(t)
	var dn notificationReply
	eventually(t, 60*time.Second, "the digest after the restart", func() bool {
		r := c.get("/api/v1/notifications/" + held.DigestNotificationID)
		if r.Status != 200 {
			return false
		}
		r.Decode(t, &dn)
		return dn.Status == "sent"
	})
	msgs := mail.Messages()
	if len(msgs) != 1 || msgs[0].Subject() != "Item 1 (and 1 more)" || !strings.Contains(msgs[0].Parts["text/plain"], "• Item 2") {
		t.Fatalf("emails after the restart: %d %+v", len(msgs), msgs)
	}
	if msgs[0].Received.Before(*held.HeldUntil) {
		t.Errorf("the digest went at %s, before its window closed at %s", msgs[0].Received, held.HeldUntil)
	}
}
