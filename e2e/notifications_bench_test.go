package e2e

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/smtptest"
)

// BenchmarkEmailThroughput measures email sent through the whole embedded stack — HTTP API,
// Temporal workflow, rate-limited email task queue, SMTP — to a local SMTP server:
//
//   - emails/s: single-recipient notifications posted by 16 concurrent clients, from the first
//     request to the last message the SMTP server accepted;
//   - accept_p50_ms / accept_p99_ms: how long POST /notifications/email takes to answer 202;
//   - deliver_p50_ms / deliver_p99_ms: from the request to the message at the SMTP server;
//   - fanout_emails/s: notifications of 100 recipients each (one workflow, 100 deliveries).
func BenchmarkEmailThroughput(b *testing.B) {
	const (
		single  = 300
		clients = 16
		fanout  = 3
	)
	mail := smtptest.Start(b)
	cfg := testConfig(b, b.TempDir(), map[string]string{
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"SMTP_RATE_PER_SECOND": "1000", "SMTP_MAX_CONNECTIONS": "50", "LOG_LEVEL": "warn",
		"RATE_LIMIT_PER_SECOND": "100000", "RATE_LIMIT_BURST": "100000",
	})
	s := startEmbedded(b, cfg)
	c := s.client(b)
	// Warm up: the first workflow pays for task-queue creation.
	c.post("/api/v1/notifications/email", map[string]any{"to": []string{"warm@example.com"}, "subject": "warm", "body": "up"})
	mail.WaitFor(b, 1, 30*time.Second)

	b.ResetTimer()
	for range b.N {
		base := len(mail.Messages())
		sentAt := make(map[string]time.Time, single)
		var accept []time.Duration
		var mu sync.Mutex
		var wg sync.WaitGroup
		jobs := make(chan int)
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					to := fmt.Sprintf("bench%d-%d@example.com", i, start.UnixNano())
					t0 := time.Now()
					r := c.post("/api/v1/notifications/email", map[string]any{"to": []string{to},
						"subject": fmt.Sprintf("benchmark %d", i), "body": "Hello from the benchmark."})
					if r.Status != 202 {
						b.Errorf("send %d: %d %s", i, r.Status, r.Body)
						continue
					}
					mu.Lock()
					sentAt[to] = t0
					accept = append(accept, time.Since(t0))
					mu.Unlock()
				}
			}()
		}
		for i := range single {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		msgs := mail.WaitFor(b, base+single, 5*time.Minute)[base:]
		elapsed := msgs[len(msgs)-1].Received.Sub(start)
		var deliver []time.Duration
		for _, m := range msgs {
			if t0, ok := sentAt[m.To[0]]; ok {
				deliver = append(deliver, m.Received.Sub(t0))
			}
		}
		b.ReportMetric(float64(single)/elapsed.Seconds(), "emails/s")
		b.ReportMetric(percentileMS(accept, 50), "accept_p50_ms")
		b.ReportMetric(percentileMS(accept, 99), "accept_p99_ms")
		b.ReportMetric(percentileMS(deliver, 50), "deliver_p50_ms")
		b.ReportMetric(percentileMS(deliver, 99), "deliver_p99_ms")

		base = len(mail.Messages())
		start = time.Now()
		for n := range fanout {
			to := make([]string, 100)
			for i := range to {
				to[i] = fmt.Sprintf("fan%d-%d-%d@example.com", n, i, start.UnixNano())
			}
			if r := c.post("/api/v1/notifications/email", map[string]any{"to": to, "subject": "fan-out", "body": "b"}); r.Status != 202 {
				b.Fatalf("fan-out send: %d %s", r.Status, r.Body)
			}
		}
		msgs = mail.WaitFor(b, base+fanout*100, 5*time.Minute)[base:]
		b.ReportMetric(float64(fanout*100)/msgs[len(msgs)-1].Received.Sub(start).Seconds(), "fanout_emails/s")
	}
}

func percentileMS(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return float64(sorted[i].Microseconds()) / 1000
}
