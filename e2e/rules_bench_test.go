package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// BenchmarkRulesEngine measures the rules engine on the embedded stack (SQLite, in-process
// Temporal): 10 rules listen to bench.event, one of them matches each event (a field check on
// kind) and emits an event (a real emit_event, itself stored and evaluated). It reports:
//
//   - ingest_events/s: events accepted by POST /api/v1/events from 16 clients (a burst of 1000);
//   - evaluated_events/s: those events decided and their action finished, first post to last action;
//   - p50_ms / p99_ms: event received → action started, during the burst;
//   - paced_p50_ms / paced_p99_ms: the same at a steady 20 events/s.
func BenchmarkRulesEngine(b *testing.B) {
	const rules, burst, paced = 10, 1000, 200
	s := startEmbedded(b, testConfig(b, b.TempDir(), map[string]string{
		"RATE_LIMIT_PER_SECOND": "100000", "RATE_LIMIT_BURST": "100000", "LOG_LEVEL": "warn",
	}))
	post := func(path string, body any) (int, []byte) {
		js, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", s.URL+path, bytes.NewReader(js))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", s.APIKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(res.Body)
		return res.StatusCode, buf.Bytes()
	}
	for i := range rules {
		code, body := post("/api/v1/automation/rules", map[string]any{
			"name": fmt.Sprintf("bench-%d", i), "priority": i,
			"trigger":    map[string]any{"type": "event", "event_type": "bench.event"},
			"conditions": []any{map[string]any{"type": "field_check", "field": "kind", "operator": "equals", "value": fmt.Sprintf("k%d", i)}},
			"actions":    []any{map[string]any{"type": "emit_event", "event_type": "bench.done", "data": map[string]any{"seq": "{{ seq }}"}}},
		})
		if code != 201 {
			b.Fatalf("create rule: %d %s", code, body)
		}
	}
	st, err := store.Open(context.Background(), store.Options{SQLitePath: s.Config.SQLitePath()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	finished := func(prefix string) int {
		var n int64
		st.DB().WithContext(tenant.System(context.Background())).Raw(`SELECT count(*) FROM automation_executions WHERE event_type = 'bench.event' AND status = 'succeeded'
			AND event_id LIKE ?`, prefix+"%").Scan(&n)
		return int(n)
	}
	latencies := func(prefix string) (p50, p99 float64) {
		var rows []struct {
			ReceivedAt time.Time
			StartedAt  time.Time
		}
		st.DB().WithContext(tenant.System(context.Background())).Raw(`SELECT e.received_at, o.started_at FROM events e
			JOIN automation_executions x ON x.event_id = e.id
			JOIN automation_action_outcomes o ON o.execution_id = x.id
			WHERE e.id LIKE ? AND o.started_at IS NOT NULL`, prefix+"%").Scan(&rows)
		ms := make([]float64, len(rows))
		for i, r := range rows {
			ms[i] = float64(r.StartedAt.Sub(r.ReceivedAt).Microseconds()) / 1000
		}
		sort.Float64s(ms)
		if len(ms) == 0 {
			return 0, 0
		}
		return ms[len(ms)/2], ms[min(len(ms)-1, len(ms)*99/100)]
	}
	waitFor := func(prefix string, n int) {
		deadline := time.Now().Add(5 * time.Minute)
		for finished(prefix) < n {
			if time.Now().After(deadline) {
				b.Fatalf("%s: only %d of %d rule runs finished in 5 minutes", prefix, finished(prefix), n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	event := func(prefix string, i int) map[string]any {
		return map[string]any{"id": fmt.Sprintf("%s-%05d", prefix, i), "type": "bench.event",
			"data": map[string]any{"kind": fmt.Sprintf("k%d", i%rules), "seq": i}}
	}

	// Warm up: the evaluator workflows start, the rules compile.
	for i := range 20 {
		post("/api/v1/events", event("warm", i))
	}
	waitFor("warm", 20)

	b.ResetTimer()
	// Paced: a steady 20 events/s shows the latency of an unloaded engine.
	tick := time.NewTicker(50 * time.Millisecond)
	for i := range paced {
		<-tick.C
		if code, body := post("/api/v1/events", event("paced", i)); code != 202 {
			b.Fatalf("post: %d %s", code, body)
		}
	}
	tick.Stop()
	waitFor("paced", paced)
	pacedP50, pacedP99 := latencies("paced")

	// Burst: 1000 events from 16 clients as fast as the API takes them.
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if code, body := post("/api/v1/events", event("burst", i)); code != 202 {
					b.Errorf("post: %d %s", code, body)
				}
			}
		}()
	}
	for i := range burst {
		next <- i
	}
	close(next)
	wg.Wait()
	ingested := time.Since(start)
	waitFor("burst", burst)
	evaluated := time.Since(start)
	b.StopTimer()
	p50, p99 := latencies("burst")
	b.ReportMetric(float64(burst)/ingested.Seconds(), "ingest_events/s")
	b.ReportMetric(float64(burst)/evaluated.Seconds(), "evaluated_events/s")
	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
	b.ReportMetric(pacedP50, "paced_p50_ms")
	b.ReportMetric(pacedP99, "paced_p99_ms")
}
