package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/rules"
)

// Evaluator defaults (rules.EvaluatorSettings).
const (
	defaultMaxBatch        = 100
	defaultMaxInFlight     = 200
	defaultMaxEventsPerRun = 1000
)

// RuleEvaluator is the rules engine: one long-running workflow per event-type partition, fed by
// SignalWithStart (rules.Dispatcher). It takes the waiting events in batches, has them decided by
// one local activity per batch (every rule, exactly once per event), then runs each event's fired
// rules in priority order — each rule's actions in order, one activity each — while the next batch
// is decided. Before its history grows too long it stops taking work, waits for the running
// actions, drains the signal channel and continues as new with the events still waiting, so that
// no signal is lost.
func RuleEvaluator(ctx workflow.Context, in rules.EvaluatorInput) error {
	s := in.Settings
	if s.MaxBatch <= 0 {
		s.MaxBatch = defaultMaxBatch
	}
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = defaultMaxInFlight
	}
	if s.MaxEventsPerRun <= 0 {
		s.MaxEventsPerRun = defaultMaxEventsPerRun
	}
	log := workflow.GetLogger(ctx)
	signals := workflow.GetSignalChannel(ctx, rules.EventSignal)
	pending := append([]rules.EventRef(nil), in.Pending...)
	decideCtx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// The database may be down for a while: keep trying, backing off up to a minute.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	runningEvents, taken := 0, 0
	inFlight := map[string]bool{} // executions whose actions run in this workflow now
	var a *activities.Rules
	for {
		if len(pending) == 0 {
			var b rules.EventBatch
			signals.Receive(ctx, &b)
			pending = append(pending, b.Events...)
		}
		for len(pending) < s.MaxBatch {
			var b rules.EventBatch
			if !signals.ReceiveAsync(&b) {
				break
			}
			pending = append(pending, b.Events...)
		}
		n := min(len(pending), s.MaxBatch)
		batch := append([]rules.EventRef(nil), pending[:n]...)
		pending = append([]rules.EventRef(nil), pending[n:]...)
		taken += n

		var decided activities.EvaluateResult
		err := workflow.ExecuteLocalActivity(decideCtx, a.Evaluate, activities.EvaluateInput{Events: batch}).Get(ctx, &decided)
		if err != nil {
			// Retries are unlimited, so this is a cancellation or a bug: keep the events and try
			// again later rather than lose them.
			log.Error("evaluating a batch of events failed; retrying in a minute", "events", len(batch), "error", err)
			pending = append(batch, pending...)
			if serr := workflow.Sleep(ctx, time.Minute); serr != nil {
				return serr
			}
			continue
		}
		// Events whose rules took too long to evaluate in this activity come next.
		pending = append(decided.Deferred, pending...)
		for _, run := range decided.Runs {
			var todo []activities.ExecutionRun
			for _, x := range run.Executions {
				// An execution already running here was resumed by a repeated signal: leave it to
				// the coroutine that runs it.
				if !inFlight[x.ExecutionID] && len(x.Actions) > 0 {
					inFlight[x.ExecutionID] = true
					todo = append(todo, x)
				}
			}
			if len(todo) == 0 {
				continue
			}
			runningEvents++
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer func() {
					runningEvents--
					for _, x := range todo {
						delete(inFlight, x.ExecutionID)
					}
				}()
				runExecutions(ctx, todo)
			})
		}
		if err := workflow.Await(ctx, func() bool { return runningEvents < s.MaxInFlight }); err != nil {
			return err
		}
		info := workflow.GetInfo(ctx)
		if info.GetContinueAsNewSuggested() || taken >= s.MaxEventsPerRun ||
			(s.MaxHistory > 0 && info.GetCurrentHistoryLength() >= s.MaxHistory) {
			if err := workflow.Await(ctx, func() bool { return runningEvents == 0 }); err != nil {
				return err
			}
			for {
				var b rules.EventBatch
				if !signals.ReceiveAsync(&b) {
					break
				}
				pending = append(pending, b.Events...)
			}
			log.Info("continuing as new", "history_length", info.GetCurrentHistoryLength(), "events_taken", taken,
				"carried_events", len(pending))
			return workflow.NewContinueAsNewError(ctx, rules.EvaluatorWorkflow,
				rules.EvaluatorInput{Partition: in.Partition, Settings: in.Settings, Pending: pending})
		}
	}
}

// runExecutions runs the fired rules of one event in priority order, each rule's actions in
// order. An action that fails for good stops its rule (unless continue_on_error), never the
// others.
func runExecutions(ctx workflow.Context, execs []activities.ExecutionRun) {
	// Actions are local activities: they hand work to other modules (which queue it durably)
	// or publish an event, so they are quick, and running them in the worker without a round
	// trip through the server per action is what lets one evaluator keep up with hundreds of
	// events a second. They are idempotent (RunAction and the modules it calls dedupe by
	// idempotency key), which local activities need: a crash re-runs those not yet recorded.
	actionCtx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: 15 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10,
			NonRetryableErrorTypes: []string{"ActionFailed"},
		},
	})
	finishCtx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	var a *activities.Rules
	for _, x := range execs {
		var failed []int
		var lastErr error
		for _, act := range x.Actions {
			err := workflow.ExecuteLocalActivity(actionCtx, a.RunAction, activities.ActionInput{
				ExecutionID: x.ExecutionID, Index: act.Index, TraceParent: x.TraceParent,
			}).Get(ctx, nil)
			if err == nil {
				continue
			}
			failed, lastErr = append(failed, act.Index), err
			if !act.ContinueOnError {
				break
			}
		}
		if len(failed) == 0 {
			continue
		}
		err := workflow.ExecuteLocalActivity(finishCtx, a.FinishExecution, activities.FinishInput{
			ExecutionID: x.ExecutionID, Failed: failed, Error: errorMessage(lastErr),
		}).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Error("recording a failed execution", "execution_id", x.ExecutionID, "error", err)
		}
	}
}

// errorMessage is the message of an activity failure without Temporal's wrapping.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out: " + timeout.Error()
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// scheduledStartTime is the search attribute Temporal Schedules set on the workflows they start.
var scheduledStartTime = temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")

// RuleScheduleFire is what a schedule trigger's Temporal Schedule starts at each firing: it
// publishes the rule's schedule event (rules.ScheduleEventType), which the rule then evaluates.
func RuleScheduleFire(ctx workflow.Context, in rules.ScheduleFireInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	info := workflow.GetInfo(ctx)
	at, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(scheduledStartTime)
	if !ok {
		at = info.WorkflowStartTime
	}
	var a *activities.Rules
	return workflow.ExecuteActivity(ctx, a.FireSchedule, activities.FireInput{
		RuleID: in.RuleID, FiringID: info.WorkflowExecution.ID, ScheduledAt: at,
	}).Get(ctx, nil)
}

// PurgeExpiredEvents deletes events older than EVENT_RETENTION with their rule executions; a
// Schedule runs it every hour.
func PurgeExpiredEvents(ctx workflow.Context) (int, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var a *activities.Rules
	var n int
	err := workflow.ExecuteActivity(ctx, a.PurgeExpired).Get(ctx, &n)
	return n, err
}
