package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/app"
	"github.com/pyairtable/automation-domain/internal/smtptest"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
)

// TestAutomationRules drives the rules engine over HTTP on the embedded stack with the real
// modules it calls: the seed's rule delivering its email to a real SMTP server, validation, dry
// runs, priorities, stop_processing, loop prevention (within the rules engine, and across the
// rule → workflow → workflow.completed hop), limits, duplicates, rule edits, workflow actions
// running real definitions, every trigger type, history and the starter CLI. The webhook module
// is not merged yet: its action type is refused.
func TestAutomationRules(t *testing.T) {
	mail := smtptest.Start(t)
	var deps *app.Deps
	s := startEmbeddedWired(t, testConfig(t, t.TempDir(), map[string]string{
		"RATE_LIMIT_PER_SECOND": "1000", "RATE_LIMIT_BURST": "1000",
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"SMTP_FROM": "Automation <noreply@example.com>",
	}), func(d *app.Deps) { deps = d }) // deps publishes an inbound webhook's event below
	c := s.client(t)

	// The seed's rule, exactly as written, is accepted; most capabilities below act on it.
	welcome := createRule(t, c, readFile(t, "../rules/testdata/seed_welcome_rule.json"))

	t.Run("seed rule is stored as written", func(t *testing.T) {
		c := s.client(t)
		got := c.get("/api/v1/automation/rules/" + welcome).JSON(t)
		if got["name"] != "Welcome Email Automation" || got["enabled"] != true || got["version"] != float64(1) ||
			got["trigger"].(map[string]any)["event_type"] != "user.created" {
			t.Errorf("stored seed rule: %v", got)
		}
	})
	t.Run("validation reports every problem with its path", func(t *testing.T) {
		c := s.client(t)
		r := c.post("/api/v1/automation/rules", `{"name": "bad", "trigger": {"type": "event", "event_type": "a"},
			"condtions": [], "conditions": [{"type": "field_check", "field": "x", "operator": "resembles", "value": 1},
			{"type": "expression", "expression": "x >"}], "actions": [{"type": "webhook", "event_type": "out"},
			{"type": "notification", "to": "{{ user.email "}], "cooldown": "soon"}`)
		if r.Status != 422 {
			t.Fatalf("invalid rule: %d %s", r.Status, r.Body)
		}
		problems := map[string]string{}
		for _, p := range r.JSON(t)["error"].(map[string]any)["details"].([]any) {
			p := p.(map[string]any)
			problems[p["field"].(string)] = p["message"].(string)
		}
		for _, field := range []string{"condtions", "cooldown"} {
			if problems[field] == "" {
				t.Errorf("no problem at %s: %v", field, problems)
			}
		}
		r = c.post("/api/v1/automation/rules", `{"name": "bad", "trigger": {"type": "event", "event_type": "a"},
			"conditions": [{"type": "field_check", "field": "x", "operator": "resembles", "value": 1},
			{"type": "expression", "expression": "x >"}], "actions": [{"type": "webhook"},
			{"type": "notification", "to": "{{ user.email "}]}`)
		problems = map[string]string{}
		for _, p := range r.JSON(t)["error"].(map[string]any)["details"].([]any) {
			p := p.(map[string]any)
			problems[p["field"].(string)] = p["message"].(string)
		}
		if r.Status != 422 || problems["conditions[0].operator"] == "" || problems["conditions[1].expression"] == "" ||
			problems["actions[0].event_type"] == "" || problems["actions[1].to"] == "" {
			t.Errorf("invalid rule: %d %v", r.Status, problems)
		}
	})
	t.Run("malformed JSON is refused", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/automation/rules", `{"name": `); r.Status != 400 {
			t.Errorf("malformed JSON: %d", r.Status)
		}
	})
	t.Run("unknown rule is not found", func(t *testing.T) {
		c := s.client(t)
		if r := c.get("/api/v1/automation/rules/nope"); r.Status != 404 {
			t.Errorf("unknown rule: %d", r.Status)
		}
	})
	t.Run("dry run shows condition values and the rendered email", func(t *testing.T) {
		c := s.client(t)
		var dry struct {
			Matched    bool   `json:"matched"`
			WouldRun   bool   `json:"would_run"`
			Reason     string `json:"reason"`
			Conditions []struct {
				Path    string `json:"path"`
				Actual  any    `json:"actual"`
				Matched bool   `json:"matched"`
			} `json:"conditions"`
			Actions []struct {
				Available bool `json:"available"`
				Rendered  struct {
					To             []string `json:"to"`
					TemplateID     string   `json:"template_id"`
					IdempotencyKey string   `json:"idempotency_key"`
				} `json:"rendered"`
			} `json:"actions"`
		}
		c.post("/api/v1/automation/rules/"+welcome+"/test", map[string]any{"event": map[string]any{
			"data": map[string]any{"user": map[string]any{"email": "john@example.com", "email_verified": true}},
		}}).Decode(t, &dry)
		if !dry.Matched || !dry.WouldRun || len(dry.Conditions) != 1 || dry.Conditions[0].Actual != true ||
			len(dry.Actions) != 1 || !dry.Actions[0].Available || dry.Actions[0].Rendered.TemplateID != "welcome_email" ||
			len(dry.Actions[0].Rendered.To) != 1 || dry.Actions[0].Rendered.To[0] != "john@example.com" {
			t.Errorf("dry run (verified): %+v", dry)
		}
		c.post("/api/v1/automation/rules/"+welcome+"/test", map[string]any{"type": "user.created",
			"data": map[string]any{"user": map[string]any{"email": "jane@example.com", "email_verified": false}},
		}).Decode(t, &dry)
		if dry.Matched || dry.WouldRun || dry.Conditions[0].Actual != false || dry.Conditions[0].Matched ||
			!strings.Contains(dry.Reason, "conditions[0]: user.email_verified equals true, actual false") {
			t.Errorf("dry run (unverified): %+v", dry)
		}
	})
	t.Run("inline dry run renders an unsaved rule", func(t *testing.T) {
		c := s.client(t)
		var inline map[string]any
		c.post("/api/v1/automation/test", map[string]any{
			"rule": map[string]any{"name": "inline", "trigger": map[string]any{"type": "event", "event_type": "order.*"},
				"conditions": []any{map[string]any{"type": "expression", "expression": "order.total >= 100 && event.type == 'order.placed'"}},
				"actions":    []any{map[string]any{"type": "webhook", "event_type": "order.big", "payload": map[string]any{"id": "{{ order.id }}"}}}},
			"event": map[string]any{"type": "order.placed", "data": map[string]any{"order": map[string]any{"id": "o-1", "total": 150}}},
		}).Decode(t, &inline)
		act := inline["actions"].([]any)[0].(map[string]any)
		if inline["matched"] != true || inline["would_run"] != true || act["available"] != true ||
			act["rendered"].(map[string]any)["payload"].(map[string]any)["id"] != "o-1" {
			t.Errorf("inline dry run: %v", inline)
		}
	})
	t.Run("dry run has no side effect", func(t *testing.T) {
		c := s.client(t)
		if n := c.get("/api/v1/notifications").JSON(t)["items"].([]any); len(n) != 0 || len(mail.Messages()) != 0 {
			t.Fatalf("a dry run sent something: %d notifications, %d emails", len(n), len(mail.Messages()))
		}
	})
	t.Run("verified user receives the rendered welcome email over SMTP", func(t *testing.T) {
		c := s.client(t)
		// The seed rule emails the rendered welcome_email to a verified user; a real SMTP server
		// receives it.
		verified := postEvent(t, c, map[string]any{"specversion": "1.0", "type": "user.created", "source": "signup",
			"time": "2026-01-02T03:04:05Z", "data": map[string]any{"user": map[string]any{
				"name": "John <Doe>", "email": "john@example.com", "email_verified": true}}})
		x := executionFor(t, c, welcome, verified)
		if x.Status != "succeeded" || !x.Matched || len(x.Actions) != 1 || x.Actions[0].Status != "succeeded" ||
			x.Actions[0].IdempotencyKey != "automation:"+verified+":"+welcome+":0" {
			t.Fatalf("verified user's execution: %+v", x)
		}
		welcomeID, _ := actionResult(t, x.Actions[0].Result)["notification_id"].(string)
		sent := c.waitNotification(welcomeID, 30*time.Second, "sent", "failed")
		if sent.Status != "sent" || sent.TemplateID != "welcome_email" || len(sent.Deliveries) != 1 ||
			sent.Deliveries[0].Recipient != "john@example.com" || sent.Deliveries[0].AttemptCount != 1 {
			t.Errorf("the rule's notification: %+v", sent)
		}
		johns := messagesTo(mail, "john@example.com")
		if len(johns) != 1 {
			t.Fatalf("john received %d emails", len(johns))
		}
		if m := johns[0]; m.Subject() != "Welcome, John <Doe>!" ||
			!strings.Contains(m.Parts["text/plain"], "Hi John <Doe>,") || !strings.Contains(m.Parts["text/html"], "<p>Hi John &lt;Doe&gt;,</p>") ||
			m.Header.Get("Message-Id") != "<"+sent.Deliveries[0].ProviderMessageID+">" {
			t.Errorf("received: subject %q, parts %q", m.Subject(), m.Parts)
		}
		// The notification's own event continues the rule's chain: caused by the user.created event,
		// one level deeper.
		if ns := causedBy(t, c, verified, verified, "notification.sent", welcomeID); ns.Depth != 1 || ns.CorrelationID != verified ||
			ns.Data["recipient"] != "john@example.com" {
			t.Errorf("notification.sent of the rule's email: %+v", ns)
		}
		ev := eventEvaluation(t, c, verified)
		if ev["source"] != "signup" || ev["occurred_at"] != "2026-01-02T03:04:05Z" ||
			ev["evaluation"].(map[string]any)["rules_fired"] != float64(1) || len(ev["executions"].([]any)) != 1 {
			t.Errorf("event detail: %v", ev)
		}
	})
	t.Run("unverified user is not notified and the execution shows why", func(t *testing.T) {
		c := s.client(t)
		unverified := postEvent(t, c, map[string]any{"type": "user.created",
			"data": map[string]any{"user": map[string]any{"email": "jane@example.com", "email_verified": false}}})
		x := executionFor(t, c, welcome, unverified)
		if x.Status != "not_matched" || x.Matched || !strings.Contains(x.Reason, "conditions[0]: user.email_verified equals true, actual false") ||
			len(x.Actions) != 0 {
			t.Errorf("unverified user's execution: %+v", x)
		}
		// The decision is final and ran no action, so nothing can be on its way to jane.
		if n := c.get("/api/v1/notifications?recipient=jane@example.com").JSON(t)["items"].([]any); len(n) != 0 ||
			mail.RcptCount("jane@example.com") != 0 {
			t.Errorf("the unverified user was notified: %v", n)
		}
		var detail ruleExecution
		c.get("/api/v1/automation/executions/"+x.ID).Decode(t, &detail)
		if len(detail.Conditions) != 1 || detail.Conditions[0].Actual != false || detail.Conditions[0].Path != "conditions[0]" {
			t.Errorf("execution detail: %+v", detail)
		}
	})
	t.Run("notification the module refuses fails the action at once", func(t *testing.T) {
		c := s.client(t)
		// A notification the module refuses (its template lacks a variable) fails the action at once,
		// and the history shows the module's message.
		refusing := createRule(t, c, map[string]any{"name": "refused", "trigger": map[string]any{"type": "event", "event_type": "user.invited"},
			"actions": []any{map[string]any{"type": "notification", "template": "welcome_email", "to": "{{ email }}",
				"template_data": map[string]any{"app_name": "X"}}}})
		x := executionFor(t, c, refusing, postEvent(t, c, map[string]any{"type": "user.invited", "data": map[string]any{"email": "inv@example.com"}}))
		if x.Status != "failed" || len(x.Actions) != 1 || x.Actions[0].Status != "failed" || x.Actions[0].Attempts != 1 ||
			!strings.Contains(x.Actions[0].Error, `undefined variable "user_name"`) || strings.Contains(x.Actions[0].Error, "retryable") {
			t.Errorf("refused notification: %+v", x)
		}
	})
	t.Run("same event id twice runs once", func(t *testing.T) {
		c := s.client(t)
		// The same event id twice is accepted once and runs once.
		dupBody := map[string]any{"id": "signup-42", "type": "user.created",
			"data": map[string]any{"user": map[string]any{"email": "dup@example.com", "email_verified": true}}}
		first := c.post("/api/v1/events", dupBody).JSON(t)
		second := c.post("/api/v1/events", dupBody).JSON(t)
		if first["duplicate"] != false || second["duplicate"] != true || second["id"] != "signup-42" {
			t.Errorf("duplicate event: %v / %v", first, second)
		}
		dupX := executionFor(t, c, welcome, "signup-42")
		c.waitNotification(actionResult(t, dupX.Actions[0].Result)["notification_id"].(string), 30*time.Second, "sent")
		if n := c.get("/api/v1/notifications?recipient=dup@example.com").JSON(t)["items"].([]any); len(n) != 1 ||
			mail.RcptCount("dup@example.com") != 1 {
			t.Errorf("the duplicate event sent %d notifications, %d emails", len(n), mail.RcptCount("dup@example.com"))
		}
	})
	// Two matching rules, shared by the priority and the disable subtests.
	ruleBody := func(name string, priority int, stop bool) map[string]any {
		return map[string]any{"name": name, "priority": priority, "stop_processing": stop,
			"trigger": map[string]any{"type": "event", "event_type": "prio.t*"},
			"actions": []any{map[string]any{"type": "emit_event", "event_type": "prio.done", "data": map[string]any{"by": name}}}}
	}
	var low, high string
	prioritised := t.Run("rules run in priority order and stop_processing stops the lower one", func(t *testing.T) {
		c := s.client(t)
		// Two matching rules run in priority order; stop_processing stops the lower one.
		low = createRule(t, c, ruleBody("low", 1, false))
		high = createRule(t, c, ruleBody("high", 10, false))
		both := postEvent(t, c, map[string]any{"type": "prio.test"})
		xl, xh := executionFor(t, c, low, both), executionFor(t, c, high, both)
		if xl.Status != "succeeded" || xh.Status != "succeeded" || !xh.Actions[0].StartedAt.Before(*xl.Actions[0].StartedAt) {
			t.Errorf("priority order: high %+v low %+v", xh, xl)
		}
		if r := c.do("PUT", "/api/v1/automation/rules/"+high, ruleBody("high", 10, true)); r.Status != 200 || r.JSON(t)["version"] != float64(2) {
			t.Fatalf("replace rule: %d %s", r.Status, r.Body)
		}
		stopped := postEvent(t, c, map[string]any{"type": "prio.test"})
		xh, xl = executionFor(t, c, high, stopped), executionFor(t, c, low, stopped)
		if xh.Status != "succeeded" || xh.RuleVersion != 2 || xl.Status != "skipped" || !strings.Contains(xl.Reason, `stop_processing: rule "high"`) {
			t.Errorf("stop_processing: high %+v low %+v", xh, xl)
		}
		var versions struct {
			Items []struct {
				Version int `json:"version"`
			} `json:"items"`
		}
		c.get("/api/v1/automation/rules/"+high+"/versions").Decode(t, &versions)
		if len(versions.Items) != 2 || versions.Items[0].Version != 2 {
			t.Errorf("versions %+v", versions)
		}
	})
	t.Run("disabled rule is not considered", func(t *testing.T) {
		if !prioritised {
			t.Skip("needs the two rules, and their executions, of the priority subtest")
		}
		c := s.client(t)
		// A disabled rule is not considered; enabled again, it is.
		if r := c.post("/api/v1/automation/rules/"+high+"/disable", nil); r.Status != 200 || r.JSON(t)["enabled"] != false {
			t.Errorf("disable: %d %s", r.Status, r.Body)
		}
		quiet := postEvent(t, c, map[string]any{"type": "prio.test"})
		if x := executionFor(t, c, low, quiet); x.Status != "succeeded" {
			t.Errorf("low rule with high disabled: %+v", x)
		}
		if xs := ruleExecutions(t, c, high); len(xs) != 2 {
			t.Errorf("the disabled rule ran: %d executions", len(xs))
		}
		c.post("/api/v1/automation/rules/"+high+"/enable", nil)
	})
	t.Run("rule re-emitting its trigger stops at depth 5", func(t *testing.T) {
		c := s.client(t)
		// Loop prevention: a rule re-emitting the event that triggers it stops at depth 5.
		loop := createRule(t, c, map[string]any{"name": "loop", "trigger": map[string]any{"type": "event", "event_type": "loop.ping"},
			"actions": []any{map[string]any{"type": "emit_event", "event_type": "loop.ping"}}})
		root := postEvent(t, c, map[string]any{"type": "loop.ping", "data": map[string]any{"n": 1}})
		var chain struct {
			Items []struct {
				ID         string         `json:"id"`
				Depth      int            `json:"depth"`
				Evaluation map[string]any `json:"evaluation"`
			} `json:"items"`
		}
		// The chain is closed once the depth-6 event has been recorded as skipped and every run of
		// the rule has finished: a skipped event runs no rule, so nothing more can join the chain.
		eventually(t, 60*time.Second, "the loop to reach the depth limit", func() bool {
			c.get("/api/v1/events?correlation_id="+root).Decode(t, &chain)
			if len(chain.Items) < 7 || chain.Items[0].Evaluation == nil {
				return false
			}
			for _, x := range ruleExecutions(t, c, loop) {
				if x.Status == "running" {
					return false
				}
			}
			return true
		})
		c.get("/api/v1/events?correlation_id="+root).Decode(t, &chain)
		deepest := chain.Items[0]
		if len(chain.Items) != 7 || deepest.Depth != 6 || deepest.Evaluation["status"] != "skipped" ||
			!strings.Contains(deepest.Evaluation["reason"].(string), "causation depth 6 exceeds the limit of 5") {
			t.Errorf("loop chain: %+v", chain.Items)
		}
		if xs := ruleExecutions(t, c, loop); len(xs) != 6 {
			t.Errorf("the looping rule ran %d times, want 6 (depths 0-5)", len(xs))
		}
	})
	t.Run("cooldown skips and a workflow action runs a real definition", func(t *testing.T) {
		c := s.client(t)
		// Cooldown, and a workflow action (with an expression condition) that runs a real
		// definition: its completion is visible through the API, and both its workflow.completed
		// event and its notification step's notification.sent continue the order event's chain.
		fulfil := createWorkflow(t, c, `{"name": "fulfil order", "trigger_type": "event", "steps": [
			{"id": "total", "type": "data_transform", "config": {"mapping": {"order": "input.order_id", "doubled": "input.total * 2"}}},
			{"id": "confirm", "type": "notification", "config": {"channel": "email", "to": "orders@example.com",
			 "subject": "Order {{ steps.total.output.order }}", "body": "Twice the total: {{ steps.total.output.doubled }}"}}]}`)
		cool := createRule(t, c, map[string]any{"name": "cool", "cooldown": "1h",
			"trigger":    map[string]any{"type": "event", "event_type": "order.placed"},
			"conditions": []any{map[string]any{"type": "expression", "expression": "order.total > 100"}},
			"actions": []any{map[string]any{"type": "workflow", "workflow_id": "{{ order.flow }}", "priority": "high",
				"input_data": map[string]any{"order_id": "{{ order.id }}", "total": "{{ order.total }}"}}}})
		order := func(id string, total int) map[string]any {
			return map[string]any{"type": "order.placed", "data": map[string]any{"order": map[string]any{"id": id, "total": total, "flow": fulfil}}}
		}
		o1, o2, o3 := postEvent(t, c, order("A", 150)), postEvent(t, c, order("B", 250)), postEvent(t, c, order("C", 50))
		x1, x2, x3 := executionFor(t, c, cool, o1), executionFor(t, c, cool, o2), executionFor(t, c, cool, o3)
		if x1.Status != "succeeded" || x2.Status != "skipped" || !strings.HasPrefix(x2.Reason, "cooldown:") || x3.Status != "not_matched" {
			t.Fatalf("cooldown: %+v / %+v / %+v", x1, x2, x3)
		}
		runID, _ := actionResult(t, x1.Actions[0].Result)["execution_id"].(string)
		run := waitFinished(t, c, runID, 60*time.Second)
		if run.Status != "completed" || run.WorkflowID != fulfil || run.TriggeredBy != "rule" || run.Priority != "high" {
			t.Errorf("the rule's workflow execution: %+v", run)
		}
		if out, _ := run.step(t, "total").Output.(map[string]any); out["order"] != "A" || out["doubled"] != 300.0 {
			t.Errorf("the rule's input_data reached the definition as %v", out)
		}
		confirm, _ := run.step(t, "confirm").Output.(map[string]any)
		confirmIDs, _ := confirm["ids"].([]any)
		if confirm["status"] != "sent" || len(confirmIDs) != 1 {
			t.Fatalf("confirm step output %v", confirm)
		}
		// The step waited for the notification's outcome: the SMTP server has the message already.
		if got := messagesTo(mail, "orders@example.com"); len(got) != 1 || got[0].Subject() != "Order A" ||
			!strings.Contains(got[0].Parts["text/plain"], "Twice the total: 300") {
			t.Errorf("order emails: %+v", got)
		}
		if wc := causedBy(t, c, o1, o1, "workflow.completed", fulfil); wc.Depth != 1 || wc.Data["execution_id"] != runID {
			t.Errorf("workflow.completed of the rule's execution: %+v", wc)
		}
		if ns := causedBy(t, c, o1, o1, "notification.sent", confirmIDs[0].(string)); ns.Depth != 1 {
			t.Errorf("notification.sent of the rule's workflow: %+v", ns)
		}
		if runs := c.get("/api/v1/executions?workflow_id=" + fulfil).JSON(t)["items"].([]any); len(runs) != 1 {
			t.Errorf("the cooldown let %d executions start", len(runs))
		}
	})
	t.Run("workflow action on an unknown definition fails at once", func(t *testing.T) {
		c := s.client(t)
		// A workflow action naming a definition that does not exist fails at once, saying which.
		ghost := createRule(t, c, map[string]any{"name": "ghost", "trigger": map[string]any{"type": "event", "event_type": "order.cancelled"},
			"actions": []any{map[string]any{"type": "workflow", "workflow_id": "no-such-definition"}}})
		if x := executionFor(t, c, ghost, postEvent(t, c, map[string]any{"type": "order.cancelled"})); x.Status != "failed" ||
			x.Actions[0].Attempts != 1 || !strings.Contains(x.Actions[0].Error, `workflow definition "no-such-definition" does not exist`) {
			t.Errorf("workflow action on an unknown definition: %+v", x)
		}
	})
	t.Run("rule-workflow loop stops at depth 5", func(t *testing.T) {
		c := s.client(t)
		// Loop prevention across modules: a rule that runs a definition whenever that definition
		// completes. Each execution's workflow.completed continues the chain of the event that
		// started it, so the chain stops at the depth limit: the manual run (depth 0) and one run
		// per evaluated depth 0-5, seven in all; the eighth workflow.completed (depth 6) is skipped.
		pingPong := createWorkflow(t, c, `{"name": "ping-pong", "trigger_type": "manual", "steps": [
			{"id": "note", "type": "data_transform", "config": {"mapping": {"depth": "input.depth"}}}]}`)
		relay := createRule(t, c, map[string]any{"name": "relay", "trigger": map[string]any{"type": "event", "event_type": "workflow.completed"},
			"conditions": []any{map[string]any{"type": "field_check", "field": "workflow_id", "operator": "equals", "value": pingPong}},
			"actions":    []any{map[string]any{"type": "workflow", "workflow_id": pingPong, "input_data": map[string]any{"depth": "{{ event.depth }}"}}}})
		firstPing := execute(t, c, pingPong, map[string]any{"input_data": map[string]any{"depth": -1}})
		pingRoot := "wfexec-" + firstPing + "-completed" // the interpreter's id for the outcome event
		var pings []chainEvent
		eventually(t, 120*time.Second, "the workflow loop to reach the depth limit", func() bool {
			pings = eventChain(t, c, pingRoot)
			if len(pings) < 7 || pings[0].Evaluation == nil {
				return false
			}
			relays := 0
			for _, x := range ruleExecutions(t, c, relay) {
				if x.Status == "running" {
					return false
				}
				if x.Matched {
					relays++
				}
			}
			return relays >= 6
		})
		pings = eventChain(t, c, pingRoot)
		if len(pings) != 7 || pings[0].Depth != 6 || pings[0].Evaluation["status"] != "skipped" ||
			!strings.Contains(fmt.Sprint(pings[0].Evaluation["reason"]), "causation depth 6 exceeds the limit of 5") {
			t.Errorf("workflow loop chain: %+v", pings)
		}
		for i, e := range pings {
			if e.Type != "workflow.completed" || e.Depth != 6-i || e.Subject != pingPong ||
				(i < len(pings)-1 && e.CausationID != pings[i+1].ID) {
				t.Errorf("chain event %d: %+v", i, e)
			}
		}
		var pingRuns struct {
			Items []struct {
				ID          string `json:"id"`
				Status      string `json:"status"`
				TriggeredBy string `json:"triggered_by"`
			} `json:"items"`
		}
		c.get("/api/v1/executions?limit=200&workflow_id="+pingPong).Decode(t, &pingRuns)
		byRule := 0
		for _, r := range pingRuns.Items {
			if r.Status != "completed" {
				t.Errorf("ping-pong execution %s is %s", r.ID, r.Status)
			}
			if r.TriggeredBy == "rule" {
				byRule++
			}
		}
		if len(pingRuns.Items) != 7 || byRule != 6 {
			t.Errorf("the workflow loop ran %d executions (%d by the rule), want 7 (6)", len(pingRuns.Items), byRule)
		}
		relayed := 0
		for _, x := range ruleExecutions(t, c, relay) {
			if x.Matched {
				relayed++
				if x.Status != "succeeded" {
					t.Errorf("relay execution %+v", x)
				}
			}
		}
		if relayed != 6 {
			t.Errorf("the relay rule fired %d times, want 6 (depths 0-5)", relayed)
		}
	})
	t.Run("webhook trigger matches inbound webhook events", func(t *testing.T) {
		c := s.client(t)
		// A webhook trigger matches events recorded from its inbound webhook source.
		gh := createRule(t, c, map[string]any{"name": "gh", "trigger": map[string]any{"type": "webhook", "source": "github", "event_type": "push"},
			"actions": []any{map[string]any{"type": "emit_event", "event_type": "ci.requested", "data": map[string]any{"ref": "{{ ref }}"}}}})
		if r := c.post("/api/v1/events", map[string]any{"type": "push", "source": "webhook/github"}); r.Status != 422 {
			t.Errorf("a forged webhook source is accepted over the API: %d", r.Status)
		}
		inbound, _, err := deps.Events.Publish(context.Background(), store.Event{Type: "push", Source: rules.WebhookEventSource("github"),
			Data: store.JSON(`{"ref": "refs/heads/main"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if x := executionFor(t, c, gh, inbound.ID); x.Status != "succeeded" || x.Actions[0].Rendered.Payload["ref"] != "refs/heads/main" {
			t.Errorf("webhook trigger: %+v", x)
		}
		detail2 := eventEvaluation(t, c, inbound.ID)
		if caused := detail2["caused_events"].([]any); len(caused) != 1 || caused[0].(map[string]any)["type"] != "ci.requested" {
			t.Errorf("caused events: %v", detail2["caused_events"])
		}
	})
	t.Run("schedule trigger fires, pauses when disabled, goes when deleted", func(t *testing.T) {
		c := s.client(t)
		// A schedule trigger fires through its Temporal Schedule; disabling pauses it.
		sched := createRule(t, c, map[string]any{"name": "tick", "trigger": map[string]any{"type": "schedule", "cron": "@every 2s"},
			"actions": []any{map[string]any{"type": "emit_event", "event_type": "tick.done", "data": map[string]any{"at": "{{ scheduled_at }}"}}}})
		eventually(t, 30*time.Second, "the schedule trigger to run", func() bool {
			for _, x := range ruleExecutions(t, c, sched) {
				if x.Status == "succeeded" {
					return true
				}
			}
			return false
		})
		c.post("/api/v1/automation/rules/"+sched+"/disable", nil)
		desc, err := s.Temporal.ScheduleClient().GetHandle(context.Background(), rules.ScheduleID(sched)).Describe(context.Background())
		if err != nil || !desc.Schedule.State.Paused {
			t.Errorf("schedule of a disabled rule: %v %v", desc, err)
		}
		if r := c.do("DELETE", "/api/v1/automation/rules/"+sched, nil); r.Status != 204 {
			t.Errorf("delete: %d", r.Status)
		}
		if _, err := s.Temporal.ScheduleClient().GetHandle(context.Background(), rules.ScheduleID(sched)).Describe(context.Background()); err == nil {
			t.Error("the schedule of a deleted rule is still there")
		}
		if r := c.get("/api/v1/automation/rules/" + sched); r.Status != 404 {
			t.Errorf("deleted rule: %d", r.Status)
		}
		if xs := ruleExecutions(t, c, sched); len(xs) == 0 {
			t.Error("a deleted rule's history is gone")
		}
	})
	t.Run("bad cron is refused", func(t *testing.T) {
		c := s.client(t)
		if r := c.post("/api/v1/automation/rules", map[string]any{"name": "bad cron", "trigger": map[string]any{"type": "schedule", "cron": "61 * * * *"},
			"actions": []any{map[string]any{"type": "emit_event", "event_type": "x"}}}); r.Status != 422 {
			t.Errorf("bad cron: %d %s", r.Status, r.Body)
		}
	})
	t.Run("bad events are refused", func(t *testing.T) {
		c := s.client(t)
		// Bad events.
		for body, want := range map[string]int{
			`{"data": {}}`:                     422,
			`{"type": "a.b", "data": [1]}`:     422,
			`{"type": "a.b", "time": "later"}`: 422,
			`{"type": "automation.x"}`:         422,
			`{"type": `:                        400,
		} {
			if r := c.post("/api/v1/events", body); r.Status != want {
				t.Errorf("event %s: %d, want %d", body, r.Status, want)
			}
		}
	})
	t.Run("unknown event and execution are not found", func(t *testing.T) {
		c := s.client(t)
		if r := c.get("/api/v1/events/none"); r.Status != 404 {
			t.Errorf("unknown event: %d", r.Status)
		}
		if r := c.get("/api/v1/automation/executions/none"); r.Status != 404 {
			t.Errorf("unknown execution: %d", r.Status)
		}
	})
	t.Run("metrics count decisions and attempts", func(t *testing.T) {
		c := s.client(t)
		// Metrics.
		metrics := string(c.get("/metrics").Body)
		for _, want := range []string{`automation_rule_decisions_total{status="not_matched"}`, `automation_rule_decisions_total{status="skipped"}`,
			`automation_action_attempts_total{status="succeeded",type="notification"}`, `automation_events_evaluated_total{status="skipped"}`,
			`automation_event_to_decision_seconds_bucket`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
	t.Run("starter events send runs the rule", func(t *testing.T) {
		c := s.client(t)
		// The starter CLI.
		out, code := s.starter(t, "events", "send", "--type", "user.created", "--data",
			`{"user": {"email": "cli@example.com", "email_verified": true}}`)
		if code != 0 || !strings.Contains(out, "accepted event ") {
			t.Errorf("starter events send: %d %s", code, out)
		}
		cliEvent := strings.TrimSpace(strings.TrimPrefix(out, "accepted event "))
		if x := executionFor(t, c, welcome, cliEvent); x.Status != "succeeded" {
			t.Errorf("the CLI's event: %+v", x)
		}
	})
	t.Run("starter rules list", func(t *testing.T) {
		out, code := s.starter(t, "rules", "list")
		if code != 0 || !strings.Contains(out, "Welcome Email Automation") || !strings.Contains(out, "event user.created") {
			t.Errorf("starter rules list: %d %s", code, out)
		}
	})
	t.Run("starter rules test dry-runs a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "event.json")
		if err := os.WriteFile(file, []byte(`{"type": "user.created", "data": {"user": {"email": "x@example.com", "email_verified": false}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := s.starter(t, "rules", "test", welcome, "-f", file)
		if code != 0 || !strings.Contains(out, "would not run") || !strings.Contains(out, "actual false") ||
			!strings.Contains(out, "x@example.com") {
			t.Errorf("starter rules test: %d %s", code, out)
		}
	})
	t.Run("starter rules executions", func(t *testing.T) {
		out, code := s.starter(t, "rules", "executions", welcome)
		if code != 0 || !strings.Contains(out, "not_matched") || !strings.Contains(out, "succeeded") {
			t.Errorf("starter rules executions: %d %s", code, out)
		}
	})
	t.Run("starter rules create, disable, enable, update and list --all", func(t *testing.T) {
		c := s.client(t)
		ruleFile := filepath.Join(t.TempDir(), "rule.json")
		if err := os.WriteFile(ruleFile, []byte(`{"name": "CLI rule", "trigger": {"type": "event", "event_type": "cli.tested"},
			"actions": [{"type": "emit_event", "event_type": "cli.seen"}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := s.starter(t, "rules", "create", "-f", ruleFile)
		if code != 0 || !strings.Contains(out, `"CLI rule" version 1 (event cli.tested, enabled=true)`) {
			t.Fatalf("starter rules create: %d %s", code, out)
		}
		cliRule := strings.Fields(out)[1]
		if out, code := s.starter(t, "rules", "disable", cliRule); code != 0 || !strings.Contains(out, "enabled=false") {
			t.Errorf("starter rules disable: %d %s", code, out)
		}
		if r := c.get("/api/v1/automation/rules/" + cliRule); r.JSON(t)["enabled"] != false {
			t.Errorf("disabled by the CLI: %s", r.Body)
		}
		if out, code := s.starter(t, "rules", "enable", cliRule); code != 0 || !strings.Contains(out, "enabled=true") {
			t.Errorf("starter rules enable: %d %s", code, out)
		}
		if err := os.WriteFile(ruleFile, []byte(`{"name": "CLI rule v2", "trigger": {"type": "event", "event_type": "cli.tested"},
			"actions": [{"type": "emit_event", "event_type": "cli.seen"}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, code := s.starter(t, "rules", "update", cliRule, "-f", ruleFile); code != 0 || !strings.Contains(out, `"CLI rule v2" version 2`) {
			t.Errorf("starter rules update: %d %s", code, out)
		}
		if out, code := s.starter(t, "-o", "json", "rules", "list", "--all", "--limit", "1"); code != 0 ||
			!strings.Contains(out, "CLI rule v2") || !strings.Contains(out, "Welcome Email Automation") {
			t.Errorf("starter rules list --all: %d %s", code, out)
		}
	})
	t.Run("starter refuses an unknown flag with usage", func(t *testing.T) {
		ruleFile := filepath.Join(t.TempDir(), "rule.json")
		if err := os.WriteFile(ruleFile, []byte(`{"name": "CLI rule v2", "trigger": {"type": "event", "event_type": "cli.tested"},
			"actions": [{"type": "emit_event", "event_type": "cli.seen"}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, code := s.starter(t, "rules", "create", "-f", ruleFile, "--bogus"); code != 2 || !strings.Contains(out, "Usage:") {
			t.Errorf("starter with an unknown flag: %d %s", code, out)
		}
	})
}
