package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/testenv"
)

// TestTenantKeyRevokedOnEveryAPIProcess: a tenant API key revoked through one API process is
// refused on the very next request to another (each looks the key up in the shared database;
// nothing is cached). Temporal is not needed for any of it and does not run.
func TestTenantKeyRevokedOnEveryAPIProcess(t *testing.T) {
	base := map[string]string{
		"ENV": "production", "HOST": "127.0.0.1", "DATA_DIR": t.TempDir(),
		"DATABASE_URL": testenv.PostgresURL(t), "TEMPORAL_ADDRESS": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"INTERNAL_API_KEY": "revocation-key", "JWT_SECRET_KEY": "j", "WEBHOOK_SECRET_KEY": "w",
	}
	var apis []*call
	for range 2 {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		port := testenv.FreePort(t)
		env["PORT"] = fmt.Sprint(port)
		startProcess(t, "api", env)
		c := &call{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), key: base["INTERNAL_API_KEY"], header: http.Header{}}
		eventually(t, 90*time.Second, "API process to serve", func() bool { return statusOf(c.base+"/live") == 200 })
		apis = append(apis, c)
	}
	one, two := apis[0], apis[1]
	if r := one.post("/api/v1/tenants", map[string]any{"id": "acme"}); r.Status != 201 {
		t.Fatalf("create tenant: %d %s", r.Status, r.Body)
	}
	one.header.Set("X-Tenant-ID", "acme")
	r := one.post("/api/v1/api-keys", map[string]any{"name": "k", "scopes": []string{"workflows:read"}})
	if r.Status != 201 {
		t.Fatalf("create key: %d %s", r.Status, r.Body)
	}
	created := r.JSON(t)
	onTwo := &call{t: t, base: two.base, key: created["key"].(string), header: http.Header{}}
	if r := onTwo.get("/api/v1/workflows"); r.Status != 200 {
		t.Fatalf("the key on the second process: %d %s", r.Status, r.Body)
	}
	if r := one.do("DELETE", "/api/v1/api-keys/"+created["id"].(string), nil); r.Status != 200 {
		t.Fatalf("revoke on the first process: %d %s", r.Status, r.Body)
	}
	if r := onTwo.get("/api/v1/workflows"); r.Status != 401 {
		t.Fatalf("the revoked key on the second process: %d %s", r.Status, r.Body)
	}
	// last_used_at was recorded by the second process's use.
	if r := one.get("/api/v1/api-keys/" + created["id"].(string)); r.JSON(t)["last_used_at"] == nil {
		t.Errorf("last use not recorded: %s", r.Body)
	}
}
