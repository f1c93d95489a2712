package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	c, err := LoadFrom(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 8090 || c.TemporalPort != 7233 || c.TemporalUIPort != 8233 || c.TemporalNamespace != "automation" {
		t.Errorf("ports/namespace defaults: %+v", c)
	}
	if c.DataDir != "./data" || c.SQLitePath() != filepath.Join("data", "automation.db") {
		t.Errorf("data dir: %q %q", c.DataDir, c.SQLitePath())
	}
	if !c.EmbeddedTemporal() || !c.EmbeddedDatabase() || !c.EmbeddedRedis() {
		t.Errorf("with nothing set every part should be embedded")
	}
	if c.DatabasePoolSize != 10 || c.DatabaseMaxOverflow != 20 || c.RedisMaxConnections != 20 {
		t.Errorf("pool defaults: %+v", c)
	}
	if c.PublicURL != "http://localhost:8090" || c.MaxBodyBytes != 1<<20 || !c.SMTPUseTLS || c.SMTPPort != 587 {
		t.Errorf("other defaults: %+v", c)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"PORT":                  {"PORT": "eighty"},
		"TEMPORAL_PORT":         {"TEMPORAL_PORT": "70000"},
		"ENV":                   {"ENV": "staging"},
		"DATABASE_URL":          {"DATABASE_URL": "mysql://x/y"},
		"REDIS_URL":             {"REDIS_URL": "http://localhost"},
		"SMTP_USE_TLS":          {"SMTP_USE_TLS": "maybe"},
		"WORKERS":               {"WORKERS": "0"},
		"DATABASE_POOL_SIZE":    {"DATABASE_POOL_SIZE": "-1"},
		"LOG_LEVEL":             {"LOG_LEVEL": "loud"},
		"SHUTDOWN_TIMEOUT":      {"SHUTDOWN_TIMEOUT": "soon"},
		"WEBHOOK_ALLOWED_CIDRS": {"WEBHOOK_ALLOWED_CIDRS": "10.0.0.0/8,nope"},
		"AUTH_FAILURE_LIMIT":    {"AUTH_FAILURE_LIMIT": "-1"},
		"AUTH_FAILURE_WINDOW":   {"AUTH_FAILURE_WINDOW": "0s"},
	}
	for name, env := range cases {
		_, err := LoadFrom(env)
		if err == nil {
			t.Errorf("%s: accepted %v", name, env)
			continue
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error does not name the variable: %v", name, err)
		}
	}
}

func TestProductionRequiresSecrets(t *testing.T) {
	_, err := LoadFrom(map[string]string{"ENV": "production", "INTERNAL_API_KEY": "k"})
	if err == nil {
		t.Fatal("production without JWT_SECRET_KEY and WEBHOOK_SECRET_KEY was accepted")
	}
	for _, name := range []string{"JWT_SECRET_KEY", "WEBHOOK_SECRET_KEY"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if strings.Contains(err.Error(), "INTERNAL_API_KEY") {
		t.Errorf("error names a variable that is set: %v", err)
	}
	c, err := LoadFrom(map[string]string{"ENV": "production", "INTERNAL_API_KEY": "k", "JWT_SECRET_KEY": "j", "WEBHOOK_SECRET_KEY": "w"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureSecrets(); err != nil {
		t.Fatal(err)
	}
	if len(c.GeneratedSecrets) != 0 {
		t.Errorf("generated secrets in production: %v", c.GeneratedSecrets)
	}
}

func TestDevelopmentSecretsAreGeneratedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	c, err := LoadFrom(map[string]string{"DATA_DIR": dir, "JWT_SECRET_KEY": "configured"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureSecrets(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.GeneratedSecrets, ","); got != "INTERNAL_API_KEY,WEBHOOK_SECRET_KEY" {
		t.Errorf("generated %q", got)
	}
	if c.JWTSecretKey != "configured" || len(c.InternalAPIKey) < 30 || c.WebhookSecretKey == "" {
		t.Errorf("secrets: %+v", c)
	}
	info, err := os.Stat(c.DevSecretsPath())
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("secrets file mode %v", info.Mode().Perm())
	}

	again, _ := LoadFrom(map[string]string{"DATA_DIR": dir, "JWT_SECRET_KEY": "configured"})
	if err := again.EnsureSecrets(); err != nil {
		t.Fatal(err)
	}
	if len(again.GeneratedSecrets) != 0 {
		t.Errorf("second start generated %v again", again.GeneratedSecrets)
	}
	if again.InternalAPIKey != c.InternalAPIKey || again.WebhookSecretKey != c.WebhookSecretKey {
		t.Error("second start did not reuse the kept secrets")
	}
	if ReadDevAPIKey(dir) != c.InternalAPIKey {
		t.Error("ReadDevAPIKey does not return the kept key")
	}
}

func TestDatabaseURLForms(t *testing.T) {
	for in, want := range map[string]string{
		"postgresql+asyncpg://u:p@db:5432/app":  "postgres://u:p@db:5432/app",
		"postgresql://u@db/app?sslmode=disable": "postgres://u@db/app?sslmode=disable",
		"postgres://db/app":                     "postgres://db/app",
	} {
		c, err := LoadFrom(map[string]string{"DATABASE_URL": in})
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if c.DatabaseURL != want || c.EmbeddedDatabase() {
			t.Errorf("%s → %s, want %s", in, c.DatabaseURL, want)
		}
	}
}
