package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"

	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

// eachDialect is forEachDialect for tests that open (and migrate) the store themselves.
func eachDialect(t *testing.T, fn func(t *testing.T, o store.Options)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")}) })
	t.Run("postgres", func(t *testing.T) { fn(t, store.Options{URL: testenv.PostgresURL(t)}) })
}

// Migration 00007 encrypts the custom header values of endpoints stored before it, with the
// webhook module's key; without the key it refuses rather than leave them readable.
func TestMigrationEncryptsStoredEndpointHeaders(t *testing.T) {
	eachDialect(t, func(t *testing.T, o store.Options) {
		ctx := context.Background()
		box, err := webhooks.NewSecretBox("service-secret")
		if err != nil {
			t.Fatal(err)
		}
		o.SealHeaders = box.SealHeaders
		s, err := store.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.MigrateUpTo(ctx, 6); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		plain := map[string]string{"Authorization": "Bearer tok-3141592653", "X-Tenant": "acme"}
		// The rows as 00006 left them: only the columns it had (the model has later ones).
		for id, h := range map[string]map[string]string{"ep-with": plain, "ep-without": {}} {
			err := s.DB().WithContext(tenant.System(ctx)).Exec(`INSERT INTO webhook_endpoints (id, name, url, event_types, headers, enabled,
				retry_schedule_ms, timeout_ms, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, id, "https://example.com/hook", store.JSON(`["*"]`), store.MustJSON(h), true,
				store.JSON(`[]`), 15000, "sealed", now, now).Error
			if err != nil {
				t.Fatal(err)
			}
		}
		// Without the key the migration refuses (and leaves the database as it was).
		keyless, err := store.Open(ctx, store.Options{URL: o.URL, SQLitePath: o.SQLitePath})
		if err != nil {
			t.Fatal(err)
		}
		defer keyless.Close()
		if _, err := keyless.Migrate(ctx, nil); err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRET_KEY") {
			t.Fatalf("migrate without the key: %v", err)
		}
		if n, err := s.Migrate(ctx, nil); err != nil || n < 1 {
			t.Fatalf("migrate: %d %v", n, err)
		}
		e, err := s.GetWebhookEndpoint(ctx, "ep-with")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(e.Headers), "tok-3141592653") || strings.Contains(string(e.Headers), "acme") {
			t.Errorf("header values still readable at rest: %s", e.Headers)
		}
		var sealed map[string]string
		if err := json.Unmarshal(e.Headers, &sealed); err != nil {
			t.Fatal(err)
		}
		got, err := box.OpenHeaders(e.ID, sealed)
		if err != nil || got["Authorization"] != plain["Authorization"] || got["X-Tenant"] != "acme" || len(got) != 2 {
			t.Errorf("opened headers %v %v, want %v", got, err, plain)
		}
		if empty, _ := s.GetWebhookEndpoint(ctx, "ep-without"); string(empty.Headers) != "{}" {
			t.Errorf("an endpoint without headers: %s", empty.Headers)
		}
	})
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A failed statement is logged with its SQL and error but without its bound values: an
// encrypted secret (or any user's data) never reaches the log.
func TestFailedStatementsAreLoggedWithoutValues(t *testing.T) {
	eachDialect(t, func(t *testing.T, o store.Options) {
		ctx := context.Background()
		var logs lockedBuffer
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		s, err := store.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		const secret = "v1:SEALED-SECRET-2718281828"
		now := time.Now().UTC()
		e := store.WebhookEndpoint{ID: "ep-1", Name: "billing-receiver", URL: "https://example.com/private-path",
			EventTypes: store.JSON(`["*"]`), Headers: store.JSON(`{"Authorization":"v1:SEALED-HEADER-1618"}`),
			Enabled: true, RetryScheduleMS: store.JSON(`[]`), TimeoutMS: 15000, Secret: secret, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateWebhookEndpoint(ctx, &e); err != nil {
			t.Fatal(err)
		}
		// A statement that fails for a reason callers do not expect (a unique-key refusal is
		// expected and logged at debug): a row without its required columns.
		if err := s.DB().WithContext(tenant.System(ctx)).Exec("INSERT INTO webhook_endpoints (id, name, secret, url) VALUES (?, ?, ?, NULL)",
			"ep-2", e.Name, secret).Error; err == nil || errors.Is(err, store.ErrConflict) {
			t.Fatalf("an endpoint without a URL: %v", err)
		}
		out := logs.String()
		if !strings.Contains(out, "SQL executed") || !strings.Contains(out, "webhook_endpoints") {
			t.Fatalf("the failed statement was not logged: %s", out)
		}
		for _, value := range []string{secret, "SEALED-HEADER-1618", "billing-receiver", "private-path"} {
			if strings.Contains(out, value) {
				t.Errorf("the log holds the bound value %q: %s", value, out)
			}
		}
	})
}
