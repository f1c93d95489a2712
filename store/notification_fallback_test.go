package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/store"
)

func TestFallbackDeliveryReplacesAFailedOne(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		n := newNotification("email", "ada@example.com")
		if _, err := s.InsertNotification(ctx, n); err != nil {
			t.Fatal(err)
		}
		from := n.Deliveries[0].ID
		now := time.Now().UTC()
		if _, err := s.FailDelivery(ctx, from, "550 no such user", "550", now); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetNotification(ctx, n.ID); got.Status != store.StatusFailed {
			t.Fatalf("before fallback: %s", got.Status)
		}
		next := store.FallbackDelivery{ID: store.NewID(), Channel: "sms", Recipient: "+14155550100", RecipientKey: "+14155550100"}
		d, err := s.AddFallbackDelivery(ctx, from, next, now)
		if err != nil || d.ID != next.ID || d.FallbackOf != from || d.Channel != "sms" || d.Status != store.StatusQueued {
			t.Fatalf("fallback: %+v %v", d, err)
		}
		again, err := s.AddFallbackDelivery(ctx, from, store.FallbackDelivery{ID: store.NewID(), Channel: "sms", Recipient: "x", RecipientKey: "x"}, now)
		if err != nil || again.ID != next.ID {
			t.Fatalf("repeated fallback: %+v %v", again, err)
		}
		got, err := s.GetNotification(ctx, n.ID)
		if err != nil || got.Status != store.StatusQueued || len(got.Deliveries) != 2 {
			t.Fatalf("after fallback: %+v %v", got, err)
		}
		if got.Deliveries[0].FallbackID != next.ID || got.Deliveries[0].Status != store.StatusFailed || got.Deliveries[1].FallbackOf != from {
			t.Fatalf("deliveries: %+v", got.Deliveries)
		}
		if _, err := s.FailDelivery(ctx, next.ID, "invalid", "21211", now); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetNotification(ctx, n.ID); got.Status != store.StatusFailed {
			t.Fatalf("after the fallback failed: %s", got.Status)
		}
	})
}

func TestHoldDeliveryShowsTheWait(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		n := newNotification("email", "ada@example.com")
		if _, err := s.InsertNotification(ctx, n); err != nil {
			t.Fatal(err)
		}
		until := time.Date(2026, 3, 11, 6, 0, 0, 0, time.UTC)
		if err := s.HoldDelivery(ctx, n.Deliveries[0].ID, until, "quiet_hours", time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetNotification(ctx, n.ID)
		if d := got.Deliveries[0]; err != nil || got.Status != store.StatusQueued || d.HeldUntil == nil ||
			!d.HeldUntil.Equal(until) || d.HeldReason != "quiet_hours" {
			t.Fatalf("held: %+v %v", got, err)
		}
		now := time.Now().UTC()
		sub := &store.Subscriber{ID: store.NewID(), ExternalID: "q", QuietHoursStart: "22:00", QuietHoursEnd: "07:00",
			Data: store.JSON("{}"), CreatedAt: now, UpdatedAt: now}
		if err := s.CreateSubscriber(ctx, sub); err != nil {
			t.Fatal(err)
		}
		sub.QuietHoursStart, sub.QuietHoursEnd = "23:00", "06:30"
		if err := s.UpdateSubscriber(ctx, sub); err != nil {
			t.Fatal(err)
		}
		if back, err := s.GetSubscriber(ctx, "q"); err != nil || back.QuietHoursStart != "23:00" || back.QuietHoursEnd != "06:30" {
			t.Fatalf("subscriber quiet hours: %+v %v", back, err)
		}
	})
}
