package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
	"github.com/pyairtable/automation-domain/webhooks"
)

// wireModules connects the domains to each other: the workflow engine's notification and
// webhook steps and the rules engine's workflow, notification and webhook actions call the real
// modules through these adapters (each domain declares the narrow interface it needs; this file is the only place that
// knows both sides).
func (d *Deps) wireModules() {
	d.StepNotifier = stepNotifier{d.Notify}
	d.StepWebhooks = webhookSender{d.Webhooks}
	d.RuleTargets.Workflows = ruleWorkflows{d.Workflows}
	d.RuleTargets.Notifications = ruleNotifier{d.Notify}
	d.RuleTargets.Webhooks = webhookSender{d.Webhooks}
}

// stepNotifier sends a workflow step's notification and waits for its outcome, so the step's
// output says whether it was sent (the notification module retries delivery itself; a failed
// notification fails the step without a second round of retries).
type stepNotifier struct{ notify *notify.Service }

func (n stepNotifier) SendStepNotification(ctx context.Context, req activities.StepNotification) (activities.StepNotificationResult, error) {
	meta := map[string]any{"workflow_execution_id": req.ExecutionID, "workflow_step_id": req.StepID}
	var (
		sent notify.Notification
		err  error
	)
	switch req.Channel {
	case "sms":
		sent, err = n.notify.SendSMS(ctx, notify.SMSRequest{To: req.To, Message: req.Body, TemplateID: req.TemplateID,
			TemplateData: req.TemplateData, Metadata: meta, IdempotencyKey: "workflow:" + req.IdempotencyKey})
	default:
		sent, err = n.notify.SendEmail(ctx, notify.EmailRequest{To: req.To, Subject: req.Subject, Body: req.Body,
			TemplateID: req.TemplateID, TemplateData: req.TemplateData, Metadata: meta,
			IdempotencyKey: "workflow:" + req.IdempotencyKey})
	}
	if err != nil {
		return activities.StepNotificationResult{}, permanentIfInvalid(err)
	}
	done, err := n.notify.Await(ctx, sent.ID)
	if err != nil {
		return activities.StepNotificationResult{}, fmt.Errorf("await notification %s: %w", sent.ID, err)
	}
	res := activities.StepNotificationResult{IDs: []string{done.ID}, Status: done.Status}
	if done.Status == store.StatusFailed {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("notification %s failed for every recipient", done.ID), "NotificationFailed", nil)
	}
	return res, nil
}

// ruleWorkflows starts a rule's workflow action.
type ruleWorkflows struct{ engine *engine.Service }

func (w ruleWorkflows) Execute(ctx context.Context, req rules.WorkflowRequest) (string, error) {
	cause := req.Cause
	e, err := w.engine.Execute(ctx, engine.ExecuteRequest{
		DefinitionID: req.DefinitionID, Input: req.Input, Priority: req.Priority,
		IdempotencyKey: req.IdempotencyKey, TriggeredBy: "rule", Cause: &cause,
	})
	var engineErr *engine.Error
	if errors.As(err, &engineErr) {
		return "", rules.Permanent(err) // a disabled definition does not start by retrying
	}
	return e.ID, err
}

// ruleNotifier sends a rule's notification action; it returns once the notification is queued.
type ruleNotifier struct{ notify *notify.Service }

func (n ruleNotifier) SendEmail(ctx context.Context, req rules.EmailRequest) (string, error) {
	cause := req.Cause
	sent, err := n.notify.SendEmail(ctx, notify.EmailRequest{To: req.To, Subject: req.Subject, Body: req.Body,
		TemplateID: req.TemplateID, TemplateData: req.TemplateData, IdempotencyKey: req.IdempotencyKey, Cause: &cause})
	return sent.ID, permanentIfInvalid(err)
}

func (n ruleNotifier) SendSMS(ctx context.Context, req rules.SMSRequest) (string, error) {
	cause := req.Cause
	sent, err := n.notify.SendSMS(ctx, notify.SMSRequest{To: req.To, Message: req.Message, TemplateID: req.TemplateID,
		TemplateData: req.TemplateData, IdempotencyKey: req.IdempotencyKey, Cause: &cause})
	return sent.ID, permanentIfInvalid(err)
}

// permanentIfInvalid marks the notification module's errors that a retry cannot fix (invalid
// recipients, an unknown template, a channel that is not configured, a reused idempotency key
// with another request) as permanent for both callers: rules (rules.Permanent) and workflow steps
// (a non-retryable application error).
func permanentIfInvalid(err error) error {
	if err == nil {
		return nil
	}
	var problems validation.Problems
	if errors.As(err, &problems) || errors.Is(err, notify.ErrTemplateNotFound) ||
		errors.Is(err, notify.ErrChannelNotConfigured) || errors.Is(err, notify.ErrIdempotencyMismatch) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "NotificationRefused", rules.Permanent(err))
	}
	return err
}

// webhookSender queues a workflow step's or a rule action's webhook message: it returns once the
// message is stored with a delivery per endpoint (the webhook module retries each delivery).
type webhookSender struct{ webhooks *webhooks.Service }

func (w webhookSender) SendStepWebhook(ctx context.Context, req activities.StepWebhook) (activities.StepWebhookResult, error) {
	payload, err := json.Marshal(req.Payload)
	if err != nil {
		return activities.StepWebhookResult{}, temporal.NewNonRetryableApplicationError(
			"webhook payload is not JSON: "+err.Error(), "WebhookRefused", nil)
	}
	m, err := w.webhooks.Deliver(ctx, webhooks.DeliverRequest{
		EventType: req.EventType, Payload: payload, EndpointIDs: req.EndpointIDs,
		IdempotencyKey: "workflow:" + req.IdempotencyKey, Source: "workflow",
	})
	if err != nil {
		return activities.StepWebhookResult{}, webhookPermanent(err)
	}
	res := activities.StepWebhookResult{DeliveryIDs: make([]string, 0, len(m.Deliveries))}
	for _, d := range m.Deliveries {
		res.DeliveryIDs = append(res.DeliveryIDs, d.ID)
	}
	return res, nil
}

func (w webhookSender) Deliver(ctx context.Context, eventType string, payload json.RawMessage, key string) (string, error) {
	m, err := w.webhooks.Deliver(ctx, webhooks.DeliverRequest{
		EventType: eventType, Payload: payload, IdempotencyKey: key, Source: "rule",
	})
	if err != nil {
		return "", webhookPermanent(err)
	}
	return m.ID, nil
}

// webhookPermanent marks the webhook module's refusals (invalid request, payload too large,
// unknown endpoint) as permanent for both callers.
func webhookPermanent(err error) error {
	var problems validation.Problems
	if errors.As(err, &problems) || errors.Is(err, webhooks.ErrPayloadTooLarge) || errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "WebhookRefused", rules.Permanent(err))
	}
	return err
}
