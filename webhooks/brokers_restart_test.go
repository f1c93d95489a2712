package webhooks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
)

// sendThrough stands for the delivery scheduler: it sends each message until an attempt
// succeeds, restarting the broker once in the middle, and returns the longest failed attempt.
func sendThrough(t *testing.T, s *Sender, n int, req func(i int) Request, stop, start func()) (failed int, slowest time.Duration) {
	t.Helper()
	for i := range n {
		if i == n/3 {
			stop()
		}
		if i == n/2 {
			start()
		}
		deadline := time.Now().Add(90 * time.Second)
		for {
			res := s.Send(context.Background(), req(i))
			v := Judge(res)
			if v.Success {
				break
			}
			if !v.Retryable {
				t.Fatalf("message %d: final failure %+v", i, res)
			}
			failed++
			slowest = max(slowest, res.Duration)
			if time.Now().After(deadline) {
				t.Fatalf("message %d: still failing: %+v", i, res)
			}
			if i >= n/3 && i < n/2 {
				break // the broker is down: fail fast, retried after the restart below
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return failed, slowest
}

// TestJetStreamBrokerRestart stops a private JetStream server a third of the way through 30
// messages and starts it again (same port and store) half way: attempts while it is down fail
// fast and are retried, and the stream holds every message once by Nats-Msg-Id.
func TestJetStreamBrokerRestart(t *testing.T) {
	srv := testenv.StartNATS(t) // a private server: the shared one is never restarted
	ctx := context.Background()
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	name := "R" + store.NewID()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(context.Background(), name)
	s := loopbackSender(t)
	const n = 30
	req := func(i int) Request {
		r := brokerRequest(TypeNATS, srv.URL(), fmt.Sprintf("msg_%d", i))
		r.Subject, r.Timeout = name+".events", 2*time.Second
		return r
	}
	failed, slowest := sendThrough(t, s, n, req, func() { srv.Stop(t) }, func() { srv.Start(t) })
	// Messages whose attempt failed while the broker was down are sent again now (as retries).
	for i := n / 3; i < n/2; i++ {
		for res := s.Send(ctx, req(i)); !Judge(res).Success; res = s.Send(ctx, req(i)) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	eventually := time.Now().Add(30 * time.Second)
	for nc.Status() != nats.CONNECTED && time.Now().Before(eventually) {
		time.Sleep(100 * time.Millisecond)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		seen[m.Header.Get(jetstream.MsgIDHeader)]++
	}
	for i := range n {
		if k := seen[fmt.Sprintf("msg_%d", i)]; k != 1 {
			t.Errorf("msg_%d stored %d times", i, k)
		}
	}
	t.Logf("JetStream restart: %d messages, %d failed attempts while down (slowest %v), %d stored", n, failed, slowest, info.State.Msgs)
	if slowest > 3*time.Second {
		t.Errorf("a failed attempt took %v", slowest)
	}
}

// TestRabbitMQBrokerRestart does the same with a private RabbitMQ node and a durable queue. The
// node stops between two sends (no publish is in flight), so every message is queued exactly
// once; a stop during a publish could queue an unconfirmed message that is then sent again
// (AMQP is at least once, hence message_id for the consumer's de-duplication).
func TestRabbitMQBrokerRestart(t *testing.T) {
	srv := testenv.StartRabbitMQ(t) // a private node: the shared one is never restarted
	q := "restart-" + store.NewID()
	declare := func() *amqp.Connection {
		conn, err := amqp.Dial(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	conn := declare()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	s := loopbackSender(t)
	const n = 30
	req := func(i int) Request {
		r := brokerRequest(TypeAMQP, srv.URL(), fmt.Sprintf("msg_%d", i))
		r.RoutingKey, r.Timeout = q, 2*time.Second
		return r
	}
	failed, slowest := sendThrough(t, s, n, req, func() { srv.Stop(t) }, func() { srv.Start(t) })
	for i := n / 3; i < n/2; i++ {
		for res := s.Send(context.Background(), req(i)); !Judge(res).Success; res = s.Send(context.Background(), req(i)) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	conn = declare()
	defer conn.Close()
	ch, err = conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(q, false, false, false)
	seen := map[string]int{}
	for {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		seen[d.MessageId]++
	}
	for i := range n {
		if k := seen[fmt.Sprintf("msg_%d", i)]; k != 1 {
			t.Errorf("msg_%d queued %d times", i, k)
		}
	}
	t.Logf("RabbitMQ restart: %d messages, %d failed attempts while down (slowest %v)", n, failed, slowest)
	if slowest > 3*time.Second {
		t.Errorf("a failed attempt took %v", slowest)
	}
}
