package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeAPI stands in for the service: it records each request and answers from routes, keyed by
// "METHOD /path" (the query is matched by the handler itself where it matters).
type fakeAPI struct {
	t      *testing.T
	mu     sync.Mutex
	seen   []seenRequest
	routes map[string]func(r *http.Request, body []byte) (int, any)
	url    string
}

type seenRequest struct {
	Method, Path, Query, ContentType, Key string
	Body                                  []byte
	Header                                http.Header
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, routes: map[string]func(*http.Request, []byte) (int, any){}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"),
			r.Header.Get("X-API-Key"), body, r.Header.Clone()})
		route := f.routes[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		status, out := http.StatusNotFound, any(map[string]any{"error": map[string]any{
			"code": "not_found", "message": "no such thing", "request_id": "req-1"}})
		if route != nil {
			status, out = route(r, body)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fakeAPI) on(route string, status int, body any) {
	f.routes[route] = func(*http.Request, []byte) (int, any) { return status, body }
}

func (f *fakeAPI) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

type result struct {
	code           int
	stdout, stderr string
}

// cli runs the CLI against f with stdin.
func (f *fakeAPI) cli(stdin string, args ...string) result {
	var out, errOut bytes.Buffer
	code := run(append([]string{"--api", f.url, "--api-key", "test-key"}, args...), strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// paged serves items in pages of two, with cursors "c2", "c4", … as the API does.
func paged(items ...map[string]any) func(*http.Request, []byte) (int, any) {
	return func(r *http.Request, _ []byte) (int, any) {
		start := 0
		if c := r.URL.Query().Get("cursor"); c != "" {
			fmt.Sscanf(c, "c%d", &start)
		}
		end := min(start+2, len(items))
		page := map[string]any{"items": items[start:end], "has_more": end < len(items), "next_cursor": ""}
		if end < len(items) {
			page["next_cursor"] = fmt.Sprintf("c%d", end)
		}
		return 200, page
	}
}

func TestUsageErrors(t *testing.T) {
	f := newFakeAPI(t)
	for _, args := range [][]string{
		{"workflows", "list", "--bogus"},
		{"executions", "show"},
		{"workflows", "bogus"},
		{"nosuchcommand"},
		{"rules", "create"},
		{"rules", "test", "r1"},
		{"workflows", "list", "--limit", "many"},
		{"-o", "yaml", "health"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := f.cli("", args...)
			if r.code != 2 || !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, "Usage:") || r.stdout != "" {
				t.Errorf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
	t.Run("as JSON", func(t *testing.T) {
		r := f.cli("", "-o", "json", "workflows", "list", "--bogus")
		var e struct {
			Error struct{ Code, Message, Usage string }
		}
		if r.code != 2 || json.Unmarshal([]byte(r.stderr), &e) != nil || e.Error.Code != "usage_error" ||
			!strings.Contains(e.Error.Message, "--bogus") || !strings.Contains(e.Error.Usage, "--cursor") {
			t.Errorf("exit %d, stderr %s", r.code, r.stderr)
		}
	})
	t.Run("help is no error", func(t *testing.T) {
		if r := f.cli("", "rules", "--help"); r.code != 0 || !strings.Contains(r.stdout, "enable") {
			t.Errorf("exit %d %s %s", r.code, r.stdout, r.stderr)
		}
	})
}

func TestAPIErrors(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/v1/automation/rules", 422, map[string]any{"error": map[string]any{
		"code": "validation_failed", "message": "the rule is invalid", "request_id": "req-9",
		"details": []map[string]string{{"field": "trigger.event_type", "message": "is required"}}}})
	file := writeFile(t, "rule.json", `{"name": "x"}`)

	r := f.cli("", "executions", "show", "missing")
	if r.code != 1 || !strings.Contains(r.stderr, "404 not_found: no such thing") || strings.Contains(r.stderr, "Usage:") {
		t.Errorf("text: exit %d %q", r.code, r.stderr)
	}
	r = f.cli("", "-o", "json", "rules", "create", "-f", file)
	var e struct {
		Error struct {
			Code      string `json:"code"`
			Status    int    `json:"status"`
			RequestID string `json:"request_id"`
			Details   []struct{ Field, Message string }
		} `json:"error"`
	}
	if r.code != 1 || r.stdout != "" || json.Unmarshal([]byte(r.stderr), &e) != nil || e.Error.Code != "validation_failed" ||
		e.Error.Status != 422 || e.Error.RequestID != "req-9" || len(e.Error.Details) != 1 || e.Error.Details[0].Field != "trigger.event_type" {
		t.Errorf("json: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	// A service that cannot be reached is a failure, reported as JSON too.
	var out, errOut bytes.Buffer
	code := run([]string{"--api", "http://127.0.0.1:1", "-o", "json", "health"}, strings.NewReader(""), &out, &errOut)
	if code != 1 || !json.Valid(errOut.Bytes()) || !strings.Contains(errOut.String(), "connection refused") {
		t.Errorf("unreachable: exit %d %s", code, errOut.String())
	}
	// A file that is not JSON fails before any request.
	bad := writeFile(t, "bad.json", `{"name":`)
	if r := f.cli("", "rules", "create", "-f", bad); r.code != 1 || !strings.Contains(r.stderr, "not valid JSON") {
		t.Errorf("bad file: exit %d %s", r.code, r.stderr)
	}
}

// Every list takes --limit, --cursor and --all, and -o json prints the API's page shape.
func TestListsPage(t *testing.T) {
	lists := map[string][]string{
		"/api/v1/workflows":                      {"workflows", "list"},
		"/api/v1/executions":                     {"executions", "list"},
		"/api/v1/notifications":                  {"notifications", "list"},
		"/api/v1/notifications/templates":        {"templates", "list"},
		"/api/v1/events":                         {"events", "list"},
		"/api/v1/automation/rules":               {"rules", "list"},
		"/api/v1/automation/rules/r1/executions": {"rules", "executions", "r1"},
		"/api/v1/webhooks/endpoints":             {"webhooks", "endpoints", "list"},
		"/api/v1/webhooks/deliveries":            {"webhooks", "deliveries", "list"},
	}
	for path, args := range lists {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			f := newFakeAPI(t)
			f.routes["GET "+path] = paged(map[string]any{"id": "i0"}, map[string]any{"id": "i1"},
				map[string]any{"id": "i2"}, map[string]any{"id": "i3"}, map[string]any{"id": "i4"})

			r := f.cli("", append(args, "--all", "-o", "json")...)
			var page struct {
				Items      []struct{ ID string }
				NextCursor string `json:"next_cursor"`
				HasMore    bool   `json:"has_more"`
			}
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Items) != 5 ||
				page.Items[4].ID != "i4" || page.HasMore || page.NextCursor != "" {
				t.Fatalf("--all: exit %d %s %s", r.code, r.stdout, r.stderr)
			}
			var queries []string
			for _, q := range f.requests() {
				queries = append(queries, q.Query)
			}
			if want := "limit=50 cursor=c2&limit=50 cursor=c4&limit=50"; strings.Join(queries, " ") != want {
				t.Errorf("--all requested %q, want %q", queries, want)
			}

			r = f.cli("", append(args, "--cursor", "c2", "--limit", "2")...)
			last := f.requests()[len(f.requests())-1]
			if r.code != 0 || last.Query != "cursor=c2&limit=2" || !strings.Contains(r.stdout, "i2") ||
				!strings.Contains(r.stdout, "i3") || strings.Contains(r.stdout, "i4") {
				t.Errorf("--cursor: exit %d query %q\n%s%s", r.code, last.Query, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "more: --cursor c4") {
				t.Errorf("no hint for the next page: %q", r.stderr)
			}
		})
	}
}

func TestRulesAndTemplatesFromFiles(t *testing.T) {
	f := newFakeAPI(t)
	echoRule := func(version int) func(*http.Request, []byte) (int, any) {
		return func(_ *http.Request, body []byte) (int, any) {
			var in map[string]any
			_ = json.Unmarshal(body, &in)
			return 201, map[string]any{"id": "r1", "name": in["name"], "version": version, "enabled": true,
				"trigger": in["trigger"]}
		}
	}
	f.routes["POST /api/v1/automation/rules"] = echoRule(1)
	f.routes["PUT /api/v1/automation/rules/r1"] = echoRule(2)
	f.on("POST /api/v1/automation/rules/r1/disable", 200, map[string]any{"id": "r1", "enabled": false})
	f.on("POST /api/v1/automation/rules/r1/enable", 200, map[string]any{"id": "r1", "enabled": true})
	f.on("GET /api/v1/automation/rules/r1", 200, map[string]any{"id": "r1", "name": "Welcome"})
	rule := `{"name": "Welcome", "trigger": {"type": "event", "event_type": "user.created"}, "actions": []}`
	file := writeFile(t, "rule.json", rule)

	for _, tc := range []struct {
		name, stdin string
		args        []string
		method      string
		path        string
		body        string
		out         string
	}{
		{"rules create -f file", "", []string{"rules", "create", "-f", file}, "POST", "/api/v1/automation/rules", rule,
			`rule r1 "Welcome" version 1 (event user.created, enabled=true)`},
		{"rules create -f -", rule, []string{"rules", "create", "-f", "-"}, "POST", "/api/v1/automation/rules", rule, "version 1"},
		{"rules update", "", []string{"rules", "update", "r1", "-f", file}, "PUT", "/api/v1/automation/rules/r1", rule, "version 2"},
		{"rules disable", "", []string{"rules", "disable", "r1"}, "POST", "/api/v1/automation/rules/r1/disable", "", "rule r1 enabled=false"},
		{"rules enable", "", []string{"rules", "enable", "r1"}, "POST", "/api/v1/automation/rules/r1/enable", "", "rule r1 enabled=true"},
		{"rules show", "", []string{"rules", "show", "r1"}, "GET", "/api/v1/automation/rules/r1", "", `"name": "Welcome"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.cli(tc.stdin, tc.args...)
			last := f.requests()[len(f.requests())-1]
			if r.code != 0 || !strings.Contains(r.stdout, tc.out) {
				t.Errorf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if last.Method != tc.method || last.Path != tc.path || last.Key != "test-key" {
				t.Errorf("sent %s %s (key %q)", last.Method, last.Path, last.Key)
			}
			if tc.body != "" && (!sameJSON(last.Body, tc.body) || last.ContentType != "application/json") {
				t.Errorf("body %q (%s), want the file as it is", last.Body, last.ContentType)
			}
		})
	}

	tpl := `{"id": "order_shipped", "channel": "email", "subject": "Order {{ order.id }}", "body": "Shipped."}`
	tplFile := writeFile(t, "template.json", tpl)
	f.on("POST /api/v1/notifications/templates", 201, map[string]any{"id": "order_shipped", "channel": "email", "version": 1})
	f.on("PUT /api/v1/notifications/templates/order_shipped", 200, map[string]any{"id": "order_shipped", "channel": "email", "version": 2})
	f.on("GET /api/v1/notifications/templates/order_shipped", 200, map[string]any{"id": "order_shipped", "version": 1, "body": "Shipped."})
	if r := f.cli("", "templates", "create", "-f", tplFile); r.code != 0 || r.stdout != "template order_shipped (email) version 1\n" {
		t.Errorf("templates create: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if last := f.requests()[len(f.requests())-1]; !sameJSON(last.Body, tpl) {
		t.Errorf("templates create sent %s", last.Body)
	}
	if r := f.cli(tpl, "templates", "update", "order_shipped", "-f", "-"); r.code != 0 || !strings.Contains(r.stdout, "version 2") {
		t.Errorf("templates update: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := f.cli("", "templates", "show", "order_shipped", "--version", "1"); r.code != 0 || !strings.Contains(r.stdout, `"body": "Shipped."`) {
		t.Errorf("templates show: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if last := f.requests()[len(f.requests())-1]; last.Query != "version=1" {
		t.Errorf("templates show --version sent ?%s", last.Query)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /info", 200, map[string]any{"version": "v9.9.9", "env": "production"})
	r := f.cli("", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "starter ") || !strings.Contains(r.stdout, "service v9.9.9 (production, "+f.url+")") {
		t.Errorf("version: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = f.cli("", "-o", "json", "version")
	var v struct {
		Client string
		Server struct{ Version string }
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Client == "" || v.Server.Version != "v9.9.9" {
		t.Errorf("version -o json: %d %q", r.code, r.stdout)
	}
	before := len(f.requests())
	if r := f.cli("", "version", "--client"); r.code != 0 || strings.Contains(r.stdout, "service") || len(f.requests()) != before {
		t.Errorf("version --client: %d %q", r.code, r.stdout)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if r := f.cli("", "completion", shell); r.code != 0 || !strings.Contains(r.stdout, "starter") {
			t.Errorf("completion %s: exit %d %s", shell, r.code, r.stderr)
		}
	}
	// The completion script asks the CLI itself; subcommands and flag values complete.
	if r := f.cli("", "__complete", "rules", ""); r.code != 0 || !strings.Contains(r.stdout, "enable") || !strings.Contains(r.stdout, "create") {
		t.Errorf("__complete rules: %d %q", r.code, r.stdout)
	}
	if r := f.cli("", "__complete", "-o", ""); r.code != 0 || !strings.Contains(r.stdout, "json") {
		t.Errorf("__complete -o: %d %q", r.code, r.stdout)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// sameJSON compares two JSON documents, ignoring spacing.
func sameJSON(a []byte, b string) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, []byte(b)) == nil && x.String() == y.String()
}
