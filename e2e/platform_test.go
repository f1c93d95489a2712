package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
)

type pingReply struct {
	Status     string `json:"status"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	Result     struct {
		Reply  string `json:"reply"`
		Worker string `json:"worker"`
	} `json:"result"`
	TemporalURL string `json:"temporal_url"`
}

// TestEmbeddedStack is `make run`: everything in one process on SQLite files, driven over HTTP,
// then stopped and started again on the same DATA_DIR.
func TestEmbeddedStack(t *testing.T) {
	dataDir := t.TempDir()
	uiPort := testenv.FreePort(t)
	cfg := testConfig(t, dataDir, map[string]string{
		"TEMPORAL_UI_PORT": fmt.Sprint(uiPort), "MAX_BODY_BYTES": "4096",
		"RATE_LIMIT_PER_SECOND": "5", "RATE_LIMIT_BURST": "8",
	})
	s := startEmbedded(t, cfg)
	t.Run("ready, every dependency up, each part in its embedded mode", func(t *testing.T) {
		c := s.client(t)
		// Health, readiness and how each part runs.
		if r := c.get("/ready"); r.Status != 200 {
			t.Fatalf("/ready: %d %s", r.Status, r.Body)
		}
		detailed := c.get("/health/detailed").JSON(t)
		deps := detailed["dependencies"].(map[string]any)
		for _, name := range []string{"database", "temporal", "redis"} {
			if deps[name].(map[string]any)["status"] != "up" {
				t.Errorf("%s not up: %v", name, deps[name])
			}
		}
		modes := c.get("/info").JSON(t)["modes"].(map[string]any)
		if modes["temporal"] != "embedded" || modes["database"] != "sqlite" || modes["rate_limit"] != "in-process" {
			t.Errorf("modes %v", modes)
		}
	})
	t.Run("the Temporal Web UI is served", func(t *testing.T) {
		// The Temporal Web UI is served.
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", uiPort))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("web UI: %d", res.StatusCode)
		}
	})
	t.Run("anonymous and wrong-key requests are refused, the request id echoed and logged", func(t *testing.T) {
		c := s.client(t)
		// Auth refusals and the request id.
		anon := &call{t: t, base: s.URL, header: http.Header{}}
		if r := anon.get("/api/v1/workflows", "X-Request-ID", "e2e-req-1"); r.Status != 401 || r.Header.Get("X-Request-ID") != "e2e-req-1" {
			t.Errorf("anonymous: %d %v", r.Status, r.Header)
		}
		if r := c.get("/api/v1/workflows", "X-API-Key", "wrong"); r.Status != 401 {
			t.Errorf("wrong key: %d", r.Status)
		}
		if !strings.Contains(s.Logs.String(), "request_id=e2e-req-1") {
			t.Error("the request id is not in the log")
		}
	})
	var ping pingReply // the ping run, looked up again after the restart
	t.Run("the ping workflow runs through the worker and links to the Web UI", func(t *testing.T) {
		c := s.client(t)
		// The ping workflow runs through the worker; its link points at the Web UI.
		r := c.post("/api/v1/diagnostics/ping", map[string]any{"message": "e2e"})
		r.Decode(t, &ping)
		if r.Status != 200 || ping.Status != "completed" || ping.Result.Reply != "pong: e2e" {
			t.Fatalf("ping: %d %s", r.Status, r.Body)
		}
		if !strings.HasPrefix(ping.TemporalURL, fmt.Sprintf("http://localhost:%d/namespaces/automation/workflows/%s", uiPort, ping.WorkflowID)) {
			t.Errorf("temporal_url %s", ping.TemporalURL)
		}
	})
	t.Run("starter health", func(t *testing.T) {
		// The operator CLI drives the same API.
		if out, code := s.starter(t, "health"); code != 0 || !strings.Contains(out, "temporal") || !strings.Contains(out, "healthy") {
			t.Errorf("starter health: exit %d\n%s", code, out)
		}
	})
	t.Run("starter ping", func(t *testing.T) {
		if out, code := s.starter(t, "ping", "from-cli"); code != 0 || !strings.Contains(out, "pong: from-cli") {
			t.Errorf("starter ping: exit %d\n%s", code, out)
		}
	})
	t.Run("starter with a bad filter exits 1 with the API's problem", func(t *testing.T) {
		if out, code := s.starter(t, "workflows", "list", "--trigger-type", "cron"); code != 1 || !strings.Contains(out, "trigger_type") {
			t.Errorf("starter with a bad filter: exit %d\n%s", code, out)
		}
	})
	t.Run("an oversize body is refused with 413", func(t *testing.T) {
		c := s.client(t)
		// Oversize body → 413.
		if r := c.post("/api/v1/diagnostics/ping", map[string]any{"message": strings.Repeat("x", 5000)}); r.Status != 413 {
			t.Errorf("oversize: %d", r.Status)
		}
	})
	t.Run("a wrong method on a known path is a 405 with Allow", func(t *testing.T) {
		c := s.client(t)
		for path, allow := range map[string]string{
			"/health": "OPTIONS, GET", "/api/v1/events": "OPTIONS, GET, POST",
			"/api/v1/webhooks/endpoints/x": "OPTIONS, DELETE, GET, PATCH",
		} {
			r := c.do("PUT", path, map[string]any{})
			if r.Status != 405 || r.Header.Get("Allow") != allow {
				t.Errorf("PUT %s: %d Allow %q, want 405 %q: %s", path, r.Status, r.Header.Get("Allow"), allow, r.Body)
			}
			if e, _ := r.JSON(t)["error"].(map[string]any); e["code"] != "method_not_allowed" {
				t.Errorf("PUT %s: body %s, want the error shape with method_not_allowed", path, r.Body)
			}
		}
		if r := c.do("PUT", "/api/v1/nope", map[string]any{}); r.Status != 404 || r.Header.Get("Allow") != "" {
			t.Errorf("PUT on an unknown path: %d Allow %q, want a plain 404", r.Status, r.Header.Get("Allow"))
		}
	})
	t.Run("metrics have HTTP, runtime and Temporal SDK series", func(t *testing.T) {
		c := s.client(t)
		// The metrics page has HTTP, runtime and Temporal SDK metrics.
		metrics := string(c.get("/metrics").Body)
		for _, want := range []string{
			`http_requests_total{method="POST",route="/api/v1/diagnostics/ping",status="200"}`,
			"go_goroutines", "process_resident_memory_bytes",
			`temporal_workflow_completed_total{`, `temporal_activity_execution_latency_seconds_bucket{`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
	t.Run("metrics pass promtool", func(t *testing.T) { checkMetrics(t, s.URL+"/metrics", "automation") })
	t.Run("over the rate limit: 429 with Retry-After", func(t *testing.T) {
		c := s.client(t)
		// Over the rate limit → 429 with Retry-After.
		var limited reply
		for range 20 {
			if limited = c.get("/api/v1/workflows?limit=1"); limited.Status == 429 {
				break
			}
		}
		if limited.Status != 429 || limited.Header.Get("Retry-After") == "" || limited.Header.Get("RateLimit-Limit") != "8" {
			t.Errorf("no 429 after 20 quick requests: %d %v", limited.Status, limited.Header)
		}
	})
	// A definition written to the database, then a restart on the same DATA_DIR.
	st, err := store.Open(context.Background(), store.Options{SQLitePath: cfg.SQLitePath()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := st.DB().Create(&store.Workflow{ID: store.NewID(), Name: "kept", TriggerType: "manual",
		Enabled: true, Version: 1, CreatedAt: now, UpdatedAt: now}).Error; err != nil {
		t.Fatal(err)
	}
	st.Close()
	apiKey := s.APIKey
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	again := startEmbedded(t, testConfig(t, dataDir, map[string]string{"TEMPORAL_PORT": fmt.Sprint(cfg.TemporalPort)}))
	t.Run("the development API key survives a restart", func(t *testing.T) {
		if again.APIKey != apiKey {
			t.Error("the development API key changed across a restart")
		}
	})
	t.Run("a stored definition is listed after a restart", func(t *testing.T) {
		c2 := again.client(t)
		var page struct {
			Items []store.Workflow `json:"items"`
		}
		c2.get("/api/v1/workflows").Decode(t, &page)
		if len(page.Items) != 1 || page.Items[0].Name != "kept" {
			t.Errorf("after restart: %+v", page.Items)
		}
	})
	t.Run("starter workflows list after a restart", func(t *testing.T) {
		if out, code := again.starter(t, "workflows", "list"); code != 0 || !strings.Contains(out, "kept") {
			t.Errorf("starter workflows list: exit %d\n%s", code, out)
		}
	})
	t.Run("health and live answer without a key", func(t *testing.T) {
		anon := &call{t: t, base: again.URL, header: http.Header{}}
		if r := anon.get("/health"); r.Status != 200 || r.JSON(t)["status"] != "healthy" || r.JSON(t)["service"] != "automation-domain" {
			t.Errorf("/health: %d %s", r.Status, r.Body)
		}
		if r := anon.get("/live"); r.Status != 200 {
			t.Errorf("/live: %d %s", r.Status, r.Body)
		}
	})
	t.Run("the OpenAPI document describes every domain's routes", func(t *testing.T) {
		anon := &call{t: t, base: again.URL, header: http.Header{}}
		r := anon.get("/openapi.json")
		var doc struct {
			OpenAPI string         `json:"openapi"`
			Paths   map[string]any `json:"paths"`
		}
		r.Decode(t, &doc)
		if r.Status != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") {
			t.Fatalf("/openapi.json: %d %.200s", r.Status, r.Body)
		}
		for _, path := range []string{"/health", "/api/v1/workflows", "/api/v1/workflows/{id}/execute", "/api/v1/notifications/email",
			"/api/v1/webhooks/deliver", "/api/v1/webhooks/sources/{id}", "/api/v1/events", "/api/v1/automation/rules"} {
			if doc.Paths[path] == nil {
				t.Errorf("/openapi.json lacks %s", path)
			}
		}
	})
	t.Run("the docs page renders the API reference in development", func(t *testing.T) {
		anon := &call{t: t, base: again.URL, header: http.Header{}}
		if r := anon.get("/docs"); r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(r.Body), "/openapi.json") {
			t.Errorf("/docs: %d %s %.200s", r.Status, r.Header.Get("Content-Type"), r.Body)
		}
	})
	t.Run("the ping workflow's history survives a restart", func(t *testing.T) {
		if ping.RunID == "" {
			t.Skip("needs the ping run")
		}
		desc, err := again.Temporal.DescribeWorkflowExecution(context.Background(), ping.WorkflowID, ping.RunID)
		if err != nil {
			t.Fatalf("the ping workflow is gone after a restart: %v", err)
		}
		if st := desc.WorkflowExecutionInfo.Status.String(); st != "Completed" {
			t.Errorf("ping workflow status after restart: %s", st)
		}
	})
}

// TestProductionMode runs the API and the worker as two separate processes, as a production
// deployment does, on Postgres and Redis, against a Temporal server reached over
// TEMPORAL_ADDRESS (the embedded one, in this test process).
func TestProductionMode(t *testing.T) {
	dbURL := testenv.PostgresURL(t)
	redisURL := testenv.RedisURL(t)
	temporalPort := testenv.FreePort(t)
	srv, err := devserver.Start(devserver.Options{
		DatabaseFile: t.TempDir() + "/temporal.db", FrontendPort: temporalPort, Namespaces: []string{"automation"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)

	apiPort := testenv.FreePort(t)
	env := map[string]string{
		"ENV": "production", "PORT": fmt.Sprint(apiPort), "HOST": "127.0.0.1",
		"DATABASE_URL": dbURL, "REDIS_URL": redisURL, "TEMPORAL_ADDRESS": srv.Address(),
		"INTERNAL_API_KEY": "prod-key-" + testenv.RandomHex(8), "JWT_SECRET_KEY": "j", "WEBHOOK_SECRET_KEY": "w",
		"RATE_LIMIT_PER_SECOND": "2", "RATE_LIMIT_BURST": "4", "DATA_DIR": t.TempDir(),
	}
	api := startProcess(t, "api", env)
	workerEnv := map[string]string{"METRICS_PORT": fmt.Sprint(testenv.FreePort(t))}
	for k, v := range env {
		if k != "PORT" {
			workerEnv[k] = v
		}
	}
	worker := startProcess(t, "worker", workerEnv)

	c := &call{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", apiPort), key: env["INTERNAL_API_KEY"], header: http.Header{}}
	eventually(t, 90*time.Second, "the API process to be ready", func() bool {
		res, err := contractGet(t, c.base+"/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	clientFor := func(t *testing.T) *call {
		return &call{t: t, base: c.base, key: c.key, header: http.Header{}}
	}
	t.Run("each part runs in its production mode", func(t *testing.T) {
		c := clientFor(t)
		info := c.get("/info").JSON(t)
		modes := info["modes"].(map[string]any)
		if modes["temporal"] != "external" || modes["database"] != "postgres" || modes["rate_limit"] != "redis" {
			t.Errorf("modes %v", modes)
		}
	})
	t.Run("the docs page is not served in production", func(t *testing.T) {
		c := clientFor(t)
		if r := c.get("/docs"); r.Status != 404 {
			t.Errorf("/docs in production: %d", r.Status)
		}
	})
	var ping pingReply
	t.Run("the worker process runs the ping workflow the API process starts", func(t *testing.T) {
		c := clientFor(t)
		// The ping workflow started by the API process is run by the worker process.
		eventually(t, 60*time.Second, "the worker process to answer the ping", func() bool {
			r := c.post("/api/v1/diagnostics/ping", map[string]any{"message": "prod", "wait_seconds": 5})
			r.Decode(t, &ping)
			return r.Status == 200
		})
		wantWorker := fmt.Sprintf("%d@", worker.cmd.Process.Pid)
		if ping.Result.Reply != "pong: prod" || !strings.HasPrefix(ping.Result.Worker, wantWorker) {
			t.Errorf("ping answered by %q, want the worker process %s…", ping.Result.Worker, wantWorker)
		}
	})
	t.Run("the worker process serves its own metrics", func(t *testing.T) {
		// The worker process serves its own metrics: the activity it just ran is there.
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%s/metrics", workerEnv["METRICS_PORT"]))
		if err != nil {
			t.Fatal(err)
		}
		wm, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(wm), `temporal_activity_execution_latency_seconds_count{activity_type="Pong"`) {
			t.Errorf("worker metrics lack the Pong activity:\n%.2000s", wm)
		}
	})
	t.Run("rate limits live in Redis", func(t *testing.T) {
		c := clientFor(t)
		// Rate limits live in Redis: the budget of 4 is spent across requests.
		var last reply
		for range 10 {
			if last = c.get("/api/v1/workflows"); last.Status == 429 {
				break
			}
		}
		if last.Status != 429 || last.Header.Get("Retry-After") == "" {
			t.Errorf("no 429 from the Redis limiter: %d", last.Status)
		}
	})
	t.Run("production logs are JSON lines", func(t *testing.T) {
		sc := bufio.NewScanner(strings.NewReader(api.out.String()))
		lines := 0
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("non-JSON log line in production: %s", sc.Text())
			}
			lines++
		}
		if lines == 0 {
			t.Error("the API process logged nothing")
		}
	})
	t.Run("the worker stops gracefully on SIGTERM", func(t *testing.T) {
		if err := worker.Terminate(30 * time.Second); err != nil {
			t.Errorf("worker on SIGTERM: %v", err)
		}
	})
	t.Run("the ping workflow is in Temporal", func(t *testing.T) {
		tc, err := client.Dial(client.Options{HostPort: srv.Address(), Namespace: "automation", Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		if _, err := tc.DescribeWorkflowExecution(context.Background(), ping.WorkflowID, ""); err != nil {
			t.Errorf("ping workflow not in Temporal: %v", err)
		}
	})
	t.Run("the API stops gracefully on SIGTERM", func(t *testing.T) {
		if err := api.Terminate(30 * time.Second); err != nil {
			t.Errorf("api on SIGTERM: %v", err)
		}
	})
}
