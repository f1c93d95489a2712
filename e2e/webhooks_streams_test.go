package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pyairtable/automation-domain/store"
)

// TestWebhookStreams delivers messages posted to /webhooks/deliver to a JetStream stream and a
// RabbitMQ queue on the local brokers (stream endpoints: type nats and amqp): a consumer reads
// every message exactly once by id, with the body and the Standard Webhooks headers an HTTP
// endpoint gets (signed), and the broker URLs' credentials never show in the API.
func TestWebhookStreams(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:4222", "127.0.0.1:5672"} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("broker %s is not running: %v", addr, err)
		}
		c.Close()
	}
	ctx := context.Background()
	name := "E2E" + strings.ToUpper(store.NewID())
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(context.Background(), name)
	ac, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ch, err := ac.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := "e2e-" + name
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)

	s := startEmbedded(t, testConfig(t, t.TempDir(), webhookEnv(nil)))
	c := s.client(t)

	t.Run("broker endpoints are validated", func(t *testing.T) {
		for _, bad := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": "x", "type": "kafka", "url": "nats://127.0.0.1:4222"}, "type"},
			{map[string]any{"name": "x", "type": "nats", "url": "nats://127.0.0.1:4222"}, "subject"},
			{map[string]any{"name": "x", "type": "nats", "url": "nats://127.0.0.1:4222", "subject": "a.>"}, "subject"},
			{map[string]any{"name": "x", "type": "nats", "url": "https://127.0.0.1:4222", "subject": "a"}, "url"},
			{map[string]any{"name": "x", "type": "nats", "url": "nats://10.1.2.3:4222", "subject": "a"}, "url"},
			{map[string]any{"name": "x", "type": "amqp", "url": "amqp://127.0.0.1:5672/"}, "routing_key"},
			{map[string]any{"name": "x", "url": "http://127.0.0.1:9/hook", "exchange": "e"}, "exchange"},
		} {
			r := c.post("/api/v1/webhooks/endpoints", bad.body)
			if r.Status != 422 || !strings.Contains(string(r.Body), `"field":"`+bad.field+`"`) {
				t.Errorf("%v: %d %s, want 422 on %s", bad.body, r.Status, r.Body, bad.field)
			}
		}
	})

	var natsID, amqpID string
	t.Run("broker endpoints keep their credentials secret", func(t *testing.T) {
		natsID = createEndpoint(t, c, map[string]any{"name": "stream", "type": "nats", "events": []string{"stream.*"},
			"url": "nats://127.0.0.1:4222", "subject": name + ".events"})
		amqpID = createEndpoint(t, c, map[string]any{"name": "queue", "type": "amqp", "events": []string{"stream.*"},
			"url": "amqp://guest:guest@127.0.0.1:5672/", "routing_key": queue})
		r := c.get("/api/v1/webhooks/endpoints/" + amqpID)
		if r.Status != 200 || strings.Contains(string(r.Body), "guest:guest") || !strings.Contains(string(r.Body), `"type":"amqp"`) ||
			!strings.Contains(string(r.Body), `"routing_key":"`+queue+`"`) {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}
		r = c.do("PATCH", "/api/v1/webhooks/endpoints/"+natsID, map[string]any{"subject": "bad subject"})
		if r.Status != 422 || !strings.Contains(string(r.Body), `"field":"subject"`) {
			t.Fatalf("patch: %d %s", r.Status, r.Body)
		}
	})

	t.Run("messages reach the stream and the queue exactly once by id", func(t *testing.T) {
		const n = 40
		want := map[string]bool{}
		for i := range n {
			want[deliver(t, c, "stream.tick", map[string]any{"n": i})] = true
		}
		eventually(t, 60*time.Second, "every message in the stream and the queue", func() bool {
			info, err := stream.Info(ctx)
			if err != nil {
				return false
			}
			q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
			return err == nil && info.State.Msgs >= n && q.Messages >= n
		})
		natsSecret, amqpSecret := endpointSecret(t, c, natsID), endpointSecret(t, c, amqpID)

		cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		batch, err := cons.FetchNoWait(n + 10)
		if err != nil {
			t.Fatal(err)
		}
		wh, _ := standardwebhooks.NewWebhook(natsSecret)
		for m := range batch.Messages() {
			id := m.Headers().Get("webhook-id")
			if m.Headers().Get(jetstream.MsgIDHeader) != id {
				t.Errorf("Nats-Msg-Id %q for %q", m.Headers().Get(jetstream.MsgIDHeader), id)
			}
			h := http.Header{} // NATS header names keep their case
			for k, v := range m.Headers() {
				h[http.CanonicalHeaderKey(k)] = v
			}
			if err := wh.Verify(m.Data(), h); err != nil {
				t.Errorf("nats message %s: %v", id, err)
			}
			seen[id]++
			_ = m.Ack()
		}
		checkOnce(t, "JetStream", seen, want)

		seen = map[string]int{}
		wh, _ = standardwebhooks.NewWebhook(amqpSecret)
		for {
			d, ok, err := ch.Get(queue, true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			h := http.Header{}
			for k, v := range d.Headers {
				if s, ok := v.(string); ok {
					h.Set(k, s)
				}
			}
			if d.MessageId != h.Get("webhook-id") || d.DeliveryMode != amqp.Persistent {
				t.Errorf("message_id %q, webhook-id %q, mode %d", d.MessageId, h.Get("webhook-id"), d.DeliveryMode)
			}
			if err := wh.Verify(d.Body, h); err != nil {
				t.Errorf("amqp message %s: %v", d.MessageId, err)
			}
			seen[d.MessageId]++
		}
		checkOnce(t, "RabbitMQ", seen, want)

		// The attempt log shows the broker's acknowledgement.
		ds := deliveriesOf(t, c, "endpoint_id="+natsID)
		if len(ds) != n || ds[0].Status != "succeeded" {
			t.Fatalf("deliveries: %d %+v", len(ds), ds[0])
		}
		r := c.get("/api/v1/webhooks/deliveries/" + ds[0].ID)
		if r.Status != 200 || !strings.Contains(string(r.Body), `\"stream\":\"`+name+`\"`) {
			t.Errorf("delivery: %d %s", r.Status, r.Body)
		}
	})
}

func checkOnce(t *testing.T, where string, seen map[string]int, want map[string]bool) {
	t.Helper()
	for id, k := range seen {
		if !want[id] || k != 1 {
			t.Errorf("%s: message %s read %d times (sent: %v)", where, id, k, want[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%s: read %d distinct messages, want %d", where, len(seen), len(want))
	}
}
