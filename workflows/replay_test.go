package workflows_test

import (
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/workflows"
)

// historyFile is a real interpreter history recorded on the embedded server by
// e2e.TestWorkflowWorkerProcess (UPDATE_REPLAY_HISTORY=1): http_request and data_transform
// steps, a skipped condition, a parallel step with a delay, a branch, a signal wait, and a
// worker killed in the middle. Changing the interpreter in a way that would break executions
// running when it is deployed fails this test; guard such changes with workflow.GetVersion.
const historyFile = "testdata/interpreter_history.json"

func TestInterpreterReplaysRecordedHistory(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(workflows.Interpreter)
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, historyFile); err != nil {
		t.Fatalf("the interpreter no longer replays %s: %v", historyFile, err)
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
