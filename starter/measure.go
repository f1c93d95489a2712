package main

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// measure POSTs body to path n times, concurrency at a time, and prints the throughput, the
// latency (p50, p99) and the service's CPU per request: the API process's and its evaluation
// helpers' (from /metrics, when it is reachable; it then covers the whole process).
func (c *apiClient) measure(path string, body any, n, concurrency int) error {
	if concurrency < 1 {
		concurrency = 1
	}
	cpu0, cpuOK := c.serviceCPU()
	lat := make([]time.Duration, n)
	var (
		mu     sync.Mutex
		failed int
		first  error
	)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += concurrency {
				t := time.Now()
				_, _, err := c.call("POST", path, body, nil)
				lat[i] = time.Since(t)
				if err != nil {
					mu.Lock()
					failed++
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	slices.Sort(lat)
	fmt.Fprintf(c.out, "%d requests, %d at a time: %.0f/s, p50 %v, p99 %v", n, concurrency,
		float64(n)/wall.Seconds(), lat[n/2].Round(time.Microsecond), lat[n*99/100].Round(time.Microsecond))
	if cpu1, ok := c.serviceCPU(); ok && cpuOK {
		fmt.Fprintf(c.out, ", service CPU %.0f µs per request", (cpu1-cpu0)*1e6/float64(n))
	}
	fmt.Fprintln(c.out)
	if failed > 0 {
		return fmt.Errorf("%d of %d requests failed, the first: %w", failed, n, first)
	}
	return nil
}

// serviceCPU reads the CPU seconds the API process and its evaluation helpers have used.
func (c *apiClient) serviceCPU() (float64, bool) {
	res, err := c.http.Get(c.baseURL + "/metrics")
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, false
	}
	var total float64
	found := false
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{"process_cpu_seconds_total ", "automation_eval_helpers_cpu_seconds_total "} {
			if v, ok := strings.CutPrefix(line, name); ok {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					total += f
					found = true
				}
			}
		}
	}
	return total, found
}
