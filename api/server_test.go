package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/diagnostics"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/logging"
	"github.com/pyairtable/automation-domain/netguard/netguardtest"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/ratelimit"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/tenants"
	"github.com/pyairtable/automation-domain/webhooks"
)

const testKey = "test-api-key-0123456789"
const testJWTSecret = "test-jwt-secret"

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testServer struct {
	*Server
	logs     *syncBuffer
	store    *store.Store
	temporal client.Client
}

// newTestServer serves the real routes over a real SQLite store. Temporal is a client pointed at a
// port where nothing listens: these tests cover the HTTP platform; the end-to-end tests cover
// Temporal.
func newTestServer(t *testing.T, mutate func(*config.Config)) *testServer {
	t.Helper()
	cfg, err := config.LoadFrom(map[string]string{
		"DATA_DIR": t.TempDir(), "INTERNAL_API_KEY": testKey, "JWT_SECRET_KEY": testJWTSecret,
		"WEBHOOK_SECRET_KEY": "w", "ENV": "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.TemporalAddress = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if mutate != nil {
		mutate(cfg)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(cfg.DataDir, "app.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	tc, err := client.NewLazyClient(client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	logs := &syncBuffer{}
	log := logging.New(logs, false, "debug")
	opts := Options{
		Config: cfg, Logger: log, Version: "test",
		Limiter: ratelimit.NewLocal(), Registry: prometheus.NewRegistry(),
		Checks: []Check{
			{Name: "database", Mode: "sqlite", Probe: st.Ping},
			{Name: "temporal", Mode: "external", Probe: func(ctx context.Context) error {
				_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
				return err
			}},
			{Name: "redis", Mode: "in-process"},
		},
		Modes: map[string]string{"temporal": "external", "database": "sqlite", "rate_limit": "in-process"},
	}
	// The services, built once here as the composition root (package app) does, without the
	// modules that rule actions and workflow steps call.
	templates := templating.New(templating.Options{})
	// This machine has no DNS for the examples' hosts: every name resolves to one public address
	// (the guard still refuses private ones written as literals).
	egress := cfg.EgressPolicy()
	egress.Resolver = netguardtest.Resolver(t, netip.MustParseAddr("93.184.215.14"))
	opts.Events = events.NewBus(st, log)
	if opts.Notify, err = notify.New(notify.Options{Config: cfg, Store: st, Temporal: tc, Templates: templates,
		Events: opts.Events, Log: log}); err != nil {
		t.Fatal(err)
	}
	opts.Workflows = engine.New(engine.Options{Store: st, Temporal: tc, Templates: templates, Egress: egress, Log: log})
	if opts.Webhooks, err = webhooks.New(webhooks.Options{Settings: webhooks.SettingsFrom(cfg), Store: st, Temporal: tc,
		Events: opts.Events, Egress: egress, ServiceSecret: "w", Registry: prometheus.NewRegistry(), Log: log,
		TaskQueue: "automation"}); err != nil {
		t.Fatal(err)
	}
	if opts.Rules, err = rules.NewService(rules.ServiceOptions{Store: st, Temporal: tc, TaskQueue: "automation",
		Templates: templates, MaxDepth: cfg.RulesMaxDepth, Log: log}); err != nil {
		t.Fatal(err)
	}
	opts.Diagnostics = diagnostics.New(tc, "automation")
	opts.Tenants = tenants.New(st)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{Server: s, logs: logs, store: st, temporal: tc}
}

type response struct {
	*http.Response
	body []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (%d): %s", r.StatusCode, r.body)
	}
	return m
}

// errorCode returns error.code of the standard error body, failing if the shape is wrong.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	if _, ok := e["message"].(string); !ok {
		t.Fatalf("no error.message in %s", r.body)
	}
	if rid, _ := e["request_id"].(string); rid == "" || rid != r.Header.Get("X-Request-ID") {
		t.Fatalf("error.request_id %q does not match X-Request-ID %q", rid, r.Header.Get("X-Request-ID"))
	}
	return e["code"].(string)
}

func (s *testServer) do(t *testing.T, method, path string, body io.Reader, headers ...string) response {
	t.Helper()
	return s.doFrom(t, "", method, path, body, headers...)
}

// doFrom is do from the client address remote ("ip:port"; "" is httptest's 192.0.2.1:1234).
func (s *testServer) doFrom(t *testing.T, remote, method, path string, body io.Reader, headers ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	if remote != "" {
		req.RemoteAddr = remote
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return response{Response: res, body: b}
}

func token(t *testing.T, method jwt.SigningMethod, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthentication(t *testing.T) {
	// Every case fails from the same address: the failure limit is tested on its own below.
	s := newTestServer(t, func(c *config.Config) { c.AuthFailureLimit = 0 })
	now := time.Now()
	good := jwt.MapClaims{"sub": "svc-a", "exp": now.Add(time.Hour).Unix(), "tenant_id": "default", "scope": "workflows:read"}
	cases := []struct {
		name    string
		headers []string
		status  int
		message string
	}{
		{"no credentials", nil, 401, "missing credentials"},
		{"wrong key", []string{"X-API-Key", "nope"}, 401, "invalid API key"},
		{"key prefix", []string{"X-API-Key", testKey[:10]}, 401, "invalid API key"},
		{"right key", []string{"X-API-Key", testKey}, 200, ""},
		{"valid JWT", []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret, good)}, 200, ""},
		{"expired JWT", []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret,
			jwt.MapClaims{"sub": "a", "exp": now.Add(-time.Hour).Unix()})}, 401, "expired"},
		{"JWT not valid yet", []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret,
			jwt.MapClaims{"sub": "a", "exp": now.Add(2 * time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()})}, 401, "not valid yet"},
		{"JWT without exp", []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret,
			jwt.MapClaims{"sub": "a"})}, 401, "exp is required"},
		{"JWT without sub", []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret,
			jwt.MapClaims{"exp": now.Add(time.Hour).Unix()})}, 401, "no subject"},
		{"JWT without a tenant", []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret,
			jwt.MapClaims{"sub": "a", "exp": now.Add(time.Hour).Unix()})}, 401, "no tenant (tenant_id)"},
		{"JWT of an unknown tenant", []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret,
			jwt.MapClaims{"sub": "a", "exp": now.Add(time.Hour).Unix(), "tenant_id": "nope"})}, 401, "does not exist"},
		{"JWT with another secret", []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, "other", good)}, 401, "signature"},
		{"JWT with HS384", []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS384, testJWTSecret, good)}, 401, "HS256"},
		{"JWT alg none", []string{"Authorization", "Bearer " + func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}()}, 401, "invalid token"},
		{"garbage token", []string{"Authorization", "Bearer abc.def"}, 401, "malformed"},
		{"basic auth", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, "Bearer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "GET", "/api/v1/workflows", nil, tc.headers...)
			if r.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", r.StatusCode, tc.status, r.body)
			}
			if tc.status == 401 {
				if code := r.errorCode(t); code != "unauthorized" {
					t.Errorf("code %q", code)
				}
				if !strings.Contains(string(r.body), tc.message) {
					t.Errorf("message does not say %q: %s", tc.message, r.body)
				}
				if r.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
	if r := s.do(t, "GET", "/health", nil); r.StatusCode != 200 {
		t.Errorf("/health needs no credentials, got %d", r.StatusCode)
	}
}

func TestRequestIDIsEchoedAndLogged(t *testing.T) {
	s := newTestServer(t, nil)
	r := s.do(t, "GET", "/api/v1/workflows", nil, "X-Request-ID", "req-abc-123")
	if got := r.Header.Get("X-Request-ID"); got != "req-abc-123" {
		t.Fatalf("echoed %q", got)
	}
	if r.errorCode(t) != "unauthorized" {
		t.Fatal("expected 401")
	}
	logs := s.logs.String()
	var lines []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "request_id=req-abc-123") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 || !strings.Contains(strings.Join(lines, "\n"), "status=401") {
		t.Errorf("access log does not carry the request id:\n%s", logs)
	}

	uuidRe := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, given := range []string{"", strings.Repeat("x", 200), "bad id\twith tab"} {
		r := s.do(t, "GET", "/live", nil, "X-Request-ID", given)
		if got := r.Header.Get("X-Request-ID"); !uuidRe.MatchString(got) {
			t.Errorf("given %q: generated %q is not a UUID", given, got)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.MaxBodyBytes = 2048 })
	big := `{"message":"` + strings.Repeat("a", 3000) + `"}`
	r := s.do(t, "POST", "/api/v1/diagnostics/ping", strings.NewReader(big), "X-API-Key", testKey, "Content-Type", "application/json")
	if r.StatusCode != 413 || r.errorCode(t) != "payload_too_large" {
		t.Fatalf("declared oversize body: %d %s", r.StatusCode, r.body)
	}
	// Without Content-Length the limit bites while reading.
	req := httptest.NewRequest("POST", "/api/v1/diagnostics/ping", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("X-API-Key", testKey)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 413 {
		t.Fatalf("streamed oversize body: %d %s", rec.Code, rec.Body)
	}
}

func TestMalformedInput(t *testing.T) {
	s := newTestServer(t, nil)
	auth := []string{"X-API-Key", testKey, "Content-Type", "application/json"}
	for body, want := range map[string]int{
		`{"message":`:            400,
		`{"message": "a"} extra`: 400,
		`not json`:               400,
		`{"message": 5}`:         422,
		`{"wait_seconds": 99}`:   422,
	} {
		r := s.do(t, "POST", "/api/v1/diagnostics/ping", strings.NewReader(body), auth...)
		if r.StatusCode != want {
			t.Errorf("%s: %d, want %d: %s", body, r.StatusCode, want, r.body)
			continue
		}
		code := r.errorCode(t)
		if want == 422 {
			details, _ := r.json(t)["error"].(map[string]any)["details"].([]any)
			if code != "validation_failed" || len(details) != 1 {
				t.Errorf("%s: %s", body, r.body)
			}
		}
	}
	r := s.do(t, "POST", "/api/v1/diagnostics/ping", strings.NewReader("message=a"), "X-API-Key", testKey,
		"Content-Type", "application/x-www-form-urlencoded")
	if r.StatusCode != 415 {
		t.Errorf("form body: %d", r.StatusCode)
	}
	for _, q := range []string{"limit=0", "limit=500", "limit=x", "enabled=maybe", "trigger_type=cron", "cursor=!!!"} {
		r := s.do(t, "GET", "/api/v1/workflows?"+q, nil, "X-API-Key", testKey)
		if r.StatusCode != 422 || r.errorCode(t) != "validation_failed" {
			t.Errorf("?%s: %d %s", q, r.StatusCode, r.body)
		}
	}
}

func TestRateLimit(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.RateLimitPerSecond, c.RateLimitBurst = 1, 2 })
	key := []string{"X-API-Key", testKey}
	for i := range 2 {
		r := s.do(t, "GET", "/api/v1/workflows", nil, key...)
		if r.StatusCode != 200 {
			t.Fatalf("request %d: %d", i+1, r.StatusCode)
		}
		if r.Header.Get("RateLimit-Limit") != "2" || r.Header.Get("RateLimit-Remaining") != fmt.Sprint(1-i) {
			t.Errorf("request %d headers: %v", i+1, r.Header)
		}
	}
	r := s.do(t, "GET", "/api/v1/workflows", nil, key...)
	if r.StatusCode != 429 || r.errorCode(t) != "rate_limited" {
		t.Fatalf("third request: %d %s", r.StatusCode, r.body)
	}
	if ra := r.Header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q", ra)
	}
	if r.Header.Get("RateLimit-Remaining") != "0" || r.Header.Get("RateLimit-Reset") == "" {
		t.Errorf("429 headers: %v", r.Header)
	}
	// Another client and another route have budgets of their own.
	jwtHeader := []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret,
		jwt.MapClaims{"sub": "other", "exp": time.Now().Add(time.Hour).Unix(), "tenant_id": "default", "scope": "workflows:read"})}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, jwtHeader...); r.StatusCode != 200 {
		t.Errorf("another client was limited: %d", r.StatusCode)
	}
}

// RATE_LIMIT_USER_PER_SECOND bounds bearer tokens apart from the service credentials, whose
// default (RATE_LIMIT_PER_SECOND) suits service-to-service traffic.
func TestUserRateLimit(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) {
		c.RateLimitPerSecond, c.RateLimitBurst = 1000, 2000
		c.RateLimitUserPerSecond, c.RateLimitUserBurst = 1, 1
	})
	jwtHeader := []string{"Authorization", "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret,
		jwt.MapClaims{"sub": "user", "exp": time.Now().Add(time.Hour).Unix(), "tenant_id": "default", "scope": "workflows:read"})}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, jwtHeader...); r.StatusCode != 200 || r.Header.Get("RateLimit-Limit") != "1" {
		t.Fatalf("first bearer request: %d %v", r.StatusCode, r.Header)
	}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, jwtHeader...); r.StatusCode != 429 {
		t.Fatalf("second bearer request: %d", r.StatusCode)
	}
	for i := range 5 {
		r := s.do(t, "GET", "/api/v1/workflows", nil, "X-API-Key", testKey)
		if r.StatusCode != 200 || r.Header.Get("RateLimit-Limit") != "2000" {
			t.Fatalf("internal key request %d: %d %v", i+1, r.StatusCode, r.Header)
		}
	}
}

func TestRoutingErrorsAreJSON(t *testing.T) {
	s := newTestServer(t, nil)
	r := s.do(t, "GET", "/nope", nil)
	if r.StatusCode != 404 || r.errorCode(t) != "not_found" {
		t.Errorf("unknown route: %d %s", r.StatusCode, r.body)
	}
	r = s.do(t, "DELETE", "/health", nil)
	if r.StatusCode != 405 || r.errorCode(t) != "method_not_allowed" {
		t.Errorf("wrong method: %d %s", r.StatusCode, r.body)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	s := newTestServer(t, nil)
	s.echo.GET("/api/v1/test-panic", func(echo.Context) error { panic("boom") }, s.authenticate)
	r := s.do(t, "GET", "/api/v1/test-panic", nil, "X-API-Key", testKey)
	if r.StatusCode != 500 || r.errorCode(t) != "internal_error" {
		t.Fatalf("%d %s", r.StatusCode, r.body)
	}
	if strings.Contains(string(r.body), "boom") || strings.Contains(string(r.body), "goroutine") {
		t.Errorf("panic details leaked: %s", r.body)
	}
	if !strings.Contains(s.logs.String(), "panic in handler") {
		t.Error("panic not logged")
	}
}

func TestDependencyDownIs503(t *testing.T) {
	s := newTestServer(t, nil)
	r := s.do(t, "GET", "/ready", nil)
	if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("/ready with Temporal down: %d %s", r.StatusCode, r.body)
	}
	if failing := fmt.Sprint(r.json(t)["failing"]); failing != "[temporal]" {
		t.Errorf("failing %s", failing)
	}
	// Without credentials: each dependency's status and latency, nothing that names a host,
	// a port or how the deployment is built.
	r = s.do(t, "GET", "/health/detailed", nil)
	deps := r.json(t)["dependencies"].(map[string]any)
	if r.StatusCode != 503 || deps["temporal"].(map[string]any)["status"] != "down" || deps["database"].(map[string]any)["status"] != "up" {
		t.Errorf("/health/detailed: %d %s", r.StatusCode, r.body)
	}
	for name, d := range deps {
		for field := range d.(map[string]any) {
			if field != "status" && field != "latency_ms" {
				t.Errorf("unauthenticated /health/detailed shows %s.%s: %s", name, field, r.body)
			}
		}
	}
	if strings.Contains(string(r.body), s.cfg.TemporalAddress) || strings.Contains(string(r.body), "127.0.0.1") {
		t.Errorf("unauthenticated /health/detailed names an address: %s", r.body)
	}
	// With the API key or a JWT: modes and the errors (which name the address).
	bearer := "Bearer " + token(t, jwt.SigningMethodHS256, testJWTSecret, jwt.MapClaims{"sub": "ops", "exp": time.Now().Add(time.Hour).Unix(), "tenant_id": "default"})
	for _, creds := range [][]string{{"X-API-Key", testKey}, {"Authorization", bearer}} {
		r = s.do(t, "GET", "/health/detailed", nil, creds...)
		deps = r.json(t)["dependencies"].(map[string]any)
		temporal := deps["temporal"].(map[string]any)
		if r.StatusCode != 503 || temporal["mode"] != "external" || !strings.Contains(fmt.Sprint(temporal["error"]), "127.0.0.1") ||
			deps["database"].(map[string]any)["mode"] != "sqlite" {
			t.Errorf("authenticated /health/detailed (%s): %d %s", creds[0], r.StatusCode, r.body)
		}
	}
	if r := s.do(t, "GET", "/health/detailed", nil, "X-API-Key", "wrong"); r.StatusCode != 401 {
		t.Errorf("/health/detailed with a wrong key: %d, want 401", r.StatusCode)
	}
	r = s.do(t, "POST", "/api/v1/diagnostics/ping", strings.NewReader(`{"wait_seconds":1}`), "X-API-Key", testKey)
	if r.StatusCode != 503 || r.errorCode(t) != "service_unavailable" || r.Header.Get("Retry-After") == "" {
		t.Errorf("ping with Temporal down: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/live", nil); r.StatusCode != 200 {
		t.Errorf("/live must not depend on dependencies: %d", r.StatusCode)
	}
}

func TestInfo(t *testing.T) {
	s := newTestServer(t, nil)
	m := s.do(t, "GET", "/info", nil).json(t)
	modes := m["modes"].(map[string]any)
	if m["version"] != "test" || m["env"] != "test" || modes["database"] != "sqlite" || modes["rate_limit"] != "in-process" {
		t.Errorf("info: %v", m)
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := newTestServer(t, nil)
	documented := map[string]bool{}
	for _, op := range s.spec.operations() {
		documented[op] = true
	}
	param := regexp.MustCompile(`:([a-zA-Z_]+)`)
	served := map[string]bool{}
	for _, r := range s.echo.Routes() {
		if r.Method == echo.RouteNotFound || strings.HasSuffix(r.Path, "*") {
			continue
		}
		op := r.Method + " " + param.ReplaceAllString(r.Path, "{$1}")
		served[op] = true
		if !documented[op] {
			t.Errorf("route %s is not in the OpenAPI document", op)
		}
	}
	for op := range documented {
		if !served[op] {
			t.Errorf("OpenAPI documents %s, which is not served", op)
		}
	}
	r := s.do(t, "GET", "/openapi.json", nil)
	if r.StatusCode != 200 || r.json(t)["openapi"] != "3.0.3" {
		t.Errorf("/openapi.json: %d", r.StatusCode)
	}
}

func TestDocsPage(t *testing.T) {
	s := newTestServer(t, nil)
	r := s.do(t, "GET", "/docs", nil)
	if r.StatusCode != 200 || !strings.Contains(string(r.body), "docs/swagger-ui-bundle.js") ||
		!strings.Contains(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d", r.StatusCode)
	}
	prod := newTestServer(t, func(c *config.Config) { c.Env = config.EnvProduction })
	if r := prod.do(t, "GET", "/docs", nil); r.StatusCode != 404 {
		t.Errorf("/docs in production: %d", r.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	s := newTestServer(t, nil)
	s.do(t, "GET", "/api/v1/workflows", nil, "X-API-Key", testKey)
	s.do(t, "GET", "/api/v1/workflows", nil)
	body := string(s.do(t, "GET", "/metrics", nil).body)
	for _, want := range []string{
		`http_requests_total{method="GET",route="/api/v1/workflows",status="200"} 1`,
		`http_requests_total{method="GET",route="/api/v1/workflows",status="401"} 1`,
		`http_request_duration_seconds_bucket{method="GET",route="/api/v1/workflows",status="200",le="0.005"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A draining server answers /ready with 503 and goes on serving everything else.
func TestDrainingServerIsNotReadyButServes(t *testing.T) {
	s := newTestServer(t, nil)
	s.Drain()
	r := s.do(t, "GET", "/ready", nil)
	if r.StatusCode != 503 || r.json(t)["status"] != "draining" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("/ready while draining: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows", nil, "X-API-Key", testKey); r.StatusCode != 200 {
		t.Errorf("a request while draining: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/live", nil); r.StatusCode != 200 {
		t.Errorf("/live while draining: %d", r.StatusCode)
	}
}

// With Temporal down an execution is refused with 503 and Retry-After, and the request leaves
// no execution behind (with or without an idempotency key): nothing is listed, nothing failed.
func TestExecuteWithTemporalDownLeavesNothing(t *testing.T) {
	s := newTestServer(t, nil)
	key := []string{"X-API-Key", testKey, "Content-Type", "application/json"}
	r := s.do(t, "POST", "/api/v1/workflows", strings.NewReader(`{"name": "w", "trigger_type": "manual",
		"steps": [{"id": "a", "type": "data_transform", "config": {"mapping": {"x": "1"}}}]}`), key...)
	if r.StatusCode != 201 {
		t.Fatalf("create: %d %s", r.StatusCode, r.body)
	}
	id := r.json(t)["id"].(string)
	for _, idem := range []string{"", "once"} {
		// The app bounds Temporal calls without a deadline (TEMPORAL_RPC_TIMEOUT); here the
		// request's own deadline does.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req := httptest.NewRequestWithContext(ctx, "POST", "/api/v1/workflows/"+id+"/execute", strings.NewReader(`{"input_data": {}}`))
		req.Header.Set("X-API-Key", testKey)
		req.Header.Set("Content-Type", "application/json")
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		cancel()
		if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("execute with Temporal down (key %q): %d %s", idem, rec.Code, rec.Body)
		}
	}
	r = s.do(t, "GET", "/api/v1/executions", nil, key...)
	if items := r.json(t)["items"].([]any); r.StatusCode != 200 || len(items) != 0 {
		t.Errorf("refused executions left records: %d %s", r.StatusCode, r.body)
	}
}
