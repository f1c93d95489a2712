package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/pyairtable/automation-domain/internal/smtptest"
)

// TestWorkflowEngine drives the workflow engine over HTTP on the embedded stack: definitions
// with validation and versions, the seed's Data Processing Workflow, a DAG, retries, conditions,
// signals, cancel/terminate/retry, idempotency, schedules, search attributes and the CLI. The
// seed workflow's notify step sends its email through the notification module to a real SMTP
// server.
func TestWorkflowEngine(t *testing.T) {
	mail := smtptest.Start(t)
	s := startEmbedded(t, testConfig(t, t.TempDir(), map[string]string{
		"WEBHOOK_ALLOWED_CIDRS": "127.0.0.1", "RATE_LIMIT_PER_SECOND": "1000", "RATE_LIMIT_BURST": "1000",
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"NOTIFICATION_RETRY_INITIAL_INTERVAL": "3s",
	}))
	c := s.client(t)
	rcv := newRecorder(t)

	t.Run("malformed JSON is refused", func(t *testing.T) {
		c := s.client(t)
		// Bad input: malformed JSON 400, every problem of a definition 422 with its path.
		if r := c.post("/api/v1/workflows", `{"name": "x", "steps": [`); r.Status != 400 {
			t.Errorf("malformed JSON: %d %s", r.Status, r.Body)
		}
	})
	t.Run("validation reports every problem with its path", func(t *testing.T) {
		c := s.client(t)
		got := problems(t, c.post("/api/v1/workflows", `{"name": "", "trigger_type": "manual", "steps": [
			{"id": "a", "type": "data_transform", "config": {"jq": "]["}},
			{"id": "a", "type": "http_request", "config": {"url": "{{ steps.b.output }}"}},
			{"id": "n", "type": "teleport", "config": {}}]}`))
		for field, msg := range map[string]string{
			"name": "required", "steps[0].config.jq": "jq", "steps[1].id": "unique",
			"steps[1].config.url": `"b", which does not exist`, "steps[2].type": "must be one of",
		} {
			if !strings.Contains(got[field], msg) {
				t.Errorf("422 %s: %q, want %q (all: %v)", field, got[field], msg, got)
			}
		}
	})
	t.Run("unknown workflow is not found", func(t *testing.T) {
		c := s.client(t)
		if r := c.get("/api/v1/workflows/nope"); r.Status != 404 {
			t.Errorf("unknown workflow: %d", r.Status)
		}
	})

	// The seed's Data Processing Workflow, with real configs; its notify step emails the result
	// through the notification module (subject and body rendered from the input and the
	// validate step's output) and waits for the outcome.
	seed := `{"name": "Data Processing Workflow", "description": "Process uploaded data files", "trigger_type": "manual",
		"steps": [
			{"id": "validate", "type": "data_transform", "config": {
				"assert": [{"that": "len(input.records) > 0", "message": "the file has no records"}],
				"jq": "{rows: (.input.records | length), total: ([.input.records[].amount] | add), file: .input.file}"}},
			{"id": "notify", "type": "notification", "config": {"channel": "email", "to": "{{ input.notify }}",
				"subject": "{{ input.file }} processed: {{ steps.validate.output.rows }} rows",
				"body": "{{ input.file }}: {{ steps.validate.output.rows }} rows, total {{ steps.validate.output.total }}"}}
		]}`
	wfID := createWorkflow(t, c, seed)
	var e executionDetail // the seed run, read by the search attribute subtest
	t.Run("seed workflow runs and its notify step emails the result over SMTP", func(t *testing.T) {
		c := s.client(t)
		r := c.post("/api/v1/workflows/"+wfID+"/execute", map[string]any{
			"input_data": map[string]any{"file": "q3.csv", "notify": "ops@example.com",
				"records": []any{map[string]any{"amount": 10}, map[string]any{"amount": 32}}},
			"priority": "high",
		})
		if r.Status != 202 {
			t.Fatalf("execute: %d %s", r.Status, r.Body)
		}
		accepted := r.JSON(t)
		if accepted["temporal_workflow_id"] == "" || accepted["temporal_run_id"] == "" || accepted["status"] == nil {
			t.Errorf("202 body %v", accepted)
		}
		e = waitFinished(t, c, accepted["id"].(string), 60*time.Second)
		if e.Status != "completed" || e.Version != 1 || e.Priority != "high" {
			t.Fatalf("seed execution %+v", e)
		}
		if v := e.step(t, "validate"); v.Status != "completed" || v.Attempts != 1 || v.Output.(map[string]any)["total"] != 42.0 {
			t.Errorf("validate %+v", v)
		}
		n := e.step(t, "notify")
		notified, _ := n.Output.(map[string]any)
		ids, _ := notified["ids"].([]any)
		if n.Status != "completed" || n.Attempts != 1 || n.StartedAt == nil || n.FinishedAt == nil || notified["status"] != "sent" || len(ids) != 1 {
			t.Fatalf("notify %+v", n)
		}
		// The step waited for the outcome: the message is at the SMTP server, and the notification
		// records where it came from.
		note := c.notification(ids[0].(string))
		if note.Status != "sent" || len(note.Deliveries) != 1 || note.Deliveries[0].Recipient != "ops@example.com" {
			t.Errorf("the step's notification %+v", note)
		}
		var meta struct {
			Metadata map[string]any `json:"metadata"`
		}
		c.get("/api/v1/notifications/"+note.ID).Decode(t, &meta)
		if meta.Metadata["workflow_execution_id"] != e.ID || meta.Metadata["workflow_step_id"] != "notify" {
			t.Errorf("notification metadata %v", meta.Metadata)
		}
		if got := messagesTo(mail, "ops@example.com"); len(got) != 1 || got[0].Subject() != "q3.csv processed: 2 rows" ||
			strings.TrimSpace(got[0].Parts["text/plain"]) != "q3.csv: 2 rows, total 42" ||
			got[0].Header.Get("Message-Id") != "<"+note.Deliveries[0].ProviderMessageID+">" {
			t.Errorf("ops@example.com received %+v", got)
		}
	})
	t.Run("notification step outcomes", func(t *testing.T) {
		c := s.client(t)
		// A notification the module still holds when the step's attempt runs out of time (an SMTP
		// 451, then a 3 s backoff, against a 2 s step timeout) completes the step with its current
		// status, and the module sends it later; one that fails for good fails the step with the
		// server's answer.
		mail.SetResponder(func(rcpt string, n int) error {
			switch {
			case strings.HasPrefix(rcpt, "slow@") && n == 1:
				return smtptest.Temporary()
			case strings.HasPrefix(rcpt, "nobody@"):
				return smtptest.Permanent()
			}
			return nil
		})
		mailer := createWorkflow(t, c, `{"name": "mailer", "trigger_type": "manual", "steps": [
			{"id": "mail", "type": "notification", "timeout": "2s",
			 "config": {"channel": "email", "to": "{{ input.to }}", "subject": "hello", "body": "hello {{ input.to }}"}}]}`)
		t.Run("held when the step's time runs out: the step completes and the module sends later", func(t *testing.T) {
			c := s.client(t)
			slow := waitFinished(t, c, execute(t, c, mailer, map[string]any{"input_data": map[string]any{"to": "slow@example.com"}}), 30*time.Second)
			slowOut, _ := slow.step(t, "mail").Output.(map[string]any)
			slowIDs, _ := slowOut["ids"].([]any)
			if slow.Status != "completed" || slow.step(t, "mail").Attempts != 1 || len(slowIDs) != 1 ||
				(slowOut["status"] != "queued" && slowOut["status"] != "sending") {
				t.Fatalf("a notification still retrying when the step's time ran out: %+v", slow)
			}
			if later := c.waitNotification(slowIDs[0].(string), 30*time.Second, "sent", "failed"); later.Status != "sent" ||
				later.Deliveries[0].AttemptCount != 2 || len(messagesTo(mail, "slow@example.com")) != 1 {
				t.Errorf("the held notification: %+v", later)
			}
		})
		t.Run("bounced for good: the step fails with the server's answer", func(t *testing.T) {
			c := s.client(t)
			bounced := waitFinished(t, c, execute(t, c, mailer, map[string]any{"input_data": map[string]any{"to": "nobody@example.com"}}), 30*time.Second)
			if st := bounced.step(t, "mail"); bounced.Status != "failed" || st.Status != "failed" || st.Attempts != 1 ||
				!contains(st.Error, "failed for every recipient (nobody@example.com: ", "550") {
				t.Errorf("a bounced notification: %s %q; step %+v", bounced.Status, bounced.Error, st)
			}
		})
	})
	t.Run("runs are found by their search attributes in Temporal", func(t *testing.T) {
		if e.ID == "" {
			t.Skip("needs the seed run")
		}
		// Operators find runs by definition in Temporal (custom search attribute upserted by the
		// interpreter; the embedded server uses SQL visibility).
		eventually(t, 30*time.Second, "the search attribute query to find the run", func() bool {
			res, err := s.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf(`WorkflowDefinitionId = %q AND WorkflowPriority = "high"`, wfID),
			})
			return err == nil && len(res.Executions) == 1 && res.Executions[0].Execution.WorkflowId == e.TemporalWorkflowID
		})
	})
	updated := t.Run("a new version keeps the old one readable", func(t *testing.T) {
		c := s.client(t)
		// A new version; the finished execution keeps version 1, which stays readable.
		upd := c.do("PUT", "/api/v1/workflows/"+wfID, strings.Replace(seed, "Data Processing Workflow", "Data Processing v2", 1))
		if upd.Status != 200 || upd.JSON(t)["version"] != 2.0 {
			t.Fatalf("update: %d %s", upd.Status, upd.Body)
		}
		if v := c.get("/api/v1/workflows/" + wfID + "/versions/1").JSON(t); v["name"] != "Data Processing Workflow" {
			t.Errorf("version 1: %v", v)
		}
		if vs := c.get("/api/v1/workflows/" + wfID + "/versions").JSON(t)["items"].([]any); len(vs) != 2 {
			t.Errorf("versions: %d", len(vs))
		}
	})
	var bad executionDetail
	t.Run("input failing a step's assertion fails the run with its message", func(t *testing.T) {
		if !updated {
			t.Skip("needs version 2 of the seed workflow")
		}
		c := s.client(t)
		// Input that fails the step's expectations: a readable error, not a crash.
		bad = waitFinished(t, c, execute(t, c, wfID, map[string]any{"input_data": map[string]any{"records": []any{}}}), 30*time.Second)
		if bad.Status != "failed" || bad.Version != 2 || !strings.Contains(bad.Error, "the file has no records") {
			t.Errorf("empty file: %s v%d %q", bad.Status, bad.Version, bad.Error)
		}
	})
	t.Run("retry starts a new execution with the same input and version", func(t *testing.T) {
		if bad.ID == "" {
			t.Skip("needs the failed run")
		}
		c := s.client(t)
		// Retry: a new execution with the same input and version.
		rr := c.post("/api/v1/executions/"+bad.ID+"/retry", nil)
		if rr.Status != 202 {
			t.Fatalf("retry: %d %s", rr.Status, rr.Body)
		}
		retried := waitFinished(t, c, rr.JSON(t)["id"].(string), 30*time.Second)
		if retried.RetryOf != bad.ID || retried.Version != 2 || retried.Status != "failed" || retried.ID == bad.ID {
			t.Errorf("retried %+v", retried)
		}
	})
	var dag, flaky, sleepy, te, once string
	t.Run("DAG branches run at the same time", func(t *testing.T) {
		c := s.client(t)
		// A DAG: two branches after "start" run at the same time (each request is held 1 s).
		rcv.hold("/left", time.Second)
		rcv.hold("/right", time.Second)
		dag = createWorkflow(t, c, `{"name": "dag", "trigger_type": "manual", "steps": [
			{"id": "start", "type": "data_transform", "config": {"jq": "1"}},
			{"id": "left", "type": "http_request", "depends_on": ["start"], "config": {"url": "`+rcv.URL+`/left"}},
			{"id": "right", "type": "http_request", "depends_on": ["start"], "config": {"url": "`+rcv.URL+`/right"}},
			{"id": "join", "type": "data_transform", "depends_on": ["left", "right"],
			 "config": {"mapping": {"both": "steps.left.output.status + steps.right.output.status"}}}]}`)
		de := waitFinished(t, c, execute(t, c, dag, nil), 60*time.Second)
		l, rt := rcv.span("/left"), rcv.span("/right")
		if de.Status != "completed" || l[0].After(rt[1]) || rt[0].After(l[1]) {
			t.Errorf("dag %s: left %v–%v, right %v–%v (the branches did not overlap)", de.Status, l[0], l[1], rt[0], rt[1])
		}
		t.Logf("DAG branches: left %v–%v, right %v–%v; execution took %v", l[0].Format("15:04:05.000"), l[1].Format("15:04:05.000"),
			rt[0].Format("15:04:05.000"), rt[1].Format("15:04:05.000"), de.FinishedAt.Sub(*de.StartedAt))
		if de.step(t, "join").Output.(map[string]any)["both"] != 400.0 {
			t.Errorf("join %+v", de.step(t, "join"))
		}
	})
	t.Run("a failing step is retried per its policy", func(t *testing.T) {
		c := s.client(t)
		// A failing step is retried per its policy, then fails the execution with the error.
		rcv.answer("/flaky", 500, 500, 500, 500, 500)
		flaky = createWorkflow(t, c, `{"name": "flaky", "trigger_type": "manual", "steps": [
			{"id": "call", "type": "http_request", "config": {"url": "`+rcv.URL+`/flaky"},
			 "retry": {"max_attempts": 3, "initial_interval": "100ms", "backoff_coefficient": 2}},
			{"id": "skipped", "type": "data_transform", "condition": "input.go == true", "config": {"jq": "1"}}]}`)
		fe := waitFinished(t, c, execute(t, c, flaky, nil), 60*time.Second)
		call := fe.step(t, "call")
		if fe.Status != "failed" || call.Status != "failed" || call.Attempts != 3 || rcv.count("/flaky") != 3 ||
			!strings.Contains(call.Error, "answered 500") || !strings.Contains(fe.Error, "step call failed") {
			t.Errorf("flaky: %s %q; call %+v; %d hits", fe.Status, fe.Error, call, rcv.count("/flaky"))
		}
	})
	t.Run("a condition skips a step", func(t *testing.T) {
		c := s.client(t)
		// A condition skips a step (recorded as skipped).
		cond := createWorkflow(t, c, `{"name": "cond", "trigger_type": "manual", "steps": [
			{"id": "big", "type": "data_transform", "condition": "input.amount > 100", "config": {"jq": "\"big\""}},
			{"id": "always", "type": "data_transform", "config": {"mapping": {"big": "steps.big.status"}}}]}`)
		ce := waitFinished(t, c, execute(t, c, cond, map[string]any{"input_data": map[string]any{"amount": 5}}), 30*time.Second)
		if ce.Status != "completed" || ce.step(t, "big").Status != "skipped" || ce.step(t, "always").Output.(map[string]any)["big"] != "skipped" {
			t.Errorf("condition: %+v", ce.Steps)
		}
	})
	t.Run("wait_for_signal shows live detail and a signal resumes it", func(t *testing.T) {
		c := s.client(t)
		// wait_for_signal: live detail while it waits, then /signal resumes it with the payload.
		approval := createWorkflow(t, c, `{"name": "approval", "trigger_type": "manual", "steps": [
			{"id": "approve", "type": "wait_for_signal", "config": {"signal": "approval", "timeout": "1h"}},
			{"id": "after", "type": "data_transform", "config": {"mapping": {"by": "steps.approve.output.by"}}}]}`)
		ae := execute(t, c, approval, nil)
		eventually(t, 30*time.Second, "the execution to wait for the signal", func() bool {
			d := getExecution(t, c, ae)
			st := d.step(t, "approve")
			return d.Live && st.Status == "waiting" && st.WaitingFor == "approval" && d.step(t, "after").Status == "pending"
		})
		if r := c.post("/api/v1/executions/"+ae+"/signal/approval", map[string]any{"by": "boss"}); r.Status != 202 {
			t.Fatalf("signal: %d %s", r.Status, r.Body)
		}
		done := waitFinished(t, c, ae, 30*time.Second)
		if done.Status != "completed" || done.step(t, "after").Output.(map[string]any)["by"] != "boss" || done.Live {
			t.Errorf("after the signal: %+v", done)
		}
		if r := c.post("/api/v1/executions/"+ae+"/signal/approval", nil); r.Status != 409 {
			t.Errorf("signal to a finished execution: %d", r.Status)
		}
	})
	t.Run("cancel stops a waiting execution", func(t *testing.T) {
		c := s.client(t)
		// Cancel and terminate.
		sleepy = createWorkflow(t, c, `{"name": "sleepy", "trigger_type": "manual", "steps": [
			{"id": "nap", "type": "delay", "config": {"duration": "1h"}},
			{"id": "after", "type": "data_transform", "config": {"jq": "1"}}]}`)
		ce1 := execute(t, c, sleepy, nil)
		eventually(t, 30*time.Second, "the delay to start", func() bool { return getExecution(t, c, ce1).step(t, "nap").Status == "waiting" })
		if r := c.post("/api/v1/executions/"+ce1+"/cancel", nil); r.Status != 202 {
			t.Fatalf("cancel: %d %s", r.Status, r.Body)
		}
		if got := waitFinished(t, c, ce1, 30*time.Second); got.Status != "cancelled" || got.step(t, "nap").Status != "cancelled" ||
			got.step(t, "after").Status != "pending" {
			t.Errorf("cancelled: %+v", got)
		}
	})
	t.Run("terminate ends an execution and it cannot be cancelled after", func(t *testing.T) {
		if sleepy == "" {
			t.Skip("needs the sleepy workflow")
		}
		c := s.client(t)
		te = execute(t, c, sleepy, nil)
		eventually(t, 30*time.Second, "the delay to start", func() bool { return getExecution(t, c, te).step(t, "nap").Status == "waiting" })
		if r := c.post("/api/v1/executions/"+te+"/terminate", map[string]any{"reason": "enough"}); r.Status != 200 || r.JSON(t)["status"] != "terminated" {
			t.Errorf("terminate: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/executions/"+te+"/cancel", nil); r.Status != 409 {
			t.Errorf("cancel a terminated execution: %d", r.Status)
		}
	})
	t.Run("same Idempotency-Key runs once", func(t *testing.T) {
		c := s.client(t)
		// The same Idempotency-Key gives the same execution and runs nothing twice.
		once = createWorkflow(t, c, `{"name": "once", "trigger_type": "manual", "steps": [
			{"id": "call", "type": "http_request", "config": {"url": "`+rcv.URL+`/once"}}]}`)
		r1 := c.post("/api/v1/workflows/"+once+"/execute", nil, "Idempotency-Key", "order-42")
		r2 := c.post("/api/v1/workflows/"+once+"/execute", nil, "Idempotency-Key", "order-42")
		if r1.Status != 202 || r2.Status != 202 || r1.JSON(t)["id"] != r2.JSON(t)["id"] || r2.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("idempotency: %s / %s", r1.Body, r2.Body)
		}
		waitFinished(t, c, r1.JSON(t)["id"].(string), 30*time.Second)
		if rcv.count("/once") != 1 {
			t.Errorf("the idempotent execution ran %d times", rcv.count("/once"))
		}
		if list := c.get("/api/v1/executions?workflow_id=" + once).JSON(t)["items"].([]any); len(list) != 1 {
			t.Errorf("%d executions for one idempotency key", len(list))
		}
	})
	t.Run("a disabled workflow is refused", func(t *testing.T) {
		if once == "" {
			t.Skip("needs the once workflow")
		}
		c := s.client(t)
		// Disabled → 409; deleted → 404, its executions stay readable.
		if r := c.do("PUT", "/api/v1/workflows/"+once, `{"name": "once", "trigger_type": "manual", "enabled": false, "steps": [
			{"id": "call", "type": "http_request", "config": {"url": "`+rcv.URL+`/once"}}]}`); r.Status != 200 {
			t.Fatalf("disable: %d %s", r.Status, r.Body)
		}
		if r := c.post("/api/v1/workflows/"+once+"/execute", nil); r.Status != 409 {
			t.Errorf("execute a disabled workflow: %d %s", r.Status, r.Body)
		}
	})
	t.Run("a deleted workflow is not found and its executions stay readable", func(t *testing.T) {
		if sleepy == "" || te == "" {
			t.Skip("needs the sleepy workflow and its terminated run")
		}
		c := s.client(t)
		if r := c.do("DELETE", "/api/v1/workflows/"+sleepy, nil); r.Status != 204 {
			t.Errorf("delete: %d", r.Status)
		}
		if r := c.post("/api/v1/workflows/"+sleepy+"/execute", nil); r.Status != 404 {
			t.Errorf("execute a deleted workflow: %d", r.Status)
		}
		if got := getExecution(t, c, te); got.Status != "terminated" {
			t.Errorf("execution of a deleted workflow: %s", got.Status)
		}
	})
	t.Run("schedule fires, pauses, resumes and goes with its workflow", func(t *testing.T) {
		c := s.client(t)
		// A schedule with a short interval fires at least twice; pause stops it.
		sched := createWorkflow(t, c, `{"name": "every second", "trigger_type": "schedule",
			"schedule": {"interval": "1s", "input_data": {"from": "schedule"}, "priority": "low"},
			"steps": [{"id": "tick", "type": "http_request", "config": {"url": "`+rcv.URL+`/tick?from={{ input.from }}"}}]}`)
		eventually(t, 60*time.Second, "two scheduled runs", func() bool {
			items := c.get("/api/v1/executions?status=completed&workflow_id=" + sched).JSON(t)["items"].([]any)
			return len(items) >= 2
		})
		if items := c.get("/api/v1/executions?workflow_id=" + sched).JSON(t)["items"].([]any); items[0].(map[string]any)["triggered_by"] != "schedule" ||
			items[0].(map[string]any)["priority"] != "low" {
			t.Errorf("scheduled execution %v", items[0])
		}
		if r := c.post("/api/v1/workflows/"+sched+"/pause", nil); r.Status != 200 || r.JSON(t)["paused"] != true {
			t.Fatalf("pause: %d %s", r.Status, r.Body)
		}
		// A run the schedule started before the pause may still be on its way to the receiver: wait
		// until the schedule has none running (however slow the machine), then nothing may arrive.
		schedule := s.Temporal.ScheduleClient().GetHandle(context.Background(), "workflow-schedule-"+sched)
		eventually(t, 30*time.Second, "the scheduled runs started before the pause to finish", func() bool {
			desc, err := schedule.Describe(context.Background())
			return err == nil && desc.Schedule.State.Paused && len(desc.Info.RunningWorkflows) == 0
		})
		paused := rcv.count("/tick")
		time.Sleep(3 * time.Second) // an absence: three intervals of the schedule without a run
		if n := rcv.count("/tick"); n != paused {
			t.Errorf("the paused schedule ran %d more times", n-paused)
		}
		if r := c.post("/api/v1/workflows/"+sched+"/resume", nil); r.Status != 200 || r.JSON(t)["paused"] != false {
			t.Errorf("resume: %d %s", r.Status, r.Body)
		}
		eventually(t, 30*time.Second, "a run after resume", func() bool { return rcv.count("/tick") > paused })
		if r := c.do("DELETE", "/api/v1/workflows/"+sched, nil); r.Status != 204 {
			t.Errorf("delete the scheduled workflow: %d", r.Status)
		}
		if _, err := s.Temporal.ScheduleClient().GetHandle(context.Background(), "workflow-schedule-"+sched).Describe(context.Background()); err == nil {
			t.Error("the schedule survived its workflow")
		}
	})
	t.Run("a manual workflow has no schedule to pause", func(t *testing.T) {
		if dag == "" {
			t.Skip("needs the dag workflow")
		}
		c := s.client(t)
		if r := c.post("/api/v1/workflows/"+dag+"/pause", nil); r.Status != 409 {
			t.Errorf("pause a manual workflow: %d", r.Status)
		}
	})
	t.Run("starter workflows create, execute --wait and executions show", func(t *testing.T) {
		// The operator CLI: create from a file, execute with --wait (a line per step), show.
		file := filepath.Join(t.TempDir(), "def.json")
		if err := os.WriteFile(file, []byte(`{"name": "cli", "trigger_type": "manual", "steps": [
			{"id": "shape", "type": "data_transform", "config": {"mapping": {"greeting": "'hello ' + input.name"}}},
			{"id": "pause", "type": "delay", "config": {"duration": "200ms"}},
			{"id": "post", "type": "http_request", "config": {"method": "POST", "url": "`+rcv.URL+`/cli", "body": "{{ steps.shape.output.greeting }}"}}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := s.starter(t, "workflows", "create", "-f", file)
		if code != 0 || !strings.Contains(out, "version 1") {
			t.Fatalf("starter workflows create: %d\n%s", code, out)
		}
		cliID := strings.Fields(out)[1]
		out, code = s.starter(t, "workflows", "execute", cliID, "--input", `{"name": "ops"}`, "--wait")
		if code != 0 || !contains(out, "step shape", "step pause", "step post", "completed") {
			t.Errorf("starter workflows execute --wait: %d\n%s", code, out)
		}
		if rcv.body("/cli", 0) != "hello ops" {
			t.Errorf("cli run posted %q", rcv.body("/cli", 0))
		}
		execID := strings.Fields(out)[1]
		out, code = s.starter(t, "executions", "show", execID)
		if code != 0 || !contains(out, "completed", "shape", "data_transform", "hello ops", "delay") {
			t.Errorf("starter executions show: %d\n%s", code, out)
		}
	})
	t.Run("starter execute of a failing workflow exits 1", func(t *testing.T) {
		if flaky == "" {
			t.Skip("needs the flaky workflow")
		}
		rcv.answer("/flaky", 500, 500, 500)
		out, code := s.starter(t, "workflows", "execute", flaky, "--wait")
		if code != 1 || !contains(out, "failed", "answered 500") {
			t.Errorf("starter execute of a failing workflow: %d\n%s", code, out)
		}
	})
}
