// Package teststack starts the real parts a domain service's unit tests run on: a migrated
// SQLite store and the embedded Temporal server with a client. Each lives until the test ends.
package teststack

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/store"
)

// Store opens a migrated SQLite store in a temporary directory.
func Store(t testing.TB) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return st
}

// Temporal starts the embedded Temporal server cfg describes (TEMPORAL_PORT, namespace, data
// directory) and returns a client of its namespace.
func Temporal(t testing.TB, cfg *config.Config) client.Client {
	t.Helper()
	srv, err := devserver.FromConfig(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	tc, err := client.Dial(client.Options{HostPort: srv.Address(), Namespace: cfg.TemporalNamespace, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return tc
}

// quiet keeps the Temporal client's logs out of the test output.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
