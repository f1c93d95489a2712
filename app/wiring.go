package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
	"github.com/pyairtable/automation-domain/webhooks"
)

// wireModules connects the domains to each other: the workflow engine's notification and
// webhook steps (ports.Notifier, ports.WebhookSender) and the rules engine's workflow,
// notification and webhook actions (rules.Targets) call the real modules through one adapter
// per callee module: notifier, workflowStarter and webhookSender. This file is the only place
// that knows both sides.
func (d *Deps) wireModules() {
	n, w := notifier{d.Notify}, webhookSender{d.Webhooks}
	d.StepNotifier, d.StepWebhooks = n, w
	d.RuleTargets = rules.Targets{Workflows: workflowStarter{d.Workflows}, Notifications: n, Webhooks: w}
}

// notifier is the notification module as the other domains call it.
type notifier struct{ notify *notify.Service }

// SendStepNotification sends a workflow step's notification and waits for its outcome, so the
// step's output says whether it was sent (the notification module retries delivery itself; a
// failed notification fails the step without a second round of retries).
func (n notifier) SendStepNotification(ctx context.Context, req ports.StepNotification) (ports.StepNotificationResult, error) {
	meta := map[string]any{"workflow_execution_id": req.ExecutionID, "workflow_step_id": req.StepID}
	var (
		sent notify.Notification
		err  error
	)
	// The execution's cause (a rule's triggering event) is the notification's cause too, so its
	// notification.* events continue the chain like the execution's workflow.* event does.
	var cause *store.Event
	if req.Cause != nil {
		cause = causeEvent(*req.Cause)
	}
	switch req.Channel {
	case "sms":
		sent, err = n.notify.SendSMS(ctx, notify.SMSRequest{To: req.To, Message: req.Body, TemplateID: req.TemplateID,
			TemplateData: req.TemplateData, Metadata: meta, IdempotencyKey: "workflow:" + req.IdempotencyKey, Cause: cause})
	default:
		sent, err = n.notify.SendEmail(ctx, notify.EmailRequest{To: req.To, Subject: req.Subject, Body: req.Body,
			TemplateID: req.TemplateID, TemplateData: req.TemplateData, Metadata: meta,
			IdempotencyKey: "workflow:" + req.IdempotencyKey, Cause: cause})
	}
	if err != nil {
		if refused(err) {
			return ports.StepNotificationResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "NotificationRefused", err)
		}
		return ports.StepNotificationResult{}, err
	}
	done, err := n.await(ctx, sent.ID)
	if err != nil {
		return ports.StepNotificationResult{}, fmt.Errorf("await notification %s: %w", sent.ID, err)
	}
	res := ports.StepNotificationResult{IDs: []string{done.ID}, Status: done.Status}
	if done.Status == store.StatusFailed {
		msg := fmt.Sprintf("notification %s failed for every recipient", done.ID)
		if len(done.Deliveries) > 0 && done.Deliveries[0].Error != "" {
			msg += fmt.Sprintf(" (%s: %s)", done.Deliveries[0].Recipient, done.Deliveries[0].Error)
		}
		return res, temporal.NewNonRetryableApplicationError(msg, "NotificationFailed", nil)
	}
	return res, nil
}

// await waits for the notification's outcome while the step's attempt has time left. The
// notification module may hold a notification far longer than a step's timeout (one minute by
// default): the per-recipient throttle, send_at and the backoff between SMTP 4xx retries queue
// it, never drop it. Timing out would fail the attempt, and after the last one the execution,
// although the message still goes out; so a notification that is not final shortly before the
// attempt's deadline completes the step with its current status (queued or sending) instead. It
// is durably in the notification module's hands, which reports its outcome as notification.sent
// or notification.failed.
func (n notifier) await(ctx context.Context, id string) (notify.Notification, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return n.notify.Await(ctx, id)
	}
	margin := min(5*time.Second, time.Until(deadline)/4)
	wctx, cancel := context.WithDeadline(ctx, deadline.Add(-margin))
	defer cancel()
	done, err := n.notify.Await(wctx, id)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return n.notify.Get(ctx, id)
	}
	return done, err
}

// workflowStarter is the workflow engine as the other domains call it.
type workflowStarter struct{ engine *engine.Service }

// Execute starts a rule's workflow action.
func (w workflowStarter) Execute(ctx context.Context, req ports.WorkflowRequest) (string, error) {
	e, err := w.engine.Execute(ctx, engine.ExecuteRequest{
		DefinitionID: req.DefinitionID, Input: req.Input, Priority: req.Priority,
		IdempotencyKey: req.IdempotencyKey, TriggeredBy: "rule", Cause: causeEvent(req.Cause),
	})
	var engineErr *engine.Error
	switch {
	case errors.As(err, &engineErr):
		return "", rules.Permanent(err) // a disabled definition does not start by retrying
	case errors.Is(err, store.ErrNotFound):
		// The store's bare "not found" would leave the rule's history without the id.
		return "", rules.Permanentf("workflow definition %q does not exist (or was deleted): %w", req.DefinitionID, err)
	}
	return e.ID, err
}

// SendEmail sends a rule's email action; it returns once the notification is queued.
func (n notifier) SendEmail(ctx context.Context, req ports.EmailRequest) (string, error) {
	sent, err := n.notify.SendEmail(ctx, notify.EmailRequest{To: req.To, Subject: req.Subject, Body: req.Body,
		TemplateID: req.TemplateID, TemplateData: req.TemplateData, IdempotencyKey: req.IdempotencyKey, Cause: causeEvent(req.Cause)})
	return sent.ID, permanentIfRefused(err)
}

// SendSMS sends a rule's SMS action; it returns once the notification is queued.
func (n notifier) SendSMS(ctx context.Context, req ports.SMSRequest) (string, error) {
	sent, err := n.notify.SendSMS(ctx, notify.SMSRequest{To: req.To, Message: req.Message, TemplateID: req.TemplateID,
		TemplateData: req.TemplateData, IdempotencyKey: req.IdempotencyKey, Cause: causeEvent(req.Cause)})
	return sent.ID, permanentIfRefused(err)
}

// causeEvent is the part of the triggering event the called module continues the chain with.
func causeEvent(c ports.EventCause) *store.Event {
	return &store.Event{ID: c.EventID, CorrelationID: c.CorrelationID, Depth: c.Depth}
}

// refused reports whether the notification module refused a request for a reason a retry
// cannot fix: invalid recipients, a template that does not render, an unknown template, a channel
// that is not configured, a reused idempotency key with another request.
func refused(err error) bool {
	var problems validation.Problems
	return errors.As(err, &problems) || errors.Is(err, notify.ErrTemplateNotFound) ||
		errors.Is(err, notify.ErrChannelNotConfigured) || errors.Is(err, notify.ErrIdempotencyMismatch)
}

// permanentIfRefused marks a refusal as permanent for the rules engine (the action fails at once,
// its history showing the module's message as it is; a Temporal application error here would
// print the message twice with its type).
func permanentIfRefused(err error) error {
	if err != nil && refused(err) {
		return rules.Permanent(err)
	}
	return err
}

// webhookSender is the webhook module as the other domains call it: it queues a workflow step's
// or a rule action's webhook message and returns once the message is stored with a delivery per
// endpoint (the webhook module retries each delivery).
type webhookSender struct{ webhooks *webhooks.Service }

// SendStepWebhook queues a workflow step's webhook.
func (w webhookSender) SendStepWebhook(ctx context.Context, req ports.StepWebhook) (ports.StepWebhookResult, error) {
	payload, err := json.Marshal(req.Payload)
	if err != nil {
		return ports.StepWebhookResult{}, temporal.NewNonRetryableApplicationError(
			"webhook payload is not JSON: "+err.Error(), "WebhookRefused", nil)
	}
	m, err := w.webhooks.Deliver(ctx, webhooks.DeliverRequest{
		EventType: req.EventType, Payload: payload, EndpointIDs: req.EndpointIDs,
		IdempotencyKey: "workflow:" + req.IdempotencyKey, Source: "workflow",
	})
	if err != nil {
		if webhookRefused(err) {
			return ports.StepWebhookResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "WebhookRefused", err)
		}
		return ports.StepWebhookResult{}, err
	}
	res := ports.StepWebhookResult{DeliveryIDs: make([]string, 0, len(m.Deliveries))}
	for _, d := range m.Deliveries {
		res.DeliveryIDs = append(res.DeliveryIDs, d.ID)
	}
	return res, nil
}

// Deliver queues a rule action's webhook.
func (w webhookSender) Deliver(ctx context.Context, eventType string, payload json.RawMessage, key string) (string, error) {
	m, err := w.webhooks.Deliver(ctx, webhooks.DeliverRequest{
		EventType: eventType, Payload: payload, IdempotencyKey: key, Source: "rule",
	})
	if err != nil && webhookRefused(err) {
		return "", rules.Permanent(err)
	}
	return m.ID, err
}

// webhookRefused reports whether the webhook module refused a request for a reason a retry
// cannot fix: an invalid request, a payload over the limit, an unknown endpoint.
func webhookRefused(err error) bool {
	var problems validation.Problems
	return errors.As(err, &problems) || errors.Is(err, webhooks.ErrPayloadTooLarge) || errors.Is(err, store.ErrNotFound)
}
