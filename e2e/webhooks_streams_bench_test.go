package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pyairtable/automation-domain/store"
)

// BenchmarkWebhookStreamFanOut measures fan-out to stream destinations on the embedded stack:
// a burst of messages posted to /webhooks/deliver by 16 clients, each delivered to 10 JetStream
// streams or 10 RabbitMQ queues; deliveries/s counts from the first POST until
// the broker holds every message (the HTTP figure beside it is BenchmarkWebhookFanOut's).
func BenchmarkWebhookStreamFanOut(b *testing.B) {
	for _, kind := range []string{"nats", "amqp"} {
		b.Run(kind, func(b *testing.B) { benchStreamFanOut(b, kind) })
	}
}

func benchStreamFanOut(b *testing.B, kind string) {
	const (
		destinations = 10
		messages     = 1000
		posters      = 16
	)
	ctx := context.Background()
	name := "BENCH" + strings.ToUpper(store.NewID())
	var held func() (int, error)
	targets := make([]map[string]any, destinations)
	switch kind {
	case "nats":
		nc, err := nats.Connect("nats://127.0.0.1:4222")
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		// One stream per destination: JetStream drops a second message with the same
		// Nats-Msg-Id within a stream, and every destination publishes the message's id.
		streams := make([]jetstream.Stream, destinations)
		for i := range streams {
			sn := fmt.Sprintf("%s_%d", name, i)
			st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: sn, Subjects: []string{sn + ".>"}})
			if err != nil {
				b.Fatal(err)
			}
			defer js.DeleteStream(context.Background(), sn)
			streams[i] = st
			targets[i] = map[string]any{"type": "nats", "url": "nats://127.0.0.1:4222", "subject": sn + ".events"}
		}
		held = func() (int, error) {
			total := 0
			for _, st := range streams {
				info, err := st.Info(ctx)
				if err != nil {
					return 0, err
				}
				total += int(info.State.Msgs)
			}
			return total, nil
		}
	case "amqp":
		ac, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
		if err != nil {
			b.Fatal(err)
		}
		defer ac.Close()
		ch, err := ac.Channel()
		if err != nil {
			b.Fatal(err)
		}
		queues := make([]string, destinations)
		for i := range queues {
			queues[i] = fmt.Sprintf("bench-%s-%d", name, i)
			if _, err := ch.QueueDeclare(queues[i], true, false, false, false, nil); err != nil {
				b.Fatal(err)
			}
			defer ch.QueueDelete(queues[i], false, false, false)
			targets[i] = map[string]any{"type": "amqp", "url": "amqp://guest:guest@127.0.0.1:5672/", "routing_key": queues[i]}
		}
		held = func() (int, error) {
			total := 0
			for _, q := range queues {
				st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
				if err != nil {
					return 0, err
				}
				total += st.Messages
			}
			return total, nil
		}
	}

	base, key := benchStack(b, webhookEnv(map[string]string{
		"RATE_LIMIT_PER_SECOND": "100000", "RATE_LIMIT_BURST": "100000",
	}))
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for i, t := range targets {
		t["name"], t["events"] = fmt.Sprintf("bench-%s-%d", kind, i), []string{"bench.*"}
		if status, body, err := rawPost(hc, base+"/api/v1/webhooks/endpoints", key, t); err != nil || status != 201 {
			b.Fatalf("create endpoint: %d %s %v", status, body, err)
		}
	}
	post := func(seq int) {
		status, body, err := rawPost(hc, base+"/api/v1/webhooks/deliver", key, map[string]any{
			"event_type": "bench.happened", "payload": map[string]any{"seq": seq},
		})
		if err != nil || status != 202 {
			b.Errorf("deliver %d: %d %s %v", seq, status, body, err)
		}
	}
	waitFor := func(want int, timeout time.Duration) {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if got, err := held(); err == nil && got >= want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		got, err := held()
		b.Fatalf("%s holds %d of %d messages after %s (%v)", kind, got, want, timeout, err)
	}
	// Warm-up: one message starts the dispatchers and opens the broker connections.
	post(-1)
	waitFor(destinations, time.Minute)

	b.ResetTimer()
	start := time.Now()
	seqs := make(chan int)
	var wg sync.WaitGroup
	for range posters {
		wg.Go(func() {
			for seq := range seqs {
				post(seq)
			}
		})
	}
	for i := range messages {
		seqs <- i
	}
	close(seqs)
	wg.Wait()
	accepted := time.Since(start)
	waitFor(destinations*(messages+1), 5*time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(destinations*messages)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(messages)/accepted.Seconds(), "accepted_msgs/s")
}
