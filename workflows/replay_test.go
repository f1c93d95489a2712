package workflows_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-rpc/sdk-go/nexus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/webhooks"
	"github.com/pyairtable/automation-domain/workflows"
)

// The testdata histories are real interpreter runs recorded on the embedded server by
// e2e.TestWorkflowWorkerProcess (UPDATE_REPLAY_HISTORY=1 writes interpreter_history.json):
// http_request and data_transform steps, a skipped condition, a parallel step with a delay, a
// branch, a signal wait, and a worker killed in the middle. interpreter_history_v0.json was
// recorded before the "local-fast-path" version, interpreter_history_v1.json before
// "execution-timeout". Changing the interpreter in a way that would
// break executions running when it is deployed fails this test; guard such changes with
// workflow.GetVersion and keep the older histories here.
const historyFile = "testdata/interpreter_history.json"

func TestInterpreterReplaysRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/interpreter_history*.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("histories: %v %v", files, err)
	}
	for _, f := range files {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflow(workflows.Interpreter)
		if err := r.ReplayWorkflowHistoryFromJSONFile(nopLogger{}, f); err != nil {
			t.Errorf("the interpreter no longer replays %s: %v", f, err)
		}
	}
}

// The notification and rules histories were recorded on the embedded server before issue 11
// moved the types and registrations around (a scratch e2e test drove the API: an email to three
// recipients — one sent, one after a 4xx retry, one refused for good — an email with send_at, an
// SMS, two event rules with email, workflow, emit_event and a failing workflow action, a schedule
// trigger, and the retention Schedule triggered by hand). They prove the registered workflow and
// activity names and the wire formats did not change: a history names every workflow and
// activity type it ran, and the replayer fails on one registered under another name.
//   - notification_history.json, notification_send_at_history.json, notification_sms_history.json;
//   - rule_evaluator_history.json (Evaluate, RunAction, FinishExecution local activities);
//   - rule_schedule_fire_history.json, purge_expired_events_history.json.
func TestDomainWorkflowsReplayRecordedHistories(t *testing.T) {
	// The worker's own registrations (workflows.Register*), so that a renamed workflow fails here.
	register := func(r worker.WorkflowReplayer) {
		reg := replayRegistry{r}
		workflows.RegisterNotifications(reg, reg, reg, nil)
		workflows.RegisterRules(reg, nil)
		workflows.RegisterEngine(reg, nil)
		workflows.RegisterWebhooks(reg, reg, nil)
		workflows.RegisterPlatform(reg, nil, nil)
	}
	// The replayer finds a workflow function by its Go name too, so the names are also checked
	// against what each history recorded: its workflow type, and the activity types it ran
	// (activities and local activities), which must be methods of the domain's activity struct.
	notifications := append(methods((*activities.Notifications)(nil)), methods((*activities.Events)(nil))...)
	cases := []struct {
		glob       string
		register   func(worker.WorkflowReplayer)
		workflow   string
		activities []string
	}{
		{"testdata/notification*history.json", register, notify.NotificationWorkflow, notifications},
		{"testdata/rule_evaluator*history.json", register, rules.EvaluatorWorkflow, methods((*activities.Rules)(nil))},
		{"testdata/rule_schedule_fire*history.json", register, rules.ScheduleFireWorkflow, methods((*activities.Rules)(nil))},
		{"testdata/purge_expired_events*history.json", register, rules.RetentionWorkflow, methods((*activities.Rules)(nil))},
		{"testdata/interpreter_history*.json", register, engine.InterpreterWorkflow,
			append(methods((*activities.WorkflowEngine)(nil)), methods((*activities.Events)(nil))...)},
		{"testdata/webhook_dispatcher*history.json", register, webhooks.DispatcherWorkflow, methods((*activities.Webhooks)(nil))},
	}
	for _, c := range cases {
		files, err := filepath.Glob(c.glob)
		if err != nil || len(files) == 0 {
			t.Fatalf("histories %s: %v %v", c.glob, files, err)
		}
		for _, f := range files {
			r := worker.NewWorkflowReplayer()
			c.register(r)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nopLogger{}, f); err != nil {
				t.Errorf("%s no longer replays: %v", f, err)
			}
			wf, acts := recordedTypes(t, f)
			if wf != c.workflow {
				t.Errorf("%s: workflow type %q, registered as %q", f, wf, c.workflow)
			}
			for _, a := range acts {
				if !slices.Contains(c.activities, a) {
					t.Errorf("%s: activity type %q is no longer registered (%v)", f, a, c.activities)
				}
			}
		}
	}
}

// TestReplayCatchesNonDeterminism shows the guard works: an interpreter that schedules its
// steps differently does not replay the same history.
func TestReplayCatchesNonDeterminism(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(func(ctx workflow.Context, in engine.RunInput) (engine.RunResult, error) {
		// Sleeps where the real interpreter runs its StartRun local activity.
		if err := workflow.Sleep(ctx, 1); err != nil {
			return engine.RunResult{}, err
		}
		return workflows.Interpreter(ctx, in)
	}, workflow.RegisterOptions{Name: "Interpreter"})
	err := r.ReplayWorkflowHistoryFromJSONFile(nopLogger{}, historyFile)
	if err == nil || !strings.Contains(err.Error(), "TMPRL1100") { // the SDK's non-determinism error
		t.Fatalf("a changed interpreter replayed the history: %v", err)
	}
}

// replayRegistry lets the worker's Register functions register their workflows on a replayer,
// which runs no activities.
type replayRegistry struct{ worker.WorkflowReplayer }

func (replayRegistry) RegisterActivity(any)                                         {}
func (replayRegistry) RegisterActivityWithOptions(any, activity.RegisterOptions)    {}
func (replayRegistry) RegisterDynamicActivity(any, activity.DynamicRegisterOptions) {}
func (replayRegistry) RegisterNexusService(*nexus.Service)                          {}

// methods lists the exported methods of an activity struct: the activity types it registers.
func methods(v any) []string {
	t := reflect.TypeOf(v)
	out := make([]string, 0, t.NumMethod())
	for i := range t.NumMethod() {
		out = append(out, t.Method(i).Name)
	}
	return out
}

// recordedTypes reads the workflow type and every activity type (scheduled activities and local
// activity markers) a history recorded.
func recordedTypes(t *testing.T, file string) (workflowType string, activityTypes []string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Events []struct {
			Started *struct {
				WorkflowType struct{ Name string } `json:"workflowType"`
			} `json:"workflowExecutionStartedEventAttributes"`
			Scheduled *struct {
				ActivityType struct{ Name string } `json:"activityType"`
			} `json:"activityTaskScheduledEventAttributes"`
			Marker *struct {
				MarkerName string `json:"markerName"`
				Details    map[string]struct {
					Payloads []struct{ Data []byte } `json:"payloads"`
				} `json:"details"`
			} `json:"markerRecordedEventAttributes"`
		} `json:"events"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, e := range h.Events {
		switch {
		case e.Started != nil:
			workflowType = e.Started.WorkflowType.Name
		case e.Scheduled != nil:
			activityTypes = append(activityTypes, e.Scheduled.ActivityType.Name)
		case e.Marker != nil && e.Marker.MarkerName == "LocalActivity":
			for _, p := range e.Marker.Details["data"].Payloads {
				var m struct{ ActivityType string }
				if json.Unmarshal(p.Data, &m) == nil && m.ActivityType != "" {
					activityTypes = append(activityTypes, m.ActivityType)
				}
			}
		}
	}
	return workflowType, activityTypes
}
