package rules

import (
	"errors"
	"fmt"

	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Rule actions reach the workflow, notification and webhook modules through the interfaces of
// package ports. Errors: return a PermanentError (or an error wrapping validation.Problems,
// store.ErrNotFound or store.ErrConflict) for a request that can never succeed — unknown
// definition or template, invalid recipient; the action then fails at once. Any other error is
// retried with backoff.

// Targets are the modules actions call. A nil field makes its action type unavailable: a rule
// using it fails validation (422) instead of doing nothing.
type Targets struct {
	Workflows     ports.WorkflowStarter
	Notifications ports.Notifier
	Webhooks      ports.WebhookSender
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
