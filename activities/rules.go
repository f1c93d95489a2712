package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/tracing"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
)

// DefaultMaxDepth is the causation depth above which events are not evaluated (RULES_MAX_DEPTH).
const DefaultMaxDepth = 5

// Rules are the rules engine's side effects: evaluating events against the active rules
// (recording every decision), running one action of a fired rule, firing schedule triggers and
// purging old events. The evaluator workflow (workflows.RuleEvaluator) calls them.
type Rules struct {
	Store     *store.Store
	Bus       *events.Bus
	Templates *templating.Engine
	// Expressions evaluates the rules' expression conditions (nil: in this process).
	Expressions *rules.Expressions
	Cache       *rules.Cache
	// Targets are the modules workflow, notification and webhook actions call.
	Targets rules.Targets
	// MaxDepth: events deeper in a causation chain are recorded as skipped, not evaluated.
	MaxDepth int
	// Retention is how long events are kept (PurgeExpired).
	Retention time.Duration
	Log       *slog.Logger
	Metrics   *RulesMetrics
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (a *Rules) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

func (a *Rules) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}

// EvaluateInput is a batch of events signalled to an evaluator.
type EvaluateInput struct {
	Events []rules.EventRef `json:"events"`
}

// EvaluateResult lists what is left to run for the batch: for each event, its fired executions in
// priority order.
type EvaluateResult struct {
	Runs []EventRun `json:"runs,omitempty"`
	// Deferred are events of the batch left undecided: their rules' evaluation would have taken
	// the activity past half its time (every evaluation may take its whole budget). The caller
	// hands them in again.
	Deferred []rules.EventRef `json:"deferred,omitempty"`
}

// EventRun is the fired executions of one event, in priority order.
type EventRun struct {
	EventID    string         `json:"event_id"`
	Executions []ExecutionRun `json:"executions"`
}

// ExecutionRun is one fired rule: the actions still to run, in order.
type ExecutionRun struct {
	ExecutionID string      `json:"execution_id"`
	RuleID      string      `json:"rule_id"`
	Actions     []ActionRef `json:"actions"`
	// TraceParent is the trace context of the event's evaluation: the actions continue it.
	TraceParent string `json:"traceparent,omitempty"`
}

// ActionRef names action Index of an execution.
type ActionRef struct {
	Index           int  `json:"index"`
	ContinueOnError bool `json:"continue_on_error,omitempty"`
}

// Evaluate decides every event of the batch against the active rules, exactly once per event:
// the decision (per rule: matched or not and why, skipped and why, the conditions' actual values)
// and the fired rules' pending actions are stored in one transaction per event. An event decided
// before (a repeated signal, a retried activity) is not decided again; its unfinished actions are
// returned so that the caller can resume them. Rule edits take effect here, for the next batch.
func (a *Rules) Evaluate(ctx context.Context, in EvaluateInput) (EvaluateResult, error) {
	var out EvaluateResult
	ids := make([]string, 0, len(in.Events))
	seen := map[string]bool{}
	for _, e := range in.Events {
		if !seen[e.ID] {
			seen[e.ID] = true
			ids = append(ids, e.ID)
		}
	}
	stored, err := a.Store.GetEvents(ctx, ids)
	if err != nil {
		return out, fmt.Errorf("evaluate: %w", err)
	}
	done, err := a.Store.EventEvaluations(ctx, ids)
	if err != nil {
		return out, fmt.Errorf("evaluate: %w", err)
	}
	active, err := a.activeRules(ctx)
	if err != nil {
		return out, err
	}
	// Each event's work continues the trace of the request that posted it (linking this
	// evaluator's own span); its actions continue the evaluation's.
	traceOf := make(map[string]string, len(in.Events))
	for _, e := range in.Events {
		if e.TraceParent != "" {
			traceOf[e.ID] = e.TraceParent
		}
	}
	var undecided []store.Event
	for _, id := range ids {
		if _, ok := stored[id]; !ok {
			a.log().WarnContext(ctx, "event signalled for evaluation is not stored (purged?)", "event_id", id)
			continue
		}
		if _, decided := done[id]; !decided {
			undecided = append(undecided, stored[id])
		}
	}
	// The rules' evaluation of the events comes first, while time is left (at least one event);
	// the rest is deferred.
	evaluated := make(map[string][]ruleEval, len(undecided))
	var soft, hard time.Time
	if d, ok := ctx.Deadline(); ok {
		soft, hard = time.Now().Add(time.Until(d)/2), time.Now().Add(time.Until(d)*3/4)
	}
	for i, e := range undecided {
		if i > 0 && !soft.IsZero() && time.Now().After(soft) {
			for _, left := range undecided[i:] {
				out.Deferred = append(out.Deferred, rules.EventRef{ID: left.ID, Type: left.Type, TraceParent: traceOf[left.ID]})
				delete(stored, left.ID)
			}
			undecided = undecided[:i]
			a.log().WarnContext(ctx, "evaluating the rules took half the activity's time; deferring the rest of the batch",
				"decided", i, "deferred", len(out.Deferred))
			break
		}
		ectx, span := tracing.StartFor(ctx, traceOf[e.ID], "rules.evaluate", trace.WithAttributes(
			attribute.String("event.id", e.ID), attribute.String("event.type", e.Type)))
		ev, err := a.evaluate(ectx, e, active, hard)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			span.End()
			return out, err
		}
		matched := 0
		for _, re := range ev {
			if re.ev.Matched {
				matched++
			}
		}
		span.SetAttributes(attribute.Int("rules.evaluated", len(ev)), attribute.Int("rules.matched", matched))
		span.End()
		if tp := tracing.TraceParent(ectx); tp != "" {
			traceOf[e.ID] = tp
		}
		evaluated[e.ID] = ev
	}
	// All the batch's decisions in one transaction; if another evaluator decided one of the
	// events meanwhile, event by event.
	runs, err := a.decideAll(ctx, undecided, evaluated)
	if errors.Is(err, store.ErrConflict) {
		runs, err = map[string]EventRun{}, nil
		for _, e := range undecided {
			one, derr := a.decideAll(ctx, []store.Event{e}, evaluated)
			if errors.Is(derr, store.ErrConflict) {
				continue // decided by another evaluator: resumed below
			}
			if derr != nil {
				return out, fmt.Errorf("evaluate event %s: %w", e.ID, derr)
			}
			runs[e.ID] = one[e.ID]
		}
	}
	if err != nil {
		return out, fmt.Errorf("evaluate: %w", err)
	}
	for _, id := range ids {
		if _, ok := stored[id]; !ok {
			continue
		}
		run, decidedNow := runs[id]
		if !decidedNow {
			if run, err = a.resume(ctx, id); err != nil {
				return out, fmt.Errorf("resume event %s: %w", id, err)
			}
		}
		if len(run.Executions) > 0 {
			for i := range run.Executions {
				run.Executions[i].TraceParent = traceOf[id]
			}
			out.Runs = append(out.Runs, run)
		}
	}
	return out, nil
}

// decideAll records the decisions of the evaluated events in one transaction, and returns
// their runs by event id. (The user-written part — conditions, dedup keys — was evaluated
// before: an evaluation may take its whole budget, and must not hold the database's write lock
// so long.)
func (a *Rules) decideAll(ctx context.Context, evs []store.Event, evaluated map[string][]ruleEval) (map[string]EventRun, error) {
	runs := make(map[string]EventRun, len(evs))
	if len(evs) == 0 {
		return runs, nil
	}
	now := a.now()
	var decisions []string
	err := a.Store.Tx(ctx, func(tx *store.Store) error {
		clear(runs)
		decisions = decisions[:0]
		for _, e := range evs {
			run, statuses, err := a.decide(ctx, tx, e, evaluated[e.ID], now)
			if err != nil {
				return err
			}
			runs[e.ID] = run
			decisions = append(decisions, statuses...)
		}
		return nil
	})
	if err == nil && a.Metrics != nil {
		for _, e := range evs {
			status := store.EvaluationEvaluated
			if e.Depth > a.maxDepth() {
				status = store.EvaluationSkipped
			}
			a.Metrics.event(status, e.ReceivedAt, now)
		}
		for _, s := range decisions {
			a.Metrics.decision(s)
		}
	}
	return runs, err
}

func (a *Rules) maxDepth() int {
	if a.MaxDepth <= 0 {
		return DefaultMaxDepth
	}
	return a.MaxDepth
}

// activeRules returns the compiled current versions of the enabled rules, highest priority first.
func (a *Rules) activeRules(ctx context.Context) ([]*rules.Compiled, error) {
	refs, err := a.Store.ActiveRules(ctx)
	if err != nil {
		return nil, fmt.Errorf("active rules: %w", err)
	}
	out := make([]*rules.Compiled, 0, len(refs))
	for _, ref := range refs {
		r, err := a.Cache.Get(ctx, ref.ID, ref.Version)
		if err != nil {
			if rules.IsPermanent(err) {
				a.log().ErrorContext(ctx, "rule version does not compile; it is left out", "rule_id", ref.ID,
					"version", ref.Version, "error", err)
				continue
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// ruleEval is what a rule's conditions and dedup key made of an event.
type ruleEval struct {
	rule   *rules.Compiled
	ev     rules.Evaluation
	key    string
	keyErr error
	// late: the rule was not evaluated, the event's other rules having taken the time.
	late bool
}

// skipReason, when an event is not evaluated at all, says why.
func (a *Rules) skipReason(e store.Event) string {
	if maxDepth := a.maxDepth(); e.Depth > maxDepth {
		return fmt.Sprintf("causation depth %d exceeds the limit of %d (loop prevention): not evaluated", e.Depth, maxDepth)
	}
	if _, err := rules.NewScope(e); err != nil {
		return err.Error()
	}
	return ""
}

// evaluate runs the conditions (and, where they hold, the dedup key) of the active rules whose
// trigger matches e. Budget errors are the rules' outcome; another error (no evaluation helper
// could start) means the event must be decided again later. The rules left when stop passes
// are not evaluated (each evaluation may take its whole budget; the event's decision must fit
// the activity's time).
func (a *Rules) evaluate(ctx context.Context, e store.Event, active []*rules.Compiled, stop time.Time) ([]ruleEval, error) {
	if a.skipReason(e) != "" {
		return nil, nil
	}
	scope, _ := rules.NewScope(e)
	var out []ruleEval
	for _, r := range active {
		if !rules.MatchesTrigger(r.Def.Trigger, r.ID, e) {
			continue
		}
		if !stop.IsZero() && time.Now().After(stop) {
			out = append(out, ruleEval{rule: r, late: true})
			continue
		}
		re := ruleEval{rule: r, ev: r.Evaluate(ctx, a.Expressions, scope)}
		if re.ev.Err != nil && !sandbox.IsBudgetError(re.ev.Err) {
			return nil, re.ev.Err
		}
		if re.ev.Matched {
			re.key, re.keyErr = r.RenderDedupKey(ctx, a.Templates, scope)
			if re.keyErr != nil && !rules.IsPermanent(re.keyErr) {
				return nil, re.keyErr
			}
		}
		out = append(out, re)
	}
	return out, nil
}

// decide records in tx the decision of every rule evaluated for e.
// It returns the status of each rule's decision too.
func (a *Rules) decide(ctx context.Context, tx *store.Store, e store.Event, evaluated []ruleEval, now time.Time) (EventRun, []string, error) {
	run := EventRun{EventID: e.ID}
	if reason := a.skipReason(e); reason != "" {
		return run, nil, tx.RecordEvaluation(ctx, store.EventEvaluation{EventID: e.ID, EventType: e.Type,
			Status: store.EvaluationSkipped, Reason: reason, EvaluatedAt: now}, nil, nil)
	}
	var execs []store.RuleExecution
	var outcomes []store.ActionOutcome
	var stoppedBy *rules.Compiled
	for _, re := range evaluated {
		r, ev := re.rule, re.ev
		x := store.RuleExecution{
			ID: store.NewID(), EventID: e.ID, EventType: e.Type, RuleID: r.ID, RuleVersion: r.Version,
			Conditions: store.MustJSON(ev.Conditions), EvaluatedAt: now,
		}
		switch {
		case re.late:
			x.Status = store.RuleExecutionError
			x.Reason = "not evaluated: the other rules of this event took the evaluation's time (each evaluation may take EVAL_TIMEOUT)"
		case !ev.Matched:
			x.Status, x.Reason = store.RuleExecutionNotMatched, ev.Reason
			if hasError(ev.Conditions) {
				x.Status = store.RuleExecutionError
			}
		case stoppedBy != nil:
			x.Status = store.RuleExecutionSkipped
			x.Reason = fmt.Sprintf("stop_processing: rule %q (priority %d) matched first", stoppedBy.Def.Name, stoppedBy.Def.Priority)
		default:
			if r.Def.StopProcessing {
				stoppedBy = r
			}
			if re.keyErr != nil {
				x.Status, x.Reason = store.RuleExecutionError, re.keyErr.Error()
				break
			}
			x.DedupKey = re.key
			reason, err := a.overLimit(ctx, tx, r, re.key, now)
			if err != nil {
				return EventRun{}, nil, err
			}
			if reason != "" {
				x.Status, x.Reason = store.RuleExecutionSkipped, reason
				break
			}
			x.Status, x.Fired, x.ActionCount = store.RuleExecutionRunning, true, len(r.Def.Actions)
			x.Reason = "conditions matched"
			er := ExecutionRun{ExecutionID: x.ID, RuleID: r.ID}
			for i, act := range r.Def.Actions {
				outcomes = append(outcomes, store.ActionOutcome{
					ExecutionID: x.ID, ActionIndex: i, Type: act.Type, Status: store.OutcomePending,
					IdempotencyKey: rules.IdempotencyKey(e.ID, r.ID, i),
				})
				er.Actions = append(er.Actions, ActionRef{Index: i, ContinueOnError: act.ContinueOnError})
			}
			run.Executions = append(run.Executions, er)
		}
		execs = append(execs, x)
	}
	err := tx.RecordEvaluation(ctx, store.EventEvaluation{
		EventID: e.ID, EventType: e.Type, Status: store.EvaluationEvaluated,
		Reason:       fmt.Sprintf("%d rule(s) considered, %d fired", len(evaluated), len(run.Executions)),
		RulesMatched: len(run.Executions), EvaluatedAt: now,
	}, execs, outcomes)
	statuses := make([]string, len(execs))
	for i, x := range execs {
		statuses[i] = x.Status
	}
	return run, statuses, err
}

func hasError(results []rules.ConditionResult) bool {
	for _, r := range results {
		if r.Error != "" || hasError(r.Children) {
			return true
		}
	}
	return false
}

// overLimit checks the rule's dedup_key, cooldown and rate limit (rules.Compiled.OverLimit)
// after locking the rule's runs until tx ends, so that two evaluators cannot both take the last
// slot.
func (a *Rules) overLimit(ctx context.Context, tx *store.Store, r *rules.Compiled, dedupKey string, now time.Time) (string, error) {
	if !r.HasLimits(dedupKey) {
		return "", nil
	}
	if err := tx.LockRuleRuns(ctx, r.ID); err != nil {
		return "", err
	}
	return r.OverLimit(ctx, tx, dedupKey, now)
}

// resume returns the unfinished actions of an event decided before. An execution whose run had
// stopped at a failed action (the worker died before recording the end) is ended instead.
func (a *Rules) resume(ctx context.Context, eventID string) (EventRun, error) {
	run := EventRun{EventID: eventID}
	execs, err := a.Store.ExecutionsForEvent(ctx, eventID)
	if err != nil {
		return run, err
	}
	var open []string
	for _, x := range execs {
		if x.Status == store.RuleExecutionRunning {
			open = append(open, x.ID)
		}
	}
	if len(open) == 0 {
		return run, nil
	}
	outcomes, err := a.Store.Outcomes(ctx, open)
	if err != nil {
		return run, err
	}
	for _, x := range execs {
		if x.Status != store.RuleExecutionRunning {
			continue
		}
		r, err := a.Cache.Get(ctx, x.RuleID, x.RuleVersion)
		if err != nil {
			return run, err
		}
		er := ExecutionRun{ExecutionID: x.ID, RuleID: x.RuleID}
		stopped := false
		for _, o := range outcomes[x.ID] {
			coe := o.ActionIndex < len(r.Def.Actions) && r.Def.Actions[o.ActionIndex].ContinueOnError
			switch o.Status {
			case store.OutcomeFailed:
				stopped = stopped || !coe
			case store.OutcomeSucceeded, store.OutcomeSkipped:
			default:
				er.Actions = append(er.Actions, ActionRef{Index: o.ActionIndex, ContinueOnError: coe})
			}
			if stopped {
				break
			}
		}
		if stopped || len(er.Actions) == 0 {
			if err := a.Store.AbandonExecution(ctx, x.ID, nil, "", a.now()); err != nil {
				return run, err
			}
			continue
		}
		run.Executions = append(run.Executions, er)
	}
	return run, nil
}
