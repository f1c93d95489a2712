package e2e

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pyairtable/automation-domain/internal/smtptest"
)

// otlpReceiver is an OTLP/HTTP trace receiver (POST /v1/traces, protobuf) that keeps every
// span it is sent.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	// countOnly keeps no span, only their number (benchmarks).
	countOnly bool
	count     int
	// services are the service.name of the resources that sent spans.
	services map[string]bool
}

func newOTLPReceiver(t testing.TB) *otlpReceiver {
	r := &otlpReceiver{services: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var export collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &export); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					r.services[a.GetValue().GetStringValue()] = true
				}
			}
			for _, ss := range rs.ScopeSpans {
				r.count += len(ss.Spans)
				if !r.countOnly {
					r.spans = append(r.spans, ss.Spans...)
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// trace returns the spans of trace id (hex) and those linking to it.
func (r *otlpReceiver) trace(id string) (in, linked []*tracepb.Span) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if hex.EncodeToString(s.TraceId) == id {
			in = append(in, s)
			continue
		}
		for _, l := range s.Links {
			if hex.EncodeToString(l.TraceId) == id {
				linked = append(linked, s)
				break
			}
		}
	}
	return in, linked
}

func spanNames(spans []*tracepb.Span) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

func findSpan(spans []*tracepb.Span, match func(*tracepb.Span) bool) *tracepb.Span {
	for _, s := range spans {
		if match(s) {
			return s
		}
	}
	return nil
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			if v := a.GetValue().GetStringValue(); v != "" {
				return v
			}
			return fmt.Sprint(a.GetValue().GetIntValue())
		}
	}
	return ""
}

// TestTracing: with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a real OTLP/HTTP receiver, one POST
// /api/v1/events carrying a W3C traceparent, which fires a rule sending an email (to a real
// SMTP server) and a webhook (to a real receiver), is one trace: the request's server span, the
// rule's evaluation and actions, the notification workflow and its delivery activity, the SMTP
// send and the webhook request; the receiver got a traceparent of that trace, and the
// request's log lines carry its trace id.
func TestTracing(t *testing.T) {
	otlp := newOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	mail := smtptest.Start(t)
	hooks := newReceiver(t, nil)
	s := startEmbedded(t, testConfig(t, t.TempDir(), webhookEnv(map[string]string{
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"SMTP_FROM": "Automation <noreply@example.com>",
	})))
	c := s.client(t)
	quiet := newReceiver(t, nil)
	createEndpoint(t, c, map[string]any{"name": "orders", "url": hooks.URL(), "events": []string{"order.accepted"}})
	createEndpoint(t, c, map[string]any{"name": "no trace context", "url": quiet.URL(), "events": []string{"order.accepted"},
		"send_traceparent": false})
	// An endpoint that is gone: it is disabled (the dashboards' and alerts' disabled counter).
	gone := newReceiver(t, func(int, *http.Request, http.Header) (int, string) { return http.StatusGone, "" })
	createEndpoint(t, c, map[string]any{"name": "gone", "url": gone.URL(), "events": []string{"order.accepted"}})
	createRule(t, c, map[string]any{
		"name": "accept orders", "trigger": map[string]any{"type": "event", "event_type": "order.placed"},
		"actions": []any{
			map[string]any{"type": "notification", "notification_type": "email", "to": "{{ customer.email }}",
				"subject": "Order {{ order.id }}", "body": "Thanks for order {{ order.id }}."},
			map[string]any{"type": "webhook", "event_type": "order.accepted", "payload": map[string]any{"id": "{{ order.id }}"}},
		},
	})

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const callerSpan = "00f067aa0ba902b7"
	r := c.post("/api/v1/events", map[string]any{"type": "order.placed",
		"data": map[string]any{"order": map[string]any{"id": "o-1"}, "customer": map[string]any{"email": "buyer@example.com"}}},
		"traceparent", "00-"+traceID+"-"+callerSpan+"-01", "X-Request-ID", "trace-e2e-1")
	if r.Status != 201 && r.Status != 202 && r.Status != 200 {
		t.Fatalf("post event: %d %s", r.Status, r.Body)
	}

	t.Run("the email and the webhooks are sent", func(t *testing.T) {
		eventually(t, 30*time.Second, "the email", func() bool { return len(messagesTo(mail, "buyer@example.com")) == 1 })
		eventually(t, 30*time.Second, "the webhooks", func() bool { return hooks.count() >= 1 && quiet.count() >= 1 })
	})
	t.Run("the receiver saw a traceparent of the request's trace", func(t *testing.T) {
		got := hooks.receipts()
		if len(got) == 0 {
			t.Fatal("no webhook")
		}
		tp := got[0].Header.Get("traceparent")
		if parts := strings.Split(tp, "-"); len(parts) != 4 || parts[1] != traceID {
			t.Errorf("traceparent %q, want one of trace %s", tp, traceID)
		}
		if q := quiet.receipts(); len(q) > 0 && q[0].Header.Get("traceparent") != "" {
			t.Errorf("an endpoint with send_traceparent false got traceparent %q", q[0].Header.Get("traceparent"))
		}
	})
	t.Run("one trace from the request to the side effects", func(t *testing.T) {
		want := map[string]func(*tracepb.Span) bool{
			"the request's server span": func(s *tracepb.Span) bool {
				return s.Kind == tracepb.Span_SPAN_KIND_SERVER && strings.Contains(s.Name, "/api/v1/events") &&
					hex.EncodeToString(s.ParentSpanId) == callerSpan
			},
			"the rule evaluation":       func(s *tracepb.Span) bool { return s.Name == "rules.evaluate" },
			"the notification action":   func(s *tracepb.Span) bool { return s.Name == "rules.action" && attr(s, "rule.action_index") == "0" },
			"the webhook action":        func(s *tracepb.Span) bool { return s.Name == "rules.action" && attr(s, "rule.action_index") == "1" },
			"the notification workflow": func(s *tracepb.Span) bool { return strings.HasPrefix(s.Name, "RunWorkflow:SendNotification") },
			"the delivery activity":     func(s *tracepb.Span) bool { return s.Name == "RunActivity:DeliverEmail" },
			"the SMTP send":             func(s *tracepb.Span) bool { return s.Name == "smtp.send" },
			"the webhook send":          func(s *tracepb.Span) bool { return s.Name == "webhook.send" },
			"the webhook's HTTP request": func(s *tracepb.Span) bool {
				return s.Kind == tracepb.Span_SPAN_KIND_CLIENT && strings.Contains(s.Name, "POST")
			},
		}
		var missing []string
		deadline := time.Now().Add(30 * time.Second)
		for {
			in, _ := otlp.trace(traceID)
			missing = missing[:0]
			for what, match := range want {
				if findSpan(in, match) == nil {
					missing = append(missing, what)
				}
			}
			if len(missing) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		in, linked := otlp.trace(traceID)
		if len(missing) > 0 {
			sort.Strings(missing)
			t.Errorf("trace %s lacks %v\nits spans: %v\nlinked: %v", traceID, missing, spanNames(in), spanNames(linked))
		}
		// The evaluator's work on the event continues the request's trace and links the
		// evaluator's own long-running one.
		if ev := findSpan(in, func(s *tracepb.Span) bool { return s.Name == "rules.evaluate" }); ev != nil && len(ev.Links) == 0 {
			t.Errorf("rules.evaluate links no span of the evaluator workflow")
		}
		if !otlp.services["automation"] {
			t.Errorf("spans came from services %v, want automation", otlp.services)
		}
	})
	t.Run("the request's log lines carry its trace id", func(t *testing.T) {
		var lines int
		for _, line := range strings.Split(s.Logs.String(), "\n") {
			if !strings.Contains(line, "request_id=trace-e2e-1") {
				continue
			}
			lines++
			if !strings.Contains(line, "trace_id="+traceID) || !strings.Contains(line, "span_id=") {
				t.Errorf("log line without the trace: %s", line)
			}
		}
		if lines == 0 {
			t.Errorf("no log line of the request")
		}
	})
	t.Run("dashboards and alerts read metrics the service exposes", func(t *testing.T) {
		eventually(t, 30*time.Second, "the gone endpoint's request", func() bool { return gone.count() >= 1 })
		eventually(t, 30*time.Second, "the gone endpoint disabled", func() bool {
			r := c.get("/metrics")
			return strings.Contains(string(r.Body), "webhook_endpoints_disabled_total{")
		})
		checkDashboardMetrics(t, s.URL+"/metrics")
	})
	t.Run("an error body names the trace", func(t *testing.T) {
		r := c.get("/api/v1/automation/rules/nope", "traceparent", "00-"+traceID+"-"+callerSpan+"-01")
		e := r.JSON(t)["error"].(map[string]any)
		if r.Status != 404 || e["trace_id"] != traceID || e["request_id"] == "" {
			t.Errorf("error body %d %s, want trace_id %s", r.Status, r.Body, traceID)
		}
	})
}
