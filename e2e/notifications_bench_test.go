package e2e

import (
	"fmt"
	"sort"
	"sync"
	"syscall"
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
//   - subscriber_emails/s: the same burst addressed to subscribers in a category, with a
//     preference each and 2,000 suppressed addresses on the list, so every send runs the
//     preference and suppression checks against real rows; checks_cost_% is how much slower
//     that is than the mean of a raw burst before and after it (raw addresses: the checks
//     find nothing);
//   - cpu_ms/email and subscriber_cpu_ms/email: the CPU time of this process (the whole
//     embedded stack, the clients and the SMTP server) per email of each burst, until the stack
//     is idle again; checks_cpu_cost_% compares them as checks_cost_% compares rates. CPU time
//     hardly moves with what else the machine runs, so on a shared machine it is the figure to
//     trust;
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

	// The subscriber phase's world: a category, its subscribers each with a preference, and a
	// suppression list of 2,000 other addresses, so every check has rows to search.
	if r := c.post("/api/v1/notification-categories", map[string]any{"id": "news", "default_enabled": false}); r.Status != 201 {
		b.Fatalf("category: %d %s", r.Status, r.Body)
	}
	for n := range 20 {
		rcpts := make([]string, 100)
		for i := range rcpts {
			rcpts[i] = fmt.Sprintf("bounced%d-%d@example.com", n, i)
		}
		if r := c.post("/api/v1/notifications/providers/bounces", map[string]any{"type": "bounce", "permanent": true,
			"recipients": rcpts, "reason": "benchmark"}); r.Status != 200 {
			b.Fatalf("bounces: %d %s", r.Status, r.Body)
		}
	}
	enabled := true
	for i := range single {
		id := fmt.Sprintf("bench-sub-%d", i)
		if r := c.post("/api/v1/subscribers", map[string]any{"external_id": id, "email": id + "@example.com",
			"time_zone": "Europe/Berlin"}); r.Status != 201 {
			b.Fatalf("subscriber: %d %s", r.Status, r.Body)
		}
		if r := c.do("PUT", "/api/v1/subscribers/"+id+"/preferences", map[string]any{"preferences": []map[string]any{
			{"channel": "email", "category": "news", "enabled": &enabled}}}); r.Status != 200 {
			b.Fatalf("preferences: %d %s", r.Status, r.Body)
		}
	}

	b.ResetTimer()
	for range b.N {
		rawBurst := func(round int) burstResult {
			stamp := time.Now().UnixNano()
			return emailBurst(b, c, mail, single, clients, func(i int) (string, map[string]any) {
				to := fmt.Sprintf("bench%d-%d-%d@example.com", i, round, stamp)
				return to, map[string]any{"to": []string{to}, "subject": fmt.Sprintf("benchmark %d", i), "body": "Hello from the benchmark."}
			})
		}
		raw := rawBurst(0)
		b.ReportMetric(raw.rate, "emails/s")
		b.ReportMetric(percentileMS(raw.accept, 50), "accept_p50_ms")
		b.ReportMetric(percentileMS(raw.accept, 99), "accept_p99_ms")
		b.ReportMetric(percentileMS(raw.deliver, 50), "deliver_p50_ms")
		b.ReportMetric(percentileMS(raw.deliver, 99), "deliver_p99_ms")

		// The same burst to subscribers in a category: the subscriber lookup at accept, then at
		// send time the suppression list, the preference and the category, and the unsubscribe
		// headers of a bulk email.
		subs := emailBurst(b, c, mail, single, clients, func(i int) (string, map[string]any) {
			id := fmt.Sprintf("bench-sub-%d", i)
			return id + "@example.com", map[string]any{"subscriber_ids": []string{id}, "category": "news",
				"subject": fmt.Sprintf("benchmark %d", i), "body": "Hello from the benchmark."}
		})
		b.ReportMetric(subs.rate, "subscriber_emails/s")
		b.ReportMetric(percentileMS(subs.deliver, 50), "subscriber_deliver_p50_ms")
		// A raw burst on either side of the subscriber burst: their mean cancels the drift of a
		// growing database and of whatever else the machine does meanwhile.
		again := rawBurst(1)
		b.ReportMetric(100*(1-2*subs.rate/(raw.rate+again.rate)), "checks_cost_%")
		rawCPU := (raw.cpuPerEmail + again.cpuPerEmail) / 2
		b.ReportMetric(rawCPU, "cpu_ms/email")
		b.ReportMetric(subs.cpuPerEmail, "subscriber_cpu_ms/email")
		b.ReportMetric(100*(subs.cpuPerEmail/rawCPU-1), "checks_cpu_cost_%")

		base := len(mail.Messages())
		start := time.Now()
		for n := range fanout {
			to := make([]string, 100)
			for i := range to {
				to[i] = fmt.Sprintf("fan%d-%d-%d@example.com", n, i, start.UnixNano())
			}
			if r := c.post("/api/v1/notifications/email", map[string]any{"to": to, "subject": "fan-out", "body": "b"}); r.Status != 202 {
				b.Fatalf("fan-out send: %d %s", r.Status, r.Body)
			}
		}
		msgs := mail.WaitFor(b, base+fanout*100, 5*time.Minute)[base:]
		b.ReportMetric(float64(fanout*100)/msgs[len(msgs)-1].Received.Sub(start).Seconds(), "fanout_emails/s")
	}
}

// burstResult is one burst's figures: emails/s from the first request to the last message at
// the SMTP server, and each request's accept and delivery latency.
type burstResult struct {
	rate            float64
	accept, deliver []time.Duration
	// cpuPerEmail is this process's CPU milliseconds per email, until the stack was idle again.
	cpuPerEmail float64
}

// emailBurst posts n single-recipient notifications from clients concurrent clients, each
// body(i) giving the recipient it expects and the request, and waits for the n messages.
func emailBurst(b *testing.B, c *call, mail *smtptest.Server, n, clients int, body func(int) (string, map[string]any)) burstResult {
	b.Helper()
	base := len(mail.Messages())
	sentAt := make(map[string]time.Time, n)
	var res burstResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan int)
	cpu0 := processCPU(b)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				to, req := body(i)
				t0 := time.Now()
				r := c.post("/api/v1/notifications/email", req)
				if r.Status != 202 {
					b.Errorf("send %d: %d %s", i, r.Status, r.Body)
					continue
				}
				mu.Lock()
				sentAt[to] = t0
				res.accept = append(res.accept, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	msgs := mail.WaitFor(b, base+n, 5*time.Minute)[base:]
	res.rate = float64(n) / msgs[len(msgs)-1].Received.Sub(start).Seconds()
	res.cpuPerEmail = float64(settle(b)-cpu0) / float64(time.Millisecond) / float64(n)
	for _, m := range msgs {
		if t0, ok := sentAt[m.To[0]]; ok {
			res.deliver = append(res.deliver, m.Received.Sub(t0))
		}
	}
	return res
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

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// settle waits until the stack has finished the work a burst left (each sent email's
// bookkeeping and events come after the SMTP server has it): until a 200 ms interval used less
// than a tenth of a core, or 15 s. It returns the process's CPU time then.
func settle(b *testing.B) time.Duration {
	const interval = 200 * time.Millisecond
	last := processCPU(b)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		time.Sleep(interval)
		now := processCPU(b)
		if now-last < interval/10 {
			return now
		}
		last = now
	}
	return last
}
