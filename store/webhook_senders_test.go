package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// One process holds an endpoint at a time; another takes it over only once the hold lapses or
// is released; renewals report which holds are still the owner's.
func TestWebhookSenderLeases(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		e, e2 := newEndpoint(t, s, false), newEndpoint(t, s, false)
		acquire := func(id, owner string, at time.Time) bool {
			t.Helper()
			ok, err := s.AcquireWebhookSender(ctx, id, owner, at.Add(5*time.Second), at)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !acquire(e.ID, "p1", now) || !acquire(e2.ID, "p1", now) {
			t.Fatal("a free endpoint was not taken")
		}
		if acquire(e.ID, "p2", now.Add(time.Second)) {
			t.Fatal("another process took a held endpoint")
		}
		if !acquire(e.ID, "p1", now.Add(time.Second)) {
			t.Fatal("the holder could not take its endpoint again")
		}
		without, err := s.WebhookEndpointsWithoutSender(ctx, []string{e.ID, e2.ID}, now.Add(time.Second))
		if err != nil || len(without) != 0 {
			t.Fatalf("held endpoints reported without sender: %v %v", without, err)
		}
		// Past its end the hold counts no more, and another process may take the endpoint.
		if without, _ := s.WebhookEndpointsWithoutSender(ctx, []string{e.ID}, now.Add(time.Minute)); len(without) != 1 {
			t.Errorf("a lapsed hold still counts: %v", without)
		}
		if !acquire(e.ID, "p2", now.Add(time.Minute)) {
			t.Fatal("a lapsed hold was not taken over")
		}
		held, err := s.RenewWebhookSenders(ctx, "p1", []string{e.ID, e2.ID}, now.Add(time.Minute))
		if err != nil || !slices.Equal(held, []string{e2.ID}) {
			t.Fatalf("p1 renewed %v (%v), want only the endpoint it still holds", held, err)
		}
		if err := s.ReleaseWebhookSender(ctx, e.ID, "p1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetWebhookEndpoint(ctx, e.ID); got.SenderID != "p2" {
			t.Errorf("a release by a former holder let go of p2's hold: %q", got.SenderID)
		}
		if err := s.ReleaseWebhookSender(ctx, e.ID, "p2"); err != nil {
			t.Fatal(err)
		}
		if !acquire(e.ID, "p3", now.Add(time.Minute)) {
			t.Error("a released endpoint was not free")
		}
	})
}

// Attempts a sender left started become unknown outcomes, counted in their deliveries, which
// stay pending; the next due time follows the queue's order.
func TestRecoverStartedWebhookAttempts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		e := newEndpoint(t, s, true)
		_, ds := newMessage(t, s, "", now.Add(time.Hour), e.ID)
		_, ds2 := newMessage(t, s, "", now, e.ID)
		if err := s.StartWebhookAttempts(ctx, []store.WebhookAttempt{{ID: store.NewID(), DeliveryID: ds2[0].ID,
			EndpointID: e.ID, Attempt: 1, URL: e.URL, StartedAt: now}}); err != nil {
			t.Fatal(err)
		}
		n, err := s.RecoverStartedWebhookAttempts(ctx, e.ID, now)
		if err != nil || n != 1 {
			t.Fatalf("recovered %d (%v), want 1", n, err)
		}
		a, _ := s.WebhookDeliveryAttempts(ctx, ds2[0].ID)
		if len(a) != 1 || a[0].Outcome != store.AttemptUnknown || a[0].Error == "" {
			t.Errorf("attempts %+v", a)
		}
		d, _ := s.GetWebhookDelivery(ctx, ds2[0].ID)
		if d.Status != store.DeliveryPending || d.Attempts != 1 || d.LastError != store.UnknownOutcome {
			t.Errorf("delivery %+v", d)
		}
		if n, _ := s.RecoverStartedWebhookAttempts(ctx, e.ID, now); n != 0 {
			t.Errorf("recovered again: %d", n)
		}
		// Ordered: the head of the queue (due in an hour) decides, not the later one due now.
		due, ok, err := s.NextWebhookDue(ctx, e.ID, true, now)
		if err != nil || !ok || !due.Equal(*ds[0].NextAttemptAt) {
			t.Errorf("ordered next due %s %v %v, want the head's %s", due, ok, err, ds[0].NextAttemptAt)
		}
		if due, _, _ := s.NextWebhookDue(ctx, e.ID, false, now); !due.Equal(now) {
			t.Errorf("unordered next due %s, want the earliest (%s)", due, now)
		}
		if _, ok, _ := s.NextWebhookDue(ctx, newEndpoint(t, s, false).ID, false, now); ok {
			t.Error("an endpoint without deliveries has one due")
		}
	})
}

// On Postgres a notification reaches every listener; on SQLite notifying does nothing and
// listening is refused (API and senders share the process there).
func TestNotifyWebhookEndpoints(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got := make(chan string, 10)
		listening := make(chan error, 1)
		go func() { listening <- s.Listen(ctx, store.WebhookWakeChannel, func(p string) { got <- p }) }()
		if s.Dialect() == store.SQLite {
			if err := <-listening; !errors.Is(err, store.ErrListenUnsupported) {
				t.Errorf("listen on SQLite: %v", err)
			}
			if err := s.NotifyWebhookEndpoints(ctx, []string{"a"}); err != nil {
				t.Errorf("notify on SQLite: %v", err)
			}
			return
		}
		// LISTEN takes effect once its connection is up: notify until the first one arrives.
		ids := make([]string, 450)
		for i := range ids {
			ids[i] = store.NewID()
		}
		var first string
		for first == "" {
			if err := s.NotifyWebhookEndpoints(ctx, ids[:1]); err != nil {
				t.Fatal(err)
			}
			select {
			case first = <-got:
			case <-time.After(100 * time.Millisecond):
			case err := <-listening:
				t.Fatalf("listen: %v", err)
			}
		}
		for len(got) > 0 {
			<-got
		}
		if err := s.NotifyWebhookEndpoints(ctx, ids); err != nil {
			t.Fatal(err)
		}
		var all []string
		for len(all) < len(ids) {
			select {
			case p := <-got:
				all = append(all, strings.Split(p, ",")...)
			case <-ctx.Done():
				t.Fatalf("got %d of %d ids", len(all), len(ids))
			}
		}
		if !slices.Equal(all, ids) {
			t.Error("the ids did not arrive as sent")
		}
		cancel()
		if err := <-listening; !errors.Is(err, context.Canceled) {
			t.Errorf("listen after cancel: %v", err)
		}
	})
}

// A hand-over in the middle of a batch loses no attempt: the old sender's requests still in
// flight (their rows started) become unknown when the new sender takes the endpoint over, the new
// sender sends those deliveries again, and each sender's record replaces only its own rows,
// whatever the order: the log keeps one row per request the receiver got.
func TestHandOverKeepsEveryAttempt(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		for _, oldFirst := range []bool{true, false} {
			ctx := context.Background()
			now := time.Now().UTC().Truncate(time.Microsecond)
			e := newEndpoint(t, s, false)
			var ds []store.WebhookDelivery
			for range 16 {
				_, d := newMessage(t, s, "", now, e.ID)
				ds = append(ds, d...)
			}
			batch := func(attempt int) ([]store.WebhookAttempt, []store.WebhookAttemptResult) {
				var started []store.WebhookAttempt
				var results []store.WebhookAttemptResult
				for _, d := range ds {
					a := store.WebhookAttempt{ID: store.NewID(), DeliveryID: d.ID, EndpointID: e.ID, Attempt: attempt, URL: e.URL, StartedAt: now}
					started = append(started, a)
					a.Outcome, a.StatusCode, a.ResponseHeaders = store.AttemptSucceeded, 200, store.JSON("{}")
					results = append(results, store.WebhookAttemptResult{Attempt: a, PrevAttempts: attempt - 1, Status: store.DeliverySucceeded})
				}
				return started, results
			}
			oldStarted, oldResults := batch(1)
			if err := s.StartWebhookAttempts(ctx, oldStarted); err != nil {
				t.Fatal(err)
			}
			// The new sender takes over while the old one's requests are in flight.
			if n, err := s.RecoverStartedWebhookAttempts(ctx, e.ID, now); err != nil || n != len(ds) {
				t.Fatalf("recovered %d (%v)", n, err)
			}
			newStarted, newResults := batch(2)
			if err := s.StartWebhookAttempts(ctx, newStarted); err != nil {
				t.Fatal(err)
			}
			record := func(results []store.WebhookAttemptResult) {
				if _, err := s.RecordWebhookAttempts(ctx, e, results, store.WebhookHealthChange{Healthy: true}, now); err != nil {
					t.Fatal(err)
				}
			}
			if oldFirst {
				record(oldResults)
				record(newResults)
			} else {
				record(newResults)
				record(oldResults)
			}
			var rows, started int64
			db := s.DB().WithContext(tenant.System(ctx))
			if err := db.Raw("SELECT count(*) FROM webhook_attempts WHERE endpoint_id = ?", e.ID).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Raw("SELECT count(*) FROM webhook_attempts WHERE endpoint_id = ? AND outcome = ?", e.ID, store.AttemptStarted).Scan(&started).Error; err != nil {
				t.Fatal(err)
			}
			if rows != int64(2*len(ds)) || started != 0 {
				t.Errorf("old sender recorded first %v: %d attempts (%d started) for %d requests", oldFirst, rows, started, 2*len(ds))
			}
		}
	})
}
