package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/internal/teststack"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
	"github.com/pyairtable/automation-domain/workflows"
)

// start runs the workflow engine with its real parts: a SQLite store, an embedded Temporal
// server with the engine's search attributes, and a worker registered as the service's
// (workflows.RegisterEngine).
func start(t *testing.T) (*engine.Service, *store.Store) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	cfg, err := config.LoadFrom(map[string]string{
		"ENV": "test", "DATA_DIR": dir, "TEMPORAL_PORT": fmt.Sprint(testenv.FreePort(t)), "TEMPORAL_UI_PORT": "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	st := teststack.Store(t)
	tc := teststack.Temporal(t, cfg)
	added, err := engine.RegisterSearchAttributes(ctx, tc, cfg.TemporalNamespace)
	if err != nil {
		t.Fatal(err)
	}
	if added {
		time.Sleep(2 * time.Second) // the embedded server reloads its namespaces every second
	}
	templates := templating.New(templating.Options{})
	w := worker.New(tc, workflows.TaskQueue, worker.Options{})
	workflows.RegisterPlatform(w, &activities.Diagnostics{Store: st}, &activities.Events{Bus: events.NewBus(st, log)})
	workflows.RegisterEngine(w, &activities.WorkflowEngine{Store: st, Templates: templates, Log: log})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return engine.New(engine.Options{Store: st, Temporal: tc, Templates: templates, Log: log}), st
}

func create(t *testing.T, svc *engine.Service, body string) engine.Workflow {
	t.Helper()
	var d definition.Definition
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	w, err := svc.CreateWorkflow(context.Background(), d)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return w
}

// waitFor polls an execution's detail until cond holds (bounded: a broken stack fails).
func waitFor(t *testing.T, svc *engine.Service, id, what string, cond func(engine.ExecutionDetail) bool) engine.ExecutionDetail {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := svc.GetExecution(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the execution is still %+v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func step(d engine.ExecutionDetail, id string) engine.StepView {
	for _, s := range d.Steps {
		if s.ID == id {
			return s
		}
	}
	return engine.StepView{}
}

func TestWorkflowEngine(t *testing.T) {
	svc, _ := start(t)
	ctx := context.Background()
	flow := create(t, svc, `{"name": "approve", "trigger_type": "manual", "steps": [
		{"id": "total", "type": "data_transform", "config": {"mapping": {"doubled": "input.amount * 2"}}},
		{"id": "approval", "type": "wait_for_signal", "config": {"signal": "approved"}}]}`)

	t.Run("an execution runs its steps, waits for its signal and completes", func(t *testing.T) {
		x, err := svc.Execute(ctx, engine.ExecuteRequest{DefinitionID: flow.ID, Input: map[string]any{"amount": 21},
			TriggeredBy: "test", IdempotencyKey: "run-1"})
		if err != nil {
			t.Fatal(err)
		}
		again, err := svc.Execute(ctx, engine.ExecuteRequest{DefinitionID: flow.ID, Input: map[string]any{"amount": 21},
			TriggeredBy: "test", IdempotencyKey: "run-1"})
		if err != nil || again.ID != x.ID || !again.Replayed {
			t.Fatalf("the same idempotency key: %+v %v (first %s)", again, err, x.ID)
		}
		waiting := waitFor(t, svc, x.ID, "the signal wait", func(d engine.ExecutionDetail) bool {
			return step(d, "approval").Status == store.StepWaiting
		})
		if !waiting.Live || step(waiting, "approval").WaitingFor != "approved" || waiting.Status != store.ExecutionRunning {
			t.Fatalf("waiting execution %+v", waiting)
		}
		if s := step(waiting, "total"); s.Status != store.StepCompleted || s.Attempts != 1 {
			t.Errorf("data_transform step %+v", s)
		}
		if _, err := svc.Signal(ctx, x.ID, "approved", map[string]any{"by": "ada"}); err != nil {
			t.Fatal(err)
		}
		done := waitFor(t, svc, x.ID, "completion", func(d engine.ExecutionDetail) bool { return store.Finished(d.Status) })
		if done.Status != store.ExecutionCompleted || done.WorkflowName != "approve" {
			t.Fatalf("finished execution %+v", done)
		}
		if out, _ := step(done, "total").Output.(map[string]any); out["doubled"] != 42.0 {
			t.Errorf("total output %v", step(done, "total").Output)
		}
		if out, _ := step(done, "approval").Output.(map[string]any); out["by"] != "ada" {
			t.Errorf("approval output %v", step(done, "approval").Output)
		}
		if _, err := svc.Signal(ctx, x.ID, "approved", nil); err == nil {
			t.Error("a finished execution took a signal")
		}
	})

	t.Run("refusals: a disabled definition, an unknown one, a bad priority", func(t *testing.T) {
		disabled := create(t, svc, `{"name": "off", "trigger_type": "manual", "enabled": false, "steps": [
			{"id": "x", "type": "data_transform", "config": {"mapping": {"a": "1"}}}]}`)
		var engineErr *engine.Error
		if _, err := svc.Execute(ctx, engine.ExecuteRequest{DefinitionID: disabled.ID}); !errors.As(err, &engineErr) {
			t.Errorf("disabled definition: %v", err)
		}
		if _, err := svc.Execute(ctx, engine.ExecuteRequest{DefinitionID: "nope"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown definition: %v", err)
		}
		var problems validation.Problems
		if _, err := svc.Execute(ctx, engine.ExecuteRequest{DefinitionID: flow.ID, Priority: "urgent"}); !errors.As(err, &problems) ||
			problems[0].Field != "priority" {
			t.Errorf("bad priority: %v", err)
		}
	})

	t.Run("notification and webhook steps are refused while their modules are not wired", func(t *testing.T) {
		var d definition.Definition
		_ = json.Unmarshal([]byte(`{"name": "n", "trigger_type": "manual", "steps": [
			{"id": "n", "type": "notification", "config": {"channel": "email", "to": "a@example.com", "subject": "s", "body": "b"}}]}`), &d)
		var problems validation.Problems
		if _, err := svc.CreateWorkflow(ctx, d); !errors.As(err, &problems) {
			t.Errorf("notification step without the module: %v", err)
		}
	})
}
