package activities_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

// session runs a sender session in Temporal's activity test environment until it ends; stop,
// when closed, is the worker stopping.
type session struct {
	done chan struct{}
	res  activities.WebhookSenderResult
	err  error
}

func (f *webhookFixture) startSession(endpointID string, stop chan struct{}) *session {
	f.t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.SetTestTimeout(time.Minute)
	env.RegisterActivity(f.a)
	if stop != nil {
		env.SetWorkerStopChannel(stop)
	}
	s := &session{done: make(chan struct{})}
	// The worker process renews its sessions' leases.
	ctx, cancel := context.WithCancel(context.Background())
	f.t.Cleanup(cancel)
	go f.svc.Senders().Run(ctx)
	go func() {
		defer close(s.done)
		val, err := env.ExecuteActivity(f.a.RunWebhookSender, activities.WebhookSenderInput{EndpointID: endpointID})
		if s.err = err; err == nil {
			s.err = val.Get(&s.res)
		}
	}()
	return s
}

func (s *session) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		t.Fatalf("the session did not end within %s", timeout)
	}
}

func (f *webhookFixture) senderOf(endpointID string) string {
	f.t.Helper()
	e, err := f.st.GetWebhookEndpointAny(context.Background(), endpointID)
	if err != nil {
		f.t.Fatal(err)
	}
	return e.SenderID
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A session holds the endpoint, sends what is queued and what comes while it runs (woken, not
// polled), and ends after it has been idle, letting go of the endpoint.
func TestSenderSessionSendsWhatComesAndEndsWhenIdle(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	f.a.Timings = activities.SenderTimings{Idle: 500 * time.Millisecond, Poll: time.Minute}
	h := newHook(t, 200)
	e := f.endpoint(webhooks.EndpointInput{URL: h.URL})
	for range 3 {
		f.send("a.b", `1`)
	}
	s := f.startSession(e.ID, nil)
	eventually(t, "the queued messages", func() bool { return len(h.requests()) == 3 })
	if owner := f.senderOf(e.ID); owner == "" {
		t.Error("the endpoint is not held while its session runs")
	}
	later := f.send("a.b", `2`) // the session waits with a one-minute poll: only a wake-up brings it
	eventually(t, "the message sent while the session waits", func() bool { return len(h.requests()) == 4 })
	s.wait(t, 5*time.Second)
	if s.err != nil || s.res.Sent != 4 || !s.res.NextDueAt.IsZero() {
		t.Fatalf("session: %+v %v", s.res, s.err)
	}
	if owner := f.senderOf(e.ID); owner != "" {
		t.Errorf("the endpoint is still held by %q after its session ended", owner)
	}
	d, _ := f.svc.GetDelivery(context.Background(), later.Deliveries[0].ID)
	if d.Status != "succeeded" || len(d.Attempts) != 1 || d.Attempts[0].Outcome != "succeeded" {
		t.Errorf("delivery %+v", d)
	}
}

// When the worker stops, a session starts no more requests, lets the ones in flight finish
// within the grace period, records them, lets go of the endpoint and ends with a retryable error
// (Temporal runs it again on another worker). A request still in flight after the grace is
// recorded as an unknown outcome and is due again at once.
func TestSenderSessionHandsOverWhenTheWorkerStops(t *testing.T) {
	for _, c := range []struct {
		name    string
		delay   time.Duration
		outcome string
	}{
		{"in flight finishes", 200 * time.Millisecond, "succeeded"},
		{"in flight abandoned", 10 * time.Second, "unknown"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newWebhookFixture(t, webhooks.Settings{Timeout: 20 * time.Second})
			f.a.StopGrace = time.Second
			h := newHook(t, 200)
			h.delay = c.delay
			e := f.endpoint(webhooks.EndpointInput{URL: h.URL, Ordered: true, TimeoutSeconds: 20})
			first := f.send("a.b", `1`)
			for range 5 {
				f.send("a.b", `2`)
			}
			stop := make(chan struct{})
			s := f.startSession(e.ID, stop)
			<-h.arrived
			stoppedAt := time.Now()
			close(stop)
			s.wait(t, 5*time.Second)
			var appErr *temporal.ApplicationError
			if !errors.As(s.err, &appErr) || appErr.Type() != "SenderHandoff" || appErr.NonRetryable() {
				t.Fatalf("a stopping session ended with %v, want the retryable hand-over", s.err)
			}
			if took := time.Since(stoppedAt); took > 3*time.Second {
				t.Errorf("the hand-over took %s", took)
			}
			if got := h.requests(); len(got) != 1 {
				t.Errorf("%d requests, want only the one in flight when the worker stopped", len(got))
			}
			if owner := f.senderOf(e.ID); owner != "" {
				t.Errorf("the endpoint is still held by %q", owner)
			}
			d, _ := f.svc.GetDelivery(context.Background(), first.Deliveries[0].ID)
			if len(d.Attempts) != 1 || d.Attempts[0].Outcome != c.outcome {
				t.Fatalf("the request in flight was logged as %+v, want %s", d.Attempts, c.outcome)
			}
			if c.outcome == "unknown" && (d.Status != "pending" || d.NextAttemptAt == nil || time.Until(*d.NextAttemptAt) > 0) {
				t.Errorf("an abandoned request's delivery must be due again now: %+v", d)
			}
		})
	}
}

// A session taking over from a sender that died turns what it left started into unknown
// outcomes and sends those deliveries again.
func TestSenderSessionRecoversWhatADeadSenderLeft(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	f.a.Timings = activities.SenderTimings{Idle: 100 * time.Millisecond}
	h := newHook(t, 200)
	e := f.endpoint(webhooks.EndpointInput{URL: h.URL})
	m := f.send("a.b", `1`)
	ctx := context.Background()
	past := time.Now().Add(-time.Minute)
	if ok, err := f.st.AcquireWebhookSender(ctx, e.ID, "dead-worker", past, past); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := f.st.StartWebhookAttempts(ctx, []store.WebhookAttempt{{ID: store.NewID(), DeliveryID: m.Deliveries[0].ID,
		EndpointID: e.ID, Attempt: 1, URL: e.URL, StartedAt: past}}); err != nil {
		t.Fatal(err)
	}
	s := f.startSession(e.ID, nil)
	s.wait(t, 5*time.Second)
	if s.err != nil || s.res.Sent != 1 {
		t.Fatalf("session %+v %v", s.res, s.err)
	}
	d, _ := f.svc.GetDelivery(ctx, m.Deliveries[0].ID)
	if d.Status != "succeeded" || len(d.Attempts) != 2 || d.Attempts[0].Outcome != "unknown" ||
		d.Attempts[1].Outcome != "succeeded" || d.Attempts[1].Attempt != 2 {
		t.Fatalf("the attempt log after a dead sender: %+v", d.Attempts)
	}
}

// The circuit breaker's state is on the endpoint's row: after the threshold the session holds
// the endpoint for the cool-down, then sends one probe; a failed probe doubles the cool-down, a
// successful one closes the circuit and the rest goes out. A hold longer than the session
// lingers ends it, saying when to come back.
func TestSenderSessionCircuitBreaker(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{CircuitThreshold: 2, CircuitCooldown: 300 * time.Millisecond})
	f.a.Timings = activities.SenderTimings{Idle: 100 * time.Millisecond, Linger: 5 * time.Second}
	// Two failures open the circuit, the first probe fails, the second succeeds.
	h := newHook(t, 503, 503, 503, 200)
	e := f.endpoint(webhooks.EndpointInput{URL: h.URL, RetrySchedule: []string{"50ms", "50ms", "50ms", "50ms"}})
	m := f.send("a.b", `1`)
	s := f.startSession(e.ID, nil)
	eventually(t, "the circuit to open", func() bool {
		ep, _ := f.st.GetWebhookEndpointAny(context.Background(), e.ID)
		return ep.CircuitOpenUntil != nil
	})
	s.wait(t, 10*time.Second)
	if s.err != nil || s.res.Sent != 4 {
		t.Fatalf("session %+v %v", s.res, s.err)
	}
	ep, _ := f.st.GetWebhookEndpointAny(context.Background(), e.ID)
	if ep.FailedRequests != 0 || ep.CircuitTrips != 0 || ep.CircuitOpenUntil != nil {
		t.Errorf("a successful probe did not close the circuit: %+v", store.CircuitOf(ep))
	}
	d, _ := f.svc.GetDelivery(context.Background(), m.Deliveries[0].ID)
	if len(d.Attempts) != 4 || d.Status != "succeeded" {
		t.Fatalf("attempts %+v", d.Attempts)
	}
	// The retry schedule says 50 ms; the open circuit holds the first probe for the cool-down
	// and the second for twice as long.
	gap := func(i int) time.Duration { return d.Attempts[i].StartedAt.Sub(d.Attempts[i-1].StartedAt) }
	if gap(2) < 300*time.Millisecond || gap(3) < 600*time.Millisecond {
		t.Errorf("probes %s and %s after the attempt before, want at least the cool-down (300 ms, then 600 ms)", gap(2), gap(3))
	}

	// A long cool-down ends the session: the dispatcher waits on a timer.
	f2 := newWebhookFixture(t, webhooks.Settings{CircuitThreshold: 2, CircuitCooldown: 10 * time.Minute})
	f2.a.Timings = activities.SenderTimings{Linger: time.Second}
	down := newHook(t, 503)
	e2 := f2.endpoint(webhooks.EndpointInput{URL: down.URL})
	for range 4 {
		f2.send("a.b", `1`)
	}
	s2 := f2.startSession(e2.ID, nil)
	s2.wait(t, 10*time.Second)
	if s2.err != nil || time.Until(s2.res.NextDueAt) < 9*time.Minute {
		t.Fatalf("an open circuit: %+v %v, want the session to end until the cool-down is over", s2.res, s2.err)
	}
	if owner := f2.senderOf(e2.ID); owner != "" {
		t.Errorf("the endpoint is still held by %q while its circuit is open", owner)
	}
	if view, _ := f2.svc.GetEndpoint(context.Background(), e2.ID); view.CircuitOpenUntil == nil || !view.CircuitOpenUntil.Equal(s2.res.NextDueAt) {
		t.Errorf("the endpoint does not show its open circuit: %v, want %s", view.CircuitOpenUntil, s2.res.NextDueAt)
	}
}

// A retry due later than the session lingers ends the session with its time.
func TestSenderSessionLeavesFarRetriesToTheDispatcher(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	f.a.Timings = activities.SenderTimings{Linger: time.Second}
	h := newHook(t, 500)
	e := f.endpoint(webhooks.EndpointInput{URL: h.URL, RetrySchedule: []string{"1m"}})
	f.send("a.b", `1`)
	s := f.startSession(e.ID, nil)
	s.wait(t, 5*time.Second)
	if due := time.Until(s.res.NextDueAt); s.err != nil || due < 50*time.Second || due > time.Minute {
		t.Fatalf("session %+v %v, want the retry's time (in a minute)", s.res, s.err)
	}
}

// A session for an endpoint that was deleted, or never existed, ends at once and says so.
func TestSenderSessionForAGoneEndpoint(t *testing.T) {
	f := newWebhookFixture(t, webhooks.Settings{})
	e := f.endpoint(webhooks.EndpointInput{URL: newHook(t, 200).URL})
	if err := f.svc.DeleteEndpoint(context.Background(), e.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{e.ID, store.NewID()} {
		s := f.startSession(id, nil)
		s.wait(t, 5*time.Second)
		if s.err != nil || s.res.Stopped != "deleted" {
			t.Errorf("session for %s: %+v %v", id, s.res, s.err)
		}
	}
}
