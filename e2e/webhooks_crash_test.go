package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/testenv"
)

// TestWebhookWorkerCrashLosesNothing runs the production shape (API and worker processes on
// Postgres and Redis, Temporal over TEMPORAL_ADDRESS), kills the worker with SIGKILL in the
// middle of a fan-out, keeps accepting messages while no worker runs, starts a new worker, and
// checks that every endpoint gets every message at least once and the log ends with nothing
// pending or failed.
func TestWebhookWorkerCrashLosesNothing(t *testing.T) {
	p := startProductionStack(t, nil)
	c := p.c
	worker := p.startWorker(t)

	// Five slow receivers behind a rate limit: the fan-out takes seconds, so the kill lands in
	// the middle of it.
	const endpoints, before, during = 5, 40, 20
	var rcs []*receiver
	for i := range endpoints {
		rc := newReceiver(t, func(int, *http.Request, http.Header) (int, string) {
			time.Sleep(20 * time.Millisecond)
			return 200, ""
		})
		rcs = append(rcs, rc)
		createEndpoint(t, c, map[string]any{"name": fmt.Sprintf("crash-%d", i), "url": rc.URL(),
			"events": []string{"crash.*"}, "rate_limit_per_second": 10})
	}
	total := func() int {
		n := 0
		for _, rc := range rcs {
			n += len(rc.succeeded())
		}
		return n
	}
	var (
		mu   sync.Mutex
		msgs []string
	)
	post := func(from, n int) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := deliver(t, c, "crash.test", map[string]any{"i": from + i})
				mu.Lock()
				msgs = append(msgs, id)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	post(0, before)
	eventually(t, 60*time.Second, "the fan-out to be under way", func() bool { return total() >= 30 })
	worker.Kill()
	atKill := total()
	if atKill >= endpoints*before {
		t.Fatalf("the fan-out had finished (%d requests) before the kill", atKill)
	}
	t.Logf("killed the worker after %d of %d requests", atKill, endpoints*before)

	// Accepted while no worker runs.
	post(before, during)
	p.startWorker(t)

	want := endpoints * (before + during)
	t.Run("every endpoint gets every message", func(t *testing.T) {
		eventually(t, 3*time.Minute, "every endpoint to get every message", func() bool {
			for _, rc := range rcs {
				got := map[string]bool{}
				for _, r := range rc.succeeded() {
					got[r.MessageID()] = true
				}
				for _, m := range msgs {
					if !got[m] {
						return false
					}
				}
			}
			return true
		})
	})
	for _, status := range []string{"pending", "failed"} {
		t.Run("no delivery is left "+status, func(t *testing.T) {
			c := &call{t: t, base: c.base, key: c.key, header: http.Header{}}
			eventually(t, 30*time.Second, "no "+status+" delivery", func() bool {
				return len(deliveriesOf(t, c, "status="+status)) == 0
			})
		})
	}
	t.Logf("%d requests for %d deliveries (at least once: %d repeated after the crash)", total(), want, total()-want)
}

// prodStack is the production shape: the API and the worker as separate processes on Postgres
// and Redis, Temporal (an embedded server) over TEMPORAL_ADDRESS.
type prodStack struct {
	c   *call
	env map[string]string
}

// startProductionStack starts Temporal and the API process (with env's variables beside the
// defaults) and waits until the API is ready; workers are started with startWorker.
func startProductionStack(t *testing.T, extra map[string]string) *prodStack {
	t.Helper()
	dbURL := testenv.PostgresURL(t)
	redisURL := testenv.RedisURL(t)
	srv, err := devserver.Start(devserver.Options{
		DatabaseFile: t.TempDir() + "/temporal.db", FrontendPort: testenv.FreePort(t), Namespaces: []string{"automation"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	apiPort := testenv.FreePort(t)
	env := map[string]string{
		"ENV": "production", "PORT": fmt.Sprint(apiPort), "HOST": "127.0.0.1", "DATA_DIR": t.TempDir(),
		"DATABASE_URL": dbURL, "REDIS_URL": redisURL, "TEMPORAL_ADDRESS": srv.Address(),
		"INTERNAL_API_KEY": "crash-key-" + testenv.RandomHex(8), "JWT_SECRET_KEY": "j", "WEBHOOK_SECRET_KEY": "w",
		"WEBHOOK_ALLOWED_CIDRS": "127.0.0.1/32", "RATE_LIMIT_PER_SECOND": "1000", "RATE_LIMIT_BURST": "1000",
	}
	for k, v := range extra {
		env[k] = v
	}
	startProcess(t, "api", env)
	c := &call{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", apiPort), key: env["INTERNAL_API_KEY"], header: http.Header{}}
	eventually(t, 90*time.Second, "the API process to be ready", func() bool {
		res, err := contractGet(t, c.base+"/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return &prodStack{c: c, env: env}
}

// startWorker starts a worker process (its own metrics port) against the stack.
func (p *prodStack) startWorker(t *testing.T) *process {
	t.Helper()
	w := map[string]string{"METRICS_PORT": fmt.Sprint(testenv.FreePort(t))}
	for k, v := range p.env {
		if k != "PORT" {
			w[k] = v
		}
	}
	return startProcess(t, "worker", w)
}
