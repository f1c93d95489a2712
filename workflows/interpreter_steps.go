package workflows

import (
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/wire"
)

// The steps the interpreter carries out itself: durable timers, signal waits, branches,
// parallel branches and child workflows.

func (r *run) delay(ctx workflow.Context, s definition.Step, raw json.RawMessage) (any, error) {
	var c definition.DelayConfig
	if err := decodeJSON(raw, &c); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("config: "+err.Error(), "StepFailed", nil)
	}
	now := workflow.Now(ctx)
	var d time.Duration
	if c.Until != "" {
		until, err := time.Parse(time.RFC3339, c.Until)
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("until %q is not an RFC 3339 time", c.Until), "StepFailed", nil)
		}
		d = until.Sub(now)
	} else {
		var err error
		if d, err = definition.ParseDuration(c.Duration); err != nil {
			return nil, temporal.NewNonRetryableApplicationError("duration: "+err.Error(), "StepFailed", nil)
		}
	}
	wake := now.Add(max(d, 0)).UTC()
	r.states[s.ID].WakeAt = &wake
	if d > 0 {
		if err := workflow.Sleep(ctx, d); err != nil {
			return nil, err
		}
	}
	return map[string]any{"waited_ms": max(d, 0).Milliseconds(), "until": wake.Format(time.RFC3339)}, nil
}

func (r *run) waitForSignal(ctx workflow.Context, s definition.Step, raw json.RawMessage) (any, error) {
	var c definition.WaitForSignalConfig
	if err := decodeJSON(raw, &c); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("config: "+err.Error(), "StepFailed", nil)
	}
	timeout, _ := definition.ParseDuration(c.Timeout)
	st := r.states[s.ID]
	st.WaitingFor = c.Signal
	ch := workflow.GetSignalChannel(ctx, c.Signal)
	sel := workflow.NewSelector(ctx)
	var payload any
	received, timedOut := false, false
	sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, &payload)
		received = true
	})
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	if timeout > 0 {
		wake := workflow.Now(ctx).Add(timeout).UTC()
		st.WakeAt = &wake
		tctx, cancelTimer := workflow.WithCancel(ctx)
		defer cancelTimer()
		sel.AddFuture(workflow.NewTimer(tctx, timeout), func(f workflow.Future) {
			if f.Get(tctx, nil) == nil {
				timedOut = true
			}
		})
	}
	sel.Select(ctx)
	st.WaitingFor = ""
	switch {
	case received:
		return payload, nil
	case timedOut && c.OnTimeout == definition.OnErrorContinue:
		return map[string]any{"timed_out": true}, nil
	case timedOut:
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("no %q signal within %s", c.Signal, timeout), "SignalTimeout", nil)
	}
	return nil, temporal.NewCanceledError()
}

func (r *run) branch(ctx workflow.Context, s definition.Step, chosen int) (any, error) {
	var c definition.BranchConfig
	if err := decodeJSON(s.Config, &c); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("config: "+err.Error(), "StepFailed", nil)
	}
	out := map[string]any{"case": "default"}
	steps := c.Default
	if chosen >= 0 && chosen < len(c.Cases) {
		steps = c.Cases[chosen].Steps
		out["case"] = chosen
		if c.Cases[chosen].Name != "" {
			out["name"] = c.Cases[chosen].Name
		}
	}
	r.skipUntaken(ctx, c, chosen)
	if len(steps) == 0 {
		return out, nil
	}
	return out, r.runList(ctx, steps)
}

// skipUntaken marks the steps of the paths a branch did not take as skipped in the live view.
func (r *run) skipUntaken(ctx workflow.Context, c definition.BranchConfig, chosen int) {
	for i, cs := range c.Cases {
		if i != chosen {
			walkSteps(cs.Steps, func(s definition.Step) { r.mark(ctx, s.ID, wire.StepSkipped) })
		}
	}
	if chosen >= 0 {
		walkSteps(c.Default, func(s definition.Step) { r.mark(ctx, s.ID, wire.StepSkipped) })
	}
}

func (r *run) parallel(ctx workflow.Context, s definition.Step) (any, error) {
	var c definition.ParallelConfig
	if err := decodeJSON(s.Config, &c); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("config: "+err.Error(), "StepFailed", nil)
	}
	cctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	results := workflow.NewBufferedChannel(ctx, len(c.Branches))
	for i, b := range c.Branches {
		i, steps := i, b.Steps
		workflow.Go(cctx, func(gctx workflow.Context) {
			results.Send(gctx, stepDone{index: i, err: r.runList(gctx, steps)})
		})
	}
	var firstErr error
	for range c.Branches {
		var d stepDone
		results.Receive(ctx, &d)
		if d.err != nil && firstErr == nil {
			firstErr = d.err
			cancel()
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return map[string]any{"branches": len(c.Branches)}, nil
}

func (r *run) subWorkflow(ctx workflow.Context, s definition.Step, raw json.RawMessage) (any, error) {
	var c definition.SubWorkflowConfig
	if err := decodeJSON(raw, &c); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("config: "+err.Error(), "StepFailed", nil)
	}
	if r.depth+1 > definition.MaxSubWorkflowDepth {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("sub-workflows nest more than %d levels deep", definition.MaxSubWorkflowDepth), "StepFailed", nil)
	}
	input, ok := c.Input.(map[string]any)
	if c.Input != nil && !ok {
		return nil, temporal.NewNonRetryableApplicationError("input must be an object", "StepFailed", nil)
	}
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:    workflow.GetInfo(ctx).WorkflowExecution.ID + "." + s.ID,
		TaskQueue:     TaskQueue,
		StaticSummary: "sub_workflow " + s.ID,
	}
	if s.Timeout != "" {
		opts.WorkflowExecutionTimeout = s.StepTimeout()
	} else {
		opts.WorkflowExecutionTimeout = definition.MaxExecutionTimeout + definition.TemporalTimeoutMargin
	}
	if s.Retry != nil {
		p := s.Policy()
		initial, maximum := p.Intervals()
		opts.RetryPolicy = &temporal.RetryPolicy{InitialInterval: initial, BackoffCoefficient: p.BackoffCoefficient,
			MaximumInterval: maximum, MaximumAttempts: int32(p.MaxAttempts)}
	}
	cctx := workflow.WithChildOptions(ctx, opts)
	var res engine.RunResult
	err := workflow.ExecuteChildWorkflow(cctx, Interpreter, engine.RunInput{
		DefinitionID: c.WorkflowID, Priority: r.meta.Priority, Input: input, TriggeredBy: "sub_workflow",
		ParentExecutionID: r.meta.ExecutionID, Depth: r.depth + 1, Cause: r.cause,
	}).Get(ctx, &res)
	if err != nil {
		return nil, err
	}
	return map[string]any{"execution_id": res.ExecutionID, "status": res.Status, "output": res.Output}, nil
}
