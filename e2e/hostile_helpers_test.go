package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileClass is one class of hostile input, written for each engine that evaluates user text:
// a template (gonja), a jq program (gojq) and an expression (expr-lang; "" where the language
// has no such construct: expressions cannot define functions, so they cannot recurse).
type hostileClass struct {
	name, template, jq, expr string
	// static: refused when saved (422) rather than when evaluated.
	static bool
}

var hostileClasses = []hostileClass{
	{name: "unbounded recursion",
		template: `{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}`,
		jq:       `def f: 1 + f; f`},
	{name: "nested loops",
		template: `{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}`,
		jq:       `[range(100000) as $i | range(100000)] | length`,
		expr:     `len(filter(1..1000000, all(1..1000000, # > 0)))`},
	{name: "padding",
		template: `{{ 'x'|center(200000000) }}`,
		jq:       `"x" + " " * 200000000`,
		expr:     `"x" + repeat(" ", 200000000)`},
	{name: "repetition",
		template: `{{ 'x' * 200000000 }}`,
		jq:       `"x" * 200000000`,
		expr:     `repeat("x", 200000000)`},
	{name: "formatting filters",
		template: `{{ '%200000000d'|format(1) }}`,
		jq:       `("x" * 1000000) as $s | [range(1000) | $s] | @csv`,
		expr:     `join(map(1..100000, repeat("x", 100)), repeat("y", 1000))`},
	{name: "string and list multiplication",
		template: `{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}`,
		jq:       `reduce range(40) as $i ([1]; . + .) | length`,
		expr:     `let a = repeat("x", 900000); let b = a + a; len(b + b)`},
	{name: "integer overflow in filters",
		template: `{{ 'x' * 9223372036854775807 }}{{ 'y'|center(9223372036854775807) }}`,
		jq:       `"x" * 1e308`,
		expr:     `repeat("x", 9223372036854775807)`},
	{name: "deep nesting", static: true,
		template: "{{ " + strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300) + " }}",
		jq:       strings.Repeat("[", 300) + strings.Repeat("]", 300),
		expr:     strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300)},
}

func slug(s string) string { return strings.ReplaceAll(s, " ", "_") }

// procStatus reads a process's resident set (VmRSS) and its peak (VmHWM), in bytes.
func procStatus(pid int) (rss, peak int64, ok bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	return rss, peak, rss > 0
}

// rssWatch follows the peak resident set of a service process and of its evaluation helpers
// (whose ids pids returns as they come and go) while hostile input runs.
type rssWatch struct {
	service      int
	serviceStart int64
	helperStart  int64
	pids         func() []int
	mu           sync.Mutex
	helperPeak   int64
	helpers      map[int]bool
	done         chan struct{}
	stopped      chan struct{}
}

// watchRSS starts following service from serviceStart (its resident set before) and the
// helpers from helperStart (the resident set of a helper that has just started).
func watchRSS(service int, serviceStart, helperStart int64, pids func() []int) *rssWatch {
	w := &rssWatch{service: service, serviceStart: serviceStart, helperStart: helperStart, pids: pids,
		helpers: map[int]bool{}, done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(w.stopped)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
				w.sample()
			}
		}
	}()
	return w
}

func (w *rssWatch) sample() {
	for _, pid := range w.pids() {
		if _, peak, ok := procStatus(pid); ok {
			w.mu.Lock()
			w.helpers[pid] = true
			w.helperPeak = max(w.helperPeak, peak)
			w.mu.Unlock()
		}
	}
}

// stop ends the watch and returns how far the service's and the helpers' resident sets grew.
func (w *rssWatch) stop() (service, helper int64, helpers int) {
	close(w.done)
	<-w.stopped
	w.sample()
	_, peak, _ := procStatus(w.service)
	w.mu.Lock()
	defer w.mu.Unlock()
	return peak - w.serviceStart, max(w.helperPeak-w.helperStart, 0), len(w.helpers)
}

// within checks that an answer came in time and says how long it took.
func within(t *testing.T, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	took := time.Since(start)
	if took > limit {
		t.Errorf("answered after %v, more than %v", took, limit)
	}
	return took
}

// limitProblem checks r is a 422 with a problem at field (or inside it: field.key) that names
// an evaluation limit.
func limitProblem(t *testing.T, r reply, field string) {
	t.Helper()
	for f, msg := range problems(t, r) {
		if (f == field || strings.HasPrefix(f, field+".")) && strings.Contains(msg, "limit") {
			return
		}
	}
	t.Errorf("want a limit named at %q, got %s", field, r.Body)
}

// freshHelperRSS is the resident set of a helper process of binary that has just started (the
// pages of the binary its start touches): the base from which a helper's growth counts.
func freshHelperRSS(t *testing.T, binary string) int64 {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = []string{"AUTOMATION_EVAL_HELPER=1"}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	var hello map[string]any
	if err := json.NewDecoder(stdout).Decode(&hello); err != nil {
		t.Fatalf("helper hello: %v", err)
	}
	rss, _, _ := procStatus(cmd.Process.Pid)
	return rss
}
