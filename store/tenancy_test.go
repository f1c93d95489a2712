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

// TestTenantIsolation: rows written for one tenant are invisible, unchangeable and undeletable
// for another; rows written before tenants (no tenant in the context) are the default tenant's.
func TestTenantIsolation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		bg := context.Background()
		a, b := tenant.With(bg, "acme"), tenant.With(bg, "beta")
		for _, id := range []string{"acme", "beta"} {
			if err := s.CreateTenant(bg, &store.Tenant{ID: id, Name: id, Enabled: true,
				CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now().UTC()
		w := store.Workflow{ID: store.NewID(), Name: "a-flow", TriggerType: "manual", Enabled: true, Version: 1,
			Definition: store.JSON(`{"steps":[]}`), CreatedAt: now, UpdatedAt: now}
		if err := s.CreateWorkflow(a, &w); err != nil {
			t.Fatal(err)
		}
		if w.TenantID != "acme" {
			t.Fatalf("created workflow's tenant %q, want acme", w.TenantID)
		}
		if _, err := s.GetWorkflow(b, w.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("beta reads acme's workflow: %v, want not found", err)
		}
		if _, err := s.GetWorkflow(bg, w.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the default tenant reads acme's workflow: %v, want not found", err)
		}
		if got, err := s.GetWorkflow(a, w.ID); err != nil || got.ID != w.ID {
			t.Fatalf("acme reads its workflow: %v %v", got.ID, err)
		}
		if items, _, err := s.ListWorkflows(b, store.WorkflowFilter{}, store.Page{}); err != nil || len(items) != 0 {
			t.Fatalf("beta lists %d workflows (%v), want none", len(items), err)
		}
		if vs, err := s.ListWorkflowVersions(b, w.ID); err != nil || len(vs) != 0 {
			t.Fatalf("beta lists %d versions of acme's workflow (%v)", len(vs), err)
		}
		if err := s.DeleteWorkflow(b, w.ID, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("beta deletes acme's workflow: %v, want not found", err)
		}
		if items, _, err := s.ListWorkflows(a, store.WorkflowFilter{}, store.Page{}); err != nil || len(items) != 1 {
			t.Fatalf("acme lists %d workflows (%v), want its one", len(items), err)
		}
		// System sees every tenant.
		var n int64
		if err := s.DB().WithContext(tenant.System(bg)).Model(&store.Workflow{}).Count(&n).Error; err != nil || n != 1 {
			t.Fatalf("system counts %d workflows (%v)", n, err)
		}
	})
}

// TestUnscopedStatementsAreRefused: hand-written SQL on a tenant-owned table that does not filter
// on tenant_id is refused, and so is a row created across tenants without naming its tenant.
func TestUnscopedStatementsAreRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := tenant.With(context.Background(), "acme")
		var ids []string
		err := s.DB().WithContext(ctx).Raw("SELECT id FROM workflows WHERE name = ?", "x").Scan(&ids).Error
		if !errors.Is(err, store.ErrUnscoped) {
			t.Fatalf("unfiltered raw select: %v, want ErrUnscoped", err)
		}
		err = s.DB().WithContext(ctx).Exec("DELETE FROM automation_rules WHERE id = ?", "x").Error
		if !errors.Is(err, store.ErrUnscoped) {
			t.Fatalf("unfiltered raw delete: %v, want ErrUnscoped", err)
		}
		if err := s.DB().WithContext(ctx).Raw("SELECT id FROM workflows WHERE name = ? AND tenant_id = ?", "x", "acme").
			Scan(&ids).Error; err != nil {
			t.Fatalf("filtered raw select: %v", err)
		}
		now := time.Now().UTC()
		w := store.Workflow{ID: store.NewID(), Name: "x", TriggerType: "manual", Version: 1, CreatedAt: now, UpdatedAt: now}
		if err := s.DB().WithContext(tenant.System(context.Background())).Create(&w).Error; !errors.Is(err, store.ErrUnscoped) {
			t.Fatalf("system create without a tenant: %v, want ErrUnscoped", err)
		}
		w.TenantID = "beta"
		if err := s.DB().WithContext(ctx).Create(&w).Error; !errors.Is(err, store.ErrUnscoped) {
			t.Fatalf("acme creates a row of beta: %v, want ErrUnscoped", err)
		}
	})
}

// TestExistingRowsBelongToDefault: rows written before migration 00009 belong to the default
// tenant after it, on both dialects.
func TestExistingRowsBelongToDefault(t *testing.T) {
	for _, d := range []struct {
		name string
		opts func(t *testing.T) store.Options
	}{
		{"sqlite", func(t *testing.T) store.Options {
			return store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")}
		}},
		{"postgres", func(t *testing.T) store.Options { return store.Options{URL: testenv.PostgresURL(t)} }},
	} {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := store.Open(ctx, d.opts(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if err := s.MigrateUpTo(ctx, 8); err != nil {
				t.Fatal(err)
			}
			id := store.NewID()
			if err := s.DB().WithContext(tenant.System(ctx)).Exec(`INSERT INTO workflows (id, name, trigger_type, created_at, updated_at)
				VALUES (?, 'old', 'manual', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`, id).Error; err != nil {
				t.Fatal(err)
			}
			if _, err := s.Migrate(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if w, err := s.GetWorkflow(ctx, id); err != nil || w.TenantID != tenant.Default {
				t.Fatalf("old workflow after the migration: tenant %q, %v; want default", w.TenantID, err)
			}
			if _, err := s.GetWorkflow(tenant.With(ctx, "acme"), id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("another tenant reads the old workflow: %v", err)
			}
			if d, err := s.GetTenant(ctx, tenant.Default); err != nil || !d.Enabled {
				t.Fatalf("default tenant: %+v %v", d, err)
			}
		})
	}
}

// TestSeedTemplatesAreSharedReadOnly: every tenant reads the installed seed templates; only the
// default tenant changes them; the default tenant's own templates stay its own.
func TestSeedTemplatesAreSharedReadOnly(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		bg := context.Background()
		acme := tenant.With(bg, "acme")
		tpl, v, err := s.GetNotificationTemplate(acme, "welcome_email", 0)
		if err != nil || tpl.ID != "welcome_email" || v.Body == "" {
			t.Fatalf("acme reads the seed template: %+v %v", tpl, err)
		}
		if vs, err := s.NotificationTemplateVersions(acme, "welcome_email"); err != nil || len(vs) == 0 {
			t.Fatalf("acme lists the seed template's versions: %d %v", len(vs), err)
		}
		if err := s.DeleteNotificationTemplate(acme, "welcome_email"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("acme deletes the seed template: %v", err)
		}
		now := time.Now().UTC()
		if _, err := s.UpdateNotificationTemplate(acme, "welcome_email", nil,
			&store.NotificationTemplateVersion{Body: "hijacked"}, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("acme changes the seed template: %v", err)
		}
		own := store.NotificationTemplate{ID: "default_only", Channel: "email", CurrentVersion: 1, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateNotificationTemplate(bg, &own, &store.NotificationTemplateVersion{TemplateID: "default_only",
			Version: 1, Body: "b", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.GetNotificationTemplate(acme, "default_only", 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("acme reads the default tenant's own template: %v", err)
		}
		if _, v, err := s.GetNotificationTemplate(bg, "welcome_email", 0); err != nil || v.Body == "hijacked" {
			t.Fatalf("the default tenant's seed template: %+v %v", v, err)
		}
	})
}
