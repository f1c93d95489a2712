package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/webhooks"
	"github.com/pyairtable/automation-domain/wire"
)

// Dispatcher tuning.
const (
	// senderSessionTimeout bounds one sender session (it ends by itself after
	// SenderTimings.MaxSession and its last batch).
	senderSessionTimeout = 10 * time.Minute
	// dispatcherIdle is how long a dispatcher with nothing pending waits for a wake-up before it
	// ends (the next message starts it again with SignalWithStart).
	dispatcherIdle = 5 * time.Minute
	// dispatcherHistoryLimit continues as new well before Temporal's history limits (and the
	// 10,000 signals one execution may receive).
	dispatcherHistoryLimit = 2000
)

// WebhookDispatcher sends one endpoint's webhook deliveries, for as long as it has any. It is
// started and woken by webhooks.Service with SignalWithStart (id webhooks.DispatcherWorkflowID),
// one per endpoint, so a slow or failing endpoint delays no other.
//
// Since version "sender-sessions" the sending is done by sender sessions
// ((*activities.Webhooks).RunWebhookSender, see dispatchSessions). Runs started before keep the
// first design to their end: each round runs the DeliverWebhookBatch local activity, which
// sends what is due and records the attempts; between rounds the dispatcher sleeps on a durable
// timer until the next retry is due or a wake signal says new deliveries are queued. It holds
// the endpoint while its circuit is open (probing with one delivery after each cool-down) or a
// receiver asked it to wait, disables the endpoint when the batch says so, and continues as new
// (into the current version) before its history grows large.
func WebhookDispatcher(ctx workflow.Context, in webhooks.DispatcherInput) error {
	if workflow.GetVersion(ctx, "sender-sessions", workflow.DefaultVersion, 1) >= 1 {
		return dispatchSessions(ctx, in.EndpointID)
	}
	st := in
	wake := workflow.GetSignalChannel(ctx, webhooks.WakeSignal)
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		// A batch starts no request after 10 s, and a request takes at most 60 s.
		StartToCloseTimeout: 3 * time.Minute,
		// Only infrastructure fails a batch (the database); retry it until it answers.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	var a *activities.Webhooks

	// drain takes every queued wake-up (applying resets) and reports whether there was any.
	drain := func() bool {
		woke := false
		for {
			var w webhooks.Wake
			if !wake.ReceiveAsync(&w) {
				return woke
			}
			woke = true
			if w.Reset {
				st.FailedInARow, st.CircuitTrips = 0, 0
				st.CircuitOpenUntil, st.PausedUntil = time.Time{}, time.Time{}
			}
		}
	}

	// Timers outlive a round: a wake-up does not cancel them, so a busy dispatcher whose
	// deliveries all succeed makes no timer at all, and one waiting for a retry keeps one timer
	// per due time. The idle timer ends the run after dispatcherIdle without work.
	due := &timerSlot{}
	idle := &timerSlot{}
	lastWork := workflow.Now(ctx)
	for {
		drain()
		now := workflow.Now(ctx)
		if hold := later(st.CircuitOpenUntil, st.PausedUntil); hold.After(now) {
			due.set(ctx, hold)
			waitForWake(ctx, wake, due)
			continue
		}
		batch := activities.WebhookBatchInput{EndpointID: st.EndpointID, FailedInARow: st.FailedInARow}
		if st.CircuitTrips > 0 {
			batch.Limit = 1 // half-open: one probe decides
		}
		var res activities.WebhookBatchResult
		if err := workflow.ExecuteLocalActivity(ctx, a.DeliverWebhookBatch, batch).Get(ctx, &res); err != nil {
			return err
		}
		st.FailedInARow = res.FailedInARow
		if res.Succeeded > 0 {
			st.CircuitTrips, st.CircuitOpenUntil = 0, time.Time{}
		}
		if res.OpenCircuit {
			st.CircuitTrips++
			st.CircuitOpenUntil = workflow.Now(ctx).Add(webhooks.CircuitCooldown(res.CircuitCooldown, st.CircuitTrips))
		}
		if res.PauseUntil.After(st.PausedUntil) {
			st.PausedUntil = res.PauseUntil
		}
		if res.Disable != "" {
			return disableEndpoint(ctx, a, st.EndpointID, res.Disable, res.DisableKind, drain)
		}
		if res.Stopped != "" {
			drain()
			return nil
		}
		if info := workflow.GetInfo(ctx); info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= dispatcherHistoryLimit {
			// Wake-ups carry no data: whatever they announced, the new run's first batch finds.
			drain()
			return workflow.NewContinueAsNewError(ctx, WebhookDispatcher, st)
		}
		if res.Sent > 0 || res.More {
			lastWork = workflow.Now(ctx)
		}
		if res.More {
			continue
		}
		if res.NextDueAt.IsZero() {
			due.clear()
			if idle.fired() && workflow.Now(ctx).Sub(lastWork) >= dispatcherIdle {
				if drain() {
					continue
				}
				return nil // idle: the next message starts a new run
			}
			if idle.fired() || !idle.armed() {
				idle.set(ctx, workflow.Now(ctx).Add(dispatcherIdle))
			}
			waitForWake(ctx, wake, idle)
			continue
		}
		if !res.NextDueAt.After(workflow.Now(ctx)) {
			continue
		}
		due.set(ctx, res.NextDueAt)
		waitForWake(ctx, wake, due)
	}
}

// timerSlot is a durable timer kept across rounds of the dispatcher.
type timerSlot struct {
	at     time.Time
	f      workflow.Future
	cancel workflow.CancelFunc
}

// set makes the slot fire at `at`, keeping the running timer when it is for the same time.
func (t *timerSlot) set(ctx workflow.Context, at time.Time) {
	if t.f != nil && t.at.Equal(at) && !t.f.IsReady() {
		return
	}
	t.clear()
	tctx, cancel := workflow.WithCancel(ctx)
	t.at, t.f, t.cancel = at, workflow.NewTimer(tctx, max(at.Sub(workflow.Now(ctx)), time.Millisecond)), cancel
}

// clear cancels a running timer.
func (t *timerSlot) clear() {
	if t.f != nil && !t.f.IsReady() {
		t.cancel()
	}
	t.f, t.cancel = nil, nil
}

func (t *timerSlot) armed() bool { return t.f != nil }
func (t *timerSlot) fired() bool { return t.f != nil && t.f.IsReady() }

// dispatchSessions runs the endpoint's sender sessions one after another: a session (a
// heartbeating activity on webhooks.SenderTaskQueue) sends for as long as deliveries keep
// coming or are due soon, and is run again on another worker within seconds when its worker
// dies or stops. Between sessions the dispatcher waits on a durable timer for a retry or a hold
// (open circuit, Retry-After) that is due later, or for a wake signal (a message for an endpoint
// no session holds). It disables the endpoint when a session says so, ends when nothing is
// pending (the next message starts it again) and continues as new before its history grows
// large. The circuit breaker's state is on the endpoint's row, so wake-ups carry nothing.
func dispatchSessions(ctx workflow.Context, endpointID string) error {
	wake := workflow.GetSignalChannel(ctx, webhooks.WakeSignal)
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           webhooks.SenderTaskQueue,
		StartToCloseTimeout: senderSessionTimeout,
		HeartbeatTimeout:    activities.SenderHeartbeatTimeout,
		// A session that ends with an error (its worker stops, the database is down) runs again
		// quickly; retries never end (a cancellation ends the dispatcher).
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 2 * time.Second},
	})
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	drain := func() bool {
		woke := false
		var w webhooks.Wake
		for wake.ReceiveAsync(&w) {
			woke = true
		}
		return woke
	}
	var a *activities.Webhooks
	due := &timerSlot{}
	for {
		drain()
		var res activities.WebhookSenderResult
		if err := workflow.ExecuteActivity(sctx, a.RunWebhookSender, activities.WebhookSenderInput{EndpointID: endpointID}).Get(ctx, &res); err != nil {
			return err
		}
		if res.Disable != "" {
			return disableEndpoint(lctx, a, endpointID, res.Disable, res.DisableKind, drain)
		}
		if res.Stopped != "" {
			drain()
			return nil
		}
		if info := workflow.GetInfo(ctx); info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= dispatcherHistoryLimit {
			drain()
			return workflow.NewContinueAsNewError(ctx, WebhookDispatcher, webhooks.DispatcherInput{EndpointID: endpointID})
		}
		if res.NextDueAt.IsZero() {
			if drain() {
				continue
			}
			return nil // nothing pending: the next message starts a new run
		}
		if !res.NextDueAt.After(workflow.Now(ctx)) {
			continue
		}
		due.set(ctx, res.NextDueAt)
		waitForWake(ctx, wake, due)
	}
}

// disableEndpoint runs the disable activity with an event id fixed in the history, so that a
// retried activity emits webhook.endpoint.disabled once.
func disableEndpoint(ctx workflow.Context, a *activities.Webhooks, endpointID, reason, kind string, drain func() bool) error {
	var eventID string
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return wire.NewID() }).Get(&eventID); err != nil {
		return err
	}
	in := activities.WebhookDisableInput{EndpointID: endpointID, Reason: reason, Kind: kind, EventID: eventID}
	if err := workflow.ExecuteLocalActivity(ctx, a.DisableWebhookEndpoint, in).Get(ctx, nil); err != nil {
		return err
	}
	drain()
	return nil
}

// waitForWake blocks until a wake signal is queued (left for drain to take) or the timer fires.
func waitForWake(ctx workflow.Context, wake workflow.ReceiveChannel, t *timerSlot) {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(wake, func(workflow.ReceiveChannel, bool) {})
	if t.f != nil {
		sel.AddFuture(t.f, func(workflow.Future) {})
	}
	sel.Select(ctx)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
