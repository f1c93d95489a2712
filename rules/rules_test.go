package rules

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
)

// nopNotifier answers rule actions' sends (the step method is not called here).
type nopNotifier struct{ ports.Notifier }

func (nopNotifier) SendEmail(context.Context, ports.EmailRequest) (string, error) { return "n1", nil }
func (nopNotifier) SendSMS(context.Context, ports.SMSRequest) (string, error)     { return "n2", nil }

func parse(t *testing.T, src string) Definition {
	t.Helper()
	var d Definition
	if err := json.Unmarshal([]byte(src), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func event(t *testing.T, typ, data string) store.Event {
	t.Helper()
	return store.Event{ID: "evt-1", Type: typ, Source: "test", Data: store.JSON(data), CorrelationID: "evt-1",
		OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func scope(t *testing.T, e store.Event) Scope {
	t.Helper()
	s, err := NewScope(e)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSeedRuleIsAcceptedAndRendered(t *testing.T) {
	eng := templating.New(templating.Options{})
	def := parse(t, seedRule(t))
	r, problems := Compile("r1", 1, def, CompileOptions{Templates: eng, Targets: Targets{Notifications: nopNotifier{}}, CheckTargets: true})
	if len(problems) > 0 {
		t.Fatalf("the seed rule is refused: %v", problems)
	}
	verified := scope(t, event(t, "user.created", `{"user": {"email": "john@example.com", "email_verified": true}}`))
	if ev := r.Evaluate(context.Background(), nil, verified); !ev.Matched || ev.Conditions[0].Actual != true {
		t.Fatalf("verified user: %+v", ev)
	}
	act, err := r.RenderAction(context.Background(), eng, 0, verified)
	if err != nil {
		t.Fatal(err)
	}
	if act.NotificationType != "email" || act.TemplateID != "welcome_email" || len(act.To) != 1 || act.To[0] != "john@example.com" ||
		act.IdempotencyKey != "automation:evt-1:r1:0" || act.TemplateData["user"] == nil {
		t.Errorf("rendered %+v", act)
	}
	unverified := scope(t, event(t, "user.created", `{"user": {"email": "jane@example.com", "email_verified": false}}`))
	ev := r.Evaluate(context.Background(), nil, unverified)
	if ev.Matched || !strings.Contains(ev.Reason, "conditions[0]: user.email_verified equals true, actual false") {
		t.Errorf("unverified user: %+v", ev)
	}
	// Without a notification module the same rule is refused, naming the action.
	_, problems = Compile("r1", 1, def, CompileOptions{Templates: eng, CheckTargets: true})
	if len(problems) != 1 || problems[0].Field != "actions[0].type" || !strings.Contains(problems[0].Message, "not available") {
		t.Errorf("no notifier: %v", problems)
	}
}

func TestFieldCheckOperators(t *testing.T) {
	data := `{"s": "hello world", "n": 42, "f": 2.5, "b": true, "null": null, "list": ["a", "b", 3],
		"obj": {"k": 1}, "empty": "", "el": [], "t": "2026-05-01T10:00:00Z", "deep": {"items": [{"sku": "X1"}]}}`
	sc := scope(t, event(t, "x", data))
	cases := []struct {
		field, op, value string
		want             bool
	}{
		{"s", "equals", `"hello world"`, true},
		{"n", "equals", `42.0`, true},
		{"n", "equals", `"42"`, false},
		{"null", "equals", `null`, true},
		{"missing", "equals", `null`, false},
		{"n", "not_equals", `41`, true},
		{"missing", "not_equals", `1`, true},
		{"s", "contains", `"lo wo"`, true},
		{"list", "contains", `3`, true},
		{"list", "contains", `"c"`, false},
		{"obj", "contains", `"k"`, true},
		{"s", "not_contains", `"bye"`, true},
		{"s", "starts_with", `"hell"`, true},
		{"s", "ends_with", `"world"`, true},
		{"n", "ends_with", `"2"`, false},
		{"n", "gt", `41`, true},
		{"n", "gte", `42`, true},
		{"f", "lt", `3`, true},
		{"f", "lte", `2.4`, false},
		{"t", "gt", `"2026-04-30T23:00:00+02:00"`, true},
		{"s", "lt", `"i"`, true},
		{"missing", "gt", `1`, false},
		{"s", "in", `["x", "hello world"]`, true},
		{"n", "in", `[1, 42]`, true},
		{"n", "not_in", `[1, 2]`, true},
		{"missing", "not_in", `[1]`, true},
		{"b", "exists", ``, true},
		{"null", "exists", ``, false},
		{"missing", "not_exists", ``, true},
		{"s", "matches", `"^hel+o\\s"`, true},
		{"n", "matches", `"4"`, false},
		{"empty", "is_empty", ``, true},
		{"el", "is_empty", ``, true},
		{"missing", "is_empty", ``, true},
		{"s", "is_empty", ``, false},
		{"list", "is_not_empty", ``, true},
		{"deep.items.0.sku", "equals", `"X1"`, true},
		{"deep.items.5.sku", "exists", ``, false},
	}
	for _, c := range cases {
		cond := Condition{Type: "field_check", Field: c.field, Operator: c.op}
		if c.value != "" {
			cond.Value = json.RawMessage(c.value)
		}
		var problems validation.Problems
		cc := compileCondition("conditions[0]", cond, 1, sandbox.Limits{}, &problems)
		if len(problems) > 0 {
			t.Errorf("%s %s %s: %v", c.field, c.op, c.value, problems)
			continue
		}
		if got := cc.eval(sc, nil); got.Matched != c.want {
			t.Errorf("%s %s %s: matched %v, want %v (%+v)", c.field, c.op, c.value, got.Matched, c.want, got)
		}
	}
	// Comparing a string with a number is reported, not silently false.
	var problems validation.Problems
	cc := compileCondition("c", Condition{Field: "s", Operator: "gt", Value: json.RawMessage(`1`)}, 1, sandbox.Limits{}, &problems)
	if r := cc.eval(sc, nil); r.Matched || !strings.Contains(r.Error, "cannot compare") {
		t.Errorf("string gt number: %+v", r)
	}
}

func TestGroupsAndExpressions(t *testing.T) {
	eng := templating.New(templating.Options{})
	def := parse(t, `{"name": "g", "trigger": {"type": "event", "event_type": "order.*"},
		"conditions": [
			{"any": [
				{"type": "field_check", "field": "order.total", "operator": "gte", "value": 100},
				{"type": "field_check", "field": "customer.vip", "operator": "equals", "value": true}
			]},
			{"not": {"type": "field_check", "field": "order.test", "operator": "equals", "value": true}},
			{"type": "expression", "expression": "len(order.items) > 1 && event.type == 'order.placed' && event.depth == 0"}
		],
		"actions": [{"type": "emit_event", "event_type": "order.flagged"}]}`)
	r, problems := Compile("r", 1, def, CompileOptions{Templates: eng})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	match := scope(t, event(t, "order.placed", `{"order": {"total": 20, "items": [1, 2]}, "customer": {"vip": true}}`))
	if ev := r.Evaluate(context.Background(), nil, match); !ev.Matched {
		t.Errorf("vip order: %+v", ev)
	}
	small := scope(t, event(t, "order.placed", `{"order": {"total": 20, "items": [1, 2]}, "customer": {"vip": false}}`))
	ev := r.Evaluate(context.Background(), nil, small)
	if ev.Matched || !strings.HasPrefix(ev.Reason, "condition conditions[0]: any group did not hold") ||
		len(ev.Conditions[0].Children) != 2 || ev.Conditions[0].Children[0].Actual != 20 {
		t.Errorf("small order: %+v", ev)
	}
	one := scope(t, event(t, "order.placed", `{"order": {"total": 200, "items": [1]}}`))
	ev = r.Evaluate(context.Background(), nil, one)
	if ev.Matched || ev.Conditions[2].Actual != false || !strings.Contains(ev.Reason, "conditions[2]: expression") {
		t.Errorf("one item: %+v", ev)
	}
	// An expression failing at run time is an error of that condition, not a panic.
	broken := scope(t, event(t, "order.placed", `{"order": {"total": 200, "items": 3}}`))
	if ev := r.Evaluate(context.Background(), nil, broken); ev.Matched || ev.Conditions[2].Error == "" {
		t.Errorf("bad data: %+v", ev.Conditions[2])
	}
}

func TestInvalidRulesNameEveryProblem(t *testing.T) {
	eng := templating.New(templating.Options{})
	def := parse(t, `{"name": "", "trigger": {"type": "event", "event_type": "user created", "cron": "* * * * *"},
		"conditions": [
			{"type": "field_check", "field": "a", "operator": "resembles", "value": 1},
			{"type": "expression", "expression": "user.age >"},
			{"type": "expression", "expression": "1 + 2"},
			{"type": "expression", "expression": "event.depth + 'x' == 'y'"},
			{"type": "field_check", "field": "a", "operator": "matches", "value": "([a-z"},
			{"type": "field_check", "field": "a", "operator": "in", "value": 3},
			{"all": []},
			{"field": "a", "operator": "exists", "value": 1}
		],
		"actions": [
			{"type": "notification", "to": "{{ user.email "},
			{"type": "teleport"},
			{"type": "workflow", "priority": "urgent", "template": "x"},
			{"type": "emit_event", "event_type": "x.*"}
		],
		"rate_limit": {"max_runs": 0, "window": "1h"},
		"dedup_window": "1h"}`)
	_, problems := Compile("r", 1, def, CompileOptions{Templates: eng})
	want := []string{
		"name", "trigger.event_type", "trigger.cron", "conditions[0].operator", "conditions[1].expression",
		"conditions[2].expression", "conditions[3].expression", "conditions[4].value", "conditions[5].value",
		"conditions[6].all", "conditions[7].value", "actions[0]", "actions[0].to", "actions[1].type",
		"actions[2].workflow_id", "actions[2].priority", "actions[2].template", "actions[3].event_type",
		"rate_limit.max_runs", "dedup_window",
	}
	got := map[string]bool{}
	for _, p := range problems {
		got[p.Field] = true
	}
	for _, f := range want {
		if !got[f] {
			t.Errorf("no problem reported at %s; got %v", f, problems)
		}
	}
	// Nesting and size limits.
	deep := `{"type": "field_check", "field": "a", "operator": "exists"}`
	for range MaxConditionDepth + 1 {
		deep = `{"not": ` + deep + `}`
	}
	_, problems = Compile("r", 1, parse(t, `{"name": "n", "trigger": {"type": "event", "event_type": "a"},
		"conditions": [`+deep+`], "actions": [{"type": "emit_event", "event_type": "b"}]}`), CompileOptions{})
	if len(problems) != 1 || !strings.Contains(problems[0].Message, "nested") {
		t.Errorf("deep nesting: %v", problems)
	}
}

func TestTriggers(t *testing.T) {
	for pattern, cases := range map[string]map[string]bool{
		"user.created": {"user.created": true, "user.created.x": false, "user": false},
		"user.*":       {"user.created": true, "user.profile.updated": true, "users.created": false},
		"*.failed":     {"workflow.failed": true, "notification.failed": true, "workflow.completed": false},
		"*":            {"anything": true},
		"a*c*e":        {"abcde": true, "ace": true, "acd": false},
	} {
		for typ, want := range cases {
			if got := MatchType(pattern, typ); got != want {
				t.Errorf("MatchType(%q, %q) = %v", pattern, typ, got)
			}
		}
	}
	gh := Trigger{Type: TriggerWebhook, Source: "github", EventType: "push"}
	if !MatchesTrigger(gh, "r", store.Event{Type: "push", Source: WebhookEventSource("github")}) ||
		MatchesTrigger(gh, "r", store.Event{Type: "push", Source: "api"}) ||
		MatchesTrigger(gh, "r", store.Event{Type: "issue", Source: WebhookEventSource("github")}) {
		t.Error("webhook trigger")
	}
	sched := Trigger{Type: TriggerSchedule, Cron: "@every 1m"}
	if !MatchesTrigger(sched, "r1", store.Event{Type: ScheduleEventType, Subject: "r1"}) ||
		MatchesTrigger(sched, "r2", store.Event{Type: ScheduleEventType, Subject: "r1"}) {
		t.Error("schedule trigger")
	}
	var problems validation.Problems
	checkTrigger(Trigger{Type: TriggerSchedule, Cron: "0 9 * * 1-5", Timezone: "Mars/Olympus"}, &problems)
	checkTrigger(Trigger{Type: TriggerSchedule, Cron: "every day"}, &problems)
	checkTrigger(Trigger{Type: TriggerWebhook}, &problems)
	if len(problems) != 3 {
		t.Errorf("trigger problems: %v", problems)
	}
}

func TestRenderActions(t *testing.T) {
	eng := templating.New(templating.Options{})
	def := parse(t, `{"name": "n", "trigger": {"type": "event", "event_type": "order.placed"}, "actions": [
		{"type": "workflow", "workflow_id": "wf-{{ order.kind }}", "input_data": {"order": "{{ order }}", "total": "{{ order.total * 2 }}"}, "priority": "high"},
		{"type": "notification", "notification_type": "sms", "to": ["{{ customer.phone }}"], "message": "Order {{ order.id }} placed"},
		{"type": "webhook", "event_type": "order.accepted"},
		{"type": "emit_event", "event_type": "order.{{ order.kind }}", "data": {"id": "{{ order.id }}", "from": "{{ event.type }}"}},
		{"type": "notification", "to": "{{ customer.email }}", "subject": "Hi", "body": "{{ missing_var }}"},
		{"type": "notification", "to": "{{ customer.phone }}", "subject": "Hi", "body": "b"}
	]}`)
	r, problems := Compile("r", 3, def, CompileOptions{Templates: eng})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	sc := scope(t, event(t, "order.placed", `{"order": {"id": "o-9", "kind": "retail", "total": 21}, "customer": {"phone": "+15551234567", "email": "c@example.com"}}`))
	render := func(i int) (RenderedAction, error) { return r.RenderAction(context.Background(), eng, i, sc) }
	wf, err := render(0)
	if err != nil || wf.WorkflowID != "wf-retail" || wf.Priority != "high" || wf.InputData["total"] != json.Number("42") ||
		wf.InputData["order"].(map[string]any)["id"] != "o-9" {
		t.Errorf("workflow: %+v %v", wf, err)
	}
	sms, err := render(1)
	if err != nil || sms.To[0] != "+15551234567" || sms.Message != "Order o-9 placed" {
		t.Errorf("sms: %+v %v", sms, err)
	}
	hook, err := render(2)
	if err != nil || hook.EventType != "order.accepted" || hook.Payload["order"] == nil || string(hook.PayloadJSON()) == "{}" {
		t.Errorf("webhook: %+v %v", hook, err)
	}
	emit, err := render(3)
	if err != nil || emit.EventType != "order.retail" || emit.Payload["from"] != "order.placed" {
		t.Errorf("emit: %+v %v", emit, err)
	}
	if _, err := render(4); err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "actions[4].body") ||
		!strings.Contains(err.Error(), "missing_var") {
		t.Errorf("undefined variable: %v", err)
	}
	if _, err := render(5); err == nil || !strings.Contains(err.Error(), "not an email address") {
		t.Errorf("phone as email: %v", err)
	}
}

func TestDurationsAndPermanence(t *testing.T) {
	for in, want := range map[string]time.Duration{`30`: 30 * time.Second, `"5m"`: 5 * time.Minute, `"1d"`: 24 * time.Hour,
		`"1h30m"`: 90 * time.Minute} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.D() != want {
			t.Errorf("%s: %v %v", in, d.D(), err)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error("a bad duration parsed")
	}
	for d, want := range map[time.Duration]string{48 * time.Hour: "2d", 2 * time.Hour: "2h", 90 * time.Second: "90s", 1500 * time.Millisecond: "1.5s"} {
		if got := Duration(d).String(); got != want {
			t.Errorf("%v: %s", d, got)
		}
	}
	if !IsPermanent(Permanentf("x")) || !IsPermanent(store.ErrNotFound) || IsPermanent(errors.New("timeout")) ||
		!IsPermanent(validation.Problems{{Field: "to"}}) {
		t.Error("IsPermanent")
	}
}

// seedRule is the seed's "Welcome Email Automation" body, exactly as written there (the fixture
// the api and e2e tests read too).
func seedRule(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/seed_welcome_rule.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
