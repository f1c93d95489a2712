// Package ports holds the interfaces one domain calls another through, one per callee module,
// with their request and result types, so that neither side imports the other: the workflow
// engine's notification and webhook steps and the rules engine's actions reach the notification,
// webhook and workflow modules through these, and package app has one adapter per callee module.
// It imports nothing of this module.
//
// The JSON tags are wire format: step requests and results travel through Temporal histories.
package ports

import (
	"context"
	"encoding/json"
)

// Every call carries an idempotency key derived from what asks (a step: execution and step id;
// a rule action: event, rule and action index): an implementation acts at most once per key and
// returns the first call's result when the key comes again (a retried activity calls again after
// a crash or a timeout).

// Notifier is the notification module as the other domains call it.
type Notifier interface {
	// SendStepNotification sends a workflow step's email or SMS and waits for its outcome.
	SendStepNotification(ctx context.Context, req StepNotification) (StepNotificationResult, error)
	// SendEmail and SendSMS queue a rule action's notification durably and return its id;
	// delivery is the module's business.
	SendEmail(ctx context.Context, req EmailRequest) (notificationID string, err error)
	SendSMS(ctx context.Context, req SMSRequest) (notificationID string, err error)
}

// WorkflowStarter is the workflow engine as the other domains call it: rule actions execute
// definitions through it.
type WorkflowStarter interface {
	// Execute starts the definition and returns the execution id.
	Execute(ctx context.Context, req WorkflowRequest) (executionID string, err error)
}

// WorkflowRequest is a rendered workflow action.
type WorkflowRequest struct {
	DefinitionID string
	Input        map[string]any
	// Priority is low, normal, high or critical.
	Priority       string
	IdempotencyKey string
	// Cause is the triggering event: the execution's workflow.* event continues its chain.
	Cause EventCause
}

// EmailRequest is a rendered email notification action.
type EmailRequest struct {
	To []string
	// Subject and Body are used when TemplateID is empty; with TemplateID the notification
	// module renders its template with TemplateData.
	Subject        string
	Body           string
	TemplateID     string
	TemplateData   map[string]any
	IdempotencyKey string
	// Cause is the triggering event: the notification's events continue its chain.
	Cause EventCause
}

// SMSRequest is a rendered SMS notification action.
type SMSRequest struct {
	To             []string
	Message        string
	TemplateID     string
	TemplateData   map[string]any
	IdempotencyKey string
	Cause          EventCause
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
	// Cause is the event whose handling started the execution, if any: the notification's
	// events must continue its chain, or a rule reacting to notification.sent by running a
	// workflow that notifies again would loop without ever reaching the depth limit.
	Cause *EventCause `json:"cause,omitempty"`
}

// EventCause is the part of an event a caused event needs (see events.Caused): the interpreter
// carries it for executions started while handling an event (an automation rule's action).
type EventCause struct {
	EventID       string `json:"event_id"`
	CorrelationID string `json:"correlation_id"`
	Depth         int    `json:"depth"`
}

// StepNotificationResult is what a notification step outputs.
type StepNotificationResult struct {
	// IDs of the notifications created (one per recipient or one in all, as the module keeps them).
	IDs    []string `json:"ids"`
	Status string   `json:"status"`
}

// WebhookSender is the webhook module as the other domains call it: both calls hand an event
// to durable delivery (each subscribed endpoint, signed, with retries) and return once it is
// accepted.
type WebhookSender interface {
	// SendStepWebhook delivers a workflow step's event.
	SendStepWebhook(ctx context.Context, req StepWebhook) (StepWebhookResult, error)
	// Deliver queues a rule action's eventType with payload (a JSON object) and returns the
	// message id.
	Deliver(ctx context.Context, eventType string, payload json.RawMessage, idempotencyKey string) (messageID string, err error)
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
