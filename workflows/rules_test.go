package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/rules"
)

// evaluatorEnv is a test environment with the evaluator registered under its real name and the
// rules activities mocked.
func evaluatorEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(RuleEvaluator, workflow.RegisterOptions{Name: rules.EvaluatorWorkflow})
	env.RegisterActivity(&activities.Rules{})
	env.SetTestTimeout(30 * time.Second)
	return env
}

func signalEvents(env *testsuite.TestWorkflowEnvironment, at time.Duration, ids ...string) {
	env.RegisterDelayedCallback(func() {
		for _, id := range ids {
			env.SignalWorkflow(rules.EventSignal, rules.EventBatch{Events: []rules.EventRef{{ID: id, Type: "t"}}})
		}
	}, at)
}

// calls records the order activities ran in.
type calls struct {
	mu   sync.Mutex
	list []string
}

func (c *calls) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, s)
}

func (c *calls) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.list...)
}

func TestEvaluatorRunsFiredRulesInPriorityOrder(t *testing.T) {
	env := evaluatorEnv(t)
	var a *activities.Rules
	var batches [][]string
	env.OnActivity(a.Evaluate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.EvaluateInput) (activities.EvaluateResult, error) {
			var ids []string
			var res activities.EvaluateResult
			for _, e := range in.Events {
				ids = append(ids, e.ID)
				res.Runs = append(res.Runs, activities.EventRun{EventID: e.ID, Executions: []activities.ExecutionRun{
					{ExecutionID: e.ID + "/high", Actions: []activities.ActionRef{{Index: 0}, {Index: 1}}},
					{ExecutionID: e.ID + "/low", Actions: []activities.ActionRef{{Index: 0}}},
				}})
			}
			batches = append(batches, ids)
			return res, nil
		})
	ran := &calls{}
	env.OnActivity(a.RunAction, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ActionInput) (activities.ActionResult, error) {
			ran.add(in.ExecutionID + "#" + string(rune('0'+in.Index)))
			return activities.ActionResult{Status: "succeeded"}, nil
		})
	signalEvents(env, time.Minute, "e4")
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	// e1-e3 wait already (carried over from a previous run): they are decided as one batch.
	env.ExecuteWorkflow(rules.EvaluatorWorkflow, rules.EvaluatorInput{Partition: 3,
		Pending: []rules.EventRef{{ID: "e1"}, {ID: "e2"}, {ID: "e3"}}})

	if len(batches) != 2 || len(batches[0]) != 3 || batches[1][0] != "e4" {
		t.Errorf("batches %v: the three waiting events must be decided together", batches)
	}
	order := map[string][]string{}
	for _, c := range ran.get() {
		order[c[:2]] = append(order[c[:2]], c[3:])
	}
	for _, e := range []string{"e1", "e2", "e3", "e4"} {
		got := order[e]
		if len(got) != 3 || got[0] != "high#0" || got[1] != "high#1" || got[2] != "low#0" {
			t.Errorf("%s ran %v, want high#0 high#1 low#0", e, got)
		}
	}
}

func TestEvaluatorStopsARuleAtAFailedAction(t *testing.T) {
	env := evaluatorEnv(t)
	var a *activities.Rules
	env.OnActivity(a.Evaluate, mock.Anything, mock.Anything).Return(activities.EvaluateResult{Runs: []activities.EventRun{{
		EventID: "e1", Executions: []activities.ExecutionRun{
			{ExecutionID: "x1", Actions: []activities.ActionRef{{Index: 0}, {Index: 1}}},
			{ExecutionID: "x2", Actions: []activities.ActionRef{{Index: 0, ContinueOnError: true}, {Index: 1}}},
		}}}}, nil).Once()
	ran := &calls{}
	env.OnActivity(a.RunAction, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ActionInput) (activities.ActionResult, error) {
			ran.add(in.ExecutionID + "#" + string(rune('0'+in.Index)))
			if in.Index == 0 {
				return activities.ActionResult{}, temporal.NewNonRetryableApplicationError("unknown template", "ActionFailed", nil)
			}
			return activities.ActionResult{Status: "succeeded"}, nil
		})
	var finished []activities.FinishInput
	env.OnActivity(a.FinishExecution, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishInput) error {
			finished = append(finished, in)
			return nil
		})
	signalEvents(env, time.Second, "e1")
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	env.ExecuteWorkflow(rules.EvaluatorWorkflow, rules.EvaluatorInput{})

	if got := ran.get(); len(got) != 3 || got[0] != "x1#0" || got[1] != "x2#0" || got[2] != "x2#1" {
		t.Errorf("ran %v: x1 stops at its failed action, x2 continues (continue_on_error)", got)
	}
	if len(finished) != 2 || finished[0].ExecutionID != "x1" || len(finished[0].Failed) != 1 ||
		finished[0].Error != "unknown template" || finished[1].ExecutionID != "x2" {
		t.Errorf("finished %+v", finished)
	}
}

func TestEvaluatorContinuesAsNewWithoutLosingEvents(t *testing.T) {
	env := evaluatorEnv(t)
	var a *activities.Rules
	var decided []string
	env.OnActivity(a.Evaluate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.EvaluateInput) (activities.EvaluateResult, error) {
			for _, e := range in.Events {
				decided = append(decided, e.ID)
			}
			return activities.EvaluateResult{Runs: []activities.EventRun{{EventID: in.Events[0].ID,
				Executions: []activities.ExecutionRun{{ExecutionID: "x-" + in.Events[0].ID, Actions: []activities.ActionRef{{Index: 0}}}}}}}, nil
		})
	env.OnActivity(a.RunAction, mock.Anything, mock.Anything).Return(activities.ActionResult{Status: "succeeded"}, nil)
	signalEvents(env, time.Second, "e1", "e2", "e3", "e4", "e5")
	env.ExecuteWorkflow(rules.EvaluatorWorkflow, rules.EvaluatorInput{
		Partition: 2, Settings: rules.EvaluatorSettings{MaxBatch: 2, MaxEventsPerRun: 3},
		Pending: []rules.EventRef{{ID: "e0", Type: "t"}},
	})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("the evaluator did not continue as new: %v", err)
	}
	var next rules.EvaluatorInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if can.WorkflowType.Name != rules.EvaluatorWorkflow || next.Partition != 2 || next.Settings.MaxBatch != 2 {
		t.Errorf("next run %s %+v", can.WorkflowType.Name, next)
	}
	// Every event is either decided by this run or handed to the next one, once.
	seen := map[string]int{}
	for _, id := range decided {
		seen[id]++
	}
	for _, e := range next.Pending {
		seen[e.ID]++
	}
	for _, id := range []string{"e0", "e1", "e2", "e3", "e4", "e5"} {
		if seen[id] != 1 {
			t.Errorf("%s seen %d times (decided %v, carried %v)", id, seen[id], decided, next.Pending)
		}
	}
	if len(next.Pending) == 0 {
		t.Error("nothing was carried over; the test does not exercise the drain")
	}
}

func TestEvaluatorDoesNotRunAnExecutionTwice(t *testing.T) {
	env := evaluatorEnv(t)
	var a *activities.Rules
	// The same event is signalled twice while its action is still running: the second decision
	// resumes the same execution, which must not start a second run.
	env.OnActivity(a.Evaluate, mock.Anything, mock.Anything).Return(activities.EvaluateResult{Runs: []activities.EventRun{{
		EventID: "e1", Executions: []activities.ExecutionRun{{ExecutionID: "x1", Actions: []activities.ActionRef{{Index: 0}}}}}}}, nil)
	runs := 0
	env.OnActivity(a.RunAction, mock.Anything, mock.Anything).After(10 * time.Minute).Return(
		func(context.Context, activities.ActionInput) (activities.ActionResult, error) {
			runs++
			return activities.ActionResult{Status: "succeeded"}, nil
		})
	signalEvents(env, time.Second, "e1")
	signalEvents(env, 2*time.Second, "e1")
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	env.ExecuteWorkflow(rules.EvaluatorWorkflow, rules.EvaluatorInput{})
	if runs != 1 {
		t.Errorf("the action ran %d times", runs)
	}
}

func TestRuleScheduleFire(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(RuleScheduleFire, workflow.RegisterOptions{Name: rules.ScheduleFireWorkflow})
	env.RegisterActivity(&activities.Rules{})
	var a *activities.Rules
	var got activities.FireInput
	env.OnActivity(a.FireSchedule, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FireInput) (string, error) {
			got = in
			return "evt", nil
		})
	env.SetStartWorkflowOptions(startOptions("automation-rule-fire-r1-2026-01-01T09:00:00Z"))
	env.ExecuteWorkflow(rules.ScheduleFireWorkflow, rules.ScheduleFireInput{RuleID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got.RuleID != "r1" || got.FiringID != "automation-rule-fire-r1-2026-01-01T09:00:00Z" || got.ScheduledAt.IsZero() {
		t.Errorf("fired %+v", got)
	}
}

func TestPurgeExpiredEvents(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(PurgeExpiredEvents, workflow.RegisterOptions{Name: rules.RetentionWorkflow})
	env.RegisterActivity(&activities.Rules{})
	var a *activities.Rules
	env.OnActivity(a.PurgeExpired, mock.Anything).Return(1234, nil)
	env.ExecuteWorkflow(rules.RetentionWorkflow)
	var n int
	if err := env.GetWorkflowResult(&n); err != nil || n != 1234 {
		t.Errorf("purged %d: %v", n, err)
	}
}

func startOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: id}
}
