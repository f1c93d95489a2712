package rules_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/internal/teststack"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
)

// The rules service runs here on a real SQLite store and, where Schedules matter, the embedded
// Temporal server: what it writes is read back from both.

// startTemporal starts the embedded Temporal server once for the calling test.
func startTemporal(t *testing.T) client.Client {
	t.Helper()
	cfg, err := config.LoadFrom(map[string]string{"ENV": "test", "DATA_DIR": t.TempDir(),
		"TEMPORAL_PORT": fmt.Sprint(testenv.FreePort(t)), "TEMPORAL_UI_PORT": "0", "TEMPORAL_NAMESPACE": "automation"})
	if err != nil {
		t.Fatal(err)
	}
	return teststack.Temporal(t, cfg)
}

func newService(t *testing.T, st *store.Store, tc client.Client) *rules.Service {
	t.Helper()
	svc, err := rules.NewService(rules.ServiceOptions{
		Store: st, Temporal: tc, TaskQueue: "automation", Templates: templating.New(templating.Options{}),
		MaxDepth: 5, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// describe returns the Schedule of rule id, or nil when it does not exist.
func describe(t *testing.T, tc client.Client, id string) *client.ScheduleDescription {
	t.Helper()
	d, err := tc.ScheduleClient().GetHandle(context.Background(), id).Describe(context.Background())
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("describe schedule %s: %v", id, err)
	}
	return d
}

func problems(t *testing.T, err error) map[string]string {
	t.Helper()
	var p validation.Problems
	if !errors.As(err, &p) {
		t.Fatalf("want validation problems, got %v", err)
	}
	out := map[string]string{}
	for _, x := range p {
		out[x.Field] = x.Message
	}
	return out
}

const scheduleRule = `{"name": "nightly", "trigger": {"type": "schedule", "cron": "0 3 * * *", "timezone": "Europe/Paris"},
	"actions": [{"type": "emit_event", "event_type": "report.due"}]}`

// A schedule trigger's Schedule follows its rule through every write: created with it, paused
// while it is disabled, noted with its version, deleted when the trigger changes and when the
// rule is deleted. Versions grow only when the definition changes.
func TestServiceKeepsTheScheduleInLineWithTheRule(t *testing.T) {
	ctx := context.Background()
	st, tc := teststack.Store(t), startTemporal(t)
	svc := newService(t, st, tc)

	r, err := svc.CreateRule(ctx, json.RawMessage(scheduleRule))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 || !r.Enabled || r.ScheduleID != rules.ScheduleID(r.ID) {
		t.Fatalf("created: %+v", r)
	}
	d := describe(t, tc, r.ScheduleID)
	if d == nil || d.Schedule.State.Paused || !strings.Contains(d.Schedule.State.Note, "version 1") {
		t.Fatalf("schedule after create: %+v", d)
	}

	if r, err = svc.SetEnabled(ctx, r.ID, false); err != nil || r.Enabled {
		t.Fatalf("disable: %+v %v", r, err)
	}
	if d := describe(t, tc, r.ScheduleID); d == nil || !d.Schedule.State.Paused {
		t.Fatalf("a disabled rule's schedule is not paused: %+v", d)
	}

	// The same definition again (with enabled) is no new version; a changed one is.
	same := strings.Replace(scheduleRule, `{"name"`, `{"enabled": true, "name"`, 1)
	if r, err = svc.ReplaceRule(ctx, r.ID, json.RawMessage(same)); err != nil || r.Version != 1 || !r.Enabled {
		t.Fatalf("replace with the same definition: %+v %v", r, err)
	}
	changed := strings.Replace(scheduleRule, "0 3 * * *", "30 4 * * *", 1)
	if r, err = svc.ReplaceRule(ctx, r.ID, json.RawMessage(changed)); err != nil || r.Version != 2 {
		t.Fatalf("replace with a new cron: %+v %v", r, err)
	}
	if d := describe(t, tc, r.ScheduleID); d == nil || d.Schedule.State.Paused || !strings.Contains(d.Schedule.State.Note, "version 2") {
		t.Fatalf("schedule after replace: %+v", d)
	}
	versions, err := svc.Versions(ctx, r.ID)
	if err != nil || len(versions) != 2 || versions[0].Version != 2 || versions[0].Definition.Trigger.Cron != "30 4 * * *" ||
		versions[1].Definition.Trigger.Cron != "0 3 * * *" {
		t.Fatalf("versions: %+v %v", versions, err)
	}

	// An event trigger has no Schedule.
	event := `{"name": "nightly", "trigger": {"type": "event", "event_type": "tick"},
		"actions": [{"type": "emit_event", "event_type": "report.due"}]}`
	if r, err = svc.ReplaceRule(ctx, r.ID, json.RawMessage(event)); err != nil || r.ScheduleID != "" {
		t.Fatalf("replace with an event trigger: %+v %v", r, err)
	}
	if d := describe(t, tc, rules.ScheduleID(r.ID)); d != nil {
		t.Fatalf("the schedule outlived its trigger: %+v", d)
	}

	// Deleting a schedule-triggered rule deletes its Schedule; its history stays readable.
	r2, err := svc.CreateRule(ctx, json.RawMessage(scheduleRule))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteRule(ctx, r2.ID); err != nil {
		t.Fatal(err)
	}
	if d := describe(t, tc, r2.ScheduleID); d != nil {
		t.Fatalf("the schedule outlived its rule: %+v", d)
	}
	if _, err := svc.GetRule(ctx, r2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get a deleted rule: %v", err)
	}
	if err := svc.RuleExisted(ctx, r2.ID); err != nil {
		t.Fatalf("a deleted rule's history: %v", err)
	}
	if err := svc.DeleteRule(ctx, r2.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	list, _, err := svc.ListRules(ctx, store.RuleFilter{}, store.Page{Limit: 10})
	if err != nil || len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("list: %+v %v", list, err)
	}
}

// Reconcile puts in place what rules written while Temporal was away lack: the retention
// Schedule, and a Schedule for each schedule-triggered rule, paused when the rule is disabled.
func TestReconcileCreatesMissingSchedules(t *testing.T) {
	ctx := context.Background()
	st, tc := teststack.Store(t), startTemporal(t)
	svc := newService(t, st, tc)
	var def rules.Definition
	if err := json.Unmarshal([]byte(scheduleRule), &def); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, enabled := range []bool{true, false} {
		now := time.Now().UTC()
		r := store.Rule{ID: store.NewID(), Name: def.Name, TriggerType: rules.TriggerSchedule, Enabled: enabled,
			Definition: store.MustJSON(def), CreatedAt: now, UpdatedAt: now}
		if err := st.CreateRule(ctx, &r); err != nil { // stored without a Schedule
			t.Fatal(err)
		}
		ids[r.ID] = enabled
	}
	for id := range ids {
		if d := describe(t, tc, rules.ScheduleID(id)); d != nil {
			t.Fatalf("schedule before reconciling: %+v", d)
		}
	}
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	for id, enabled := range ids {
		d := describe(t, tc, rules.ScheduleID(id))
		if d == nil || d.Schedule.State.Paused == enabled {
			t.Fatalf("rule %s (enabled %v) after reconciling: %+v", id, enabled, d)
		}
	}
	if d := describe(t, tc, rules.RetentionScheduleID); d == nil {
		t.Fatal("no event retention schedule")
	}
	// Twice is the same as once.
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
}

// Without Temporal a schedule-triggered rule is not stored: its Schedule is created in the
// rule's transaction. An event-triggered one needs no Temporal.
func TestCreateRuleStoresNothingWhenTheScheduleFails(t *testing.T) {
	st := teststack.Store(t)
	tc, err := client.NewLazyClient(client.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		Namespace: "automation", Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	svc := newService(t, st, tc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := svc.CreateRule(ctx, json.RawMessage(scheduleRule)); err == nil {
		t.Fatal("created a schedule-triggered rule without Temporal")
	}
	list, _, err := svc.ListRules(context.Background(), store.RuleFilter{}, store.Page{Limit: 10})
	if err != nil || len(list) != 0 {
		t.Fatalf("rules after the failed create: %+v %v", list, err)
	}
	event := `{"name": "fwd", "trigger": {"type": "event", "event_type": "a"}, "actions": [{"type": "emit_event", "event_type": "b"}]}`
	if _, err := svc.CreateRule(context.Background(), json.RawMessage(event)); err != nil {
		t.Fatal(err)
	}
}

// Rule bodies are judged whole: unknown fields, wrong types and actions the deployment cannot
// run are all reported, each under its path; a missing rule is store.ErrNotFound before its
// body is judged.
func TestServiceValidatesRuleBodies(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, teststack.Store(t), lazyClient(t))
	seed, err := os.ReadFile("testdata/seed_welcome_rule.json")
	if err != nil {
		t.Fatal(err)
	}
	p := problems(t, errOf(svc.CreateRule(ctx, seed)))
	if len(p) != 1 || !strings.Contains(p["actions[0].type"], "not available") {
		t.Errorf("seed rule without a notifier: %v", p)
	}
	p = problems(t, errOf(svc.CreateRule(ctx, json.RawMessage(`{"name": "x", "trigger": {"type": "event", "event_type": "a", "color": "red"},
		"actions": [{"type": "emit_event", "event_type": "b", "to": "x"}]}`))))
	for _, f := range []string{"trigger.color", "actions[0].to"} {
		if p[f] == "" {
			t.Errorf("no problem at %s: %v", f, p)
		}
	}
	// A body that does not decode is judged as far as it goes.
	if p := problems(t, errOf(svc.CreateRule(ctx, json.RawMessage(`{"name": "x", "cooldown": "soon", "colour": 1}`)))); p["cooldown"] == "" || p["colour"] == "" {
		t.Errorf("undecodable body: %v", p)
	}
	if p := problems(t, errOf(svc.CreateRule(ctx, json.RawMessage(`[1]`)))); p[""] == "" {
		t.Errorf("array body: %v", p)
	}
	if _, err := svc.ReplaceRule(ctx, "nope", json.RawMessage(`[1]`)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("replace a missing rule: %v", err)
	}
	if _, err := svc.SetEnabled(ctx, "nope", true); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("enable a missing rule: %v", err)
	}
}

// Dry runs evaluate like the engine and store nothing: a stored rule with its state, an inline
// one validated under "rule".
func TestDryRuns(t *testing.T) {
	ctx := context.Background()
	st := teststack.Store(t)
	svc := newService(t, st, lazyClient(t))
	r, err := svc.CreateRule(ctx, json.RawMessage(`{"name": "vip", "trigger": {"type": "event", "event_type": "order.placed"},
		"conditions": [{"field": "total", "operator": "gt", "value": 100}],
		"actions": [{"type": "emit_event", "event_type": "vip.order"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.TestRule(ctx, r.ID, json.RawMessage(`{"event": {"data": {"total": 250}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !res.TriggerMatched || !res.Matched || !res.WouldRun || res.Event.Type != "order.placed" ||
		len(res.Actions) != 1 || res.Actions[0].Rendered == nil || res.Actions[0].Rendered.EventType != "vip.order" {
		t.Fatalf("matching event: %+v", res)
	}
	if res, err = svc.TestRule(ctx, r.ID, json.RawMessage(`{"type": "order.placed", "data": {"total": 5}}`)); err != nil ||
		res.Matched || res.WouldRun || res.Reason == "" {
		t.Fatalf("the body as the event, not matching: %+v %v", res, err)
	}
	if _, err := svc.SetEnabled(ctx, r.ID, false); err != nil {
		t.Fatal(err)
	}
	if res, err = svc.TestRule(ctx, r.ID, json.RawMessage(`{"event": {"data": {"total": 250}}}`)); err != nil ||
		res.WouldRun || res.Reason != "the rule is disabled" {
		t.Fatalf("disabled rule: %+v %v", res, err)
	}
	if p := problems(t, errOf(svc.TestRule(ctx, r.ID, json.RawMessage(`{"event": {"data": [1], "depth": -1}}`)))); p["event.data"] == "" || p["event.depth"] == "" {
		t.Fatalf("bad sample event: %v", p)
	}

	res, err = svc.TestInline(ctx, json.RawMessage(`{"name": "x", "trigger": {"type": "event", "event_type": "a.*"},
		"actions": [{"type": "emit_event", "event_type": "b"}]}`), json.RawMessage(`{"type": "a.b", "depth": 9}`))
	if err != nil || res.RuleID != "" || !res.Matched || res.WouldRun || !strings.Contains(res.Reason, "causation depth 9") {
		t.Fatalf("inline, too deep: %+v %v", res, err)
	}
	p := problems(t, errOf(svc.TestInline(ctx, json.RawMessage(`{"name": "x", "trigger": {"type": "event"}, "actions": []}`),
		json.RawMessage(`{}`))))
	if p["rule.trigger.event_type"] == "" {
		t.Fatalf("inline, invalid rule: %v", p)
	}
	if p := problems(t, errOf(svc.TestInline(ctx, nil, nil))); p["rule"] == "" || p["event"] == "" {
		t.Fatalf("inline, nothing given: %v", p)
	}
	// Nothing was stored by the dry runs.
	if events, _, err := svc.ListEvents(ctx, store.EventFilter{}, store.Page{Limit: 10}); err != nil || len(events) != 0 {
		t.Fatalf("events after dry runs: %+v %v", events, err)
	}
}

// An event reads back with what the engine recorded of it: its evaluation, each rule's
// execution with its actions, and the events its emit_event actions caused.
func TestEventsReadWithTheirEvaluation(t *testing.T) {
	ctx := context.Background()
	st := teststack.Store(t)
	svc := newService(t, st, lazyClient(t))
	r, err := svc.CreateRule(ctx, json.RawMessage(`{"name": "fwd", "trigger": {"type": "event", "event_type": "a"},
		"actions": [{"type": "emit_event", "event_type": "b"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, e := range []store.Event{
		{ID: "ev-1", Type: "a", Source: "api", Data: store.JSON(`{}`), OccurredAt: now, ReceivedAt: now, CorrelationID: "ev-1"},
		{ID: "ev-2", Type: "b", Source: "automation/rules", Data: store.JSON(`{}`), OccurredAt: now, ReceivedAt: now, CorrelationID: "ev-1", Depth: 1},
	} {
		if _, err := st.InsertEvent(ctx, &e); err != nil {
			t.Fatal(err)
		}
	}
	finished := now.Add(time.Second)
	err = st.RecordEvaluation(ctx,
		store.EventEvaluation{EventID: "ev-1", EventType: "a", Status: store.EvaluationEvaluated, RulesMatched: 1, EvaluatedAt: now},
		[]store.RuleExecution{{ID: "x-1", EventID: "ev-1", EventType: "a", RuleID: r.ID, RuleVersion: 1,
			Status: store.RuleExecutionSucceeded, Fired: true, Conditions: store.JSON(`[]`), ActionCount: 1, EvaluatedAt: now, FinishedAt: &finished}},
		[]store.ActionOutcome{{ExecutionID: "x-1", ActionIndex: 0, Type: rules.ActionEmitEvent, Status: "succeeded",
			IdempotencyKey: "k", Rendered: store.MustJSON(rules.RenderedAction{EventType: "b"}), Result: store.JSON(`{"event_id": "ev-2"}`),
			Attempts: 1, StartedAt: &now, FinishedAt: &finished}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := svc.GetEvent(ctx, "ev-1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Evaluation == nil || d.Evaluation.RulesMatched != 1 || len(d.Executions) != 1 || d.Executions[0].RuleName != "fwd" ||
		!d.Executions[0].Matched || len(d.Executions[0].Actions) != 1 || d.Executions[0].Actions[0].DurationMS == nil ||
		len(d.Caused) != 1 || d.Caused[0] != (rules.EventRef{ID: "ev-2", Type: "b"}) {
		t.Fatalf("event detail: %+v", d)
	}
	list, _, err := svc.ListEvents(ctx, store.EventFilter{CorrelationID: "ev-1"}, store.Page{Limit: 10})
	if err != nil || len(list) != 2 {
		t.Fatalf("events: %+v %v", list, err)
	}
	for _, e := range list {
		if (e.Evaluation != nil) != (e.ID == "ev-1") {
			t.Errorf("evaluation of %s: %+v", e.ID, e.Evaluation)
		}
	}
	x, err := svc.GetExecution(ctx, "x-1")
	if err != nil || x.Event == nil || x.Event.ID != "ev-1" {
		t.Fatalf("execution: %+v %v", x, err)
	}
	execs, _, err := svc.ListExecutions(ctx, store.RuleExecutionFilter{RuleID: r.ID}, store.Page{Limit: 10})
	if err != nil || len(execs) != 1 || execs[0].Event != nil {
		t.Fatalf("executions of the rule: %+v %v", execs, err)
	}
	if _, err := svc.GetEvent(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing event: %v", err)
	}
}

func errOf[T any](_ T, err error) error { return err }

// lazyClient points at a port where nothing listens: for what needs no Temporal.
func lazyClient(t *testing.T) client.Client {
	t.Helper()
	tc, err := client.NewLazyClient(client.Options{HostPort: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		Namespace: "automation", Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return tc
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
