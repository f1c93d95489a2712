package api

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Every authenticated /api/v1 route has a scope, and the served document lists it.
func TestEveryRouteHasAScope(t *testing.T) {
	s := newTestServer(t, nil)
	public := map[string]bool{
		"POST /api/v1/notifications/providers/twilio/status": true,
		"POST /api/v1/webhooks/inbound/:source":              true,
		"GET /api/v1/unsubscribe/:token":                     true,
		"POST /api/v1/unsubscribe/:token":                    true,
	}
	param := regexp.MustCompile(`:([a-zA-Z_]+)`)
	doc := servedSpec(t, s)
	for _, r := range s.echo.Routes() {
		op := r.Method + " " + r.Path
		if !strings.HasPrefix(r.Path, "/api/v1/") || strings.HasSuffix(r.Path, "*") || public[op] || r.Method == "echo_route_not_found" {
			continue
		}
		need, ok := routeScopes[op]
		if !ok {
			t.Errorf("%s has no scope in routeScopes", op)
			continue
		}
		item := doc.Paths.Find(param.ReplaceAllString(r.Path, "{$1}"))
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("%s is not documented", op)
			continue
		}
		o := item.GetOperation(r.Method)
		got, _ := json.Marshal(o.Extensions["x-required-scopes"])
		want := `["` + need + `"]`
		if need == scopeInternal {
			want = `[]`
		}
		if string(got) != want {
			t.Errorf("%s: x-required-scopes %s, want %s", op, got, want)
		}
		if o.Responses.Value("403") == nil {
			t.Errorf("%s does not document 403", op)
		}
	}
}

func TestTenantsScopesAndKeys(t *testing.T) {
	s := newTestServer(t, nil)
	internal := func(tenantID string) []string {
		h := []string{"X-API-Key", testKey, "Content-Type", "application/json"}
		if tenantID != "" {
			h = append(h, "X-Tenant-ID", tenantID)
		}
		return h
	}
	for _, id := range []string{"acme", "beta"} {
		if r := s.do(t, "POST", "/api/v1/tenants", strings.NewReader(`{"id": "`+id+`", "name": "`+id+`"}`), internal("")...); r.StatusCode != 201 {
			t.Fatalf("create tenant %s: %d %s", id, r.StatusCode, r.body)
		}
	}
	if r := s.do(t, "POST", "/api/v1/tenants", strings.NewReader(`{"id": "acme"}`), internal("")...); r.StatusCode != 409 {
		t.Fatalf("create tenant again: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, internal("nobody")...); r.StatusCode != 404 {
		t.Fatalf("X-Tenant-ID of no tenant: %d %s", r.StatusCode, r.body)
	}
	// A workflow of acme's, made with the internal key acting for acme.
	r := s.do(t, "POST", "/api/v1/workflows", strings.NewReader(`{"name": "w", "trigger_type": "manual",
		"steps": [{"id": "a", "type": "data_transform", "config": {"mapping": {"x": "1"}}}]}`), internal("acme")...)
	if r.StatusCode != 201 {
		t.Fatalf("create workflow: %d %s", r.StatusCode, r.body)
	}
	wfID := r.json(t)["id"].(string)

	// A read-only key of acme's reads it and cannot write (403 naming the scope).
	r = s.do(t, "POST", "/api/v1/api-keys", strings.NewReader(`{"name": "ro", "scopes": ["workflows:read"]}`), internal("acme")...)
	if r.StatusCode != 201 {
		t.Fatalf("create key: %d %s", r.StatusCode, r.body)
	}
	created := r.json(t)
	keyText, keyID := created["key"].(string), created["id"].(string)
	if created["tenant_id"] != "acme" || !strings.HasPrefix(keyText, created["prefix"].(string)) {
		t.Fatalf("created key: %s", r.body)
	}
	ro := []string{"X-API-Key", keyText, "Content-Type", "application/json"}
	if r := s.do(t, "GET", "/api/v1/workflows/"+wfID, nil, ro...); r.StatusCode != 200 {
		t.Fatalf("read with the read-only key: %d %s", r.StatusCode, r.body)
	}
	r = s.do(t, "DELETE", "/api/v1/workflows/"+wfID, nil, ro...)
	if r.StatusCode != 403 || r.errorCode(t) != "insufficient_scope" || !strings.Contains(string(r.body), "workflows:write") {
		t.Fatalf("write with the read-only key: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, append(ro, "X-Tenant-ID", "beta")...); r.StatusCode != 403 {
		t.Fatalf("tenant key choosing another tenant: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/tenants", nil, ro...); r.StatusCode != 403 {
		t.Fatalf("tenant key listing tenants: %d %s", r.StatusCode, r.body)
	}

	// beta's JWT does not see acme's workflow: 404, and an empty list.
	bearer := []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret, jwt.MapClaims{
		"sub": "bob", "exp": time.Now().Add(time.Hour).Unix(), "tenant_id": "beta", "scp": []string{"workflows:read", "workflows:write"}})}
	if r := s.do(t, "GET", "/api/v1/workflows/"+wfID, nil, bearer...); r.StatusCode != 404 {
		t.Fatalf("beta reads acme's workflow: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "DELETE", "/api/v1/workflows/"+wfID, nil, bearer...); r.StatusCode != 404 {
		t.Fatalf("beta deletes acme's workflow: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, bearer...); r.StatusCode != 200 || len(r.json(t)["items"].([]any)) != 0 {
		t.Fatalf("beta lists workflows: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/api-keys/"+keyID, nil, internal("beta")...); r.StatusCode != 404 {
		t.Fatalf("beta reads acme's key: %d %s", r.StatusCode, r.body)
	}
	// The default tenant (no X-Tenant-ID) does not see it either.
	if r := s.do(t, "GET", "/api/v1/workflows/"+wfID, nil, internal("")...); r.StatusCode != 404 {
		t.Fatalf("default reads acme's workflow: %d %s", r.StatusCode, r.body)
	}

	// Revoked: refused on the next request.
	if r := s.do(t, "DELETE", "/api/v1/api-keys/"+keyID, nil, internal("acme")...); r.StatusCode != 200 || r.json(t)["revoked_at"] == nil {
		t.Fatalf("revoke: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, ro...); r.StatusCode != 401 {
		t.Fatalf("revoked key: %d %s", r.StatusCode, r.body)
	}

	// A disabled tenant's credentials are refused.
	if r := s.do(t, "PATCH", "/api/v1/tenants/beta", strings.NewReader(`{"enabled": false}`), internal("")...); r.StatusCode != 200 {
		t.Fatalf("disable beta: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, bearer...); r.StatusCode != 403 || r.errorCode(t) != "tenant_disabled" {
		t.Fatalf("disabled tenant: %d %s", r.StatusCode, r.body)
	}

	// The audit log: acme's changes for acme, everyone's for the internal key.
	r = s.do(t, "GET", "/api/v1/audit-log", nil, internal("acme")...)
	if r.StatusCode != 200 {
		t.Fatalf("audit log: %d %s", r.StatusCode, r.body)
	}
	var page map[string][]map[string]any
	_ = json.Unmarshal(r.body, &page)
	actions := map[string]bool{}
	for _, e := range page["items"] {
		if e["tenant_id"] != "acme" {
			t.Errorf("acme's audit log shows %v", e)
		}
		actions[e["action"].(string)+" "+e["principal"].(string)] = true
	}
	for _, want := range []string{"POST /api/v1/workflows internal", "POST /api/v1/api-keys internal", "DELETE /api/v1/api-keys/:id internal"} {
		if !actions[want] {
			t.Errorf("acme's audit log lacks %q: %s", want, r.body)
		}
	}
	r = s.do(t, "GET", "/api/v1/audit-log", nil, internal("")...)
	if !strings.Contains(string(r.body), `"PATCH /api/v1/tenants/:id"`) {
		t.Errorf("the internal key's audit log lacks the tenant change: %s", r.body)
	}
}

// A tenant at its own request rate gets 429 while another tenant goes on; a tenant at a quota
// gets 403 naming it.
func TestTenantLimitsAndQuotas(t *testing.T) {
	s := newTestServer(t, nil)
	internal := func(tenantID string) []string {
		return []string{"X-API-Key", testKey, "Content-Type", "application/json", "X-Tenant-ID", tenantID}
	}
	if r := s.do(t, "POST", "/api/v1/tenants", strings.NewReader(`{"id": "slow", "limits": {"requests_per_second": 1, "burst": 2, "rules": 1}}`),
		internal("default")...); r.StatusCode != 201 {
		t.Fatalf("create tenant: %d %s", r.StatusCode, r.body)
	}
	for i := range 2 {
		if r := s.do(t, "GET", "/api/v1/events", nil, internal("slow")...); r.StatusCode != 200 {
			t.Fatalf("request %d within the tenant's burst: %d %s", i+1, r.StatusCode, r.body)
		}
	}
	r := s.do(t, "GET", "/api/v1/workflows", nil, internal("slow")...)
	if r.StatusCode != 429 || r.errorCode(t) != "tenant_rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("over the tenant's rate: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, internal("default")...); r.StatusCode != 200 {
		t.Fatalf("another tenant while slow is limited: %d %s", r.StatusCode, r.body)
	}

	// Quotas: one rule, then 403 quota_exceeded naming rules.
	if r := s.do(t, "PATCH", "/api/v1/tenants/slow", strings.NewReader(`{"limits": {"rules": 1}}`), internal("default")...); r.StatusCode != 200 {
		t.Fatalf("lift the rate limit: %d %s", r.StatusCode, r.body)
	}
	rule := `{"name": "r", "trigger": {"type": "event", "event_type": "x.y"}, "actions": [{"type": "emit_event", "event_type": "out"}]}`
	if r := s.do(t, "POST", "/api/v1/automation/rules", strings.NewReader(rule), internal("slow")...); r.StatusCode != 201 {
		t.Fatalf("first rule: %d %s", r.StatusCode, r.body)
	}
	r = s.do(t, "POST", "/api/v1/automation/rules", strings.NewReader(rule), internal("slow")...)
	if r.StatusCode != 403 || r.errorCode(t) != "quota_exceeded" || !strings.Contains(string(r.body), `"rules"`) {
		t.Fatalf("second rule: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "POST", "/api/v1/automation/rules", strings.NewReader(rule), internal("default")...); r.StatusCode != 201 {
		t.Fatalf("another tenant's rule: %d %s", r.StatusCode, r.body)
	}
}
