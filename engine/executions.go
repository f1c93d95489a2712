package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
	"github.com/pyairtable/automation-domain/wire"
)

// ExecuteRequest asks for one execution of a definition.
type ExecuteRequest struct {
	// DefinitionID is the workflow definition to run.
	DefinitionID string
	// Input is the execution's input_data (templates read it as {{ input.x }}).
	Input map[string]any
	// Priority is low, normal (default), high or critical: it orders the execution's tasks
	// when workers are backed up.
	Priority string
	// IdempotencyKey, when set, makes the request safe to repeat: the same key on the same
	// definition returns the first execution and starts nothing.
	IdempotencyKey string
	// Version pins a definition version; 0 runs the current one.
	Version int
	// TriggeredBy says what asked for it: manual (default), api, event, rule, retry, …
	TriggeredBy string
	// RetryOf is the execution this one retries.
	RetryOf string
	// Cause is the event whose handling asks for this execution (an automation rule's
	// trigger); the execution's workflow.* event continues its causation chain.
	Cause *store.Event
}

// Execution is an execution as Execute returns it.
type Execution struct {
	store.Execution
	// Replayed is true when an earlier request with the same idempotency key started it.
	Replayed bool `json:"-"`
}

// MaxIdempotencyKey bounds the Idempotency-Key header.
const MaxIdempotencyKey = 255

// TemporalID is the Temporal workflow id of an execution started through Execute.
func TemporalID(executionID string) string { return "workflow-execution-" + executionID }

// Execute starts an execution of a definition and returns once Temporal has accepted it (the
// execution is durable from then on). A disabled definition is refused (*Error), a deleted or
// unknown one is store.ErrNotFound, a bad request validation.Problems.
func (s *Service) Execute(ctx context.Context, req ExecuteRequest) (Execution, error) {
	var problems validation.Problems
	if req.Priority == "" {
		req.Priority = definition.PriorityNormal
	}
	if !slices.Contains(definition.Priorities, req.Priority) {
		problems.Add("priority", "must be one of %s, got %q", strings.Join(definition.Priorities, ", "), req.Priority)
	}
	if len(req.IdempotencyKey) > MaxIdempotencyKey {
		problems.Add("Idempotency-Key", "must be at most %d characters", MaxIdempotencyKey)
	}
	if err := problems.Err(); err != nil {
		return Execution{}, err
	}
	if req.TriggeredBy == "" {
		req.TriggeredBy = "manual"
	}
	w, err := s.store.GetWorkflow(ctx, req.DefinitionID)
	if err != nil {
		return Execution{}, err
	}
	if !w.Enabled {
		return Execution{}, conflict("workflow %s is disabled; enable it to execute it", w.ID)
	}
	version := req.Version
	if version == 0 {
		version = w.Version
	}
	v, err := s.store.GetWorkflowVersion(ctx, w.ID, version)
	if err != nil {
		return Execution{}, err
	}
	var def definition.Definition
	if err := json.Unmarshal(v.Definition, &def); err != nil {
		return Execution{}, fmt.Errorf("workflow %s version %d: %w", w.ID, version, err)
	}

	var e store.Execution
	replayed := false
	if req.IdempotencyKey != "" {
		prior, err := s.store.FindExecutionByKey(ctx, w.ID, req.IdempotencyKey)
		switch {
		case err == nil:
			e, replayed = prior, true
		case !errors.Is(err, store.ErrNotFound):
			return Execution{}, err
		}
	}
	if !replayed {
		input := req.Input
		if input == nil {
			input = map[string]any{}
		}
		now := s.now()
		e = store.Execution{
			ID: store.NewID(), WorkflowID: w.ID, Version: version, Status: store.ExecutionPending,
			Priority: req.Priority, TriggeredBy: req.TriggeredBy, Input: store.MustJSON(input),
			RetryOf: req.RetryOf, CreatedAt: now, UpdatedAt: now,
		}
		e.TemporalWorkflowID = TemporalID(e.ID)
		if req.IdempotencyKey != "" {
			key := req.IdempotencyKey
			e.IdempotencyKey = &key
		}
		if err := s.store.InsertExecution(ctx, &e); err != nil {
			if errors.Is(err, store.ErrConflict) && req.IdempotencyKey != "" {
				// A concurrent request with the same key won the insert.
				return s.Execute(ctx, req)
			}
			return Execution{}, err
		}
	}
	if e.TemporalRunID != "" {
		return Execution{Execution: e, Replayed: replayed}, nil
	}
	// Start (or, for a replayed request whose first start failed, start again): the workflow id
	// is the execution's, so a repeated start finds the first run instead of making another.
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       e.TemporalWorkflowID,
		TaskQueue:                wire.TaskQueue,
		WorkflowExecutionTimeout: def.ExecutionTimeout() + definition.TemporalTimeoutMargin,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Priority:                 temporal.Priority{PriorityKey: definition.PriorityKey(e.Priority)},
		StaticSummary:            fmt.Sprintf("%s (v%d)", def.Name, e.Version),
	}, InterpreterWorkflow, RunInput{
		ExecutionID: e.ID, DefinitionID: e.WorkflowID, Version: e.Version, Priority: e.Priority,
		TriggeredBy: e.TriggeredBy, Cause: eventCause(req.Cause),
	})
	runID := ""
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case err == nil:
		runID = run.GetRunID()
	case errors.As(err, &started):
		runID = started.RunId
	default:
		// Temporal refused the start or did not answer in time: the client is told to retry
		// (503), and the request leaves nothing behind. A start that went through all the same
		// finds no execution and does nothing (StartRun); one already under way kept its row,
		// and the request is accepted after all.
		deleted, derr := s.store.DeleteUnstartedExecution(context.WithoutCancel(ctx), e.ID)
		if derr == nil && !deleted {
			if cur, gerr := s.store.GetExecution(context.WithoutCancel(ctx), e.ID); gerr == nil && cur.TemporalRunID != "" {
				return Execution{Execution: cur, Replayed: replayed}, nil
			}
		}
		if derr != nil {
			s.log.WarnContext(ctx, "remove the execution Temporal did not start", "execution_id", e.ID, "error", derr)
		}
		return Execution{}, fmt.Errorf("start execution %s: %w", e.ID, err)
	}
	if err := s.store.SetExecutionRun(ctx, e.ID, runID, s.now()); err != nil {
		// The run is started and will record itself; report the execution anyway.
		s.log.WarnContext(ctx, "record execution run", "execution_id", e.ID, "error", err)
	}
	e.TemporalRunID = runID
	return Execution{Execution: e, Replayed: replayed}, nil
}

// ListExecutions lists executions, newest first, from the database.
func (s *Service) ListExecutions(ctx context.Context, f store.ExecutionFilter, p store.Page) ([]store.Execution, string, error) {
	return s.store.ListExecutions(ctx, f, p)
}

// StepView is one step of an execution's detail: the step as the interpreter reports it
// (StepState, the one step shape) with the attempts the database recorded.
type StepView struct {
	StepState
	Attempts int `json:"attempts"`
}

// ExecutionDetail is an execution with every step of its definition version.
type ExecutionDetail struct {
	store.Execution
	WorkflowName string     `json:"workflow_name"`
	Steps        []StepView `json:"steps"`
	// Live is true when the step statuses come from the running workflow (a query).
	Live bool `json:"live"`
}

// liveQueryTimeout bounds the query of a running execution; without an answer (no worker
// polling) the detail comes from the database alone.
const liveQueryTimeout = 2 * time.Second

// GetExecution returns an execution with its steps: from the database, merged with the
// interpreter's live state while it runs.
func (s *Service) GetExecution(ctx context.Context, id string) (ExecutionDetail, error) {
	e, err := s.store.GetExecution(ctx, id)
	if err != nil {
		return ExecutionDetail{}, err
	}
	// Query first, read the step records after: every step the live state has seen finish has
	// been recorded by then (activities write before they return).
	var live RunState
	hasLive := false
	if e.Status == store.ExecutionRunning {
		live, hasLive = s.queryState(ctx, e)
	}
	records, err := s.store.ExecutionSteps(ctx, id)
	if err != nil {
		return ExecutionDetail{}, err
	}
	d := ExecutionDetail{Execution: e, Steps: []StepView{}}
	var def definition.Definition
	if v, err := s.store.GetWorkflowVersion(ctx, e.WorkflowID, e.Version); err == nil {
		_ = json.Unmarshal(v.Definition, &def)
		d.WorkflowName = v.Name
	}
	pos := map[string]int{}
	add := func(id, typ string) {
		if _, ok := pos[id]; !ok {
			pos[id] = len(d.Steps)
			d.Steps = append(d.Steps, StepView{StepState: StepState{ID: id, Type: typ, Status: store.StepPending}})
		}
	}
	definition.Walk(def.Steps, func(st definition.Step) { add(st.ID, st.Type) })
	for _, r := range records {
		add(r.StepID, r.Type)
		sv := &d.Steps[pos[r.StepID]]
		sv.Status, sv.Attempts, sv.Error = r.Status, r.Attempts, r.Error
		sv.StartedAt, sv.FinishedAt = r.StartedAt, r.FinishedAt
		if len(r.Output) > 0 && string(r.Output) != "null" {
			var out any
			if json.Unmarshal(r.Output, &out) == nil {
				sv.Output = out
			}
		}
	}
	if hasLive {
		d.Live = true
		for _, ls := range live.Steps {
			i, ok := pos[ls.ID]
			if !ok {
				continue
			}
			sv := &d.Steps[i]
			if isFinal(sv.Status) && sv.FinishedAt != nil {
				continue
			}
			if ls.Status == store.StepPending && sv.Status != store.StepPending {
				continue
			}
			sv.Status = ls.Status
			sv.WaitingFor, sv.WakeAt = ls.WaitingFor, ls.WakeAt
			if sv.StartedAt == nil {
				sv.StartedAt = ls.StartedAt
			}
			if ls.Status != store.StepRunning && ls.Status != store.StepWaiting && sv.FinishedAt == nil {
				sv.FinishedAt = ls.FinishedAt
			}
			if sv.Output == nil {
				sv.Output = ls.Output
			}
			if sv.Error == "" {
				sv.Error = ls.Error
			}
		}
	}
	return d, nil
}

func isFinal(status string) bool {
	switch status {
	case store.StepCompleted, store.StepFailed, store.StepSkipped, store.StepCancelled:
		return true
	}
	return false
}

func (s *Service) queryState(ctx context.Context, e store.Execution) (RunState, bool) {
	qctx, cancel := context.WithTimeout(ctx, liveQueryTimeout)
	defer cancel()
	res, err := s.temporal.QueryWorkflow(qctx, e.TemporalWorkflowID, e.TemporalRunID, StateQuery)
	if err != nil {
		return RunState{}, false
	}
	var st RunState
	if err := res.Get(&st); err != nil {
		return RunState{}, false
	}
	return st, true
}

func (s *Service) runningExecution(ctx context.Context, id, action string) (store.Execution, error) {
	e, err := s.store.GetExecution(ctx, id)
	if err != nil {
		return e, err
	}
	if store.Finished(e.Status) {
		return e, conflict("execution %s is %s; only a running execution can be %s", id, e.Status, action)
	}
	return e, nil
}

// Cancel asks a running execution to stop: the running step is cancelled, the execution is
// recorded as cancelled by the interpreter.
func (s *Service) Cancel(ctx context.Context, id string) (store.Execution, error) {
	e, err := s.runningExecution(ctx, id, "cancelled")
	if err != nil {
		return e, err
	}
	if err := s.temporal.CancelWorkflow(ctx, e.TemporalWorkflowID, ""); err != nil {
		return e, s.temporalError(e, err)
	}
	return e, nil
}

// Terminate stops a running execution at once (no clean-up runs) and records it as terminated.
func (s *Service) Terminate(ctx context.Context, id, reason string) (store.Execution, error) {
	e, err := s.runningExecution(ctx, id, "terminated")
	if err != nil {
		return e, err
	}
	if reason == "" {
		reason = "terminated through the API"
	}
	err = s.temporal.TerminateWorkflow(ctx, e.TemporalWorkflowID, "", reason)
	var notFound *serviceerror.NotFound
	if err != nil && !errors.As(err, &notFound) {
		return e, s.temporalError(e, err)
	}
	if err := s.store.FinishExecution(ctx, e.ID, store.ExecutionTerminated, nil, reason, s.now()); err != nil {
		return e, err
	}
	return s.store.GetExecution(ctx, id)
}

// Signal sends a signal (with payload) to a running execution; a wait_for_signal step waiting
// for that name resumes with the payload as its output. Signals sent before the step waits are
// kept until it does.
func (s *Service) Signal(ctx context.Context, id, name string, payload any) (store.Execution, error) {
	e, err := s.runningExecution(ctx, id, "signalled")
	if err != nil {
		return e, err
	}
	if err := s.temporal.SignalWorkflow(ctx, e.TemporalWorkflowID, "", name, payload); err != nil {
		return e, s.temporalError(e, err)
	}
	return e, nil
}

// Retry starts a new execution with the same input, version and priority as a finished one.
func (s *Service) Retry(ctx context.Context, id, idempotencyKey string) (Execution, error) {
	e, err := s.store.GetExecution(ctx, id)
	if err != nil {
		return Execution{}, err
	}
	if !store.Finished(e.Status) {
		return Execution{}, conflict("execution %s is %s; only a finished execution can be retried", id, e.Status)
	}
	var input map[string]any
	_ = json.Unmarshal(e.Input, &input)
	return s.Execute(ctx, ExecuteRequest{
		DefinitionID: e.WorkflowID, Input: input, Priority: e.Priority, Version: e.Version,
		TriggeredBy: "retry", RetryOf: e.ID, IdempotencyKey: idempotencyKey,
	})
}

// temporalError turns "the workflow is gone" into a conflict (it finished meanwhile).
func (s *Service) temporalError(e store.Execution, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return conflict("execution %s is no longer running", e.ID)
	}
	return err
}

func eventCause(e *store.Event) *EventCause {
	if e == nil || e.ID == "" {
		return nil
	}
	return &EventCause{EventID: e.ID, CorrelationID: e.CorrelationID, Depth: e.Depth}
}
