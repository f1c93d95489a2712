package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// TestDigestWindows: the first delivery to join opens a window and leads it, the next join it;
// every one shows the hold; closing lists the items oldest first and sends later deliveries to
// a new window; a window its leader left is taken over; tenants have their own windows.
func TestDigestWindows(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		bg := context.Background()
		a, b := tenant.With(bg, "acme"), tenant.With(bg, "beta")
		now := time.Now().UTC().Truncate(time.Second)
		insert := func(ctx context.Context, subject string, at time.Time) *store.Notification {
			t.Helper()
			n := newNotification("email", "ada@example.com")
			n.Subject, n.Category, n.CreatedAt = subject, "news", at
			n.Deliveries[0].SubscriberID = "sub-1"
			if _, err := s.InsertNotification(ctx, n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		key := store.DigestKey{SubscriberID: "sub-1", Category: "news", Channel: "email", TemplateID: "daily"}
		closes := now.Add(time.Hour)
		n1 := insert(a, "first", now)
		n2 := insert(a, "second", now.Add(time.Second))
		j1, err := s.JoinDigest(a, n1.Deliveries[0].ID, key, closes, now)
		if err != nil || !j1.Leader || j1.Digest.Status != store.DigestOpen || !j1.Digest.ClosesAt.Equal(closes) ||
			j1.Digest.NotificationID == "" || j1.Digest.TemplateID != "daily" {
			t.Fatalf("first join: %+v %v", j1, err)
		}
		if again, err := s.JoinDigest(a, n1.Deliveries[0].ID, key, closes.Add(time.Hour), now); err != nil || !again.Leader || again.Digest.ID != j1.Digest.ID {
			t.Fatalf("repeated join: %+v %v", again, err)
		}
		j2, err := s.JoinDigest(a, n2.Deliveries[0].ID, key, closes.Add(time.Hour), now)
		if err != nil || j2.Leader || j2.Digest.ID != j1.Digest.ID {
			t.Fatalf("second join: %+v %v", j2, err)
		}
		got, err := s.GetNotification(a, n2.ID)
		if err != nil || got.Status != store.StatusDigested {
			t.Fatalf("digested notification: %+v %v", got, err)
		}
		d := got.Deliveries[0]
		if d.Status != store.StatusDigested || d.HeldReason != store.HoldDigest || d.HeldUntil == nil || !d.HeldUntil.Equal(closes) ||
			d.DigestID != j1.Digest.ID || d.DigestNotificationID != j1.Digest.NotificationID {
			t.Fatalf("digested delivery: %+v", d)
		}

		// Another tenant's subscriber of the same id has a window of its own.
		nb := insert(b, "beta's", now)
		jb, err := s.JoinDigest(b, nb.Deliveries[0].ID, key, closes, now)
		if err != nil || !jb.Leader || jb.Digest.ID == j1.Digest.ID {
			t.Fatalf("beta's join: %+v %v", jb, err)
		}
		if _, err := s.GetDigest(b, j1.Digest.ID); err != store.ErrNotFound {
			t.Fatalf("beta reads acme's digest: %v", err)
		}

		c, err := s.CloseDigest(a, j1.Digest.ID, now.Add(time.Hour))
		if err != nil || c.Digest.Status != store.DigestClosed || len(c.Items) != 2 ||
			c.Items[0].Subject != "first" || c.Items[1].Subject != "second" || c.Items[1].DeliveryID != n2.Deliveries[0].ID {
			t.Fatalf("close: %+v %v", c, err)
		}
		if again, err := s.CloseDigest(a, j1.Digest.ID, now.Add(2*time.Hour)); err != nil || len(again.Items) != 2 ||
			!again.Digest.ClosedAt.Equal(*c.Digest.ClosedAt) {
			t.Fatalf("closed again: %+v %v", again, err)
		}
		n3 := insert(a, "third", now.Add(2*time.Second))
		j3, err := s.JoinDigest(a, n3.Deliveries[0].ID, key, closes.Add(time.Hour), now)
		if err != nil || !j3.Leader || j3.Digest.ID == j1.Digest.ID {
			t.Fatalf("join after the close: %+v %v", j3, err)
		}

		// A window long past its close whose leader never closed it is taken over.
		n4 := insert(a, "fourth", now)
		n5 := insert(a, "fifth", now)
		lapsed := store.DigestKey{SubscriberID: "sub-1", Category: "alerts", Channel: "email"}
		if _, err := s.JoinDigest(a, n4.Deliveries[0].ID, lapsed, now.Add(-time.Hour), now.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		j5, err := s.JoinDigest(a, n5.Deliveries[0].ID, lapsed, now.Add(time.Hour), now)
		if err != nil || !j5.Leader {
			t.Fatalf("takeover: %+v %v", j5, err)
		}

		// A digest that cannot be sent fails what it holds.
		if err := s.FailDigest(a, j5.Digest.ID, "the subscriber was deleted", now); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetNotification(a, n4.ID); got.Status != store.StatusFailed || got.Deliveries[0].Error != "the subscriber was deleted" {
			t.Fatalf("failed digest item: %+v", got)
		}
	})
}
