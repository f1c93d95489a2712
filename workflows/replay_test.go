package workflows_test

import (
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

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
