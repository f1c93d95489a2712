package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/store"
)

// JoinDigestInput holds a delivery for its subscriber's digest.
type JoinDigestInput struct {
	DeliveryID string            `json:"delivery_id"`
	Rule       notify.DigestRule `json:"rule"`
}

// JoinDigestResult is the digest window a delivery joined, or why it was skipped instead.
type JoinDigestResult struct {
	DigestID string    `json:"digest_id,omitempty"`
	ClosesAt time.Time `json:"closes_at,omitempty"`
	// Leader is true for the delivery whose workflow waits for the window to close and sends it.
	Leader bool `json:"leader,omitempty"`
	// Skipped: the address is suppressed or the subscriber opted out, as DeliverResult's.
	Skipped    bool   `json:"skipped,omitempty"`
	SkipReason string `json:"skip_reason,omitempty"`
	SkipCode   string `json:"skip_code,omitempty"`
}

// JoinDigest holds a delivery for the open digest of its subscriber, category and channel,
// opening a window that closes as the rule says when there is none. A delivery that would be
// skipped (suppressed address, opted-out subscriber) is recorded skipped instead of held: the
// digest message is checked again when it is sent. Workflows run it as a local activity; a
// retry finds the digest the first run joined.
func (a *Notifications) JoinDigest(ctx context.Context, in JoinDigestInput) (JoinDigestResult, error) {
	d, err := a.Store.GetDeliveryForSend(ctx, in.DeliveryID)
	if err != nil {
		return JoinDigestResult{}, fmt.Errorf("digest %s: %w", in.DeliveryID, err)
	}
	if d.Delivery.DigestID == "" {
		if _, skipped, err := a.check(ctx, d); err != nil || skipped != nil {
			if skipped == nil {
				return JoinDigestResult{}, err
			}
			return JoinDigestResult{Skipped: true, SkipReason: skipped.SkipReason, SkipCode: skipped.SkipCode}, nil
		}
	}
	now := a.now()
	j, err := a.Store.JoinDigest(ctx, in.DeliveryID, store.DigestKey{SubscriberID: d.Delivery.SubscriberID,
		Category: d.Notification.Category, Channel: deliveryChannel(d), TemplateID: in.Rule.TemplateID},
		in.Rule.ClosesAt(now), now)
	if err != nil {
		return JoinDigestResult{}, err
	}
	return JoinDigestResult{DigestID: j.Digest.ID, ClosesAt: j.Digest.ClosesAt, Leader: j.Leader}, nil
}

// CloseDigestInput names the digest to close and compose.
type CloseDigestInput struct {
	DigestID string `json:"digest_id"`
}

// CloseDigestResult is the digest's notification, stored and ready for its SendNotification
// workflow (WorkflowID, with the tenant's prefix), or Reason why there is none.
type CloseDigestResult struct {
	Spec       notify.Spec `json:"spec"`
	WorkflowID string      `json:"workflow_id,omitempty"`
	Reason     string      `json:"reason,omitempty"`
}

// CloseDigest closes a digest window (later deliveries open the next one), composes the message
// listing its notifications and stores it. A digest that cannot be delivered (its subscriber was
// deleted) fails its notifications with the reason instead. Closing and composing again gives
// the same notification, so a retry or a second leader sends nothing twice.
func (a *Notifications) CloseDigest(ctx context.Context, in CloseDigestInput) (CloseDigestResult, error) {
	c, err := a.Store.CloseDigest(ctx, in.DigestID, a.now())
	if err != nil {
		return CloseDigestResult{}, err
	}
	if len(c.Items) == 0 {
		return CloseDigestResult{Reason: "the digest holds no notification"}, nil
	}
	spec, err := notify.ComposeDigest(ctx, a.Store, a.Templates, c)
	if errors.Is(err, notify.ErrDigestUndeliverable) {
		if ferr := a.Store.FailDigest(ctx, in.DigestID, err.Error(), a.now()); ferr != nil {
			return CloseDigestResult{}, ferr
		}
		return CloseDigestResult{Reason: err.Error()}, nil
	}
	if err != nil {
		return CloseDigestResult{}, fmt.Errorf("compose digest %s: %w", in.DigestID, err)
	}
	if _, err := a.Store.InsertNotification(ctx, spec.Row()); err != nil {
		return CloseDigestResult{}, err
	}
	return CloseDigestResult{Spec: spec, WorkflowID: tenant.WorkflowID(tenant.ID(ctx), spec.WorkflowID)}, nil
}
