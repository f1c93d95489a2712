package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/pyairtable/automation-domain/netguard"
)

// Endpoint types: an endpoint receives HTTP requests (the default), JetStream messages or
// RabbitMQ messages.
const (
	TypeHTTP = "http"
	TypeNATS = "nats"
	TypeAMQP = "amqp"
)

// brokerDialTimeout bounds connecting to a broker: a broker that is down is a failed attempt,
// quickly.
const brokerDialTimeout = 3 * time.Second

// brokerAck is what an attempt to a broker records as its response body.
type brokerAck struct {
	Stream    string `json:"stream,omitempty"`
	Sequence  uint64 `json:"seq,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Exchange  string `json:"exchange,omitempty"`
	Acked     bool   `json:"acked,omitempty"`
}

func ackResponse(a brokerAck, d time.Duration) Response {
	b, _ := json.Marshal(a)
	return Response{StatusCode: 200, Body: string(b), Duration: d, Header: map[string]string{}}
}

// brokerFailure is a failed attempt to a broker (retried; a destination the SSRF guard refuses is
// final, as for HTTP).
func brokerFailure(err error, timeout, d time.Duration) Response {
	out := Response{Duration: d, Err: describeTransportError(err, timeout)}
	out.Blocked = errors.Is(err, netguard.ErrBlocked)
	return out
}

// guardedDial dials addr through the egress policy within brokerDialTimeout.
func guardedDial(policy *netguard.Policy, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), brokerDialTimeout)
	defer cancel()
	return policy.DialContext(ctx, network, addr)
}

// NATSPool keeps one connection per NATS URL for the process. A connection reconnects by
// itself after the server restarts; while it is reconnecting publishes fail at once (no buffer),
// so each is a failed attempt retried on schedule.
type NATSPool struct {
	policy *netguard.Policy
	mu     sync.Mutex
	conns  map[string]*natsConn
}

type natsConn struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// NewNATSPool returns an empty pool dialling through the egress policy.
func NewNATSPool(policy *netguard.Policy) *NATSPool {
	return &NATSPool{policy: policy, conns: map[string]*natsConn{}}
}

type natsDialer struct{ policy *netguard.Policy }

func (d natsDialer) Dial(network, addr string) (net.Conn, error) {
	return guardedDial(d.policy, network, addr)
}

func (p *NATSPool) conn(rawURL string) (*natsConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[rawURL]; c != nil && !c.nc.IsClosed() {
		return c, nil
	}
	nc, err := nats.Connect(rawURL, nats.SetCustomDialer(natsDialer{p.policy}), nats.Timeout(brokerDialTimeout),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.ReconnectBufSize(-1),
		nats.Name("automation-domain-webhooks"))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	c := &natsConn{nc: nc, js: js}
	p.conns[rawURL] = c
	return c, nil
}

// Publish publishes body on subject with the headers and the message id as Nats-Msg-Id (JetStream
// drops a duplicate within the stream's window) and waits for the stream's acknowledgement.
func (p *NATSPool) Publish(ctx context.Context, rawURL, subject, msgID string, headers map[string]string, body []byte) (*jetstream.PubAck, error) {
	c, err := p.conn(rawURL)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(subject)
	m.Data = body
	for k, v := range headers {
		m.Header.Set(k, v)
	}
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	return c.js.PublishMsg(ctx, m)
}

// Close closes every connection.
func (p *NATSPool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.conns {
		c.nc.Close()
		delete(p.conns, k)
	}
}

// AMQPPool keeps one connection per AMQP URL for the process, and on it idle channels in confirm
// mode (one publish at a time each). A connection or channel the broker closed is replaced on
// the next publish.
type AMQPPool struct {
	policy *netguard.Policy
	mu     sync.Mutex
	conns  map[string]*amqpConn
}

type amqpConn struct {
	conn *amqp.Connection
	mu   sync.Mutex
	idle []*amqpChannel
}

type amqpChannel struct {
	ch      *amqp.Channel
	returns chan amqp.Return
}

// NewAMQPPool returns an empty pool dialling through the egress policy.
func NewAMQPPool(policy *netguard.Policy) *AMQPPool {
	return &AMQPPool{policy: policy, conns: map[string]*amqpConn{}}
}

func (p *AMQPPool) conn(rawURL string) (*amqpConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.conns[rawURL]; c != nil && !c.conn.IsClosed() {
		return c, nil
	}
	conn, err := amqp.DialConfig(rawURL, amqp.Config{
		Heartbeat: 10 * time.Second, Locale: "en_US",
		Properties: amqp.Table{"connection_name": "automation-domain-webhooks"},
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := guardedDial(p.policy, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake is bounded too; the library clears the deadline once it is done.
			if err := c.SetDeadline(time.Now().Add(brokerDialTimeout)); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to AMQP: %w", err)
	}
	c := &amqpConn{conn: conn}
	p.conns[rawURL] = c
	return c, nil
}

// take returns an idle channel or opens one in confirm mode, waiting no longer than ctx (the
// broker answers a channel's opening; one that hangs is left to close when it answers).
func (c *amqpConn) take(ctx context.Context) (*amqpChannel, error) {
	c.mu.Lock()
	for len(c.idle) > 0 {
		ch := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if !ch.ch.IsClosed() {
			c.mu.Unlock()
			return ch, nil
		}
	}
	c.mu.Unlock()
	type opened struct {
		ch  *amqpChannel
		err error
	}
	done := make(chan opened, 1)
	go func() {
		ch, err := c.conn.Channel()
		if err != nil {
			done <- opened{err: fmt.Errorf("AMQP channel: %w", err)}
			return
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			done <- opened{err: fmt.Errorf("AMQP publisher confirms: %w", err)}
			return
		}
		out := &amqpChannel{ch: ch, returns: make(chan amqp.Return, 1)}
		ch.NotifyReturn(out.returns)
		done <- opened{ch: out}
	}()
	select {
	case o := <-done:
		return o.ch, o.err
	case <-ctx.Done():
		go func() {
			if o := <-done; o.ch != nil {
				_ = o.ch.ch.Close()
			}
		}()
		return nil, fmt.Errorf("AMQP channel: %w", ctx.Err())
	}
}

func (c *amqpConn) put(ch *amqpChannel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle = append(c.idle, ch)
}

// ErrUnroutable is a message the exchange routed to no queue (published as mandatory).
var ErrUnroutable = errors.New("the exchange routed the message to no queue")

// Publish publishes a persistent, mandatory message with the message id as message_id and the
// headers as its headers, and waits for the broker's confirm. A nack, a return (no queue bound)
// and a timeout are errors.
func (p *AMQPPool) Publish(ctx context.Context, rawURL, exchange, key, msgID string, at time.Time, headers map[string]string, body []byte) error {
	c, err := p.conn(rawURL)
	if err != nil {
		return err
	}
	ch, err := c.take(ctx)
	if err != nil {
		return err
	}
	table := amqp.Table{}
	for k, v := range headers {
		table[k] = v
	}
	dc, err := ch.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: msgID, Timestamp: at,
		Headers: table, Body: body, AppId: userAgent,
	})
	if err != nil {
		_ = ch.ch.Close()
		return fmt.Errorf("AMQP publish: %w", err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// The confirm may still come: the channel cannot be reused for another message.
		_ = ch.ch.Close()
		return fmt.Errorf("AMQP confirm: %w", err)
	}
	// A basic.return precedes its message's confirm.
	select {
	case r := <-ch.returns:
		c.put(ch)
		return fmt.Errorf("%w: %d %s", ErrUnroutable, r.ReplyCode, r.ReplyText)
	default:
	}
	if !acked {
		c.put(ch)
		return errors.New("AMQP: the broker refused the message (nack)")
	}
	c.put(ch)
	return nil
}

// Close closes every connection.
func (p *AMQPPool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.conns {
		_ = c.conn.Close()
		delete(p.conns, k)
	}
}

// sendBroker publishes a request to its broker endpoint: the same body and Standard Webhooks
// headers an HTTP endpoint gets, as the message's headers.
func (s *Sender) sendBroker(ctx context.Context, r Request) Response {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	h := make(map[string]string, len(r.Headers)+4)
	for k, v := range r.Headers {
		h[k] = v
	}
	h["Content-Type"] = "application/json"
	h[HeaderID] = r.MessageID
	h[HeaderTimestamp] = strconv.FormatInt(r.Timestamp.Unix(), 10)
	h[HeaderSignature] = Sign(r.MessageID, r.Timestamp, r.Body, r.Keys...)
	if !r.OmitTraceparent {
		// The send's span (while tracing is on), as an HTTP request's traceparent header.
		propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(h))
	}
	start := s.now()
	switch r.Type {
	case TypeNATS:
		ack, err := s.nats.Publish(ctx, r.URL, r.Subject, r.MessageID, h, r.Body)
		if err != nil {
			return brokerFailure(err, r.Timeout, s.now().Sub(start))
		}
		return ackResponse(brokerAck{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, s.now().Sub(start))
	case TypeAMQP:
		if err := s.amqp.Publish(ctx, r.URL, r.Exchange, r.RoutingKey, r.MessageID, r.Timestamp, h, r.Body); err != nil {
			return brokerFailure(err, r.Timeout, s.now().Sub(start))
		}
		return ackResponse(brokerAck{Exchange: r.Exchange, Acked: true}, s.now().Sub(start))
	}
	return Response{Err: "unknown endpoint type " + strconv.Quote(r.Type), Final: true}
}

// RedactURL is a broker URL as the API shows it: its password replaced.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Redacted()
}
