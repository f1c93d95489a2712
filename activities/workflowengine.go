package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
)

// WorkflowEngine holds the side effects of the workflow interpreter (workflows.Interpreter):
// loading the pinned definition, running activity steps (data_transform, http_request,
// notification, webhook), preparing the interpreter's own steps (conditions, templates, branch
// cases) and writing every status change to the executions tables.
type WorkflowEngine struct {
	Store     *store.Store
	Templates *templating.Engine
	// Eval evaluates the steps' expressions and jq programs (nil: in this process, default
	// limits).
	Eval *definition.Evaluator
	// Egress guards http_request steps (the same SSRF policy as webhook deliveries).
	Egress *netguard.Policy
	// Notifier and Webhooks carry out notification and webhook steps; nil means the module is
	// not wired in, and definitions using those steps fail validation.
	Notifier ports.Notifier
	Webhooks ports.WebhookSender
	Log      *slog.Logger

	clientOnce sync.Once
	client     *http.Client
	evalOnce   sync.Once
}

// evaluator returns Eval, or an in-process one.
func (a *WorkflowEngine) evaluator() *definition.Evaluator {
	a.evalOnce.Do(func() {
		if a.Eval == nil {
			a.Eval = definition.NewEvaluator(sandbox.Limits{}, nil)
		}
	})
	return a.Eval
}

// MaxStepOutput bounds one step's output (it travels through Temporal's history).
const MaxStepOutput = 256 << 10

// RunMeta identifies the run a step belongs to; templates see it as execution and workflow.
type RunMeta struct {
	ExecutionID  string `json:"execution_id"`
	DefinitionID string `json:"definition_id"`
	Version      int    `json:"version"`
	Priority     string `json:"priority"`
}

// StartRunInput is what the interpreter starts with.
type StartRunInput struct {
	// ExecutionID is the row the API stored; "" for scheduled and child runs, whose row this
	// activity creates.
	ExecutionID  string `json:"execution_id,omitempty"`
	DefinitionID string `json:"definition_id"`
	// Version pins a definition version; 0 takes the current one.
	Version           int            `json:"version,omitempty"`
	Priority          string         `json:"priority,omitempty"`
	Input             map[string]any `json:"input_data,omitempty"`
	TriggeredBy       string         `json:"triggered_by,omitempty"`
	ParentExecutionID string         `json:"parent_execution_id,omitempty"`
	WorkflowID        string         `json:"temporal_workflow_id"`
	RunID             string         `json:"temporal_run_id"`
}

// StartRunResult is the pinned definition the interpreter runs.
type StartRunResult struct {
	Meta       RunMeta               `json:"meta"`
	Definition definition.Definition `json:"definition"`
}

// StartRun loads the pinned definition version and marks the execution running, creating its
// row first for runs the API did not start. A definition that is gone fails the run for good.
func (a *WorkflowEngine) StartRun(ctx context.Context, in StartRunInput) (StartRunResult, error) {
	now := time.Now().UTC()
	exec, err := a.ensureExecution(ctx, in, now)
	if err != nil {
		return StartRunResult{}, err
	}
	v, err := a.Store.GetWorkflowVersion(ctx, exec.WorkflowID, exec.Version)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			msg := fmt.Sprintf("workflow %s version %d does not exist", exec.WorkflowID, exec.Version)
			_ = a.Store.FinishExecution(ctx, exec.ID, store.ExecutionFailed, nil, msg, now)
			return StartRunResult{}, temporal.NewNonRetryableApplicationError(msg, "DefinitionNotFound", nil)
		}
		return StartRunResult{}, fmt.Errorf("start run %s: %w", exec.ID, err)
	}
	var def definition.Definition
	if err := json.Unmarshal(v.Definition, &def); err != nil {
		return StartRunResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("workflow %s version %d: stored definition is unreadable: %v", v.WorkflowID, v.Version, err),
			"DefinitionUnreadable", nil)
	}
	if err := a.Store.MarkExecutionRunning(ctx, exec.ID, in.RunID, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// Its request gave up on the start (Temporal did not confirm it in time) and removed
			// the execution: the client was told to retry, so this run does nothing.
			return StartRunResult{}, temporal.NewNonRetryableApplicationError("execution "+exec.ID+" does not exist",
				"ExecutionNotFound", nil)
		}
		return StartRunResult{}, fmt.Errorf("start run %s: %w", exec.ID, err)
	}
	return StartRunResult{
		Meta:       RunMeta{ExecutionID: exec.ID, DefinitionID: exec.WorkflowID, Version: exec.Version, Priority: exec.Priority},
		Definition: def,
	}, nil
}

func (a *WorkflowEngine) ensureExecution(ctx context.Context, in StartRunInput, now time.Time) (store.Execution, error) {
	if in.ExecutionID != "" {
		e, err := a.Store.GetExecution(ctx, in.ExecutionID)
		if errors.Is(err, store.ErrNotFound) {
			return e, temporal.NewNonRetryableApplicationError("execution "+in.ExecutionID+" does not exist",
				"ExecutionNotFound", nil)
		}
		return e, err
	}
	version := in.Version
	if version == 0 {
		w, err := a.Store.GetWorkflow(ctx, in.DefinitionID)
		if errors.Is(err, store.ErrNotFound) {
			return store.Execution{}, temporal.NewNonRetryableApplicationError(
				"workflow "+in.DefinitionID+" does not exist (deleted?)", "DefinitionNotFound", nil)
		}
		if err != nil {
			return store.Execution{}, fmt.Errorf("start run: %w", err)
		}
		version = w.Version
	}
	priority := in.Priority
	if priority == "" {
		priority = definition.PriorityNormal
	}
	input := in.Input
	if input == nil {
		input = map[string]any{}
	}
	trigger := in.TriggeredBy
	if trigger == "" {
		trigger = "schedule"
	}
	e := store.Execution{
		ID: store.NewID(), WorkflowID: in.DefinitionID, Version: version, Status: store.ExecutionPending,
		Priority: priority, TriggeredBy: trigger, Input: store.MustJSON(input),
		TemporalWorkflowID: in.WorkflowID, TemporalRunID: in.RunID, ParentExecutionID: in.ParentExecutionID,
		CreatedAt: now, UpdatedAt: now,
	}
	out, err := a.Store.EnsureExecution(ctx, &e)
	if err != nil {
		return out, fmt.Errorf("start run: %w", err)
	}
	return out, nil
}

// CompleteStepInput is a step's final outcome as the interpreter saw it.
type CompleteStepInput struct {
	ExecutionID string `json:"execution_id"`
	StepID      string `json:"step_id"`
	Type        string `json:"type"`
	Status      string `json:"status"`
	Output      any    `json:"output,omitempty"`
	Error       string `json:"error,omitempty"`
}

// CompleteStep records a step's outcome: interpreter-run steps when they end, and activity
// steps whose last attempt failed, timed out or was cancelled.
func (a *WorkflowEngine) CompleteStep(ctx context.Context, in CompleteStepInput) error {
	var out store.JSON
	if in.Output != nil {
		out = store.MustJSON(in.Output)
	}
	if err := a.Store.FinishStep(ctx, in.ExecutionID, in.StepID, in.Type, in.Status, out, in.Error, time.Now().UTC()); err != nil {
		return fmt.Errorf("complete step %s: %w", in.StepID, err)
	}
	return nil
}

// FinishRunInput is an execution's final outcome.
type FinishRunInput struct {
	ExecutionID string         `json:"execution_id"`
	Status      string         `json:"status"`
	Output      map[string]any `json:"output,omitempty"`
	Error       string         `json:"error,omitempty"`
}

// FinishRun records an execution's final status (unless the API recorded one first).
func (a *WorkflowEngine) FinishRun(ctx context.Context, in FinishRunInput) error {
	var out store.JSON
	if in.Output != nil {
		out = store.MustJSON(in.Output)
	}
	if err := a.Store.FinishExecution(ctx, in.ExecutionID, in.Status, out, in.Error, time.Now().UTC()); err != nil {
		return fmt.Errorf("finish run %s: %w", in.ExecutionID, err)
	}
	return nil
}

func (a *WorkflowEngine) logger() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}

// permanent is a step error that retrying cannot fix (bad input, a refused destination).
func permanent(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), "StepFailed", nil)
}

// evalFailed is a step whose template, expression or jq program failed: for good (the text or
// its data is at fault, or it went over a limit of the evaluation budget), unless no evaluation
// helper could start or the attempt is ending, which a retry may not meet.
// what, when set, prefixes the message with the failing part of the step.
func evalFailed(err error, what string) error {
	if what != "" {
		what += ": "
	}
	if !sandbox.IsBudgetError(err) && (errors.Is(err, sandbox.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("%s%w", what, err)
	}
	return permanent("%s%v", what, err)
}

// Message is an error's text without Temporal's wrapping.
func Message(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}
