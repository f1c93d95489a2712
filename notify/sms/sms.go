// Package sms sends text messages through a Provider. Twilio (github.com/twilio/twilio-go) is
// the one built in; another provider implements the same interface.
package sms

import (
	"context"
	"errors"
	"fmt"
)

// Message is one SMS to send.
type Message struct {
	To   string
	Body string
	// StatusCallback is the URL the provider reports delivery to ("" for none).
	StatusCallback string
}

// Result is an accepted message.
type Result struct {
	// MessageID is the provider's id (Twilio's message SID).
	MessageID string
	// Status is the provider's status at acceptance (queued, accepted, sent …).
	Status string
}

// Provider sends SMS.
type Provider interface {
	// Name identifies the provider ("twilio"); it is recorded on deliveries.
	Name() string
	// Send hands m to the provider. Errors are *Error.
	Send(ctx context.Context, m Message) (Result, error)
}

// CallbackVerifier is a Provider whose status callbacks carry a signature to check.
type CallbackVerifier interface {
	// VerifyCallback reports whether signature signs a callback of params posted to fullURL.
	VerifyCallback(fullURL string, params map[string]string, signature string) bool
}

// Error is a refused or failed send. Permanent errors (an invalid number, an unsubscribed
// recipient, bad credentials) are not worth retrying; others (timeouts, 5xx, 429) are.
type Error struct {
	Provider  string
	Code      int // the provider's error code (Twilio 21211 …), 0 when none
	Status    int // HTTP status, 0 when the request did not complete
	Message   string
	Permanent bool
	Err       error
}

func (e *Error) Error() string {
	switch {
	case e.Code != 0:
		return fmt.Sprintf("%s error %d: %s", e.Provider, e.Code, e.Message)
	case e.Status != 0:
		return fmt.Sprintf("%s HTTP %d: %s", e.Provider, e.Status, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Provider, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotConfigured is returned by sends when no SMS provider is configured.
var ErrNotConfigured = errors.New("the SMS channel is not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")

// Unconfigured is the provider used when none is configured: every send fails, permanently,
// with ErrNotConfigured.
type Unconfigured struct{}

// Name implements Provider.
func (Unconfigured) Name() string { return "none" }

// Send implements Provider.
func (Unconfigured) Send(context.Context, Message) (Result, error) {
	return Result{}, &Error{Provider: "sms", Message: ErrNotConfigured.Error(), Permanent: true, Err: ErrNotConfigured}
}

// MaxBody is the longest SMS body accepted (Twilio's limit: 1,600 characters).
const MaxBody = 1600
