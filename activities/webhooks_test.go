package activities_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/ratelimit"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

// webhookFixture is the batch activity over a real SQLite store and real receivers, with the webhooks
// service used to register endpoints and queue messages (its wake-ups go to a Temporal address
// where nothing listens, and are only logged).
type webhookFixture struct {
	t   *testing.T
	st  *store.Store
	svc *webhooks.Service
	a   *activities.Webhooks
	bus *events.Bus
}

func newWebhookFixture(t *testing.T, settings webhooks.Settings) *webhookFixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus := events.NewBus(st, log)
	policy := &netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	if settings.Timeout == 0 {
		settings.Timeout = 2 * time.Second
	}
	if settings.DisableAfter == 0 {
		settings.DisableAfter = 120 * time.Hour
	}
	if settings.CircuitCooldown == 0 {
		settings.CircuitCooldown = 30 * time.Second
	}
	svc, err := webhooks.New(webhooks.Options{Settings: settings, Store: st, Temporal: tc, Events: bus, Egress: policy,
		ServiceSecret: "test", Registry: prometheus.NewRegistry(), Log: log, TaskQueue: "automation"})
	if err != nil {
		t.Fatal(err)
	}
	a := &activities.Webhooks{Store: st, Sender: svc.Sender(), Secrets: svc.Secrets(), Limiter: ratelimit.NewLocal(),
		Events: bus, Metrics: svc.Metrics(), Settings: svc.Settings(), Senders: svc.Senders(),
		Jitter: func() float64 { return 0.5 }}
	return &webhookFixture{t: t, st: st, svc: svc, a: a, bus: bus}
}

func (f *webhookFixture) endpoint(in webhooks.EndpointInput) webhooks.Endpoint {
	f.t.Helper()
	if in.Name == "" {
		in.Name = "e"
	}
	e, err := f.svc.CreateEndpoint(context.Background(), in)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *webhookFixture) send(eventType string, payload string, endpointIDs ...string) webhooks.Message {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond) // wake-ups go nowhere
	defer cancel()
	m, err := f.svc.Deliver(ctx, webhooks.DeliverRequest{EventType: eventType, Payload: json.RawMessage(payload), EndpointIDs: endpointIDs})
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *webhookFixture) batch(id string, in activities.WebhookBatchInput) activities.WebhookBatchResult {
	f.t.Helper()
	in.EndpointID = id
	res, err := f.a.DeliverWebhookBatch(context.Background(), in)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// hook is a receiver answering status codes in turn (the last one repeats), after delay.
type hook struct {
	*httptest.Server
	mu     sync.Mutex
	codes  []int
	header http.Header
	delay  time.Duration
	got    []string // webhook-id of each request
	// arrived is signalled (without blocking) on each request.
	arrived chan struct{}
}

func newHook(t *testing.T, codes ...int) *hook {
	h := &hook{codes: codes, header: http.Header{}, arrived: make(chan struct{}, 1)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so that the server notices a client that goes away
		h.mu.Lock()
		code := h.codes[min(len(h.got), len(h.codes)-1)]
		h.got = append(h.got, r.Header.Get("webhook-id"))
		for k, v := range h.header {
			w.Header()[k] = v
		}
		delay := h.delay
		h.mu.Unlock()
		select {
		case h.arrived <- struct{}{}:
		default:
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

func TestBatchSchedulesRetriesAndRecordsAttempts(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	h := newHook(t, 500, 200)
	e := f.endpoint(webhooks.EndpointInput{URL: h.URL, RetrySchedule: []string{"2s", "4s"}})
	m := f.send("a.b", `{"n":1}`)
	before := time.Now()
	res := f.batch(e.ID, activities.WebhookBatchInput{})
	if res.Sent != 1 || res.Failed != 1 || res.FailedInARow != 1 || res.More || res.OpenCircuit {
		t.Fatalf("first batch %+v", res)
	}
	if d := res.NextDueAt.Sub(before); d < 1900*time.Millisecond || d > 3*time.Second {
		t.Fatalf("next due in %s, want the 2 s retry", d)
	}
	// Not due yet: nothing is sent.
	if res := f.batch(e.ID, activities.WebhookBatchInput{}); res.Sent != 0 || res.NextDueAt.IsZero() {
		t.Fatalf("early batch %+v", res)
	}
	time.Sleep(time.Until(res.NextDueAt))
	res = f.batch(e.ID, activities.WebhookBatchInput{FailedInARow: 1})
	if res.Succeeded != 1 || res.FailedInARow != 0 || !res.NextDueAt.IsZero() {
		t.Fatalf("retry batch %+v", res)
	}
	detail, err := f.svc.GetDelivery(context.Background(), m.Deliveries[0].ID)
	if err != nil || detail.Status != "succeeded" || len(detail.Attempts) != 2 || detail.Attempts[0].Outcome != "retrying" {
		t.Fatalf("delivery %+v %v", detail, err)
	}
	if got := h.requests(); len(got) != 2 || got[0] != m.ID || got[1] != m.ID {
		t.Errorf("requests %v", got)
	}
}

func TestBatchOrderedEndpointBlocksBehindARetry(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	h := newHook(t, 500, 200)
	e := f.endpoint(webhooks.EndpointInput{URL: h.URL, Ordered: true, RetrySchedule: []string{"1s"}})
	first := f.send("a.b", `1`)
	f.send("a.b", `2`)
	f.send("a.b", `3`)
	res := f.batch(e.ID, activities.WebhookBatchInput{})
	if res.Sent != 1 || res.More {
		t.Fatalf("the head failed, the rest must wait: %+v", res)
	}
	time.Sleep(time.Until(res.NextDueAt))
	res = f.batch(e.ID, activities.WebhookBatchInput{})
	if res.Sent != 3 || res.Succeeded != 3 || !res.NextDueAt.IsZero() {
		t.Fatalf("after the head's retry: %+v", res)
	}
	if got := h.requests(); got[0] != first.ID || got[1] != first.ID {
		t.Errorf("order %v", got)
	}
}

func TestBatchHonoursRetryAfterAndTheRateLimit(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	busy := newHook(t, 429, 200)
	busy.header.Set("Retry-After", "120")
	e := f.endpoint(webhooks.EndpointInput{URL: busy.URL, Ordered: true})
	f.send("a.b", `1`)
	res := f.batch(e.ID, activities.WebhookBatchInput{})
	if d := time.Until(res.PauseUntil); d < 110*time.Second || d > 121*time.Second || res.More {
		t.Fatalf("429 Retry-After 120: pause %s, %+v", d, res)
	}
	if d := time.Until(res.NextDueAt); d < 110*time.Second {
		t.Errorf("the retry is due in %s, before Retry-After", d)
	}

	ok := newHook(t, 200)
	limited := f.endpoint(webhooks.EndpointInput{URL: ok.URL, RateLimitPerSecond: 2})
	for range 5 {
		f.send("a.b", `1`, limited.ID)
	}
	res = f.batch(limited.ID, activities.WebhookBatchInput{})
	if res.Sent != 2 || res.PauseUntil.IsZero() || res.NextDueAt.IsZero() {
		t.Fatalf("rate limit 2/s: %+v", res)
	}
}

func TestBatchGoneAndFailingEndpointsAreDisabled(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{DisableAfter: time.Hour})
	gone := newHook(t, 410)
	e := f.endpoint(webhooks.EndpointInput{URL: gone.URL})
	f.send("a.b", `1`)
	res := f.batch(e.ID, activities.WebhookBatchInput{})
	if res.Disable == "" || res.DisableKind != "gone" {
		t.Fatalf("410: %+v", res)
	}
	in := activities.WebhookDisableInput{EndpointID: e.ID, Reason: res.Disable, Kind: res.DisableKind, EventID: store.NewID()}
	for range 2 { // a retried activity emits the event once
		if err := f.a.DisableWebhookEndpoint(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := f.st.GetEvent(context.Background(), in.EventID)
	if err != nil || ev.Type != "webhook.endpoint.disabled" || ev.Subject != e.ID {
		t.Fatalf("event %+v %v", ev, err)
	}
	if got, _ := f.svc.GetEndpoint(context.Background(), e.ID); got.Enabled || got.DisabledReason != res.Disable {
		t.Errorf("endpoint %+v", got)
	}
	if res := f.batch(e.ID, activities.WebhookBatchInput{}); res.Stopped != "disabled" {
		t.Errorf("a batch for a disabled endpoint: %+v", res)
	}

	// Failing for longer than DisableAfter.
	failing := newHook(t, 500)
	e2 := f.endpoint(webhooks.EndpointInput{URL: failing.URL})
	longAgo := time.Now().Add(-2 * time.Hour).UTC()
	if err := f.st.UpdateWebhookEndpoint(context.Background(), e2.ID, map[string]any{"failing_since": longAgo}); err != nil {
		t.Fatal(err)
	}
	f.send("a.b", `1`, e2.ID)
	if res := f.batch(e2.ID, activities.WebhookBatchInput{}); res.DisableKind != "failing" {
		t.Errorf("failing for 2 h with DisableAfter 1 h: %+v", res)
	}
}

func TestBatchOpensTheCircuit(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{CircuitThreshold: 3})
	down := newHook(t, 503)
	e := f.endpoint(webhooks.EndpointInput{URL: down.URL})
	for range 5 {
		f.send("a.b", `1`)
	}
	res := f.batch(e.ID, activities.WebhookBatchInput{})
	if !res.OpenCircuit || res.FailedInARow != 5 || res.CircuitCooldown != 30*time.Second {
		t.Fatalf("5 failures with threshold 3: %+v", res)
	}
	// A dead endpoint with a long queue trips the breaker within the batch: it gets a handful of
	// requests (the threshold plus those already in flight), not the whole batch.
	dead := newHook(t, 503)
	e2 := f.endpoint(webhooks.EndpointInput{URL: dead.URL})
	for range 60 {
		f.send("a.b", `1`, e2.ID)
	}
	if res := f.batch(e2.ID, activities.WebhookBatchInput{}); !res.OpenCircuit || res.Sent > 3+activities.WebhookConcurrency || res.More {
		t.Errorf("60 queued for a dead endpoint: %+v", res)
	}

	// Through an open circuit the dispatcher sends one probe, however many are due.
	for range 3 {
		f.send("a.b", `2`)
	}
	probe := f.batch(e.ID, activities.WebhookBatchInput{Limit: 1, FailedInARow: res.FailedInARow})
	if probe.Sent != 1 || probe.More || !probe.OpenCircuit || probe.FailedInARow != 6 {
		t.Errorf("probe %+v", probe)
	}
}

func TestBatchRefusesADestinationTheGuardBlocks(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	h := newHook(t, 200)
	e := f.endpoint(webhooks.EndpointInput{URL: h.URL})
	m := f.send("a.b", `1`)
	// The guard is consulted again at delivery time: with loopback no longer allowed (as if the
	// host now resolved to a private address), the request is never made and the delivery fails.
	f.a.Sender = webhooks.NewSender(&netguard.Policy{})
	res := f.batch(e.ID, activities.WebhookBatchInput{})
	if res.Failed != 1 || len(h.requests()) != 0 {
		t.Fatalf("blocked: %+v, %d requests", res, len(h.requests()))
	}
	d, _ := f.svc.GetDelivery(context.Background(), m.Deliveries[0].ID)
	if d.Status != "failed" || d.Attempts[0].Error == "" {
		t.Errorf("delivery %+v", d)
	}
}

// Custom headers are stored encrypted and sent decrypted.
func TestBatchSendsTheCustomHeadersDecrypted(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	t.Cleanup(srv.Close)
	e := f.endpoint(webhooks.EndpointInput{URL: srv.URL, Headers: map[string]string{"Authorization": "Bearer crm-t0k", "X-Tenant": "acme"}})
	row, err := f.st.GetWebhookEndpoint(context.Background(), e.ID)
	if err != nil || strings.Contains(string(row.Headers), "crm-t0k") {
		t.Fatalf("stored headers %s %v", row.Headers, err)
	}
	f.send("a.b", `{"n":1}`)
	if res := f.batch(e.ID, activities.WebhookBatchInput{}); res.Succeeded != 1 {
		t.Fatalf("batch %+v", res)
	}
	h := <-got
	if h.Get("Authorization") != "Bearer crm-t0k" || h.Get("X-Tenant") != "acme" || h.Get("webhook-signature") == "" {
		t.Errorf("received headers %v", h)
	}
}
