package workflows

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/webhooks"
)

// batchScript answers DeliverWebhookBatch calls in order (the last answer repeats) and records
// each call with the workflow clock.
type batchScript struct {
	mu      sync.Mutex
	env     *testsuite.TestWorkflowEnvironment
	answers []func(now time.Time) activities.WebhookBatchResult
	calls   []batchCall
}

type batchCall struct {
	at time.Time
	in activities.WebhookBatchInput
}

func (s *batchScript) answer(in activities.WebhookBatchInput) (activities.WebhookBatchResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.env.Now()
	s.calls = append(s.calls, batchCall{at: now, in: in})
	i := min(len(s.calls)-1, len(s.answers)-1)
	return s.answers[i](now), nil
}

// batchOffsets gives each call's time after the first, for failure messages.
func batchOffsets(calls []batchCall) []time.Duration {
	var d []time.Duration
	for _, c := range calls {
		d = append(d, c.at.Sub(calls[0].at))
	}
	return d
}

func (s *batchScript) snapshot() []batchCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]batchCall(nil), s.calls...)
}

// newDispatcherEnv runs the dispatcher as started before sender sessions (the first design,
// which running dispatchers keep to their end): batches from a local activity.
func newDispatcherEnv(t *testing.T, answers ...func(time.Time) activities.WebhookBatchResult) (*testsuite.TestWorkflowEnvironment, *batchScript) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.OnGetVersion("sender-sessions", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.RegisterWorkflow(WebhookDispatcher)
	a := &activities.Webhooks{}
	env.RegisterActivity(a)
	script := &batchScript{env: env, answers: answers}
	env.OnActivity(a.DeliverWebhookBatch, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WebhookBatchInput) (activities.WebhookBatchResult, error) {
			return script.answer(in)
		})
	return env, script
}

func idleAnswer(time.Time) activities.WebhookBatchResult { return activities.WebhookBatchResult{} }

// The dispatcher is registered under the name the webhooks module starts it by.
func TestDispatcherIsRegisteredUnderItsName(t *testing.T) {
	env, script := newDispatcherEnv(t, idleAnswer)
	env.ExecuteWorkflow(webhooks.DispatcherWorkflow, webhooks.DispatcherInput{EndpointID: "ep"})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed=%v err=%v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	if calls := script.snapshot(); len(calls) == 0 || calls[0].in.EndpointID != "ep" {
		t.Fatalf("calls %+v", calls)
	}
}

// A full batch is followed at once by another; a retry due later is waited for on a timer; with
// nothing pending the dispatcher ends after the idle time.
func TestDispatcherBatchesThenWaitsForTheNextRetry(t *testing.T) {
	var start time.Time
	env, script := newDispatcherEnv(t,
		func(now time.Time) activities.WebhookBatchResult {
			start = now
			return activities.WebhookBatchResult{Sent: 100, Succeeded: 100, More: true}
		},
		func(now time.Time) activities.WebhookBatchResult {
			return activities.WebhookBatchResult{Sent: 3, Failed: 3, FailedInARow: 3, NextDueAt: now.Add(5 * time.Second)}
		},
		idleAnswer,
	)
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	calls := script.snapshot()
	if len(calls) < 3 {
		t.Fatalf("%d batches, want at least 3: %+v", len(calls), calls)
	}
	if calls[1].at.Sub(start) > time.Second {
		t.Errorf("the batch after a full one waited %s", calls[1].at.Sub(start))
	}
	if gap := calls[2].at.Sub(calls[1].at); gap < 5*time.Second || gap > 6*time.Second {
		t.Errorf("the retry batch came %s after, want 5 s", gap)
	}
	if calls[2].in.FailedInARow != 3 {
		t.Errorf("failed-in-a-row not carried: %+v", calls[2].in)
	}
	// With nothing pending it looks once more after the idle time, then ends.
	if len(calls) != 4 || calls[3].at.Sub(calls[2].at) != dispatcherIdle {
		t.Errorf("idle: %d batches, the last %s after the retry", len(calls), calls[len(calls)-1].at.Sub(calls[2].at))
	}
}

// A wake signal runs a batch at once, even while a retry timer is pending.
func TestDispatcherWakesOnSignal(t *testing.T) {
	env, script := newDispatcherEnv(t,
		func(now time.Time) activities.WebhookBatchResult {
			return activities.WebhookBatchResult{NextDueAt: now.Add(time.Hour)}
		},
	)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(webhooks.WakeSignal, webhooks.Wake{}) }, time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(webhooks.WakeSignal, webhooks.Wake{}) }, 2*time.Minute)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 3*time.Minute)
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	// Cancelling the run may let one more local activity start (the test environment runs it on
	// its own goroutine as the cancellation lands); only the batches before it count here.
	var calls []batchCall
	for _, c := range script.snapshot() {
		if len(calls) == 0 || c.at.Sub(calls[0].at) < 3*time.Minute {
			calls = append(calls, c)
		}
	}
	if len(calls) != 3 {
		t.Fatalf("%d batches before the cancellation at %v, want 3 (start and two wake-ups)", len(calls), batchOffsets(script.snapshot()))
	}
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute} {
		if got := calls[i+1].at.Sub(calls[0].at); got != want {
			t.Errorf("batch %d at +%s, want +%s", i+1, got, want)
		}
	}
}

// After the circuit opens nothing is sent for the cool-down; then one probe goes out; a failed
// probe doubles the cool-down; a successful one closes the circuit.
func TestDispatcherCircuitBreaker(t *testing.T) {
	fail := func(now time.Time) activities.WebhookBatchResult {
		return activities.WebhookBatchResult{Sent: 10, Failed: 10, FailedInARow: 10, OpenCircuit: true,
			CircuitCooldown: 30 * time.Second, NextDueAt: now}
	}
	env, script := newDispatcherEnv(t,
		fail, // opens
		fail, // probe fails: 60 s
		func(now time.Time) activities.WebhookBatchResult {
			return activities.WebhookBatchResult{Sent: 1, Succeeded: 1, NextDueAt: now}
		},
		func(time.Time) activities.WebhookBatchResult {
			return activities.WebhookBatchResult{Sent: 50, Succeeded: 50}
		},
		idleAnswer,
	)
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	calls := script.snapshot()
	if len(calls) < 4 {
		t.Fatalf("%d batches", len(calls))
	}
	if gap := calls[1].at.Sub(calls[0].at); gap != 30*time.Second || calls[1].in.Limit != 1 {
		t.Errorf("first probe after %s with limit %d, want 30 s and 1", gap, calls[1].in.Limit)
	}
	if gap := calls[2].at.Sub(calls[1].at); gap != 60*time.Second || calls[2].in.Limit != 1 {
		t.Errorf("second probe after %s with limit %d, want 60 s and 1", gap, calls[2].in.Limit)
	}
	if gap := calls[3].at.Sub(calls[2].at); gap != 0 || calls[3].in.Limit != 0 {
		t.Errorf("after a good probe: +%s limit %d, want at once and a full batch", gap, calls[3].in.Limit)
	}
}

// A reset wake-up (the endpoint was re-enabled) closes an open circuit at once.
func TestDispatcherResetClosesTheCircuit(t *testing.T) {
	env, script := newDispatcherEnv(t,
		func(now time.Time) activities.WebhookBatchResult {
			return activities.WebhookBatchResult{Failed: 10, FailedInARow: 10, OpenCircuit: true,
				CircuitCooldown: 10 * time.Minute, NextDueAt: now}
		},
		idleAnswer,
	)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(webhooks.WakeSignal, webhooks.Wake{Reset: true}) }, time.Minute)
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	calls := script.snapshot()
	if len(calls) < 2 || calls[1].at.Sub(calls[0].at) != time.Minute || calls[1].in.Limit != 0 || calls[1].in.FailedInARow != 0 {
		t.Fatalf("after a reset: %+v", calls)
	}
}

// A receiver's Retry-After holds the endpoint until then.
func TestDispatcherHonoursPause(t *testing.T) {
	env, script := newDispatcherEnv(t,
		func(now time.Time) activities.WebhookBatchResult {
			return activities.WebhookBatchResult{Sent: 1, Failed: 1, PauseUntil: now.Add(2 * time.Minute), NextDueAt: now}
		},
		idleAnswer,
	)
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	calls := script.snapshot()
	if len(calls) < 2 || calls[1].at.Sub(calls[0].at) != 2*time.Minute {
		t.Fatalf("calls %+v", calls)
	}
}

// When the batch says the endpoint must be disabled, the dispatcher disables it once (with an
// event id fixed in its history) and ends.
func TestDispatcherDisablesTheEndpoint(t *testing.T) {
	env, _ := newDispatcherEnv(t, func(time.Time) activities.WebhookBatchResult {
		return activities.WebhookBatchResult{Sent: 1, Failed: 1, Disable: "the endpoint answered 410 Gone", DisableKind: "gone"}
	})
	var a *activities.Webhooks
	var got []activities.WebhookDisableInput
	env.OnActivity(a.DisableWebhookEndpoint, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WebhookDisableInput) error { got = append(got, in); return nil })
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	if err := env.GetWorkflowError(); err != nil || !env.IsWorkflowCompleted() {
		t.Fatalf("err=%v", err)
	}
	if len(got) != 1 || got[0].EndpointID != "ep" || got[0].Kind != "gone" || got[0].EventID == "" {
		t.Fatalf("disable calls %+v", got)
	}
}

// A busy dispatcher continues as new before its history grows large, carrying its state.
func TestDispatcherContinuesAsNew(t *testing.T) {
	env, _ := newDispatcherEnv(t, func(now time.Time) activities.WebhookBatchResult {
		return activities.WebhookBatchResult{Sent: 1, Failed: 1, FailedInARow: 7, NextDueAt: now.Add(time.Second)}
	})
	env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(dispatcherHistoryLimit) }, 10*time.Second)
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next webhooks.DispatcherInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if can.WorkflowType.Name != webhooks.DispatcherWorkflow || next.EndpointID != "ep" || next.FailedInARow != 7 {
		t.Errorf("continued as %s with %+v", can.WorkflowType.Name, next)
	}
}

func TestCircuitCooldownDoublesUpToTheCap(t *testing.T) {
	for trips, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 5: 8 * time.Minute, 6: 10 * time.Minute, 20: 10 * time.Minute} {
		if got := webhooks.CircuitCooldown(30*time.Second, trips); got != want {
			t.Errorf("trips %d: %s, want %s", trips, got, want)
		}
	}
	if got := webhooks.CircuitCooldown(time.Hour, 3); got != time.Hour {
		t.Errorf("a base above the cap: %s", got)
	}
}

// Dispatcher histories recorded on a real server still replay: a change to the workflow that
// would break running dispatchers fails here (guard it with workflow.GetVersion).
//   - webhook_dispatcher_history.json: a dispatcher of the first design (batches from a local
//     activity) on an ordered endpoint: a 500, a 429 with Retry-After, successes, then 410 and
//     the disable;
//   - webhook_dispatcher_sessions_history.json: sender sessions across a worker killed, one
//     started, one stopped and a Temporal restart (e2e.TestFaultsInProductionShape);
//   - webhook_dispatcher_disable_history.json: a session, then 410 and the disable
//     (e2e.TestWebhookDelivery).
//
// UPDATE_REPLAY_HISTORY=1 on those e2e tests records the last two again.
func TestDispatcherReplaysRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/webhook_dispatcher*history.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("histories: %v %v", files, err)
	}
	for _, f := range files {
		replayer := worker.NewWorkflowReplayer()
		replayer.RegisterWorkflow(WebhookDispatcher)
		if err := replayer.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// sessionScript answers RunWebhookSender calls in order (the last answer repeats; an answer
// may fail the attempt) and records each call with the workflow clock and its activity info.
type sessionScript struct {
	mu      sync.Mutex
	env     *testsuite.TestWorkflowEnvironment
	answers []func(now time.Time) (activities.WebhookSenderResult, error)
	calls   []sessionCall
}

type sessionCall struct {
	at   time.Time
	in   activities.WebhookSenderInput
	info activity.Info
}

func newSessionEnv(t *testing.T, answers ...func(time.Time) (activities.WebhookSenderResult, error)) (*testsuite.TestWorkflowEnvironment, *sessionScript) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(WebhookDispatcher)
	a := &activities.Webhooks{}
	env.RegisterActivity(a)
	script := &sessionScript{env: env, answers: answers}
	env.OnActivity(a.RunWebhookSender, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.WebhookSenderInput) (activities.WebhookSenderResult, error) {
			script.mu.Lock()
			defer script.mu.Unlock()
			script.calls = append(script.calls, sessionCall{at: env.Now(), in: in, info: activity.GetInfo(ctx)})
			i := min(len(script.calls)-1, len(script.answers)-1)
			return script.answers[i](env.Now())
		})
	return env, script
}

func (s *sessionScript) snapshot() []sessionCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sessionCall(nil), s.calls...)
}

func noneDue(time.Time) (activities.WebhookSenderResult, error) {
	return activities.WebhookSenderResult{}, nil
}

// Sessions run on the sender task queue with a heartbeat timeout; a session that says the next
// delivery is due later is followed by another at that time, on a durable timer; with nothing
// pending the dispatcher ends.
func TestDispatcherRunsSenderSessions(t *testing.T) {
	env, script := newSessionEnv(t,
		func(now time.Time) (activities.WebhookSenderResult, error) {
			return activities.WebhookSenderResult{Sent: 3, NextDueAt: now.Add(5 * time.Minute)}, nil
		},
		noneDue,
	)
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed=%v err=%v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	calls := script.snapshot()
	if len(calls) != 2 {
		t.Fatalf("%d sessions, want 2", len(calls))
	}
	if gap := calls[1].at.Sub(calls[0].at); gap != 5*time.Minute {
		t.Errorf("the second session came %s after the first, want when the retry is due (5 min)", gap)
	}
	info := calls[0].info
	if calls[0].in.EndpointID != "ep" || info.TaskQueue != webhooks.SenderTaskQueue || info.HeartbeatTimeout != activities.SenderHeartbeatTimeout {
		t.Errorf("session %+v on %q with heartbeat timeout %s", calls[0].in, info.TaskQueue, info.HeartbeatTimeout)
	}
}

// A session that ends with an error (its worker stopped and it handed the endpoint over) runs
// again within a second; a wake signal ends a timer wait at once.
func TestDispatcherRetriesAHandedOverSessionAndWakesOnSignal(t *testing.T) {
	env, script := newSessionEnv(t,
		func(time.Time) (activities.WebhookSenderResult, error) {
			return activities.WebhookSenderResult{}, temporal.NewApplicationError("the worker is stopping", "SenderHandoff")
		},
		func(now time.Time) (activities.WebhookSenderResult, error) {
			return activities.WebhookSenderResult{NextDueAt: now.Add(time.Hour)}, nil
		},
		noneDue,
	)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(webhooks.WakeSignal, webhooks.Wake{}) }, 10*time.Minute)
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	calls := script.snapshot()
	if len(calls) != 3 {
		t.Fatalf("%d sessions, want 3", len(calls))
	}
	if gap := calls[1].at.Sub(calls[0].at); gap > time.Second || calls[1].info.Attempt != 2 {
		t.Errorf("the handed-over session ran again after %s (attempt %d), want within a second", gap, calls[1].info.Attempt)
	}
	if at := calls[2].at.Sub(calls[0].at); at != 10*time.Minute {
		t.Errorf("the session after the wake signal came at +%s, want +10 min (the signal), not after 1 h", at)
	}
}

// A session that says the endpoint must be disabled has it disabled once; a session that finds
// it disabled or deleted ends the dispatcher.
func TestDispatcherSessionsDisableAndStop(t *testing.T) {
	env, _ := newSessionEnv(t, func(time.Time) (activities.WebhookSenderResult, error) {
		return activities.WebhookSenderResult{Sent: 1, Disable: "the endpoint answered 410 Gone", DisableKind: "gone"}, nil
	})
	var a *activities.Webhooks
	var got []activities.WebhookDisableInput
	env.OnActivity(a.DisableWebhookEndpoint, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WebhookDisableInput) error { got = append(got, in); return nil })
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	if err := env.GetWorkflowError(); err != nil || !env.IsWorkflowCompleted() {
		t.Fatalf("err=%v", err)
	}
	if len(got) != 1 || got[0].EndpointID != "ep" || got[0].Kind != "gone" || got[0].EventID == "" {
		t.Fatalf("disable calls %+v", got)
	}

	env, script := newSessionEnv(t, func(time.Time) (activities.WebhookSenderResult, error) {
		return activities.WebhookSenderResult{Stopped: "deleted"}, nil
	})
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	if err := env.GetWorkflowError(); err != nil || !env.IsWorkflowCompleted() || len(script.snapshot()) != 1 {
		t.Fatalf("deleted endpoint: err=%v sessions=%d", err, len(script.snapshot()))
	}
}

// A busy dispatcher continues as new before its history grows large; the circuit's state is on
// the endpoint's row, so only the endpoint goes on.
func TestDispatcherSessionsContinueAsNew(t *testing.T) {
	env, _ := newSessionEnv(t, func(now time.Time) (activities.WebhookSenderResult, error) {
		return activities.WebhookSenderResult{Sent: 1, NextDueAt: now.Add(time.Minute)}, nil
	})
	env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(dispatcherHistoryLimit) }, 10*time.Minute)
	env.ExecuteWorkflow(WebhookDispatcher, webhooks.DispatcherInput{EndpointID: "ep"})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next webhooks.DispatcherInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if can.WorkflowType.Name != webhooks.DispatcherWorkflow || next != (webhooks.DispatcherInput{EndpointID: "ep"}) {
		t.Errorf("continued as %s with %+v", can.WorkflowType.Name, next)
	}
}
