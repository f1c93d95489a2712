package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// TestCheckSend: suppressions skip, the most specific preference decides, then the category's
// default; transactional categories are always sent; all of it per tenant.
func TestCheckSend(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		bg := context.Background()
		a, b := tenant.With(bg, "acme"), tenant.With(bg, "beta")
		now := time.Now().UTC()
		sub := store.Subscriber{ID: store.NewID(), ExternalID: "u1", Email: "ada@example.com", CreatedAt: now, UpdatedAt: now}
		if err := s.CreateSubscriber(a, &sub); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSubscriber(a, &store.Subscriber{ID: store.NewID(), ExternalID: "u1", CreatedAt: now, UpdatedAt: now}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate external id: %v", err)
		}
		if _, err := s.GetSubscriber(b, sub.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("beta reads acme's subscriber: %v", err)
		}
		check := func(ctx context.Context, address, subID, category string) store.SendCheck {
			t.Helper()
			c, err := s.CheckSend(ctx, store.ChannelEmail, address, subID, category)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		if c := check(a, "ada@example.com", "", "news"); c.Skip != "" || c.SubscriberID != sub.ID {
			t.Fatalf("no preferences: %+v", c)
		}
		set := func(channel, category string, enabled bool) {
			t.Helper()
			if err := s.SetPreference(a, &store.SubscriberPreference{SubscriberID: sub.ID, Channel: channel, Category: category,
				Enabled: enabled, Source: "api", UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		set("", "", false)
		set("email", "news", true)
		if c := check(a, "ada@example.com", sub.ID, "news"); c.Skip != "" {
			t.Errorf("email+news enabled beats everything off: %+v", c)
		}
		if c := check(a, "ada@example.com", sub.ID, "promo"); c.Skip != store.SkipOptedOut {
			t.Errorf("everything off: %+v", c)
		}
		set("", "news", false) // category beats channel+"" but not channel+category
		if c := check(a, "ada@example.com", sub.ID, "news"); c.Skip != "" {
			t.Errorf("most specific wins: %+v", c)
		}
		if err := s.CreateCategory(a, &store.NotificationCategory{ID: "otp", Transactional: true, DefaultEnabled: true,
			CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if c := check(a, "ada@example.com", sub.ID, "otp"); c.Skip != "" || !c.Transactional {
			t.Errorf("transactional: %+v", c)
		}
		if err := s.CreateCategory(a, &store.NotificationCategory{ID: "digest", DefaultEnabled: false,
			CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if c := check(a, "bob@example.com", "", "digest"); c.Skip != store.SkipOptedOut {
			t.Errorf("off by default: %+v", c)
		}
		if c := check(b, "bob@example.com", "", "digest"); c.Skip != "" {
			t.Errorf("beta has no such category: %+v", c)
		}
		if added, err := s.Suppress(a, &store.NotificationSuppression{Channel: store.ChannelEmail, Address: "ada@example.com",
			Reason: "hard_bounce", Source: "smtp", CreatedAt: now}); err != nil || !added {
			t.Fatalf("suppress: %v %v", added, err)
		}
		if added, err := s.Suppress(a, &store.NotificationSuppression{Channel: store.ChannelEmail, Address: "ada@example.com",
			Reason: "complaint", Source: "ses", CreatedAt: now}); err != nil || added {
			t.Fatalf("suppress again: %v %v", added, err)
		}
		if c := check(a, "ada@example.com", sub.ID, "otp"); c.Skip != store.SkipSuppressed {
			t.Errorf("suppressed: %+v", c)
		}
		if c := check(b, "ada@example.com", "", "otp"); c.Skip != "" {
			t.Errorf("beta's list is its own: %+v", c)
		}
		items, _, err := s.ListSuppressions(a, store.SuppressionFilter{Channel: store.ChannelEmail}, store.Page{})
		if err != nil || len(items) != 1 || items[0].Reason != "hard_bounce" {
			t.Errorf("list: %+v %v", items, err)
		}
		if err := s.DeleteSuppression(b, store.ChannelEmail, "ada@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("beta deletes acme's suppression: %v", err)
		}
		if err := s.DeleteSuppression(a, store.ChannelEmail, "ada@example.com"); err != nil {
			t.Errorf("delete: %v", err)
		}
		if err := s.DeleteSubscriber(a, sub.ID); err != nil {
			t.Fatal(err)
		}
		if c := check(a, "ada@example.com", "", "promo"); c.Skip != "" || c.SubscriberID != "" {
			t.Errorf("after delete: %+v", c)
		}
	})
}
