package activities_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

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

// A broker endpoint's deliveries go through the batch like an HTTP endpoint's: a publish the
// broker does not acknowledge is a failed attempt retried on schedule, an ordered endpoint's
// messages wait behind it, and the acknowledgement is the successful attempt in the log.
func TestBatchToBrokerEndpoints(t *testing.T) {
	needBroker(t, "127.0.0.1:4222")
	needBroker(t, "127.0.0.1:5672")
	ctx := context.Background()
	f := newWebhookFixture(t, webhooks.Settings{})
	name := "A" + strings.ToUpper(store.NewID())
	queue := "activities-" + name

	natsE := f.endpoint(webhooks.EndpointInput{Type: webhooks.TypeNATS, URL: "nats://127.0.0.1:4222", Subject: name + ".events",
		Ordered: true, RetrySchedule: []string{"1s"}, Events: []string{"nats.*"}})
	amqpE := f.endpoint(webhooks.EndpointInput{Type: webhooks.TypeAMQP, URL: "amqp://guest:guest@127.0.0.1:5672/", RoutingKey: queue,
		RetrySchedule: []string{"1s"}, Events: []string{"amqp.*"}})
	var sent []string
	for i := range 3 {
		sent = append(sent, f.send("nats.tick", fmt.Sprint(i)).ID)
	}
	m := f.send("amqp.tick", `{"n":1}`)

	// No stream captures the subject and no queue is bound yet: failed attempts, retried.
	res := f.batch(natsE.ID, activities.WebhookBatchInput{})
	if res.Sent != 1 || res.Failed != 1 || res.NextDueAt.IsZero() {
		t.Fatalf("nats first batch %+v", res)
	}
	ares := f.batch(amqpE.ID, activities.WebhookBatchInput{})
	if ares.Sent != 1 || ares.Failed != 1 || ares.NextDueAt.IsZero() {
		t.Fatalf("amqp first batch %+v", ares)
	}

	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(context.Background(), name)
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)

	time.Sleep(time.Until(latestOf(res.NextDueAt, ares.NextDueAt)))
	if res := f.batch(natsE.ID, activities.WebhookBatchInput{FailedInARow: 1}); res.Succeeded != 3 {
		t.Fatalf("nats retry batch %+v", res)
	}
	if res := f.batch(amqpE.ID, activities.WebhookBatchInput{FailedInARow: 1}); res.Succeeded != 1 {
		t.Fatalf("amqp retry batch %+v", res)
	}
	for i, id := range sent {
		msg, err := stream.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Header.Get(jetstream.MsgIDHeader); got != id {
			t.Errorf("stream position %d holds %s, want %s (in order)", i+1, got, id)
		}
	}
	d, ok, err := ch.Get(queue, true)
	if err != nil || !ok || d.MessageId != m.ID {
		t.Fatalf("queue: %v %v %+v", ok, err, d)
	}
	detail, err := f.svc.GetDelivery(ctx, m.Deliveries[0].ID)
	if err != nil || detail.Status != "succeeded" || len(detail.Attempts) != 2 || detail.Attempts[0].Outcome != "retrying" ||
		!strings.Contains(detail.Attempts[0].Error, "no queue") || detail.Attempts[1].StatusCode != 200 {
		t.Fatalf("amqp delivery %+v %v", detail, err)
	}
}

func latestOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
