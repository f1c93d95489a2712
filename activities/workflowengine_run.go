package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/store"
)

// StepInput asks for one step to run.
type StepInput struct {
	Meta RunMeta         `json:"meta"`
	Step definition.Step `json:"step"`
	// Cause is the event whose handling started the execution (nil for manual, scheduled and
	// API runs): what the step makes happen elsewhere continues its chain.
	Cause *ports.EventCause `json:"cause,omitempty"`
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
	started := time.Now().UTC()
	s := in.Step
	sc, prior, err := a.scope(ctx, in.Meta, s, true)
	if err != nil {
		return StepResult{}, err
	}
	if prior != nil {
		return *prior, nil
	}
	if s.Condition != "" {
		ok, err := a.evaluator().EvalCondition(ctx, s.Condition, sc)
		if err != nil {
			return StepResult{}, a.failAttempt(ctx, in, attempt, started, evalFailed(err, "condition"))
		}
		if !ok {
			if err := a.Store.FinishStep(ctx, in.Meta.ExecutionID, s.ID, s.Type, store.StepSkipped, nil, "", time.Now().UTC()); err != nil {
				return StepResult{}, fmt.Errorf("step %s: %w", s.ID, err)
			}
			return StepResult{Status: store.StepSkipped}, nil
		}
	}
	// The first attempt is written once, when it ends (the interpreter's live state shows it
	// running meanwhile); a retry is recorded as it starts, so its attempt count shows.
	if attempt > 1 {
		if err := a.Store.StartStep(ctx, in.Meta.ExecutionID, s.ID, s.Type, store.StepRunning, attempt, started); err != nil {
			return StepResult{}, fmt.Errorf("step %s: %w", s.ID, err)
		}
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
			now := time.Now().UTC()
			if err := a.Store.RecordStep(ctx, store.ExecutionStep{
				ExecutionID: in.Meta.ExecutionID, StepID: s.ID, Type: s.Type, Status: store.StepCompleted,
				Attempts: attempt, Output: b, StartedAt: &started, FinishedAt: &now, UpdatedAt: now,
			}); err != nil {
				return StepResult{}, fmt.Errorf("step %s: %w", s.ID, err)
			}
			var plain any
			_ = json.Unmarshal(b, &plain)
			return StepResult{Status: store.StepCompleted, Output: plain}, nil
		}
	}
	return StepResult{}, a.failAttempt(ctx, in, attempt, started, err)
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
func (a *WorkflowEngine) failAttempt(ctx context.Context, in StepInput, attempt int, started time.Time, err error) error {
	if rerr := a.Store.RecordStep(ctx, store.ExecutionStep{
		ExecutionID: in.Meta.ExecutionID, StepID: in.Step.ID, Type: in.Step.Type, Status: store.StepRunning,
		Attempts: attempt, Error: Message(err), StartedAt: &started, UpdatedAt: time.Now().UTC(),
	}); rerr != nil {
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
		if err := a.render(ctx, s, sc, &c); err != nil {
			return nil, err
		}
		return a.httpRequest(ctx, s, c)
	case definition.TypeNotification:
		if a.Notifier == nil {
			return nil, permanent("notification steps are not available: %s", engine.StepUnavailable(s.Type, a.Notifier, a.Webhooks))
		}
		var c definition.NotificationConfig
		if err := a.render(ctx, s, sc, &c); err != nil {
			return nil, err
		}
		to, err := recipients(c.To)
		if err != nil {
			return nil, err
		}
		res, err := a.Notifier.SendStepNotification(ctx, ports.StepNotification{
			Channel: c.Channel, To: to, Subject: c.Subject, Body: c.Body, TemplateID: c.TemplateID,
			TemplateData: c.TemplateData, IdempotencyKey: in.Meta.ExecutionID + "/" + s.ID,
			ExecutionID: in.Meta.ExecutionID, StepID: s.ID, Cause: in.Cause,
		})
		if err != nil {
			return nil, moduleError("notification", err)
		}
		return res, nil
	case definition.TypeWebhook:
		if a.Webhooks == nil {
			return nil, permanent("webhook steps are not available: %s", engine.StepUnavailable(s.Type, a.Notifier, a.Webhooks))
		}
		var c definition.WebhookConfig
		if err := a.render(ctx, s, sc, &c); err != nil {
			return nil, err
		}
		res, err := a.Webhooks.SendStepWebhook(ctx, ports.StepWebhook{
			EventType: c.EventType, Payload: c.Payload, EndpointIDs: c.EndpointIDs,
			IdempotencyKey: in.Meta.ExecutionID + "/" + s.ID, ExecutionID: in.Meta.ExecutionID, StepID: s.ID,
		})
		if err != nil {
			return nil, moduleError("webhook", err)
		}
		return res, nil
	}
	return nil, permanent("step type %q does not run as an activity", s.Type)
}

// moduleError prefixes the error of a module a step called with the step's kind. Temporal
// takes an error's type and retryability only from the error an activity returns itself (it does
// not unwrap), so a module's *temporal.ApplicationError is rebuilt with the prefix instead of
// wrapped: a notification refused or failed for good must not be retried as the step's policy
// says (each retry would only wait for the same failed outcome again).
func moduleError(kind string, err error) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		return fmt.Errorf("%s: %w", kind, err)
	}
	msg := kind + ": " + app.Message()
	if app.NonRetryable() {
		return temporal.NewNonRetryableApplicationError(msg, app.Type(), app.Unwrap())
	}
	return temporal.NewApplicationErrorWithCause(msg, app.Type(), app.Unwrap())
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
func (a *WorkflowEngine) render(ctx context.Context, s definition.Step, sc map[string]any, v any) error {
	var raw any
	if len(s.Config) > 0 {
		if err := json.Unmarshal(s.Config, &raw); err != nil {
			return permanent("config: %v", err)
		}
	}
	out, err := a.Templates.RenderValue(ctx, raw, sc)
	if err != nil {
		return evalFailed(err, "config")
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

// StepPrepareInput asks for an interpreter-run step (delay, wait_for_signal, branch, parallel,
// sub_workflow) to be prepared.
type StepPrepareInput struct {
	Meta RunMeta         `json:"meta"`
	Step definition.Step `json:"step"`
	// Status is what the step is recorded as while it runs: running or waiting.
	Status string `json:"status"`
}

// StepPrepareResult says whether the step runs and with what.
type StepPrepareResult struct {
	Skip bool `json:"skip,omitempty"`
	// Config is the step's config with its templates rendered (delay, wait_for_signal,
	// sub_workflow).
	Config json.RawMessage `json:"config,omitempty"`
	// Case is the branch taken: the index of the first case that holds, -1 for default.
	Case int `json:"case"`
}

// PrepareStep evaluates the step's condition, renders its config (not the configs of steps
// nested in it: those render when they run) and records the step as started.
func (a *WorkflowEngine) PrepareStep(ctx context.Context, in StepPrepareInput) (StepPrepareResult, error) {
	s := in.Step
	sc, _, err := a.scope(ctx, in.Meta, s, false)
	if err != nil {
		return StepPrepareResult{}, err
	}
	now := time.Now().UTC()
	if s.Condition != "" {
		ok, err := a.evaluator().EvalCondition(ctx, s.Condition, sc)
		if err != nil {
			return StepPrepareResult{}, evalFailed(err, "condition")
		}
		if !ok {
			if err := a.Store.FinishStep(ctx, in.Meta.ExecutionID, s.ID, s.Type, store.StepSkipped, nil, "", now); err != nil {
				return StepPrepareResult{}, fmt.Errorf("step %s: %w", s.ID, err)
			}
			return StepPrepareResult{Skip: true}, nil
		}
	}
	res := StepPrepareResult{Case: -1}
	switch s.Type {
	case definition.TypeBranch:
		var c definition.BranchConfig
		if err := s.Decode(&c); err != nil {
			return res, permanent("config: %v", err)
		}
		for i, cs := range c.Cases {
			ok, err := a.evaluator().EvalCondition(ctx, cs.When, sc)
			if err != nil {
				return res, evalFailed(err, fmt.Sprintf("cases[%d].when", i))
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
		if err := a.render(ctx, s, sc, &rendered); err != nil {
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
