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

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/netguard"
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
	// Egress guards http_request steps (the same SSRF policy as webhook deliveries).
	Egress *netguard.Policy
	// Notifier and Webhooks carry out notification and webhook steps; nil means the module is
	// not wired in, and definitions using those steps fail validation.
	Notifier Notifier
	Webhooks WebhookSender
	Log      *slog.Logger

	clientOnce sync.Once
	client     *http.Client
}

// Notifier sends the notification of a workflow step. The notifications module implements it.
type Notifier interface {
	// SendStepNotification queues (or sends) one email or SMS. It must be idempotent per
	// IdempotencyKey: a retried step calls it again with the same key and must not send twice.
	SendStepNotification(ctx context.Context, req StepNotification) (StepNotificationResult, error)
}

// StepNotification is a notification step's rendered config (the seed's notification body).
type StepNotification struct {
	// Channel is "email" or "sms".
	Channel string   `json:"channel"`
	To      []string `json:"to"`
	Subject string   `json:"subject,omitempty"`
	Body    string   `json:"body,omitempty"`
	// TemplateID names a stored notification template, rendered with TemplateData.
	TemplateID   string         `json:"template_id,omitempty"`
	TemplateData map[string]any `json:"template_data,omitempty"`
	// IdempotencyKey is "<execution id>/<step id>".
	IdempotencyKey string `json:"idempotency_key"`
	// ExecutionID and StepID say where the notification comes from (for the delivery record).
	ExecutionID string `json:"execution_id"`
	StepID      string `json:"step_id"`
}

// StepNotificationResult is what a notification step outputs.
type StepNotificationResult struct {
	// IDs of the notifications created (one per recipient or one in all, as the module keeps them).
	IDs    []string `json:"ids"`
	Status string   `json:"status"`
}

// WebhookSender delivers the event of a workflow step to webhook endpoints. The webhooks module
// implements it.
type WebhookSender interface {
	// SendStepWebhook hands the event to durable delivery (each subscribed endpoint, signed,
	// with retries) and returns once it is accepted. It must be idempotent per IdempotencyKey.
	SendStepWebhook(ctx context.Context, req StepWebhook) (StepWebhookResult, error)
}

// StepWebhook is a webhook step's rendered config (the seed's /webhooks/deliver body).
type StepWebhook struct {
	EventType string `json:"event_type"`
	Payload   any    `json:"payload"`
	// EndpointIDs restricts delivery to these endpoints; empty means every endpoint subscribed
	// to EventType.
	EndpointIDs    []string `json:"endpoint_ids,omitempty"`
	IdempotencyKey string   `json:"idempotency_key"`
	ExecutionID    string   `json:"execution_id"`
	StepID         string   `json:"step_id"`
}

// StepWebhookResult is what a webhook step outputs.
type StepWebhookResult struct {
	DeliveryIDs []string `json:"delivery_ids"`
}

// Unavailable says why a step type cannot run with this wiring ("" when it can). (It is not a
// method: the worker registers every method of WorkflowEngine as an activity.)
func Unavailable(stepType string, n Notifier, w WebhookSender) string {
	switch {
	case stepType == definition.TypeNotification && n == nil:
		return "the notifications module is not enabled in this deployment"
	case stepType == definition.TypeWebhook && w == nil:
		return "the webhooks module is not enabled in this deployment"
	}
	return ""
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

// StepInput asks for one step to run.
type StepInput struct {
	Meta RunMeta         `json:"meta"`
	Step definition.Step `json:"step"`
}

// StepResult is a step's outcome: completed with its output, or skipped by its condition.
type StepResult struct {
	Status string `json:"status"`
	Output any    `json:"output,omitempty"`
}

// RunStep runs an activity step: its condition, its templates, then the step itself, recording
// each attempt. A step whose completion was recorded by an earlier attempt (the worker died
// before Temporal heard of it) is not run again: the recorded output is returned.
func (a *WorkflowEngine) RunStep(ctx context.Context, in StepInput) (StepResult, error) {
	attempt := int(activity.GetInfo(ctx).Attempt)
	s := in.Step
	sc, prior, err := a.scope(ctx, in.Meta, s, true)
	if err != nil {
		return StepResult{}, err
	}
	if prior != nil {
		return *prior, nil
	}
	if s.Condition != "" {
		ok, err := definition.EvalCondition(s.Condition, sc)
		if err != nil {
			return StepResult{}, a.failAttempt(ctx, in, permanent("condition: %v", err))
		}
		if !ok {
			if err := a.Store.FinishStep(ctx, in.Meta.ExecutionID, s.ID, s.Type, store.StepSkipped, nil, "", time.Now().UTC()); err != nil {
				return StepResult{}, fmt.Errorf("step %s: %w", s.ID, err)
			}
			return StepResult{Status: store.StepSkipped}, nil
		}
	}
	if err := a.Store.StartStep(ctx, in.Meta.ExecutionID, s.ID, s.Type, store.StepRunning, attempt, time.Now().UTC()); err != nil {
		return StepResult{}, fmt.Errorf("step %s: %w", s.ID, err)
	}
	stop := heartbeat(ctx)
	out, err := a.execute(ctx, in, sc)
	stop()
	if err == nil {
		var b []byte
		if b, err = json.Marshal(out); err != nil {
			err = permanent("output is not JSON: %v", err)
		} else if len(b) > MaxStepOutput {
			err = permanent("output is %d bytes; a step may output at most %d", len(b), MaxStepOutput)
		} else {
			if err := a.Store.FinishStep(ctx, in.Meta.ExecutionID, s.ID, s.Type, store.StepCompleted, b, "", time.Now().UTC()); err != nil {
				return StepResult{}, fmt.Errorf("step %s: %w", s.ID, err)
			}
			var plain any
			_ = json.Unmarshal(b, &plain)
			return StepResult{Status: store.StepCompleted, Output: plain}, nil
		}
	}
	return StepResult{}, a.failAttempt(ctx, in, err)
}

// HeartbeatEvery is how often a running step tells Temporal its worker is alive; the
// interpreter sets a heartbeat timeout of a few of these, so that a step whose worker died is
// retried on another worker within seconds instead of after the step's whole timeout.
const HeartbeatEvery = 2 * time.Second

func heartbeat(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(HeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// failAttempt records an attempt's error on the step (the interpreter records the final
// failure) and returns it.
func (a *WorkflowEngine) failAttempt(ctx context.Context, in StepInput, err error) error {
	if rerr := a.Store.RecordStepError(ctx, in.Meta.ExecutionID, in.Step.ID, Message(err), time.Now().UTC()); rerr != nil {
		a.logger().Warn("record step error", "execution_id", in.Meta.ExecutionID, "step", in.Step.ID, "error", rerr)
	}
	return err
}

func (a *WorkflowEngine) execute(ctx context.Context, in StepInput, sc map[string]any) (any, error) {
	s := in.Step
	switch s.Type {
	case definition.TypeDataTransform:
		return a.dataTransform(ctx, s, sc)
	case definition.TypeHTTPRequest:
		var c definition.HTTPRequestConfig
		if err := a.render(s, sc, &c); err != nil {
			return nil, err
		}
		return a.httpRequest(ctx, s, c)
	case definition.TypeNotification:
		if a.Notifier == nil {
			return nil, permanent("notification steps are not available: %s", Unavailable(s.Type, a.Notifier, a.Webhooks))
		}
		var c definition.NotificationConfig
		if err := a.render(s, sc, &c); err != nil {
			return nil, err
		}
		to, err := recipients(c.To)
		if err != nil {
			return nil, err
		}
		res, err := a.Notifier.SendStepNotification(ctx, StepNotification{
			Channel: c.Channel, To: to, Subject: c.Subject, Body: c.Body, TemplateID: c.TemplateID,
			TemplateData: c.TemplateData, IdempotencyKey: in.Meta.ExecutionID + "/" + s.ID,
			ExecutionID: in.Meta.ExecutionID, StepID: s.ID,
		})
		if err != nil {
			return nil, fmt.Errorf("notification: %w", err)
		}
		return res, nil
	case definition.TypeWebhook:
		if a.Webhooks == nil {
			return nil, permanent("webhook steps are not available: %s", Unavailable(s.Type, a.Notifier, a.Webhooks))
		}
		var c definition.WebhookConfig
		if err := a.render(s, sc, &c); err != nil {
			return nil, err
		}
		res, err := a.Webhooks.SendStepWebhook(ctx, StepWebhook{
			EventType: c.EventType, Payload: c.Payload, EndpointIDs: c.EndpointIDs,
			IdempotencyKey: in.Meta.ExecutionID + "/" + s.ID, ExecutionID: in.Meta.ExecutionID, StepID: s.ID,
		})
		if err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
		return res, nil
	}
	return nil, permanent("step type %q does not run as an activity", s.Type)
}

func recipients(v any) ([]string, error) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil, permanent("to is empty")
		}
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, item := range x {
			s, ok := item.(string)
			if !ok || s == "" {
				return nil, permanent("to[%d] must be a non-empty string", i)
			}
			out = append(out, s)
		}
		if len(out) == 0 {
			return nil, permanent("to is empty")
		}
		return out, nil
	}
	return nil, permanent("to must be a string or a list of strings, got %T", v)
}

// scope loads what templates and expressions of step s can read: {input, steps, execution,
// workflow}. With checkPrior, when the step's own record says it completed (or was skipped)
// already, that outcome is returned instead.
func (a *WorkflowEngine) scope(ctx context.Context, m RunMeta, s definition.Step, checkPrior bool) (map[string]any, *StepResult, error) {
	records, err := a.Store.ExecutionSteps(ctx, m.ExecutionID)
	if err != nil {
		return nil, nil, fmt.Errorf("step %s: load step records: %w", s.ID, err)
	}
	steps := make(map[string]any, len(records))
	for _, r := range records {
		var out any
		if len(r.Output) > 0 {
			_ = json.Unmarshal(r.Output, &out)
		}
		if checkPrior && r.StepID == s.ID && (r.Status == store.StepCompleted || r.Status == store.StepSkipped) {
			return nil, &StepResult{Status: r.Status, Output: out}, nil
		}
		steps[r.StepID] = map[string]any{"output": out, "status": r.Status, "error": r.Error}
	}
	sc := map[string]any{
		"steps":     steps,
		"execution": map[string]any{"id": m.ExecutionID, "priority": m.Priority},
		"workflow":  map[string]any{"id": m.DefinitionID, "version": m.Version},
	}
	if !s.UsesScope() {
		return sc, nil, nil
	}
	e, err := a.Store.GetExecution(ctx, m.ExecutionID)
	if err != nil {
		return nil, nil, fmt.Errorf("step %s: load execution: %w", s.ID, err)
	}
	var input any = map[string]any{}
	if len(e.Input) > 0 {
		if err := json.Unmarshal(e.Input, &input); err != nil {
			return nil, nil, permanent("input_data is unreadable: %v", err)
		}
	}
	sc["input"] = input
	return sc, nil, nil
}

// render renders the templates of s's config with sc and decodes the result into v.
func (a *WorkflowEngine) render(s definition.Step, sc map[string]any, v any) error {
	var raw any
	if len(s.Config) > 0 {
		if err := json.Unmarshal(s.Config, &raw); err != nil {
			return permanent("config: %v", err)
		}
	}
	out, err := a.Templates.RenderValue(raw, sc)
	if err != nil {
		return permanent("config: %v", err)
	}
	if m, ok := out.(map[string]any); ok {
		// A field that is one {{ expression }} takes the expression's type; text fields want
		// its text ("{{ steps.count.output }}" in a header is "3", not 3).
		for _, k := range textFields[s.Type] {
			if v, ok := m[k]; ok {
				m[k] = asText(v)
			}
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return permanent("config: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return permanent("rendered config: %v", err)
	}
	return nil
}

// PrepareInput asks for an interpreter-run step (delay, wait_for_signal, branch, parallel,
// sub_workflow) to be prepared.
type PrepareInput struct {
	Meta RunMeta         `json:"meta"`
	Step definition.Step `json:"step"`
	// Status is what the step is recorded as while it runs: running or waiting.
	Status string `json:"status"`
}

// PrepareResult says whether the step runs and with what.
type PrepareResult struct {
	Skip bool `json:"skip,omitempty"`
	// Config is the step's config with its templates rendered (delay, wait_for_signal,
	// sub_workflow).
	Config json.RawMessage `json:"config,omitempty"`
	// Case is the branch taken: the index of the first case that holds, -1 for default.
	Case int `json:"case"`
}

// PrepareStep evaluates the step's condition, renders its config (not the configs of steps
// nested in it: those render when they run) and records the step as started.
func (a *WorkflowEngine) PrepareStep(ctx context.Context, in PrepareInput) (PrepareResult, error) {
	s := in.Step
	sc, _, err := a.scope(ctx, in.Meta, s, false)
	if err != nil {
		return PrepareResult{}, err
	}
	now := time.Now().UTC()
	if s.Condition != "" {
		ok, err := definition.EvalCondition(s.Condition, sc)
		if err != nil {
			return PrepareResult{}, permanent("condition: %v", err)
		}
		if !ok {
			if err := a.Store.FinishStep(ctx, in.Meta.ExecutionID, s.ID, s.Type, store.StepSkipped, nil, "", now); err != nil {
				return PrepareResult{}, fmt.Errorf("step %s: %w", s.ID, err)
			}
			return PrepareResult{Skip: true}, nil
		}
	}
	res := PrepareResult{Case: -1}
	switch s.Type {
	case definition.TypeBranch:
		var c definition.BranchConfig
		if err := s.Decode(&c); err != nil {
			return res, permanent("config: %v", err)
		}
		for i, cs := range c.Cases {
			ok, err := definition.EvalCondition(cs.When, sc)
			if err != nil {
				return res, permanent("cases[%d].when: %v", i, err)
			}
			if ok {
				res.Case = i
				break
			}
		}
		// The steps of the paths not taken will never run: record them as skipped.
		var untaken []definition.Step
		for i, cs := range c.Cases {
			if i != res.Case {
				untaken = append(untaken, cs.Steps...)
			}
		}
		if res.Case >= 0 {
			untaken = append(untaken, c.Default...)
		}
		var err error
		definition.Walk(untaken, func(st definition.Step) {
			if err == nil {
				err = a.Store.FinishStep(ctx, in.Meta.ExecutionID, st.ID, st.Type, store.StepSkipped, nil, "", now)
			}
		})
		if err != nil {
			return res, fmt.Errorf("step %s: %w", s.ID, err)
		}
	case definition.TypeParallel:
	default:
		var rendered map[string]any
		if err := a.render(s, sc, &rendered); err != nil {
			return res, err
		}
		res.Config = json.RawMessage(store.MustJSON(rendered))
	}
	status := in.Status
	if status == "" {
		status = store.StepRunning
	}
	if err := a.Store.StartStep(ctx, in.Meta.ExecutionID, s.ID, s.Type, status, 1, now); err != nil {
		return res, fmt.Errorf("step %s: %w", s.ID, err)
	}
	return res, nil
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

// Message is an error's text without Temporal's wrapping.
func Message(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

// textFields are the config fields (and, for maps and lists, their items) that are text.
var textFields = map[string][]string{
	definition.TypeHTTPRequest:   {"method", "url", "headers", "query"},
	definition.TypeNotification:  {"channel", "to", "subject", "body", "template_id"},
	definition.TypeWebhook:       {"event_type", "endpoint_ids"},
	definition.TypeDelay:         {"duration", "until"},
	definition.TypeWaitForSignal: {"signal", "timeout", "on_timeout"},
	definition.TypeSubWorkflow:   {"workflow_id"},
}

// asText turns numbers and booleans (also inside maps and lists) into their JSON text.
func asText(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, item := range x {
			x[k] = asText(item)
		}
		return x
	case []any:
		for i, item := range x {
			x[i] = asText(item)
		}
		return x
	case string, nil:
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	return string(b)
}
