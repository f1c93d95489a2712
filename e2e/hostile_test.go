package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/app"
	"github.com/pyairtable/automation-domain/sandbox"
)

// TestHostileInputHarmsNothing tries every class of hostile input (unbounded recursion, nested
// loops, huge intermediate values, integer overflow, deep nesting) on every surface that
// evaluates user text, over HTTP against the running stack (evaluations in helper processes,
// the default): each request answers a 422 naming the field within 2 s, or the step or action
// fails for good (one attempt) with the limit in its error; the service stays up, and neither
// its resident set nor a helper's grows by 256 MB.
func TestHostileInputHarmsNothing(t *testing.T) {
	var pool *sandbox.Pool
	s := startEmbeddedWired(t, testConfig(t, t.TempDir(), nil), func(d *app.Deps) { pool = d.EvalPool })
	c := s.client(t)
	if pool == nil {
		t.Fatal("the stack evaluates in process; want helper processes (EVAL_ISOLATION=process)")
	}

	// A helper's resident set once started and warm: the base of the helpers' growth.
	if r := c.post("/api/v1/automation/test", map[string]any{"rule": hostileRule("warm", "{{ event.type }}", ""),
		"event": map[string]any{"data": map[string]any{}}}); r.Status != 200 {
		t.Fatalf("warm-up dry run: %d %s", r.Status, r.Body)
	}
	var helperStart int64
	for _, pid := range pool.PIDs() {
		rss, _, _ := procStatus(pid)
		helperStart = max(helperStart, rss)
	}
	_, serviceStart, _ := procStatus(os.Getpid())
	w := watchRSS(os.Getpid(), serviceStart, helperStart, pool.PIDs)
	const answer = 2 * time.Second

	for _, hc := range hostileClasses {
		t.Run(hc.name, func(t *testing.T) {
			name := slug(hc.name)

			t.Run("template create and render", func(t *testing.T) {
				c := s.client(t)
				start := time.Now()
				r := c.post("/api/v1/notifications/templates", map[string]any{"id": "hostile_" + name, "channel": "email",
					"subject": "Hello", "body": hc.template})
				if hc.static {
					limitProblem(t, r, "body")
					within(t, start, answer)
					return
				}
				if r.Status != 201 {
					t.Fatalf("create: %d %s", r.Status, r.Body)
				}
				start = time.Now()
				r = c.post("/api/v1/notifications/templates/hostile_"+name+"/render", map[string]any{"data": map[string]any{}})
				limitProblem(t, r, "body")
				t.Logf("render answered %d in %v", r.Status, within(t, start, answer))
			})

			t.Run("rule dry-run inline", func(t *testing.T) {
				c := s.client(t)
				start := time.Now()
				r := c.post("/api/v1/automation/test", map[string]any{"rule": hostileRule(name, hc.template, ""),
					"event": map[string]any{"data": map[string]any{"n": 1}}})
				limitProblem(t, r, "rule.actions[0].data")
				t.Logf("inline dry run answered %d in %v", r.Status, within(t, start, answer))
			})

			t.Run("rule dry-run by id", func(t *testing.T) {
				c := s.client(t)
				start := time.Now()
				r := c.post("/api/v1/automation/rules", hostileRule(name+"_dry", hc.template, ""))
				if hc.static {
					limitProblem(t, r, "actions[0].data")
					within(t, start, answer)
					return
				}
				if r.Status != 201 {
					t.Fatalf("create rule: %d %s", r.Status, r.Body)
				}
				id := r.JSON(t)["id"].(string)
				c.post("/api/v1/automation/rules/"+id+"/disable", nil)
				start = time.Now()
				r = c.post("/api/v1/automation/rules/"+id+"/test", map[string]any{"event": map[string]any{"data": map[string]any{}}})
				limitProblem(t, r, "actions[0].data")
				t.Logf("dry run by id answered %d in %v", r.Status, within(t, start, answer))
			})

			t.Run("rule action fired by an event", func(t *testing.T) {
				c := s.client(t)
				if hc.static {
					return // refused when saved (above)
				}
				id := createRule(t, c, hostileRule(name+"_action", hc.template, ""))
				ev := postEvent(t, c, map[string]any{"type": "hostile." + name + "_action", "data": map[string]any{}})
				x := executionFor(t, c, id, ev)
				if x.Status != "failed" || len(x.Actions) != 1 || x.Actions[0].Status != "failed" ||
					x.Actions[0].Attempts != 1 || !strings.Contains(x.Actions[0].Error, "limit") {
					t.Errorf("execution: %+v", x)
				}
				c.post("/api/v1/automation/rules/"+id+"/disable", nil)
			})

			t.Run("dedup_key", func(t *testing.T) {
				c := s.client(t)
				start := time.Now()
				r := c.post("/api/v1/automation/rules", hostileRule(name+"_dedup", "{{ event.id }}", hc.template))
				if hc.static {
					limitProblem(t, r, "dedup_key")
					within(t, start, answer)
					return
				}
				if r.Status != 201 {
					t.Fatalf("create rule: %d %s", r.Status, r.Body)
				}
				id := r.JSON(t)["id"].(string)
				start = time.Now()
				r = c.post("/api/v1/automation/rules/"+id+"/test", map[string]any{"event": map[string]any{"data": map[string]any{}}})
				limitProblem(t, r, "dedup_key")
				within(t, start, answer)
				ev := postEvent(t, c, map[string]any{"type": "hostile." + name + "_dedup", "data": map[string]any{}})
				x := executionFor(t, c, id, ev)
				if x.Status != "error" || !strings.Contains(x.Reason, "dedup_key") || !strings.Contains(x.Reason, "limit") {
					t.Errorf("execution: %+v", x)
				}
				c.post("/api/v1/automation/rules/"+id+"/disable", nil)
			})

			steps := map[string]map[string]any{
				"workflow step template": {"data": hc.template, "jq": "."},
				"jq":                     {"jq": hc.jq},
				"mapping":                {"mapping": map[string]any{"x": hc.expr}},
			}
			for _, surface := range []string{"workflow step template", "jq", "mapping"} {
				t.Run(surface, func(t *testing.T) {
					c := s.client(t)
					if surface == "mapping" && hc.expr == "" {
						t.Skip("expressions cannot define functions: no recursion to try")
					}
					start := time.Now()
					r := c.post("/api/v1/workflows", hostileWorkflow(name+" "+surface, steps[surface]))
					if hc.static {
						p := problems(t, r)
						if len(p) == 0 || !strings.Contains(fmt.Sprint(p), "limit") {
							t.Errorf("want the nesting limit: %s", r.Body)
						}
						within(t, start, answer)
						return
					}
					if r.Status != 201 {
						t.Fatalf("create workflow: %d %s", r.Status, r.Body)
					}
					x := waitFinished(t, c, execute(t, c, r.JSON(t)["id"].(string), map[string]any{"input_data": map[string]any{}}), time.Minute)
					st := x.step(t, "hostile")
					if x.Status != "failed" || st.Status != "failed" || st.Attempts != 1 || !strings.Contains(st.Error, "limit") {
						t.Errorf("execution %s: step %+v", x.Status, st)
					}
					if st.StartedAt != nil && st.FinishedAt != nil {
						t.Logf("step failed after %v: %s", st.FinishedAt.Sub(*st.StartedAt), st.Error)
					}
				})
			}
		})
	}

	if r := c.get("/live"); r.Status != 200 {
		t.Errorf("/live: %d", r.Status)
	}
	service, helper, n := w.stop()
	t.Logf("resident set growth: service %d MB, helpers %d MB at most (%d helper processes seen, started %d, lost %d)",
		service>>20, helper>>20, n, pool.Stats().Started, pool.Stats().Lost)
	if service >= 256<<20 || helper >= 256<<20 {
		t.Errorf("resident set grew by %d MB (service) and %d MB (a helper); want less than 256 MB", service>>20, helper>>20)
	}
}

// hostileRule is a rule on the event type hostile.<name> whose emit_event action renders text
// into its data, with dedup as its dedup_key when set.
func hostileRule(name, text, dedup string) map[string]any {
	r := map[string]any{
		"name":    "hostile " + name,
		"trigger": map[string]any{"type": "event", "event_type": "hostile." + name},
		"actions": []any{map[string]any{"type": "emit_event", "event_type": "hostile.rendered", "data": map[string]any{"v": text}}},
	}
	if dedup != "" {
		r["dedup_key"] = dedup
	}
	return r
}

// hostileWorkflow is a workflow of one data_transform step, "hostile", with config.
func hostileWorkflow(name string, config map[string]any) map[string]any {
	return map[string]any{"name": "hostile " + name, "trigger_type": "manual",
		"steps": []any{map[string]any{"id": "hostile", "type": "data_transform", "config": config}}}
}
