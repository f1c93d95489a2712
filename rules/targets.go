package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// The three modules rule actions call into are reached through these interfaces, so that the
// rules engine depends on what it needs and nothing more. Every call carries an idempotency key
// derived from (event id, rule id, action index): an implementation must act at most once per
// key and return the first call's id when the key comes again (a retried action activity calls
// again after a crash or a timeout).
//
// Errors: return a PermanentError (or an error wrapping validation.Problems, store.ErrNotFound
// or store.ErrConflict) for a request that can never succeed — unknown definition or template,
// invalid recipient; the action then fails at once. Any other error is retried with backoff.

// WorkflowStarter executes workflow definitions (the workflow engine module).
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
	Cause store.Event
}

// EmailRequest is a rendered email notification action.
type EmailRequest struct {
	To []string `json:"to"`
	// Subject and Body are used when TemplateID is empty; with TemplateID the notification
	// module renders its template with TemplateData.
	Subject        string         `json:"subject,omitempty"`
	Body           string         `json:"body,omitempty"`
	TemplateID     string         `json:"template_id,omitempty"`
	TemplateData   map[string]any `json:"template_data,omitempty"`
	IdempotencyKey string         `json:"idempotency_key"`
	// Cause is the triggering event: the notification's events continue its chain.
	Cause store.Event `json:"-"`
}

// SMSRequest is a rendered SMS notification action.
type SMSRequest struct {
	To             []string       `json:"to"`
	Message        string         `json:"message,omitempty"`
	TemplateID     string         `json:"template_id,omitempty"`
	TemplateData   map[string]any `json:"template_data,omitempty"`
	IdempotencyKey string         `json:"idempotency_key"`
	Cause          store.Event    `json:"-"`
}

// Notifier sends notifications (the notification module). Both calls queue the notification
// durably and return its id; delivery is the module's business.
type Notifier interface {
	SendEmail(ctx context.Context, req EmailRequest) (notificationID string, err error)
	SendSMS(ctx context.Context, req SMSRequest) (notificationID string, err error)
}

// WebhookSender fans an event out to the subscribed webhook endpoints (the webhook module).
type WebhookSender interface {
	// Deliver queues eventType with payload (a JSON object) and returns the message id.
	Deliver(ctx context.Context, eventType string, payload json.RawMessage, idempotencyKey string) (messageID string, err error)
}

// Targets are the modules actions call. A nil field makes its action type unavailable: a rule
// using it fails validation (422) instead of doing nothing.
type Targets struct {
	Workflows     WorkflowStarter
	Notifications Notifier
	Webhooks      WebhookSender
}

// Available reports whether actions of type typ can run with these targets. emit_event always
// can: it publishes on the event bus.
func (t Targets) Available(typ string) bool {
	switch typ {
	case ActionWorkflow:
		return t.Workflows != nil
	case ActionNotification:
		return t.Notifications != nil
	case ActionWebhook:
		return t.Webhooks != nil
	case ActionEmitEvent:
		return true
	}
	return false
}

// PermanentError marks a failure that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// IsPermanent reports whether err cannot be fixed by retrying.
func IsPermanent(err error) bool {
	var pe *PermanentError
	var problems validation.Problems
	return errors.As(err, &pe) || errors.As(err, &problems) ||
		errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict)
}

// IdempotencyKey is the key of action index of rule ruleID run for event eventID. The same
// action of the same rule for the same event always has the same key, so a retried action never
// acts twice.
func IdempotencyKey(eventID, ruleID string, index int) string {
	return fmt.Sprintf("automation:%s:%s:%d", eventID, ruleID, index)
}
