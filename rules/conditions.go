package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/pyairtable/automation-domain/expression"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Field-check operators.
var operators = []string{
	"equals", "not_equals", "contains", "not_contains", "starts_with", "ends_with",
	"gt", "gte", "lt", "lte", "in", "not_in", "exists", "not_exists", "matches", "is_empty",
	"is_not_empty",
}

// Limits of expression conditions (besides the evaluation budget, see Expressions).
const (
	// MaxExpressionNodes bounds an expression's syntax tree (checked at compile time).
	MaxExpressionNodes = 1000
	// MaxConditionDepth bounds the nesting of all/any/not groups.
	MaxConditionDepth = 8
	maxRegexLength    = 1000
)

// ConditionResult is how one condition fared against an event: what it compared and with which
// actual value. Groups carry their children's results.
type ConditionResult struct {
	// Path is where the condition sits in the rule: "conditions[0]", "conditions[1].any[0]".
	Path       string `json:"path"`
	Type       string `json:"type"` // field_check, expression, all, any, not
	Field      string `json:"field,omitempty"`
	Operator   string `json:"operator,omitempty"`
	Expected   any    `json:"expected,omitempty"`
	Expression string `json:"expression,omitempty"`
	// Actual is the field's value (null when missing) or the expression's result.
	Actual any `json:"actual"`
	// Missing is set when the field is not in the event.
	Missing  bool              `json:"missing,omitempty"`
	Matched  bool              `json:"matched"`
	Error    string            `json:"error,omitempty"`
	Children []ConditionResult `json:"children,omitempty"`
}

// condition is a compiled Condition.
type condition struct {
	path     string
	kind     string // field_check, expression, all, any, not
	field    string
	segments []string
	op       string
	value    any
	re       *regexp.Regexp
	src      string
	program  *expression.Program
	children []*condition
}

// exprOptions declare the names expressions can rely on with their types, so that a wrong use
// of them (event.depth + "x") fails at compile time; the event's own fields are not known before
// it arrives and are allowed undeclared.
var exprOptions = expression.Options{Env: map[string]any{"event": EventMeta{}}, AllowUndefined: true, AsBool: true,
	MaxNodes: MaxExpressionNodes}

// compileConditions checks and compiles the conditions at prefix, recording every problem.
func compileConditions(prefix string, in []Condition, depth int, l sandbox.Limits, problems *validation.Problems) []*condition {
	out := make([]*condition, 0, len(in))
	for i, c := range in {
		if cc := compileCondition(validation.Index(prefix, i), c, depth, l, problems); cc != nil {
			out = append(out, cc)
		}
	}
	return out
}

func compileCondition(path string, c Condition, depth int, l sandbox.Limits, problems *validation.Problems) *condition {
	if depth > MaxConditionDepth {
		problems.Add(path, "conditions are nested more than %d levels deep", MaxConditionDepth)
		return nil
	}
	forms := 0
	for _, set := range []bool{c.Type == "field_check" || c.Field != "" || c.Operator != "",
		c.Type == "expression" || c.Expression != "", c.All != nil, c.Any != nil, c.Not != nil} {
		if set {
			forms++
		}
	}
	if forms != 1 {
		problems.Add(path, "must be exactly one of: a field_check (field, operator, value), an expression, or a group (all, any, not)")
		return nil
	}
	switch {
	case c.All != nil || c.Any != nil:
		kind, list, key := "all", c.All, "all"
		if c.Any != nil {
			kind, list, key = "any", c.Any, "any"
		}
		if c.Type != "" && c.Type != "group" {
			problems.Add(validation.Join(path, "type"), "must be group (or left out) for an %s group", kind)
		}
		if len(list) == 0 {
			problems.Add(validation.Join(path, key), "must list at least one condition")
			return nil
		}
		return &condition{path: path, kind: kind, children: compileConditions(validation.Join(path, key), list, depth+1, l, problems)}
	case c.Not != nil:
		if c.Type != "" && c.Type != "group" {
			problems.Add(validation.Join(path, "type"), "must be group (or left out) for a not group")
		}
		child := compileCondition(validation.Join(path, "not"), *c.Not, depth+1, l, problems)
		if child == nil {
			return nil
		}
		return &condition{path: path, kind: "not", children: []*condition{child}}
	case c.Type == "expression" || c.Expression != "":
		if c.Type != "expression" {
			problems.Add(validation.Join(path, "type"), "must be expression")
		}
		return compileExpression(path, c.Expression, l, problems)
	}
	return compileFieldCheck(path, c, problems)
}

func compileExpression(path, src string, l sandbox.Limits, problems *validation.Problems) *condition {
	if strings.TrimSpace(src) == "" {
		problems.Add(validation.Join(path, "expression"), "is required")
		return nil
	}
	if len(src) > 4096 {
		problems.Add(validation.Join(path, "expression"), "must be at most 4096 characters")
		return nil
	}
	program, err := expression.Compile(src, exprOptions, l)
	if err != nil {
		problems.Add(validation.Join(path, "expression"), "does not compile: %s", oneLine(err.Error()))
		return nil
	}
	return &condition{path: path, kind: "expression", src: src, program: program}
}

func compileFieldCheck(path string, c Condition, problems *validation.Problems) *condition {
	if c.Type != "" && c.Type != "field_check" {
		problems.Add(validation.Join(path, "type"), "must be field_check, expression or group, got %q", c.Type)
		return nil
	}
	cc := &condition{path: path, kind: "field_check", field: c.Field, op: c.Operator}
	ok := true
	if strings.TrimSpace(c.Field) == "" {
		problems.Add(validation.Join(path, "field"), "is required (a dotted path into the event's data, e.g. user.email)")
		ok = false
	} else {
		cc.segments = strings.Split(c.Field, ".")
		for _, s := range cc.segments {
			if s == "" {
				problems.Add(validation.Join(path, "field"), "%q has an empty segment", c.Field)
				ok = false
				break
			}
		}
	}
	known := false
	for _, op := range operators {
		known = known || op == c.Operator
	}
	if !known {
		problems.Add(validation.Join(path, "operator"), "must be one of %s, got %q", strings.Join(operators, ", "), c.Operator)
		return nil
	}
	valuePath := validation.Join(path, "value")
	hasValue := len(c.Value) > 0
	if hasValue {
		dec := json.NewDecoder(bytes.NewReader(c.Value))
		dec.UseNumber()
		if err := dec.Decode(&cc.value); err != nil {
			problems.Add(valuePath, "is not valid JSON")
			return nil
		}
	}
	switch c.Operator {
	case "exists", "not_exists", "is_empty", "is_not_empty":
		if hasValue {
			problems.Add(valuePath, "must be left out for %s", c.Operator)
			ok = false
		}
	case "equals", "not_equals":
		if !hasValue {
			problems.Add(valuePath, "is required for %s (use null to compare with null)", c.Operator)
			ok = false
		}
	case "contains", "not_contains":
		if !hasValue || cc.value == nil {
			problems.Add(valuePath, "is required for %s", c.Operator)
			ok = false
		}
	case "starts_with", "ends_with":
		if _, isString := cc.value.(string); !isString {
			problems.Add(valuePath, "must be a string for %s", c.Operator)
			ok = false
		}
	case "gt", "gte", "lt", "lte":
		switch cc.value.(type) {
		case json.Number, string:
		default:
			problems.Add(valuePath, "must be a number or a string for %s", c.Operator)
			ok = false
		}
	case "in", "not_in":
		if _, isList := cc.value.([]any); !isList {
			problems.Add(valuePath, "must be a list for %s", c.Operator)
			ok = false
		}
	case "matches":
		s, isString := cc.value.(string)
		if !isString {
			problems.Add(valuePath, "must be a regular expression string for matches")
			return nil
		}
		if len(s) > maxRegexLength {
			problems.Add(valuePath, "must be at most %d characters", maxRegexLength)
			return nil
		}
		re, err := regexp.Compile(s)
		if err != nil {
			problems.Add(valuePath, "is not a valid regular expression (RE2 syntax): %s", err)
			return nil
		}
		cc.re = re
	}
	if !ok {
		return nil
	}
	return cc
}

// eval evaluates the condition in scope and returns its result; expressions were evaluated
// before (see Expressions), their outcomes are in done.
func (c *condition) eval(scope Scope, done map[*condition]exprOutcome) ConditionResult {
	data := scope.Vars
	switch c.kind {
	case "all", "any", "not":
		r := ConditionResult{Path: c.path, Type: c.kind}
		matched := c.kind == "all"
		for _, child := range c.children {
			cr := child.eval(scope, done)
			r.Children = append(r.Children, cr)
			switch c.kind {
			case "all":
				matched = matched && cr.Matched
			case "any":
				matched = matched || cr.Matched
			case "not":
				matched = !cr.Matched && cr.Error == ""
			}
		}
		r.Matched = matched
		return r
	case "expression":
		r := ConditionResult{Path: c.path, Type: "expression", Expression: c.src}
		o := done[c]
		if o.Error != "" {
			r.Error = o.Error
			return r
		}
		r.Actual = o.Value
		b, ok := o.Value.(bool)
		if !ok {
			r.Error = fmt.Sprintf("the expression gave %T, not a boolean", o.Value)
			return r
		}
		r.Matched = b
		return r
	}
	actual, present := lookup(data, c.segments)
	r := ConditionResult{Path: c.path, Type: "field_check", Field: c.field, Operator: c.op, Expected: c.value,
		Actual: actual, Missing: !present}
	matched, err := c.check(actual, present)
	if err != nil {
		r.Error = err.Error()
	}
	r.Matched = matched
	return r
}

func (c *condition) check(actual any, present bool) (bool, error) {
	switch c.op {
	case "exists":
		return present && actual != nil, nil
	case "not_exists":
		return !present || actual == nil, nil
	case "is_empty":
		return isEmpty(actual), nil
	case "is_not_empty":
		return !isEmpty(actual), nil
	case "equals":
		return present && equal(actual, c.value), nil
	case "not_equals":
		return !present || !equal(actual, c.value), nil
	case "contains":
		return contains(actual, c.value), nil
	case "not_contains":
		return !contains(actual, c.value), nil
	case "starts_with", "ends_with":
		s, ok := actual.(string)
		if !ok {
			return false, nil
		}
		if c.op == "starts_with" {
			return strings.HasPrefix(s, c.value.(string)), nil
		}
		return strings.HasSuffix(s, c.value.(string)), nil
	case "gt", "gte", "lt", "lte":
		if !present || actual == nil {
			return false, nil
		}
		cmp, err := compare(actual, c.value)
		if err != nil {
			return false, err
		}
		switch c.op {
		case "gt":
			return cmp > 0, nil
		case "gte":
			return cmp >= 0, nil
		case "lt":
			return cmp < 0, nil
		}
		return cmp <= 0, nil
	case "in", "not_in":
		in := false
		if present {
			for _, v := range c.value.([]any) {
				if equal(actual, v) {
					in = true
					break
				}
			}
		}
		return in == (c.op == "in"), nil
	case "matches":
		s, ok := actual.(string)
		return ok && c.re.MatchString(s), nil
	}
	return false, fmt.Errorf("unknown operator %q", c.op)
}

// Describe says in one line what a condition result checked and found, for history reasons.
func (r ConditionResult) Describe() string {
	var b strings.Builder
	b.WriteString(r.Path)
	b.WriteString(": ")
	switch r.Type {
	case "field_check":
		fmt.Fprintf(&b, "%s %s", r.Field, r.Operator)
		if r.Expected != nil {
			fmt.Fprintf(&b, " %s", compactJSON(r.Expected))
		}
		if r.Missing {
			b.WriteString(", but the field is missing")
		} else {
			fmt.Fprintf(&b, ", actual %s", compactJSON(r.Actual))
		}
	case "expression":
		fmt.Fprintf(&b, "expression %q", r.Expression)
		if r.Error == "" {
			fmt.Fprintf(&b, " is %s", compactJSON(r.Actual))
		}
	default:
		fmt.Fprintf(&b, "%s group did not hold", r.Type)
		if f, ok := FirstFailure(r.Children); ok && r.Type != "not" {
			b.WriteString(" (")
			b.WriteString(f.Describe())
			b.WriteString(")")
		}
	}
	if r.Error != "" {
		fmt.Fprintf(&b, " (error: %s)", r.Error)
	}
	return b.String()
}

// FirstFailure returns the first top-level result that did not match.
func FirstFailure(results []ConditionResult) (ConditionResult, bool) {
	for _, r := range results {
		if !r.Matched {
			return r, true
		}
	}
	return ConditionResult{}, false
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// exprOutcome is what one expression condition gave: its value or its error.
type exprOutcome struct {
	Value any    `json:"value"`
	Error string `json:"error,omitempty"`
}

// Expressions evaluates the expression conditions of rules under the sandbox budget — all those
// of one rule for one event under one budget — in this process, or in helper processes when it
// has a pool. Safe for concurrent use; nil evaluates in this process with default limits.
type Expressions struct {
	limits sandbox.Limits
	pool   *sandbox.Pool
	cache  *lru.Cache[string, *expression.Program]
}

// NewExpressions returns an evaluator with limits (zero fields: defaults); pool may be nil.
func NewExpressions(limits sandbox.Limits, pool *sandbox.Pool) *Expressions {
	cache, _ := lru.New[string, *expression.Program](2048)
	return &Expressions{limits: limits.OrDefaults(), pool: pool, cache: cache}
}

// Limits returns the budget of one rule's evaluation.
func (x *Expressions) Limits() sandbox.Limits {
	if x == nil {
		return sandbox.DefaultLimits()
	}
	return x.limits
}

const methodConditions = "rules.conditions"

type conditionsArgs struct {
	Sources []string    `json:"sources"`
	Event   store.Event `json:"event"`
}

// run evaluates the expressions of conds for scope's event. A budget error (a limit exceeded,
// an engine panic) is returned as well: every expression it stopped carries it.
func (x *Expressions) run(ctx context.Context, conds []*condition, scope Scope) (map[*condition]exprOutcome, error) {
	done := make(map[*condition]exprOutcome, len(conds))
	if len(conds) == 0 {
		return done, nil
	}
	var outcomes []exprOutcome
	var err error
	if x != nil && x.pool != nil {
		srcs := make([]string, len(conds))
		for i, c := range conds {
			srcs[i] = c.src
		}
		err = x.pool.Call(ctx, methodConditions, x.limits, conditionsArgs{Sources: srcs, Event: scope.Event}, &outcomes)
		if err == nil {
			for i := range outcomes {
				outcomes[i].Value = plainNumbers(outcomes[i].Value)
			}
		}
	} else {
		b := sandbox.NewBudget(ctx, x.Limits())
		defer b.Close()
		programs := make([]*expression.Program, len(conds))
		for i, c := range conds {
			programs[i] = c.program
		}
		outcomes, err = runExpressions(b, programs, scope)
	}
	for i, c := range conds {
		switch {
		case err != nil:
			done[c] = exprOutcome{Error: oneLine(err.Error())}
		case i < len(outcomes):
			done[c] = outcomes[i]
		}
	}
	if err != nil && !sandbox.IsBudgetError(err) {
		return done, fmt.Errorf("expression conditions: %w", err)
	}
	return done, err
}

// runExpressions runs programs over scope under b; a budget error ends them all.
func runExpressions(b *sandbox.Budget, programs []*expression.Program, scope Scope) ([]exprOutcome, error) {
	out := make([]exprOutcome, len(programs))
	for i, p := range programs {
		v, err := p.Run(b, scope.exprVars)
		if stop := b.Err(); stop != nil {
			return nil, stop
		}
		if err != nil {
			out[i].Error = oneLine(err.Error())
			continue
		}
		out[i].Value = v
	}
	return out, nil
}

// HelperHandlers are the evaluations a helper process serves for an Expressions with a pool.
func HelperHandlers() sandbox.Handlers {
	x := NewExpressions(sandbox.Limits{}, nil)
	return sandbox.Handlers{
		methodConditions: func(b *sandbox.Budget, raw json.RawMessage) (any, error) {
			var a conditionsArgs
			if err := sandbox.DecodeJSON(raw, &a, false); err != nil {
				return nil, err
			}
			scope, err := NewScope(a.Event)
			if err != nil {
				return nil, err
			}
			programs := make([]*expression.Program, len(a.Sources))
			for i, src := range a.Sources {
				p, ok := x.cache.Get(src)
				if !ok {
					if p, err = expression.Compile(src, exprOptions, b.Limits()); err != nil {
						return nil, err
					}
					x.cache.Add(src, p)
				}
				programs[i] = p
			}
			return runExpressions(b, programs, scope)
		},
	}
}

// expressions lists the expression conditions under conds, in order.
func expressions(conds []*condition) []*condition {
	var out []*condition
	for _, c := range conds {
		if c.kind == "expression" {
			out = append(out, c)
		}
		out = append(out, expressions(c.children)...)
	}
	return out
}
