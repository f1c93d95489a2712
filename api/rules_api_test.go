package api

import (
	"os"
	"strings"
	"testing"
)

// These tests cover the rules and events routes that need no Temporal (the test server's
// Temporal client points nowhere); the end-to-end tests cover the rest.

func problemFields(t *testing.T, r response) map[string]string {
	t.Helper()
	if r.StatusCode != 422 || r.errorCode(t) != "validation_failed" {
		t.Fatalf("want 422 validation_failed, got %d %s", r.StatusCode, r.body)
	}
	out := map[string]string{}
	for _, p := range r.json(t)["error"].(map[string]any)["details"].([]any) {
		p := p.(map[string]any)
		out[p["field"].(string)] = p["message"].(string)
	}
	return out
}

func TestRuleValidationAndUnavailableModules(t *testing.T) {
	s := newTestServer(t, nil)
	post := func(path, body string) response {
		return s.do(t, "POST", path, strings.NewReader(body), "X-API-Key", testKey, "Content-Type", "application/json")
	}
	// No module is wired in this server: the seed rule's notification action is not available.
	seed, err := os.ReadFile("../rules/testdata/seed_welcome_rule.json")
	if err != nil {
		t.Fatal(err)
	}
	p := problemFields(t, post("/api/v1/automation/rules", string(seed)))
	if len(p) != 1 || !strings.Contains(p["actions[0].type"], "not available") {
		t.Errorf("seed rule without a notifier: %v", p)
	}
	p = problemFields(t, post("/api/v1/automation/rules", `{"name": "x", "trigger": {"type": "event", "event_type": "a", "color": "red"},
		"conditions": [{"any": [{"field": "a", "operator": "gt", "value": true, "nope": 1}]}],
		"actions": [{"type": "emit_event", "event_type": "b", "to": "x"}]}`))
	for _, f := range []string{"trigger.color", "conditions[0].any[0].nope", "conditions[0].any[0].value", "actions[0].to"} {
		if p[f] == "" {
			t.Errorf("no problem at %s: %v", f, p)
		}
	}
	p = problemFields(t, post("/api/v1/automation/rules", `{"name": "x", "trigger": {"type": "event", "event_type": "a"},
		"actions": [{"type": "emit_event", "event_type": "b"}], "priority": "high"}`))
	if p["priority"] == "" {
		t.Errorf("wrong type: %v", p)
	}
	if r := post("/api/v1/automation/rules", `[1]`); r.StatusCode != 422 {
		t.Errorf("array body: %d", r.StatusCode)
	}
	// emit_event needs no module: the rule is stored (no Temporal call for event triggers).
	r := post("/api/v1/automation/rules", `{"name": "fwd", "trigger": {"type": "event", "event_type": "a.*"},
		"actions": [{"type": "emit_event", "event_type": "b"}], "cooldown": 90}`)
	if r.StatusCode != 201 || r.json(t)["cooldown"] != "90s" || r.json(t)["version"] != float64(1) {
		t.Fatalf("create: %d %s", r.StatusCode, r.body)
	}
	id := r.json(t)["id"].(string)
	// A dry run on the stored rule; the event type defaults to nothing (wildcard trigger).
	d := post("/api/v1/automation/rules/"+id+"/test", `{"event": {"type": "a.b", "data": {"n": 1}, "depth": 9}}`).json(t)
	if d["trigger_matched"] != true || d["matched"] != true || d["would_run"] != false ||
		!strings.Contains(d["reason"].(string), "causation depth 9") {
		t.Errorf("dry run: %v", d)
	}
	if r := post("/api/v1/automation/rules/nope/test", `{}`); r.StatusCode != 404 {
		t.Errorf("dry run of an unknown rule: %d", r.StatusCode)
	}
	p = problemFields(t, post("/api/v1/automation/test", `{"rule": {"name": "", "trigger": {"type": "event", "event_type": "a"},
		"actions": [{"type": "emit_event", "event_type": "b"}]}, "event": {"type": "a"}}`))
	if p["rule.name"] == "" {
		t.Errorf("inline rule problems: %v", p)
	}
}

func TestEventIngest(t *testing.T) {
	s := newTestServer(t, nil)
	post := func(body string) response {
		return s.do(t, "POST", "/api/v1/events", strings.NewReader(body), "X-API-Key", testKey, "Content-Type", "application/json")
	}
	p := problemFields(t, post(`{"id": "bad id!", "type": "", "data": "x", "specversion": "0.3", "time": "yesterday",
		"datacontenttype": "text/plain", "source": "webhook/github"}`))
	for _, f := range []string{"id", "type", "data", "specversion", "time", "datacontenttype", "source"} {
		if p[f] == "" {
			t.Errorf("no problem at %s: %v", f, p)
		}
	}
	r := post(`{"specversion": "1.0", "id": "e-1", "type": "user.created", "source": "signup", "time": "2026-01-02T03:04:05+01:00",
		"datacontenttype": "application/json", "data": {"user": {"email": "a@example.com"}}}`)
	if r.StatusCode != 202 || r.json(t)["duplicate"] != false {
		t.Fatalf("post: %d %s", r.StatusCode, r.body)
	}
	if r := post(`{"id": "e-1", "type": "user.created"}`); r.StatusCode != 202 || r.json(t)["duplicate"] != true {
		t.Errorf("repeated id: %d %s", r.StatusCode, r.body)
	}
	e := s.do(t, "GET", "/api/v1/events/e-1", nil, "X-API-Key", testKey).json(t)
	if e["occurred_at"] != "2026-01-02T02:04:05Z" || e["source"] != "signup" || e["evaluation"] != nil ||
		e["data"].(map[string]any)["user"] == nil {
		t.Errorf("event: %v", e)
	}
	list := s.do(t, "GET", "/api/v1/events?type=user.created&limit=1", nil, "X-API-Key", testKey)
	if items := list.json(t)["items"].([]any); list.StatusCode != 200 || len(items) != 1 {
		t.Errorf("list: %d %s", list.StatusCode, list.body)
	}
	if r := s.do(t, "GET", "/api/v1/events?cursor=bm9wZQ", nil, "X-API-Key", testKey); r.StatusCode != 422 {
		t.Errorf("bad cursor: %d", r.StatusCode)
	}
}
