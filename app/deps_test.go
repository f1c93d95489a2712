package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/api"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/diagnostics"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/logging"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/workflows"
)

// openTestDeps opens the dependencies of one process on SQLite, with a Temporal address where
// nothing listens (the client is lazy: nothing here calls it).
func openTestDeps(t *testing.T) *Deps {
	t.Helper()
	cfg, err := config.LoadFrom(map[string]string{
		"ENV": "test", "DATA_DIR": t.TempDir(), "TEMPORAL_ADDRESS": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"INTERNAL_API_KEY": "k", "JWT_SECRET_KEY": "j", "WEBHOOK_SECRET_KEY": "w",
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(context.Background(), cfg, logging.New(&syncBuffer{}, false, "info"), Modes(cfg), Service{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// The API gets the services Open built, each the one instance of the process.
func TestAPIGetsTheServicesOpenBuilt(t *testing.T) {
	d := openTestDeps(t)
	o := d.APIOptions("test")
	for name, same := range map[string]bool{
		"Rules":       o.Rules != nil && o.Rules == d.Rules,
		"Notify":      o.Notify != nil && o.Notify == d.Notify,
		"Workflows":   o.Workflows != nil && o.Workflows == d.Workflows,
		"Webhooks":    o.Webhooks != nil && o.Webhooks == d.Webhooks,
		"Events":      o.Events != nil && o.Events == d.Events,
		"Diagnostics": o.Diagnostics != nil && o.Diagnostics == d.Diagnostics,
		"Limiter":     o.Limiter != nil && o.Limiter == d.Limiter,
		"Registry":    o.Registry != nil && o.Registry == d.Registry,
	} {
		if !same {
			t.Errorf("the API's %s is not the one Open built", name)
		}
	}
	// The rules service sees the modules wired into the rules engine's actions.
	if d.Rules.Targets() != d.RuleTargets {
		t.Error("the rules service's targets are not the wired ones")
	}
	if _, err := api.New(api.Options{Config: d.Config, Limiter: d.Limiter, Registry: d.Registry}); err == nil {
		t.Error("api.New built a server without its services")
	}
}

// recorder is an immediate subscriber: the bus hands it events before Accept returns.
type recorder struct{ got []store.Event }

func (r *recorder) Name() string    { return "recorder" }
func (r *recorder) Immediate() bool { return true }
func (r *recorder) Deliver(_ context.Context, e store.Event) error {
	r.got = append(r.got, e)
	return nil
}

// An event posted to the API is published on the process's one bus: the subscribers Open (and
// this test) attached to it receive it, and the rules service reads it back.
func TestPostedEventsReachTheProcessBus(t *testing.T) {
	d := openTestDeps(t)
	rec := &recorder{}
	d.Events.Subscribe(rec)
	srv, err := api.New(d.APIOptions("test"))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	req, err := http.NewRequest("POST", hs.URL+"/api/v1/events", strings.NewReader(`{"id": "e-1", "type": "order.placed", "data": {"total": 3}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", "k")
	req.Header.Set("Content-Type", "application/json")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /events: %d", resp.StatusCode)
	}
	if len(rec.got) != 1 || rec.got[0].ID != "e-1" || rec.got[0].Type != "order.placed" {
		t.Fatalf("the process bus got %+v", rec.got)
	}
	e, err := d.Rules.GetEvent(context.Background(), "e-1")
	if err != nil || e.Type != "order.placed" {
		t.Fatalf("rules service reads %+v %v", e, err)
	}
}

// The diagnostics service starts the ping workflow by the name the worker registers it under,
// with the workflow's wire format.
func TestPingWorkflowName(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.Ping) // as NewWorker does
	d := openTestDeps(t)
	env.RegisterActivity(&activities.Diagnostics{Store: d.Store, Identity: "w-1"})
	env.ExecuteWorkflow(diagnostics.PingWorkflow, diagnostics.PingInput{Message: "hi"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var raw json.RawMessage
	if err := env.GetWorkflowResult(&raw); err != nil {
		t.Fatal(err)
	}
	var out diagnostics.PingResult
	if err := json.Unmarshal(raw, &out); err != nil || out.Reply != "pong: hi" || out.Worker != "w-1" {
		t.Fatalf("ping result %s: %+v %v", raw, out, err)
	}
}
