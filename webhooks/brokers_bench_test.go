package webhooks

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/pyairtable/automation-domain/store"
)

// BenchmarkSenderPublish measures acknowledged publishes through the sender, 16 at a time (a
// batch's concurrency), to JetStream and to RabbitMQ.
func BenchmarkSenderPublish(b *testing.B) {
	for _, addr := range []string{"127.0.0.1:4222", "127.0.0.1:5672"} {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			b.Skipf("broker %s: %v", addr, err)
		}
		c.Close()
	}
	ctx := context.Background()
	b.Run("nats", func(b *testing.B) {
		nc, _ := nats.Connect(testNATSURL)
		defer nc.Close()
		js, _ := jetstream.New(nc)
		name := "B" + store.NewID()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}}); err != nil {
			b.Fatal(err)
		}
		defer js.DeleteStream(context.Background(), name)
		benchPublish(b, func(i int64) Request {
			r := brokerRequest(TypeNATS, testNATSURL, fmt.Sprintf("m%d", i))
			r.Subject = name + ".e"
			return r
		})
	})
	b.Run("amqp", func(b *testing.B) {
		conn, err := amqp.Dial(testAMQPURL)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		ch, _ := conn.Channel()
		q := "bench-" + store.NewID()
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
		defer ch.QueueDelete(q, false, false, false)
		benchPublish(b, func(i int64) Request {
			r := brokerRequest(TypeAMQP, testAMQPURL, fmt.Sprintf("m%d", i))
			r.RoutingKey = q
			return r
		})
	})
}

func benchPublish(b *testing.B, req func(int64) Request) {
	s := NewSender(loopbackPolicy())
	defer s.Close()
	var seq atomic.Int64
	b.SetParallelism(8) // × GOMAXPROCS goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := s.Send(context.Background(), req(seq.Add(1))); !Judge(res).Success {
				b.Errorf("publish: %+v", res)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
