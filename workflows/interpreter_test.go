package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/workflows"
)

// fixture runs the interpreter in Temporal's test environment (time skipping) against the real
// activities over a real SQLite store.
type fixture struct {
	t     *testing.T
	suite testsuite.WorkflowTestSuite
	store *store.Store
	acts  *activities.WorkflowEngine
}

func newFixture(t *testing.T) *fixture {
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
	f := &fixture{t: t, store: st, acts: &activities.WorkflowEngine{
		Store: st, Templates: templating.New(templating.Options{}),
		Egress: &netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}}
	f.suite.SetLogger(nopLogger{})
	return f
}

// define stores a definition (checked by definition.Validate) and returns its id.
func (f *fixture) define(body string) string {
	f.t.Helper()
	d, err := definition.Parse([]byte(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if p := definition.Validate(d, definition.Options{Templates: f.acts.Templates,
		Unavailable: func(typ string) string { return engine.StepUnavailable(typ, f.acts.Notifier, f.acts.Webhooks) },
	}); len(p) > 0 {
		f.t.Fatalf("definition does not validate: %v", p)
	}
	now := time.Now().UTC()
	w := store.Workflow{ID: store.NewID(), Name: d.Name, TriggerType: d.TriggerType, Enabled: true, Version: 1,
		Definition: store.MustJSON(d), CreatedAt: now, UpdatedAt: now}
	if err := f.store.CreateWorkflow(context.Background(), &w); err != nil {
		f.t.Fatal(err)
	}
	return w.ID
}

// newExecution stores a pending execution as the API does.
func (f *fixture) newExecution(workflowID string, input map[string]any) store.Execution {
	f.t.Helper()
	now := time.Now().UTC()
	id := store.NewID()
	e := store.Execution{ID: id, WorkflowID: workflowID, Version: 1, Status: store.ExecutionPending,
		Priority: "normal", TriggeredBy: "test", Input: store.MustJSON(input), TemporalWorkflowID: "workflow-execution-" + id,
		CreatedAt: now, UpdatedAt: now}
	if err := f.store.InsertExecution(context.Background(), &e); err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *fixture) env() *testsuite.TestWorkflowEnvironment {
	env := f.suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Interpreter)
	env.RegisterActivity(f.acts)
	env.RegisterActivity(&activities.Events{Bus: events.NewBus(f.store, slog.New(slog.NewTextHandler(io.Discard, nil)))})
	return env
}

// run executes a definition with input and returns the environment (finished) and execution.
func (f *fixture) run(body string, input map[string]any, setup func(env *testsuite.TestWorkflowEnvironment)) (*testsuite.TestWorkflowEnvironment, store.Execution) {
	f.t.Helper()
	e := f.newExecution(f.define(body), input)
	env := f.env()
	if setup != nil {
		setup(env)
	}
	env.ExecuteWorkflow(workflows.Interpreter, engine.RunInput{ExecutionID: e.ID, DefinitionID: e.WorkflowID, Version: 1, Priority: "normal"})
	if !env.IsWorkflowCompleted() {
		f.t.Fatal("workflow did not complete")
	}
	got, err := f.store.GetExecution(context.Background(), e.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return env, got
}

func (f *fixture) steps(executionID string) map[string]store.ExecutionStep {
	f.t.Helper()
	rows, err := f.store.ExecutionSteps(context.Background(), executionID)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]store.ExecutionStep{}
	for _, r := range rows {
		out[r.StepID] = r
	}
	return out
}

func output(t *testing.T, s store.ExecutionStep) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(s.Output, &m); err != nil {
		t.Fatalf("step %s output %s: %v", s.StepID, s.Output, err)
	}
	return m
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// receiver is an HTTP endpoint that records requests and answers with the statuses queued.
type receiver struct {
	*httptest.Server
	hits     atomic.Int32
	statuses []int
	bodies   chan string
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, bodies: make(chan string, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := int(r.hits.Add(1))
		b, _ := io.ReadAll(req.Body)
		r.bodies <- string(b)
		status := 200
		if n <= len(r.statuses) {
			status = r.statuses[n-1]
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"received": ` + string(orNull(b)) + `, "n": ` + strconv.Itoa(n) + `}`))
	}))
	t.Cleanup(r.Close)
	return r
}

func orNull(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func TestSequentialStepsPassOutputsThroughTemplates(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t)
	env, e := f.run(`{
		"name": "Data Processing Workflow", "trigger_type": "manual",
		"steps": [
			{"id": "validate", "type": "data_transform", "config": {
				"assert": [{"that": "len(input.rows) > 0", "message": "rows must not be empty"}],
				"jq": "{count: (.input.rows | length), total: ([.input.rows[].amount] | add)}"}},
			{"id": "report", "type": "http_request", "config": {
				"method": "POST", "url": "`+rcv.URL+`/report",
				"headers": {"X-Count": "{{ steps.validate.output.count }}"},
				"body": {"total": "{{ steps.validate.output.total }}", "who": "{{ input.user }}"}}}
		]}`, map[string]any{"user": "ann", "rows": []any{map[string]any{"amount": 2}, map[string]any{"amount": 5}}}, nil)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if e.Status != store.ExecutionCompleted || e.StartedAt == nil || e.FinishedAt == nil {
		t.Fatalf("execution %+v", e)
	}
	steps := f.steps(e.ID)
	if out := output(t, steps["validate"]); out["count"] != 2.0 || out["total"] != 7.0 {
		t.Errorf("validate output %v", out)
	}
	if body := <-rcv.bodies; body != `{"total":7,"who":"ann"}` {
		t.Errorf("request body %s", body)
	}
	if out := output(t, steps["report"]); out["status"] != 200.0 {
		t.Errorf("report output %v", out)
	}
	var res engine.RunResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Status != store.ExecutionCompleted || res.Output["report"] == nil {
		t.Errorf("result %+v %v", res, err)
	}
	ev, err := f.store.GetEvent(context.Background(), "wfexec-"+e.ID+"-completed")
	if err != nil || ev.Type != "workflow.completed" || ev.Subject != e.WorkflowID {
		t.Errorf("completion event %+v %v", ev, err)
	}
}

func TestFailingAssertionFailsTheStepReadably(t *testing.T) {
	f := newFixture(t)
	env, e := f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "validate", "type": "data_transform", "config": {
			"assert": [{"that": "len(input.rows) > 0", "message": "rows must not be empty"}], "jq": ".input"}},
		{"id": "never", "type": "data_transform", "config": {"jq": "1"}}]}`,
		map[string]any{"rows": []any{}}, nil)
	if env.GetWorkflowError() == nil {
		t.Fatal("the workflow did not fail")
	}
	steps := f.steps(e.ID)
	if e.Status != store.ExecutionFailed || !strings.Contains(e.Error, "rows must not be empty") {
		t.Errorf("execution %s: %q", e.Status, e.Error)
	}
	if s := steps["validate"]; s.Status != store.StepFailed || s.Error != "rows must not be empty" || s.Attempts != 1 {
		t.Errorf("validate %+v (an assertion is not retried)", s)
	}
	if _, ran := steps["never"]; ran {
		t.Error("a step after the failed one ran")
	}
	// Input of the wrong shape: a readable error, no panic.
	env, e = f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "sum", "type": "data_transform", "config": {"jq": "[.input.rows[].amount] | add"}}]}`,
		map[string]any{"rows": "not a list"}, nil)
	if env.GetWorkflowError() == nil || !strings.Contains(f.steps(e.ID)["sum"].Error, "cannot iterate") {
		t.Errorf("sum over a string: %+v", f.steps(e.ID)["sum"])
	}
}

func TestRetryPolicyThenFailure(t *testing.T) {
	f := newFixture(t)
	flaky := newReceiver(t, 503, 503)
	env, e := f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "call", "type": "http_request", "config": {"url": "`+flaky.URL+`"},
		 "retry": {"max_attempts": 3, "initial_interval": "10s", "backoff_coefficient": 3}}]}`, nil, nil)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if s := f.steps(e.ID)["call"]; s.Status != store.StepCompleted || s.Attempts != 3 || flaky.hits.Load() != 3 {
		t.Errorf("call %+v after %d hits", s, flaky.hits.Load())
	}

	down := newReceiver(t, 500, 500, 500, 500)
	env, e = f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "call", "type": "http_request", "config": {"url": "`+down.URL+`"},
		 "retry": {"max_attempts": 2, "initial_interval": "1m"}}]}`, nil, nil)
	if env.GetWorkflowError() == nil {
		t.Fatal("the workflow did not fail")
	}
	s := f.steps(e.ID)["call"]
	if s.Status != store.StepFailed || s.Attempts != 2 || down.hits.Load() != 2 || !strings.Contains(s.Error, "answered 500") {
		t.Errorf("call %+v after %d hits", s, down.hits.Load())
	}
	if e.Status != store.ExecutionFailed || !strings.Contains(e.Error, "step call failed") {
		t.Errorf("execution %s %q", e.Status, e.Error)
	}

	// A 4xx is not retried.
	notFound := newReceiver(t, 404, 404, 404)
	env, e = f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "call", "type": "http_request", "config": {"url": "`+notFound.URL+`"}, "retry": {"max_attempts": 5}}]}`, nil, nil)
	if env.GetWorkflowError() == nil || notFound.hits.Load() != 1 {
		t.Errorf("404 retried: %d hits", notFound.hits.Load())
	}
}

func TestConditionsSkipAndOnErrorContinues(t *testing.T) {
	f := newFixture(t)
	down := newReceiver(t, 400)
	env, e := f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "big", "type": "data_transform", "condition": "input.amount > 100", "config": {"jq": "\"big\""}},
		{"id": "small", "type": "data_transform", "condition": "input.amount <= 100", "config": {"jq": "\"small\""}},
		{"id": "wait", "type": "delay", "condition": "input.amount > 100", "config": {"duration": "1h"}},
		{"id": "optional", "type": "http_request", "on_error": "continue", "config": {"url": "`+down.URL+`"}},
		{"id": "after", "type": "data_transform", "config": {"mapping": {"small": "steps.small.status", "optional": "steps.optional.status"}}}
	]}`, map[string]any{"amount": 5}, nil)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	steps := f.steps(e.ID)
	for id, want := range map[string]string{"big": "skipped", "small": "completed", "wait": "skipped", "optional": "failed", "after": "completed"} {
		if steps[id].Status != want {
			t.Errorf("%s: %s, want %s", id, steps[id].Status, want)
		}
	}
	if out := output(t, steps["after"]); out["small"] != "completed" || out["optional"] != "failed" {
		t.Errorf("after %v", out)
	}
	if e.Status != store.ExecutionCompleted {
		t.Errorf("execution %s", e.Status)
	}
}

func TestDAGRunsIndependentStepsTogether(t *testing.T) {
	f := newFixture(t)
	env, e := f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "start", "type": "data_transform", "config": {"jq": "1"}},
		{"id": "a", "type": "delay", "depends_on": ["start"], "config": {"duration": "1h"}},
		{"id": "b", "type": "delay", "depends_on": ["start"], "config": {"duration": "1h"}},
		{"id": "join", "type": "data_transform", "depends_on": ["a", "b"], "config": {"mapping": {"a": "steps.a.status", "b": "steps.b.status"}}}
	]}`, nil, nil)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	steps := f.steps(e.ID)
	a, b, join := steps["a"], steps["b"], steps["join"]
	// Both delays started before either ended: they ran at the same time.
	if a.StartedAt.After(*b.FinishedAt) || b.StartedAt.After(*a.FinishedAt) {
		t.Errorf("a %v–%v, b %v–%v", a.StartedAt, a.FinishedAt, b.StartedAt, b.FinishedAt)
	}
	if out := output(t, join); out["a"] != "completed" || out["b"] != "completed" {
		t.Errorf("join %v", out)
	}
}

func TestParallelBranchAndSubWorkflow(t *testing.T) {
	f := newFixture(t)
	child := f.define(`{"name": "child", "trigger_type": "manual", "steps": [
		{"id": "double", "type": "data_transform", "config": {"mapping": {"n": "input.n * 2"}}}]}`)
	env, e := f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "fan", "type": "parallel", "config": {"branches": [
			{"name": "left", "steps": [{"id": "l1", "type": "data_transform", "config": {"jq": "\"L\""}}]},
			{"name": "right", "steps": [{"id": "r1", "type": "delay", "config": {"duration": "5m"}},
			                            {"id": "r2", "type": "data_transform", "config": {"jq": "\"R\""}}]}]}},
		{"id": "route", "type": "branch", "config": {"cases": [
			{"name": "many", "when": "input.n > 10", "steps": [{"id": "many", "type": "data_transform", "config": {"jq": "\"many\""}}]},
			{"name": "few", "when": "input.n > 0", "steps": [{"id": "few", "type": "data_transform", "config": {"jq": "\"few\""}}]}],
			"default": [{"id": "none", "type": "data_transform", "config": {"jq": "\"none\""}}]}},
		{"id": "sub", "type": "sub_workflow", "config": {"workflow_id": "`+child+`", "input": {"n": "{{ input.n }}"}}}
	]}`, map[string]any{"n": 3}, nil)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	steps := f.steps(e.ID)
	for id, want := range map[string]string{"fan": "completed", "l1": "completed", "r1": "completed", "r2": "completed",
		"route": "completed", "few": "completed", "sub": "completed"} {
		if steps[id].Status != want {
			t.Errorf("%s: %q, want %s", id, steps[id].Status, want)
		}
	}
	for _, id := range []string{"many", "none"} {
		if steps[id].Status != store.StepSkipped {
			t.Errorf("%s on a path the branch did not take: %q, want skipped", id, steps[id].Status)
		}
	}
	if out := output(t, steps["route"]); out["name"] != "few" {
		t.Errorf("route %v", out)
	}
	sub := output(t, steps["sub"])
	childOut, _ := sub["output"].(map[string]any)
	if sub["status"] != "completed" || childOut["double"].(map[string]any)["n"] != 6.0 {
		t.Errorf("sub %v", sub)
	}
	childExec, err := f.store.GetExecution(context.Background(), sub["execution_id"].(string))
	if err != nil || childExec.ParentExecutionID != e.ID || childExec.Status != store.ExecutionCompleted || childExec.TriggeredBy != "sub_workflow" {
		t.Errorf("child execution %+v %v", childExec, err)
	}
}

func TestWaitForSignal(t *testing.T) {
	f := newFixture(t)
	def := `{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "approval", "type": "wait_for_signal", "config": {"signal": "approve", "timeout": "24h"}},
		{"id": "after", "type": "data_transform", "config": {"mapping": {"by": "steps.approval.output.by"}}}]}`
	var live engine.RunState
	env, e := f.run(def, nil, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(func() {
			res, err := env.QueryWorkflow(engine.StateQuery)
			if err != nil {
				t.Error(err)
				return
			}
			_ = res.Get(&live)
			env.SignalWorkflow("approve", map[string]any{"by": "boss"})
		}, 2*time.Hour)
	})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if live.Status != "running" || live.Steps[0].Status != "waiting" || live.Steps[0].WaitingFor != "approve" || live.Steps[1].Status != "pending" {
		t.Errorf("live state while waiting %+v", live)
	}
	if out := output(t, f.steps(e.ID)["after"]); out["by"] != "boss" {
		t.Errorf("after %v", out)
	}

	// No signal within the timeout fails the step.
	env, e = f.run(def, nil, nil)
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || !strings.Contains(f.steps(e.ID)["approval"].Error, `no "approve" signal within 24h`) {
		t.Errorf("timeout: %v / %+v", err, f.steps(e.ID)["approval"])
	}
}

func TestCancelRecordsCancelled(t *testing.T) {
	f := newFixture(t)
	env, e := f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "wait", "type": "delay", "config": {"duration": "48h"}},
		{"id": "never", "type": "data_transform", "config": {"jq": "1"}}]}`, nil,
		func(env *testsuite.TestWorkflowEnvironment) {
			env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
		})
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("workflow error %v, want cancelled", err)
	}
	steps := f.steps(e.ID)
	if e.Status != store.ExecutionCancelled || steps["wait"].Status != store.StepCancelled {
		t.Errorf("execution %s, wait %s", e.Status, steps["wait"].Status)
	}
	if _, ran := steps["never"]; ran {
		t.Error("a step ran after the cancellation")
	}
	if ev, err := f.store.GetEvent(context.Background(), "wfexec-"+e.ID+"-cancelled"); err != nil || ev.Type != "workflow.cancelled" {
		t.Errorf("cancel event %+v %v", ev, err)
	}
}

func TestNotificationStepUsesTheNotifier(t *testing.T) {
	f := newFixture(t)
	n := &recordingNotifier{}
	f.acts.Notifier = n
	env, e := f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "notify", "type": "notification", "config": {"channel": "email", "to": "{{ input.email }}",
		 "subject": "Hi {{ input.name }}", "body": "Done"}}]}`, map[string]any{"email": "a@example.com", "name": "Ann"}, nil)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(n.got) != 1 || n.got[0].To[0] != "a@example.com" || n.got[0].Subject != "Hi Ann" ||
		n.got[0].IdempotencyKey != e.ID+"/notify" {
		t.Errorf("notifier got %+v", n.got)
	}
	if out := output(t, f.steps(e.ID)["notify"]); out["status"] != "queued" {
		t.Errorf("notify output %v", out)
	}
}

// An execution started while handling an event (a rule's workflow action) hands that event on
// to its notification steps, so their notification.* events continue the chain just as the
// execution's own workflow.* event does.
func TestNotificationStepCarriesTheExecutionsCause(t *testing.T) {
	f := newFixture(t)
	n := &recordingNotifier{}
	f.acts.Notifier = n
	e := f.newExecution(f.define(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "notify", "type": "notification", "config": {"channel": "email", "to": "a@example.com", "subject": "s", "body": "b"}}]}`), nil)
	env := f.env()
	cause := engine.EventCause{EventID: "evt-2", CorrelationID: "evt-1", Depth: 1}
	env.ExecuteWorkflow(workflows.Interpreter, engine.RunInput{ExecutionID: e.ID, DefinitionID: e.WorkflowID,
		Version: 1, Priority: "normal", Cause: &cause})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(n.got) != 1 || n.got[0].Cause == nil || *n.got[0].Cause != cause {
		t.Errorf("notifier got %+v", n.got)
	}
	var completed []store.Event
	if err := f.store.DB().Where("type = ?", "workflow.completed").Find(&completed).Error; err != nil {
		t.Fatal(err)
	}
	if len(completed) != 1 || completed[0].CausationID != "evt-2" || completed[0].CorrelationID != "evt-1" || completed[0].Depth != 2 {
		t.Errorf("workflow.completed %+v", completed)
	}
}

// A notification the module refuses or fails for good fails the step at once, whatever the
// step's retry policy: the module's non-retryable error keeps its kind through the step.
func TestNotificationStepFailureIsNotRetried(t *testing.T) {
	f := newFixture(t)
	n := &recordingNotifier{err: temporal.NewNonRetryableApplicationError("notification n-1 failed for every recipient", "NotificationFailed", nil)}
	f.acts.Notifier = n
	env, e := f.run(`{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "notify", "type": "notification", "retry": {"max_attempts": 5, "initial_interval": "1s"},
		 "config": {"channel": "email", "to": "a@example.com", "subject": "s", "body": "b"}}]}`, nil, nil)
	if env.GetWorkflowError() == nil {
		t.Fatal("the execution succeeded")
	}
	st := f.steps(e.ID)["notify"]
	if len(n.got) != 1 || st.Status != store.StepFailed || st.Attempts != 1 ||
		st.Error != "notification: notification n-1 failed for every recipient" {
		t.Errorf("%d calls; step %+v", len(n.got), st)
	}
}

type recordingNotifier struct {
	ports.Notifier // the rules' sends are not called here
	got            []ports.StepNotification
	err            error
}

func (r *recordingNotifier) SendStepNotification(_ context.Context, req ports.StepNotification) (ports.StepNotificationResult, error) {
	r.got = append(r.got, req)
	if r.err != nil {
		return ports.StepNotificationResult{}, r.err
	}
	return ports.StepNotificationResult{IDs: []string{"n-1"}, Status: "queued"}, nil
}

func TestExecutionTimeoutIsRecorded(t *testing.T) {
	f := newFixture(t)
	env, e := f.run(`{"name": "w", "trigger_type": "manual", "timeout": "1h", "steps": [
		{"id": "long", "type": "delay", "config": {"duration": "3h"}},
		{"id": "never", "type": "data_transform", "config": {"jq": "1"}}]}`, nil, nil)
	if env.GetWorkflowError() == nil {
		t.Fatal("the workflow did not fail")
	}
	steps := f.steps(e.ID)
	if e.Status != store.ExecutionTimedOut || !strings.Contains(e.Error, "within its timeout of 1h0m0s") || steps["long"].Status != store.StepCancelled {
		t.Errorf("execution %s %q, long %s", e.Status, e.Error, steps["long"].Status)
	}
	if _, ran := steps["never"]; ran {
		t.Error("a step ran after the timeout")
	}
}
