package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/app"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/logging"
)

// BenchmarkWorkflowEngine measures executions/s and end-to-end latency (POST execute → the
// run completed) of 3-step definitions on the embedded stack (`make run`: Temporal on SQLite,
// the app's tables in SQLite), next to the same shape written by hand as a Temporal workflow
// with three activities on the same server: three data_transform steps (which the interpreter
// runs as local activities) and three http_request steps to a loopback receiver (regular
// activities, like the bare workflow's). Each runs benchExecutions executions,
// benchConcurrency at a time.
func BenchmarkWorkflowEngine(b *testing.B) {
	const (
		benchExecutions  = 200
		benchConcurrency = 10
	)
	s := startBenchStack(b)
	def := `{"name": "bench", "trigger_type": "manual", "steps": [
		{"id": "parse", "type": "data_transform", "config": {"mapping": {"n": "input.n", "doubled": "input.n * 2"}}},
		{"id": "enrich", "type": "data_transform", "config": {"jq": "{n: .steps.parse.output.n, tag: \"x\"}"}},
		{"id": "total", "type": "data_transform", "config": {"mapping": {"sum": "steps.parse.output.doubled + steps.enrich.output.n"}}}]}`
	var created struct {
		ID string `json:"id"`
	}
	if err := benchPost(s, "/api/v1/workflows", def, 201, &created); err != nil {
		b.Fatal(err)
	}

	engine := runLoad(b, benchExecutions, benchConcurrency, func(i int) error {
		var e struct {
			WorkflowID string `json:"temporal_workflow_id"`
			RunID      string `json:"temporal_run_id"`
		}
		if err := benchPost(s, "/api/v1/workflows/"+created.ID+"/execute", fmt.Sprintf(`{"input_data": {"n": %d}}`, i), 202, &e); err != nil {
			return err
		}
		return s.Temporal.GetWorkflow(context.Background(), e.WorkflowID, e.RunID).Get(context.Background(), nil)
	})

	// Three http_request steps (regular activities, like the bare workflow's) to a loopback
	// receiver.
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok": true}`))
	}))
	defer rcv.Close()
	var httpDef struct {
		ID string `json:"id"`
	}
	if err := benchPost(s, "/api/v1/workflows", `{"name": "bench-http", "trigger_type": "manual", "steps": [
		{"id": "a", "type": "http_request", "config": {"url": "`+rcv.URL+`/a"}},
		{"id": "b", "type": "http_request", "config": {"url": "`+rcv.URL+`/b"}},
		{"id": "c", "type": "http_request", "config": {"url": "`+rcv.URL+`/c"}}]}`, 201, &httpDef); err != nil {
		b.Fatal(err)
	}
	engineHTTP := runLoad(b, benchExecutions, benchConcurrency, func(i int) error {
		var e struct {
			WorkflowID string `json:"temporal_workflow_id"`
			RunID      string `json:"temporal_run_id"`
		}
		if err := benchPost(s, "/api/v1/workflows/"+httpDef.ID+"/execute", `{}`, 202, &e); err != nil {
			return err
		}
		return s.Temporal.GetWorkflow(context.Background(), e.WorkflowID, e.RunID).Get(context.Background(), nil)
	})

	// The same shape by hand: one workflow, three activities, on its own task queue.
	const queue = "bench-bare"
	w := worker.New(s.Temporal, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(bareThreeSteps, workflow.RegisterOptions{Name: "BareThreeSteps"})
	w.RegisterActivity(bareStep)
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	bare := runLoad(b, benchExecutions, benchConcurrency, func(i int) error {
		run, err := s.Temporal.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
			ID: fmt.Sprintf("bench-bare-%d-%d", time.Now().UnixNano(), i), TaskQueue: queue,
		}, "BareThreeSteps", i)
		if err != nil {
			return err
		}
		return run.Get(context.Background(), nil)
	})

	b.ReportMetric(engine.rate, "engine_exec/s")
	b.ReportMetric(engine.p50, "engine_p50_ms")
	b.ReportMetric(engine.p99, "engine_p99_ms")
	b.ReportMetric(engineHTTP.rate, "engine_http_exec/s")
	b.ReportMetric(engineHTTP.p50, "engine_http_p50_ms")
	b.ReportMetric(engineHTTP.p99, "engine_http_p99_ms")
	b.ReportMetric(bare.rate, "bare_exec/s")
	b.ReportMetric(bare.p50, "bare_p50_ms")
	b.ReportMetric(bare.p99, "bare_p99_ms")
	b.Logf("3-step definition through the engine: %.1f executions/s, p50 %.0f ms, p99 %.0f ms", engine.rate, engine.p50, engine.p99)
	b.Logf("3 http_request steps through the engine: %.1f executions/s, p50 %.0f ms, p99 %.0f ms", engineHTTP.rate, engineHTTP.p50, engineHTTP.p99)
	b.Logf("same shape as a bare Temporal workflow: %.1f executions/s, p50 %.0f ms, p99 %.0f ms", bare.rate, bare.p50, bare.p99)
}

func bareThreeSteps(ctx workflow.Context, n int) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	for range 3 {
		if err := workflow.ExecuteActivity(ctx, bareStep, n).Get(ctx, &n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func bareStep(_ context.Context, n int) (int, error) { return n*2 + 1, nil }

// benchPost posts a JSON body and decodes the answer, which must have status want.
func benchPost(s *stack, path, body string, want int, out any) error {
	req, err := http.NewRequest("POST", s.URL+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", s.APIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != want {
		return fmt.Errorf("POST %s: %d %s", path, res.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

type loadResult struct{ rate, p50, p99 float64 }

// runLoad runs n calls, concurrency at a time, and measures each call's latency.
func runLoad(b *testing.B, n, concurrency int, fn func(i int) error) loadResult {
	b.Helper()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErr  error
		wg        sync.WaitGroup
	)
	next := make(chan int)
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				err := fn(i)
				mu.Lock()
				latencies = append(latencies, time.Since(t0))
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	return loadResult{rate: float64(n) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99)}
}

// startBenchStack starts the embedded stack for a benchmark (startEmbedded needs a *testing.T).
func startBenchStack(b *testing.B) *stack {
	b.Helper()
	cfg, err := config.LoadFrom(map[string]string{
		"ENV": "test", "DATA_DIR": b.TempDir(), "LOG_LEVEL": "warn",
		"TEMPORAL_PORT": fmt.Sprint(testenv.FreePort(b)), "TEMPORAL_UI_PORT": "0",
		"RATE_LIMIT_PER_SECOND": "100000", "RATE_LIMIT_BURST": "100000", "WEBHOOK_ALLOWED_CIDRS": "127.0.0.1",
	})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg.PublicURL = "http://" + l.Addr().String()
	log := logging.New(io.Discard, false, cfg.LogLevel)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Config: cfg, Logger: log, Version: "bench", API: true, Worker: true, Listener: l, Ready: ready,
			StartTemporal: func(c *config.Config, l *slog.Logger) (app.Embedded, error) {
				return devserver.FromConfig(c, l)
			},
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		b.Fatalf("stack did not start: %v", err)
	}
	tc, err := client.Dial(client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace, Logger: quietLogger()})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		tc.Close()
		cancel()
		<-done
	})
	return &stack{URL: cfg.PublicURL, APIKey: cfg.InternalAPIKey, Config: cfg, Temporal: tc}
}
