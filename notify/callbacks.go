package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/pyairtable/automation-domain/internal/tenant"

	"github.com/pyairtable/automation-domain/notify/sms"
	"github.com/pyairtable/automation-domain/store"
)

// ProviderCallback is a status report a provider posted.
type ProviderCallback struct {
	// Provider names it ("twilio").
	Provider string
	// URL is the full URL the provider posted to, as it signed it (PUBLIC_URL + path + query).
	URL string
	// Params are the form fields; Signature the provider's signature header.
	Params    map[string]string
	Signature string
}

// HandleProviderCallback verifies a status callback and applies it to its delivery: Twilio's
// delivered marks it delivered and emits notification.delivered, undelivered/failed mark it
// failed and emit notification.failed; reports out of order or repeated change nothing.
// Errors: ErrInvalidSignature, ErrChannelNotConfigured, store.ErrNotFound (unknown delivery).
func (s *Service) HandleProviderCallback(ctx context.Context, cb ProviderCallback) (store.NotificationDelivery, error) {
	verifier, ok := s.sms.(sms.CallbackVerifier)
	if !ok || s.sms.Name() != cb.Provider {
		return store.NotificationDelivery{}, fmt.Errorf("%w: no %s provider is configured", ErrChannelNotConfigured, cb.Provider)
	}
	if !verifier.VerifyCallback(cb.URL, cb.Params, cb.Signature) {
		return store.NotificationDelivery{}, ErrInvalidSignature
	}
	sid := cb.Params["MessageSid"]
	status := cb.Params["MessageStatus"]
	if status == "" {
		status = cb.Params["SmsStatus"]
	}
	deliveryID := ""
	if u, err := url.Parse(cb.URL); err == nil {
		deliveryID = u.Query().Get("delivery_id")
	}
	// A provider's callback carries no credentials of a tenant: the delivery it names says whose
	// it is, and the update acts for that tenant.
	if deliveryID == "" && sid != "" {
		d, err := s.store.FindDeliveryByProviderMessageID(tenant.System(ctx), sid)
		if err != nil {
			return store.NotificationDelivery{}, fmt.Errorf("delivery of message %s: %w", sid, err)
		}
		deliveryID = d.ID
	}
	owner, err := s.store.NotificationDeliveryTenant(ctx, deliveryID)
	if err != nil {
		return store.NotificationDelivery{}, fmt.Errorf("delivery %s: %w", deliveryID, err)
	}
	ctx = tenant.With(ctx, owner)
	u := store.ProviderUpdate{ProviderMessageID: sid, Status: status, Outcome: sms.TwilioOutcome(status)}
	if code, err := strconv.Atoi(cb.Params["ErrorCode"]); err == nil && code != 0 {
		u.ErrorCode = strconv.Itoa(code)
		u.Error = fmt.Sprintf("%s reported %s (error %d)", cb.Provider, status, code)
		if text := sms.TwilioErrorText(code); text != "" {
			u.Error = fmt.Sprintf("%s reported %s: %s (error %d)", cb.Provider, status, text, code)
		}
	} else if u.Outcome == store.StatusFailed {
		u.Error = fmt.Sprintf("%s reported %s", cb.Provider, status)
	}
	d, changed, err := s.store.ApplyProviderUpdate(ctx, deliveryID, u, s.now().UTC())
	if err != nil {
		return d, err
	}
	if reason := smsSuppressionCode(u.ErrorCode); reason != "" && changed && d.Status == store.StatusFailed {
		// The recipient opted out by replying STOP, or the number is not a mobile one.
		sup := Suppression{Channel: store.ChannelSMS, Address: d.RecipientKey, Reason: reason, Source: cb.Provider,
			Detail: u.Error, CreatedAt: s.now().UTC()}
		if _, err := s.store.Suppress(ctx, &sup); err != nil {
			s.log.WarnContext(ctx, "suppress number", "delivery_id", d.ID, "error", err)
		}
	}
	if changed && (d.Status == store.StatusDelivered || d.Status == store.StatusFailed) {
		if err := s.publishDeliveryEvent(ctx, d); err != nil {
			// Stored: the provider's report is kept and the event is in the outbox or will be
			// emitted when the provider repeats it. Answer so the provider does not retry.
			s.log.WarnContext(ctx, "publish delivery event", "delivery_id", d.ID, "error", err)
		}
	}
	return d, nil
}

// publishDeliveryEvent emits notification.delivered or notification.failed for d.
func (s *Service) publishDeliveryEvent(ctx context.Context, d store.NotificationDelivery) error {
	n, err := s.store.GetNotification(ctx, d.NotificationID)
	if err != nil {
		return err
	}
	spec := Spec{ID: n.ID, Channel: n.Channel, TemplateID: n.TemplateID,
		CausationID: n.CausationID, CorrelationID: n.CorrelationID, Depth: n.Depth}
	if len(n.Metadata) > 0 {
		_ = json.Unmarshal(n.Metadata, &spec.Metadata)
	}
	typ := EventDelivered
	if d.Status == store.StatusFailed {
		typ = EventFailed
	}
	e := DeliveryEvent(typ, spec, DeliverySpec{ID: d.ID, Recipient: d.Recipient},
		EventData{Status: d.Status, Provider: d.Provider, ProviderMessageID: d.ProviderMessageID,
			ProviderStatus: d.ProviderStatus, Error: d.Error, ErrorCode: d.ErrorCode})
	_, _, err = s.events.Publish(ctx, e)
	return err
}

// smsSuppressionCode is the suppression reason of a Twilio error code reported in a callback.
func smsSuppressionCode(code string) string {
	switch code {
	case "21610":
		return SuppressUnsubscribed
	case "21211", "21214", "21217", "21401", "21407", "21421", "21614", "30005", "30006":
		return SuppressInvalidNumber
	}
	return ""
}
