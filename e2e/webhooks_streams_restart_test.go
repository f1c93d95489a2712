package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
)

// streamSinks are a JetStream stream (file storage) and a durable RabbitMQ queue that endpoints
// of type nats and amqp deliver to, with a test consumer reading them by message id.
type streamSinks struct {
	natsURL, amqpURL string
	subject, queue   string
	stream           jetstream.Stream
	amqpSeen         map[string]int // every message_id taken off the queue so far, with its count
}

func newStreamSinks(t *testing.T, natsURL, amqpURL string) *streamSinks {
	t.Helper()
	ctx := context.Background()
	name := "E2E" + strings.ToUpper(store.NewID())
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The default duplicate window (2 minutes) spans the test: a message sent again after a
	// restart or a crash is stored once.
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	s := &streamSinks{natsURL: natsURL, amqpURL: amqpURL, subject: name + ".events", queue: "e2e-" + name, stream: stream, amqpSeen: map[string]int{}}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	s.withChannel(t, func(ch *amqp.Channel) {
		if _, err := ch.QueueDeclare(s.queue, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() {
		if conn, err := amqp.Dial(amqpURL); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(s.queue, false, false, false)
			}
			conn.Close()
		}
	})
	return s
}

// withChannel runs f on a fresh AMQP channel (the broker may have restarted since the last one).
func (s *streamSinks) withChannel(t *testing.T, f func(*amqp.Channel)) {
	t.Helper()
	conn, err := amqp.Dial(s.amqpURL)
	if err != nil {
		t.Fatalf("amqp: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("amqp channel: %v", err)
	}
	f(ch)
}

// endpoints creates a nats and an amqp endpoint (events stream.*) on the sinks and returns their ids.
func (s *streamSinks) endpoints(t *testing.T, c *call, extra map[string]any) (natsID, amqpID string) {
	t.Helper()
	body := func(m map[string]any) map[string]any {
		m["events"] = []string{"stream.*"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	natsID = createEndpoint(t, c, body(map[string]any{"name": "stream", "type": "nats", "url": s.natsURL, "subject": s.subject}))
	amqpID = createEndpoint(t, c, body(map[string]any{"name": "queue", "type": "amqp", "url": s.amqpURL, "routing_key": s.queue}))
	return natsID, amqpID
}

// jetStreamMsgs returns how many messages the stream stores (0 when it cannot be asked).
func (s *streamSinks) jetStreamMsgs() uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// readJetStream reads the whole stream and counts its messages by Nats-Msg-Id, checking that
// it is the message's webhook-id.
func (s *streamSinks) readJetStream(t *testing.T) map[string]int {
	t.Helper()
	ctx := context.Background()
	info, err := s.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if m.Header.Get("webhook-id") != id {
			t.Errorf("Nats-Msg-Id %q, webhook-id %q", id, m.Header.Get("webhook-id"))
		}
		seen[id]++
	}
	return seen
}

// drainQueue takes every message now in the queue (acknowledged) and adds it to amqpSeen by
// message_id; it returns how many it took.
func (s *streamSinks) drainQueue(t *testing.T) int {
	t.Helper()
	n := 0
	s.withChannel(t, func(ch *amqp.Channel) {
		for {
			d, ok, err := ch.Get(s.queue, true)
			if err != nil {
				t.Fatalf("amqp get: %v", err)
			}
			if !ok {
				return
			}
			if d.MessageId == "" || d.DeliveryMode != amqp.Persistent {
				t.Errorf("amqp message: message_id %q, delivery mode %d", d.MessageId, d.DeliveryMode)
			}
			s.amqpSeen[d.MessageId]++
			n++
		}
	})
	return n
}

// queueHasAll drains the queue and reports whether every one of ids has been taken off it.
func (s *streamSinks) queueHasAll(t *testing.T, ids []string) bool {
	t.Helper()
	s.drainQueue(t)
	for _, id := range ids {
		if s.amqpSeen[id] == 0 {
			return false
		}
	}
	return true
}

// jetStreamHasAll reports whether the stream stores every one of ids.
func (s *streamSinks) jetStreamHasAll(t *testing.T, ids []string) bool {
	t.Helper()
	if s.jetStreamMsgs() < uint64(len(ids)) {
		return false
	}
	seen := s.readJetStream(t)
	for _, id := range ids {
		if seen[id] == 0 {
			return false
		}
	}
	return true
}

// checkStreams asserts what the stream destinations guarantee: the JetStream stream stores each
// message exactly once (Nats-Msg-Id de-duplication) and nothing else; the RabbitMQ queue got
// each message at least once and nothing else, and the consumer, de-duplicating by message_id,
// reads each exactly once. It returns the number of repeated AMQP messages (at least once allows
// them; the test logs them).
func (s *streamSinks) checkStreams(t *testing.T, ids []string) (amqpRepeats int) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	checkOnce(t, "JetStream", s.readJetStream(t), want)
	s.drainQueue(t)
	byID := map[string]int{}
	for id, k := range s.amqpSeen {
		if !want[id] {
			t.Errorf("RabbitMQ: message %s was never sent", id)
		}
		byID[id] = 1
		amqpRepeats += k - 1
	}
	checkOnce(t, "RabbitMQ (by message_id)", byID, want)
	return amqpRepeats
}

// streamsEnv makes failed broker attempts come back within seconds (the default schedule waits
// 5 s, then 5 min), with enough of them to outlast a broker restart, and a short circuit
// breaker cooldown.
func streamsEnv() map[string]string {
	return map[string]string{
		"WEBHOOK_RETRY_SCHEDULE":   "1s,1s,1s,2s,2s,2s,3s,3s,3s,5s,5s,5s,5s,5s,5s,5s,5s,5s",
		"WEBHOOK_TIMEOUT":          "3s",
		"WEBHOOK_CIRCUIT_COOLDOWN": "1s",
	}
}

// noDeliveryLeft waits until the log has no pending or failed delivery.
func noDeliveryLeft(t *testing.T, c *call) {
	t.Helper()
	eventually(t, 60*time.Second, "no pending or failed delivery", func() bool {
		return len(deliveriesOf(t, c, "status=pending")) == 0 && len(deliveriesOf(t, c, "status=failed")) == 0
	})
}

// TestWebhookStreamsBrokerRestart delivers 60 messages posted over HTTP to a JetStream stream
// and a RabbitMQ queue on private brokers (started by the test, so the machine's shared ones are
// never restarted), stopping each broker mid-stream and starting it again on the same port and
// store. Attempts while a broker is down fail and are retried; afterwards the stream stores every
// message exactly once by Nats-Msg-Id, and the queue's consumer reads every message_id (at least
// once: the test counts and logs repeats) and nothing else.
func TestWebhookStreamsBrokerRestart(t *testing.T) {
	ns := testenv.StartNATS(t)
	rmq := testenv.StartRabbitMQ(t)
	sinks := newStreamSinks(t, ns.URL(), rmq.URL())
	s := startEmbedded(t, testConfig(t, t.TempDir(), webhookEnv(streamsEnv())))
	c := s.client(t)
	// Rate limited, so that each broker stops with deliveries still to make.
	natsID, amqpID := sinks.endpoints(t, c, map[string]any{"rate_limit_per_second": 15})

	const n = 60
	var ids []string
	post := func(t *testing.T, c *call, k int) {
		for range k {
			ids = append(ids, deliver(t, c, "stream.tick", map[string]any{"n": len(ids)}))
		}
	}
	queued := func(t *testing.T) (k int) {
		sinks.withChannel(t, func(ch *amqp.Channel) {
			q, err := ch.QueueDeclarePassive(sinks.queue, true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			k = q.Messages
		})
		return k
	}
	t.Run("messages keep being accepted while the brokers restart", func(t *testing.T) {
		c := &call{t: t, base: c.base, key: c.key, header: c.header}
		post(t, c, 30)
		eventually(t, time.Minute, "deliveries to the stream", func() bool { return sinks.jetStreamMsgs() >= 8 })
		natsAtStop := sinks.jetStreamMsgs()
		ns.Stop(t)
		post(t, c, 15)
		ns.Start(t)
		eventually(t, time.Minute, "deliveries to the queue", func() bool { return queued(t) >= 33 })
		amqpAtStop := queued(t)
		rmq.Stop(t)
		post(t, c, n-45)
		rmq.Start(t)
		t.Logf("stopped JetStream with %d of 30 posted messages stored, RabbitMQ with %d of 45 queued", natsAtStop, amqpAtStop)
		if natsAtStop >= 30 || amqpAtStop >= 45 {
			t.Errorf("a broker stopped after its deliveries had finished")
		}
	})

	t.Run("every message reaches the stream and the queue", func(t *testing.T) {
		eventually(t, 2*time.Minute, "every message in the stream", func() bool { return sinks.jetStreamHasAll(t, ids) })
		eventually(t, 2*time.Minute, "every message off the queue", func() bool { return sinks.queueHasAll(t, ids) })
		c := &call{t: t, base: c.base, key: c.key, header: c.header}
		noDeliveryLeft(t, c)
		repeats := sinks.checkStreams(t, ids)
		t.Logf("RabbitMQ: %d repeated messages (at least once)", repeats)
	})

	t.Run("the attempt log shows the failed attempts while each broker was down", func(t *testing.T) {
		c := &call{t: t, base: c.base, key: c.key, header: c.header}
		for _, ep := range []struct{ kind, id string }{{"nats", natsID}, {"amqp", amqpID}} {
			ds := deliveriesOf(t, c, "endpoint_id="+ep.id)
			retried := 0
			for _, d := range ds {
				if d.Status != "succeeded" {
					t.Errorf("%s delivery %s: %s", ep.kind, d.ID, d.Status)
				}
				if d.AttemptCount > 1 {
					retried++
				}
			}
			if len(ds) != n || retried == 0 {
				t.Errorf("%s: %d deliveries, %d retried; want %d with some retried", ep.kind, len(ds), retried, n)
			}
			t.Logf("%s: %d of %d deliveries needed more than one attempt", ep.kind, retried, len(ds))
		}
	})
}

// TestWebhookStreamsWorkerCrashLosesNothing runs the production shape (API and worker
// processes on Postgres and Redis), kills the worker with SIGKILL while it delivers to a
// JetStream stream and a RabbitMQ queue (rate limited, so the deliveries take seconds), keeps
// accepting messages while no worker runs, starts a new worker, and checks that every message id
// arrives: exactly once in the stream (Nats-Msg-Id), at least once in the queue (a message
// published but not yet recorded when the worker died is sent again; the test logs repeats).
func TestWebhookStreamsWorkerCrashLosesNothing(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:4222", "127.0.0.1:5672"} {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("broker %s is not running (.ci/run starts it): %v", addr, err)
		}
		conn.Close()
	}
	sinks := newStreamSinks(t, "nats://127.0.0.1:4222", "amqp://guest:guest@127.0.0.1:5672/")
	p := startProductionStack(t, streamsEnv())
	worker := p.startWorker(t)
	c := p.c
	sinks.endpoints(t, c, map[string]any{"rate_limit_per_second": 10})

	const before, during = 60, 20
	var ids []string
	for i := range before {
		ids = append(ids, deliver(t, c, "stream.crash", map[string]any{"i": i}))
	}
	eventually(t, 60*time.Second, "the deliveries to be under way", func() bool { return sinks.jetStreamMsgs() >= 15 })
	worker.Kill()
	atKill := sinks.jetStreamMsgs()
	if atKill >= before {
		t.Fatalf("the stream had every message (%d) before the kill", atKill)
	}
	t.Logf("killed the worker with %d of %d messages in the stream", atKill, before)

	// Accepted while no worker runs.
	for i := range during {
		ids = append(ids, deliver(t, c, "stream.crash", map[string]any{"i": before + i}))
	}
	p.startWorker(t)

	t.Run("every message id arrives on JetStream and RabbitMQ", func(t *testing.T) {
		eventually(t, 3*time.Minute, "every message in the stream", func() bool { return sinks.jetStreamHasAll(t, ids) })
		eventually(t, 3*time.Minute, "every message off the queue", func() bool { return sinks.queueHasAll(t, ids) })
		c := &call{t: t, base: c.base, key: c.key, header: c.header}
		noDeliveryLeft(t, c)
		repeats := sinks.checkStreams(t, ids)
		t.Logf("RabbitMQ: %d repeated messages after the crash (at least once)", repeats)
	})
}
