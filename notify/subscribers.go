package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Subscriber is a subscriber with its preferences.
type Subscriber = store.Subscriber

// Preference is one of a subscriber's choices.
type Preference = store.SubscriberPreference

// Category is a tenant's notification category.
type Category = store.NotificationCategory

// Suppression is an address on the suppression list.
type Suppression = store.NotificationSuppression

// ErrSubscriberNotFound: no subscriber with that id or external id.
var ErrSubscriberNotFound = errors.New("subscriber not found")

// MaxSubscriberData bounds the JSON of a subscriber's custom data.
const MaxSubscriberData = 16 << 10

// SubscriberInput creates a subscriber (every field) or changes one (the fields given).
type SubscriberInput struct {
	ExternalID *string         `json:"external_id"`
	Email      *string         `json:"email"`
	Phone      *string         `json:"phone"`
	TimeZone   *string         `json:"time_zone"`
	Locale     *string         `json:"locale"`
	Data       *map[string]any `json:"data"`
	// QuietHoursStart and QuietHoursEnd ("22:00", "07:00"; "" to clear) are the subscriber's
	// daily quiet hours in their time zone: set together or not at all.
	QuietHoursStart *string `json:"quiet_hours_start"`
	QuietHoursEnd   *string `json:"quiet_hours_end"`
}

// apply validates in and writes the fields it gives onto sub.
func (in SubscriberInput) apply(p *validation.Problems, sub *Subscriber, creating bool) {
	if in.ExternalID != nil {
		sub.ExternalID = strings.TrimSpace(*in.ExternalID)
	}
	if (creating || in.ExternalID != nil) && (sub.ExternalID == "" || len(sub.ExternalID) > 255) {
		p.Add("external_id", "must be 1–255 characters")
	}
	if in.Email != nil {
		sub.Email = ""
		if e := strings.TrimSpace(*in.Email); e != "" {
			a, err := mail.ParseAddress(e)
			if err != nil || !strings.Contains(a.Address, "@") || a.Address != e {
				p.Add("email", "%q is not a bare email address (user@example.com)", e)
			} else {
				sub.Email = strings.ToLower(a.Address)
			}
		}
	}
	if in.Phone != nil {
		sub.Phone = strings.TrimSpace(*in.Phone)
		if sub.Phone != "" && !validation.IsE164(sub.Phone) {
			p.Add("phone", "%q is not an E.164 phone number (+14155550100)", sub.Phone)
		}
	}
	if in.TimeZone != nil {
		sub.TimeZone = strings.TrimSpace(*in.TimeZone)
		checkTimeZone(p, "time_zone", sub.TimeZone)
	}
	if in.Locale != nil {
		sub.Locale = strings.TrimSpace(*in.Locale)
		if len(sub.Locale) > 35 || strings.ContainsAny(sub.Locale, " \t\r\n") {
			p.Add("locale", "must be a BCP 47 language tag (en-GB), got %q", sub.Locale)
		}
	}
	if in.QuietHoursStart != nil {
		sub.QuietHoursStart = strings.TrimSpace(*in.QuietHoursStart)
	}
	if in.QuietHoursEnd != nil {
		sub.QuietHoursEnd = strings.TrimSpace(*in.QuietHoursEnd)
	}
	checkQuietHours(p, sub.QuietHoursStart, sub.QuietHoursEnd)
	if in.Data != nil {
		data := *in.Data
		if data == nil {
			data = map[string]any{}
		}
		b, err := json.Marshal(data)
		if err != nil || len(b) > MaxSubscriberData {
			p.Add("data", "must be a JSON object of at most %d bytes", MaxSubscriberData)
		} else {
			sub.Data = b
		}
	}
}

// CreateSubscriber validates and stores a subscriber. Errors: validation.Problems,
// store.ErrConflict (external id taken).
func (s *Service) CreateSubscriber(ctx context.Context, in SubscriberInput) (Subscriber, error) {
	var p validation.Problems
	sub := Subscriber{ID: store.NewID(), Data: store.JSON("{}")}
	in.apply(&p, &sub, true)
	if err := p.Err(); err != nil {
		return sub, err
	}
	now := s.now().UTC()
	sub.CreatedAt, sub.UpdatedAt = now, now
	if err := s.store.CreateSubscriber(ctx, &sub); err != nil {
		return sub, err
	}
	sub.Preferences = []Preference{}
	return sub, nil
}

// GetSubscriber returns a subscriber by id or external id (ErrSubscriberNotFound).
func (s *Service) GetSubscriber(ctx context.Context, id string) (Subscriber, error) {
	sub, err := s.store.GetSubscriber(ctx, id)
	if isNotFound(err) {
		return sub, fmt.Errorf("%w: %s", ErrSubscriberNotFound, id)
	}
	return sub, err
}

// ListSubscribers pages through the tenant's subscribers, newest first.
func (s *Service) ListSubscribers(ctx context.Context, p store.Page) ([]Subscriber, string, error) {
	return s.store.ListSubscribers(ctx, p)
}

// UpdateSubscriber changes the fields in gives. Errors: ErrSubscriberNotFound,
// validation.Problems, store.ErrConflict.
func (s *Service) UpdateSubscriber(ctx context.Context, id string, in SubscriberInput) (Subscriber, error) {
	sub, err := s.GetSubscriber(ctx, id)
	if err != nil {
		return sub, err
	}
	var p validation.Problems
	in.apply(&p, &sub, false)
	if err := p.Err(); err != nil {
		return sub, err
	}
	sub.UpdatedAt = s.now().UTC()
	if err := s.store.UpdateSubscriber(ctx, &sub); err != nil {
		return sub, err
	}
	return s.GetSubscriber(ctx, sub.ID)
}

// DeleteSubscriber removes a subscriber and its preferences (ErrSubscriberNotFound).
func (s *Service) DeleteSubscriber(ctx context.Context, id string) error {
	sub, err := s.GetSubscriber(ctx, id)
	if err != nil {
		return err
	}
	return s.store.DeleteSubscriber(ctx, sub.ID)
}

// PreferenceInput is one preference: channel ("" or omitted: every channel), category (""
// or omitted: every category) and whether it is enabled.
type PreferenceInput struct {
	Channel  string `json:"channel"`
	Category string `json:"category"`
	Enabled  *bool  `json:"enabled"`
}

// SetPreferences records each of a subscriber's preferences (replacing one for the same channel
// and category) and returns the subscriber. Errors: ErrSubscriberNotFound, validation.Problems.
func (s *Service) SetPreferences(ctx context.Context, id string, prefs []PreferenceInput) (Subscriber, error) {
	sub, err := s.GetSubscriber(ctx, id)
	if err != nil {
		return sub, err
	}
	var p validation.Problems
	if len(prefs) == 0 {
		p.Add("preferences", "at least one preference is required")
	}
	if len(prefs) > 100 {
		p.Add("preferences", "at most 100 preferences, got %d", len(prefs))
	}
	for i, in := range prefs {
		path := validation.Index("preferences", i)
		switch in.Channel {
		case "", store.ChannelEmail, store.ChannelSMS:
		default:
			p.Add(path+".channel", "must be email, sms or empty (every channel), got %q", in.Channel)
		}
		if in.Category != "" && !validName(in.Category) {
			p.Add(path+".category", "must be 1–64 characters of a-z, 0-9, '.', '_' or '-', got %q", in.Category)
		}
		if in.Enabled == nil {
			p.Add(path+".enabled", "is required")
		}
	}
	if err := p.Err(); err != nil {
		return sub, err
	}
	now := s.now().UTC()
	for _, in := range prefs {
		if err := s.store.SetPreference(ctx, &Preference{SubscriberID: sub.ID, Channel: in.Channel,
			Category: in.Category, Enabled: *in.Enabled, Source: "api", UpdatedAt: now}); err != nil {
			return sub, err
		}
	}
	return s.GetSubscriber(ctx, sub.ID)
}

// CategoryInput creates (with ID) or replaces a category.
type CategoryInput struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	// Transactional categories (verification codes, receipts) cannot be opted out of and carry
	// no List-Unsubscribe.
	Transactional bool `json:"transactional"`
	// DefaultEnabled is whether a subscriber without a preference gets the category (default true).
	DefaultEnabled *bool `json:"default_enabled"`
	// Digest, when set, holds the category's notifications to each subscriber for a window and
	// sends them as one message (null or absent: sent one by one).
	Digest *DigestInput `json:"digest"`
}

func (s *Service) category(id string, in CategoryInput) (Category, error) {
	var p validation.Problems
	if !validName(id) {
		p.Add("id", "must be 1–64 characters of a-z, 0-9, '.', '_' or '-', got %q", id)
	}
	if len(in.Description) > 500 {
		p.Add("description", "must be at most 500 characters")
	}
	enabled := in.DefaultEnabled == nil || *in.DefaultEnabled
	if in.Transactional && !enabled {
		p.Add("default_enabled", "a transactional category is always sent")
	}
	digest := in.Digest.digest(&p, in.Transactional)
	now := s.now().UTC()
	return Category{ID: id, Description: in.Description, Transactional: in.Transactional, DefaultEnabled: enabled,
		Digest: digest, CreatedAt: now, UpdatedAt: now}, p.Err()
}

// CreateCategory stores a new category. Errors: validation.Problems, store.ErrConflict.
func (s *Service) CreateCategory(ctx context.Context, in CategoryInput) (Category, error) {
	c, err := s.category(in.ID, in)
	if err == nil {
		err = s.checkDigestTemplate(ctx, c.Digest)
	}
	if err != nil {
		return c, err
	}
	return c, s.store.CreateCategory(ctx, &c)
}

// UpdateCategory replaces category id's settings. Errors: validation.Problems, store.ErrNotFound.
func (s *Service) UpdateCategory(ctx context.Context, id string, in CategoryInput) (Category, error) {
	c, err := s.category(id, in)
	if err == nil {
		err = s.checkDigestTemplate(ctx, c.Digest)
	}
	if err != nil {
		return c, err
	}
	if err := s.store.UpdateCategory(ctx, &c); err != nil {
		return c, err
	}
	return s.store.GetCategory(ctx, id)
}

// ListCategories returns the tenant's categories.
func (s *Service) ListCategories(ctx context.Context) ([]Category, error) {
	return s.store.ListCategories(ctx)
}

// DeleteCategory removes a category (store.ErrNotFound).
func (s *Service) DeleteCategory(ctx context.Context, id string) error {
	return s.store.DeleteCategory(ctx, id)
}

// ListSuppressions pages through the suppression list.
func (s *Service) ListSuppressions(ctx context.Context, f store.SuppressionFilter, p store.Page) ([]Suppression, string, error) {
	if f.Address != "" {
		f.Address = recipientKey(f.Address)
	}
	return s.store.ListSuppressions(ctx, f, p)
}

// DeleteSuppression takes an address off the list so that it is sent to again (store.ErrNotFound).
func (s *Service) DeleteSuppression(ctx context.Context, channel, address string) error {
	return s.store.DeleteSuppression(ctx, channel, recipientKey(address))
}
