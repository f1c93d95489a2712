// Package ports holds the interfaces one domain calls another through, with their request and
// result types, so that neither side imports the other: the workflow engine's notification and
// webhook steps and the rules engine's actions reach the notification, webhook and workflow
// modules through these, and package app has one adapter per callee module. It imports nothing
// of this module.
//
// The JSON tags are wire format: step requests and results travel through Temporal histories.
package ports

import "context"

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
