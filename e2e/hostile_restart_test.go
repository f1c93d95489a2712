package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/testenv"
)

// TestPoisonPillsCannotCrashLoop fills a data directory with templates, rules and executions of
// every hostile class — the executions killed (SIGKILL) while a delay step holds them before
// their hostile step — and restarts the service (`make run`'s binary, its own process) on it:
// the service stays up, every execution fails for good at its hostile step, every rule
// execution ends, the templates answer 422, and neither the service's resident set nor its
// helpers' grows by 256 MB.
func TestPoisonPillsCannotCrashLoop(t *testing.T) {
	dir := t.TempDir()
	port := testenv.FreePort(t)
	env := map[string]string{
		"ENV": "test", "HOST": "127.0.0.1", "PORT": fmt.Sprint(port), "DATA_DIR": dir,
		"TEMPORAL_PORT": fmt.Sprint(testenv.FreePort(t)), "TEMPORAL_UI_PORT": "0",
		"INTERNAL_API_KEY": "poison-" + testenv.RandomHex(8), "JWT_SECRET_KEY": "j", "WEBHOOK_SECRET_KEY": "w",
		"RATE_LIMIT_PER_SECOND": "1000", "RATE_LIMIT_BURST": "1000",
	}
	c := &call{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), key: env["INTERNAL_API_KEY"], header: http.Header{}}
	ready := func(p *process) {
		eventually(t, 2*time.Minute, "the service to be ready", func() bool {
			select {
			case err := <-p.done:
				p.done <- err
				t.Fatalf("the service exited: %v\n%s", err, p.out.String())
			default:
			}
			res, err := contractGet(t, c.base+"/ready")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == 200
		})
	}
	first := startProcess(t, "automation", env)
	ready(first)

	const delay = 6 * time.Second
	var executions, templates []string
	type ruleEvent struct{ rule, event string }
	var fired []ruleEvent
	var started time.Time
	for _, hc := range hostileClasses {
		if hc.static {
			continue // refused when saved: it never reaches the data directory
		}
		name := slug(hc.name)
		if r := c.post("/api/v1/notifications/templates", map[string]any{"id": "poison_" + name, "channel": "email",
			"subject": "Hello", "body": hc.template}); r.Status != 201 {
			t.Fatalf("template %s: %d %s", name, r.Status, r.Body)
		}
		templates = append(templates, "poison_"+name)
		configs := []map[string]any{{"data": hc.template, "jq": "."}, {"jq": hc.jq}}
		if hc.expr != "" {
			configs = append(configs, map[string]any{"mapping": map[string]any{"x": hc.expr}})
		}
		for i, config := range configs {
			wf := createWorkflow(t, c, mustJSON(t, map[string]any{"name": fmt.Sprintf("poison %s %d", name, i), "trigger_type": "manual",
				"steps": []any{
					map[string]any{"id": "wait", "type": "delay", "config": map[string]any{"duration": delay.String()}},
					map[string]any{"id": "hostile", "type": "data_transform", "config": config},
				}}))
			if started.IsZero() {
				started = time.Now()
			}
			executions = append(executions, execute(t, c, wf, map[string]any{"input_data": map[string]any{}}))
		}
		for _, kind := range []string{"action", "dedup"} {
			rule := hostileRule("poison_"+name+"_"+kind, hc.template, "")
			if kind == "dedup" {
				rule = hostileRule("poison_"+name+"_"+kind, "{{ event.id }}", hc.template)
			}
			id := createRule(t, c, rule)
			fired = append(fired, ruleEvent{id, postEvent(t, c, map[string]any{"type": "hostile.poison_" + name + "_" + kind, "data": map[string]any{}})})
		}
	}
	first.Kill()
	<-first.done
	if since := time.Since(started); since >= delay {
		t.Fatalf("the first executions had passed their delay (%v) before the kill", since)
	}
	t.Logf("killed the service with %d executions waiting, %d rules fired, %d templates stored", len(executions), len(fired), len(templates))

	helperStart := freshHelperRSS(t, binary(t, "automation"))
	second := startProcess(t, "automation", env)
	ready(second)
	pid := second.cmd.Process.Pid
	serviceStart, _, _ := procStatus(pid)
	w := watchRSS(pid, serviceStart, helperStart, func() []int { return childrenOf(pid) })
	clientFor := func(t *testing.T) *call { return &call{t: t, base: c.base, key: c.key, header: http.Header{}} }
	t.Run("every execution fails for good at its hostile step", func(t *testing.T) {
		c := clientFor(t)
		for _, id := range executions {
			x := waitFinished(t, c, id, 3*time.Minute)
			st := x.step(t, "hostile")
			if x.Status != "failed" || st.Status != "failed" || st.Attempts != 1 || !strings.Contains(st.Error, "limit") {
				t.Errorf("execution %s: %s, step %+v", id, x.Status, st)
			}
		}
	})
	t.Run("every rule execution ends at a limit", func(t *testing.T) {
		c := clientFor(t)
		for _, f := range fired {
			x := executionFor(t, c, f.rule, f.event)
			if (x.Status != "failed" && x.Status != "error") || !strings.Contains(x.Reason+fmt.Sprint(x.Actions), "limit") {
				t.Errorf("rule execution: %+v", x)
			}
		}
	})
	t.Run("the stored templates render as 422", func(t *testing.T) {
		c := clientFor(t)
		for _, id := range templates {
			if r := c.post("/api/v1/notifications/templates/"+id+"/render", map[string]any{"data": map[string]any{}}); r.Status != 422 {
				t.Errorf("render %s: %d %s", id, r.Status, r.Body)
			}
		}
	})
	t.Run("the restarted service stays up", func(t *testing.T) {
		c := clientFor(t)
		select {
		case err := <-second.done:
			t.Fatalf("the restarted service exited: %v", err)
		default:
		}
		if r := c.get("/live"); r.Status != 200 {
			t.Errorf("/live: %d", r.Status)
		}
	})
	t.Run("neither the service's resident set nor a helper's grows by 256 MB", func(t *testing.T) {
		service, helper, n := w.stop()
		t.Logf("after the restart: resident set growth: service %d MB (from %d MB at ready), helpers %d MB at most (%d seen, from %d MB fresh)",
			service>>20, serviceStart>>20, helper>>20, n, helperStart>>20)
		if service >= 256<<20 || helper >= 256<<20 {
			t.Errorf("resident set grew by %d MB (service) and %d MB (a helper); want less than 256 MB", service>>20, helper>>20)
		}
	})
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces, so read after its closing parenthesis.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			if child, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}
