package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/pyairtable/automation-domain/wire"
)

// Notification channels (the wire package's).
const (
	ChannelEmail = wire.ChannelEmail
	ChannelSMS   = wire.ChannelSMS
)

// Statuses of a delivery (one recipient) and of a notification (all of them). A notification is
// queued until a delivery starts, sending while any is unfinished, then sent, delivered, failed,
// or partially_failed when some recipients failed and others did not. They are the wire
// package's values.
const (
	StatusQueued          = wire.StatusQueued
	StatusSending         = wire.StatusSending
	StatusSent            = wire.StatusSent
	StatusDelivered       = wire.StatusDelivered
	StatusFailed          = wire.StatusFailed
	StatusPartiallyFailed = wire.StatusPartiallyFailed
	StatusSkipped         = wire.StatusSkipped
	StatusDigested        = wire.StatusDigested
)

// Notification is one send request: the rendered content and, in Deliveries, one row per
// recipient.
type Notification struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID        string `gorm:"column:tenant_id" json:"-"`
	ID              string `gorm:"primaryKey" json:"id"`
	Channel         string `json:"channel"`
	Status          string `json:"status"`
	Subject         string `json:"subject,omitempty"`
	Body            string `json:"body"`
	HTMLBody        string `gorm:"column:html_body" json:"html_body,omitempty"`
	Cc              JSON   `json:"cc,omitempty"`
	Bcc             JSON   `json:"bcc,omitempty"`
	ReplyTo         string `json:"reply_to,omitempty"`
	TemplateID      string `json:"template_id,omitempty"`
	TemplateVersion int    `json:"template_version,omitempty"`
	// Category names the kind of notification preferences apply to ("" for none).
	Category       string     `json:"category,omitempty"`
	Priority       string     `json:"priority"`
	SendAt         *time.Time `json:"send_at,omitempty"`
	Metadata       JSON       `json:"metadata,omitempty"`
	IdempotencyKey string     `json:"-"`
	RequestHash    string     `json:"-"`
	WorkflowID     string     `json:"workflow_id"`
	// CausationID, CorrelationID and Depth continue the event chain that asked for this
	// notification (an automation rule reacting to an event), so its own events carry it on.
	CausationID   string     `json:"causation_id,omitempty"`
	CorrelationID string     `json:"correlation_id,omitempty"`
	Depth         int        `json:"-"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	CompletedAt   *time.Time `json:"completed_at,omitempty"`

	Deliveries []NotificationDelivery `gorm:"-" json:"deliveries"`
	// Replayed is set on a notification returned again for a repeated idempotency key.
	Replayed bool `gorm:"-" json:"-"`
}

// NotificationDelivery is the send to one recipient.
type NotificationDelivery struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID       string `gorm:"column:tenant_id" json:"-"`
	ID             string `gorm:"primaryKey" json:"id"`
	NotificationID string `json:"-"`
	Position       int    `json:"-"`
	Recipient      string `json:"recipient"`
	RecipientKey   string `json:"-"`
	// SubscriberID is the subscriber the delivery was addressed to ("" for a raw address).
	SubscriberID string `json:"subscriber_id,omitempty"`
	// Channel is the delivery's channel when it differs from the notification's (a fallback
	// step); "" means the notification's.
	Channel string `json:"channel,omitempty"`
	// FallbackOf is the delivery this one replaces, FallbackID the delivery that replaced this
	// one (channel fallback); a replaced delivery does not count towards the notification's status.
	FallbackOf        string     `json:"fallback_of,omitempty"`
	FallbackID        string     `json:"fallback_id,omitempty"`
	Status            string     `json:"status"`
	AttemptCount      int        `json:"attempt_count"`
	Provider          string     `json:"provider,omitempty"`
	ProviderMessageID string     `json:"provider_message_id,omitempty"`
	ProviderStatus    string     `json:"provider_status,omitempty"`
	Error             string     `json:"error,omitempty"`
	ErrorCode         string     `json:"error_code,omitempty"`
	ScheduledAt       *time.Time `json:"scheduled_at,omitempty"`
	// HeldUntil and HeldReason say that the delivery waits (or waited) until then, and why
	// ("quiet_hours", "digest").
	HeldUntil  *time.Time `json:"held_until,omitempty"`
	HeldReason string     `json:"held_reason,omitempty"`
	// DigestID is the digest window the delivery was held for (status digested) and
	// DigestNotificationID the notification that carries that digest (schema 00017).
	DigestID             string     `json:"digest_id,omitempty"`
	DigestNotificationID string     `json:"digest_notification_id,omitempty"`
	SentAt               *time.Time `json:"sent_at,omitempty"`
	DeliveredAt          *time.Time `json:"delivered_at,omitempty"`
	FailedAt             *time.Time `json:"failed_at,omitempty"`
	UpdatedAt            time.Time  `json:"updated_at"`

	Attempts []NotificationAttempt `gorm:"-" json:"attempts,omitempty"`
}

// NotificationAttempt is one try of a delivery.
type NotificationAttempt struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID          string     `gorm:"column:tenant_id" json:"-"`
	DeliveryID        string     `gorm:"primaryKey" json:"-"`
	Attempt           int        `gorm:"primaryKey;autoIncrement:false" json:"attempt"`
	Status            string     `json:"status"` // sending, sent, failed
	ProviderMessageID string     `json:"provider_message_id,omitempty"`
	Error             string     `json:"error,omitempty"`
	ErrorCode         string     `json:"error_code,omitempty"`
	Retryable         bool       `json:"retryable"`
	StartedAt         time.Time  `json:"started_at"`
	FinishedAt        *time.Time `json:"finished_at,omitempty"`
}

// NotificationThrottleSlot is the send slot reserved for one delivery by the per-recipient
// throttle.
type NotificationThrottleSlot struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID     string `gorm:"column:tenant_id" json:"-"`
	DeliveryID   string `gorm:"primaryKey"`
	Channel      string
	RecipientKey string
	SlotAt       time.Time
	// AdmittedAt is when the delivery was let through to its provider (nil until then).
	AdmittedAt *time.Time
}

// IsFinal reports whether a delivery status no longer changes by our own sending (a sent SMS may
// still become delivered or failed through a provider callback).
func IsFinal(status string) bool {
	return status == StatusSent || status == StatusDelivered || status == StatusFailed || status == StatusSkipped ||
		status == StatusDigested
}

// InsertNotification stores n with its deliveries unless a notification with n's id exists;
// inserted says which happened.
func (s *Store) InsertNotification(ctx context.Context, n *Notification) (inserted bool, err error) {
	err = s.Tx(ctx, func(tx *Store) error {
		res := tx.db.Clauses(clause.OnConflict{DoNothing: true}).Omit(clause.Associations).Create(n)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil
		}
		inserted = true
		if len(n.Deliveries) == 0 {
			return nil
		}
		return tx.db.Create(&n.Deliveries).Error
	})
	if err != nil {
		return false, fmt.Errorf("insert notification %s: %w", n.ID, err)
	}
	return inserted, nil
}

// NotificationExists reports whether a notification with id is stored.
func (s *Store) NotificationExists(ctx context.Context, id string) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Notification{}).Where("id = ?", id).Limit(1).Count(&n).Error
	return n > 0, classify(err)
}

// GetNotification returns a notification with its deliveries and their attempts.
func (s *Store) GetNotification(ctx context.Context, id string) (Notification, error) {
	var n Notification
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&n).Error; err != nil {
		return n, classify(err)
	}
	if err := s.db.WithContext(ctx).Where("notification_id = ?", id).Order("position").
		Find(&n.Deliveries).Error; err != nil {
		return n, classify(err)
	}
	ids := make([]string, len(n.Deliveries))
	for i, d := range n.Deliveries {
		ids[i] = d.ID
	}
	if len(ids) > 0 {
		var attempts []NotificationAttempt
		if err := s.db.WithContext(ctx).Where("delivery_id IN ?", ids).Order("attempt").
			Find(&attempts).Error; err != nil {
			return n, classify(err)
		}
		byDelivery := map[string][]NotificationAttempt{}
		for _, a := range attempts {
			byDelivery[a.DeliveryID] = append(byDelivery[a.DeliveryID], a)
		}
		for i := range n.Deliveries {
			n.Deliveries[i].Attempts = byDelivery[n.Deliveries[i].ID]
		}
	}
	return n, nil
}

// FindNotificationByIdempotencyKey returns the notification first stored under key.
func (s *Store) FindNotificationByIdempotencyKey(ctx context.Context, key string) (Notification, error) {
	var n Notification
	err := s.db.WithContext(ctx).Where("idempotency_key = ?", key).Order("id").Take(&n).Error
	if err != nil {
		return n, classify(err)
	}
	return s.GetNotification(ctx, n.ID)
}

// NotificationFilter narrows ListNotifications; zero fields do not filter.
type NotificationFilter struct {
	Channel   string
	Status    string
	Recipient string // matched against the normalized recipient (lower-case email, E.164 number)
	Since     *time.Time
	Until     *time.Time
}

// ListNotifications returns notifications newest first, each with its deliveries (without
// attempts).
func (s *Store) ListNotifications(ctx context.Context, f NotificationFilter, p Page) ([]Notification, string, error) {
	q := s.db.WithContext(ctx).Model(&Notification{})
	if f.Channel != "" {
		q = q.Where("channel = ?", f.Channel)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Recipient != "" {
		q = q.Where("EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.notification_id = notifications.id AND d.recipient_key = ?)", f.Recipient)
	}
	if f.Since != nil {
		q = q.Where("created_at >= ?", f.Since.UTC())
	}
	if f.Until != nil {
		q = q.Where("created_at < ?", f.Until.UTC())
	}
	items, next, err := List(q, p, func(n Notification) string { return n.ID })
	if err != nil || len(items) == 0 {
		return items, next, err
	}
	ids := make([]string, len(items))
	index := map[string]int{}
	for i, n := range items {
		ids[i] = n.ID
		index[n.ID] = i
	}
	var deliveries []NotificationDelivery
	if err := s.db.WithContext(ctx).Where("notification_id IN ?", ids).Order("notification_id, position").
		Find(&deliveries).Error; err != nil {
		return nil, "", classify(err)
	}
	for _, d := range deliveries {
		i := index[d.NotificationID]
		items[i].Deliveries = append(items[i].Deliveries, d)
	}
	return items, next, nil
}

// DeliveryForSend is what a delivery activity needs: the delivery, its notification's content
// and the attempts made so far.
type DeliveryForSend struct {
	Delivery     NotificationDelivery
	Notification Notification
}

// GetDeliveryForSend loads a delivery with its notification and attempts.
func (s *Store) GetDeliveryForSend(ctx context.Context, deliveryID string) (DeliveryForSend, error) {
	var out DeliveryForSend
	db := s.db.WithContext(ctx)
	if err := db.Where("id = ?", deliveryID).Take(&out.Delivery).Error; err != nil {
		return out, fmt.Errorf("delivery %s: %w", deliveryID, classify(err))
	}
	if err := db.Where("id = ?", out.Delivery.NotificationID).Take(&out.Notification).Error; err != nil {
		return out, fmt.Errorf("notification of delivery %s: %w", deliveryID, classify(err))
	}
	if err := db.Where("delivery_id = ?", deliveryID).Order("attempt").Find(&out.Delivery.Attempts).Error; err != nil {
		return out, classify(err)
	}
	return out, nil
}

// GetDelivery returns one delivery (without attempts).
func (s *Store) GetDelivery(ctx context.Context, id string) (NotificationDelivery, error) {
	var d NotificationDelivery
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&d).Error
	return d, classify(err)
}

// FindDeliveryByProviderMessageID returns the delivery a provider knows by messageID.
func (s *Store) FindDeliveryByProviderMessageID(ctx context.Context, messageID string) (NotificationDelivery, error) {
	var d NotificationDelivery
	err := s.db.WithContext(ctx).Where("provider_message_id = ?", messageID).Take(&d).Error
	return d, classify(err)
}

// StartAttempt records that attempt n of a delivery begins: the attempt row (status sending,
// with the Message-ID it will carry when known up front) and the delivery as sending.
func (s *Store) StartAttempt(ctx context.Context, deliveryID string, n int, provider, messageID string, now time.Time) error {
	return s.updateDelivery(ctx, deliveryID, now, func(tx *gorm.DB, d *NotificationDelivery) error {
		a := NotificationAttempt{DeliveryID: deliveryID, Attempt: n, Status: StatusSending,
			ProviderMessageID: messageID, StartedAt: now}
		if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&a).Error; err != nil {
			return err
		}
		if IsFinal(d.Status) {
			return nil
		}
		d.Status = StatusSending
		d.AttemptCount = max(d.AttemptCount, n)
		d.Provider = provider
		return nil
	})
}

// AttemptOutcome is how an attempt ended.
type AttemptOutcome struct {
	Sent              bool
	ProviderMessageID string
	ProviderStatus    string
	Error             string
	ErrorCode         string
	Retryable         bool
}

// FinishAttempt records the outcome of attempt n; a send marks the delivery sent.
func (s *Store) FinishAttempt(ctx context.Context, deliveryID string, n int, o AttemptOutcome, now time.Time) error {
	return s.updateDelivery(ctx, deliveryID, now, func(tx *gorm.DB, d *NotificationDelivery) error {
		status := StatusFailed
		if o.Sent {
			status = StatusSent
		}
		updates := map[string]any{"status": status, "error": o.Error, "error_code": o.ErrorCode,
			"retryable": o.Retryable, "finished_at": now}
		if o.ProviderMessageID != "" {
			updates["provider_message_id"] = o.ProviderMessageID
		}
		if err := tx.Model(&NotificationAttempt{}).Where("delivery_id = ? AND attempt = ?", deliveryID, n).
			Updates(updates).Error; err != nil {
			return err
		}
		if IsFinal(d.Status) {
			return nil
		}
		if o.Sent {
			d.Status = StatusSent
			d.SentAt = &now
			d.ProviderMessageID = o.ProviderMessageID
			d.ProviderStatus = o.ProviderStatus
			d.Error, d.ErrorCode = "", ""
		} else {
			d.Error, d.ErrorCode = o.Error, o.ErrorCode
		}
		return nil
	})
}

// FailDelivery marks a delivery failed for good (no attempt left, or a permanent error). A
// delivery already sent or delivered is left alone; changed says whether it was failed now.
func (s *Store) FailDelivery(ctx context.Context, deliveryID, reason, code string, now time.Time) (changed bool, err error) {
	err = s.updateDelivery(ctx, deliveryID, now, func(_ *gorm.DB, d *NotificationDelivery) error {
		if IsFinal(d.Status) {
			return nil
		}
		changed = true
		d.Status = StatusFailed
		d.FailedAt = &now
		d.Error = reason
		if code != "" {
			d.ErrorCode = code
		}
		return nil
	})
	return changed, err
}

// ProviderUpdate is a status a provider reported for a sent message (an SMS status callback).
type ProviderUpdate struct {
	ProviderMessageID string
	// Status is the provider's own word (delivered, undelivered, failed, sent, …); Outcome maps
	// it onto ours: StatusDelivered, StatusFailed or StatusSent ("" records it only).
	Status    string
	Outcome   string
	ErrorCode string
	Error     string
}

// ApplyProviderUpdate moves a delivery forward on a provider's report: sent → delivered or
// failed. Reports out of order (sent after delivered) and repeats change nothing; changed says
// whether the status moved.
func (s *Store) ApplyProviderUpdate(ctx context.Context, deliveryID string, u ProviderUpdate, now time.Time) (d NotificationDelivery, changed bool, err error) {
	err = s.updateDelivery(ctx, deliveryID, now, func(_ *gorm.DB, cur *NotificationDelivery) error {
		if cur.Status == StatusDelivered || (cur.Status == StatusFailed && u.Outcome != StatusDelivered) {
			return nil // final; a late "sent" or a repeat changes nothing
		}
		if u.ProviderMessageID != "" && cur.ProviderMessageID == "" {
			cur.ProviderMessageID = u.ProviderMessageID
		}
		cur.ProviderStatus = u.Status
		switch u.Outcome {
		case StatusDelivered:
			changed = true
			cur.Status = StatusDelivered
			cur.DeliveredAt = &now
			cur.Error, cur.ErrorCode = "", ""
		case StatusFailed:
			changed = true
			cur.Status = StatusFailed
			cur.FailedAt = &now
			cur.Error, cur.ErrorCode = u.Error, u.ErrorCode
		case StatusSent:
			if cur.Status != StatusSent {
				changed = true
				cur.Status = StatusSent
				cur.SentAt = &now
			}
		}
		return nil
	})
	if err != nil {
		return d, false, err
	}
	d, err = s.GetDelivery(ctx, deliveryID)
	return d, changed, err
}

// updateDelivery runs change on a delivery inside one transaction that holds its notification's
// row lock, saves the delivery and recomputes the notification's status. Locking the
// notification first serializes concurrent updates of its deliveries, so the aggregate status
// always sees every one of them.
func (s *Store) updateDelivery(ctx context.Context, deliveryID string, now time.Time, change func(tx *gorm.DB, d *NotificationDelivery) error) error {
	var notificationID string
	if err := s.db.WithContext(ctx).Model(&NotificationDelivery{}).Where("id = ?", deliveryID).
		Pluck("notification_id", &notificationID).Error; err != nil {
		return fmt.Errorf("delivery %s: %w", deliveryID, classify(err))
	}
	if notificationID == "" {
		return fmt.Errorf("delivery %s: %w", deliveryID, ErrNotFound)
	}
	err := s.Tx(ctx, func(ts *Store) error {
		tx := ts.db
		var n Notification
		q := tx.Where("id = ?", notificationID)
		if s.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&n).Error; err != nil {
			return err
		}
		var d NotificationDelivery
		if err := tx.Where("id = ?", deliveryID).Take(&d).Error; err != nil {
			return err
		}
		if err := change(tx, &d); err != nil {
			return err
		}
		d.UpdatedAt = now
		if err := tx.Omit(clause.Associations).Save(&d).Error; err != nil {
			return err
		}
		return ts.refreshNotificationStatus(&n, now)
	})
	if err != nil {
		return fmt.Errorf("update delivery %s: %w", deliveryID, err)
	}
	return nil
}

// NotificationDeliveryTenant is the tenant of a delivery, whichever tenant ctx acts for (a
// provider's callback names the delivery, not the tenant).
func (s *Store) NotificationDeliveryTenant(ctx context.Context, id string) (string, error) {
	var d NotificationDelivery
	err := s.db.WithContext(tenant.System(ctx)).Select("tenant_id").Where("id = ?", id).Take(&d).Error
	return d.TenantID, classify(err)
}

// refreshNotificationStatus recomputes n's status from its deliveries.
func (s *Store) refreshNotificationStatus(n *Notification, now time.Time) error {
	var statuses []string
	if err := s.db.Model(&NotificationDelivery{}).Where("notification_id = ? AND fallback_id = ''", n.ID).
		Pluck("status", &statuses).Error; err != nil {
		return err
	}
	status := AggregateStatus(statuses)
	updates := map[string]any{"status": status, "updated_at": now}
	if IsFinal(status) || status == StatusPartiallyFailed {
		if n.CompletedAt == nil {
			updates["completed_at"] = now
		}
	} else {
		updates["completed_at"] = nil
	}
	return s.db.Model(&Notification{}).Where("id = ?", n.ID).Updates(updates).Error
}

// AggregateStatus is a notification's status given its deliveries' statuses (wire.AggregateStatus).
func AggregateStatus(statuses []string) string { return wire.AggregateStatus(statuses) }

// SlotRequest asks for a throttle slot for one delivery.
type SlotRequest struct {
	DeliveryID   string
	RecipientKey string
}

// ReserveThrottleSlots gives each delivery the earliest send time at or after now that keeps at
// most limit slots of channel and recipient inside any window: the slot is now while fewer
// than limit were reserved in the last window, else the limit-th most recent slot plus window.
// Slots are handed out in order, so a burst over the limit is spread over later windows instead
// of being refused. A delivery that already has a slot keeps it (a retried activity reserves
// nothing new). Slots are also recorded on the deliveries (scheduled_at).
func (s *Store) ReserveThrottleSlots(ctx context.Context, channel string, reqs []SlotRequest, limit int, window time.Duration, now time.Time) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(reqs))
	if limit <= 0 {
		for _, r := range reqs {
			out[r.DeliveryID] = now
		}
		return out, nil
	}
	for _, r := range reqs {
		var slot time.Time
		err := s.Tx(ctx, func(ts *Store) error {
			tx := ts.db
			if s.dialect == Postgres {
				// Serialize reservations for one recipient across processes; SQLite's write
				// transactions are serialized already.
				if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
					"notify:"+channel+":"+r.RecipientKey).Error; err != nil {
					return err
				}
			}
			var existing NotificationThrottleSlot
			err := tx.Where("delivery_id = ?", r.DeliveryID).Take(&existing).Error
			if err == nil {
				slot = existing.SlotAt
				return nil
			}
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return err
			}
			// Rows whose slot and admission are both older than a window no longer count.
			if err := tx.Where("channel = ? AND recipient_key = ? AND slot_at < ? AND (admitted_at IS NULL OR admitted_at < ?)",
				channel, r.RecipientKey, now.Add(-window), now.Add(-window)).Delete(&NotificationThrottleSlot{}).Error; err != nil {
				return err
			}
			var recent []time.Time
			if err := tx.Model(&NotificationThrottleSlot{}).
				Where("channel = ? AND recipient_key = ?", channel, r.RecipientKey).
				Order("slot_at DESC").Limit(limit).Pluck("slot_at", &recent).Error; err != nil {
				return err
			}
			slot = now
			if len(recent) == limit {
				if next := recent[limit-1].Add(window); next.After(slot) {
					slot = next
				}
			}
			if err := tx.Create(&NotificationThrottleSlot{DeliveryID: r.DeliveryID, Channel: channel,
				RecipientKey: r.RecipientKey, SlotAt: slot}).Error; err != nil {
				return err
			}
			return tx.Model(&NotificationDelivery{}).Where("id = ?", r.DeliveryID).
				Update("scheduled_at", slot).Error
		})
		if err != nil {
			return nil, fmt.Errorf("reserve throttle slot for %s: %w", r.DeliveryID, err)
		}
		out[r.DeliveryID] = slot.UTC()
	}
	return out, nil
}

// AdmitThrottled lets a delivery through to its provider now if fewer than limit deliveries of
// channel to the recipient were let through in the last window; otherwise it returns how long
// to wait. Reserved slots keep a burst in order; admission, checked against the times deliveries
// were actually let through, keeps the limit even when earlier sends ran late. A delivery
// admitted before (a retried attempt) is let through again.
func (s *Store) AdmitThrottled(ctx context.Context, channel, deliveryID, recipientKey string, limit int, window time.Duration, now time.Time) (wait time.Duration, err error) {
	if limit <= 0 {
		return 0, nil
	}
	err = s.Tx(ctx, func(ts *Store) error {
		tx := ts.db
		if s.dialect == Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
				"notify:"+channel+":"+recipientKey).Error; err != nil {
				return err
			}
		}
		var row NotificationThrottleSlot
		err := tx.Where("delivery_id = ?", deliveryID).Take(&row).Error
		switch {
		case err == nil && row.AdmittedAt != nil:
			return nil
		case err != nil && !errors.Is(err, gorm.ErrRecordNotFound):
			return err
		}
		var admitted []time.Time
		if err := tx.Model(&NotificationThrottleSlot{}).
			Where("channel = ? AND recipient_key = ? AND admitted_at IS NOT NULL AND delivery_id <> ?", channel, recipientKey, deliveryID).
			Order("admitted_at DESC").Limit(limit).Pluck("admitted_at", &admitted).Error; err != nil {
			return err
		}
		if len(admitted) == limit {
			if free := admitted[limit-1].Add(window); free.After(now) {
				wait = free.Sub(now)
				return nil
			}
		}
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return tx.Create(&NotificationThrottleSlot{DeliveryID: deliveryID, Channel: channel,
				RecipientKey: recipientKey, SlotAt: now, AdmittedAt: &now}).Error
		}
		return tx.Model(&NotificationThrottleSlot{}).Where("delivery_id = ?", deliveryID).Update("admitted_at", now).Error
	})
	if err != nil {
		return 0, fmt.Errorf("admit delivery %s: %w", deliveryID, err)
	}
	return wait, nil
}
