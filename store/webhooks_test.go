package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/store"
)

func newEndpoint(t *testing.T, s *store.Store, ordered bool) store.WebhookEndpoint {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := store.WebhookEndpoint{ID: store.NewID(), Name: "e", URL: "https://example.com/hook",
		EventTypes: store.JSON(`["*"]`), Headers: store.JSON(`{}`), Enabled: true, Ordered: ordered,
		RetryScheduleMS: store.JSON(`[]`), TimeoutMS: 15000, Secret: "sealed", CreatedAt: now, UpdatedAt: now}
	if err := s.CreateWebhookEndpoint(context.Background(), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func newMessage(t *testing.T, s *store.Store, key string, due time.Time, endpoints ...string) (store.WebhookMessage, []store.WebhookDelivery) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	m := store.WebhookMessage{ID: store.NewID(), EventType: "a.b", Payload: store.JSON(`{"x": 1}`), Source: "api", CreatedAt: now}
	if key != "" {
		m.IdempotencyKey = &key
	}
	var ds []store.WebhookDelivery
	for _, ep := range endpoints {
		ds = append(ds, store.WebhookDelivery{ID: store.NewID(), MessageID: m.ID, EndpointID: ep, EventType: m.EventType,
			Status: store.DeliveryPending, NextAttemptAt: &due, CreatedAt: now, UpdatedAt: now})
	}
	created, err := s.CreateWebhookMessage(context.Background(), &m, ds)
	if err != nil || !created {
		t.Fatalf("create message: %v %v", created, err)
	}
	return m, ds
}

func TestWebhookMessageIdempotency(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e := newEndpoint(t, s, false)
		m, _ := newMessage(t, s, "key-1", time.Now().UTC(), e.ID)
		again := store.WebhookMessage{ID: store.NewID(), EventType: "a.b", Payload: store.JSON(`{}`), CreatedAt: time.Now().UTC()}
		k := "key-1"
		again.IdempotencyKey = &k
		created, err := s.CreateWebhookMessage(ctx, &again, []store.WebhookDelivery{{ID: store.NewID(), MessageID: again.ID,
			EndpointID: e.ID, EventType: "a.b", Status: store.DeliveryPending, CreatedAt: again.CreatedAt, UpdatedAt: again.CreatedAt}})
		if err != nil || created {
			t.Fatalf("a repeated key: created=%v err=%v", created, err)
		}
		got, err := s.WebhookMessageByKey(ctx, "key-1")
		if err != nil || got.ID != m.ID || string(got.Payload) != `{"x": 1}` {
			t.Fatalf("by key: %+v %v (the payload must be kept byte for byte)", got, err)
		}
		if ds, _ := s.MessageWebhookDeliveries(ctx, m.ID); len(ds) != 1 {
			t.Errorf("deliveries %d", len(ds))
		}
		if ds, _ := s.MessageWebhookDeliveries(ctx, again.ID); len(ds) != 0 {
			t.Errorf("the refused message left %d deliveries", len(ds))
		}
	})
}

func TestQueuedWebhookDeliveriesOrder(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		e := newEndpoint(t, s, false)
		_, late := newMessage(t, s, "", now.Add(time.Hour), e.ID)
		_, first := newMessage(t, s, "", now.Add(-time.Minute), e.ID)
		_, second := newMessage(t, s, "", now.Add(-time.Second), e.ID)
		q, err := s.QueuedWebhookDeliveries(ctx, e.ID, false, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(q) != 3 || q[0].ID != first[0].ID || q[1].ID != second[0].ID || q[2].ID != late[0].ID {
			t.Fatalf("by due time: %v", ids(q))
		}
		if string(q[0].Payload) != `{"x": 1}` || q[0].MessageCreatedAt.IsZero() {
			t.Errorf("message not joined: %+v", q[0])
		}
		fifo, err := s.QueuedWebhookDeliveries(ctx, e.ID, true, 2)
		if err != nil || len(fifo) != 2 || fifo[0].ID != late[0].ID || fifo[1].ID != first[0].ID {
			t.Fatalf("FIFO: %v %v", ids(fifo), err)
		}
	})
}

func ids(q []store.QueuedWebhookDelivery) []string {
	out := make([]string, len(q))
	for i, d := range q {
		out[i] = d.ID
	}
	return out
}

func TestRecordWebhookAttempts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		e := newEndpoint(t, s, false)
		_, ds := newMessage(t, s, "", now, e.ID)
		_, ds2 := newMessage(t, s, "", now, e.ID)
		_, ds3 := newMessage(t, s, "", now, e.ID)
		retry := now.Add(5 * time.Second)
		attempt := func(d store.WebhookDelivery, code int, outcome string) store.WebhookAttempt {
			return store.WebhookAttempt{ID: store.NewID(), DeliveryID: d.ID, EndpointID: e.ID, Attempt: 1, URL: e.URL,
				StartedAt: now, DurationMS: 1.5, StatusCode: code, ResponseHeaders: store.JSON(`{}`), Outcome: outcome}
		}
		results := []store.WebhookAttemptResult{
			{Attempt: attempt(ds[0], 200, store.AttemptSucceeded), Status: store.DeliverySucceeded},
			{Attempt: attempt(ds2[0], 500, store.AttemptRetrying), Status: store.DeliveryPending, NextAttemptAt: &retry},
			// Another sender moved this one on meanwhile: not moved again (but its request is logged).
			{Attempt: attempt(ds3[0], 200, store.AttemptSucceeded), Status: store.DeliverySucceeded, PrevAttempts: 4},
		}
		// The attempts were recorded as started before their requests went out; recording the
		// outcome replaces those rows.
		var started []store.WebhookAttempt
		for _, r := range results {
			started = append(started, r.Attempt)
		}
		if err := s.StartWebhookAttempts(ctx, started); err != nil {
			t.Fatal(err)
		}
		if a, _ := s.WebhookDeliveryAttempts(ctx, ds[0].ID); len(a) != 1 || a[0].Outcome != store.AttemptStarted {
			t.Fatalf("started attempt: %+v", a)
		}
		failedAt := now
		applied, err := s.RecordWebhookAttempts(ctx, e, results, store.WebhookHealthChange{FailedAt: &failedAt, FinalFailures: 2}, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) != 2 {
			t.Fatalf("applied %v", applied)
		}
		d1, _ := s.GetWebhookDelivery(ctx, ds[0].ID)
		d2, _ := s.GetWebhookDelivery(ctx, ds2[0].ID)
		d3, _ := s.GetWebhookDelivery(ctx, ds3[0].ID)
		if d1.Status != store.DeliverySucceeded || d1.Attempts != 1 || d1.CompletedAt == nil || d1.LastStatusCode != 200 {
			t.Errorf("succeeded: %+v", d1)
		}
		if d2.Status != store.DeliveryPending || d2.NextAttemptAt == nil || !d2.NextAttemptAt.Equal(retry) || d2.CompletedAt != nil {
			t.Errorf("retrying: %+v", d2)
		}
		if d3.Status != store.DeliveryPending || d3.Attempts != 0 {
			t.Errorf("the skipped one was written: %+v", d3)
		}
		if a, _ := s.WebhookDeliveryAttempts(ctx, ds3[0].ID); len(a) != 1 || a[0].Outcome != store.AttemptSucceeded {
			t.Errorf("the request of the skipped one is not in the log as it went: %+v", a)
		}
		if a, _ := s.WebhookDeliveryAttempts(ctx, ds[0].ID); len(a) != 1 || a[0].Outcome != store.AttemptSucceeded || a[0].StatusCode != 200 {
			t.Errorf("the started attempt was not replaced by its outcome: %+v", a)
		}
		ep, _ := s.GetWebhookEndpoint(ctx, e.ID)
		if ep.FailingSince == nil || !ep.FailingSince.Equal(now) || ep.ConsecutiveFailures != 2 {
			t.Errorf("health after failures: %v %d", ep.FailingSince, ep.ConsecutiveFailures)
		}
		// FailingSince keeps the first failure; a success resets both.
		later := now.Add(time.Minute)
		if _, err := s.RecordWebhookAttempts(ctx, ep, nil, store.WebhookHealthChange{FailedAt: &later, FinalFailures: 1}, later); err != nil {
			t.Fatal(err)
		}
		ep, _ = s.GetWebhookEndpoint(ctx, e.ID)
		if !ep.FailingSince.Equal(now) || ep.ConsecutiveFailures != 3 {
			t.Errorf("a later failure moved failing_since: %v %d", ep.FailingSince, ep.ConsecutiveFailures)
		}
		if _, err := s.RecordWebhookAttempts(ctx, ep, nil, store.WebhookHealthChange{Healthy: true}, later); err != nil {
			t.Fatal(err)
		}
		ep, _ = s.GetWebhookEndpoint(ctx, e.ID)
		if ep.FailingSince != nil || ep.ConsecutiveFailures != 0 {
			t.Errorf("a success did not reset: %v %d", ep.FailingSince, ep.ConsecutiveFailures)
		}
		// The log filters.
		page, _, err := s.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{EndpointID: e.ID, Status: store.DeliverySucceeded}, store.Page{})
		if err != nil || len(page) != 1 || page[0].ID != ds[0].ID {
			t.Errorf("succeeded deliveries: %v %v", page, err)
		}
		page, _, _ = s.ListWebhookDeliveries(ctx, store.WebhookDeliveryFilter{Since: now.Add(time.Hour)}, store.Page{})
		if len(page) != 0 {
			t.Errorf("since in the future: %d", len(page))
		}
	})
}

func TestRequeueRecoverAndDisable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		e := newEndpoint(t, s, false)
		_, ds := newMessage(t, s, "", now, e.ID)
		_, ds2 := newMessage(t, s, "", now, e.ID)
		if err := s.RequeueWebhookDelivery(ctx, ds[0].ID, now); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("requeue of a pending delivery: %v", err)
		}
		if err := s.RequeueWebhookDelivery(ctx, "nope", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("requeue of an unknown delivery: %v", err)
		}
		changed, err := s.DisableWebhookEndpoint(ctx, e.ID, "410", now)
		if err != nil || !changed {
			t.Fatalf("disable: %v %v", changed, err)
		}
		if changed, _ := s.DisableWebhookEndpoint(ctx, e.ID, "again", now); changed {
			t.Error("disabled twice")
		}
		for _, id := range []string{ds[0].ID, ds2[0].ID} {
			if d, _ := s.GetWebhookDelivery(ctx, id); d.Status != store.DeliveryFailed || d.NextAttemptAt != nil {
				t.Errorf("pending delivery of a disabled endpoint: %+v", d)
			}
		}
		n, err := s.RecoverWebhookDeliveries(ctx, e.ID, now.Add(-time.Minute), time.Time{}, now)
		if err != nil || n != 2 {
			t.Fatalf("recover: %d %v", n, err)
		}
		if d, _ := s.GetWebhookDelivery(ctx, ds[0].ID); d.Status != store.DeliveryPending || d.CompletedAt != nil {
			t.Errorf("recovered: %+v", d)
		}
		overdue, err := s.OverdueWebhookEndpoints(ctx, now.Add(time.Second), now, 10)
		if err != nil || len(overdue) != 1 || overdue[0] != e.ID {
			t.Errorf("overdue: %v %v", overdue, err)
		}
		// Not overdue while a sender holds it, nor while its circuit is open.
		if ok, err := s.AcquireWebhookSender(ctx, e.ID, "p1", now.Add(time.Minute), now); !ok || err != nil {
			t.Fatalf("acquire: %v %v", ok, err)
		}
		if overdue, _ := s.OverdueWebhookEndpoints(ctx, now.Add(time.Second), now, 10); len(overdue) != 0 {
			t.Errorf("overdue while held: %v", overdue)
		}
		if err := s.ReleaseWebhookSender(ctx, e.ID, "p1"); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateWebhookEndpoint(ctx, e.ID, map[string]any{"circuit_open_until": now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if overdue, _ := s.OverdueWebhookEndpoints(ctx, now.Add(time.Second), now, 10); len(overdue) != 0 {
			t.Errorf("overdue while the circuit is open: %v", overdue)
		}
		if err := s.DeleteWebhookEndpoint(ctx, e.ID, now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetWebhookEndpoint(ctx, e.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted endpoint: %v", err)
		}
		if d, _ := s.GetWebhookDelivery(ctx, ds2[0].ID); d.Status != store.DeliveryFailed {
			t.Errorf("pending delivery of a deleted endpoint: %+v", d)
		}
	})
}

func TestInboundSeen(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		src := store.WebhookSource{ID: store.NewID(), Name: "gh", Scheme: "hmac_sha256", Secret: "x", ToleranceSeconds: 300,
			CreatedAt: now, UpdatedAt: now}
		if err := s.CreateWebhookSource(ctx, &src); err != nil {
			t.Fatal(err)
		}
		dup := src
		dup.ID = store.NewID()
		if err := s.CreateWebhookSource(ctx, &dup); !errors.Is(err, store.ErrConflict) {
			t.Errorf("a second source named gh: %v", err)
		}
		if got, err := s.GetWebhookSource(ctx, "gh"); err != nil || got.ID != src.ID {
			t.Errorf("by name: %v", err)
		}
		old := now.Add(-31 * 24 * time.Hour)
		seen := store.WebhookInboundSeen{SourceID: src.ID, WebhookID: "w1", EventID: "e1", SeenAt: old}
		if err := s.MarkWebhookSeen(ctx, seen); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkWebhookSeen(ctx, seen); !errors.Is(err, store.ErrConflict) {
			t.Errorf("seen twice: %v", err)
		}
		// Several keys are recorded all or none.
		digest := store.WebhookInboundSeen{SourceID: src.ID, WebhookID: "sha256=ab", EventID: "e2", SeenAt: now}
		w1again := store.WebhookInboundSeen{SourceID: src.ID, WebhookID: "w1", EventID: "e2", SeenAt: now}
		if err := s.MarkWebhookSeen(ctx, digest, w1again); !errors.Is(err, store.ErrConflict) {
			t.Errorf("keys of which one was seen: %v", err)
		}
		if got, err := s.WebhookSeen(ctx, src.ID, "sha256=ab", "w1", "w2"); err != nil || len(got) != 1 || got[0].EventID != "e1" {
			t.Errorf("after a refused pair, the keys seen are %+v %v, want only w1 of e1", got, err)
		}
		w2 := store.WebhookInboundSeen{SourceID: src.ID, WebhookID: "w2", EventID: "e2", SeenAt: now}
		if err := s.MarkWebhookSeen(ctx, digest, w2); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.WebhookSeen(ctx, src.ID, "sha256=ab", "w2"); len(got) != 2 {
			t.Errorf("both keys of e2: %+v", got)
		}
		if err := s.ForgetWebhookSeen(ctx, src.ID, "sha256=ab", "w2"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.WebhookSeen(ctx, src.ID, "sha256=ab", "w2"); len(got) != 0 {
			t.Errorf("forgotten keys: %+v", got)
		}
		if n, err := s.PruneWebhookSeen(ctx, now.Add(-30*24*time.Hour)); err != nil || n != 1 {
			t.Errorf("prune: %d %v", n, err)
		}
		if err := s.DeleteWebhookSource(ctx, src.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetWebhookSource(ctx, src.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted source: %v", err)
		}
	})
}
