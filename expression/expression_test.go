package expression

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/sandbox"
)

var env = map[string]any{"input": map[string]any{}}

func run(t *testing.T, src string, vars map[string]any) (any, error) {
	t.Helper()
	p, err := Compile(src, Options{Env: env, MaxNodes: 2000}, sandbox.Limits{})
	if err != nil {
		return nil, err
	}
	b := sandbox.NewBudget(context.Background(), sandbox.Limits{})
	defer b.Close()
	return p.Run(b, vars)
}

func TestOrdinaryExpressions(t *testing.T) {
	vars := map[string]any{"input": map[string]any{"name": "ada", "items": []any{1, 2, 3}, "n": 2}}
	for src, want := range map[string]any{
		`input.name + "!"`:                        "ada!",
		`input.n + 1`:                             3,
		`repeat("ab", 3)`:                         "ababab",
		`replace("a-b-c", "-", "+")`:              "a+b+c",
		`join(["a", "b"], ",")`:                   "a,b",
		`join(split("a b", " "))`:                 "ab",
		`sum(map(input.items, # * 2))`:            12,
		`len(filter(input.items, # > 1))`:         2,
		`reduce(input.items, #acc + #, 0)`:        6,
		`let s = "x"; s + s`:                      "xx",
		`upper(input.name) + string(input.n)`:     "ADA2",
		`all(input.items, # > 0) && input.n == 2`: true,
	} {
		got, err := run(t, src, vars)
		if err != nil || got != want {
			t.Errorf("%s = %#v, %v; want %#v", src, got, err, want)
		}
	}
	// A wrong type of a declared name still fails at compile time.
	if _, err := Compile(`input + 1`, Options{Env: map[string]any{"input": 1}, MaxNodes: 100}, sandbox.Limits{}); err != nil {
		t.Errorf("number + number: %v", err)
	}
	if _, err := Compile(`n + "x"`, Options{Env: map[string]any{"n": 1}, MaxNodes: 100}, sandbox.Limits{}); err == nil {
		t.Error("int + string compiled")
	}
}

func TestHostileExpressions(t *testing.T) {
	items := make([]any, 1000)
	for i := range items {
		items[i] = i
	}
	vars := map[string]any{"input": map[string]any{"items": items}}
	for src, want := range map[string]sandbox.Limit{
		`repeat("x", 200000000)`:                                           sandbox.LimitValue,
		`repeat(repeat("x", 1000000), 1000000)`:                            sandbox.LimitValue,
		`let a = repeat("x", 900000); let b = a + a; b + b`:                sandbox.LimitValue,
		`replace(repeat("x", 1000), "", repeat("y", 100000))`:              sandbox.LimitValue,
		`join(map(1..100000, "xxxxxxxxxxxxxxxx"), repeat("y", 1000))`:      sandbox.LimitValue,
		`all(input.items, all(input.items, all(input.items, # >= 0)))`:     sandbox.LimitSteps,
		`reduce(1..100, #acc + #acc, "xxxxxxxxxxxxxxxx")`:                  sandbox.LimitValue,
		`len(map(1..1000000, map(1..1000, #)))`:                            sandbox.LimitSteps,
		`len(1..1000000000)`:                                               sandbox.LimitAlloc,
		strings.Repeat("(", 200) + "1" + strings.Repeat(")", 200):          sandbox.LimitNesting,
		"len(" + strings.Repeat("[", 100) + strings.Repeat("]", 100) + ")": sandbox.LimitNesting,
	} {
		start := time.Now()
		_, err := run(t, src, vars)
		var le *sandbox.LimitError
		if !errors.As(err, &le) || (le.Limit != want && !(want == sandbox.LimitSteps && le.Limit == sandbox.LimitTime)) {
			t.Errorf("%.60s: %v, want the %s limit", src, err, want)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%.60s: took %v", src, took)
		}
	}
	if _, err := run(t, `repeat("x", -1)`, vars); err == nil || sandbox.IsBudgetError(err) {
		t.Errorf("negative repeat: %v", err)
	}
}
