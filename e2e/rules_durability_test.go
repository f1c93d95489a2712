package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
)

// TestRulesExactlyOnceAcrossWorkerKill runs the production shape (API and worker processes on
// Postgres, Temporal over TEMPORAL_ADDRESS), posts events while the worker is killed and
// started again, and checks in the database that every accepted event was evaluated exactly
// once by each rule and that each rule's action (emit_event) took effect exactly once.
func TestRulesExactlyOnceAcrossWorkerKill(t *testing.T) {
	const events = 240
	dbURL := testenv.PostgresURL(t)
	srv, err := devserver.Start(devserver.Options{
		DatabaseFile: t.TempDir() + "/temporal.db", FrontendPort: testenv.FreePort(t), Namespaces: []string{"automation"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	apiPort := testenv.FreePort(t)
	env := map[string]string{
		"ENV": "production", "PORT": fmt.Sprint(apiPort), "HOST": "127.0.0.1", "DATABASE_URL": dbURL,
		"TEMPORAL_ADDRESS": srv.Address(), "INTERNAL_API_KEY": "k-" + testenv.RandomHex(8), "JWT_SECRET_KEY": "j",
		"WEBHOOK_SECRET_KEY": "w", "RATE_LIMIT_PER_SECOND": "10000", "RATE_LIMIT_BURST": "10000", "DATA_DIR": t.TempDir(),
		"RULES_PARTITIONS": "4", "SHUTDOWN_TIMEOUT": "1s",
	}
	startProcess(t, "api", env)
	worker := startProcess(t, "worker", env)
	c := &call{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", apiPort), key: env["INTERNAL_API_KEY"], header: http.Header{}}
	eventually(t, 90*time.Second, "the API process to be ready", func() bool {
		res, err := contractGet(t, c.base+"/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	// The worker registers search attributes on a new cluster and waits for Temporal to load them:
	// let it come up before the stream starts, so that the kill lands mid-stream.
	eventually(t, 90*time.Second, "the worker to answer", func() bool {
		return c.post("/api/v1/diagnostics/ping", map[string]any{"wait_seconds": 2}).Status == 200
	})
	for _, name := range []string{"forward", "audit"} {
		createRule(t, c, map[string]any{"name": name, "trigger": map[string]any{"type": "event", "event_type": "load.tick"},
			"conditions": []any{map[string]any{"type": "field_check", "field": "n", "operator": "gte", "value": 0}},
			"actions":    []any{map[string]any{"type": "emit_event", "event_type": "load." + name, "data": map[string]any{"n": "{{ n }}"}}}})
	}
	st, err := store.Open(context.Background(), store.Options{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	count := func(t *testing.T, query string, args ...any) int {
		t.Helper()
		var n int64
		if err := st.DB().WithContext(tenant.System(context.Background())).Raw(query, args...).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		return int(n)
	}

	// Post the events from 8 clients; kill the worker once some are evaluated, start another
	// while posting goes on.
	var posted atomic.Int64
	var wg sync.WaitGroup
	next := make(chan int)
	go func() {
		for i := range events {
			next <- i
		}
		close(next)
	}()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := map[string]any{"id": fmt.Sprintf("tick-%03d", i), "type": "load.tick", "data": map[string]any{"n": i}}
				for {
					r := c.post("/api/v1/events", body)
					if r.Status == 202 {
						posted.Add(1)
						break
					}
					t.Logf("post %d: %d %s; retrying", i, r.Status, r.Body)
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(300 * time.Millisecond) // ~25 events/s: the kill lands mid-stream
			}
		}()
	}
	eventually(t, 60*time.Second, "the first rule runs", func() bool {
		return count(t, `SELECT count(*) FROM automation_executions WHERE event_type = 'load.tick' AND status = 'succeeded'`) >= 40
	})
	worker.Kill()
	killedAt := count(t, `SELECT count(*) FROM automation_executions WHERE event_type = 'load.tick' AND status = 'succeeded'`)
	postedAt := posted.Load()
	t.Logf("worker killed after %d events posted, %d rule runs done", postedAt, killedAt)
	time.Sleep(time.Second)
	startProcess(t, "worker", env)
	wg.Wait()
	if killedAt >= 2*events || postedAt >= events {
		t.Fatal("every event was posted or processed before the kill; the test proves nothing")
	}

	eventually(t, 3*time.Minute, "every rule run to finish", func() bool {
		return count(t, `SELECT count(*) FROM automation_executions WHERE event_type = 'load.tick' AND status = 'succeeded'`) == 2*events &&
			count(t, `SELECT count(*) FROM automation_event_evaluations WHERE event_type IN ('load.forward', 'load.audit')`) == 2*events
	})
	time.Sleep(2 * time.Second) // a duplicate would show up now
	for _, check := range []struct {
		what  string
		query string
		want  int
	}{
		{"accepted events", `SELECT count(*) FROM events WHERE type = 'load.tick'`, events},
		{"evaluations", `SELECT count(*) FROM automation_event_evaluations WHERE event_type = 'load.tick'`, events},
		{"executions", `SELECT count(*) FROM automation_executions WHERE event_type = 'load.tick'`, 2 * events},
		{"event x rule pairs", `SELECT count(DISTINCT event_id || rule_id) FROM automation_executions WHERE event_type = 'load.tick'`, 2 * events},
		{"unfinished executions", `SELECT count(*) FROM automation_executions WHERE status <> 'succeeded'`, 0},
		{"emitted events", `SELECT count(*) FROM events WHERE type IN ('load.forward', 'load.audit')`, 2 * events},
		{"distinct causes per emitted type", `SELECT count(DISTINCT type || causation_id) FROM events WHERE type IN ('load.forward', 'load.audit')`, 2 * events},
		{"succeeded actions", `SELECT count(*) FROM automation_action_outcomes WHERE status = 'succeeded'`, 2 * events},
	} {
		t.Run(check.what, func(t *testing.T) {
			if got := count(t, check.query); got != check.want {
				t.Errorf("%s: %d, want %d", check.what, got, check.want)
			}
		})
	}
	retried := count(t, `SELECT count(*) FROM automation_action_outcomes WHERE attempts > 1`)
	t.Logf("%d actions needed more than one attempt", retried)
}
