package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/notify/sms"
	"github.com/pyairtable/automation-domain/store"
)

// FallbackInput asks for the next step of a delivery's channel fallback.
type FallbackInput struct {
	DeliveryID string `json:"delivery_id"`
	Channel    string `json:"channel"`
}

// FallbackResult is the new delivery, or Reason why there is none (the subscriber has no
// address on the channel).
type FallbackResult struct {
	Delivery notify.DeliverySpec `json:"delivery"`
	Reason   string              `json:"reason,omitempty"`
}

// Fallback adds a delivery on the next channel to the subscriber a failed or skipped delivery
// was addressed to, at their address on that channel. Workflows run it as a local activity; a
// retry returns the delivery the first run added.
func (a *Notifications) Fallback(ctx context.Context, in FallbackInput) (FallbackResult, error) {
	from, err := a.Store.GetDelivery(ctx, in.DeliveryID)
	if err != nil {
		return FallbackResult{}, fmt.Errorf("fallback of %s: %w", in.DeliveryID, err)
	}
	if from.SubscriberID == "" {
		return FallbackResult{Reason: "not addressed to a subscriber"}, nil
	}
	sub, err := a.Store.GetSubscriber(ctx, from.SubscriberID)
	if errors.Is(err, store.ErrNotFound) {
		return FallbackResult{Reason: "the subscriber was deleted"}, nil
	}
	if err != nil {
		return FallbackResult{}, fmt.Errorf("fallback of %s: %w", in.DeliveryID, err)
	}
	addr, key := sub.Email, strings.ToLower(strings.TrimSpace(sub.Email))
	if in.Channel == store.ChannelSMS {
		addr, key = sub.Phone, sub.Phone
	}
	if addr == "" {
		return FallbackResult{Reason: "the subscriber has no " + in.Channel + " address"}, nil
	}
	d, err := a.Store.AddFallbackDelivery(ctx, in.DeliveryID, store.FallbackDelivery{
		ID: store.NewID(), Channel: in.Channel, Recipient: addr, RecipientKey: key}, a.now())
	if err != nil {
		return FallbackResult{}, err
	}
	return FallbackResult{Delivery: notify.DeliverySpec{ID: d.ID, Recipient: d.Recipient,
		RecipientKey: d.RecipientKey, SubscriberID: d.SubscriberID}}, nil
}

// deliveryChannel is the channel a delivery goes out on: its own (a fallback step) or its
// notification's.
func deliveryChannel(d store.DeliveryForSend) string {
	if d.Delivery.Channel != "" {
		return d.Delivery.Channel
	}
	return d.Notification.Channel
}

// smsText is the text of an SMS delivery: the notification's body, or for an email falling
// back to SMS its subject and plain-text body, cut to the provider's limit.
func smsText(d store.DeliveryForSend) string {
	n := d.Notification
	if n.Channel == store.ChannelSMS {
		return n.Body
	}
	text := strings.TrimSpace(n.Subject + "\n\n" + n.Body)
	if utf8.RuneCountInString(text) > sms.MaxBody {
		r := []rune(text)
		text = string(r[:sms.MaxBody-1]) + "…"
	}
	return text
}

// HoldInput records that a delivery waits until Until for Reason.
type HoldInput struct {
	DeliveryID string    `json:"delivery_id"`
	Until      time.Time `json:"until"`
	Reason     string    `json:"reason"`
}

// HoldDelivery records on a delivery that it waits (quiet hours), so that the notification
// shows why it has not gone yet and until when. Workflows run it as a local activity.
func (a *Notifications) HoldDelivery(ctx context.Context, in HoldInput) error {
	return a.Store.HoldDelivery(ctx, in.DeliveryID, in.Until, in.Reason, a.now())
}
