package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/internal/smtptest"
	"github.com/pyairtable/automation-domain/rules"
)

// TestTenantClientIDs: the ids a client chooses (event ids, template ids, inbound source names)
// are each tenant's own — a second tenant takes an id the first has, and each reads its own;
// the seed templates are listed and read by every tenant, read-only, until it defines its own;
// rule-started work counts against the tenant's quotas; a rule's schedule keeps the tenant when
// updated; the audit log names what a create made.
func TestTenantClientIDs(t *testing.T) {
	mail := smtptest.Start(t)
	s := startEmbedded(t, testConfig(t, t.TempDir(), webhookEnv(map[string]string{
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false", "SMTP_FROM": "ops@example.com"})))
	admin := s.client(t)
	s.createTenants(t, "acme", "beta")
	as := s.as

	t.Run("an event id taken by one tenant is another's too, and so is its webhook message", func(t *testing.T) {
		acme, beta := as(t, "acme"), as(t, "beta")
		rcA, rcB := newReceiver(t, nil), newReceiver(t, nil)
		createEndpoint(t, acme, map[string]any{"name": "a", "url": rcA.URL(), "event_types": []string{"same.*"}})
		createEndpoint(t, beta, map[string]any{"name": "b", "url": rcB.URL(), "event_types": []string{"same.*"}})
		postEvent(t, acme, map[string]any{"id": "evt-same-1", "type": "same.acme", "data": map[string]any{"who": "acme"}})
		if r := beta.post("/api/v1/events", map[string]any{"id": "evt-same-1", "type": "same.beta", "data": map[string]any{"who": "beta"}}); r.Status != 202 {
			t.Fatalf("beta's event with acme's id: %d %s", r.Status, r.Body)
		} else if got := r.JSON(t); got["type"] != "same.beta" {
			t.Fatalf("beta's event with acme's id answered %s", r.Body)
		}
		for c, want := range map[*call]string{acme: "same.acme", beta: "same.beta"} {
			if got := c.get("/api/v1/events/evt-same-1").JSON(t); got["type"] != want {
				t.Errorf("%s reads evt-same-1: %v, want its own %s", c.header.Get("X-Tenant-ID"), got, want)
			}
		}
		for rc, who := range map[*receiver]string{rcA: "acme", rcB: "beta"} {
			eventually(t, 30*time.Second, who+"'s receiver to get its event", func() bool { return rc.count() > 0 })
			for _, got := range rc.receipts() {
				if got.MessageID() != "evt-same-1" || !strings.Contains(string(got.Body), `"who":"`+who+`"`) {
					t.Errorf("%s's receiver got %s %s", who, got.MessageID(), got.Body)
				}
			}
		}
	})

	t.Run("seed templates are every tenant's to list and read, not to change, until it defines its own", func(t *testing.T) {
		acme, beta := as(t, "acme"), as(t, "beta")
		listed := func(c *call) map[string]string {
			var page struct {
				Items []struct {
					ID      string `json:"id"`
					Subject string `json:"subject"`
				} `json:"items"`
			}
			c.get("/api/v1/notifications/templates?limit=100").Decode(t, &page)
			out := map[string]string{}
			for _, it := range page.Items {
				if _, dup := out[it.ID]; dup {
					t.Errorf("%s lists %s twice", c.header.Get("X-Tenant-ID"), it.ID)
				}
				out[it.ID] = it.Subject
			}
			return out
		}
		has := func(m map[string]string, k string) bool { _, ok := m[k]; return ok }
		seedSubject := admin.get("/api/v1/notifications/templates/welcome_email").JSON(t)["subject"]
		if got := listed(beta); got["welcome_email"] != seedSubject || !has(got, "verification_sms") {
			t.Fatalf("beta's templates: %v, want the two seeds", got)
		}
		if r := beta.get("/api/v1/notifications/templates/welcome_email"); r.Status != 200 || r.JSON(t)["subject"] != seedSubject {
			t.Errorf("beta reads the seed: %d %s", r.Status, r.Body)
		}
		if r := beta.do("PUT", "/api/v1/notifications/templates/welcome_email", map[string]any{"subject": "Mine", "body": "mine"}); r.Status != 404 {
			t.Errorf("beta changes the seed: %d %s, want 404", r.Status, r.Body)
		}
		if r := beta.do("DELETE", "/api/v1/notifications/templates/verification_sms", nil); r.Status != 404 {
			t.Errorf("beta deletes a seed: %d %s, want 404", r.Status, r.Body)
		}
		r := beta.post("/api/v1/notifications/templates", map[string]any{"id": "welcome_email", "channel": "email",
			"subject": "Beta welcomes {{ user_name }}", "body": "Hello {{ user_name }} from beta"})
		if r.Status != 201 {
			t.Fatalf("beta's own welcome_email: %d %s", r.Status, r.Body)
		}
		if got := listed(beta); got["welcome_email"] != "Beta welcomes {{ user_name }}" || !has(got, "verification_sms") {
			// its own, and the seed verification_sms it has none of
			t.Errorf("beta's templates after defining welcome_email: %v", got)
		}
		if got := listed(acme); got["welcome_email"] != seedSubject {
			t.Errorf("acme's templates: %v, want the seed's welcome_email", got)
		}
		if got := admin.get("/api/v1/notifications/templates/welcome_email").JSON(t)["subject"]; got != seedSubject {
			t.Errorf("the seed after beta defined its own: %v", got)
		}
		// beta's sends render its own; acme's the seed.
		for c, want := range map[*call]string{beta: "Beta welcomes Bo", acme: ""} {
			to := c.header.Get("X-Tenant-ID") + "-welcome@example.com"
			if r := c.post("/api/v1/notifications/email", map[string]any{"to": []string{to}, "template_id": "welcome_email",
				"template_data": map[string]any{"user_name": "Bo", "app_name": "X"}}); r.Status != 202 {
				t.Fatalf("send with welcome_email: %d %s", r.Status, r.Body)
			}
			eventually(t, 30*time.Second, "the mail to "+to, func() bool { return len(messagesTo(mail, to)) > 0 })
			got := messagesTo(mail, to)[0].Subject()
			if want != "" && got != want || want == "" && strings.Contains(got, "Beta") {
				t.Errorf("%s's welcome mail subject %q", c.header.Get("X-Tenant-ID"), got)
			}
		}
		// A tenant's own template id is another's to take.
		if r := acme.post("/api/v1/notifications/templates", map[string]any{"id": "shared_name", "channel": "sms", "body": "acme"}); r.Status != 201 {
			t.Fatalf("acme's template: %d %s", r.Status, r.Body)
		}
		if r := beta.post("/api/v1/notifications/templates", map[string]any{"id": "shared_name", "channel": "sms", "body": "beta"}); r.Status != 201 {
			t.Errorf("beta's template with acme's id: %d %s", r.Status, r.Body)
		}
		if r := beta.post("/api/v1/notifications/templates", map[string]any{"id": "shared_name", "channel": "sms", "body": "again"}); r.Status != 409 {
			t.Errorf("beta's template id twice: %d %s, want 409", r.Status, r.Body)
		}
		if got := acme.get("/api/v1/notifications/templates/shared_name").JSON(t)["body"]; got != "acme" {
			t.Errorf("acme's shared_name: %v", got)
		}
	})

	t.Run("inbound source names are per tenant", func(t *testing.T) {
		acme, beta := as(t, "acme"), as(t, "beta")
		ra := acme.post("/api/v1/webhooks/sources", map[string]any{"name": "stripe", "event_type_path": "type"})
		rb := beta.post("/api/v1/webhooks/sources", map[string]any{"name": "stripe", "event_type_path": "type"})
		if ra.Status != 201 || rb.Status != 201 {
			t.Fatalf("sources named stripe: acme %d %s, beta %d %s", ra.Status, ra.Body, rb.Status, rb.Body)
		}
		srcA, srcB := ra.JSON(t), rb.JSON(t)
		if r := beta.post("/api/v1/webhooks/sources", map[string]any{"name": "stripe"}); r.Status != 422 {
			t.Errorf("beta's second stripe: %d %s, want 422", r.Status, r.Body)
		}
		if got := beta.get("/api/v1/webhooks/sources/stripe").JSON(t)["id"]; got != srcB["id"] {
			t.Errorf("beta's stripe is %v, want %v", got, srcB["id"])
		}
		pathB := srcB["inbound_path"].(string)
		if pathB != "/api/v1/webhooks/inbound/"+srcB["id"].(string) {
			t.Errorf("beta's inbound path %q does not name its source's id", pathB)
		}
		sender := &call{t: t, base: s.URL, header: http.Header{}}
		for src, path := range map[string]string{"acme": srcA["inbound_path"].(string), "beta": pathB} {
			secret := map[string]map[string]any{"acme": srcA, "beta": srcB}[src]["secret"].(string)
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			body := `{"type":"charge.` + src + `"}`
			now := time.Now()
			sig, err := wh.Sign("msg_same", now, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			r := sender.post(path, body, "webhook-id", "msg_same", "webhook-timestamp", strconv.FormatInt(now.Unix(), 10), "webhook-signature", sig)
			if r.Status != 202 {
				t.Fatalf("%s's inbound webhook at %s: %d %s", src, path, r.Status, r.Body)
			}
			eventID := r.JSON(t)["event_id"].(string)
			owner, other := as(t, src), as(t, map[string]string{"acme": "beta", "beta": "acme"}[src])
			if got := owner.get("/api/v1/events/" + eventID).JSON(t); got["type"] != "charge."+src {
				t.Errorf("%s's inbound event: %v", src, got)
			}
			if r := other.get("/api/v1/events/" + eventID); r.Status != 404 {
				t.Errorf("%s's inbound event read by the other tenant: %d", src, r.Status)
			}
		}
	})

	t.Run("rule-started workflow executions count against executions_per_day", func(t *testing.T) {
		beta := as(t, "beta")
		wf := beta.post("/api/v1/workflows", map[string]any{"name": "quota-flow", "trigger_type": "manual",
			"steps": []any{map[string]any{"id": "a", "type": "data_transform", "config": map[string]any{"mapping": map[string]any{"x": "1"}}}}})
		if wf.Status != 201 {
			t.Fatalf("workflow: %d %s", wf.Status, wf.Body)
		}
		wfID := wf.JSON(t)["id"].(string)
		var used struct {
			Items []any `json:"items"`
		}
		beta.get("/api/v1/executions?limit=100").Decode(t, &used)
		limit := len(used.Items) + 1
		if r := admin.do("PATCH", "/api/v1/tenants/beta", map[string]any{"limits": map[string]any{"executions_per_day": limit}}); r.Status != 200 {
			t.Fatalf("beta's limits: %d %s", r.Status, r.Body)
		}
		rule := createRule(t, beta, map[string]any{"name": "quota-rule", "trigger": map[string]any{"type": "event", "event_type": "quota.tick"},
			"actions": []any{map[string]any{"type": "workflow", "workflow_id": wfID}}})
		first := executionFor(t, beta, rule, postEvent(t, beta, map[string]any{"type": "quota.tick"}))
		if first.Status != "succeeded" {
			t.Fatalf("the rule's first run: %+v", first)
		}
		// The rule took the last execution of the day: the API refuses the next one...
		if r := beta.post("/api/v1/workflows/"+wfID+"/execute", map[string]any{}); r.Status != 403 || !strings.Contains(string(r.Body), "executions_per_day") {
			t.Errorf("execute past the quota the rule used up: %d %s, want 403 naming executions_per_day", r.Status, r.Body)
		}
		// ...and so is the rule's next run.
		second := executionFor(t, beta, rule, postEvent(t, beta, map[string]any{"type": "quota.tick"}))
		if second.Status != "failed" || len(second.Actions) != 1 || !strings.Contains(second.Actions[0].Error, "executions_per_day") {
			t.Errorf("the rule's run past the quota: %+v", second)
		}
		// acme is not held back by beta's quota.
		acme := as(t, "acme")
		wa := acme.post("/api/v1/workflows", map[string]any{"name": "acme-flow", "trigger_type": "manual",
			"steps": []any{map[string]any{"id": "a", "type": "data_transform", "config": map[string]any{"mapping": map[string]any{"x": "1"}}}}})
		if r := acme.post("/api/v1/workflows/"+wa.JSON(t)["id"].(string)+"/execute", map[string]any{}); r.Status != 202 {
			t.Errorf("acme's execution while beta is at its quota: %d %s", r.Status, r.Body)
		}
		if r := admin.do("PATCH", "/api/v1/tenants/beta", map[string]any{"limits": map[string]any{}}); r.Status != 200 {
			t.Fatalf("beta's limits lifted: %d %s", r.Status, r.Body)
		}
	})

	t.Run("a rule's schedule keeps its tenant when the rule is updated", func(t *testing.T) {
		beta := as(t, "beta")
		body := func(cron string) map[string]any {
			return map[string]any{"name": "beta-tick", "trigger": map[string]any{"type": "schedule", "cron": cron},
				"actions": []any{map[string]any{"type": "emit_event", "event_type": "beta.tick"}}}
		}
		id := createRule(t, beta, body("0 3 * * *"))
		if r := beta.do("PUT", "/api/v1/automation/rules/"+id, body("0 4 * * *")); r.Status != 200 {
			t.Fatalf("update the rule: %d %s", r.Status, r.Body)
		}
		desc, err := s.Temporal.ScheduleClient().GetHandle(context.Background(), rules.ScheduleID(id)).Describe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
		if !ok || !strings.HasPrefix(action.ID, "beta/") {
			t.Fatalf("the updated schedule's action %+v does not carry the tenant", desc.Schedule.Action)
		}
		if got, ok := action.TypedSearchAttributes.GetKeyword(engine.SearchTenantID); !ok || got != "beta" {
			t.Errorf("the updated schedule's TenantId %q %v", got, ok)
		}
		if spec := desc.Schedule.Spec; spec == nil || len(spec.Calendars)+len(spec.CronExpressions) == 0 {
			t.Errorf("the updated schedule's spec %+v", spec)
		}
		beta.do("DELETE", "/api/v1/automation/rules/"+id, nil)
	})

	t.Run("the audit log names what a create made", func(t *testing.T) {
		acme := as(t, "acme")
		ep := createEndpoint(t, acme, map[string]any{"name": "audited", "url": newReceiver(t, nil).URL(), "event_types": []string{"*"}})
		var page struct {
			Items []struct {
				Action     string `json:"action"`
				ResourceID string `json:"resource_id"`
			} `json:"items"`
		}
		acme.get("/api/v1/audit-log?limit=100").Decode(t, &page)
		found := false
		for _, e := range page.Items {
			if e.Action == "POST /api/v1/webhooks/endpoints" && e.ResourceID == ep {
				found = true
			}
			if strings.HasPrefix(e.Action, "POST /api/v1/") && !strings.Contains(e.Action, ":") && e.ResourceID == "" {
				t.Errorf("audit entry of a create without its resource id: %+v", e)
			}
		}
		if !found {
			t.Errorf("no audit entry names endpoint %s: %+v", ep, page.Items)
		}
	})
}
