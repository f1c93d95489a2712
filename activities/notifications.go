package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/notify/email"
	"github.com/pyairtable/automation-domain/notify/sms"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
)

// Notifications carries out the side effects of the SendNotification workflow: storing the
// notification, reserving throttle slots, and sending each delivery through SMTP or the SMS
// provider while recording every attempt.
type Notifications struct {
	Store *store.Store
	// Channels are the providers and delivery settings of the notification module.
	notify.Channels
	// Now is the clock (tests replace it); nil means time.Now.
	Now func() time.Time
	// Metrics count the sends (nil: none).
	Metrics *NotificationMetrics
	// Templates renders digests with their templates.
	Templates *templating.Engine
}

// Error types of failed deliveries, for the workflow and for Temporal's UI.
const (
	ErrTypePermanent = "NotificationPermanentFailure"
	ErrTypeTransient = "NotificationTransientFailure"
)

func (a *Notifications) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

// PrepareInput asks Prepare to store the notification and, with Reserve, to reserve the
// throttle slots of its deliveries.
type PrepareInput struct {
	Spec    notify.Spec `json:"spec"`
	Reserve bool        `json:"reserve"`
}

// SlotsResult holds each delivery's send slot, in the order of the deliveries.
type SlotsResult struct {
	Slots []time.Time `json:"slots"`
}

// Prepare stores the notification unless it is stored already (the API normally has), and
// reserves throttle slots when asked. Workflows run it as a local activity: its input, the
// whole notification, is then not copied into the history again.
func (a *Notifications) Prepare(ctx context.Context, in PrepareInput) (SlotsResult, error) {
	// Usually the API stored it: a read spares a write transaction.
	exists, err := a.Store.NotificationExists(ctx, in.Spec.ID)
	if err != nil {
		return SlotsResult{}, fmt.Errorf("prepare notification %s: %w", in.Spec.ID, err)
	}
	if !exists {
		if _, err := a.Store.InsertNotification(ctx, in.Spec.Row()); err != nil {
			return SlotsResult{}, fmt.Errorf("prepare notification %s: %w", in.Spec.ID, err)
		}
	}
	if !in.Reserve {
		return SlotsResult{}, nil
	}
	return a.ReserveSlots(ctx, ReserveInput{Channel: in.Spec.Channel, Deliveries: in.Spec.Deliveries})
}

// ReserveInput names the deliveries that need throttle slots.
type ReserveInput struct {
	Channel    string                `json:"channel"`
	Deliveries []notify.DeliverySpec `json:"deliveries"`
}

// ReserveSlots reserves each delivery's send slot under the per-recipient throttle; a slot in
// the future means the workflow waits for it.
func (a *Notifications) ReserveSlots(ctx context.Context, in ReserveInput) (SlotsResult, error) {
	reqs := make([]store.SlotRequest, 0, len(in.Deliveries))
	for _, d := range in.Deliveries {
		if d.Digest != nil {
			continue // held for a digest: its own send takes no slot
		}
		reqs = append(reqs, store.SlotRequest{DeliveryID: d.ID, RecipientKey: d.RecipientKey})
	}
	slots, err := a.Store.ReserveThrottleSlots(ctx, in.Channel, reqs, a.RecipientLimit, a.RecipientWindow, a.now())
	if err != nil {
		return SlotsResult{}, err
	}
	out := SlotsResult{Slots: make([]time.Time, len(in.Deliveries))}
	for i, d := range in.Deliveries {
		out.Slots[i] = slots[d.ID]
	}
	return out, nil
}

// DeliverInput names one delivery to send.
type DeliverInput struct {
	DeliveryID string `json:"delivery_id"`
}

// DeliverResult is an accepted send.
type DeliverResult struct {
	Attempt           int    `json:"attempt"`
	Provider          string `json:"provider"`
	ProviderMessageID string `json:"provider_message_id"`
	ProviderStatus    string `json:"provider_status,omitempty"`
	// AlreadySent is true when an earlier attempt had sent it and nothing was sent now.
	AlreadySent bool `json:"already_sent,omitempty"`
	// Recorded is false when the send succeeded but writing that down failed; the workflow then
	// records it with RecordSent rather than letting a retry send it again.
	Recorded bool `json:"recorded"`
	// ThrottledFor, when positive, means nothing was sent: the recipient had its fill for the
	// window, and the workflow waits this long before trying again.
	ThrottledFor time.Duration `json:"throttled_for,omitempty"`
	// Skipped means nothing was sent on purpose: the address is suppressed (SkipCode
	// "suppressed") or the subscriber opted out ("opted_out"); the delivery is recorded skipped
	// with SkipReason.
	Skipped    bool   `json:"skipped,omitempty"`
	SkipReason string `json:"skip_reason,omitempty"`
	SkipCode   string `json:"skip_code,omitempty"`
}

// DeliverEmail sends one delivery of an email notification. A delivery that an earlier attempt
// sent is not sent again; every attempt is recorded with its Message-ID, which is the same for
// every attempt of a delivery so that receivers can drop a duplicate. 5xx replies fail at once
// (non-retryable); 4xx replies and connection failures return a retryable error and Temporal's
// retry policy tries again with exponential backoff.
func (a *Notifications) DeliverEmail(ctx context.Context, in DeliverInput) (res DeliverResult, err error) {
	var created time.Time
	defer func() { a.Metrics.observe(ctx, "email", created, res, err) }()
	d, done, err := a.load(ctx, in.DeliveryID)
	created = d.Notification.CreatedAt
	if err != nil || done != nil {
		return deref(done), err
	}
	check, skipped, err := a.check(ctx, d)
	if err != nil || skipped != nil {
		return deref(skipped), err
	}
	if wait, err := a.admit(ctx, d); err != nil || wait > 0 {
		return DeliverResult{ThrottledFor: wait}, err
	}
	n := d.Notification
	messageID := email.NewMessageID(d.Delivery.ID, a.Email.From())
	attempt := int(activity.GetInfo(ctx).Attempt)
	if err := a.Store.StartAttempt(ctx, d.Delivery.ID, attempt, "smtp", messageID, a.now()); err != nil {
		return DeliverResult{}, fmt.Errorf("deliver %s: %w", d.Delivery.ID, err)
	}
	var cc, bcc []string
	_ = json.Unmarshal(n.Cc, &cc) // written by Row from a []string
	_ = json.Unmarshal(n.Bcc, &bcc)
	headers := map[string]string{"X-Notification-ID": n.ID, "X-Delivery-ID": d.Delivery.ID}
	if !check.Transactional && len(a.UnsubscribeKey) > 0 && a.PublicURL != "" {
		for k, v := range notify.UnsubscribeHeaders(a.UnsubscribeKey, a.PublicURL, a.Email.From(), notify.Unsubscribe{
			TenantID: n.TenantID, Channel: store.ChannelEmail, Address: d.Delivery.RecipientKey,
			SubscriberID: check.SubscriberID, Category: n.Category, Expires: a.now().Add(notify.UnsubscribeTTL),
		}) {
			headers[k] = v
		}
	}
	sendErr := a.Email.Send(ctx, email.Message{
		MessageID: messageID, To: d.Delivery.Recipient, Cc: cc, Bcc: bcc, ReplyTo: n.ReplyTo,
		Subject: n.Subject, Text: n.Body, HTML: n.HTMLBody, Priority: n.Priority,
		Headers: headers,
	})
	if sendErr != nil {
		var e *email.Error
		permanent := errors.As(sendErr, &e) && e.Permanent
		code := ""
		if e != nil {
			code = e.CodeString()
		}
		if permanent && e != nil && e.Code >= 500 && e.Code < 600 {
			// A hard bounce at send time: do not mail the address again.
			a.suppress(ctx, store.ChannelEmail, d.Delivery.RecipientKey, notify.SuppressHardBounce, "smtp", sendErr.Error())
		}
		return DeliverResult{}, a.failAttempt(ctx, d.Delivery.ID, attempt, sendErr, code, permanent)
	}
	res = DeliverResult{Attempt: attempt, Provider: "smtp", ProviderMessageID: messageID}
	res.Recorded = a.Store.FinishAttempt(ctx, d.Delivery.ID, attempt,
		store.AttemptOutcome{Sent: true, ProviderMessageID: messageID}, a.now()) == nil
	return res, nil
}

// DeliverSMS sends one delivery of an SMS notification through the provider, asking it to
// report delivery to the status callback route. Permanent provider errors (an invalid number,
// an unsubscribed recipient) fail at once; others are retried.
func (a *Notifications) DeliverSMS(ctx context.Context, in DeliverInput) (res DeliverResult, err error) {
	var created time.Time
	defer func() { a.Metrics.observe(ctx, "sms", created, res, err) }()
	d, done, err := a.load(ctx, in.DeliveryID)
	created = d.Notification.CreatedAt
	if err != nil || done != nil {
		return deref(done), err
	}
	if _, skipped, err := a.check(ctx, d); err != nil || skipped != nil {
		return deref(skipped), err
	}
	if wait, err := a.admit(ctx, d); err != nil || wait > 0 {
		return DeliverResult{ThrottledFor: wait}, err
	}
	attempt := int(activity.GetInfo(ctx).Attempt)
	provider := a.SMS.Name()
	if err := a.Store.StartAttempt(ctx, d.Delivery.ID, attempt, provider, "", a.now()); err != nil {
		return DeliverResult{}, fmt.Errorf("deliver %s: %w", d.Delivery.ID, err)
	}
	sent, sendErr := a.SMS.Send(ctx, sms.Message{
		To: d.Delivery.Recipient, Body: smsText(d), StatusCallback: a.statusCallback(provider, d.Delivery.ID),
	})
	if sendErr != nil {
		var e *sms.Error
		permanent := errors.As(sendErr, &e) && e.Permanent
		code := ""
		if e != nil && e.Code != 0 {
			code = strconv.Itoa(e.Code)
		}
		if reason := smsSuppression(e); reason != "" {
			a.suppress(ctx, store.ChannelSMS, d.Delivery.RecipientKey, reason, provider, sendErr.Error())
		}
		return DeliverResult{}, a.failAttempt(ctx, d.Delivery.ID, attempt, sendErr, code, permanent)
	}
	res = DeliverResult{Attempt: attempt, Provider: provider, ProviderMessageID: sent.MessageID, ProviderStatus: sent.Status}
	res.Recorded = a.Store.FinishAttempt(ctx, d.Delivery.ID, attempt, store.AttemptOutcome{
		Sent: true, ProviderMessageID: sent.MessageID, ProviderStatus: sent.Status}, a.now()) == nil
	return res, nil
}

// check applies the suppression list and the subscriber's preferences at the moment of sending:
// skipped is set (and the delivery recorded skipped) when the delivery is not to be sent.
func (a *Notifications) check(ctx context.Context, d store.DeliveryForSend) (store.SendCheck, *DeliverResult, error) {
	c, err := a.Store.CheckSend(ctx, deliveryChannel(d), d.Delivery.RecipientKey, d.Delivery.SubscriberID, d.Notification.Category)
	if err != nil {
		return c, nil, fmt.Errorf("deliver %s: check preferences: %w", d.Delivery.ID, err)
	}
	if c.Skip == "" {
		return c, nil, nil
	}
	if _, err := a.Store.SkipDelivery(ctx, d.Delivery.ID, c.Reason, c.Skip, a.now()); err != nil {
		return c, nil, fmt.Errorf("deliver %s: record skip: %w", d.Delivery.ID, err)
	}
	return c, &DeliverResult{Skipped: true, SkipReason: c.Reason, SkipCode: c.Skip, Recorded: true}, nil
}

// suppress adds an address to the suppression list after a permanent failure; a failure to
// record it is logged (the delivery's own failure is what the caller reports).
func (a *Notifications) suppress(ctx context.Context, channel, address, reason, source, detail string) {
	if len(detail) > 500 {
		detail = detail[:500]
	}
	if _, err := a.Store.Suppress(ctx, &store.NotificationSuppression{Channel: channel, Address: address,
		Reason: reason, Source: source, Detail: detail, CreatedAt: a.now()}); err != nil {
		activity.GetLogger(ctx).Warn("suppress address", "address", address, "error", err)
	}
}

// smsSuppression is the suppression reason of a permanent SMS error ("" when it does not
// suppress): Twilio's 21610 (the recipient replied STOP) and its invalid-number errors.
func smsSuppression(e *sms.Error) string {
	if e == nil || !e.Permanent {
		return ""
	}
	switch e.Code {
	case 21610:
		return notify.SuppressUnsubscribed
	case 21211, 21214, 21217, 21401, 21407, 21421, 21614:
		return notify.SuppressInvalidNumber
	}
	return ""
}

// admit applies the per-recipient throttle at the moment of sending: a positive wait means the
// recipient's window is full.
func (a *Notifications) admit(ctx context.Context, d store.DeliveryForSend) (time.Duration, error) {
	wait, err := a.Store.AdmitThrottled(ctx, deliveryChannel(d), d.Delivery.ID, d.Delivery.RecipientKey,
		a.RecipientLimit, a.RecipientWindow, a.now())
	if err != nil {
		return 0, fmt.Errorf("deliver %s: %w", d.Delivery.ID, err)
	}
	return wait, nil
}

// StatusCallbackPath is the route providers report message status to.
func StatusCallbackPath(provider string) string {
	return "/api/v1/notifications/providers/" + provider + "/status"
}

func (a *Notifications) statusCallback(provider, deliveryID string) string {
	if a.PublicURL == "" || provider == "none" {
		return ""
	}
	return a.PublicURL + StatusCallbackPath(provider) + "?delivery_id=" + url.QueryEscape(deliveryID)
}

// load reads a delivery for sending. done is set when an earlier attempt already sent it.
func (a *Notifications) load(ctx context.Context, id string) (store.DeliveryForSend, *DeliverResult, error) {
	d, err := a.Store.GetDeliveryForSend(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return d, nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypePermanent, err)
	}
	if err != nil {
		return d, nil, err
	}
	switch d.Delivery.Status {
	case store.StatusSent, store.StatusDelivered:
		res := &DeliverResult{Provider: d.Delivery.Provider, ProviderMessageID: d.Delivery.ProviderMessageID,
			ProviderStatus: d.Delivery.ProviderStatus, AlreadySent: true, Recorded: true}
		for _, at := range d.Delivery.Attempts {
			if at.Status == store.StatusSent {
				res.Attempt = at.Attempt
			}
		}
		return d, res, nil
	case store.StatusFailed:
		msg := "delivery " + id + " has failed already: " + d.Delivery.Error
		return d, nil, temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, nil)
	}
	return d, nil, nil
}

// failAttempt records a failed attempt and returns the error for Temporal: non-retryable for a
// permanent failure, retryable otherwise. The provider's code travels in the error's details.
func (a *Notifications) failAttempt(ctx context.Context, deliveryID string, attempt int, sendErr error, code string, permanent bool) error {
	msg := sendErr.Error()
	if err := a.Store.FinishAttempt(ctx, deliveryID, attempt, store.AttemptOutcome{
		Error: msg, ErrorCode: code, Retryable: !permanent}, a.now()); err != nil {
		activity.GetLogger(ctx).Warn("record failed attempt", "delivery_id", deliveryID, "error", err)
	}
	if permanent {
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, sendErr, code)
	}
	return temporal.NewApplicationErrorWithCause(msg, ErrTypeTransient, sendErr, code)
}

// RecordSentInput records a send whose result could not be written by the delivery activity.
type RecordSentInput struct {
	DeliveryID string        `json:"delivery_id"`
	Result     DeliverResult `json:"result"`
}

// RecordSent writes down an accepted send (retried until the database takes it).
func (a *Notifications) RecordSent(ctx context.Context, in RecordSentInput) error {
	return a.Store.FinishAttempt(ctx, in.DeliveryID, in.Result.Attempt, store.AttemptOutcome{
		Sent: true, ProviderMessageID: in.Result.ProviderMessageID, ProviderStatus: in.Result.ProviderStatus}, a.now())
}

// FailInput marks a delivery failed for good.
type FailInput struct {
	DeliveryID string `json:"delivery_id"`
	Reason     string `json:"reason"`
	Code       string `json:"code,omitempty"`
}

// FailDelivery marks a delivery failed after its last attempt (or a permanent error); changed
// is false when it had been sent after all.
func (a *Notifications) FailDelivery(ctx context.Context, in FailInput) (bool, error) {
	return a.Store.FailDelivery(ctx, in.DeliveryID, in.Reason, in.Code, a.now())
}

func deref(r *DeliverResult) DeliverResult {
	if r == nil {
		return DeliverResult{}
	}
	return *r
}
