package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
)

// TestClientChosenKeysArePerTenant (schema 00010): ids a client chooses — event ids (and the
// webhook message an event becomes), notification template ids, inbound source names — are
// unique per tenant. Rows written before 00010 survive it; a second tenant may then take the same
// ids, each tenant reads its own, and cross-tenant maintenance (event purge) keeps them apart.
func TestClientChosenKeysArePerTenant(t *testing.T) {
	run := func(t *testing.T, o store.Options) {
		bg := context.Background()
		s, err := store.Open(bg, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.MigrateUpTo(bg, 9); err != nil {
			t.Fatal(err)
		}
		a, b := tenant.With(bg, "acme"), tenant.With(bg, "beta")
		now := time.Now().UTC().Truncate(time.Millisecond)
		event := func(ctx context.Context, typ string) *store.Event {
			return &store.Event{ID: "evt-1", Type: typ, Data: store.JSON(`{}`), OccurredAt: now, ReceivedAt: now}
		}
		if ok, err := s.InsertEvent(a, event(a, "acme.thing")); err != nil || !ok {
			t.Fatalf("acme's event before 00010: %v %v", ok, err)
		}
		srcA := store.WebhookSource{ID: store.NewID(), Name: "stripe", Scheme: "standard", Secret: "x",
			ToleranceSeconds: 300, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateWebhookSource(a, &srcA); err != nil {
			t.Fatal(err)
		}
		endpoint := func(ctx context.Context) store.WebhookEndpoint {
			e := store.WebhookEndpoint{ID: store.NewID(), Name: "ep", URL: "https://example.com/hook",
				EventTypes: store.JSON(`["*"]`), Headers: store.JSON(`{}`), RetryScheduleMS: store.JSON(`[]`),
				Enabled: true, Secret: "s", TimeoutMS: 1000, CreatedAt: now, UpdatedAt: now}
			if err := s.CreateWebhookEndpoint(ctx, &e); err != nil {
				t.Fatal(err)
			}
			return e
		}
		message := func(ctx context.Context, ep store.WebhookEndpoint, payload string) bool {
			m := store.WebhookMessage{ID: "evt-1", EventType: "thing", Payload: store.JSON(payload), Source: "event", CreatedAt: now}
			created, err := s.CreateWebhookMessage(ctx, &m, []store.WebhookDelivery{{ID: store.NewID(), MessageID: m.ID,
				EndpointID: ep.ID, EventType: m.EventType, Status: store.DeliveryPending, NextAttemptAt: &now,
				CreatedAt: now, UpdatedAt: now}})
			if err != nil {
				t.Fatal(err)
			}
			return created
		}
		// acme's endpoint, message and delivery go in as schema 00009 had them: the models know
		// the columns of later migrations.
		epA := store.WebhookEndpoint{ID: store.NewID()}
		pre := s.DB().WithContext(tenant.System(bg))
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO webhook_endpoints (id, name, url, secret, created_at, updated_at, tenant_id) VALUES (?, 'ep', 'https://example.com/hook', 's', ?, ?, 'acme')`,
				[]any{epA.ID, now, now}},
			{`INSERT INTO webhook_messages (id, event_type, payload, source, created_at, tenant_id) VALUES ('evt-1', 'thing', '{"who":"acme"}', 'event', ?, 'acme')`,
				[]any{now}},
			{`INSERT INTO webhook_deliveries (id, message_id, endpoint_id, event_type, status, next_attempt_at, created_at, updated_at, tenant_id) VALUES (?, 'evt-1', ?, 'thing', ?, ?, ?, ?, 'acme')`,
				[]any{store.NewID(), epA.ID, store.DeliveryPending, now, now, now}},
		} {
			if err := pre.Exec(q.sql, q.args...).Error; err != nil {
				t.Fatalf("acme's rows before 00010: %v", err)
			}
		}

		if _, err := s.Migrate(bg, nil); err != nil {
			t.Fatalf("migrate to 00010 with rows: %v", err)
		}

		// Events.
		if ok, err := s.InsertEvent(b, event(b, "beta.thing")); err != nil || !ok {
			t.Fatalf("beta's event with acme's id: inserted %v, %v", ok, err)
		}
		if ok, err := s.InsertEvent(b, event(b, "beta.again")); err != nil || ok {
			t.Fatalf("beta's event again: inserted %v, %v; want a duplicate of its own", ok, err)
		}
		for ctx, want := range map[context.Context]string{a: "acme.thing", b: "beta.thing"} {
			if e, err := s.GetEvent(ctx, "evt-1"); err != nil || e.Type != want {
				t.Errorf("event evt-1 of %s: %q %v, want %q", tenant.ID(ctx), e.Type, err, want)
			}
		}

		// Webhook messages (an event's takes its id).
		epB := endpoint(b)
		if !message(b, epB, `{"who":"beta"}`) {
			t.Fatal("beta's message with acme's id not created")
		}
		if message(b, epB, `{"who":"beta"}`) {
			t.Error("beta's message created twice")
		}
		for ctx, ep := range map[context.Context]store.WebhookEndpoint{a: epA, b: epB} {
			q, err := s.QueuedWebhookDeliveries(ctx, ep.ID, false, 10)
			if err != nil || len(q) != 1 || string(q[0].Payload) != `{"who":"`+tenant.ID(ctx)+`"}` {
				t.Errorf("%s's queued deliveries: %+v %v", tenant.ID(ctx), q, err)
			}
			m, err := s.GetWebhookMessage(ctx, "evt-1")
			if err != nil || string(m.Payload) != `{"who":"`+tenant.ID(ctx)+`"}` {
				t.Errorf("%s's message: %s %v", tenant.ID(ctx), m.Payload, err)
			}
		}

		// Inbound sources.
		srcB := store.WebhookSource{ID: store.NewID(), Name: "stripe", Scheme: "standard", Secret: "y",
			ToleranceSeconds: 300, CreatedAt: now.Add(time.Second), UpdatedAt: now}
		if err := s.CreateWebhookSource(b, &srcB); err != nil {
			t.Fatalf("beta's source named like acme's: %v", err)
		}
		again := srcB
		again.ID = store.NewID()
		if err := s.CreateWebhookSource(b, &again); !errors.Is(err, store.ErrConflict) {
			t.Errorf("beta's second source named stripe: %v, want a conflict", err)
		}
		if got, err := s.GetWebhookSource(b, "stripe"); err != nil || got.ID != srcB.ID {
			t.Errorf("beta's stripe: %s %v, want its own %s", got.ID, err, srcB.ID)
		}
		if got, err := s.InboundWebhookSource(bg, "stripe"); err != nil || got.ID != srcA.ID {
			t.Errorf("inbound by name: %s %v, want acme's (the name's first holder) %s", got.ID, err, srcA.ID)
		}
		if got, err := s.InboundWebhookSource(bg, srcB.ID); err != nil || got.ID != srcB.ID || got.TenantID != "beta" {
			t.Errorf("inbound by id: %s %s %v, want beta's %s", got.ID, got.TenantID, err, srcB.ID)
		}

		// Templates: beta defines its own welcome_email, which it then reads and lists instead of
		// the shared seed; a tenant without one reads and lists the seed; the seed is unchanged.
		tpl := &store.NotificationTemplate{ID: "welcome_email", Channel: store.ChannelEmail, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateNotificationTemplate(b, tpl, &store.NotificationTemplateVersion{Subject: "Beta", Body: "beta body", CreatedAt: now}); err != nil {
			t.Fatalf("beta's own welcome_email: %v", err)
		}
		dup := &store.NotificationTemplate{ID: "welcome_email", Channel: store.ChannelEmail, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateNotificationTemplate(b, dup, &store.NotificationTemplateVersion{Body: "x", CreatedAt: now}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("beta's second welcome_email: %v, want a conflict", err)
		}
		if _, v, err := s.GetNotificationTemplate(b, "welcome_email", 0); err != nil || v.Subject != "Beta" {
			t.Errorf("beta's welcome_email: %q %v, want its own", v.Subject, err)
		}
		if _, v, err := s.GetNotificationTemplate(a, "welcome_email", 0); err != nil || v.Subject == "Beta" || v.Body == "" {
			t.Errorf("acme's welcome_email: %q %v, want the shared seed", v.Subject, err)
		}
		if _, v, err := s.GetNotificationTemplate(bg, "welcome_email", 0); err != nil || v.Subject == "Beta" {
			t.Errorf("the default tenant's welcome_email: %q %v", v.Subject, err)
		}
		list := func(ctx context.Context) map[string]string {
			rows, _, err := s.ListNotificationTemplates(ctx, "", store.Page{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]string{}
			for _, r := range rows {
				if _, seen := out[r.ID]; seen {
					t.Errorf("%s lists %s twice", tenant.ID(ctx), r.ID)
				}
				out[r.ID] = r.TenantID
			}
			return out
		}
		if got := list(a); got["welcome_email"] != tenant.Default || got["verification_sms"] != tenant.Default || len(got) != 2 {
			t.Errorf("acme lists %v, want the two shared seeds", got)
		}
		if got := list(b); got["welcome_email"] != "beta" || got["verification_sms"] != tenant.Default || len(got) != 2 {
			t.Errorf("beta lists %v, want its welcome_email and the shared verification_sms", got)
		}
		if _, err := s.UpdateNotificationTemplate(a, "welcome_email", nil, &store.NotificationTemplateVersion{Body: "mine"}, now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("acme changes the shared seed: %v, want not found", err)
		}
		if err := s.DeleteNotificationTemplate(a, "verification_sms"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("acme deletes the shared seed: %v, want not found", err)
		}
		if err := s.DeleteNotificationTemplate(b, "welcome_email"); err != nil {
			t.Fatal(err)
		}
		if _, v, err := s.GetNotificationTemplate(b, "welcome_email", 0); err != nil || v.Subject == "Beta" {
			t.Errorf("beta's welcome_email after deleting its own: %q %v, want the seed", v.Subject, err)
		}

		// Purging old events across tenants takes acme's dispatched evt-1, not beta's pending one.
		if err := s.MarkEventDispatched(a, "evt-1", now); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PurgeEvents(tenant.System(bg), now.Add(time.Hour), 100); err != nil || n != 1 {
			t.Fatalf("purge: %d %v, want acme's one event", n, err)
		}
		if _, err := s.GetEvent(a, "evt-1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("acme's purged event: %v", err)
		}
		if e, err := s.GetEvent(b, "evt-1"); err != nil || e.Type != "beta.thing" {
			t.Errorf("beta's event after acme's purge: %q %v", e.Type, err)
		}
	}
	t.Run("sqlite", func(t *testing.T) { run(t, store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")}) })
	t.Run("postgres", func(t *testing.T) { run(t, store.Options{URL: testenv.PostgresURL(t)}) })
}
