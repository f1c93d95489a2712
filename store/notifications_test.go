package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/store"
)

func newNotification(channel string, recipients ...string) *store.Notification {
	now := time.Now().UTC()
	n := &store.Notification{ID: store.NewID(), Channel: channel, Status: store.StatusQueued, Body: "hi",
		Priority: "normal", WorkflowID: "wf", CreatedAt: now, UpdatedAt: now}
	for i, r := range recipients {
		n.Deliveries = append(n.Deliveries, store.NotificationDelivery{ID: store.NewID(), NotificationID: n.ID,
			Position: i, Recipient: r, RecipientKey: r, Status: store.StatusQueued, UpdatedAt: now})
	}
	return n
}

func TestSeededTemplatesAndVersions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		tpl, v, err := s.GetNotificationTemplate(ctx, "welcome_email", 0)
		if err != nil || tpl.Channel != "email" || v.Version != 2 || v.Subject == "" || v.HTMLBody == "" {
			t.Fatalf("seeded welcome_email: %+v %+v %v", tpl, v, err)
		}
		checkWelcomeEmail(t, s, v)
		if _, _, err := s.GetNotificationTemplate(ctx, "verification_sms", 0); err != nil {
			t.Fatalf("seeded verification_sms: %v", err)
		}
		now := time.Now().UTC()
		nt := &store.NotificationTemplate{ID: "order_shipped", Channel: "email", CreatedAt: now, UpdatedAt: now}
		if err := s.CreateNotificationTemplate(ctx, nt, &store.NotificationTemplateVersion{Subject: "v1", Body: "b1", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		dup := &store.NotificationTemplate{ID: "order_shipped", Channel: "email", CreatedAt: now, UpdatedAt: now}
		if err := s.CreateNotificationTemplate(ctx, dup, &store.NotificationTemplateVersion{Body: "x", CreatedAt: now}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate id: %v", err)
		}
		desc := "shipping"
		up, err := s.UpdateNotificationTemplate(ctx, "order_shipped", &desc, &store.NotificationTemplateVersion{Subject: "v2", Body: "b2"}, now)
		if err != nil || up.CurrentVersion != 2 || up.Description != "shipping" {
			t.Fatalf("update: %+v %v", up, err)
		}
		if _, v, _ := s.GetNotificationTemplate(ctx, "order_shipped", 0); v.Subject != "v2" {
			t.Errorf("current version: %+v", v)
		}
		if _, v, _ := s.GetNotificationTemplate(ctx, "order_shipped", 1); v.Subject != "v1" {
			t.Errorf("version 1: %+v", v)
		}
		if vs, _ := s.NotificationTemplateVersions(ctx, "order_shipped"); len(vs) != 2 || vs[0].Version != 2 {
			t.Errorf("versions: %+v", vs)
		}
		items, next, err := s.ListNotificationTemplates(ctx, "", store.Page{Limit: 2})
		if err != nil || len(items) != 2 || next == "" || items[0].ID != "order_shipped" {
			t.Fatalf("list page 1: %+v %q %v", items, next, err)
		}
		items, next, _ = s.ListNotificationTemplates(ctx, "", store.Page{Limit: 2, Cursor: next})
		if len(items) != 1 || next != "" || items[0].ID != "welcome_email" {
			t.Errorf("list page 2: %+v %q", items, next)
		}
		if items, _, _ := s.ListNotificationTemplates(ctx, "sms", store.Page{}); len(items) != 1 {
			t.Errorf("sms templates: %+v", items)
		}
		if err := s.DeleteNotificationTemplate(ctx, "order_shipped"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteNotificationTemplate(ctx, "order_shipped"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
		if _, _, err := s.GetNotificationTemplate(ctx, "order_shipped", 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after delete: %v", err)
		}
	})
}

func TestDeliveryLifecycle(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		n := newNotification("sms", "+15550001", "+15550002")
		n.IdempotencyKey = "k1"
		if ok, err := s.InsertNotification(ctx, n); !ok || err != nil {
			t.Fatalf("insert: %v %v", ok, err)
		}
		again := *n
		if ok, err := s.InsertNotification(ctx, &again); ok || err != nil {
			t.Fatalf("second insert: %v %v", ok, err)
		}
		if got, err := s.FindNotificationByIdempotencyKey(ctx, "k1"); err != nil || got.ID != n.ID || len(got.Deliveries) != 2 {
			t.Fatalf("by key: %+v %v", got, err)
		}
		d1, d2 := n.Deliveries[0].ID, n.Deliveries[1].ID
		now := time.Now().UTC()
		status := func() string {
			got, err := s.GetNotification(ctx, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Status
		}
		if err := s.StartAttempt(ctx, d1, 1, "twilio", "", now); err != nil {
			t.Fatal(err)
		}
		if st := status(); st != store.StatusSending {
			t.Errorf("after start: %s", st)
		}
		if err := s.FinishAttempt(ctx, d1, 1, store.AttemptOutcome{Error: "timeout", Retryable: true}, now); err != nil {
			t.Fatal(err)
		}
		_ = s.StartAttempt(ctx, d1, 2, "twilio", "", now)
		if err := s.FinishAttempt(ctx, d1, 2, store.AttemptOutcome{Sent: true, ProviderMessageID: "SM1"}, now); err != nil {
			t.Fatal(err)
		}
		_ = s.StartAttempt(ctx, d2, 1, "twilio", "", now)
		if err := s.FinishAttempt(ctx, d2, 1, store.AttemptOutcome{Error: "invalid number", ErrorCode: "21211"}, now); err != nil {
			t.Fatal(err)
		}
		if changed, err := s.FailDelivery(ctx, d2, "invalid number", "21211", now); !changed || err != nil {
			t.Fatalf("fail: %v %v", changed, err)
		}
		if changed, _ := s.FailDelivery(ctx, d1, "late", "", now); changed {
			t.Error("a sent delivery was failed")
		}
		if st := status(); st != store.StatusPartiallyFailed {
			t.Errorf("one sent, one failed: %s", st)
		}
		got, _ := s.GetNotification(ctx, n.ID)
		if a := got.Deliveries[0].Attempts; len(a) != 2 || a[0].Status != "failed" || !a[0].Retryable || a[1].ProviderMessageID != "SM1" {
			t.Errorf("attempts: %+v", a)
		}
		if got.CompletedAt == nil || got.Deliveries[0].AttemptCount != 2 {
			t.Errorf("completed_at %v, attempt_count %d", got.CompletedAt, got.Deliveries[0].AttemptCount)
		}

		// Provider callbacks move forward only.
		d, changed, err := s.ApplyProviderUpdate(ctx, d1, store.ProviderUpdate{Status: "delivered", Outcome: store.StatusDelivered}, now)
		if err != nil || !changed || d.Status != store.StatusDelivered || d.DeliveredAt == nil {
			t.Fatalf("delivered: %+v %v %v", d, changed, err)
		}
		if d, changed, _ := s.ApplyProviderUpdate(ctx, d1, store.ProviderUpdate{Status: "sent", Outcome: store.StatusSent}, now); changed || d.Status != store.StatusDelivered {
			t.Errorf("late sent: %+v %v", d, changed)
		}
		if _, changed, _ := s.ApplyProviderUpdate(ctx, d1, store.ProviderUpdate{Status: "delivered", Outcome: store.StatusDelivered}, now); changed {
			t.Error("a repeated callback changed the delivery")
		}
		if _, _, err := s.ApplyProviderUpdate(ctx, "nope", store.ProviderUpdate{}, now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown delivery: %v", err)
		}
	})
}

func TestAggregateStatus(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, "queued"},
		{[]string{"queued", "queued"}, "queued"},
		{[]string{"queued", "sent"}, "sending"},
		{[]string{"sending"}, "sending"},
		{[]string{"sent", "delivered"}, "sent"},
		{[]string{"delivered", "delivered"}, "delivered"},
		{[]string{"failed", "failed"}, "failed"},
		{[]string{"failed", "delivered"}, "partially_failed"},
	} {
		if got := store.AggregateStatus(tc.in); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestThrottleSlotsSpreadABurst(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		n := newNotification("email", "a@x.io", "a@x.io", "a@x.io", "a@x.io", "a@x.io", "a@x.io", "a@x.io", "b@x.io")
		if _, err := s.InsertNotification(ctx, n); err != nil {
			t.Fatal(err)
		}
		var reqs []store.SlotRequest
		for _, d := range n.Deliveries {
			reqs = append(reqs, store.SlotRequest{DeliveryID: d.ID, RecipientKey: d.RecipientKey})
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		slots, err := s.ReserveThrottleSlots(ctx, "email", reqs, 3, time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{0, 0, 0, time.Minute, time.Minute, time.Minute, 2 * time.Minute, 0}
		for i, d := range n.Deliveries {
			if got := slots[d.ID].Sub(now); got != want[i] {
				t.Errorf("delivery %d (%s): slot at +%v, want +%v", i, d.RecipientKey, got, want[i])
			}
		}
		// A retried reservation keeps its slot; the email channel's budget is not the SMS one's.
		again, err := s.ReserveThrottleSlots(ctx, "email", reqs[6:7], 3, time.Minute, now.Add(time.Second))
		if err != nil || !again[reqs[6].DeliveryID].Equal(slots[reqs[6].DeliveryID]) {
			t.Errorf("retried reservation: %v %v", again, err)
		}
		sms, _ := s.ReserveThrottleSlots(ctx, "sms", []store.SlotRequest{{DeliveryID: store.NewID(), RecipientKey: "a@x.io"}}, 3, time.Minute, now)
		for _, at := range sms {
			if !at.Equal(now) {
				t.Errorf("sms slot %v, want now", at)
			}
		}
		got, _ := s.GetNotification(ctx, n.ID)
		if got.Deliveries[6].ScheduledAt == nil || !got.Deliveries[6].ScheduledAt.Equal(now.Add(2*time.Minute)) {
			t.Errorf("scheduled_at %v", got.Deliveries[6].ScheduledAt)
		}
		// Later, the window has moved on: slots are free again.
		later, _ := s.ReserveThrottleSlots(ctx, "email", []store.SlotRequest{{DeliveryID: store.NewID(), RecipientKey: "a@x.io"}}, 3, time.Minute, now.Add(10*time.Minute))
		for _, at := range later {
			if !at.Equal(now.Add(10 * time.Minute)) {
				t.Errorf("slot after the window: %v", at.Sub(now))
			}
		}
	})
}

func TestListNotificationsFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for i := range 5 {
			ch := "email"
			if i%2 == 1 {
				ch = "sms"
			}
			n := newNotification(ch, fmt.Sprintf("r%d", i%3))
			if i == 4 {
				n.Status = store.StatusSent
			}
			if _, err := s.InsertNotification(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		future := time.Now().Add(time.Hour)
		for _, tc := range []struct {
			f    store.NotificationFilter
			want int
		}{
			{store.NotificationFilter{}, 5},
			{store.NotificationFilter{Channel: "sms"}, 2},
			{store.NotificationFilter{Status: "sent"}, 1},
			{store.NotificationFilter{Recipient: "r0"}, 2},
			{store.NotificationFilter{Channel: "email", Recipient: "r1"}, 1},
			{store.NotificationFilter{Since: &future}, 0},
			{store.NotificationFilter{Until: &future}, 5},
		} {
			items, _, err := s.ListNotifications(ctx, tc.f, store.Page{})
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != tc.want {
				t.Errorf("%+v: %d, want %d", tc.f, len(items), tc.want)
			}
			for _, n := range items {
				if len(n.Deliveries) != 1 {
					t.Errorf("notification %s has %d deliveries listed", n.ID, len(n.Deliveries))
				}
			}
		}
	})
}

func TestAdmissionKeepsTheLimitOnActualSends(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		admit := func(id string, at time.Duration) time.Duration {
			t.Helper()
			wait, err := s.AdmitThrottled(ctx, "email", id, "a@x.io", 2, time.Minute, t0.Add(at))
			if err != nil {
				t.Fatal(err)
			}
			return wait
		}
		if admit("d1", 0) != 0 || admit("d2", 5*time.Second) != 0 {
			t.Fatal("the first two were not admitted")
		}
		if w := admit("d3", 10*time.Second); w != 50*time.Second {
			t.Errorf("third within the window: wait %v, want 50s", w)
		}
		if w := admit("d1", 20*time.Second); w != 0 {
			t.Errorf("an admitted delivery (retry) must pass: wait %v", w)
		}
		if w := admit("d3", time.Minute); w != 0 {
			t.Errorf("third after the window: wait %v", w)
		}
		if w := admit("d4", time.Minute); w != 5*time.Second {
			t.Errorf("fourth: wait %v, want 5s", w)
		}
		if w, _ := s.AdmitThrottled(ctx, "email", "d5", "a@x.io", 0, time.Minute, t0); w != 0 {
			t.Errorf("no limit: wait %v", w)
		}
	})
}
