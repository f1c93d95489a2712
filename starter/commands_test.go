package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// last is the most recent request the fake API received; it fails the test when there is none.
func (f *fakeAPI) last(t *testing.T) seenRequest {
	t.Helper()
	seen := f.requests()
	if len(seen) == 0 {
		t.Fatal("no request was sent")
	}
	return seen[len(seen)-1]
}

// runBare runs the CLI against f with no credentials on the command line.
func (f *fakeAPI) runBare(args ...string) result {
	var out, errOut bytes.Buffer
	code := run(append([]string{"--api", f.url}, args...), strings.NewReader(""), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// noCredentialsInEnv clears every variable the CLI reads a credential from, and points the
// development key file at an empty directory.
func noCredentialsInEnv(t *testing.T) {
	t.Setenv("AUTOMATION_API_KEY", "")
	t.Setenv("INTERNAL_API_KEY", "")
	t.Setenv("AUTOMATION_API_TOKEN", "")
	t.Setenv("DATA_DIR", t.TempDir())
}

// jsonBody decodes a recorded request body, failing the test unless it is a JSON object.
func jsonBody(t *testing.T, r seenRequest) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("%s %s sent %q, not a JSON object: %v", r.Method, r.Path, r.Body, err)
	}
	return m
}

func TestCredentials(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/v1/automation/rules/r1", 200, map[string]any{"id": "r1"})
	t.Run("--api-key is sent as X-API-Key", func(t *testing.T) {
		if r := f.cli("", "rules", "show", "r1"); r.code != 0 {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
		if last := f.last(t); last.Key != "test-key" || last.Header.Get("Authorization") != "" {
			t.Errorf("key %q, authorization %q", last.Key, last.Header.Get("Authorization"))
		}
	})
	t.Run("--token is sent as a bearer token instead of a key", func(t *testing.T) {
		noCredentialsInEnv(t)
		if r := f.runBare("--token", "jwt-1", "rules", "show", "r1"); r.code != 0 {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
		if last := f.last(t); last.Key != "" || last.Header.Get("Authorization") != "Bearer jwt-1" {
			t.Errorf("key %q, authorization %q", last.Key, last.Header.Get("Authorization"))
		}
	})
	t.Run("AUTOMATION_API_TOKEN is the token's default", func(t *testing.T) {
		noCredentialsInEnv(t)
		t.Setenv("AUTOMATION_API_TOKEN", "jwt-env")
		if r := f.runBare("rules", "show", "r1"); r.code != 0 {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
		if last := f.last(t); last.Header.Get("Authorization") != "Bearer jwt-env" {
			t.Errorf("authorization %q", last.Header.Get("Authorization"))
		}
	})
	for _, name := range []string{"AUTOMATION_API_KEY", "INTERNAL_API_KEY"} {
		t.Run(name+" is the key's default", func(t *testing.T) {
			noCredentialsInEnv(t)
			t.Setenv(name, "env-key")
			if r := f.runBare("rules", "show", "r1"); r.code != 0 {
				t.Fatalf("exit %d %s", r.code, r.stderr)
			}
			if last := f.last(t); last.Key != "env-key" {
				t.Errorf("key %q", last.Key)
			}
		})
	}
	t.Run("a trailing slash on --api is dropped", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := run([]string{"--api", f.url + "/", "--api-key", "k", "rules", "show", "r1"}, strings.NewReader(""), &out, &errOut)
		if last := f.last(t); code != 0 || last.Path != "/api/v1/automation/rules/r1" {
			t.Errorf("exit %d, path %q %s", code, last.Path, errOut.String())
		}
	})
	t.Run("a relative --api is a usage error", func(t *testing.T) {
		before := len(f.requests())
		var out, errOut bytes.Buffer
		code := run([]string{"--api", "localhost:8090", "rules", "show", "r1"}, strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "--api must be an absolute URL") || len(f.requests()) != before {
			t.Errorf("exit %d %s", code, errOut.String())
		}
	})
}

// Filters become query parameters, kept on every page --all fetches.
func TestListFilters(t *testing.T) {
	for _, tc := range []struct {
		path  string
		args  []string
		query string
	}{
		{"/api/v1/automation/rules", []string{"rules", "list", "--enabled", "true", "--trigger-type", "schedule"},
			"enabled=true&trigger_type=schedule"},
		{"/api/v1/automation/rules/r1/executions", []string{"rules", "executions", "r1", "--status", "failed"}, "status=failed"},
		{"/api/v1/workflows", []string{"workflows", "list", "--name", "fulfil", "--trigger-type", "event", "--enabled", "false"},
			"enabled=false&name=fulfil&trigger_type=event"},
		{"/api/v1/executions", []string{"executions", "list", "--workflow", "w1", "--status", "failed"}, "status=failed&workflow_id=w1"},
		{"/api/v1/events", []string{"events", "list", "--type", "user.created"}, "type=user.created"},
		{"/api/v1/notifications", []string{"notifications", "list", "--channel", "sms", "--status", "sent", "--recipient", "+14155550100"},
			"channel=sms&recipient=%2B14155550100&status=sent"},
		{"/api/v1/notifications/templates", []string{"templates", "list", "--channel", "email"}, "channel=email"},
		{"/api/v1/webhooks/endpoints", []string{"webhooks", "endpoints", "list", "--enabled", "false"}, "enabled=false"},
		{"/api/v1/webhooks/deliveries", []string{"webhooks", "deliveries", "list", "--endpoint", "e1", "--message", "m1",
			"--event-type", "order.paid", "--status", "failed"}, "endpoint_id=e1&event_type=order.paid&message_id=m1&status=failed"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f := newFakeAPI(t)
			f.routes["GET "+tc.path] = paged(map[string]any{"id": "i0"}, map[string]any{"id": "i1"}, map[string]any{"id": "i2"})
			if r := f.cli("", append(tc.args, "--all", "-o", "json")...); r.code != 0 {
				t.Fatalf("exit %d %s", r.code, r.stderr)
			}
			var queries []string
			for _, q := range f.requests() {
				queries = append(queries, q.Query)
			}
			want := tc.query + "&limit=50 " + tc.query + "&cursor=c2&limit=50"
			if strings.Join(queries, " ") != want {
				t.Errorf("requested %q, want %q", queries, want)
			}
		})
	}
}

// The text form of a list is a table of the fields an operator reads.
func TestListTables(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/v1/automation/rules", 200, map[string]any{"items": []any{map[string]any{
		"id": "r1", "name": "Welcome", "enabled": true, "version": 3, "priority": 10,
		"trigger": map[string]any{"type": "event", "event_type": "user.created"}, "updated_at": "2026-01-02T03:04:05Z"}}})
	f.on("GET /api/v1/automation/rules/r1/executions", 200, map[string]any{"items": []any{map[string]any{
		"id": "x1", "event_id": "e1", "rule_name": "Welcome", "status": "failed", "reason": "an action failed",
		"actions": []any{map[string]any{"index": 0, "type": "notification", "status": "failed", "error": "boom"},
			map[string]any{"index": 1, "type": "emit_event", "status": "succeeded"}}}}})
	f.on("GET /api/v1/webhooks/endpoints", 200, map[string]any{"items": []any{map[string]any{
		"id": "ep1", "name": "billing", "url": "https://r.example/hook", "events": []string{"order.*", "user.created"},
		"enabled": false, "disabled_reason": "gone", "consecutive_failures": 4}}})

	rows := func(t *testing.T, args ...string) [][]string {
		t.Helper()
		r := f.cli("", args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
		var out [][]string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			out = append(out, strings.Fields(line))
		}
		return out
	}
	t.Run("rules list", func(t *testing.T) {
		got := rows(t, "rules", "list")
		if len(got) != 2 || strings.Join(got[0], " ") != "ID NAME TRIGGER PRIORITY ENABLED VERSION UPDATED" ||
			strings.Join(got[1][:7], " ") != "r1 Welcome event user.created 10 true 3" {
			t.Errorf("table %q", got)
		}
	})
	t.Run("rules executions", func(t *testing.T) {
		r := f.cli("", "rules", "executions", "r1")
		if r.code != 0 || !strings.Contains(r.stdout, "EXECUTION") ||
			!strings.Contains(r.stdout, "0:notification=failed (boom), 1:emit_event=succeeded") ||
			!strings.Contains(r.stdout, "an action failed") {
			t.Errorf("exit %d %s%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("webhooks endpoints list", func(t *testing.T) {
		got := rows(t, "webhooks", "endpoints", "list")
		if len(got) != 2 || strings.Join(got[1], " ") != "ep1 billing https://r.example/hook order.*,user.created false (gone) 4" {
			t.Errorf("table %q", got)
		}
	})
}

func TestRulesTestPrintsTheDryRun(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/v1/automation/rules/r1/test", 200, map[string]any{
		"trigger_matched": true, "matched": false, "would_run": false,
		"reason": "conditions[0]: user.email_verified equals true, actual false",
		"conditions": []any{
			map[string]any{"path": "conditions[0]", "type": "field_check", "field": "user.email_verified", "operator": "equals",
				"expected": true, "actual": false, "matched": false},
			map[string]any{"path": "conditions[1]", "type": "all", "matched": true, "children": []any{
				map[string]any{"path": "conditions[1].conditions[0]", "type": "expression", "expression": "order.total > 100",
					"actual": true, "matched": true},
				map[string]any{"path": "conditions[1].conditions[1]", "type": "field_check", "field": "user.name",
					"operator": "exists", "missing": true, "matched": false}}}},
		"actions": []any{
			map[string]any{"index": 0, "type": "notification", "available": true, "rendered": map[string]any{"to": []string{"x@example.com"}}},
			map[string]any{"index": 1, "type": "webhook", "available": false, "rendered": map[string]any{"event_type": "out"}},
			map[string]any{"index": 2, "type": "notification", "error": `undefined variable "user_name"`}},
	})
	event := `{"type": "user.created", "data": {"user": {"email": "x@example.com", "email_verified": false}}}`
	file := writeFile(t, "event.json", event)

	r := f.cli("", "rules", "test", "r1", "-f", file)
	if r.code != 0 {
		t.Fatalf("exit %d %s", r.code, r.stderr)
	}
	last := f.last(t)
	if last.Method != "POST" || last.Path != "/api/v1/automation/rules/r1/test" || !sameJSON(last.Body, `{"event": `+event+`}`) {
		t.Errorf("sent %s %s %s", last.Method, last.Path, last.Body)
	}
	for _, want := range []string{
		"trigger matched: true, conditions hold: false — would not run: conditions[0]: user.email_verified equals true, actual false\n",
		"conditions:\n  ✗ conditions[0]: user.email_verified equals true  actual false\n",
		"  ✓ conditions[1]: all  \n",
		"    ✓ conditions[1].conditions[0]: order.total > 100  actual true\n",
		"    ✗ conditions[1].conditions[1]: user.name exists   missing\n",
		"actions (rendered, not sent):\n  [0] notification: {\"to\":[\"x@example.com\"]}\n",
		"  [1] webhook (not available in this deployment): {\"event_type\":\"out\"}\n",
		"  [2] notification: error: undefined variable \"user_name\"\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Run("a file that is only the data is refused with the format", func(t *testing.T) {
		calls := len(f.requests())
		r := f.cli("", "rules", "test", "r1", "-f", writeFile(t, "data.json", `{"user": {"email": "x@example.com"}}`))
		if r.code != 2 || !strings.Contains(r.stderr, `{"type": "user.created", "data": {"user":{"email":"x@example.com"}}}`) {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
		if len(f.requests()) != calls {
			t.Errorf("a refused file was sent")
		}
	})
	t.Run("-o json prints the API's answer", func(t *testing.T) {
		r := f.cli("", "-o", "json", "rules", "test", "r1", "-f", file)
		var res map[string]any
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res["would_run"] != false || len(res["conditions"].([]any)) != 2 {
			t.Errorf("exit %d %s", r.code, r.stdout)
		}
	})
}

func TestEventsSend(t *testing.T) {
	f := newFakeAPI(t)
	duplicate := false
	f.routes["POST /api/v1/events"] = func(*http.Request, []byte) (int, any) {
		return 202, map[string]any{"id": "signup-42", "duplicate": duplicate}
	}
	args := []string{"events", "send", "--type", "user.created", "--data", `{"user": {"email": "a@example.com"}}`,
		"--id", "signup-42", "--source", "signup", "--subject", "u1"}
	r := f.cli("", args...)
	if r.code != 0 || r.stdout != "accepted event signup-42\n" {
		t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	if last := f.last(t); !sameJSON(last.Body, `{"data":{"user":{"email":"a@example.com"}},"id":"signup-42","source":"signup","subject":"u1","type":"user.created"}`) ||
		last.ContentType != "application/json" {
		t.Errorf("sent %s (%s)", last.Body, last.ContentType)
	}
	duplicate = true
	if r := f.cli("", args...); r.code != 0 || r.stdout != "event signup-42 was accepted before; it is not evaluated again\n" {
		t.Errorf("duplicate: exit %d %q", r.code, r.stdout)
	}
	t.Run("only the flags given are sent", func(t *testing.T) {
		if r := f.cli("", "events", "send", "--type", "ping"); r.code != 0 {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
		if last := f.last(t); !sameJSON(last.Body, `{"type":"ping"}`) {
			t.Errorf("sent %s", last.Body)
		}
	})
	t.Run("--data that is not JSON fails before any request", func(t *testing.T) {
		before := len(f.requests())
		if r := f.cli("", "events", "send", "--type", "ping", "--data", "{"); r.code != 1 ||
			!strings.Contains(r.stderr, "--data is not JSON") || len(f.requests()) != before {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
	})
	t.Run("--type is required", func(t *testing.T) {
		if r := f.cli("", "events", "send"); r.code != 2 || !strings.Contains(r.stderr, `"type" not set`) {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
	})
}

func TestExecutionCommands(t *testing.T) {
	f := newFakeAPI(t)
	for _, action := range []string{"cancel", "terminate"} {
		f.on("POST /api/v1/executions/x1/"+action, 202, map[string]any{"id": "x1", "status": "running"})
	}
	f.on("POST /api/v1/executions/x1/retry", 201, map[string]any{"id": "x2", "status": "pending"})
	f.on("POST /api/v1/executions/x1/signal/approve", 202, map[string]any{"signalled": true})
	f.on("GET /api/v1/executions/x1", 200, map[string]any{"id": "x1", "workflow_id": "w1", "workflow_name": "fulfil",
		"version": 2, "status": "failed", "priority": "high", "triggered_by": "rule", "error": "step charge failed",
		"temporal_workflow_id": "wf-x1", "temporal_run_id": "run-1",
		"steps": []any{
			map[string]any{"id": "total", "type": "data_transform", "status": "completed", "attempts": 1, "output": map[string]any{"n": 2},
				"started_at": "2026-01-02T03:04:05Z", "finished_at": "2026-01-02T03:04:05.250Z"},
			map[string]any{"id": "charge", "type": "http_request", "status": "failed", "attempts": 3, "error": "502 Bad Gateway"},
			map[string]any{"id": "approve", "type": "wait_for_signal", "status": "running", "waiting_for": "approve"}}})

	for _, tc := range []struct {
		args       []string
		path, body string
		out        string
	}{
		{[]string{"executions", "cancel", "x1"}, "/api/v1/executions/x1/cancel", "", "execution x1: cancel requested\n"},
		{[]string{"executions", "terminate", "x1"}, "/api/v1/executions/x1/terminate", "", "execution x1: terminate requested\n"},
		{[]string{"executions", "retry", "x1"}, "/api/v1/executions/x1/retry", "", "execution x2 started (retry of x1)\n"},
		{[]string{"executions", "signal", "x1", "approve", "--payload", `{"ok": true}`}, "/api/v1/executions/x1/signal/approve",
			`{"ok":true}`, "signal approve sent to execution x1\n"},
		{[]string{"executions", "signal", "x1", "approve"}, "/api/v1/executions/x1/signal/approve", "", "signal approve sent to execution x1\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := f.cli("", tc.args...)
			last := f.last(t)
			if r.code != 0 || r.stdout != tc.out {
				t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
			}
			if last.Method != "POST" || last.Path != tc.path || (tc.body == "" && len(last.Body) != 0) ||
				(tc.body != "" && !sameJSON(last.Body, tc.body)) {
				t.Errorf("sent %s %s %q", last.Method, last.Path, last.Body)
			}
		})
	}
	t.Run("a signal payload that is not JSON fails before any request", func(t *testing.T) {
		before := len(f.requests())
		if r := f.cli("", "executions", "signal", "x1", "approve", "--payload", "yes"); r.code != 1 ||
			!strings.Contains(r.stderr, "--payload must be JSON") || len(f.requests()) != before {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
	})
	t.Run("show prints the execution and each step", func(t *testing.T) {
		r := f.cli("", "executions", "show", "x1")
		for _, want := range []string{"execution x1: failed\n", `workflow   w1 "fulfil" version 2, priority high, triggered by rule`,
			"temporal   wf-x1 (run run-1)\n", "error      step charge failed\n", `{"n":2}`, "250ms", "502 Bad Gateway",
			"waiting for signal approve"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("show lacks %q:\n%s", want, r.stdout)
			}
		}
		if r.code != 0 {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
	})
}

func TestWorkflowsExecute(t *testing.T) {
	f := newFakeAPI(t)
	status := "completed"
	f.on("POST /api/v1/workflows/w1/execute", 202, map[string]any{"id": "x1", "status": "pending",
		"temporal_workflow_id": "wf-x1", "temporal_run_id": "run-1", "temporal_url": "http://ui.example/x1"})
	f.routes["GET /api/v1/executions/x1"] = func(*http.Request, []byte) (int, any) {
		e := map[string]any{"id": "x1", "status": status, "started_at": "2026-01-02T03:04:05Z", "finished_at": "2026-01-02T03:04:06.5Z",
			"steps": []any{map[string]any{"id": "total", "type": "data_transform", "status": "completed", "attempts": 1}}}
		if status == "failed" {
			e["error"] = "boom"
		}
		return 200, e
	}
	r := f.cli("", "workflows", "execute", "w1", "--input", `{"order_id": "A"}`, "--priority", "high", "--idempotency-key", "k-1")
	if r.code != 0 || r.stdout != "execution x1 started (temporal workflow wf-x1, run run-1)\nhttp://ui.example/x1\n" {
		t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	if last := f.last(t); last.Path != "/api/v1/workflows/w1/execute" || !sameJSON(last.Body, `{"input_data":{"order_id":"A"},"priority":"high"}`) ||
		last.Header.Get("Idempotency-Key") != "k-1" {
		t.Errorf("sent %s %s (key %q)", last.Path, last.Body, last.Header.Get("Idempotency-Key"))
	}
	t.Run("--input must be a JSON object", func(t *testing.T) {
		before := len(f.requests())
		if r := f.cli("", "workflows", "execute", "w1", "--input", "[1]"); r.code != 1 ||
			!strings.Contains(r.stderr, "--input must be a JSON object") || len(f.requests()) != before {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
	})
	t.Run("--wait follows to completion", func(t *testing.T) {
		status = "completed"
		r := f.cli("", "workflows", "execute", "w1", "--wait")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "execution x1 started\n") || !strings.Contains(r.stdout, "step total") ||
			!strings.HasSuffix(r.stdout, "execution x1 completed in 1.5s\n") {
			t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("--wait on a failed execution exits 1", func(t *testing.T) {
		status = "failed"
		r := f.cli("", "-o", "json", "workflows", "execute", "w1", "--wait")
		var e struct{ Error struct{ Code string } }
		if r.code != 1 || !strings.Contains(r.stdout, "execution x1 failed in 1.5s\nerror: boom\n") ||
			json.Unmarshal([]byte(r.stderr), &e) != nil || e.Error.Code != "execution_not_completed" {
			t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
		}
	})
}

func TestWebhookCommands(t *testing.T) {
	f := newFakeAPI(t)
	f.on("POST /api/v1/webhooks/endpoints", 201, map[string]any{"id": "ep1", "enabled": true})
	f.on("GET /api/v1/webhooks/endpoints/ep1/secret", 200, map[string]any{"key": "whsec_one"})
	f.on("POST /api/v1/webhooks/endpoints/ep1/secret/rotate", 200, map[string]any{"key": "whsec_two"})
	f.routes["PATCH /api/v1/webhooks/endpoints/ep1"] = func(_ *http.Request, body []byte) (int, any) {
		var in struct{ Enabled bool }
		_ = json.Unmarshal(body, &in)
		return 200, map[string]any{"id": "ep1", "enabled": in.Enabled}
	}
	f.on("DELETE /api/v1/webhooks/endpoints/ep1", 204, nil)
	f.on("POST /api/v1/webhooks/endpoints/ep1/recover", 202, map[string]any{"recovered": 3})
	f.on("POST /api/v1/webhooks/deliver", 202, map[string]any{"message_id": "m1", "duplicate": true,
		"deliveries": []any{map[string]any{"id": "d1", "endpoint_id": "ep1"}, map[string]any{"id": "d2", "endpoint_id": "ep2"}}})
	f.on("POST /api/v1/webhooks/deliveries/d1/retry", 202, map[string]any{"id": "d1", "status": "pending"})

	t.Run("endpoints create sends the flags and prints the secret", func(t *testing.T) {
		r := f.cli("", "webhooks", "endpoints", "create", "--name", "billing", "--url", "https://r.example/hook",
			"--events", "order.*,user.created", "--header", "X-Team=ops", "--rate-limit", "5", "--ordered",
			"--max-attempts", "3", "--retry-schedule", "5s,1m", "--timeout", "10", "--description", "the billing service")
		if r.code != 0 || r.stdout != "endpoint ep1\nsecret whsec_one\n" {
			t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
		}
		seen := f.requests()
		if len(seen) < 2 {
			t.Fatalf("%d requests", len(seen))
		}
		create, secret := seen[len(seen)-2], seen[len(seen)-1]
		if create.Method != "POST" || !sameJSON(create.Body, `{"name":"billing","url":"https://r.example/hook","events":["order.*","user.created"],`+
			`"description":"the billing service","headers":{"X-Team":"ops"},"rate_limit_per_second":5,"ordered":true,"max_attempts":3,`+
			`"retry_schedule":["5s","1m"],"timeout_seconds":10}`) {
			t.Errorf("create sent %s", create.Body)
		}
		if secret.Method != "GET" || secret.Path != "/api/v1/webhooks/endpoints/ep1/secret" {
			t.Errorf("then %s %s", secret.Method, secret.Path)
		}
	})
	t.Run("endpoints create needs --name and --url", func(t *testing.T) {
		if r := f.cli("", "webhooks", "endpoints", "create", "--name", "x"); r.code != 2 || !strings.Contains(r.stderr, `"url" not set`) {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
	})
	for _, tc := range []struct {
		args         []string
		method, path string
		body, out    string
	}{
		{[]string{"webhooks", "endpoints", "secret", "ep1"}, "GET", "/api/v1/webhooks/endpoints/ep1/secret", "", "whsec_one\n"},
		{[]string{"webhooks", "endpoints", "secret", "ep1", "--rotate"}, "POST", "/api/v1/webhooks/endpoints/ep1/secret/rotate", "", "whsec_two\n"},
		{[]string{"webhooks", "endpoints", "disable", "ep1"}, "PATCH", "/api/v1/webhooks/endpoints/ep1", `{"enabled":false}`, "endpoint ep1 enabled=false\n"},
		{[]string{"webhooks", "endpoints", "enable", "ep1"}, "PATCH", "/api/v1/webhooks/endpoints/ep1", `{"enabled":true}`, "endpoint ep1 enabled=true\n"},
		{[]string{"webhooks", "endpoints", "delete", "ep1"}, "DELETE", "/api/v1/webhooks/endpoints/ep1", "", "endpoint ep1 deleted\n"},
		{[]string{"webhooks", "deliver", "--event-type", "order.paid", "--payload", `{"id": 7}`, "--idempotency-key", "k-7",
			"--endpoint", "ep1,ep2"}, "POST", "/api/v1/webhooks/deliver",
			`{"endpoint_ids":["ep1","ep2"],"event_type":"order.paid","idempotency_key":"k-7","payload":{"id":7}}`,
			"message m1 to 2 endpoints (duplicate of an earlier request)\n  delivery d1 → endpoint ep1\n  delivery d2 → endpoint ep2\n"},
		{[]string{"webhooks", "deliver", "--event-type", "order.paid"}, "POST", "/api/v1/webhooks/deliver",
			`{"event_type":"order.paid","payload":{}}`, "message m1 to 2 endpoints"},
		{[]string{"webhooks", "deliveries", "retry", "d1"}, "POST", "/api/v1/webhooks/deliveries/d1/retry", "", "delivery d1 is pending again\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := f.cli("", tc.args...)
			last := f.last(t)
			if r.code != 0 || !strings.HasPrefix(r.stdout, tc.out) {
				t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
			}
			if last.Method != tc.method || last.Path != tc.path || (tc.body == "" && len(last.Body) != 0) ||
				(tc.body != "" && !sameJSON(last.Body, tc.body)) {
				t.Errorf("sent %s %s %q", last.Method, last.Path, last.Body)
			}
		})
	}
	t.Run("endpoints recover asks from --since ago", func(t *testing.T) {
		before := time.Now()
		r := f.cli("", "webhooks", "endpoints", "recover", "ep1", "--since", "2h")
		if r.code != 0 || r.stdout != "3 deliveries pending again\n" {
			t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
		}
		last := f.last(t)
		since, err := time.Parse(time.RFC3339, jsonBody(t, last)["since"].(string))
		if last.Path != "/api/v1/webhooks/endpoints/ep1/recover" || err != nil ||
			since.After(before.Add(-2*time.Hour)) || since.Before(before.Add(-2*time.Hour-time.Minute)) {
			t.Errorf("sent %s %s (%v)", last.Path, last.Body, err)
		}
	})
	t.Run("deliver refuses a payload that is not JSON", func(t *testing.T) {
		before := len(f.requests())
		if r := f.cli("", "webhooks", "deliver", "--event-type", "x", "--payload", "{"); r.code != 1 ||
			!strings.Contains(r.stderr, "--payload is not valid JSON") || len(f.requests()) != before {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
	})
	t.Run("deliver reads the payload from @file", func(t *testing.T) {
		file := writeFile(t, "payload.json", `{"from": "file"}`)
		if r := f.cli("", "webhooks", "deliver", "--event-type", "x", "--payload", "@"+file); r.code != 0 {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
		if last := f.last(t); !sameJSON(last.Body, `{"event_type":"x","payload":{"from":"file"}}`) {
			t.Errorf("sent %s", last.Body)
		}
	})
}

func TestNotificationCommands(t *testing.T) {
	f := newFakeAPI(t)
	answer := map[string]any{"id": "n1", "status": "queued", "deliveries": []any{map[string]any{"id": "d1"}, map[string]any{"id": "d2"}}}
	f.on("POST /api/v1/notifications/email", 202, answer)
	f.on("POST /api/v1/notifications/sms", 202, answer)
	t.Run("send-email", func(t *testing.T) {
		r := f.cli("", "notifications", "send-email", "--to", "a@example.com,b@example.com", "--subject", "Hi", "--body", "Hello",
			"--priority", "high", "--send-at", "2030-01-02T03:04:05Z", "--idempotency-key", "k-1")
		if r.code != 0 || r.stdout != "n1 queued to 2 recipient(s)\n" {
			t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
		}
		last := f.last(t)
		body := jsonBody(t, last)
		if to := body["to"].([]any); len(to) != 2 || to[1] != "b@example.com" || body["subject"] != "Hi" || body["body"] != "Hello" ||
			body["priority"] != "high" || body["send_at"] != "2030-01-02T03:04:05Z" || last.Header.Get("Idempotency-Key") != "k-1" {
			t.Errorf("sent %s (key %q)", last.Body, last.Header.Get("Idempotency-Key"))
		}
	})
	t.Run("send-email with a template and @file data", func(t *testing.T) {
		data := writeFile(t, "data.json", `{"user_name": "Ann"}`)
		if r := f.cli("", "notifications", "send-email", "--to", "a@example.com", "--template", "welcome_email", "--data", "@"+data); r.code != 0 {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
		last := f.last(t)
		body := jsonBody(t, last)
		if body["template_id"] != "welcome_email" || body["template_data"].(map[string]any)["user_name"] != "Ann" ||
			last.Header.Get("Idempotency-Key") != "" {
			t.Errorf("sent %s", last.Body)
		}
	})
	t.Run("send-sms", func(t *testing.T) {
		if r := f.cli("", "notifications", "send-sms", "--to", "+14155550100", "--message", "code 1234"); r.code != 0 {
			t.Fatalf("exit %d %s", r.code, r.stderr)
		}
		last := f.last(t)
		if body := jsonBody(t, last); last.Path != "/api/v1/notifications/sms" || body["message"] != "code 1234" ||
			body["to"].([]any)[0] != "+14155550100" {
			t.Errorf("sent %s %s", last.Path, last.Body)
		}
	})
	t.Run("--data must be a JSON object", func(t *testing.T) {
		before := len(f.requests())
		if r := f.cli("", "notifications", "send-sms", "--to", "+14155550100", "--data", "[1]"); r.code != 1 ||
			!strings.Contains(r.stderr, "--data must be a JSON object") || len(f.requests()) != before {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
	})
}

func TestTemplatesAndWorkflowsFromFiles(t *testing.T) {
	f := newFakeAPI(t)
	f.on("GET /api/v1/notifications/templates", 200, map[string]any{"items": []any{map[string]any{
		"id": "order_shipped", "channel": "email", "version": 2, "subject": "Shipped", "description": "after dispatch"}}})
	f.on("POST /api/v1/workflows", 201, map[string]any{"id": "w1", "name": "fulfil", "version": 1, "trigger_type": "manual"})
	f.on("PUT /api/v1/workflows/w1", 200, map[string]any{"id": "w1", "name": "fulfil", "version": 2, "trigger_type": "manual"})
	f.on("DELETE /api/v1/workflows/w1", 204, nil)
	def := `{"name": "fulfil", "trigger_type": "manual", "steps": []}`
	file := writeFile(t, "workflow.json", def)

	t.Run("templates list", func(t *testing.T) {
		r := f.cli("", "templates", "list")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 2 || strings.Join(strings.Fields(lines[1])[:5], " ") != "order_shipped email 2 Shipped after" {
			t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
		}
	})
	for _, tc := range []struct {
		args         []string
		method, path string
		out          string
	}{
		{[]string{"workflows", "create", "-f", file}, "POST", "/api/v1/workflows", "workflow w1 \"fulfil\" version 1 (manual)\n"},
		{[]string{"workflows", "create", "-f", file, "--update", "w1"}, "PUT", "/api/v1/workflows/w1", "workflow w1 \"fulfil\" version 2 (manual)\n"},
	} {
		t.Run(strings.Join(tc.args[:2], " ")+" "+tc.method, func(t *testing.T) {
			r := f.cli("", tc.args...)
			last := f.last(t)
			if r.code != 0 || r.stdout != tc.out {
				t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
			}
			if last.Method != tc.method || last.Path != tc.path || !sameJSON(last.Body, def) {
				t.Errorf("sent %s %s %s", last.Method, last.Path, last.Body)
			}
		})
	}
	t.Run("workflows delete", func(t *testing.T) {
		if r := f.cli("", "workflows", "delete", "w1"); r.code != 0 || r.stdout != "workflow w1 deleted\n" || f.last(t).Method != "DELETE" {
			t.Errorf("exit %d %q %s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("templates create needs -f", func(t *testing.T) {
		if r := f.cli("", "templates", "create"); r.code != 2 || !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("exit %d %s", r.code, r.stderr)
		}
	})
}

// Failures exit 1 with the API's error; -o json gives it as {"error": {...}} on stderr, and
// nothing on stdout.
func TestFailureOutput(t *testing.T) {
	f := newFakeAPI(t)
	f.routes["GET /api/v1/workflows/w1"] = func(*http.Request, []byte) (int, any) { return 502, "upstream down" }
	f.on("GET /health/detailed", 503, map[string]any{"status": "degraded", "version": "v1",
		"dependencies": map[string]any{"postgres": map[string]any{"status": "up", "latency_ms": 1.5},
			"temporal": map[string]any{"status": "down", "error": "dial refused"}}})
	f.on("POST /api/v1/executions/x1/cancel", 409, map[string]any{"error": map[string]any{
		"code": "conflict", "message": "the execution has finished", "request_id": "req-7"}})

	t.Run("an error that is not the API's shape", func(t *testing.T) {
		r := f.cli("", "workflows", "show", "w1")
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "GET /api/v1/workflows/w1: 502") ||
			!strings.Contains(r.stderr, "upstream down") {
			t.Errorf("exit %d %q %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("the API's error as text", func(t *testing.T) {
		r := f.cli("", "executions", "cancel", "x1")
		if r.code != 1 || r.stdout != "" || r.stderr != "error: 409 conflict: the execution has finished\n  (request id req-7)\n" {
			t.Errorf("exit %d %q %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("the API's error as JSON", func(t *testing.T) {
		r := f.cli("", "-o", "json", "executions", "cancel", "x1")
		var e struct {
			Error struct {
				Code, Message string
				Status        int
				RequestID     string `json:"request_id"`
			}
		}
		if r.code != 1 || r.stdout != "" || json.Unmarshal([]byte(r.stderr), &e) != nil || e.Error.Code != "conflict" ||
			e.Error.Status != 409 || e.Error.RequestID != "req-7" || e.Error.Message != "the execution has finished" {
			t.Errorf("exit %d %q %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("health prints every dependency and exits 1 when one is down", func(t *testing.T) {
		r := f.cli("", "health")
		if r.code != 1 || !strings.HasPrefix(r.stdout, "degraded (version v1)\n") || !strings.Contains(r.stdout, "dial refused") ||
			strings.Index(r.stdout, "postgres") > strings.Index(r.stdout, "temporal") || !strings.Contains(r.stderr, "dependency down") {
			t.Errorf("exit %d %q %q", r.code, r.stdout, r.stderr)
		}
		r = f.cli("", "-o", "json", "health")
		var e struct{ Error struct{ Code string } }
		if r.code != 1 || !json.Valid([]byte(r.stdout)) || json.Unmarshal([]byte(r.stderr), &e) != nil || e.Error.Code != "unhealthy" {
			t.Errorf("json: exit %d %q %q", r.code, r.stdout, r.stderr)
		}
	})
}
