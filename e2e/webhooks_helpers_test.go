package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/app"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/logging"
)

// webhookEnv is the configuration every webhook test starts from: loopback receivers allowed.
func webhookEnv(extra map[string]string) map[string]string {
	env := map[string]string{"WEBHOOK_ALLOWED_CIDRS": "127.0.0.1/32", "RATE_LIMIT_PER_SECOND": "1000", "RATE_LIMIT_BURST": "2000"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// receipt is one request a receiver got.
type receipt struct {
	At     time.Time
	Header http.Header
	Body   []byte
	Status int
}

// MessageID is the webhook-id of the request.
func (r receipt) MessageID() string { return r.Header.Get("webhook-id") }

// respondFunc answers the n-th request (from 1): it may set response headers on h and returns
// the status and body.
type respondFunc func(n int, r *http.Request, h http.Header) (int, string)

// receiver is a real HTTP webhook receiver on loopback that records every request and answers
// what respond says (200 when respond is nil).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []receipt
	respond respondFunc
	// arrived numbers the requests as they come in: concurrent requests each get their own n
	// (counting the receipts instead would give two requests in flight the same one).
	arrived int
}

func newReceiver(t testing.TB, respond respondFunc) *receiver {
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.arrived++
		n := rc.arrived
		rc.mu.Unlock()
		status, text := 200, ""
		if rc.respond != nil {
			status, text = rc.respond(n, r, w.Header())
		}
		rc.mu.Lock()
		rc.got = append(rc.got, receipt{At: time.Now(), Header: r.Header.Clone(), Body: body, Status: status})
		rc.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(text))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// URL is where the receiver listens.
func (rc *receiver) URL() string { return rc.srv.URL + "/hook" }

// receipts returns a copy of what came in so far.
func (rc *receiver) receipts() []receipt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receipt(nil), rc.got...)
}

// count is how many requests came in.
func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

// succeeded returns the requests answered 2xx.
func (rc *receiver) succeeded() []receipt {
	var out []receipt
	for _, r := range rc.receipts() {
		if r.Status < 300 {
			out = append(out, r)
		}
	}
	return out
}

// webhookBody is the JSON a message is sent as.
type webhookBody struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func (r receipt) decode(t testing.TB) webhookBody {
	t.Helper()
	var b webhookBody
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("receiver got a body that is not the webhook JSON: %s", r.Body)
	}
	return b
}

// createEndpoint registers an endpoint and returns its id, failing the test on anything but 201.
func createEndpoint(t *testing.T, c *call, body map[string]any) string {
	t.Helper()
	r := c.post("/api/v1/webhooks/endpoints", body)
	if r.Status != 201 {
		t.Fatalf("create endpoint: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["id"].(string)
}

// endpointSecret reads an endpoint's signing secret.
func endpointSecret(t *testing.T, c *call, id string) string {
	t.Helper()
	r := c.get("/api/v1/webhooks/endpoints/" + id + "/secret")
	if r.Status != 200 {
		t.Fatalf("secret: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["key"].(string)
}

// deliver posts a message and returns its id.
func deliver(t *testing.T, c *call, eventType string, payload any, headers ...string) string {
	t.Helper()
	r := c.post("/api/v1/webhooks/deliver", map[string]any{"event_type": eventType, "payload": payload}, headers...)
	if r.Status != 202 {
		t.Fatalf("deliver: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["message_id"].(string)
}

// deliveryDetail is GET /webhooks/deliveries/{id}.
type deliveryDetail struct {
	ID           string `json:"id"`
	MessageID    string `json:"message_id"`
	EndpointID   string `json:"endpoint_id"`
	Status       string `json:"status"`
	AttemptCount int    `json:"attempt_count"`
	LastError    string `json:"last_error"`
	Attempts     []struct {
		Attempt         int               `json:"attempt"`
		StatusCode      int               `json:"status_code"`
		Outcome         string            `json:"outcome"`
		Error           string            `json:"error"`
		ResponseBody    string            `json:"response_body"`
		ResponseHeaders map[string]string `json:"response_headers"`
		StartedAt       time.Time         `json:"started_at"`
		DurationMS      float64           `json:"duration_ms"`
	} `json:"attempts"`
}

// deliveriesOf lists the deliveries of an endpoint (newest first).
func deliveriesOf(t *testing.T, c *call, query string) []deliveryDetail {
	t.Helper()
	var page struct {
		Items []deliveryDetail `json:"items"`
	}
	r := c.get("/api/v1/webhooks/deliveries?limit=200&" + query)
	if r.Status != 200 {
		t.Fatalf("deliveries?%s: %d %s", query, r.Status, r.Body)
	}
	r.Decode(t, &page)
	return page.Items
}

// benchStack runs the whole service in this process, as startEmbedded does, for benchmarks
// (which have a *testing.B): the same app.Run with an embedded Temporal server.
func benchStack(b *testing.B, env map[string]string) (base, apiKey string) {
	b.Helper()
	vars := map[string]string{
		"ENV": "test", "DATA_DIR": b.TempDir(), "LOG_LEVEL": "warn",
		"TEMPORAL_PORT": fmt.Sprint(testenv.FreePort(b)), "TEMPORAL_UI_PORT": "0",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.LoadFrom(vars)
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg.PublicURL = "http://" + l.Addr().String()
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Config: cfg, Logger: logging.New(logs, false, cfg.LogLevel), Version: "bench", API: true, Worker: true,
			Listener: l, Ready: ready,
			StartTemporal: func(c *config.Config, l *slog.Logger) (app.Embedded, error) { return devserver.FromConfig(c, l) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		b.Fatalf("stack did not start: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		cancel()
		b.Fatal("stack did not start within 60 s")
	}
	b.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
		}
		if b.Failed() {
			b.Logf("stack log:\n%s", logs.String())
		}
	})
	return cfg.PublicURL, cfg.InternalAPIKey
}

// rawPost posts JSON with the API key and returns the status and body.
func rawPost(hc *http.Client, url, key string, body any) (int, []byte, error) {
	js, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", url, bytes.NewReader(js))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", key)
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}
