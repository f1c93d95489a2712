package definition

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/itchyny/gojq"

	"github.com/pyairtable/automation-domain/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.ServeHelperIfRequested(HelperHandlers())
	os.Exit(m.Run())
}

func evaluators(t *testing.T) map[string]*Evaluator {
	pool := sandbox.NewPool(sandbox.PoolConfig{Size: 2})
	t.Cleanup(func() { _ = pool.Close() })
	return map[string]*Evaluator{"in process": NewEvaluator(sandbox.Limits{}, nil), "helper process": NewEvaluator(sandbox.Limits{}, pool)}
}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// plainGojq runs src as gojq alone would, for comparison.
func plainGojq(t *testing.T, src string, data any) (any, error) {
	t.Helper()
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, err
	}
	code, err := gojq.Compile(q, gojq.WithEnvironLoader(func() []string { return nil }))
	if err != nil {
		return nil, err
	}
	var out []any
	iter := code.Run(data)
	for {
		v, ok := iter.Next()
		if !ok {
			break
		}
		if err, ok := v.(error); ok {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return out, nil
}

func normalized(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	_ = json.Unmarshal(b, &x)
	b, _ = json.Marshal(x)
	return string(b)
}

// The bounded programs give what gojq gives.
func TestJQKeepsItsMeaning(t *testing.T) {
	data := jsonValue(t, `{"input": {"records": [{"amount": 3, "k": "a"}, {"amount": 4, "k": "b"}, {"amount": 5, "k": "a"}]},
		"a": {"b": [1, 2]}, "s": "banana", "n": 5, "items": [3, 1, 2]}`)
	programs := []string{
		`{rows: (.input.records | length), total: ([.input.records[].amount] | add)}`,
		`.a.b[5] = 1`, `.a |= .b`, `.n += 2`, `.items[] |= tostring`, `.items |= map(. * 2)`, `.n //= 3`,
		`.items | map(. + 1)`, `.input.records | sort_by(.amount) | map(.k)`, `.input.records | group_by(.k) | map(length)`,
		`.input.records | unique_by(.k) | length`, `.input.records | min_by(.amount)`, `.input.records | max_by(.amount)`,
		`[.items[] | select(. > 1)]`, `"x" * 3`, `"x" * 0`, `"x" * -1`, `"a" + "b"`, `[1] + [2]`, `{a: 1} * {a: {b: 2}}`, `null + 1`,
		`def fact: if . <= 1 then 1 else . * (. - 1 | fact) end; 10 | fact`, `[path(..)] | length`,
		`def f: .a; path(f)`, `def f: .a.b; f |= 5`, `def f: .a; del(f)`, `reduce range(5) as $i (0; . + $i)`,
		`[foreach range(4) as $i (0; . + $i; [$i, .])]`, `.s | gsub("a"; "o")`, `.s | sub("(?<x>an)"; "[\(.x)]")`,
		`.s | [match("a"; "g").offset]`, `.s | test("nan")`, `.s | [splits("a")]`, `[[1, 2], [3, 4]] | [combinations]`,
		`[[1, 2]] | [combinations(2)]`, `fromstream(.a | tostream)`, `pick(.a.b[1])`, `.items | @csv`, `.s | @base64`,
		`"\(1 + 2) and \(.s)"`, `.a | tojson`, `.a | tostring`, `to_entries | map(.key)`, `[limit(3; repeat(1))]`,
		`.items | join(",")`, `try error("x") catch .`, `[paths] | length`, `def f(g): g; f(.n)`, `def f($x): $x + x; f(1)`,
		`def outer: def inner: . * 2; inner + 1; .n | outer`, `def f: def g: f; if . > 3 then . else . + 1 | g end; 1 | f`,
		`[.items[] as $x | $x * 2]`, `{(.s): .n}`, `.items as [$a, $b] | $a + $b`, `[.[] | numbers]`, `add(.items[])`,
		`.items | flatten`, `[[1, [2]]] | flatten(1)`, `[65, 66] | implode`, `walk(if type == "number" then . + 1 else . end) | .items`,
		`with_entries(.value |= type)`, `.a.b | first, last`, `[.items[] | tostring] | add`, `label $out | 1, break $out`,
		`[range(0; 10; 3)]`, `$__loc__`, `env`, `input_line_number? // "n/a"`, `.n as $n | [range($n)] | length`,
		`getpath(["a", "b", 0])`, `setpath(["x", 2]; 1) | .x`, `[splits(", *"; null)]? // 0`, `ascii_downcase? // "x"`,
		`.s | ltrimstr("ba")`, `[.items[] | . as $x | ($x | tostring) * 2]`, `.items | sort | reverse`,
		`.items | .[1:]`, `.s | .[2:4]`, `.items | index(1)`, `.s | explode | implode`, `[.items[] | {v: .}] | INDEX(.v) | keys`,
	}
	for mode, e := range evaluators(t) {
		for _, src := range programs {
			want, werr := plainGojq(t, src, data)
			got, err := e.RunJQ(context.Background(), src, data)
			if (werr == nil) != (err == nil) || err == nil && normalized(t, got) != normalized(t, want) {
				t.Errorf("%s: %s\n got %s, %v\nwant %s, %v", mode, src, normalized(t, got), err, normalized(t, want), werr)
			}
		}
	}
}

var hostileJQ = []struct {
	src   string
	limit sandbox.Limit
}{
	{`def f: 1 + f; f`, sandbox.LimitDepth},
	{`def f: f; f`, sandbox.LimitDepth},
	{`def f: (f, f); f`, sandbox.LimitDepth},
	{`def f(g): g | f(g); f(.)`, sandbox.LimitDepth},
	{`def f: try (1 + f) catch f; f`, sandbox.LimitDepth},
	{`[range(1e9)] | length`, sandbox.LimitSteps},
	{`reduce range(1e9) as $i (0; . + 1)`, sandbox.LimitSteps},
	{`[range(100000)] | map([range(100000)]) | length`, sandbox.LimitSteps},
	{`last(range(1e12))`, sandbox.LimitTime},
	{`[limit(100000000; repeat(1))] | length`, sandbox.LimitSteps},
	{`[[1]] | [combinations(100000000)] | length`, sandbox.LimitSteps},
	{`"x" * 200000000`, sandbox.LimitValue},
	{`"x" * 1e308`, sandbox.LimitValue},
	{`("x" * 1000000) * 1000`, sandbox.LimitValue},
	{`reduce range(40) as $i ("x"; . + .)`, sandbox.LimitValue},
	{`reduce range(40) as $i ([1]; . + .)`, sandbox.LimitValue},
	{`reduce range(40) as $i ("x"; . += .)`, sandbox.LimitValue},
	{`null | .[100000000] = 1`, sandbox.LimitValue},
	{`{a: []} | .a[100000000] |= 1`, sandbox.LimitValue},
	{`setpath([100000000]; 1)`, sandbox.LimitValue},
	{`[] | pick(.[100000000])`, sandbox.LimitValue},
	{`fromstream([[100000000], 1], [[100000000]])`, sandbox.LimitValue},
	{`("x" * 1000000) as $s | [range(1000) | $s] | join("")`, sandbox.LimitValue},
	{`("x" * 1000000) as $s | [range(1000) | $s] | tojson`, sandbox.LimitValue},
	{`("x" * 1000000) as $s | [range(1000) | $s] | @csv`, sandbox.LimitValue},
	{`("x" * 1000000) as $s | [range(1000) | $s] | add`, sandbox.LimitValue},
	{`("x" * 1000000) as $s | "\([range(1000) | $s])"`, sandbox.LimitValue},
	{`reduce range(40) as $i ([]; [., .]) | tojson`, sandbox.LimitValue},
	{`reduce range(40) as $i ([]; [., .]) | flatten`, sandbox.LimitValue},
	{`reduce range(40) as $i ([]; [., .])`, sandbox.LimitValue},
	{`("y" * 100000) as $y | ("x" * 1000) | gsub(""; $y)`, sandbox.LimitValue},
	{`reduce range(1000) as $i (null; [.])`, sandbox.LimitNesting},
	{`reduce range(100) as $i ([]; [., .])`, sandbox.LimitNesting},
	{strings.Repeat("[", 1000) + strings.Repeat("]", 1000), sandbox.LimitNesting},
	{strings.Repeat("(", 1000) + "1" + strings.Repeat(")", 1000), sandbox.LimitNesting},
	{"1" + strings.Repeat(" | .", 1000), sandbox.LimitNesting},
}

func TestHostileJQStopsAtItsLimit(t *testing.T) {
	for mode, e := range evaluators(t) {
		for _, h := range hostileJQ {
			start := time.Now()
			_, err := e.RunJQ(context.Background(), h.src, jsonValue(t, `{"a": {}}`))
			var le *sandbox.LimitError
			if !errors.As(err, &le) || !(le.Limit == h.limit || h.limit == sandbox.LimitSteps && le.Limit == sandbox.LimitTime) {
				t.Errorf("%s: %.70s: %v, want the %s limit", mode, h.src, err, h.limit)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("%s: %.70s: took %v", mode, h.src, took)
			}
		}
		// Mistakes stay ordinary errors.
		for _, src := range []string{`limit(-1; 1)`, `error("x")`, `error({a: 1})`, `input`, `.a.b.c = 1 | .a.b.c.d`} {
			if _, err := e.RunJQ(context.Background(), src, jsonValue(t, `{"a": {"b": 1}}`)); err == nil || sandbox.IsBudgetError(err) {
				t.Errorf("%s: %s: %v", mode, src, err)
			}
		}
	}
}

func TestExpressionsUnderTheBudget(t *testing.T) {
	scope := map[string]any{"input": jsonValue(t, `{"records": [{"amount": 3}], "n": 2, "name": "ada"}`)}
	for mode, e := range evaluators(t) {
		ok, err := e.EvalCondition(context.Background(), `len(input.records) > 0 && input.n == 2`, scope)
		if err != nil || !ok {
			t.Errorf("%s: condition: %v %v", mode, ok, err)
		}
		out, err := e.EvalMapping(context.Background(), map[string]string{"greeting": `"hi " + input.name`, "double": `input.n * 2`}, scope)
		if err != nil || normalized(t, out) != `{"double":4,"greeting":"hi ada"}` {
			t.Errorf("%s: mapping: %v %v", mode, normalized(t, out), err)
		}
		for src, want := range map[string]sandbox.Limit{
			`repeat("x", 200000000)`:                                  sandbox.LimitValue,
			`let a = repeat("x", 900000); let b = a + a; len(b + b)`:  sandbox.LimitValue,
			`len(map(1..1000000, map(1..1000000, #)))`:                sandbox.LimitSteps,
			strings.Repeat("(", 500) + "1" + strings.Repeat(")", 500): sandbox.LimitNesting,
		} {
			_, err := e.EvalMapping(context.Background(), map[string]string{"x": src}, scope)
			var le *sandbox.LimitError
			if !errors.As(err, &le) || !(le.Limit == want || want == sandbox.LimitSteps && le.Limit == sandbox.LimitTime) || !strings.HasPrefix(err.Error(), "mapping.x: ") {
				t.Errorf("%s: %.60s: %v, want the %s limit", mode, src, err, want)
			}
		}
		if _, err := e.EvalCondition(context.Background(), `input.nope.deeper > 1`, scope); err == nil || sandbox.IsBudgetError(err) {
			t.Errorf("%s: a nil member: %v", mode, err)
		}
	}
	if !reflect.DeepEqual(sortedKeys(map[string]string{"b": "", "a": ""}), []string{"a", "b"}) {
		t.Error("sortedKeys")
	}
}

func TestJQNesting(t *testing.T) {
	for src, want := range map[string]int{
		`.a`: 0, `[.a]`: 1, `[[1], {a: (2)}]`: 3, `"(((" | [.]`: 1, `"\(1 + (2))"`: 2,
		`"a\"[[[" | .`: 0, "# [[[[\n[1]": 1, `"\("\("x")")"`: 2,
	} {
		if got := jqNesting(src); got != want {
			t.Errorf("%s: %d, want %d", src, got, want)
		}
	}
}
