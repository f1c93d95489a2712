package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// TestNotificationSettings: a tenant without settings reads none; a put replaces them; each
// tenant reads only its own.
func TestNotificationSettings(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		bg := context.Background()
		a, b := tenant.With(bg, "acme"), tenant.With(bg, "beta")
		if ns, err := s.GetNotificationSettings(a); err != nil || ns.QuietHoursStart != "" || ns.TenantID != "" {
			t.Fatalf("before any put: %+v %v", ns, err)
		}
		now := time.Now().UTC().Truncate(time.Second)
		if err := s.PutNotificationSettings(a, &store.NotificationSettings{QuietHoursStart: "22:00", QuietHoursEnd: "07:00",
			TimeZone: "Europe/Berlin", UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutNotificationSettings(a, &store.NotificationSettings{QuietHoursStart: "23:00", QuietHoursEnd: "06:30",
			UpdatedAt: now.Add(time.Second)}); err != nil {
			t.Fatalf("second put: %v", err)
		}
		ns, err := s.GetNotificationSettings(a)
		if err != nil || ns.QuietHoursStart != "23:00" || ns.QuietHoursEnd != "06:30" || ns.TimeZone != "" || ns.TenantID != "acme" {
			t.Fatalf("acme after two puts: %+v %v", ns, err)
		}
		if ns, err := s.GetNotificationSettings(b); err != nil || ns.QuietHoursStart != "" {
			t.Fatalf("beta reads acme's settings: %+v %v", ns, err)
		}
	})
}
