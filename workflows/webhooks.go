package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

// Dispatcher tuning.
const (
	// dispatcherIdle is how long a dispatcher with nothing pending waits for a wake-up before it
	// ends (the next message starts it again with SignalWithStart).
	dispatcherIdle = 5 * time.Minute
	// dispatcherHistoryLimit continues as new well before Temporal's history limits (and the
	// 10,000 signals one execution may receive).
	dispatcherHistoryLimit = 2000
)

// WebhookDispatcher sends one endpoint's webhook deliveries, for as long as it has any. It is
// started and woken by webhooks.Service with SignalWithStart (id
// webhooks.DispatcherWorkflowID), one per endpoint, so a slow or failing endpoint delays no
// other. Each round runs the DeliverWebhookBatch local activity, which sends what is due and
// records the attempts; between rounds the dispatcher sleeps on a durable timer until the next
// retry is due or a wake signal says new deliveries are queued. It holds the endpoint while its
// circuit is open (probing with one delivery after each cool-down) or a receiver asked it to
// wait, disables the endpoint when the batch says so, and continues as new before its history
// grows large, carrying its circuit state.
func WebhookDispatcher(ctx workflow.Context, in webhooks.DispatcherInput) error {
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

	for {
		drain()
		now := workflow.Now(ctx)
		if hold := later(st.CircuitOpenUntil, st.PausedUntil); hold.After(now) {
			waitForWake(ctx, wake, hold.Sub(now))
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
			st.CircuitOpenUntil = workflow.Now(ctx).Add(circuitCooldown(res.CircuitCooldown, st.CircuitTrips))
		}
		if res.PauseUntil.After(st.PausedUntil) {
			st.PausedUntil = res.PauseUntil
		}
		if res.Disable != "" {
			return disableEndpoint(ctx, a, st.EndpointID, res, drain)
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
		if res.More {
			continue
		}
		wait := dispatcherIdle
		if !res.NextDueAt.IsZero() {
			wait = res.NextDueAt.Sub(workflow.Now(ctx))
		}
		if wait <= 0 {
			continue
		}
		if woke := waitForWake(ctx, wake, wait); !woke && res.NextDueAt.IsZero() && !drain() {
			return nil // idle: the next message starts a new run
		}
	}
}

// disableEndpoint runs the disable activity with an event id fixed in the history, so that a
// retried activity emits webhook.endpoint.disabled once.
func disableEndpoint(ctx workflow.Context, a *activities.Webhooks, endpointID string, res activities.WebhookBatchResult, drain func() bool) error {
	var eventID string
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return store.NewID() }).Get(&eventID); err != nil {
		return err
	}
	in := activities.WebhookDisableInput{EndpointID: endpointID, Reason: res.Disable, Kind: res.DisableKind, EventID: eventID}
	if err := workflow.ExecuteLocalActivity(ctx, a.DisableWebhookEndpoint, in).Get(ctx, nil); err != nil {
		return err
	}
	drain()
	return nil
}

// waitForWake sleeps up to d or until a wake signal is queued (left for drain to take), and
// reports whether it was woken.
func waitForWake(ctx workflow.Context, wake workflow.ReceiveChannel, d time.Duration) bool {
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	woke := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(wake, func(workflow.ReceiveChannel, bool) { woke = true })
	sel.AddFuture(workflow.NewTimer(tctx, d), func(workflow.Future) {})
	sel.Select(ctx)
	return woke
}

// circuitCooldown doubles the base cool-down with each trip in a row, up to
// webhooks.MaxCircuitCooldown (or the base, when that is longer).
func circuitCooldown(base time.Duration, trips int) time.Duration {
	limit := max(base, webhooks.MaxCircuitCooldown)
	d := base
	for i := 1; i < trips && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
