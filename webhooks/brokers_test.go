package webhooks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/store"
)

const (
	testNATSURL = "nats://127.0.0.1:4222"
	testAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"
)

// needBroker skips (or fails under REQUIRE_SERVICES) when the local broker is not listening.
func needBroker(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("REQUIRE_SERVICES") != "" {
			t.Fatalf("broker %s: %v", addr, err)
		}
		t.Skipf("broker %s not running: %v", addr, err)
	}
	c.Close()
}

func loopbackPolicy() *netguard.Policy {
	return &netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
}

func loopbackSender(t *testing.T) *Sender {
	s := NewSender(loopbackPolicy())
	t.Cleanup(s.Close)
	return s
}

func brokerRequest(typ, url, msgID string) Request {
	return Request{Type: typ, URL: url, MessageID: msgID, Timestamp: time.Unix(1700000000, 0), Body: []byte(`{"type":"t","data":{}}`),
		Keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, Headers: map[string]string{"X-Custom": "v"}, Timeout: 5 * time.Second}
}

func TestSenderPublishesToJetStreamOncePerID(t *testing.T) {
	needBroker(t, "127.0.0.1:4222")
	ctx := context.Background()
	nc, err := nats.Connect(testNATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	name := "T" + store.NewID()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(context.Background(), name)

	s := loopbackSender(t)
	r := brokerRequest(TypeNATS, testNATSURL, "msg_1")
	r.Subject = name + ".events"
	first := s.Send(ctx, r)
	if !Judge(first).Success {
		t.Fatalf("first publish: %+v", first)
	}
	again := s.Send(ctx, r) // a retry of the same message
	if !Judge(again).Success {
		t.Fatalf("second publish: %+v", again)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1 (Nats-Msg-Id de-duplicates)", info.State.Msgs)
	}
	m, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != string(r.Body) || m.Header.Get(HeaderID) != "msg_1" || m.Header.Get("X-Custom") != "v" ||
		m.Header.Get(HeaderSignature) != Sign("msg_1", r.Timestamp, r.Body, r.Keys...) {
		t.Fatalf("message: %s %v", m.Data, m.Header)
	}

	// The send's trace context goes with the message as its traceparent header, unless omitted.
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: 1}))
	for i, omit := range []bool{false, true} {
		r := brokerRequest(TypeNATS, testNATSURL, fmt.Sprintf("msg_traced_%d", i))
		r.Subject, r.OmitTraceparent = name+".events", omit
		if res := s.Send(traced, r); !Judge(res).Success {
			t.Fatalf("traced publish: %+v", res)
		}
		m, err := stream.GetMsg(ctx, uint64(2+i))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get("traceparent"); (got == "") != omit || (!omit && !strings.Contains(got, tid.String())) {
			t.Errorf("omit %v: traceparent %q", omit, got)
		}
	}
}

func TestSenderJetStreamFailures(t *testing.T) {
	needBroker(t, "127.0.0.1:4222")
	s := loopbackSender(t)
	r := brokerRequest(TypeNATS, testNATSURL, "msg_2")
	r.Subject = "no-stream-listens-here." + store.NewID()
	r.Timeout = 2 * time.Second
	if res := s.Send(context.Background(), r); res.Err == "" || !Judge(res).Retryable {
		t.Fatalf("publish to no stream: %+v %+v", res, Judge(res))
	}
	r.URL = "nats://127.0.0.1:1" // nothing listens
	if res := s.Send(context.Background(), r); res.Err == "" || !Judge(res).Retryable {
		t.Fatalf("broker down: %+v", res)
	}
	strict := NewSender(&netguard.Policy{})
	defer strict.Close()
	r.URL = testNATSURL
	if res := strict.Send(context.Background(), r); !res.Blocked || Judge(res).Retryable {
		t.Fatalf("loopback without allowance: %+v", res)
	}
}

func TestSenderPublishesToRabbitMQWithConfirms(t *testing.T) {
	needBroker(t, "127.0.0.1:5672")
	conn, err := amqp.Dial(testAMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q := "test-" + store.NewID()
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(q, false, false, false)

	s := loopbackSender(t)
	r := brokerRequest(TypeAMQP, testAMQPURL, "msg_3")
	r.RoutingKey = q // the default exchange routes by queue name
	res := s.Send(context.Background(), r)
	if !Judge(res).Success {
		t.Fatalf("publish: %+v", res)
	}
	d, ok, err := ch.Get(q, true)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if d.MessageId != "msg_3" || d.DeliveryMode != amqp.Persistent || string(d.Body) != string(r.Body) ||
		d.Headers[HeaderID] != "msg_3" || d.Headers["X-Custom"] != "v" || d.ContentType != "application/json" {
		t.Fatalf("delivery: %+v", d)
	}

	r.RoutingKey = "no-queue-" + store.NewID()
	if res := s.Send(context.Background(), r); res.Err == "" || !Judge(res).Retryable {
		t.Fatalf("unroutable: %+v", res)
	}
	r.Exchange = "no-such-exchange-" + store.NewID()
	if res := s.Send(context.Background(), r); res.Err == "" || !Judge(res).Retryable {
		t.Fatalf("missing exchange: %+v", res)
	}
	// The pool recovers from the channel the broker closed.
	r.Exchange, r.RoutingKey = "", q
	if res := s.Send(context.Background(), r); !Judge(res).Success {
		t.Fatalf("after a closed channel: %+v", res)
	}
	r.URL = "amqp://guest:guest@127.0.0.1:1/"
	if res := s.Send(context.Background(), r); res.Err == "" || !Judge(res).Retryable {
		t.Fatalf("broker down: %+v", res)
	}
}

func TestRedactURL(t *testing.T) {
	if got := RedactURL("amqp://guest:secret@host:5672/vh"); got != "amqp://guest:xxxxx@host:5672/vh" {
		t.Fatal(got)
	}
}
