package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/smtptest"
)

// TestNotificationsPreferences drives subscribers, preferences, one-click unsubscribe (RFC 8058)
// and the suppression list over HTTP against a real SMTP server: a bulk email carries valid
// List-Unsubscribe headers, POSTing its link opts the subscriber out and the next send in that
// category is skipped with the reason; a 550 at send time and a posted bounce report suppress
// addresses; transactional categories are always sent; two tenants keep their own lists.
func TestNotificationsPreferences(t *testing.T) {
	mail := smtptest.Start(t)
	mail.SetResponder(func(rcpt string, _ int) error {
		if strings.HasPrefix(rcpt, "hardbounce@") {
			return smtptest.Permanent()
		}
		return nil
	})
	cfg := testConfig(t, t.TempDir(), map[string]string{
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"SMTP_FROM": "Automation <noreply@example.com>", "SMTP_RATE_PER_SECOND": "200",
		"NOTIFICATION_RETRY_INITIAL_INTERVAL": "200ms", "NOTIFICATION_RETRY_MAX_INTERVAL": "1s",
		"RATE_LIMIT_PER_SECOND": "500", "RATE_LIMIT_BURST": "500",
	})
	s := startEmbedded(t, cfg)
	s.createTenants(t, "acme", "beta")
	as := s.as
	send := func(t *testing.T, c *call, body map[string]any) notificationReply {
		t.Helper()
		r := c.post("/api/v1/notifications/email", body)
		if r.Status != 202 {
			t.Fatalf("send %v: %d %s", body, r.Status, r.Body)
		}
		var n notificationReply
		r.Decode(t, &n)
		return c.waitNotification(n.ID, 30*time.Second, "sent", "failed", "skipped", "partially_failed")
	}

	var subID string
	t.Run("subscribers CRUD with validation, conflicts and 404s", func(t *testing.T) {
		c := as(t, "acme")
		r := c.post("/api/v1/subscribers", map[string]any{"external_id": "user-1", "email": "Ada@Example.com",
			"phone": "+14155550100", "time_zone": "Europe/London", "locale": "en-GB", "data": map[string]any{"plan": "pro"}})
		if r.Status != 201 || r.Header.Get("Location") == "" {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		sub := r.JSON(t)
		subID = sub["id"].(string)
		if sub["email"] != "ada@example.com" || sub["time_zone"] != "Europe/London" || sub["data"].(map[string]any)["plan"] != "pro" {
			t.Errorf("created: %v", sub)
		}
		if r := c.post("/api/v1/subscribers", map[string]any{"external_id": "user-1"}); r.Status != 409 {
			t.Errorf("duplicate external id: %d %s", r.Status, r.Body)
		}
		r = c.post("/api/v1/subscribers", map[string]any{"email": "nope", "phone": "555", "time_zone": "Mars/Olympus"})
		if r.Status != 422 {
			t.Fatalf("invalid: %d %s", r.Status, r.Body)
		}
		for _, field := range []string{`"external_id"`, `"email"`, `"phone"`, `"time_zone"`} {
			if !strings.Contains(string(r.Body), field) {
				t.Errorf("422 does not name %s: %s", field, r.Body)
			}
		}
		if r := c.post("/api/v1/subscribers", "{not json"); r.Status != 400 {
			t.Errorf("bad JSON: %d %s", r.Status, r.Body)
		}
		if got := c.get("/api/v1/subscribers/user-1").JSON(t); got["id"] != subID {
			t.Errorf("by external id: %v", got)
		}
		r = c.do("PATCH", "/api/v1/subscribers/"+subID, map[string]any{"locale": "fr-FR"})
		if r.Status != 200 || r.JSON(t)["locale"] != "fr-FR" || r.JSON(t)["email"] != "ada@example.com" {
			t.Errorf("patch: %d %s", r.Status, r.Body)
		}
		if r := c.get("/api/v1/subscribers"); r.Status != 200 || !strings.Contains(string(r.Body), subID) {
			t.Errorf("list: %d %s", r.Status, r.Body)
		}
		tmp := c.post("/api/v1/subscribers", map[string]any{"external_id": "temp"}).JSON(t)["id"].(string)
		if r := c.do("DELETE", "/api/v1/subscribers/"+tmp, nil); r.Status != 204 {
			t.Errorf("delete: %d %s", r.Status, r.Body)
		}
		if r := c.get("/api/v1/subscribers/" + tmp); r.Status != 404 {
			t.Errorf("deleted: %d %s", r.Status, r.Body)
		}
		// Another tenant's subscriber is a 404.
		if r := as(t, "beta").get("/api/v1/subscribers/" + subID); r.Status != 404 {
			t.Errorf("beta reads acme's subscriber: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/notifications/email", map[string]any{"subscriber_ids": []string{"nobody-here"}, "subject": "s", "body": "b"}); r.Status != 422 ||
			!strings.Contains(string(r.Body), "subscriber_ids[0]") {
			t.Errorf("unknown subscriber: %d %s", r.Status, r.Body)
		}
	})

	var unsubscribeURL string
	t.Run("a bulk email to a subscriber carries valid RFC 8058 headers", func(t *testing.T) {
		c := as(t, "acme")
		n := send(t, c, map[string]any{"subscriber_ids": []string{"user-1"}, "category": "news", "subject": "News", "body": "This week"})
		if n.Status != "sent" || len(n.Deliveries) != 1 || n.Deliveries[0].Recipient != "ada@example.com" {
			t.Fatalf("sent: %+v", n)
		}
		msgs := messagesTo(mail, "ada@example.com")
		if len(msgs) != 1 {
			t.Fatalf("messages to ada: %d", len(msgs))
		}
		h := msgs[0].Header
		if h.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
			t.Errorf("List-Unsubscribe-Post: %q", h.Get("List-Unsubscribe-Post"))
		}
		// RFC 2369/8058: a list of <URI>s, one of them HTTP(S) for the one-click POST, and a mailto.
		lu := h.Get("List-Unsubscribe")
		uris := regexp.MustCompile(`<([^>]+)>`).FindAllStringSubmatch(lu, -1)
		var mailto string
		for _, u := range uris {
			switch {
			case strings.HasPrefix(u[1], "http"):
				unsubscribeURL = u[1]
			case strings.HasPrefix(u[1], "mailto:unsubscribe@example.com?subject="):
				mailto = u[1]
			}
		}
		if unsubscribeURL == "" || mailto == "" || !strings.Contains(unsubscribeURL, "/api/v1/unsubscribe/") {
			t.Fatalf("List-Unsubscribe %q", lu)
		}
	})

	t.Run("POSTing the unsubscribe link opts out and the next send in that category is skipped", func(t *testing.T) {
		if unsubscribeURL == "" {
			t.Skip("no link")
		}
		u, err := url.Parse(unsubscribeURL)
		if err != nil {
			t.Fatal(err)
		}
		anon := &call{t: t, base: s.URL, header: http.Header{}}
		// GET shows a confirmation page and changes nothing.
		page := anon.get(u.Path)
		if page.Status != 200 || !strings.Contains(string(page.Body), "<form method=\"post\">") || !strings.Contains(string(page.Body), "ada@example.com") {
			t.Errorf("confirmation page: %d %s", page.Status, page.Body)
		}
		c := as(t, "acme")
		if prefs := c.get("/api/v1/subscribers/user-1").JSON(t)["preferences"]; prefs != nil {
			t.Errorf("GET unsubscribed already: %v", prefs)
		}
		// The one-click POST (RFC 8058 §3.2): no credentials, the body List-Unsubscribe=One-Click.
		r := anon.do("POST", u.Path, "List-Unsubscribe=One-Click", "Content-Type", "application/x-www-form-urlencoded")
		if r.Status != 200 || !strings.Contains(string(r.Body), "Unsubscribed") {
			t.Fatalf("one-click POST: %d %s", r.Status, r.Body)
		}
		// A forged or tampered link is refused.
		if r := anon.do("POST", u.Path+"x", "List-Unsubscribe=One-Click", "Content-Type", "application/x-www-form-urlencoded"); r.Status != 404 {
			t.Errorf("tampered link: %d %s", r.Status, r.Body)
		}
		prefs, _ := c.get("/api/v1/subscribers/user-1").JSON(t)["preferences"].([]any)
		if len(prefs) != 1 || prefs[0].(map[string]any)["category"] != "news" || prefs[0].(map[string]any)["enabled"] != false ||
			prefs[0].(map[string]any)["source"] != "unsubscribe" {
			t.Errorf("preferences after unsubscribe: %v", prefs)
		}
		before := len(messagesTo(mail, "ada@example.com"))
		n := send(t, c, map[string]any{"subscriber_ids": []string{subID}, "category": "news", "subject": "News 2", "body": "b"})
		if n.Status != "skipped" || n.Deliveries[0].Status != "skipped" || n.Deliveries[0].ErrorCode != "opted_out" ||
			!strings.Contains(n.Deliveries[0].Error, "news") {
			t.Errorf("after unsubscribe: %+v", n)
		}
		// Another category still arrives; a transactional one too, without List-Unsubscribe.
		if r := c.post("/api/v1/notification-categories", map[string]any{"id": "security", "transactional": true}); r.Status != 201 {
			t.Fatalf("category: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/notification-categories", map[string]any{"id": "security"}); r.Status != 409 {
			t.Errorf("duplicate category: %d %s", r.Status, r.Body)
		}
		r = c.do("PUT", "/api/v1/subscribers/"+subID+"/preferences", map[string]any{"preferences": []any{
			map[string]any{"channel": "", "category": "", "enabled": false}}})
		if r.Status != 200 {
			t.Fatalf("opt out of everything: %d %s", r.Status, r.Body)
		}
		if r := c.do("PUT", "/api/v1/subscribers/"+subID+"/preferences", map[string]any{"preferences": []any{
			map[string]any{"channel": "fax", "category": "Bad Name"}}}); r.Status != 422 ||
			!strings.Contains(string(r.Body), "preferences[0].channel") || !strings.Contains(string(r.Body), "preferences[0].enabled") {
			t.Errorf("invalid preferences: %d %s", r.Status, r.Body)
		}
		n = send(t, c, map[string]any{"subscriber_ids": []string{subID}, "category": "security", "subject": "Your code", "body": "123456"})
		if n.Status != "sent" {
			t.Errorf("transactional send: %+v", n)
		}
		n = send(t, c, map[string]any{"subscriber_ids": []string{subID}, "category": "other", "subject": "Other", "body": "b"})
		if n.Status != "skipped" || !strings.Contains(n.Deliveries[0].Error, "every notification") {
			t.Errorf("opted out of everything: %+v", n)
		}
		msgs := messagesTo(mail, "ada@example.com")
		if len(msgs) != before+1 || msgs[len(msgs)-1].Subject() != "Your code" || msgs[len(msgs)-1].Header.Get("List-Unsubscribe") != "" {
			t.Errorf("after opting out: %d messages (before %d), last %v", len(msgs), before, msgs[len(msgs)-1].Header)
		}
		eventually(t, 10*time.Second, "acme's notification.skipped events", func() bool {
			var page struct {
				Items []map[string]any `json:"items"`
			}
			c.get("/api/v1/events?type=notification.skipped").Decode(t, &page)
			return len(page.Items) >= 2
		})
	})

	t.Run("a 550 at send time suppresses the address and later sends are skipped", func(t *testing.T) {
		c := as(t, "acme")
		n := send(t, c, map[string]any{"to": []string{"hardbounce@example.com"}, "subject": "s", "body": "b"})
		if n.Status != "failed" || n.Deliveries[0].ErrorCode != "550 5.1.1" {
			t.Fatalf("550: %+v", n)
		}
		var page struct {
			Items []map[string]any `json:"items"`
		}
		c.get("/api/v1/suppressions?channel=email&address=HardBounce@example.com").Decode(t, &page)
		if len(page.Items) != 1 || page.Items[0]["reason"] != "hard_bounce" || page.Items[0]["source"] != "smtp" ||
			!strings.Contains(page.Items[0]["detail"].(string), "550") {
			t.Fatalf("suppressions: %+v", page)
		}
		n = send(t, c, map[string]any{"to": []string{"hardbounce@example.com", "ok@example.com"}, "subject": "s", "body": "b"})
		if n.Status != "sent" || n.Deliveries[0].Status != "skipped" || n.Deliveries[0].ErrorCode != "suppressed" ||
			!strings.Contains(n.Deliveries[0].Error, "hard_bounce") || n.Deliveries[1].Status != "sent" || mail.RcptCount("hardbounce@example.com") != 1 {
			t.Errorf("after suppression: %+v (rcpt %d)", n, mail.RcptCount("hardbounce@example.com"))
		}
		// The other tenant's list is its own: the address is sent to there (and bounces there).
		beta := as(t, "beta")
		if r := beta.get("/api/v1/suppressions"); r.Status != 200 || strings.Contains(string(r.Body), "hardbounce@") {
			t.Errorf("beta's suppressions: %d %s", r.Status, r.Body)
		}
		if bn := send(t, beta, map[string]any{"to": []string{"hardbounce@example.com"}, "subject": "s", "body": "b"}); bn.Deliveries[0].ErrorCode != "550 5.1.1" {
			t.Errorf("beta's send: %+v", bn)
		}
		if r := beta.do("DELETE", "/api/v1/suppressions/email/ok@example.com", nil); r.Status != 404 {
			t.Errorf("delete unknown: %d %s", r.Status, r.Body)
		}
		if r := c.do("DELETE", "/api/v1/suppressions/email/hardbounce@example.com", nil); r.Status != 204 {
			t.Errorf("delete: %d %s", r.Status, r.Body)
		}
		if r := c.get("/api/v1/suppressions?channel=email&address=hardbounce@example.com"); strings.Contains(string(r.Body), "hardbounce@") {
			t.Errorf("deleted suppression listed: %s", r.Body)
		}
	})

	t.Run("a posted bounce report (SNS/SES or generic) suppresses its addresses", func(t *testing.T) {
		c := as(t, "acme")
		sns := map[string]any{"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:eu-west-1:1:ses",
			"Message": `{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",` +
				`"bouncedRecipients":[{"emailAddress":"gone@example.com","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]},` +
				`"mail":{"messageId":"x"}}`}
		r := c.post("/api/v1/notifications/providers/bounces", sns)
		if r.Status != 200 || r.JSON(t)["format"] != "sns" || len(r.JSON(t)["suppressed"].([]any)) != 1 {
			t.Fatalf("SNS bounce: %d %s", r.Status, r.Body)
		}
		transient := `{"notificationType":"Bounce","bounce":{"bounceType":"Transient","bouncedRecipients":[{"emailAddress":"full@example.com"}]}}`
		if r := c.post("/api/v1/notifications/providers/bounces", transient); r.Status != 200 || r.JSON(t)["ignored"] != 1.0 {
			t.Errorf("transient bounce: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/notifications/providers/bounces", map[string]any{"type": "complaint", "recipients": []string{"angry@example.com"}}); r.Status != 200 ||
			r.JSON(t)["format"] != "generic" {
			t.Errorf("generic complaint: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/notifications/providers/bounces", map[string]any{"type": "weird"}); r.Status != 422 {
			t.Errorf("invalid report: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/notifications/providers/bounces", "{oops"); r.Status != 400 {
			t.Errorf("bad JSON: %d %s", r.Status, r.Body)
		}
		n := send(t, c, map[string]any{"to": []string{"gone@example.com", "angry@example.com", "full@example.com"}, "subject": "s", "body": "b"})
		if n.Deliveries[0].Status != "skipped" || n.Deliveries[1].Status != "skipped" || n.Deliveries[2].Status != "sent" ||
			!strings.Contains(n.Deliveries[1].Error, "complaint") || len(messagesTo(mail, "gone@example.com")) != 0 {
			t.Errorf("after reports: %+v", n)
		}
		// beta's sends to the same address are not affected.
		if bn := send(t, as(t, "beta"), map[string]any{"to": []string{"gone@example.com"}, "subject": "s", "body": "b"}); bn.Status != "sent" {
			t.Errorf("beta to gone@: %+v", bn)
		}
	})
}
