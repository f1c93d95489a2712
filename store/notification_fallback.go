package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// FallbackDelivery is the next step of a delivery's channel fallback.
type FallbackDelivery struct {
	ID           string
	Channel      string
	Recipient    string
	RecipientKey string
}

// AddFallbackDelivery records that delivery fromID is replaced by a new queued delivery next on
// another channel, to the same subscriber: the new delivery points back at fromID, fromID at it,
// and the notification's status is recomputed (fromID no longer counts). It is idempotent: when
// fromID was replaced already, that replacement is returned.
func (s *Store) AddFallbackDelivery(ctx context.Context, fromID string, next FallbackDelivery, now time.Time) (NotificationDelivery, error) {
	var out NotificationDelivery
	err := s.Tx(ctx, func(ts *Store) error {
		tx := ts.db
		var from NotificationDelivery
		if err := tx.Where("id = ?", fromID).Take(&from).Error; err != nil {
			return classify(err)
		}
		var n Notification
		q := tx.Where("id = ?", from.NotificationID)
		if s.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&n).Error; err != nil {
			return classify(err)
		}
		if err := tx.Where("id = ?", fromID).Take(&from).Error; err != nil {
			return classify(err)
		}
		if from.FallbackID != "" {
			return classify(tx.Where("id = ?", from.FallbackID).Take(&out).Error)
		}
		var maxPos int
		if err := tx.Model(&NotificationDelivery{}).Where("notification_id = ?", n.ID).
			Select("COALESCE(MAX(position), 0)").Scan(&maxPos).Error; err != nil {
			return err
		}
		out = NotificationDelivery{
			ID: next.ID, NotificationID: n.ID, Position: maxPos + 1, Recipient: next.Recipient,
			RecipientKey: next.RecipientKey, SubscriberID: from.SubscriberID, Channel: next.Channel,
			FallbackOf: fromID, Status: StatusQueued, UpdatedAt: now,
		}
		if err := tx.Create(&out).Error; err != nil {
			return err
		}
		if err := tx.Model(&NotificationDelivery{}).Where("id = ?", fromID).
			Updates(map[string]any{"fallback_id": out.ID, "updated_at": now}).Error; err != nil {
			return err
		}
		return ts.refreshNotificationStatus(&n, now)
	})
	if err != nil {
		return out, fmt.Errorf("fallback of delivery %s: %w", fromID, err)
	}
	return out, nil
}

// HoldDelivery records that a delivery waits until until for reason (quiet hours).
func (s *Store) HoldDelivery(ctx context.Context, deliveryID string, until time.Time, reason string, now time.Time) error {
	return s.updateDelivery(ctx, deliveryID, now, func(_ *gorm.DB, d *NotificationDelivery) error {
		u := until.UTC()
		d.HeldUntil, d.HeldReason = &u, reason
		return nil
	})
}
