package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/wire"
)

// Interpreter runs one execution of a workflow definition: it loads the pinned version, walks
// its steps (in order, or as a DAG where depends_on says so), runs activity steps as activities
// with their retry policies and carries out delays, signal waits, branches, parallel branches
// and sub-workflows itself. Every status change is written to the database by activities.
func Interpreter(ctx workflow.Context, in engine.RunInput) (engine.RunResult, error) {
	info := workflow.GetInfo(ctx)
	r := &run{depth: in.Depth, cause: in.Cause, states: map[string]*engine.StepState{}, outputs: map[string]any{}}
	r.status = wire.ExecutionPending
	if err := workflow.SetQueryHandler(ctx, engine.StateQuery, r.state); err != nil {
		return engine.RunResult{}, err
	}
	lctx := localOptions(ctx)
	var start activities.StartRunResult
	err := workflow.ExecuteLocalActivity(lctx, r.a.StartRun, activities.StartRunInput{
		ExecutionID: in.ExecutionID, DefinitionID: in.DefinitionID, Version: in.Version,
		Priority: in.Priority, Input: in.Input, TriggeredBy: in.TriggeredBy,
		ParentExecutionID: in.ParentExecutionID,
		WorkflowID:        info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID,
	}).Get(ctx, &start)
	if err != nil {
		return engine.RunResult{ExecutionID: in.ExecutionID, Status: wire.ExecutionFailed}, err
	}
	r.meta, r.def = start.Meta, start.Definition
	// Version 1 runs data_transform steps and the outcome event as local activities (no
	// activity task round trip for work that is quick and only touches the database); runs
	// started before keep regular activities.
	r.localFastPath = workflow.GetVersion(ctx, "local-fast-path", workflow.DefaultVersion, 1) >= 1
	walkSteps(r.def.Steps, func(s definition.Step) {
		r.order = append(r.order, s.ID)
		r.states[s.ID] = &engine.StepState{ID: s.ID, Type: s.Type, Status: wire.StepPending}
	})
	r.status = wire.ExecutionRunning
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		engine.SearchDefinitionID.ValueSet(r.meta.DefinitionID),
		engine.SearchDefinitionVersion.ValueSet(int64(r.meta.Version)),
		engine.SearchPriority.ValueSet(r.meta.Priority),
	); err != nil {
		return engine.RunResult{}, err
	}

	// Version 1 enforces the definition's timeout itself, so that a run that takes too long
	// is stopped and recorded as timed_out (Temporal's execution timeout, set a little
	// longer, would end it without a word to the database).
	runCtx, stopRun := workflow.WithCancel(ctx)
	defer stopRun()
	timedOut := false
	timeout := r.def.ExecutionTimeout()
	stopTimer := func() {}
	if workflow.GetVersion(ctx, "execution-timeout", workflow.DefaultVersion, 1) >= 1 {
		var timerCtx workflow.Context
		timerCtx, stopTimer = workflow.WithCancel(ctx)
		workflow.Go(timerCtx, func(gctx workflow.Context) {
			if workflow.NewTimer(gctx, timeout).Get(gctx, nil) == nil {
				timedOut = true
				stopRun()
			}
		})
	}

	runErr := r.runList(runCtx, r.def.Steps)
	stopTimer()

	result := engine.RunResult{ExecutionID: r.meta.ExecutionID, Output: r.outputs}
	finish := activities.FinishRunInput{ExecutionID: r.meta.ExecutionID, Output: r.outputs}
	eventType := "workflow.completed"
	switch {
	case timedOut:
		finish.Status, eventType = wire.ExecutionTimedOut, "workflow.failed"
		finish.Error = fmt.Sprintf("the execution did not finish within its timeout of %s", timeout)
		runErr = errors.New(finish.Error)
	case runErr == nil:
		finish.Status = wire.ExecutionCompleted
	case temporal.IsCanceledError(runErr) || errors.Is(ctx.Err(), workflow.ErrCanceled):
		finish.Status, finish.Error, eventType = wire.ExecutionCancelled, "cancelled", "workflow.cancelled"
	default:
		finish.Status, finish.Error, eventType = wire.ExecutionFailed, runErr.Error(), "workflow.failed"
	}
	r.status, result.Status = finish.Status, finish.Status
	// Record the outcome even when the run was cancelled.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := workflow.ExecuteLocalActivity(localOptions(dctx), r.a.FinishRun, finish).Get(dctx, nil); err != nil {
		return result, err
	}
	r.publish(dctx, eventType, finish)
	if size := len(encodeJSON(result.Output)); size > MaxResultOutput {
		// The database has every output; the workflow result must stay under Temporal's
		// payload limit.
		result.Output = map[string]any{"truncated": true, "bytes": size}
	}
	if runErr != nil {
		if finish.Status == wire.ExecutionCancelled {
			return result, temporal.NewCanceledError()
		}
		return result, temporal.NewNonRetryableApplicationError(runErr.Error(), "ExecutionFailed", nil)
	}
	return result, nil
}

// MaxResultOutput bounds the step outputs returned as the workflow's result (and so as a
// sub_workflow step's output); larger ones are read from the execution record.
const MaxResultOutput = 512 << 10

// run is one interpreter run's state.
type run struct {
	a     *activities.WorkflowEngine // nil: names activities only
	meta  activities.RunMeta
	def   definition.Definition
	depth int
	cause *engine.EventCause
	// localFastPath: see the "local-fast-path" version in Interpreter.
	localFastPath bool
	status        string
	order         []string
	states        map[string]*engine.StepState
	outputs       map[string]any
}

func (r *run) state() (engine.RunState, error) {
	out := engine.RunState{ExecutionID: r.meta.ExecutionID, DefinitionID: r.meta.DefinitionID, Version: r.meta.Version,
		Status: r.status, Steps: make([]engine.StepState, 0, len(r.order))}
	for _, id := range r.order {
		out.Steps = append(out.Steps, *r.states[id])
	}
	return out, nil
}

func (r *run) mark(ctx workflow.Context, id, status string) *engine.StepState {
	st := r.states[id]
	now := workflow.Now(ctx).UTC()
	st.Status = status
	switch status {
	case wire.StepRunning, wire.StepWaiting:
		if st.StartedAt == nil {
			st.StartedAt = &now
		}
	default:
		st.FinishedAt = &now
	}
	return st
}

// stepDone reports the end of one step of a list.
type stepDone struct {
	index int
	err   error
}

// runList runs a list of sibling steps: each starts once the steps it depends on have ended
// (see definition.Deps), so independent steps run at the same time. The first step that fails
// with on_error fail cancels the others and fails the list.
func (r *run) runList(ctx workflow.Context, steps []definition.Step) error {
	deps := definition.Deps(steps)
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		index[s.ID] = i
	}
	started := make([]bool, len(steps))
	done := make([]bool, len(steps))
	results := workflow.NewBufferedChannel(ctx, len(steps))
	cctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	running := 0
	var firstErr error
	for {
		if firstErr == nil && ctx.Err() == nil {
			for i := range steps {
				if started[i] || !ready(deps[i], index, done) {
					continue
				}
				started[i] = true
				running++
				i := i
				workflow.Go(cctx, func(gctx workflow.Context) {
					results.Send(gctx, stepDone{index: i, err: r.runStep(gctx, steps[i])})
				})
			}
		}
		if running == 0 {
			break
		}
		var d stepDone
		results.Receive(ctx, &d)
		running--
		done[d.index] = true
		if d.err != nil && firstErr == nil {
			firstErr = d.err
			cancel()
		}
	}
	if firstErr == nil && ctx.Err() != nil {
		return temporal.NewCanceledError()
	}
	return firstErr
}

func ready(deps []string, index map[string]int, done []bool) bool {
	for _, d := range deps {
		if i, ok := index[d]; ok && !done[i] {
			return false
		}
	}
	return true
}

// stepError is a step that failed the execution.
type stepError struct {
	id  string
	msg string
}

func (e *stepError) Error() string { return fmt.Sprintf("step %s failed: %s", e.id, e.msg) }

// runStep runs one step and records how it ended.
func (r *run) runStep(ctx workflow.Context, s definition.Step) error {
	if definition.IsActivityStep(s.Type) {
		return r.runActivityStep(ctx, s)
	}
	status := wire.StepRunning
	if s.Type == definition.TypeDelay || s.Type == definition.TypeWaitForSignal {
		status = wire.StepWaiting
	}
	var prep activities.StepPrepareResult
	err := workflow.ExecuteLocalActivity(localOptions(ctx), r.a.PrepareStep, activities.StepPrepareInput{
		Meta: r.meta, Step: s, Status: status,
	}).Get(ctx, &prep)
	if err != nil {
		return r.failed(ctx, s, err)
	}
	if prep.Skip {
		r.mark(ctx, s.ID, wire.StepSkipped)
		return nil
	}
	r.mark(ctx, s.ID, status)
	var out any
	switch s.Type {
	case definition.TypeDelay:
		out, err = r.delay(ctx, s, prep.Config)
	case definition.TypeWaitForSignal:
		out, err = r.waitForSignal(ctx, s, prep.Config)
	case definition.TypeBranch:
		out, err = r.branch(ctx, s, prep.Case)
	case definition.TypeParallel:
		out, err = r.parallel(ctx, s)
	case definition.TypeSubWorkflow:
		out, err = r.subWorkflow(ctx, s, prep.Config)
	default:
		err = temporal.NewNonRetryableApplicationError("unknown step type "+s.Type, "StepFailed", nil)
	}
	if err != nil {
		return r.failed(ctx, s, err)
	}
	return r.completed(ctx, s, out, true)
}

func (r *run) runActivityStep(ctx workflow.Context, s definition.Step) error {
	p := s.Policy()
	initial, maximum := p.Intervals()
	retry := &temporal.RetryPolicy{
		InitialInterval: initial, BackoffCoefficient: p.BackoffCoefficient,
		MaximumInterval: maximum, MaximumAttempts: int32(p.MaxAttempts),
	}
	r.mark(ctx, s.ID, wire.StepRunning)
	// The cause travels with the step (omitted when there is none, so the input of runs without
	// one is unchanged): a notification step's events continue the execution's causation chain.
	in := activities.StepInput{Meta: r.meta, Step: s, Cause: r.cause}
	var res activities.StepResult
	var err error
	if r.localFastPath && s.Type == definition.TypeDataTransform {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: s.StepTimeout(), RetryPolicy: retry,
		})
		err = workflow.ExecuteLocalActivity(lctx, r.a.RunStep, in).Get(ctx, &res)
	} else {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			ActivityID:          s.ID,
			Summary:             s.Type + " " + s.ID,
			StartToCloseTimeout: s.StepTimeout(),
			// RunStep heartbeats every activities.HeartbeatEvery: a step whose worker died is
			// retried elsewhere after this, not after its whole timeout.
			HeartbeatTimeout: 5 * activities.HeartbeatEvery,
			RetryPolicy:      retry,
		})
		err = workflow.ExecuteActivity(actx, r.a.RunStep, in).Get(ctx, &res)
	}
	if err != nil {
		return r.failed(ctx, s, err)
	}
	if res.Status == wire.StepSkipped {
		r.mark(ctx, s.ID, wire.StepSkipped)
		return nil
	}
	// RunStep recorded the output already.
	return r.completed(ctx, s, res.Output, false)
}

func (r *run) completed(ctx workflow.Context, s definition.Step, out any, record bool) error {
	if record {
		err := workflow.ExecuteLocalActivity(localOptions(ctx), r.a.CompleteStep, activities.CompleteStepInput{
			ExecutionID: r.meta.ExecutionID, StepID: s.ID, Type: s.Type, Status: wire.StepCompleted, Output: out,
		}).Get(ctx, nil)
		if err != nil {
			return r.failed(ctx, s, err)
		}
	}
	// The live state leaves outputs out (the database has them; queries stay small).
	r.mark(ctx, s.ID, wire.StepCompleted)
	r.outputs[s.ID] = out
	return nil
}

// failed records a step that ended in error or was cancelled. With on_error continue the
// failure is recorded and the run goes on.
func (r *run) failed(ctx workflow.Context, s definition.Step, err error) error {
	status, msg := wire.StepFailed, describe(err)
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		status, msg = wire.StepCancelled, "cancelled"
	}
	st := r.mark(ctx, s.ID, status)
	st.Error = msg
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if rerr := workflow.ExecuteLocalActivity(localOptions(dctx), r.a.CompleteStep, activities.CompleteStepInput{
		ExecutionID: r.meta.ExecutionID, StepID: s.ID, Type: s.Type, Status: status, Error: msg,
	}).Get(dctx, nil); rerr != nil {
		return rerr
	}
	if status == wire.StepCancelled {
		return temporal.NewCanceledError()
	}
	if s.ContinueOnError() {
		return nil
	}
	return &stepError{id: s.ID, msg: msg}
}

// describe turns a step error into the message users read in the execution record.
func describe(err error) string {
	var (
		timeout *temporal.TimeoutError
		app     *temporal.ApplicationError
		step    *stepError
	)
	switch {
	case errors.As(err, &step):
		return step.Error()
	case errors.As(err, &timeout):
		return fmt.Sprintf("timed out (%s)", timeoutName(timeout))
	case errors.As(err, &app):
		return app.Message()
	}
	return err.Error()
}

func timeoutName(t *temporal.TimeoutError) string {
	switch t.TimeoutType().String() {
	case "StartToClose":
		return "the step's timeout passed"
	case "ScheduleToClose":
		return "the step's total time limit passed"
	}
	return t.TimeoutType().String()
}

// publish emits the execution's outcome as a domain event; its id is derived from the
// execution, so a retried activity stores it once.
func (r *run) publish(ctx workflow.Context, eventType string, f activities.FinishRunInput) {
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 20}
	data := map[string]any{
		"execution_id": f.ExecutionID, "workflow_id": r.meta.DefinitionID, "version": r.meta.Version,
		"status": f.Status, "priority": r.meta.Priority, "output": f.Output,
		"temporal_workflow_id": workflow.GetInfo(ctx).WorkflowExecution.ID,
	}
	if f.Error != "" {
		data["error"] = f.Error
	}
	var ev *activities.Events
	in := activities.ExecutionEvent("wfexec-"+f.ExecutionID+"-"+f.Status, eventType, r.meta.DefinitionID, data, r.cause)
	in.Event.OccurredAt = workflow.Now(ctx).UTC()
	var err error
	if r.localFastPath {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 30 * time.Second, ScheduleToCloseTimeout: 30 * time.Minute, RetryPolicy: retry,
		})
		err = workflow.ExecuteLocalActivity(lctx, ev.Publish, in).Get(ctx, nil)
	} else {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: retry})
		err = workflow.ExecuteActivity(actx, ev.Publish, in).Get(ctx, nil)
	}
	if err != nil {
		workflow.GetLogger(ctx).Warn("publish execution event", "error", err)
	}
}

// localOptions are the options of the interpreter's bookkeeping (database) activities: quick,
// retried until the database answers.
func localOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: 15 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
		},
	})
}

// The helpers below use encoding/json, which is deterministic; workflowcheck flags it for its
// use of reflect, hence the ignore directives.

// decodeJSON reads a step config.
//
//workflowcheck:ignore
func decodeJSON(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	return json.Unmarshal(raw, v)
}

// encodeJSON encodes the result output to measure it.
//
//workflowcheck:ignore
func encodeJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// walkSteps is definition.Walk (which decodes nested step lists).
//
//workflowcheck:ignore
func walkSteps(steps []definition.Step, fn func(definition.Step)) { definition.Walk(steps, fn) }
