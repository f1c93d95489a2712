package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// TestDailyQuotaIsCountedAtomically: concurrent creates never take more of a tenant's daily
// quota than its limit; an execution stored past the limit is refused with the quota named and
// nothing stored; a day's count starts from what the tenant created that day; a tenant without
// the limit is not counted.
func TestDailyQuotaIsCountedAtomically(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		bg := context.Background()
		now := time.Now().UTC()
		if err := s.CreateTenant(bg, &store.Tenant{ID: "acme", Name: "acme", Enabled: true,
			Limits: store.JSON(`{"executions_per_day":3,"messages_per_day":7}`), CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		a := tenant.With(bg, "acme")

		var wg sync.WaitGroup
		var mu sync.Mutex
		taken, refused := 0, 0
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.ReserveQuota(a, store.QuotaMessagesPerDay, 1, now)
				var qe *store.QuotaError
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					taken++
				case errors.As(err, &qe) && qe.Quota == store.QuotaMessagesPerDay && qe.Limit == 7:
					refused++
				default:
					t.Errorf("reserve: %v", err)
				}
			}()
		}
		wg.Wait()
		if taken != 7 || refused != 13 {
			t.Fatalf("20 concurrent reservations of a quota of 7: %d taken, %d refused", taken, refused)
		}
		if used, err := s.QuotaUsed(a, store.QuotaMessagesPerDay, now); err != nil || used != 7 {
			t.Fatalf("used %d (%v), want 7", used, err)
		}
		if err := s.ReleaseQuota(a, store.QuotaMessagesPerDay, 1, now); err != nil {
			t.Fatal(err)
		}
		if err := s.ReserveQuota(a, store.QuotaMessagesPerDay, 1, now); err != nil {
			t.Fatalf("the unit given back: %v", err)
		}
		// The next day starts over.
		if err := s.ReserveQuota(a, store.QuotaMessagesPerDay, 1, now.Add(24*time.Hour)); err != nil {
			t.Fatalf("the next day: %v", err)
		}

		// Executions: one is stored before the day's row exists (its count starts from it).
		w := store.Workflow{ID: store.NewID(), Name: "flow", TriggerType: "manual", Enabled: true, Version: 1,
			Definition: store.JSON(`{"steps":[]}`), CreatedAt: now, UpdatedAt: now}
		if err := s.CreateWorkflow(a, &w); err != nil {
			t.Fatal(err)
		}
		exec := func() store.Execution {
			id := store.NewID()
			return store.Execution{ID: id, WorkflowID: w.ID, Version: 1, Status: store.ExecutionPending,
				Priority: "normal", TriggeredBy: "manual", Input: store.JSON(`{}`), TemporalWorkflowID: "wf-" + id,
				CreatedAt: now, UpdatedAt: now}
		}
		first := exec()
		if err := s.DB().WithContext(a).Create(&first).Error; err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			e := exec()
			if err := s.InsertExecution(a, &e); err != nil {
				t.Fatalf("execution %d of 3: %v", i+2, err)
			}
		}
		over := exec()
		var qe *store.QuotaError
		if err := s.InsertExecution(a, &over); !errors.As(err, &qe) || qe.Quota != store.QuotaExecutionsPerDay {
			t.Fatalf("the 4th execution of a quota of 3: %v, want a quota error", err)
		}
		if _, err := s.GetExecution(a, over.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refused execution was stored: %v", err)
		}

		// The default tenant sets no limit: nothing is counted.
		for i := 0; i < 5; i++ {
			if err := s.ReserveQuota(bg, store.QuotaExecutionsPerDay, 1, now); err != nil {
				t.Fatal(err)
			}
		}
		if used, err := s.QuotaUsed(bg, store.QuotaExecutionsPerDay, now); err != nil || used != 0 {
			t.Fatalf("default tenant used %d (%v), want nothing counted", used, err)
		}
	})
}
