package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/app"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/logging"
	"github.com/pyairtable/automation-domain/rules"
)

// startEmbeddedWired is startEmbedded with app.Options.Wire: wire sees the opened dependencies
// before the API and the worker are built (the rules tests plug recording stand-ins for the
// workflow, notification and webhook modules into Deps.RuleTargets, and keep Deps to publish
// events the way the other modules do).
func startEmbeddedWired(t testing.TB, cfg *config.Config, wire func(*app.Deps)) *stack {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL = "http://" + l.Addr().String()
	logs := &logBuffer{}
	log := logging.New(io.MultiWriter(logs, tbWriter{t}), false, cfg.LogLevel)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Config: cfg, Logger: log, Version: "e2e", API: true, Worker: true, Listener: l, Ready: ready, Wire: wire,
			StartTemporal: func(c *config.Config, l *slog.Logger) (app.Embedded, error) {
				return devserver.FromConfig(c, l)
			},
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("stack did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("stack did not start within 60 s")
	}
	tc, err := client.Dial(client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		Logger: quietLogger()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	var stopErr error
	s := &stack{URL: cfg.PublicURL, APIKey: cfg.InternalAPIKey, Config: cfg, Temporal: tc, Logs: logs}
	s.stop = func() error {
		once.Do(func() {
			tc.Close()
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = fmt.Errorf("stack did not stop within 60 s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

// tbWriter sends the stack's log to the test or benchmark log.
type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// benchConfig is testConfig for benchmarks.
func benchConfig(b *testing.B, env map[string]string) *config.Config {
	b.Helper()
	base := map[string]string{
		"ENV": "test", "DATA_DIR": b.TempDir(), "LOG_LEVEL": "warn",
		"TEMPORAL_PORT": fmt.Sprint(testenv.FreePort(b)), "TEMPORAL_UI_PORT": "0",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := config.LoadFrom(base)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// moduleCall is one call a rule action made into a module.
type moduleCall struct {
	Kind   string // workflow, email, sms, webhook
	Key    string
	Target string // definition id, template id or event type
	To     []string
	Data   map[string]any
	Pri    string
}

// recordingModules stand in for the workflow engine and notification modules, which are built
// in other issues and wired by the lead after merging: they record what rule actions ask them,
// and answer like the real ones (the same idempotency key gives the same id).
type recordingModules struct {
	mu    sync.Mutex
	calls []moduleCall
	ids   map[string]string
}

func (m *recordingModules) record(c moduleCall) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids = map[string]string{}
	}
	if id, ok := m.ids[c.Key]; ok {
		return id, nil
	}
	id := fmt.Sprintf("%s-%d", c.Kind, len(m.ids)+1)
	m.ids[c.Key] = id
	m.calls = append(m.calls, c)
	return id, nil
}

func (m *recordingModules) Execute(_ context.Context, r rules.WorkflowRequest) (string, error) {
	return m.record(moduleCall{Kind: "workflow", Key: r.IdempotencyKey, Target: r.DefinitionID, Data: r.Input, Pri: r.Priority})
}

func (m *recordingModules) SendEmail(_ context.Context, r rules.EmailRequest) (string, error) {
	return m.record(moduleCall{Kind: "email", Key: r.IdempotencyKey, Target: r.TemplateID, To: r.To, Data: r.TemplateData})
}

func (m *recordingModules) SendSMS(_ context.Context, r rules.SMSRequest) (string, error) {
	return m.record(moduleCall{Kind: "sms", Key: r.IdempotencyKey, Target: r.TemplateID, To: r.To, Data: r.TemplateData})
}

func (m *recordingModules) get() []moduleCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]moduleCall(nil), m.calls...)
}

// ruleExecution is the API's execution view, as far as the tests read it.
type ruleExecution struct {
	ID          string `json:"id"`
	EventID     string `json:"event_id"`
	RuleID      string `json:"rule_id"`
	RuleVersion int    `json:"rule_version"`
	Status      string `json:"status"`
	Matched     bool   `json:"matched"`
	Reason      string `json:"reason"`
	Conditions  []struct {
		Path    string `json:"path"`
		Actual  any    `json:"actual"`
		Matched bool   `json:"matched"`
	} `json:"conditions"`
	Actions []struct {
		Index          int             `json:"index"`
		Type           string          `json:"type"`
		Status         string          `json:"status"`
		Attempts       int             `json:"attempts"`
		Error          string          `json:"error"`
		IdempotencyKey string          `json:"idempotency_key"`
		Result         json.RawMessage `json:"result"`
		StartedAt      *time.Time      `json:"started_at"`
		Rendered       *struct {
			To        []string       `json:"to"`
			EventType string         `json:"event_type"`
			Payload   map[string]any `json:"payload"`
		} `json:"rendered"`
	} `json:"actions"`
}

// createRule posts a rule and returns its id, failing the test unless it is created.
func createRule(t *testing.T, c *call, body any) string {
	t.Helper()
	r := c.post("/api/v1/automation/rules", body)
	if r.Status != 201 {
		t.Fatalf("create rule: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["id"].(string)
}

// postEvent posts an event and returns its id.
func postEvent(t *testing.T, c *call, body any) string {
	t.Helper()
	r := c.post("/api/v1/events", body)
	if r.Status != 202 {
		t.Fatalf("post event: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["id"].(string)
}

// ruleExecutions lists a rule's executions (newest first, up to 200).
func ruleExecutions(t *testing.T, c *call, ruleID string) []ruleExecution {
	t.Helper()
	var page struct {
		Items []ruleExecution `json:"items"`
	}
	c.get("/api/v1/automation/rules/"+ruleID+"/executions?limit=200").Decode(t, &page)
	return page.Items
}

// executionFor waits until rule ruleID has a finished execution for event eventID.
func executionFor(t *testing.T, c *call, ruleID, eventID string) ruleExecution {
	t.Helper()
	var found ruleExecution
	eventually(t, 30*time.Second, "rule "+ruleID+" to decide event "+eventID, func() bool {
		var page struct {
			Items []ruleExecution `json:"items"`
		}
		c.get("/api/v1/automation/rules/"+ruleID+"/executions?event_id="+eventID).Decode(t, &page)
		if len(page.Items) == 1 && page.Items[0].Status != "running" {
			found = page.Items[0]
			return true
		}
		return false
	})
	return found
}

// eventEvaluation waits until the event was taken by the rules engine and returns its detail.
func eventEvaluation(t *testing.T, c *call, eventID string) map[string]any {
	t.Helper()
	var detail map[string]any
	eventually(t, 30*time.Second, "event "+eventID+" to be evaluated", func() bool {
		detail = c.get("/api/v1/events/" + eventID).JSON(t)
		return detail["evaluation"] != nil
	})
	return detail
}
