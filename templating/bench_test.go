package templating

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/sandbox"
)

// benchTemplate is a notification body of the usual kind: conditions, a loop, filters.
const benchTemplate = `{% if user.name is defined %}{% set name = user.name %}{% else %}{% set name = user.email %}{% endif %}` +
	`Hi {{ name|title }},

Your order {{ order.id }} of {{ order.items|length }} items ({{ '%.2f'|format(order.total) }} {{ order.currency|upper }}):
{% for item in order.items %}- {{ item.qty }} × {{ item.name }}{% if not loop.last %}
{% endif %}{% endfor %}

The {{ app_name }} team`

func benchData() map[string]any {
	return map[string]any{
		"user":     map[string]any{"name": "ada lovelace", "email": "ada@example.com"},
		"app_name": "PyAirtable",
		"order": map[string]any{"id": "o-1842", "total": 59.9, "currency": "eur", "items": []any{
			map[string]any{"qty": 1, "name": "Keyboard"}, map[string]any{"qty": 2, "name": "Cable"},
			map[string]any{"qty": 1, "name": "Mouse"},
		}},
	}
}

// BenchmarkRender measures the cost of one rendering of a usual notification template, in
// this process and through helper processes (EVAL_ISOLATION=inprocess and process): latency
// p50/p99 and CPU per rendering (the helpers' CPU included), for renders one at a time and
// two at a time (the default pool size).
func BenchmarkRender(b *testing.B) {
	const renders = 4000
	pool := sandbox.NewPool(sandbox.PoolConfig{Size: 2})
	defer pool.Close()
	for _, mode := range []struct {
		name string
		e    *Engine
	}{{"inprocess", New(Options{})}, {"process", New(Options{Pool: pool})}} {
		for _, concurrency := range []int{1, 2} {
			if _, err := mode.e.Render(context.Background(), benchTemplate, benchData()); err != nil {
				b.Fatal(err) // also starts the helpers and fills the caches
			}
			cpu0 := processCPU() + pool.Stats().CPU
			lat := make([]time.Duration, renders)
			start := time.Now()
			var wg sync.WaitGroup
			for w := range concurrency {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < renders; i += concurrency {
						t := time.Now()
						if _, err := mode.e.Render(context.Background(), benchTemplate, benchData()); err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(t)
					}
				}()
			}
			wg.Wait()
			wall := time.Since(start)
			cpu := processCPU() + pool.Stats().CPU - cpu0
			slices.Sort(lat)
			name := fmt.Sprintf("%s_c%d", mode.name, concurrency)
			p50, p99 := lat[renders/2], lat[renders*99/100]
			b.ReportMetric(float64(renders)/wall.Seconds(), name+"_renders/s")
			b.ReportMetric(float64(p50.Microseconds()), name+"_p50_µs")
			b.ReportMetric(float64(p99.Microseconds()), name+"_p99_µs")
			b.ReportMetric(float64(cpu.Microseconds())/renders, name+"_cpu_µs/render")
			b.Logf("%s, %d at a time: %.0f renders/s, p50 %v, p99 %v, CPU %.0f µs per render",
				mode.name, concurrency, float64(renders)/wall.Seconds(), p50, p99, float64(cpu.Microseconds())/renders)
		}
	}
}

// processCPU is this process's CPU time so far.
func processCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
