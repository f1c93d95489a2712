package definition

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/templating"
)

// fuzzLimits keep each input cheap, so that the fuzzer tries many.
var fuzzLimits = sandbox.Limits{Timeout: 50 * time.Millisecond, MaxSteps: 20_000, MaxValueBytes: 64 << 10,
	MaxAllocBytes: 1 << 20}

// tooSlow: an evaluation that outlives its budget by this much has escaped it.
const tooSlow = 5*50*time.Millisecond + time.Second

var fuzzData = `{"input": {"records": [{"amount": 3, "k": "a"}, {"amount": 4.5, "k": "b"}], "name": "ada", "n": 2},
	"steps": {"a": {"output": {"x": [1, 2, 3]}}}}`

// FuzzJQ runs arbitrary jq programs over arbitrary data under the budget: no panic may escape,
// no run may outlive its budget by much, and the process must survive.
func FuzzJQ(f *testing.F) {
	for _, h := range hostileJQ {
		f.Add(h.src, `{"a": {}}`)
	}
	for _, src := range []string{
		`{rows: (.input.records | length), total: ([.input.records[].amount] | add)}`, `.input.records | map(.k) | join(",")`,
		`def f(x): x | x; f(.input.n * 2)`, `[paths] | length`, `.input |= with_entries(.value |= tostring)`,
		`reduce .input.records[] as $r ({}; .[$r.k] += $r.amount)`, `.input.name | gsub("a"; "b") | ascii_upcase`,
		`[limit(5; repeat(.input.n))] | @csv`, `.steps.a.output.x | .[1:] + [7] | tojson | fromjson`,
	} {
		f.Add(src, fuzzData)
	}
	e := NewEvaluator(fuzzLimits, nil)
	f.Fuzz(func(t *testing.T, src, data string) {
		var d any
		if json.Unmarshal([]byte(data), &d) != nil {
			d = nil
		}
		start := time.Now()
		_, _ = e.RunJQ(context.Background(), src, d)
		if took := time.Since(start); took > tooSlow {
			t.Fatalf("jq took %v, over a budget of %v", took, fuzzLimits.Timeout)
		}
	})
}

// FuzzExpression evaluates arbitrary expressions as a condition and as a mapping over
// arbitrary data under the budget.
func FuzzExpression(f *testing.F) {
	for _, src := range []string{
		`len(input.records) > 0 && input.n == 2`, `"hi " + input.name`, `input.n * 2 + len(steps.a.output.x)`,
		`map(input.records, #.amount) | sum()`, `repeat("x", 200000000)`, `let a = repeat("x", 60000); let b = a + a; b + b`,
		`all(1..100000, all(1..100000, # > 0))`, `join(map(1..10000, repeat("x", 100)), repeat("y", 100))`,
		`replace(repeat("x", 1000), "", repeat("y", 1000))`, `repeat("x", 9223372036854775807)`, `((((((((1))))))))`,
		`reduce(1..64, #acc + #acc, "x")`, `len(1..1000000000)`, `filter(input.records, .k == "a")[0].amount`,
	} {
		f.Add(src, fuzzData)
	}
	e := NewEvaluator(fuzzLimits, nil)
	f.Fuzz(func(t *testing.T, src, data string) {
		var scope map[string]any
		_ = json.Unmarshal([]byte(data), &scope)
		start := time.Now()
		_, _ = e.EvalCondition(context.Background(), src, scope)
		_, _ = e.EvalMapping(context.Background(), map[string]string{"x": src, "y": src + " + 1"}, scope)
		if took := time.Since(start); took > 2*tooSlow {
			t.Fatalf("evaluation took %v, over a budget of %v", took, fuzzLimits.Timeout)
		}
	})
}

// FuzzValidate validates arbitrary definitions: validation never panics, and a definition it
// accepts has steps.
func FuzzValidate(f *testing.F) {
	for _, def := range []string{
		`{"name": "w", "trigger_type": "manual", "steps": [{"id": "a", "type": "data_transform", "config": {"jq": "."}}]}`,
		`{"name": "w", "trigger_type": "manual", "steps": [{"id": "a", "type": "data_transform", "config": {"mapping": {"x": "input.n + 1"}}},
			{"id": "b", "type": "http_request", "config": {"url": "https://example.com/{{ steps.a.output.x }}", "method": "POST"}}]}`,
		`{"name": "w", "trigger_type": "schedule", "schedule": {"cron": "*/5 * * * *"}, "steps": [{"id": "d", "type": "delay", "config": {"duration": "1m"}}]}`,
		`{"name": "w", "trigger_type": "manual", "steps": [{"id": "b", "type": "branch", "config": {"cases": [{"when": "input.n > 1", "steps": [{"id": "c", "type": "delay", "config": {"duration": "1s"}}]}]}}]}`,
		`{"name": "w", "trigger_type": "manual", "steps": [{"id": "p", "type": "parallel", "config": {"branches": [[{"id": "x", "type": "delay", "config": {"duration": "1s"}}]]}}]}`,
		`{"name": "w", "trigger_type": "manual", "steps": [{"id": "a", "type": "data_transform", "config": {"jq": "` +
			`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"}}]}`,
		`{"name": "w", "trigger_type": "manual", "steps": [{"id": "a", "type": "data_transform", "depends_on": ["a"], "config": {"data": "{% macro f() %}{{ f() }}{% endmacro %}", "jq": "."}}]}`,
	} {
		f.Add(def)
	}
	o := Options{Templates: templating.New(templating.Options{Limits: fuzzLimits}), Limits: fuzzLimits,
		Unavailable: func(string) string { return "" }}
	f.Fuzz(func(t *testing.T, raw string) {
		var d Definition
		if json.Unmarshal([]byte(raw), &d) != nil {
			return
		}
		if problems := Validate(&d, o); len(problems) == 0 && len(d.Steps) == 0 {
			t.Fatalf("a definition without steps passed validation: %s", raw)
		}
	})
}
