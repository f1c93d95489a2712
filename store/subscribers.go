package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Subscriber is someone notifications may address by id (schema 00011): their email, phone,
// time zone, locale and custom data, under the tenant's own external id.
type Subscriber struct {
	TenantID   string `gorm:"column:tenant_id" json:"-"`
	ID         string `gorm:"primaryKey" json:"id"`
	ExternalID string `json:"external_id"`
	Email      string `json:"email,omitempty"`
	Phone      string `json:"phone,omitempty"`
	TimeZone   string `json:"time_zone,omitempty"`
	Locale     string `json:"locale,omitempty"`
	// QuietHoursStart and QuietHoursEnd are the subscriber's daily quiet hours (HH:MM or
	// HH:MM:SS in TimeZone, UTC when it is empty; both "" for none).
	QuietHoursStart string    `json:"quiet_hours_start,omitempty"`
	QuietHoursEnd   string    `json:"quiet_hours_end,omitempty"`
	Data            JSON      `json:"data"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`

	Preferences []SubscriberPreference `gorm:"-" json:"preferences,omitempty"`
}

// SubscriberPreference is a subscriber's choice for a channel and category ("" is every one).
type SubscriberPreference struct {
	TenantID     string    `gorm:"column:tenant_id" json:"-"`
	SubscriberID string    `gorm:"primaryKey" json:"-"`
	Channel      string    `gorm:"primaryKey" json:"channel"`
	Category     string    `gorm:"primaryKey" json:"category"`
	Enabled      bool      `json:"enabled"`
	Source       string    `json:"source"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// NotificationCategory is a tenant's category of notifications: whether subscribers are opted
// in by default and whether it is transactional (cannot be opted out of).
type NotificationCategory struct {
	TenantID       string `gorm:"column:tenant_id" json:"-"`
	ID             string `gorm:"primaryKey" json:"id"`
	Description    string `json:"description"`
	Transactional  bool   `json:"transactional"`
	DefaultEnabled bool   `json:"default_enabled"`
	// Digest, when set, holds the category's notifications to a subscriber and sends them as one
	// message per window (schema 00017).
	Digest    CategoryDigest `gorm:"embedded;embeddedPrefix:digest_" json:"digest,omitzero"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// CategoryDigest is how a category's notifications are digested: within WindowSeconds of the
// first one held, or until the next Until (HH:MM, in the subscriber's time zone); rendered with
// the email template TemplateID when set. The zero value is no digest.
type CategoryDigest struct {
	WindowSeconds int    `gorm:"column:window_seconds" json:"window_seconds,omitempty"`
	Until         string `gorm:"column:until" json:"until,omitempty"`
	TemplateID    string `gorm:"column:template_id" json:"template_id,omitempty"`
}

// Enabled reports whether the category is digested.
func (d CategoryDigest) Enabled() bool { return d.WindowSeconds > 0 || d.Until != "" }

// NotificationSuppression is an address not to send to again.
type NotificationSuppression struct {
	TenantID  string    `gorm:"column:tenant_id" json:"-"`
	Channel   string    `gorm:"primaryKey" json:"channel"`
	Address   string    `gorm:"primaryKey" json:"address"`
	Reason    string    `json:"reason"` // hard_bounce, complaint, unsubscribed, invalid_number
	Source    string    `json:"source"` // smtp, twilio, ses, webhook, api
	Detail    string    `json:"detail,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateSubscriber stores sub (ErrConflict when its external id is taken).
func (s *Store) CreateSubscriber(ctx context.Context, sub *Subscriber) error {
	if len(sub.Data) == 0 {
		sub.Data = JSON("{}")
	}
	return classify(s.db.WithContext(ctx).Omit(clause.Associations).Create(sub).Error)
}

// GetSubscriber returns a subscriber by id or, failing that, by external id, with its
// preferences.
func (s *Store) GetSubscriber(ctx context.Context, id string) (Subscriber, error) {
	var sub Subscriber
	db := s.db.WithContext(ctx)
	err := db.Where("id = ?", id).Take(&sub).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		err = db.Where("external_id = ?", id).Take(&sub).Error
	}
	if err != nil {
		return sub, classify(err)
	}
	sub.Preferences = []SubscriberPreference{}
	err = db.Where("subscriber_id = ?", sub.ID).Order("channel, category").Find(&sub.Preferences).Error
	return sub, classify(err)
}

// FindSubscriberByAddress returns the tenant's subscriber with this email (lower case) or phone.
func (s *Store) FindSubscriberByAddress(ctx context.Context, channel, address string) (Subscriber, error) {
	id, err := s.subscriberIDByAddress(s.db.WithContext(ctx), channel, address)
	if err != nil {
		return Subscriber{}, err
	}
	if id == "" {
		return Subscriber{}, ErrNotFound
	}
	var sub Subscriber
	err = s.db.WithContext(ctx).Where("id = ?", id).Take(&sub).Error
	return sub, classify(err)
}

// subscriberIDByAddress returns the lowest id of the tenant's subscribers with this email or
// phone ("" for none). It searches the column's partial index (schema 00011): the not-empty term
// lets the planner use it, and the lowest id is picked here rather than by ORDER BY id, which
// would send SQLite's planner to the primary key and a scan of every subscriber of the tenant.
func (s *Store) subscriberIDByAddress(db *gorm.DB, channel, address string) (string, error) {
	column := "email"
	if channel == ChannelSMS {
		column = "phone"
	}
	if address == "" {
		return "", nil
	}
	var ids []string
	if err := db.Model(&Subscriber{}).Where(column+" = ? AND "+column+" <> ''", address).Limit(100).Pluck("id", &ids).Error; err != nil {
		return "", classify(err)
	}
	lowest := ""
	for _, id := range ids {
		if lowest == "" || id < lowest {
			lowest = id
		}
	}
	return lowest, nil
}

// ListSubscribers pages through the subscribers, newest first.
func (s *Store) ListSubscribers(ctx context.Context, p Page) ([]Subscriber, string, error) {
	return List(s.db.WithContext(ctx).Model(&Subscriber{}), p, func(x Subscriber) string { return x.ID })
}

// UpdateSubscriber writes sub's fields.
func (s *Store) UpdateSubscriber(ctx context.Context, sub *Subscriber) error {
	res := s.db.WithContext(ctx).Model(&Subscriber{}).Where("id = ?", sub.ID).Updates(map[string]any{
		"external_id": sub.ExternalID, "email": sub.Email, "phone": sub.Phone, "time_zone": sub.TimeZone,
		"locale": sub.Locale, "data": sub.Data, "updated_at": sub.UpdatedAt,
		"quiet_hours_start": sub.QuietHoursStart, "quiet_hours_end": sub.QuietHoursEnd})
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteSubscriber removes a subscriber and its preferences.
func (s *Store) DeleteSubscriber(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *Store) error {
		res := tx.db.Where("id = ?", id).Delete(&Subscriber{})
		if res.Error != nil {
			return classify(res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return classify(tx.db.Where("subscriber_id = ?", id).Delete(&SubscriberPreference{}).Error)
	})
}

// SetPreference creates or replaces a subscriber's preference.
func (s *Store) SetPreference(ctx context.Context, p *SubscriberPreference) error {
	return classify(s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "tenant_id"}, {Name: "subscriber_id"}, {Name: "channel"}, {Name: "category"}},
		DoUpdates: clause.AssignmentColumns([]string{"enabled", "source", "updated_at"}),
	}).Create(p).Error)
}

// DeletePreference removes one preference (ErrNotFound when there is none).
func (s *Store) DeletePreference(ctx context.Context, subscriberID, channel, category string) error {
	res := s.db.WithContext(ctx).Where("subscriber_id = ? AND channel = ? AND category = ?", subscriberID, channel, category).
		Delete(&SubscriberPreference{})
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// CreateCategory stores c (ErrConflict when its id is taken).
func (s *Store) CreateCategory(ctx context.Context, c *NotificationCategory) error {
	return classify(s.db.WithContext(ctx).Create(c).Error)
}

// UpdateCategory writes c's settings (ErrNotFound when there is no such category).
func (s *Store) UpdateCategory(ctx context.Context, c *NotificationCategory) error {
	res := s.db.WithContext(ctx).Model(&NotificationCategory{}).Where("id = ?", c.ID).Updates(map[string]any{
		"description": c.Description, "transactional": c.Transactional, "default_enabled": c.DefaultEnabled,
		"digest_window_seconds": c.Digest.WindowSeconds, "digest_until": c.Digest.Until,
		"digest_template_id": c.Digest.TemplateID, "updated_at": c.UpdatedAt})
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// GetCategory returns one category.
func (s *Store) GetCategory(ctx context.Context, id string) (NotificationCategory, error) {
	var c NotificationCategory
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&c).Error
	return c, classify(err)
}

// ListCategories returns the tenant's categories by id.
func (s *Store) ListCategories(ctx context.Context) ([]NotificationCategory, error) {
	out := []NotificationCategory{}
	err := s.db.WithContext(ctx).Order("id").Find(&out).Error
	return out, classify(err)
}

// DeleteCategory removes a category.
func (s *Store) DeleteCategory(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Where("id = ?", id).Delete(&NotificationCategory{})
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// Suppress adds an address to the suppression list (kept as first recorded when listed already);
// added says whether it is new.
func (s *Store) Suppress(ctx context.Context, sup *NotificationSuppression) (added bool, err error) {
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(sup)
	return res.RowsAffected > 0, classify(res.Error)
}

// GetSuppression returns the suppression of an address.
func (s *Store) GetSuppression(ctx context.Context, channel, address string) (NotificationSuppression, error) {
	var sup NotificationSuppression
	err := s.db.WithContext(ctx).Where("channel = ? AND address = ?", channel, address).Take(&sup).Error
	return sup, classify(err)
}

// SuppressionFilter narrows ListSuppressions.
type SuppressionFilter struct {
	Channel string
	Address string
}

// ListSuppressions pages through suppressions by address.
func (s *Store) ListSuppressions(ctx context.Context, f SuppressionFilter, p Page) ([]NotificationSuppression, string, error) {
	q := s.db.WithContext(ctx).Model(&NotificationSuppression{})
	if f.Channel != "" {
		q = q.Where("channel = ?", f.Channel)
	}
	if f.Address != "" {
		q = q.Where("address = ?", f.Address)
	}
	q, err := paginate(q, "address", p)
	if err != nil {
		return nil, "", err
	}
	var rows []NotificationSuppression
	if err := q.Find(&rows).Error; err != nil {
		return nil, "", classify(err)
	}
	items, next := trimPage(rows, p, func(x NotificationSuppression) string { return x.Address })
	return items, next, nil
}

// DeleteSuppression removes an address from the list (ErrNotFound when it is not on it).
func (s *Store) DeleteSuppression(ctx context.Context, channel, address string) error {
	res := s.db.WithContext(ctx).Where("channel = ? AND address = ?", channel, address).Delete(&NotificationSuppression{})
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// Skip reasons of deliveries not sent (error_code of a skipped delivery).
const (
	SkipSuppressed = "suppressed"
	SkipOptedOut   = "opted_out"
)

// SendCheck is what the send-time check found for a delivery.
type SendCheck struct {
	// Skip is SkipSuppressed or SkipOptedOut, "" to send; Reason explains it.
	Skip   string
	Reason string
	// SubscriberID is the delivery's subscriber, or the tenant's subscriber with its address.
	SubscriberID string
	// Transactional is true for a transactional category (no unsubscribe link).
	Transactional bool
}

// CheckSend decides whether a delivery of channel to address (a normalized recipient key),
// addressed to subscriberID ("" for a raw address) in category, may be sent: a suppressed
// address is skipped; then the subscriber's most specific preference, else the category's
// default, decides, except that a transactional category is always sent.
func (s *Store) CheckSend(ctx context.Context, channel, address, subscriberID, category string) (SendCheck, error) {
	var out SendCheck
	db := s.db.WithContext(ctx)
	var sups []NotificationSuppression
	if err := db.Where("channel = ? AND address = ?", channel, address).Limit(1).Find(&sups).Error; err != nil {
		return out, classify(err)
	}
	if len(sups) > 0 {
		out.Skip, out.Reason = SkipSuppressed, "suppressed: "+sups[0].Reason+" ("+sups[0].Source+")"
		if sups[0].Detail != "" {
			out.Reason += ": " + sups[0].Detail
		}
		return out, nil
	}
	defaultEnabled := true
	if category != "" {
		var cats []NotificationCategory
		if err := db.Where("id = ?", category).Limit(1).Find(&cats).Error; err != nil {
			return out, classify(err)
		}
		if len(cats) > 0 {
			if cats[0].Transactional {
				out.Transactional = true
			}
			defaultEnabled = cats[0].DefaultEnabled
		}
	}
	out.SubscriberID = subscriberID
	if out.SubscriberID == "" {
		id, err := s.subscriberIDByAddress(db, channel, address)
		if err != nil {
			return out, err
		}
		out.SubscriberID = id
	}
	if out.Transactional {
		return out, nil
	}
	enabled, why := defaultEnabled, "the category "+category+" is off by default"
	if out.SubscriberID != "" {
		var prefs []SubscriberPreference
		if err := db.Where("subscriber_id = ? AND channel IN ? AND category IN ?", out.SubscriberID,
			[]string{"", channel}, []string{"", category}).Find(&prefs).Error; err != nil {
			return out, classify(err)
		}
		best := -1
		for _, p := range prefs {
			rank := 0
			if p.Category != "" {
				rank += 2
			}
			if p.Channel != "" {
				rank++
			}
			if rank > best {
				best, enabled = rank, p.Enabled
				why = "the subscriber opted out of " + describePreference(p.Channel, p.Category)
			}
		}
	}
	if !enabled {
		out.Skip, out.Reason = SkipOptedOut, why
	}
	return out, nil
}

func describePreference(channel, category string) string {
	switch {
	case channel == "" && category == "":
		return "every notification"
	case channel == "":
		return "the category " + category
	case category == "":
		return channel
	}
	return channel + " in the category " + category
}

// SkipDelivery marks a delivery skipped (not sent, on purpose) with its reason; changed is false
// when it was final already.
func (s *Store) SkipDelivery(ctx context.Context, deliveryID, reason, code string, now time.Time) (changed bool, err error) {
	err = s.updateDelivery(ctx, deliveryID, now, func(_ *gorm.DB, d *NotificationDelivery) error {
		if IsFinal(d.Status) {
			return nil
		}
		changed = true
		d.Status = StatusSkipped
		d.Error, d.ErrorCode = reason, code
		return nil
	})
	return changed, err
}
