package workflows_test

import (
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/rules"
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
	cases := []struct {
		glob     string
		register func(worker.WorkflowReplayer)
	}{
		{"testdata/notification*history.json", func(r worker.WorkflowReplayer) {
			r.RegisterWorkflow(workflows.SendNotification)
		}},
		{"testdata/rule_evaluator*history.json", func(r worker.WorkflowReplayer) {
			r.RegisterWorkflowWithOptions(workflows.RuleEvaluator, workflow.RegisterOptions{Name: rules.EvaluatorWorkflow})
		}},
		{"testdata/rule_schedule_fire*history.json", func(r worker.WorkflowReplayer) {
			r.RegisterWorkflowWithOptions(workflows.RuleScheduleFire, workflow.RegisterOptions{Name: rules.ScheduleFireWorkflow})
		}},
		{"testdata/purge_expired_events*history.json", func(r worker.WorkflowReplayer) {
			r.RegisterWorkflowWithOptions(workflows.PurgeExpiredEvents, workflow.RegisterOptions{Name: rules.RetentionWorkflow})
		}},
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
		}
	}
}

// TestReplayCatchesNonDeterminism shows the guard works: an interpreter that schedules its
// steps differently does not replay the same history.
func TestReplayCatchesNonDeterminism(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.RunInput) (workflows.RunResult, error) {
		// Sleeps where the real interpreter runs its StartRun local activity.
		if err := workflow.Sleep(ctx, 1); err != nil {
			return workflows.RunResult{}, err
		}
		return workflows.Interpreter(ctx, in)
	}, workflow.RegisterOptions{Name: "Interpreter"})
	err := r.ReplayWorkflowHistoryFromJSONFile(nopLogger{}, historyFile)
	if err == nil || !strings.Contains(err.Error(), "TMPRL1100") { // the SDK's non-determinism error
		t.Fatalf("a changed interpreter replayed the history: %v", err)
	}
}
