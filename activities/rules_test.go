package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
)

func forEachDialect(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	open := func(t *testing.T, o store.Options) *store.Store {
		st, err := store.Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		return st
	}
	t.Run("sqlite", func(t *testing.T) { fn(t, open(t, store.Options{SQLitePath: filepath.Join(t.TempDir(), "a.db")})) })
	t.Run("postgres", func(t *testing.T) { fn(t, open(t, store.Options{URL: testenv.PostgresURL(t)})) })
}

// recordingTargets stand in for the workflow, notification and webhook modules (not part of
// this package) and record what they were asked, by idempotency key.
type recordingTargets struct {
	// The workflow steps' sends are not called by rule actions.
	ports.Notifier
	ports.WebhookSender

	mu    sync.Mutex
	calls map[string]int
	fail  error
}

func (r *recordingTargets) record(key string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return "", r.fail
	}
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[key]++
	return "id-" + key, nil
}

func (r *recordingTargets) Execute(_ context.Context, req ports.WorkflowRequest) (string, error) {
	return r.record(req.IdempotencyKey)
}
func (r *recordingTargets) SendEmail(_ context.Context, req ports.EmailRequest) (string, error) {
	return r.record(req.IdempotencyKey)
}
func (r *recordingTargets) SendSMS(_ context.Context, req ports.SMSRequest) (string, error) {
	return r.record(req.IdempotencyKey)
}
func (r *recordingTargets) Deliver(_ context.Context, _ string, _ json.RawMessage, key string) (string, error) {
	return r.record(key)
}

type fixture struct {
	st      *store.Store
	bus     *events.Bus
	a       *activities.Rules
	targets *recordingTargets
	now     time.Time
}

func newFixture(t *testing.T, st *store.Store) *fixture {
	eng := templating.New(templating.Options{})
	f := &fixture{st: st, bus: events.NewBus(st, slog.Default()), targets: &recordingTargets{},
		now: time.Now().UTC().Truncate(time.Second)}
	f.a = &activities.Rules{
		Store: st, Bus: f.bus, Templates: eng, Cache: rules.NewCache(st, eng, 0),
		Targets:  rules.Targets{Workflows: f.targets, Notifications: f.targets, Webhooks: f.targets},
		MaxDepth: 5, Retention: 48 * time.Hour, Now: func() time.Time { return f.now },
	}
	return f
}

func (f *fixture) rule(t *testing.T, body string) string {
	t.Helper()
	var def rules.Definition
	if err := json.Unmarshal([]byte(body), &def); err != nil {
		t.Fatal(err)
	}
	if _, problems := rules.Compile("", 0, def, rules.CompileOptions{Templates: f.a.Templates}); len(problems) > 0 {
		t.Fatal(problems)
	}
	r := store.Rule{ID: store.NewID(), Name: def.Name, TriggerType: def.Trigger.Type, EventType: def.Trigger.EventType,
		Priority: def.Priority, Enabled: true, Definition: store.MustJSON(def), CreatedAt: f.now, UpdatedAt: f.now}
	if err := f.st.CreateRule(context.Background(), &r); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

func (f *fixture) publish(t *testing.T, e store.Event) store.Event {
	t.Helper()
	stored, _, err := f.bus.Publish(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

func (f *fixture) evaluate(t *testing.T, evs ...store.Event) activities.EvaluateResult {
	t.Helper()
	var in activities.EvaluateInput
	for _, e := range evs {
		in.Events = append(in.Events, rules.EventRef{ID: e.ID, Type: e.Type})
	}
	res, err := f.a.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// runAll runs every action of the result, in order, as the workflow does.
func (f *fixture) runAll(t *testing.T, res activities.EvaluateResult) {
	t.Helper()
	for _, run := range res.Runs {
		for _, x := range run.Executions {
			for _, act := range x.Actions {
				if _, err := f.a.RunAction(context.Background(), activities.ActionInput{ExecutionID: x.ExecutionID, Index: act.Index}); err != nil {
					t.Fatalf("action %d of %s: %v", act.Index, x.ExecutionID, err)
				}
			}
		}
	}
}

func executions(t *testing.T, st *store.Store, eventID string) map[string]store.RuleExecution {
	t.Helper()
	list, err := st.ExecutionsForEvent(context.Background(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.RuleExecution{}
	for _, x := range list {
		out[x.RuleID] = x
	}
	return out
}

func TestEvaluatePriorityStopProcessingAndReasons(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		low := f.rule(t, `{"name": "low", "priority": 1, "trigger": {"type": "event", "event_type": "order.*"},
			"actions": [{"type": "webhook", "event_type": "order.low"}]}`)
		high := f.rule(t, `{"name": "high", "priority": 10, "trigger": {"type": "event", "event_type": "order.placed"},
			"conditions": [{"type": "field_check", "field": "total", "operator": "gt", "value": 100}],
			"actions": [{"type": "workflow", "workflow_id": "wf"}, {"type": "emit_event", "event_type": "order.big"}]}`)
		stopper := f.rule(t, `{"name": "stopper", "priority": 5, "stop_processing": true, "trigger": {"type": "event", "event_type": "order.placed"},
			"conditions": [{"type": "field_check", "field": "vip", "operator": "equals", "value": true}],
			"actions": [{"type": "webhook", "event_type": "order.vip"}]}`)
		other := f.rule(t, `{"name": "other", "trigger": {"type": "event", "event_type": "user.created"},
			"actions": [{"type": "webhook", "event_type": "x"}]}`)

		big := f.publish(t, store.Event{Type: "order.placed", Data: store.JSON(`{"total": 500, "vip": false}`)})
		res := f.evaluate(t, big)
		if len(res.Runs) != 1 || len(res.Runs[0].Executions) != 2 || res.Runs[0].Executions[0].RuleID != high ||
			res.Runs[0].Executions[1].RuleID != low || len(res.Runs[0].Executions[0].Actions) != 2 {
			t.Fatalf("big order plan: %+v", res)
		}
		x := executions(t, st, big.ID)
		if len(x) != 3 || x[stopper].Status != store.RuleExecutionNotMatched ||
			!strings.Contains(x[stopper].Reason, "conditions[0]: vip equals true, actual false") {
			t.Errorf("big order executions: %+v", x)
		}
		if _, considered := x[other]; considered {
			t.Error("a rule whose trigger does not match has an execution")
		}
		f.runAll(t, res)
		x = executions(t, st, big.ID)
		if x[high].Status != store.RuleExecutionSucceeded || x[low].Status != store.RuleExecutionSucceeded {
			t.Errorf("after running: %+v", x)
		}
		// The emitted event continues the chain.
		emitted, err := st.GetEvent(context.Background(), activities.EmittedEventID(rules.IdempotencyKey(big.ID, high, 1)))
		if err != nil || emitted.Type != "order.big" || emitted.CausationID != big.ID || emitted.Depth != 1 ||
			emitted.CorrelationID != big.ID {
			t.Errorf("emitted %+v %v", emitted, err)
		}

		vip := f.publish(t, store.Event{Type: "order.placed", Data: store.JSON(`{"total": 5, "vip": true}`)})
		res = f.evaluate(t, vip)
		x = executions(t, st, vip.ID)
		if len(res.Runs) != 1 || len(res.Runs[0].Executions) != 1 || res.Runs[0].Executions[0].RuleID != stopper ||
			x[low].Status != store.RuleExecutionSkipped || !strings.Contains(x[low].Reason, `stop_processing: rule "stopper"`) ||
			x[high].Status != store.RuleExecutionNotMatched {
			t.Errorf("vip order: %+v %+v", res, x)
		}
		ev, err := st.GetEventEvaluation(context.Background(), vip.ID)
		if err != nil || ev.Status != store.EvaluationEvaluated || ev.RulesMatched != 1 {
			t.Errorf("evaluation record %+v %v", ev, err)
		}
	})
}

func TestEvaluateIsExactlyOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		r := f.rule(t, `{"name": "r", "trigger": {"type": "event", "event_type": "tick"},
			"actions": [{"type": "webhook", "event_type": "a"}, {"type": "webhook", "event_type": "b"}]}`)
		var evs []store.Event
		for i := range 20 {
			evs = append(evs, f.publish(t, store.Event{Type: "tick", Data: store.JSON(fmt.Sprintf(`{"i": %d}`, i))}))
		}
		// Four evaluators race on the same batch (a repeated signal, a retried activity).
		var wg sync.WaitGroup
		results := make([]activities.EvaluateResult, 4)
		errs := make([]error, 4)
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				in := activities.EvaluateInput{}
				for _, e := range evs {
					in.Events = append(in.Events, rules.EventRef{ID: e.ID, Type: e.Type})
				}
				results[i], errs[i] = f.a.Evaluate(context.Background(), in)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range evs {
			list, err := st.ExecutionsForEvent(context.Background(), e.ID)
			if err != nil || len(list) != 1 || list[0].RuleID != r {
				t.Fatalf("event %s has %d executions (%v)", e.ID, len(list), err)
			}
		}
		// Each racer either decided or resumed: all point at the same executions.
		f.runAll(t, results[0])
		f.runAll(t, results[1]) // a duplicate run acts no more
		for key, n := range f.targets.calls {
			if n != 1 {
				t.Errorf("%s called %d times", key, n)
			}
		}
		if len(f.targets.calls) != 40 {
			t.Errorf("%d distinct actions ran, want 40", len(f.targets.calls))
		}
		// Once every action is done, evaluating again has nothing left to run.
		if res := f.evaluate(t, evs...); len(res.Runs) != 0 {
			t.Errorf("finished events resumed: %+v", res.Runs)
		}
	})
}

func TestResumeAfterPartialRun(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		f := newFixture(t, st)
		f.rule(t, `{"name": "r", "trigger": {"type": "event", "event_type": "tick"},
			"actions": [{"type": "webhook", "event_type": "a"}, {"type": "webhook", "event_type": "b", "continue_on_error": true}]}`)
		e := f.publish(t, store.Event{Type: "tick"})
		res := f.evaluate(t, e)
		x := res.Runs[0].Executions[0]
		if _, err := f.a.RunAction(context.Background(), activities.ActionInput{ExecutionID: x.ExecutionID, Index: 0}); err != nil {
			t.Fatal(err)
		}
		// The worker died here: the event is signalled again.
		again := f.evaluate(t, e)
		if len(again.Runs) != 1 || len(again.Runs[0].Executions[0].Actions) != 1 ||
			again.Runs[0].Executions[0].Actions[0] != (activities.ActionRef{Index: 1, ContinueOnError: true}) {
			t.Fatalf("resume: %+v", again)
		}
	})
}

func TestResumeEndsARunStoppedByAFailure(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		f.rule(t, `{"name": "r", "trigger": {"type": "event", "event_type": "tick"},
			"actions": [{"type": "webhook", "event_type": "{{ missing }}"}, {"type": "webhook", "event_type": "b"}]}`)
		e := f.publish(t, store.Event{Type: "tick"})
		x := f.evaluate(t, e).Runs[0].Executions[0]
		if _, err := f.a.RunAction(ctx, activities.ActionInput{ExecutionID: x.ExecutionID, Index: 0}); err == nil {
			t.Fatal("a template error succeeded")
		}
		// The worker died before recording the end of the run; the event comes again.
		if res := f.evaluate(t, e); len(res.Runs) != 0 {
			t.Fatalf("the actions after a failed one were resumed: %+v", res)
		}
		got, _ := st.GetRuleExecution(ctx, x.ExecutionID)
		o, _ := st.GetOutcome(ctx, x.ExecutionID, 1)
		if got.Status != store.RuleExecutionFailed || o.Status != store.OutcomeSkipped || len(f.targets.calls) != 0 {
			t.Errorf("execution %+v, second action %+v, calls %v", got, o, f.targets.calls)
		}
	})
}

func TestActionFailures(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		f.rule(t, `{"name": "r", "trigger": {"type": "event", "event_type": "tick"}, "actions": [
			{"type": "notification", "to": "{{ user.email }}", "subject": "s", "body": "b"},
			{"type": "webhook", "event_type": "later"}]}`)
		e := f.publish(t, store.Event{Type: "tick", Data: store.JSON(`{"user": {}}`)})
		x := f.evaluate(t, e).Runs[0].Executions[0]
		// A template error is final.
		_, err := f.a.RunAction(ctx, activities.ActionInput{ExecutionID: x.ExecutionID, Index: 0})
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || !appErr.NonRetryable() || !strings.Contains(err.Error(), "actions[0].to") {
			t.Fatalf("template error: %v", err)
		}
		if err := f.a.FinishExecution(ctx, activities.FinishInput{ExecutionID: x.ExecutionID, Failed: []int{0}, Error: "x"}); err != nil {
			t.Fatal(err)
		}
		got, _ := st.GetRuleExecution(ctx, x.ExecutionID)
		outcomes, _ := st.Outcomes(ctx, []string{x.ExecutionID})
		o := outcomes[x.ExecutionID]
		if got.Status != store.RuleExecutionFailed || got.FinishedAt == nil || o[0].Status != store.OutcomeFailed ||
			!strings.Contains(o[0].Error, "user") || o[1].Status != store.OutcomeSkipped {
			t.Errorf("failed execution %+v %+v", got, o)
		}

		// A module that is down is retried; the attempt is recorded.
		e2 := f.publish(t, store.Event{Type: "tick", Data: store.JSON(`{"user": {"email": "a@example.com"}}`)})
		x2 := f.evaluate(t, e2).Runs[0].Executions[0]
		f.targets.fail = errors.New("connection refused")
		_, err = f.a.RunAction(ctx, activities.ActionInput{ExecutionID: x2.ExecutionID, Index: 0})
		if err == nil || errors.As(err, &appErr) {
			t.Fatalf("transient failure: %v", err)
		}
		o2, _ := st.GetOutcome(ctx, x2.ExecutionID, 0)
		if o2.Status != store.OutcomeRetrying || o2.Attempts != 1 || !strings.Contains(o2.Error, "connection refused") {
			t.Errorf("retrying outcome %+v", o2)
		}
		f.targets.fail = nil
		f.runAll(t, activities.EvaluateResult{Runs: []activities.EventRun{{Executions: []activities.ExecutionRun{x2}}}})
		o2, _ = st.GetOutcome(ctx, x2.ExecutionID, 0)
		got, _ = st.GetRuleExecution(ctx, x2.ExecutionID)
		if o2.Status != store.OutcomeSucceeded || o2.Attempts != 2 || o2.Error != "" || got.Status != store.RuleExecutionSucceeded {
			t.Errorf("after retry %+v %+v", o2, got)
		}
		var result map[string]string
		if json.Unmarshal(o2.Result, &result) != nil || result["notification_id"] != "id-"+o2.IdempotencyKey {
			t.Errorf("result %s", o2.Result)
		}

		// An action type whose module is missing fails at once.
		f.a.Targets.Webhooks = nil
		e3 := f.publish(t, store.Event{Type: "tick", Data: store.JSON(`{"user": {"email": "a@example.com"}}`)})
		x3 := f.evaluate(t, e3).Runs[0].Executions[0]
		_, err = f.a.RunAction(ctx, activities.ActionInput{ExecutionID: x3.ExecutionID, Index: 1})
		if !errors.As(err, &appErr) || !appErr.NonRetryable() || !strings.Contains(err.Error(), "not available") {
			t.Errorf("missing module: %v", err)
		}
	})
}

func TestLoopDepthAndLimits(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		cool := f.rule(t, `{"name": "cool", "cooldown": "10m", "trigger": {"type": "event", "event_type": "c"},
			"actions": [{"type": "webhook", "event_type": "x"}]}`)
		rated := f.rule(t, `{"name": "rated", "rate_limit": {"max_runs": 2, "window": "1h"}, "trigger": {"type": "event", "event_type": "r"},
			"actions": [{"type": "webhook", "event_type": "x"}]}`)
		dedup := f.rule(t, `{"name": "dedup", "dedup_key": "{{ user.id }}", "trigger": {"type": "event", "event_type": "d"},
			"actions": [{"type": "webhook", "event_type": "x"}]}`)
		status := func(e store.Event, rule string) store.RuleExecution {
			f.evaluate(t, e)
			return executions(t, st, e.ID)[rule]
		}
		if x := status(f.publish(t, store.Event{Type: "c"}), cool); x.Status != store.RuleExecutionRunning {
			t.Errorf("first cooldown run: %+v", x)
		}
		f.now = f.now.Add(5 * time.Minute)
		if x := status(f.publish(t, store.Event{Type: "c"}), cool); x.Status != store.RuleExecutionSkipped || !strings.HasPrefix(x.Reason, "cooldown:") {
			t.Errorf("within cooldown: %+v", x)
		}
		f.now = f.now.Add(6 * time.Minute)
		if x := status(f.publish(t, store.Event{Type: "c"}), cool); x.Status != store.RuleExecutionRunning {
			t.Errorf("after cooldown: %+v", x)
		}
		for i, want := range []string{store.RuleExecutionRunning, store.RuleExecutionRunning, store.RuleExecutionSkipped} {
			x := status(f.publish(t, store.Event{Type: "r"}), rated)
			if x.Status != want || (want == store.RuleExecutionSkipped && !strings.Contains(x.Reason, "rate limit: 2 run(s)")) {
				t.Errorf("rate limited run %d: %+v", i, x)
			}
		}
		f.now = f.now.Add(61 * time.Minute)
		if x := status(f.publish(t, store.Event{Type: "r"}), rated); x.Status != store.RuleExecutionRunning {
			t.Errorf("after the window: %+v", x)
		}
		first := status(f.publish(t, store.Event{Type: "d", Data: store.JSON(`{"user": {"id": 7}}`)}), dedup)
		second := status(f.publish(t, store.Event{Type: "d", Data: store.JSON(`{"user": {"id": 7}}`)}), dedup)
		other := status(f.publish(t, store.Event{Type: "d", Data: store.JSON(`{"user": {"id": 8}}`)}), dedup)
		if first.Status != store.RuleExecutionRunning || first.DedupKey != "7" || second.Status != store.RuleExecutionSkipped ||
			!strings.Contains(second.Reason, first.ID) || other.Status != store.RuleExecutionRunning {
			t.Errorf("dedup: %+v / %+v / %+v", first, second, other)
		}

		deep := f.publish(t, store.Event{Type: "c", Depth: 6, CausationID: "p"})
		if res := f.evaluate(t, deep); len(res.Runs) != 0 {
			t.Errorf("a too deep event ran: %+v", res)
		}
		ev, err := st.GetEventEvaluation(ctx, deep.ID)
		if err != nil || ev.Status != store.EvaluationSkipped || !strings.Contains(ev.Reason, "causation depth 6 exceeds the limit of 5") {
			t.Errorf("deep event: %+v %v", ev, err)
		}
		if len(executions(t, st, deep.ID)) != 0 {
			t.Error("a too deep event has executions")
		}
	})
}

func TestRuleEditsApplyToTheNextEvent(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		id := f.rule(t, `{"name": "r", "trigger": {"type": "event", "event_type": "e"},
			"conditions": [{"type": "field_check", "field": "n", "operator": "gt", "value": 10}],
			"actions": [{"type": "webhook", "event_type": "x"}]}`)
		e1 := f.publish(t, store.Event{Type: "e", Data: store.JSON(`{"n": 5}`)})
		f.evaluate(t, e1)
		_, err := st.UpdateRule(ctx, id, func(r *store.Rule) (bool, error) {
			var def rules.Definition
			_ = json.Unmarshal(r.Definition, &def)
			def.Conditions[0].Value = json.RawMessage(`1`)
			r.Definition = store.MustJSON(def)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		e2 := f.publish(t, store.Event{Type: "e", Data: store.JSON(`{"n": 5}`)})
		f.evaluate(t, e2)
		x1, x2 := executions(t, st, e1.ID)[id], executions(t, st, e2.ID)[id]
		if x1.Status != store.RuleExecutionNotMatched || x1.RuleVersion != 1 || x2.Status != store.RuleExecutionRunning || x2.RuleVersion != 2 {
			t.Errorf("before %+v after %+v", x1, x2)
		}
		// Disabled: not considered.
		if _, err := st.UpdateRule(ctx, id, func(r *store.Rule) (bool, error) { r.Enabled = false; return false, nil }); err != nil {
			t.Fatal(err)
		}
		e3 := f.publish(t, store.Event{Type: "e", Data: store.JSON(`{"n": 50}`)})
		f.evaluate(t, e3)
		if len(executions(t, st, e3.ID)) != 0 {
			t.Error("a disabled rule was evaluated")
		}
	})
}

func TestScheduleFireAndPurge(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		f := newFixture(t, st)
		id := f.rule(t, `{"name": "daily", "trigger": {"type": "schedule", "cron": "@daily"}, "actions": [{"type": "webhook", "event_type": "x"}]}`)
		at := f.now
		in := activities.FireInput{RuleID: id, FiringID: "automation-rule-fire-" + id + "-2026-03-01T12:00:00Z", ScheduledAt: at}
		eid, err := f.a.FireSchedule(ctx, in)
		if err != nil || eid == "" {
			t.Fatalf("fire: %q %v", eid, err)
		}
		if again, _ := f.a.FireSchedule(ctx, in); again != eid {
			t.Error("a retried firing published another event")
		}
		e, _ := st.GetEvent(ctx, eid)
		res := f.evaluate(t, e)
		if len(res.Runs) != 1 || res.Runs[0].Executions[0].RuleID != id {
			t.Errorf("the schedule event did not run its rule: %+v", res)
		}
		if gone, _ := f.a.FireSchedule(ctx, activities.FireInput{RuleID: "nope", FiringID: "x"}); gone != "" {
			t.Error("a deleted rule's schedule published")
		}

		// Retention: only events older than the retention go, with their records.
		f.now = at.Add(49 * time.Hour)
		fresh := store.Event{ID: store.NewID(), Type: "c", Data: store.JSON(`{}`), OccurredAt: f.now, ReceivedAt: f.now, DispatchedAt: &f.now}
		if _, err := st.InsertEvent(ctx, &fresh); err != nil {
			t.Fatal(err)
		}
		n, err := f.a.PurgeExpired(ctx)
		if err != nil || n != 1 {
			t.Fatalf("purged %d: %v", n, err)
		}
		if _, err := st.GetEvent(ctx, eid); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("old event kept: %v", err)
		}
		if x, _ := st.ExecutionsForEvent(ctx, eid); len(x) != 0 {
			t.Error("old executions kept")
		}
		if _, err := st.GetEvent(ctx, fresh.ID); err != nil {
			t.Errorf("fresh event purged: %v", err)
		}
	})
}

// Rules whose conditions take their whole evaluation budget cannot stall the evaluator: the
// events whose rules would take the decision activity past half its time are deferred to the
// next call, and the rules of one event past three quarters of it are recorded as not
// evaluated; every call decides at least one event.
func TestSlowRulesDeferTheRestOfTheBatch(t *testing.T) {
	st, err := store.Open(context.Background(), store.Options{SQLitePath: filepath.Join(t.TempDir(), "a.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, st)
	limits := sandbox.Limits{Timeout: 100 * time.Millisecond, MaxSteps: 1 << 40} // time, not steps, ends each
	f.a.Expressions = rules.NewExpressions(limits, nil)
	for i := range 12 {
		f.rule(t, fmt.Sprintf(`{"name": "slow %d", "trigger": {"type": "event", "event_type": "slow.*"},
			"conditions": [{"type": "expression", "expression": "all(items, all(items, all(items, # >= 0)))"}],
			"actions": [{"type": "webhook", "event_type": "x"}]}`, i))
	}
	items := make([]int, 1000)
	data := store.MustJSON(map[string]any{"items": items})
	var in activities.EvaluateInput
	for range 4 {
		e := f.publish(t, store.Event{Type: "slow.one", Data: data})
		in.Events = append(in.Events, rules.EventRef{ID: e.ID, Type: e.Type})
	}
	// One event's 12 rules take 1.2 s at 100 ms each: more than the 1.2 s activity's three
	// quarters.
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	res, err := f.a.Evaluate(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deferred) == 0 || len(res.Deferred) == len(in.Events) {
		t.Fatalf("deferred %d of %d events", len(res.Deferred), len(in.Events))
	}
	first := in.Events[0].ID
	var late, errored int
	for _, x := range executionsOf(t, st, first) {
		if x.Status == store.RuleExecutionError {
			errored++
			if strings.Contains(x.Reason, "not evaluated") {
				late++
			}
		}
	}
	if errored != 12 || late == 0 {
		t.Errorf("first event: %d rules in error, %d of them not evaluated in time", errored, late)
	}
	// The deferred events are decided by the next calls.
	for len(res.Deferred) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
		res, err = f.a.Evaluate(ctx, activities.EvaluateInput{Events: res.Deferred})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range in.Events {
		if n := len(executionsOf(t, st, e.ID)); n != 12 {
			t.Errorf("event %s: %d rule executions, want 12", e.ID, n)
		}
	}
}

func executionsOf(t *testing.T, st *store.Store, eventID string) []store.RuleExecution {
	t.Helper()
	xs, err := st.ExecutionsForEvent(context.Background(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	return xs
}
