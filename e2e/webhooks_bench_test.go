package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWebhookFanOut measures webhook fan-out on the embedded stack (everything in this
// process: API, worker, Temporal on SQLite, the app's SQLite) to 10 local receivers:
//
//   - burst: messages posted to /webhooks/deliver by 16 clients as fast as the API takes them;
//     deliveries/s counts receipts from the first post to the last receipt.
//   - paced: 20 messages/s for 10 s; p50/p99 are from the start of the POST to the receipt.
//
// In the 1-of-10 cases one receiver answers 500 to everything, or never answers within its
// 1 s timeout; deliveries/s and the latencies are then the other nine's, which the bad one must
// not slow.
func BenchmarkWebhookFanOut(b *testing.B) {
	for _, tc := range []struct {
		name string
		bad  badReceiver
	}{{"10-healthy", none}, {"1-of-10-failing", failing}, {"1-of-10-timing-out", hanging}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				benchFanOut(b, tc.bad)
			}
		})
	}
}

// BenchmarkWebhookFanOutTracing is the 10-healthy fan-out with tracing off (no OTEL_*
// variable) and on, sampling every trace, exporting over OTLP/HTTP to a receiver in this
// process (which decodes and counts the spans).
func BenchmarkWebhookFanOutTracing(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on-100pct-sampled"
		}
		b.Run(name, func(b *testing.B) {
			var otlp *otlpReceiver
			if on {
				otlp = newOTLPReceiver(b)
				otlp.countOnly = true
				b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.srv.URL)
				b.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
				b.Setenv("OTEL_TRACES_SAMPLER", "always_on")
			}
			for range b.N {
				benchFanOut(b, none)
			}
			if otlp != nil {
				otlp.mu.Lock()
				b.ReportMetric(float64(otlp.count), "spans-exported")
				otlp.mu.Unlock()
			}
		})
	}
}

// badReceiver says how the first receiver misbehaves.
type badReceiver int

const (
	none    badReceiver = iota
	failing             // answers 500
	hanging             // answers after 2 s, past the endpoint's 1 s timeout
)

type benchReceiver struct {
	mu       sync.Mutex
	latency  []time.Duration
	count    atomic.Int64
	last     atomic.Int64 // unix nanos of the last receipt
	bad      badReceiver
	requests atomic.Int64
}

func benchFanOut(b *testing.B, bad badReceiver) {
	const (
		endpoints   = 10
		burstEvents = 1500
		posters     = 16
		pacedRate   = 20
		pacedFor    = 10 * time.Second
	)
	base, key := benchStack(b, webhookEnv(map[string]string{
		"RATE_LIMIT_PER_SECOND": "100000", "RATE_LIMIT_BURST": "100000",
	}))
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	var (
		sentAt  sync.Map // seq → time.Time of the POST
		phase   atomic.Int64
		rcs     = make([]*benchReceiver, endpoints)
		servers = make([]string, endpoints)
	)
	failing := 0
	if bad != none {
		failing = 1
	}
	for i := range endpoints {
		rc := &benchReceiver{}
		if i < failing {
			rc.bad = bad
		}
		rcs[i] = rc
		srv := httptest.NewServer(latencyHandler(rc, &sentAt, &phase))
		b.Cleanup(srv.Close)
		servers[i] = srv.URL + "/hook"
	}
	for i, u := range servers {
		status, body, err := rawPost(hc, base+"/api/v1/webhooks/endpoints", key, map[string]any{
			"name": fmt.Sprintf("bench-%d", i), "url": u, "events": []string{"bench.*"}, "timeout_seconds": 1,
		})
		if err != nil || status != 201 {
			b.Fatalf("create endpoint: %d %s %v", status, body, err)
		}
	}
	var (
		postMu    sync.Mutex
		postTimes []time.Duration
	)
	post := func(seq int) {
		start := time.Now()
		sentAt.Store(seq, start)
		status, body, err := rawPost(hc, base+"/api/v1/webhooks/deliver", key, map[string]any{
			"event_type": "bench.happened", "payload": map[string]any{"seq": seq},
		})
		if err != nil || status != 202 {
			b.Errorf("deliver %d: %d %s %v", seq, status, body, err)
		}
		postMu.Lock()
		postTimes = append(postTimes, time.Since(start))
		postMu.Unlock()
	}
	healthy := endpoints - failing
	waitFor := func(want int64, timeout time.Duration) {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			var got int64
			for _, rc := range rcs {
				if rc.bad == none {
					got += rc.count.Load()
				}
			}
			if got >= want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.Fatalf("receivers did not get %d deliveries within %s", want, timeout)
	}

	// Warm up: every dispatcher started, connections open.
	phase.Store(0)
	for seq := range 5 {
		post(1_000_000 + seq)
	}
	waitFor(int64(5*healthy), time.Minute)
	reset := func(p int64) {
		phase.Store(p)
		for _, rc := range rcs {
			rc.mu.Lock()
			rc.latency = rc.latency[:0]
			rc.mu.Unlock()
			rc.count.Store(0)
		}
	}

	// Burst.
	reset(1)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seq := int(next.Add(1))
				if seq > burstEvents {
					return
				}
				post(seq)
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(start)
	waitFor(int64(burstEvents*healthy), 5*time.Minute)
	var lastNano int64
	for _, rc := range rcs {
		lastNano = max(lastNano, rc.last.Load())
	}
	burst := time.Unix(0, lastNano).Sub(start)
	b.ReportMetric(float64(burstEvents*healthy)/burst.Seconds(), "deliveries/s")
	b.ReportMetric(float64(burstEvents)/accepted.Seconds(), "accepted-msgs/s")
	bp50, bp99 := percentiles(rcs)
	b.ReportMetric(bp50, "burst-p50-ms")
	b.ReportMetric(bp99, "burst-p99-ms")

	// Paced: 20 messages/s.
	reset(2)
	postMu.Lock()
	postTimes = postTimes[:0]
	postMu.Unlock()
	tick := time.NewTicker(time.Second / pacedRate)
	n := int(pacedFor.Seconds()) * pacedRate
	var pwg sync.WaitGroup
	for seq := range n {
		<-tick.C
		pwg.Add(1)
		go func() { defer pwg.Done(); post(2_000_000 + seq) }()
	}
	tick.Stop()
	pwg.Wait()
	waitFor(int64(n*healthy), 2*time.Minute)
	p50, p99 := percentiles(rcs)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	postMu.Lock()
	slices.Sort(postTimes)
	b.ReportMetric(float64(postTimes[len(postTimes)/2].Microseconds())/1000, "accept-p50-ms")
	postMu.Unlock()
	if failing > 0 {
		var failed int64
		for _, rc := range rcs {
			if rc.bad != none {
				failed += rc.requests.Load()
			}
		}
		b.ReportMetric(float64(failed), "requests-to-bad")
	}
}

// latencyHandler records, for each request of the current phase, the time since its message
// was posted.
func latencyHandler(rc *benchReceiver, sentAt *sync.Map, phase *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch rc.bad {
		case failing:
			rc.requests.Add(1)
			w.WriteHeader(500)
			return
		case hanging:
			rc.requests.Add(1)
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		var body struct {
			Data struct {
				Seq int `json:"seq"`
			} `json:"data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		now := time.Now()
		w.WriteHeader(200)
		p := phase.Load()
		seq := body.Data.Seq
		inPhase := map[int64]bool{0: seq >= 1_000_000 && seq < 2_000_000, 1: seq < 1_000_000, 2: seq >= 2_000_000}
		if inPhase[p] {
			if t, ok := sentAt.Load(seq); ok {
				rc.mu.Lock()
				rc.latency = append(rc.latency, now.Sub(t.(time.Time)))
				rc.mu.Unlock()
			}
			rc.count.Add(1)
			rc.last.Store(now.UnixNano())
		}
	})
}

func percentiles(rcs []*benchReceiver) (p50, p99 float64) {
	var all []time.Duration
	for _, rc := range rcs {
		rc.mu.Lock()
		all = append(all, rc.latency...)
		rc.mu.Unlock()
	}
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	at := func(q float64) float64 {
		return float64(all[min(int(q*float64(len(all))), len(all)-1)].Microseconds()) / 1000
	}
	return at(0.50), at(0.99)
}
