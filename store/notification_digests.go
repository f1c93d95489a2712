package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Statuses of a digest window.
const (
	DigestOpen   = "open"
	DigestClosed = "closed"
)

// HoldDigest is the held_reason of a delivery held for its subscriber's digest.
const HoldDigest = "digest"

// digestTakeover is how long past its closing time an open digest waits for its leader before
// the next delivery to join takes the window over and sends it (a leader whose workflow was
// terminated never closes it).
const digestTakeover = 10 * time.Minute

// NotificationDigest is one window of a subscriber's digest of a category on a channel (schema
// 00017): open while deliveries join it, closed once its message is composed.
type NotificationDigest struct {
	TenantID     string `gorm:"column:tenant_id" json:"-"`
	ID           string `gorm:"primaryKey" json:"id"`
	SubscriberID string `json:"subscriber_id"`
	Category     string `json:"category"`
	Channel      string `json:"channel"`
	Status       string `json:"status"`
	// LeaderID is the delivery whose workflow holds the window and sends the digest.
	LeaderID string    `json:"leader_id"`
	ClosesAt time.Time `json:"closes_at"`
	// NotificationID and DeliveryID are the digest message's, chosen when the window opens.
	NotificationID string     `json:"notification_id"`
	DeliveryID     string     `json:"delivery_id"`
	TemplateID     string     `json:"template_id,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	ClosedAt       *time.Time `json:"closed_at,omitempty"`
}

// DigestKey names the digest a delivery joins.
type DigestKey struct {
	SubscriberID, Category, Channel string
	// TemplateID renders the digest (the category's digest template when the window opens).
	TemplateID string
}

// DigestJoin is what joining a digest did.
type DigestJoin struct {
	Digest NotificationDigest
	// Leader is true for the delivery that opened the window (or took over one its leader left):
	// its workflow waits until ClosesAt and sends the digest.
	Leader bool
}

// JoinDigest holds delivery deliveryID for the open digest of key: it opens one closing at
// closesAt when there is none (the delivery is then its leader), else it joins the open one.
// The delivery becomes digested, held until the window closes, and points at the digest and its
// message. It is idempotent: a delivery that joined already gets its digest again.
func (s *Store) JoinDigest(ctx context.Context, deliveryID string, key DigestKey, closesAt, now time.Time) (DigestJoin, error) {
	var out DigestJoin
	err := s.Tx(ctx, func(ts *Store) error {
		tx := ts.db
		if err := ts.lockDigestKey(key); err != nil {
			return err
		}
		var d NotificationDelivery
		if err := tx.Where("id = ?", deliveryID).Take(&d).Error; err != nil {
			return classify(err)
		}
		if d.DigestID != "" {
			if err := tx.Where("id = ?", d.DigestID).Take(&out.Digest).Error; err != nil {
				return classify(err)
			}
			out.Leader = out.Digest.LeaderID == deliveryID
			return nil
		}
		var open []NotificationDigest
		if err := tx.Where("subscriber_id = ? AND category = ? AND channel = ? AND status = ?",
			key.SubscriberID, key.Category, key.Channel, DigestOpen).Limit(1).Find(&open).Error; err != nil {
			return err
		}
		switch {
		case len(open) == 0:
			out.Digest = NotificationDigest{ID: NewID(), SubscriberID: key.SubscriberID, Category: key.Category,
				Channel: key.Channel, Status: DigestOpen, LeaderID: deliveryID, ClosesAt: closesAt.UTC(),
				NotificationID: NewID(), DeliveryID: NewID(), TemplateID: key.TemplateID, CreatedAt: now}
			out.Leader = true
			if err := tx.Create(&out.Digest).Error; err != nil {
				return err
			}
		case open[0].ClosesAt.Add(digestTakeover).Before(now):
			// Its leader never closed it: this delivery's workflow sends it now.
			out.Digest, out.Leader = open[0], true
			out.Digest.LeaderID = deliveryID
			if err := tx.Model(&NotificationDigest{}).Where("id = ?", out.Digest.ID).
				Update("leader_id", deliveryID).Error; err != nil {
				return err
			}
		default:
			out.Digest = open[0]
		}
		return ts.updateDelivery(ctx, deliveryID, now, func(_ *gorm.DB, d *NotificationDelivery) error {
			if IsFinal(d.Status) {
				return nil
			}
			until := out.Digest.ClosesAt.UTC()
			d.Status, d.HeldUntil, d.HeldReason = StatusDigested, &until, HoldDigest
			d.DigestID, d.DigestNotificationID = out.Digest.ID, out.Digest.NotificationID
			return nil
		})
	})
	if err != nil {
		return out, fmt.Errorf("join digest of delivery %s: %w", deliveryID, err)
	}
	return out, nil
}

// lockDigestKey serializes the joins and the close of one digest key across processes on
// Postgres (SQLite's write transactions are serialized already).
func (s *Store) lockDigestKey(key DigestKey) error {
	if s.dialect != Postgres {
		return nil
	}
	return s.db.Exec("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
		"digest:"+key.Channel+":"+key.SubscriberID+":"+key.Category).Error
}

// DigestItem is one notification held in a digest.
type DigestItem struct {
	NotificationID string
	DeliveryID     string
	Subject        string
	Body           string
	HTMLBody       string
	TemplateID     string
	Metadata       JSON
	CreatedAt      time.Time
}

// ClosedDigest is a closed digest with the notifications it holds, oldest first.
type ClosedDigest struct {
	Digest NotificationDigest
	Items  []DigestItem
}

// CloseDigest closes digest id so that no delivery joins it any more (the next one opens a new
// window) and returns it with its items. Closing a closed digest returns it as it was closed.
func (s *Store) CloseDigest(ctx context.Context, id string, now time.Time) (ClosedDigest, error) {
	var out ClosedDigest
	err := s.Tx(ctx, func(ts *Store) error {
		tx := ts.db
		if err := tx.Where("id = ?", id).Take(&out.Digest).Error; err != nil {
			return classify(err)
		}
		if err := ts.lockDigestKey(DigestKey{SubscriberID: out.Digest.SubscriberID, Category: out.Digest.Category,
			Channel: out.Digest.Channel}); err != nil {
			return err
		}
		q := tx.Where("id = ?", id)
		if s.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&out.Digest).Error; err != nil {
			return classify(err)
		}
		if out.Digest.Status == DigestOpen {
			out.Digest.Status, out.Digest.ClosedAt = DigestClosed, &now
			if err := tx.Model(&NotificationDigest{}).Where("id = ?", id).
				Updates(map[string]any{"status": DigestClosed, "closed_at": now}).Error; err != nil {
				return err
			}
		}
		var deliveries []NotificationDelivery
		if err := tx.Where("digest_id = ? AND digest_id <> ''", id).Find(&deliveries).Error; err != nil {
			return err
		}
		if len(deliveries) == 0 {
			return nil
		}
		ids := make([]string, len(deliveries))
		byNotification := map[string]string{}
		for i, d := range deliveries {
			ids[i] = d.NotificationID
			byNotification[d.NotificationID] = d.ID
		}
		var ns []Notification
		if err := tx.Where("id IN ?", ids).Order("created_at, id").Find(&ns).Error; err != nil {
			return err
		}
		for _, n := range ns {
			out.Items = append(out.Items, DigestItem{NotificationID: n.ID, DeliveryID: byNotification[n.ID],
				Subject: n.Subject, Body: n.Body, HTMLBody: n.HTMLBody, TemplateID: n.TemplateID,
				Metadata: n.Metadata, CreatedAt: n.CreatedAt})
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("close digest %s: %w", id, err)
	}
	return out, nil
}

// GetDigest returns one digest.
func (s *Store) GetDigest(ctx context.Context, id string) (NotificationDigest, error) {
	var d NotificationDigest
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return d, ErrNotFound
	}
	return d, classify(err)
}

// FailDigest fails the notifications held in digest id with reason, when its message cannot be
// sent at all (its subscriber was deleted): each one's delivery becomes failed, so that its
// notification's status says so, instead of pointing at a digest message that never existed.
func (s *Store) FailDigest(ctx context.Context, id, reason string, now time.Time) error {
	var ids []string
	if err := s.db.WithContext(ctx).Model(&NotificationDelivery{}).Where("digest_id = ? AND digest_id <> '' AND status = ?", id, StatusDigested).
		Pluck("id", &ids).Error; err != nil {
		return classify(err)
	}
	for _, deliveryID := range ids {
		err := s.updateDelivery(ctx, deliveryID, now, func(_ *gorm.DB, d *NotificationDelivery) error {
			if d.Status != StatusDigested {
				return nil
			}
			d.Status, d.FailedAt, d.Error, d.DigestNotificationID = StatusFailed, &now, reason, ""
			return nil
		})
		if err != nil {
			return fmt.Errorf("fail digest %s: %w", id, err)
		}
	}
	return nil
}
