package store_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
)

// A unique-key refusal that the caller handles is a debug line, not an error; other failures
// stay errors; neither shows bound values.
func TestSQLLogOfExpectedConflicts(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			o := store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db"), Logger: log}
			if dialect == "postgres" {
				o = store.Options{URL: testenv.PostgresURL(t), Logger: log}
			}
			s := open(t, o)
			ctx := context.Background()
			w := insertWorkflow(t, s, "w", "manual", true)
			now := time.Now().UTC()
			key := "secret-idempotency-value"
			e := store.Execution{ID: store.NewID(), WorkflowID: w.ID, Version: 1, Status: store.ExecutionPending,
				Priority: "normal", TriggeredBy: "api", Input: store.JSON(`{}`), IdempotencyKey: &key,
				TemporalWorkflowID: "t-1", CreatedAt: now, UpdatedAt: now}
			if err := s.InsertExecution(ctx, &e); err != nil {
				t.Fatal(err)
			}
			logs.Reset()
			dup := e
			dup.ID, dup.TemporalWorkflowID = store.NewID(), "t-2"
			if err := s.InsertExecution(ctx, &dup); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("duplicate key: %v", err)
			}
			out := logs.String()
			if strings.Contains(out, "level=ERROR") || !strings.Contains(out, "level=DEBUG") ||
				!strings.Contains(out, "unique key") {
				t.Errorf("a handled conflict is not a debug line:\n%s", out)
			}
			logs.Reset()
			if err := s.DB().WithContext(ctx).Exec("SELECT no_such_column FROM workflows WHERE name = ?", key).Error; err == nil {
				t.Fatal("a bad statement succeeded")
			}
			if out := logs.String(); !strings.Contains(out, "level=ERROR") {
				t.Errorf("a failed statement is not logged as an error:\n%s", out)
			}
			if strings.Contains(logs.String(), key) {
				t.Errorf("a bound value is in the log:\n%s", logs.String())
			}
		})
	}
}
