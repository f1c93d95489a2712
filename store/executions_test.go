package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/store"
)

func TestWorkflowVersions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		w := store.Workflow{ID: store.NewID(), Name: "v1", TriggerType: "manual", Enabled: true, Version: 1,
			Definition: store.JSON(`{"name":"v1"}`), CreatedAt: now, UpdatedAt: now}
		if err := s.CreateWorkflow(ctx, &w); err != nil {
			t.Fatal(err)
		}
		next := w
		next.Name, next.Version, next.Definition = "v2", 2, store.JSON(`{"name":"v2"}`)
		if err := s.UpdateWorkflow(ctx, &next, 1); err != nil {
			t.Fatal(err)
		}
		stale := w
		stale.Version = 2
		if err := s.UpdateWorkflow(ctx, &stale, 1); !errors.Is(err, store.ErrConflict) {
			t.Errorf("update from a stale version: %v, want ErrConflict", err)
		}
		vs, err := s.ListWorkflowVersions(ctx, w.ID)
		if err != nil || len(vs) != 2 || vs[0].Name != "v2" || vs[1].Name != "v1" {
			t.Fatalf("versions %+v %v", vs, err)
		}
		if err := s.DeleteWorkflow(ctx, w.ID, now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetWorkflow(ctx, w.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted definition: %v", err)
		}
		if v, err := s.GetWorkflowVersion(ctx, w.ID, 1); err != nil || v.Name != "v1" {
			t.Errorf("a deleted definition's version stays readable: %+v %v", v, err)
		}
		if err := s.UpdateWorkflow(ctx, &next, 2); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("update of a deleted definition: %v", err)
		}
	})
}

func TestExecutionRecords(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		w := insertWorkflow(t, s, "w", "manual", true)
		now := time.Now().UTC()
		key := "k-1"
		e := store.Execution{ID: store.NewID(), WorkflowID: w.ID, Version: 1, Status: store.ExecutionPending,
			Priority: "high", TriggeredBy: "api", Input: store.JSON(`{"a":1}`), IdempotencyKey: &key,
			TemporalWorkflowID: "t-1", CreatedAt: now, UpdatedAt: now}
		if err := s.InsertExecution(ctx, &e); err != nil {
			t.Fatal(err)
		}
		dup := e
		dup.ID, dup.TemporalWorkflowID = store.NewID(), "t-2"
		if err := s.InsertExecution(ctx, &dup); !errors.Is(err, store.ErrConflict) {
			t.Errorf("same idempotency key: %v, want ErrConflict", err)
		}
		if got, err := s.FindExecutionByKey(ctx, w.ID, key); err != nil || got.ID != e.ID {
			t.Errorf("by key: %+v %v", got, err)
		}
		// Scheduled runs create their row once per Temporal workflow id.
		sched := store.Execution{ID: store.NewID(), WorkflowID: w.ID, Version: 1, Status: store.ExecutionPending,
			Priority: "normal", TriggeredBy: "schedule", Input: store.JSON(`{}`), TemporalWorkflowID: "t-sched",
			CreatedAt: now, UpdatedAt: now}
		first, err := s.EnsureExecution(ctx, &sched)
		if err != nil {
			t.Fatal(err)
		}
		again := sched
		again.ID = store.NewID()
		second, err := s.EnsureExecution(ctx, &again)
		if err != nil || second.ID != first.ID {
			t.Errorf("ensure twice: %s then %s (%v)", first.ID, second.ID, err)
		}

		if err := s.MarkExecutionRunning(ctx, e.ID, "run-1", now); err != nil {
			t.Fatal(err)
		}
		if err := s.StartStep(ctx, e.ID, "a", "http_request", store.StepRunning, 1, now); err != nil {
			t.Fatal(err)
		}
		if err := s.StartStep(ctx, e.ID, "a", "http_request", store.StepRunning, 2, now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishStep(ctx, e.ID, "a", "http_request", store.StepCompleted, store.JSON(`{"ok":true}`), "", now.Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.FinishStep(ctx, e.ID, "b", "delay", store.StepSkipped, nil, "", now.Add(3*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := s.StartStep(ctx, e.ID, "c", "wait_for_signal", store.StepWaiting, 1, now.Add(4*time.Second)); err != nil {
			t.Fatal(err)
		}
		// An activity step's attempts, each written in one statement.
		t1, t2 := now, now.Add(time.Second)
		if err := s.RecordStep(ctx, store.ExecutionStep{ExecutionID: e.ID, StepID: "d", Type: "http_request", Status: store.StepRunning,
			Attempts: 1, Error: "503", StartedAt: &t1, UpdatedAt: t1}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordStep(ctx, store.ExecutionStep{ExecutionID: e.ID, StepID: "d", Type: "http_request", Status: store.StepCompleted,
			Attempts: 2, Output: store.JSON(`{"n":2}`), StartedAt: &t2, FinishedAt: &t2, UpdatedAt: t2}); err != nil {
			t.Fatal(err)
		}
		if d, err := s.GetExecutionStep(ctx, e.ID, "d"); err != nil || d.Status != store.StepCompleted || d.Attempts != 2 ||
			d.Error != "" || d.StartedAt.After(t1.Add(500*time.Millisecond)) || d.FinishedAt == nil {
			t.Errorf("d %+v %v (started_at keeps the first attempt's time)", d, err)
		}
		if err := s.FinishExecution(ctx, e.ID, store.ExecutionTerminated, nil, "stop", now.Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		// A late outcome from the interpreter does not overwrite the termination.
		if err := s.FinishExecution(ctx, e.ID, store.ExecutionCompleted, store.JSON(`{}`), "", now.Add(6*time.Second)); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetExecution(ctx, e.ID)
		if err != nil || got.Status != store.ExecutionTerminated || got.Error != "stop" || got.TemporalRunID != "run-1" || got.StartedAt == nil {
			t.Errorf("execution %+v %v", got, err)
		}
		steps, err := s.ExecutionSteps(ctx, e.ID)
		if err != nil || len(steps) != 4 {
			t.Fatalf("steps %+v %v", steps, err)
		}
		byID := map[string]store.ExecutionStep{}
		for _, st := range steps {
			byID[st.StepID] = st
		}
		if a := byID["a"]; a.Status != store.StepCompleted || a.Attempts != 2 || a.StartedAt.After(now.Add(500*time.Millisecond)) {
			t.Errorf("a %+v (started_at keeps the first attempt's time %v)", a, now)
		}
		if byID["b"].Status != store.StepSkipped || byID["c"].Status != store.StepCancelled {
			t.Errorf("b %s, c %s", byID["b"].Status, byID["c"].Status)
		}
		for _, f := range []store.ExecutionFilter{{WorkflowID: w.ID}, {Status: store.ExecutionTerminated}, {CreatedAfter: now.Add(-time.Minute)}} {
			items, _, err := s.ListExecutions(ctx, f, store.Page{})
			if err != nil || len(items) == 0 {
				t.Errorf("list %+v: %d items, %v", f, len(items), err)
			}
		}
		if items, _, _ := s.ListExecutions(ctx, store.ExecutionFilter{CreatedBefore: now.Add(-time.Minute)}, store.Page{}); len(items) != 0 {
			t.Errorf("created_before filter: %d items", len(items))
		}
	})
}
