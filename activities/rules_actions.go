package activities

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/tracing"
	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
)

// ActionInput names one action of a fired execution.
type ActionInput struct {
	ExecutionID string `json:"execution_id"`
	Index       int    `json:"index"`
	// TraceParent is the trace the action continues (its event's evaluation; "" untraced).
	TraceParent string `json:"traceparent,omitempty"`
}

// ActionResult is the final status of an action.
type ActionResult struct {
	Status string `json:"status"`
}

// RunAction renders and carries out one action and records the attempt. It is idempotent: an
// action that succeeded before is not run again, and the modules it calls receive the idempotency
// key of (event, rule, action index). Failures that retrying cannot fix (a template error, an
// unknown definition, an action type whose module is not wired) are non-retryable.
func (a *Rules) RunAction(ctx context.Context, in ActionInput) (res ActionResult, err error) {
	ctx, span := tracing.StartFor(ctx, in.TraceParent, "rules.action", trace.WithAttributes(
		attribute.String("rule.execution_id", in.ExecutionID), attribute.Int("rule.action_index", in.Index)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.String("rule.action_status", res.Status))
		}
		span.End()
	}()
	o, err := a.Store.GetOutcome(ctx, in.ExecutionID, in.Index)
	if err != nil {
		return ActionResult{}, fmt.Errorf("action %d of %s: %w", in.Index, in.ExecutionID, err)
	}
	switch o.Status {
	case store.OutcomeSucceeded, store.OutcomeSkipped:
		return ActionResult{Status: o.Status}, nil
	case store.OutcomeFailed:
		return ActionResult{}, temporal.NewNonRetryableApplicationError(o.Error, "ActionFailed", nil)
	}
	started := a.now()
	x, err := a.Store.GetRuleExecution(ctx, in.ExecutionID)
	if err != nil {
		return ActionResult{}, fmt.Errorf("execution %s: %w", in.ExecutionID, err)
	}
	e, err := a.Store.GetEvent(ctx, x.EventID)
	if err != nil {
		return ActionResult{}, fmt.Errorf("event %s: %w", x.EventID, err)
	}
	var rendered rules.RenderedAction
	var result map[string]any
	r, err := a.Cache.Get(ctx, x.RuleID, x.RuleVersion)
	if err == nil {
		var scope rules.Scope
		if scope, err = rules.NewScope(e); err == nil {
			if rendered, err = r.RenderAction(ctx, a.Templates, in.Index, scope); err == nil {
				result, err = a.call(ctx, x, e, rendered)
			}
		}
	}
	attempt := store.OutcomeAttempt{Status: store.OutcomeSucceeded, StartedAt: started, At: a.now()}
	if rendered.Type != "" {
		attempt.Rendered = store.MustJSON(rendered)
	}
	switch {
	case err == nil:
		attempt.Result = store.MustJSON(result)
	case rules.IsPermanent(err):
		attempt.Status, attempt.Error = store.OutcomeFailed, err.Error()
	default:
		attempt.Status, attempt.Error = store.OutcomeRetrying, err.Error()
		if activity.IsActivity(ctx) {
			attempt.Error = fmt.Sprintf("attempt %d: %s", activity.GetInfo(ctx).Attempt, err)
		}
	}
	recorded, rerr := a.Store.RecordAttempt(ctx, x.ID, in.Index, attempt)
	if rerr == nil && recorded {
		a.Metrics.attempt(o.Type, attempt.Status)
	}
	if rerr != nil {
		return ActionResult{}, fmt.Errorf("record action %d of %s: %w", in.Index, x.ID, rerr)
	}
	if !recorded { // a concurrent duplicate finished it: report what it recorded
		o, gerr := a.Store.GetOutcome(ctx, x.ID, in.Index)
		if gerr != nil {
			return ActionResult{}, gerr
		}
		if o.Status == store.OutcomeFailed {
			return ActionResult{}, temporal.NewNonRetryableApplicationError(o.Error, "ActionFailed", nil)
		}
		return ActionResult{Status: o.Status}, nil
	}
	switch attempt.Status {
	case store.OutcomeFailed:
		return ActionResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "ActionFailed", nil)
	case store.OutcomeRetrying:
		return ActionResult{}, fmt.Errorf("%s action %d of rule %s: %w", rendered.Type, in.Index, x.RuleID, err)
	}
	return ActionResult{Status: store.OutcomeSucceeded}, nil
}

// call hands the rendered action to the module that carries it out and returns what it
// answered (the ids it created).
func (a *Rules) call(ctx context.Context, x store.RuleExecution, e store.Event, act rules.RenderedAction) (_ map[string]any, err error) {
	defer func() {
		// The tenant's quota is reached: the action fails for good (a retry would be refused too).
		var quota *store.QuotaError
		if errors.As(err, &quota) {
			err = rules.Permanentf("%v", quota)
		}
	}()
	unavailable := func() error {
		return rules.Permanentf("%s actions are not available: the module is not configured in this deployment", act.Type)
	}
	cause := ports.EventCause{EventID: e.ID, CorrelationID: e.CorrelationID, Depth: e.Depth}
	switch act.Type {
	case rules.ActionWorkflow:
		if a.Targets.Workflows == nil {
			return nil, unavailable()
		}
		id, err := a.Targets.Workflows.Execute(ctx, ports.WorkflowRequest{DefinitionID: act.WorkflowID,
			Input: act.InputData, Priority: act.Priority, IdempotencyKey: act.IdempotencyKey, Cause: cause})
		return map[string]any{"execution_id": id}, err
	case rules.ActionNotification:
		if a.Targets.Notifications == nil {
			return nil, unavailable()
		}
		var id string
		var err error
		if act.NotificationType == "sms" {
			id, err = a.Targets.Notifications.SendSMS(ctx, ports.SMSRequest{To: act.To, Message: act.Message,
				TemplateID: act.TemplateID, TemplateData: act.TemplateData, IdempotencyKey: act.IdempotencyKey, Cause: cause})
		} else {
			id, err = a.Targets.Notifications.SendEmail(ctx, ports.EmailRequest{To: act.To, Subject: act.Subject,
				Body: act.Body, TemplateID: act.TemplateID, TemplateData: act.TemplateData, IdempotencyKey: act.IdempotencyKey,
				Cause: cause})
		}
		return map[string]any{"notification_id": id}, err
	case rules.ActionWebhook:
		if a.Targets.Webhooks == nil {
			return nil, unavailable()
		}
		id, err := a.Targets.Webhooks.Deliver(ctx, act.EventType, act.PayloadJSON(), act.IdempotencyKey)
		return map[string]any{"message_id": id}, err
	case rules.ActionEmitEvent:
		child := events.Caused(e, act.EventType, "automation/rules/"+x.RuleID, store.JSON(act.PayloadJSON()))
		child.ID = EmittedEventID(act.IdempotencyKey)
		stored, dup, err := a.Bus.Publish(ctx, child)
		if err != nil {
			return nil, err
		}
		return map[string]any{"event_id": stored.ID, "duplicate": dup}, nil
	}
	return nil, rules.Permanentf("unknown action type %q", act.Type)
}

// emittedNamespace derives the ids of events emitted by rule actions.
var emittedNamespace = uuid.MustParse("8f4e2c1a-5b7d-4e3f-9a6c-2d1b0e9f8a7c")

// EmittedEventID is the id of the event an emit_event action with this idempotency key
// publishes: the same key always gives the same id, so a retried action is stored once.
func EmittedEventID(idempotencyKey string) string {
	return uuid.NewSHA1(emittedNamespace, []byte(idempotencyKey)).String()
}

// FinishInput ends an execution whose actions stopped early.
type FinishInput struct {
	ExecutionID string `json:"execution_id"`
	// Failed are the actions that failed for good.
	Failed []int  `json:"failed"`
	Error  string `json:"error"`
}

// FinishExecution records the failed actions, skips those not run, and settles the execution's
// status.
func (a *Rules) FinishExecution(ctx context.Context, in FinishInput) error {
	if err := a.Store.AbandonExecution(ctx, in.ExecutionID, in.Failed, in.Error, a.now()); err != nil {
		return fmt.Errorf("finish execution %s: %w", in.ExecutionID, err)
	}
	return nil
}
