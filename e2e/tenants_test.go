package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/golang-jwt/jwt/v5"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/pyairtable/automation-domain/internal/smtptest"
)

// tenantIDs are tenant acme's resources that tenant beta probes.
type tenantIDs map[string]string

// TestTenantIsolation is issue 13's acceptance test: with two tenants and credentials of each
// kind (a tenant API key, a JWT, the internal key with X-Tenant-ID), every /api/v1 operation of
// the OpenAPI document is called with tenant beta's credentials against tenant acme's resources:
// each is a 404 (403 for the internal key's own operations), lists never show acme's items, and
// an event of acme's reaches acme's rules and receivers while beta's receivers get nothing.
func TestTenantIsolation(t *testing.T) {
	mail := smtptest.Start(t)
	s := startEmbedded(t, testConfig(t, t.TempDir(), webhookEnv(map[string]string{
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false", "SMTP_FROM": "ops@example.com"})))
	admin := s.client(t)
	for _, id := range []string{"acme", "beta"} {
		if r := admin.post("/api/v1/tenants", map[string]any{"id": id, "name": id}); r.Status != 201 {
			t.Fatalf("create tenant %s: %d %s", id, r.Status, r.Body)
		}
	}
	as := func(tenantID string) *call {
		c := s.client(t)
		c.header.Set("X-Tenant-ID", tenantID)
		return c
	}
	acme, beta := as("acme"), as("beta")
	rcA, rcB := newReceiver(t, nil), newReceiver(t, nil)
	ids := seedTenant(t, acme, rcA)
	if r := beta.post("/api/v1/webhooks/endpoints", map[string]any{"name": "beta-ep", "url": rcB.URL(), "event_types": []string{"*"}}); r.Status != 201 {
		t.Fatalf("beta's endpoint: %d %s", r.Status, r.Body)
	}

	// beta's credentials of each kind.
	r := beta.post("/api/v1/api-keys", map[string]any{"name": "beta-admin", "scopes": []string{"admin"}})
	if r.Status != 201 {
		t.Fatalf("beta's key: %d %s", r.Status, r.Body)
	}
	keyB := &call{t: t, base: s.URL, key: r.JSON(t)["key"].(string), header: http.Header{}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bob@beta", "tenant_id": "beta",
		"scope": "admin", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(s.Config.JWTSecretKey))
	if err != nil {
		t.Fatal(err)
	}
	jwtB := &call{t: t, base: s.URL, header: http.Header{"Authorization": {"Bearer " + tok}}}
	creds := map[string]*call{"tenant key": keyB, "jwt": jwtB, "internal key as beta": beta}

	var doc openapi3.T
	if err := json.Unmarshal(admin.get("/openapi.json").Body, &doc); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{([a-z_]+)\}`)
	var paths []string
	for p := range doc.Paths.Map() {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	probed := 0
	for name, c := range creds {
		t.Run(name, func(t *testing.T) {
			c.t = t
			for _, path := range paths {
				if !strings.HasPrefix(path, "/api/v1/") {
					continue
				}
				for method, op := range doc.Paths.Value(path).Operations() {
					if op.Security != nil && len(*op.Security) == 0 {
						continue // provider callbacks and inbound webhooks: authenticated by signatures
					}
					internalOnly := op.Extensions["x-internal-key-only"] == true
					if internalOnly && name == "internal key as beta" {
						continue // the internal key manages every tenant by design
					}
					missing := ""
					url := param.ReplaceAllStringFunc(path, func(m string) string {
						v := ids.forParam(path, param.FindStringSubmatch(m)[1])
						if v == "" {
							missing = m
						}
						return v
					})
					if missing != "" {
						t.Errorf("%s %s: acme has no resource for %s", method, path, missing)
						continue
					}
					op := fmt.Sprintf("%s %s", method, url)
					body := exampleBody(doc.Paths.Value(path).GetOperation(method))
					if b, ok := probeBodies[method+" "+path]; ok {
						body = b
					}
					r := c.do(method, url, body)
					probed++
					switch {
					case internalOnly:
						if r.Status != 403 {
							t.Errorf("%s (internal key only): %d %s", op, r.Status, r.Body)
						}
					case !strings.Contains(path, "{"):
						// No acme id in the path: lists must not show acme's items; creates act in beta.
						if method == "GET" {
							if r.Status != 200 {
								t.Errorf("%s: %d %s", op, r.Status, r.Body)
							}
							for kind, id := range ids {
								if id != "" && strings.Contains(string(r.Body), id) {
									t.Errorf("%s shows acme's %s %s: %s", op, kind, id, r.Body)
								}
							}
						}
					case r.Status != 404:
						t.Errorf("%s with beta's %s: %d, want 404: %s", op, name, r.Status, r.Body)
					}
				}
			}
		})
	}
	// A read-only key of beta's cannot write on any domain: 403 naming the scope.
	r = beta.post("/api/v1/api-keys", map[string]any{"name": "beta-ro", "scopes": []string{"workflows:read",
		"notifications:read", "webhooks:read", "events:read", "rules:read"}})
	if r.Status != 201 {
		t.Fatalf("beta's read-only key: %d %s", r.Status, r.Body)
	}
	ro := &call{t: t, base: s.URL, key: r.JSON(t)["key"].(string), header: http.Header{}}
	refused := map[string]bool{}
	for _, path := range paths {
		for method, op := range doc.Paths.Value(path).Operations() {
			scopes, _ := op.Extensions["x-required-scopes"].([]any)
			if len(scopes) != 1 || strings.HasSuffix(scopes[0].(string), ":read") {
				continue
			}
			need := scopes[0].(string)
			url := param.ReplaceAllStringFunc(path, func(m string) string { return ids.forParam(path, param.FindStringSubmatch(m)[1]) })
			r := ro.do(method, url, exampleBody(op))
			if r.Status != 403 || !strings.Contains(string(r.Body), `"insufficient_scope"`) || !strings.Contains(string(r.Body), need) {
				t.Errorf("%s %s with a read-only key: %d %s, want 403 naming %s", method, url, r.Status, r.Body, need)
			}
			refused[need] = true
		}
	}
	for _, sc := range []string{"workflows:write", "workflows:execute", "notifications:send", "templates:write",
		"webhooks:write", "events:write", "rules:write", "admin"} {
		if !refused[sc] {
			t.Errorf("no operation needing %s was tried with the read-only key", sc)
		}
	}

	if probed < 3*50 {
		t.Errorf("only %d operations probed", probed)
	}

	// acme's resources are intact after beta's attempts (deletes, pauses, revocations).
	for _, p := range []string{"/api/v1/workflows/" + ids["workflow"], "/api/v1/automation/rules/" + ids["rule"],
		"/api/v1/webhooks/endpoints/" + ids["endpoint"], "/api/v1/api-keys/" + ids["key"],
		"/api/v1/notifications/templates/" + ids["template"], "/api/v1/webhooks/sources/" + ids["source"]} {
		if r := acme.get(p); r.Status != 200 {
			t.Errorf("acme's %s after beta's probes: %d %s", p, r.Status, r.Body)
		}
	}
	if r := acme.get("/api/v1/api-keys/" + ids["key"]); r.JSON(t)["revoked_at"] != nil {
		t.Errorf("beta revoked acme's key: %s", r.Body)
	}

	// The installed seed template is acme's to use too.
	if r := acme.post("/api/v1/notifications/email", map[string]any{"to": []string{"ann@acme.example"}, "template_id": "welcome_email",
		"template_data": map[string]any{"user_name": "Ann", "app_name": "Acme"}}); r.Status != 202 {
		t.Errorf("acme sends with the seed template: %d %s", r.Status, r.Body)
	}

	// Temporal lists acme's workflows by TenantId; their ids carry the tenant.
	eventually(t, 30*time.Second, "acme's workflows listed by TenantId", func() bool {
		res, err := s.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: s.Config.TemporalNamespace, Query: `TenantId="acme"`})
		if err != nil || len(res.Executions) < 3 {
			return false
		}
		for _, e := range res.Executions {
			if !strings.HasPrefix(e.Execution.WorkflowId, "acme/") {
				t.Errorf("acme's workflow id %q does not carry the tenant", e.Execution.WorkflowId)
			}
		}
		return true
	})
	if res, err := s.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: s.Config.TemporalNamespace, Query: `TenantId="beta"`}); err == nil {
		for _, e := range res.Executions {
			if !strings.HasPrefix(e.Execution.WorkflowId, "beta/") {
				t.Errorf("beta's workflows include %q", e.Execution.WorkflowId)
			}
		}
	}

	// An event of acme's reaches acme's endpoint only.
	before := rcA.count()
	postEvent(t, acme, map[string]any{"type": "tenant.fanout", "data": map[string]any{"n": 1}})
	eventually(t, 30*time.Second, "acme's receiver to get acme's event", func() bool { return rcA.count() > before })
	time.Sleep(2 * time.Second) // what beta's receiver could wrongly get has had time to arrive
	for _, rc := range rcB.receipts() {
		// beta's own probes (POST /events with the documented example) do reach it.
		if strings.Contains(string(rc.Body), `"tenant.`) {
			t.Errorf("beta's receiver got acme's %s", rc.Body)
		}
	}
}

// seedTenant creates one resource of every kind for the tenant c acts for and returns their ids.
func seedTenant(t *testing.T, c *call, rc *receiver) tenantIDs {
	t.Helper()
	ids := tenantIDs{}
	created := func(kind, method, path string, body any, want int) map[string]any {
		t.Helper()
		r := c.do(method, path, body)
		if r.Status != want {
			t.Fatalf("acme's %s: %d %s", kind, r.Status, r.Body)
		}
		return r.JSON(t)
	}
	ids["workflow"] = created("workflow", "POST", "/api/v1/workflows", map[string]any{"name": "acme-flow", "trigger_type": "manual",
		"steps": []any{map[string]any{"id": "a", "type": "data_transform", "config": map[string]any{"mapping": map[string]any{"x": "1"}}}}}, 201)["id"].(string)
	ids["execution"] = created("execution", "POST", "/api/v1/workflows/"+ids["workflow"]+"/execute", map[string]any{}, 202)["execution_id"].(string)
	ids["template"] = created("template", "POST", "/api/v1/notifications/templates", map[string]any{"id": "acme_note",
		"name": "Acme", "channel": "email", "subject": "Hi {{ name }}", "body": "Hello {{ name }}"}, 201)["id"].(string)
	ids["notification"] = created("notification", "POST", "/api/v1/notifications/email", map[string]any{
		"to": []string{"ann@acme.example"}, "subject": "s", "body": "b"}, 202)["id"].(string)
	ids["endpoint"] = created("endpoint", "POST", "/api/v1/webhooks/endpoints", map[string]any{"name": "acme-ep", "url": rc.URL(),
		"event_types": []string{"*"}}, 201)["id"].(string)
	ids["source"] = created("source", "POST", "/api/v1/webhooks/sources", map[string]any{"name": "acme-src",
		"secret": "acme-source-secret-0123456789"}, 201)["id"].(string)
	ids["rule"] = created("rule", "POST", "/api/v1/automation/rules", map[string]any{"name": "acme-rule",
		"trigger": map[string]any{"type": "event", "event_type": "tenant.seed"},
		"actions": []any{map[string]any{"type": "webhook", "event_type": "tenant.seeded"}}}, 201)["id"].(string)
	ids["key"] = created("key", "POST", "/api/v1/api-keys", map[string]any{"name": "acme-ro", "scopes": []string{"workflows:read"}}, 201)["id"].(string)
	ids["subscriber"] = created("subscriber", "POST", "/api/v1/subscribers", map[string]any{"external_id": "acme-sub-1",
		"email": "sub@acme.example"}, 201)["id"].(string)
	ids["category"] = created("category", "POST", "/api/v1/notification-categories", map[string]any{"id": "acme_news"}, 201)["id"].(string)
	created("suppression", "POST", "/api/v1/notifications/providers/bounces", map[string]any{"type": "bounce",
		"email": "gone@acme.example"}, 200)
	ids["suppression"] = "gone@acme.example"
	ids["event"] = postEvent(t, c, map[string]any{"type": "tenant.seed", "data": map[string]any{"n": 0}})
	eventually(t, 30*time.Second, "acme's rule execution, message and delivery", func() bool {
		var page struct {
			Items []struct {
				ID        string `json:"id"`
				MessageID string `json:"message_id"`
			} `json:"items"`
		}
		if ids["rule_execution"] == "" {
			c.get("/api/v1/automation/rules/"+ids["rule"]+"/executions").Decode(t, &page)
			if len(page.Items) > 0 {
				ids["rule_execution"] = page.Items[0].ID
			}
		}
		c.get("/api/v1/webhooks/deliveries?endpoint_id="+ids["endpoint"]).Decode(t, &page)
		if len(page.Items) > 0 {
			ids["delivery"], ids["message"] = page.Items[0].ID, page.Items[0].MessageID
		}
		return ids["rule_execution"] != "" && ids["delivery"] != ""
	})
	return ids
}

// probeBodies are valid bodies for the operations whose documented example is not one on its own.
var probeBodies = map[string]any{
	"POST /api/v1/webhooks/endpoints/{id}/recover": map[string]any{"since": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
}

// forParam is acme's id for a path parameter of path.
func (ids tenantIDs) forParam(path, name string) string {
	switch name {
	case "version":
		return "1"
	case "name":
		return "go"
	case "channel":
		return "email"
	case "address":
		return ids["suppression"]
	}
	for _, p := range []struct{ prefix, kind string }{
		{"/api/v1/workflows/", "workflow"}, {"/api/v1/executions/", "execution"},
		{"/api/v1/notifications/templates/", "template"}, {"/api/v1/notifications/", "notification"},
		{"/api/v1/automation/rules/", "rule"}, {"/api/v1/automation/executions/", "rule_execution"},
		{"/api/v1/events/", "event"}, {"/api/v1/webhooks/endpoints/", "endpoint"},
		{"/api/v1/webhooks/messages/", "message"}, {"/api/v1/webhooks/deliveries/", "delivery"},
		{"/api/v1/webhooks/sources/", "source"}, {"/api/v1/api-keys/", "key"}, {"/api/v1/tenants/", "tenant"},
		{"/api/v1/subscribers/", "subscriber"}, {"/api/v1/notification-categories/", "category"},
	} {
		if strings.HasPrefix(path, p.prefix) {
			if p.kind == "tenant" {
				return "acme"
			}
			return ids[p.kind]
		}
	}
	return ""
}

// exampleBody is the documented example of the operation's JSON body (nil without a body), so
// that a probe is not refused for its body before the resource is looked up.
func exampleBody(o *openapi3.Operation) any {
	if o.RequestBody == nil || o.RequestBody.Value == nil {
		return nil
	}
	mt := o.RequestBody.Value.Content.Get("application/json")
	if mt == nil {
		return nil
	}
	if mt.Example != nil {
		return mt.Example
	}
	for _, ex := range mt.Examples {
		if ex.Value != nil {
			return ex.Value.Value
		}
	}
	return map[string]any{}
}
