package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pyairtable/automation-domain/internal/tracing"
	"github.com/pyairtable/automation-domain/netguard"
)

// Limits of what an attempt keeps of the response.
const (
	MaxResponseBody = 10 << 10
	// drainLimit is how much more of a response is read (and dropped) so that the connection
	// can be reused.
	drainLimit = 64 << 10
	// MaxRetryAfter caps a receiver's Retry-After.
	MaxRetryAfter = 24 * time.Hour
	userAgent     = "automation-domain-webhooks/1"
)

// keptHeaders are the response headers an attempt records.
var keptHeaders = []string{
	"Content-Type", "Content-Length", "Retry-After", "Location", "Server", "Date",
	"X-Request-Id", "Request-Id", "X-Correlation-Id",
}

// Request is one signed HTTP request to an endpoint.
type Request struct {
	URL       string
	MessageID string
	Timestamp time.Time
	Body      []byte
	// Keys sign the request; several while a rotated secret is still honoured.
	Keys    [][]byte
	Headers map[string]string
	Timeout time.Duration
	// TraceParent is the trace the request continues (its message's; "" untraced), and
	// OmitTraceparent keeps the traceparent header off the request (the endpoint's setting).
	TraceParent     string
	OmitTraceparent bool
	// EndpointID names the endpoint in the request's span.
	EndpointID string
	// Type is the endpoint's type ("" or TypeHTTP: a POST to URL). For TypeNATS and TypeAMQP,
	// URL is the broker's (with its credentials), the message is published on Subject, or to
	// Exchange with RoutingKey.
	Type       string
	Subject    string
	Exchange   string
	RoutingKey string
}

// Response is what an attempt observed.
type Response struct {
	StatusCode int
	Header     map[string]string
	Body       string
	// Err is the transport failure ("" when a response came back).
	Err      string
	Duration time.Duration
	// Blocked is true when the SSRF guard refused the destination.
	Blocked bool
	// RetryAfter is the receiver's Retry-After (0 when absent).
	RetryAfter time.Duration
	// Final is set when no request was made and retrying cannot help (the endpoint's transform
	// failed on the message).
	Final bool
}

// Sender makes signed webhook requests through the SSRF guard: every destination is checked at
// connect time, the checked address is the one dialled and redirects are not followed.
type Sender struct {
	client *http.Client
	now    func() time.Time
	// quiet, while tracing is on, is client without the traceparent header (same connection
	// pool): for endpoints that do not want it.
	quiet *http.Client
	// nats and amqp hold the broker connections of the process (one per broker URL).
	nats *NATSPool
	amqp *AMQPPool
}

// NewSender builds a sender on the egress policy. While tracing is on (internal/tracing), each
// request is a span continuing its message's trace, sending its traceparent.
func NewSender(policy *netguard.Policy) *Sender {
	// One client (one connection pool) for every endpoint; each request carries its own timeout.
	s := &Sender{client: policy.Client(0), now: time.Now, nats: NewNATSPool(policy), amqp: NewAMQPPool(policy)}
	if tracing.Enabled() {
		base := s.client.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		traced, quiet := *s.client, *s.client
		traced.Transport = otelhttp.NewTransport(base, otelhttp.WithPropagators(propagation.TraceContext{}))
		quiet.Transport = otelhttp.NewTransport(base, otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()))
		s.client, s.quiet = &traced, &quiet
	}
	return s
}

// Close closes the broker connections.
func (s *Sender) Close() {
	s.nats.Close()
	s.amqp.Close()
}

// Send makes the request once (the transport never replays it); to a broker endpoint it
// publishes the message once and waits for the broker's acknowledgement.
func (s *Sender) Send(ctx context.Context, r Request) (out Response) {
	client := s.client
	if s.quiet != nil {
		var span trace.Span
		ctx, span = tracing.StartFor(ctx, r.TraceParent, "webhook.send", trace.WithAttributes(
			attribute.String("webhook.message_id", r.MessageID), attribute.String("webhook.endpoint_id", r.EndpointID)))
		defer func() {
			span.SetAttributes(attribute.Int("http.response.status_code", out.StatusCode))
			if out.Err != "" || out.StatusCode >= 300 {
				span.SetStatus(codes.Error, out.Err)
			}
			span.End()
		}()
		if r.OmitTraceparent {
			client = s.quiet
		}
	}
	if r.Type != "" && r.Type != TypeHTTP {
		return s.sendBroker(ctx, r)
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Response{Err: "bad request: " + err.Error()}
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderID, r.MessageID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(r.Timestamp.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(r.MessageID, r.Timestamp, r.Body, r.Keys...))
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	if key || xkey {
		// With one of these headers (an endpoint's custom header) Go's transport takes a POST
		// for replayable and sends it again when a reused connection drops after the receiver
		// read it: two requests for one attempt in the log. Without a way to rewind the body
		// it sends the request once.
		req.GetBody = nil
	}
	start := s.now()
	res, err := client.Do(req)
	if err != nil {
		out = Response{Duration: s.now().Sub(start), Err: describeTransportError(err, r.Timeout)}
		out.Blocked = errors.Is(err, netguard.ErrBlocked)
		return out
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, MaxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, drainLimit))
	out = Response{StatusCode: res.StatusCode, Body: printable(body),
		Duration: s.now().Sub(start), Header: map[string]string{}}
	for _, h := range keptHeaders {
		if v := res.Header.Get(h); v != "" {
			out.Header[h] = v
		}
	}
	out.RetryAfter = parseRetryAfter(res.Header.Get("Retry-After"), s.now())
	return out
}

// printable makes a response body storable as text: valid UTF-8 without NUL bytes (which
// Postgres refuses in TEXT).
func printable(b []byte) string {
	return strings.ReplaceAll(strings.ToValidUTF8(string(b), "\uFFFD"), "\x00", "\uFFFD")
}

func describeTransportError(err error, timeout time.Duration) string {
	if errors.Is(err, netguard.ErrBlocked) {
		var be *netguard.BlockedError
		if errors.As(err, &be) {
			return be.Error()
		}
		return err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no response within " + timeout.String()
	}
	return err.Error()
}

// parseRetryAfter reads delay-seconds or an HTTP date, capped at MaxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// Verdict is what an attempt's result means for its delivery and endpoint.
type Verdict struct {
	Success bool
	// Retryable failures are tried again on schedule; others end the delivery as failed.
	Retryable bool
	// Gone (410) disables the endpoint.
	Gone bool
	// Pause holds every delivery to the endpoint this long (429/503 with Retry-After).
	Pause time.Duration
}

// Judge classifies a response: 2xx succeeds; 4xx are final except 408, 409, 425 and 429; 410
// disables the endpoint; 429 and 503 honour Retry-After; everything else (3xx, 5xx, network
// errors, timeouts) is retried. A destination refused by the SSRF guard is final.
func Judge(r Response) Verdict {
	switch code := r.StatusCode; {
	case r.Blocked, r.Final:
		return Verdict{}
	case code == 0:
		return Verdict{Retryable: true}
	case code >= 200 && code < 300:
		return Verdict{Success: true}
	case code == http.StatusGone:
		return Verdict{Gone: true}
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return Verdict{Retryable: true, Pause: r.RetryAfter}
	case code == http.StatusRequestTimeout || code == http.StatusConflict || code == http.StatusTooEarly:
		return Verdict{Retryable: true}
	case code >= 400 && code < 500:
		return Verdict{}
	}
	return Verdict{Retryable: true}
}

// Body is the JSON a message is sent as, the payload structure Standard Webhooks recommends:
// {"type": event type, "timestamp": when the message was created (RFC 3339), "data": payload}.
// It is the same for every endpoint and every attempt.
func Body(eventType string, createdAt time.Time, payload []byte) ([]byte, error) {
	return json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{eventType, createdAt.UTC().Format(time.RFC3339Nano), payload})
}
