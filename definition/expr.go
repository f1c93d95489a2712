package definition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/itchyny/gojq"

	"github.com/pyairtable/automation-domain/expression"
	"github.com/pyairtable/automation-domain/sandbox"
)

// Expressions (conditions, branch cases, mappings, assertions) are expr-lang programs over the
// scope {input, steps, execution, workflow}; jq programs (data_transform) are gojq. Both run
// under a sandbox.Budget (see package expression and compileJQ).

// exprEnv is the shape expressions are checked against: every root is a map, so member access
// below it is dynamic and checked when the expression runs.
var exprEnv = map[string]any{
	"input":     map[string]any{},
	"steps":     map[string]any{},
	"execution": map[string]any{},
	"workflow":  map[string]any{},
}

// maxExprNodes bounds an expression's size.
const maxExprNodes = 2000

func exprOptions(asBool bool) expression.Options {
	return expression.Options{Env: exprEnv, AsBool: asBool, MaxNodes: maxExprNodes}
}

// CompileCondition compiles an expression that must give a boolean (a zero Limits: defaults).
func CompileCondition(src string, l sandbox.Limits) (*expression.Program, error) {
	p, err := expression.Compile(src, exprOptions(true), l)
	if err != nil {
		return nil, exprError(err)
	}
	return p, nil
}

// CompileValue compiles an expression of any type.
func CompileValue(src string, l sandbox.Limits) (*expression.Program, error) {
	p, err := expression.Compile(src, exprOptions(false), l)
	if err != nil {
		return nil, exprError(err)
	}
	return p, nil
}

// CompileJQ parses, bounds and compiles a jq program.
func CompileJQ(src string, l sandbox.Limits) (*gojq.Code, error) { return compileJQ(src, l) }

// MaxJQResults bounds how many values a jq program may emit.
const MaxJQResults = 10000

// Evaluator evaluates the expressions and jq programs of running workflows, each under its own
// budget: in this process, or in helper processes when it has a pool. Compiled programs are
// cached by source. It is safe for concurrent use.
type Evaluator struct {
	limits sandbox.Limits
	pool   *sandbox.Pool
	jq     *lru.Cache[string, *gojq.Code]
	exprs  *lru.Cache[exprKey, *expression.Program]
}

type exprKey struct {
	src    string
	asBool bool
}

// NewEvaluator returns an evaluator with limits (zero fields: defaults); pool may be nil.
func NewEvaluator(limits sandbox.Limits, pool *sandbox.Pool) *Evaluator {
	jq, _ := lru.New[string, *gojq.Code](512)
	exprs, _ := lru.New[exprKey, *expression.Program](2048)
	return &Evaluator{limits: limits.OrDefaults(), pool: pool, jq: jq, exprs: exprs}
}

// Limits returns the budget of one evaluation.
func (e *Evaluator) Limits() sandbox.Limits { return e.limits }

// The methods a helper process serves for evaluators with a pool.
const (
	methodJQ      = "workflow.jq"
	methodExpr    = "workflow.expr"
	methodMapping = "workflow.mapping"
)

type exprArgs struct {
	Src     string            `json:"src,omitempty"`
	Mapping map[string]string `json:"mapping,omitempty"`
	Bool    bool              `json:"bool,omitempty"`
	Scope   map[string]any    `json:"scope"`
}

type jqArgs struct {
	Src  string `json:"src"`
	Data any    `json:"data"`
}

// EvalCondition runs a boolean expression over scope.
func (e *Evaluator) EvalCondition(ctx context.Context, src string, scope map[string]any) (bool, error) {
	out, err := e.eval(ctx, src, true, scope)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("expression %q gave %T, not a boolean", src, out)
	}
	return b, nil
}

// EvalValue runs an expression over scope and returns its value.
func (e *Evaluator) EvalValue(ctx context.Context, src string, scope map[string]any) (any, error) {
	return e.eval(ctx, src, false, scope)
}

func (e *Evaluator) eval(ctx context.Context, src string, asBool bool, scope map[string]any) (any, error) {
	if e.pool != nil {
		if _, err := e.program(src, asBool, e.limits); err != nil {
			return nil, err // what does not compile needs no helper
		}
		var out any
		err := e.pool.Call(ctx, methodExpr, e.limits, exprArgs{Src: src, Bool: asBool, Scope: scope}, &out)
		return out, remoteError(err)
	}
	b := sandbox.NewBudget(ctx, e.limits)
	defer b.Close()
	return e.evalIn(b, src, asBool, scope)
}

// EvalMapping evaluates each expression of mapping over scope, all under one budget.
func (e *Evaluator) EvalMapping(ctx context.Context, mapping map[string]string, scope map[string]any) (map[string]any, error) {
	if e.pool != nil {
		for _, k := range sortedKeys(mapping) {
			if _, err := e.program(mapping[k], false, e.limits); err != nil {
				return nil, fmt.Errorf("mapping.%s: %w", k, err)
			}
		}
		var out map[string]any
		err := e.pool.Call(ctx, methodMapping, e.limits, exprArgs{Mapping: mapping, Scope: scope}, &out)
		return out, remoteError(err)
	}
	b := sandbox.NewBudget(ctx, e.limits)
	defer b.Close()
	return e.mappingIn(b, mapping, scope)
}

func (e *Evaluator) mappingIn(b *sandbox.Budget, mapping map[string]string, scope map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(mapping))
	for _, k := range sortedKeys(mapping) {
		v, err := e.evalIn(b, mapping[k], false, scope)
		if err != nil {
			return nil, fmt.Errorf("mapping.%s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

func (e *Evaluator) program(src string, asBool bool, l sandbox.Limits) (*expression.Program, error) {
	key := exprKey{src, asBool}
	if p, ok := e.exprs.Get(key); ok {
		return p, nil
	}
	p, err := expression.Compile(src, exprOptions(asBool), l)
	if err != nil {
		return nil, exprError(err)
	}
	e.exprs.Add(key, p)
	return p, nil
}

func (e *Evaluator) evalIn(b *sandbox.Budget, src string, asBool bool, scope map[string]any) (any, error) {
	p, err := e.program(src, asBool, b.Limits())
	if err != nil {
		return nil, err
	}
	out, err := p.Run(b, withRoots(scope))
	if err != nil {
		return nil, exprError(err)
	}
	return out, nil
}

// RunJQ runs a jq program over data: one emitted value is the result, several are returned as
// an array, none as null.
func (e *Evaluator) RunJQ(ctx context.Context, src string, data any) (any, error) {
	if e.pool != nil {
		if _, err := e.code(src, e.limits); err != nil {
			return nil, err
		}
		var out any
		err := e.pool.Call(ctx, methodJQ, e.limits, jqArgs{Src: src, Data: data}, &out)
		return out, remoteError(err)
	}
	b := sandbox.NewBudget(ctx, e.limits)
	defer b.Close()
	return e.runJQIn(b, src, data)
}

func (e *Evaluator) code(src string, l sandbox.Limits) (*gojq.Code, error) {
	if c, ok := e.jq.Get(src); ok {
		return c, nil
	}
	c, err := compileJQ(src, l)
	if err != nil {
		return nil, err
	}
	e.jq.Add(src, c)
	return c, nil
}

// runJQIn runs a jq program under b: the engine's one recovery point.
func (e *Evaluator) runJQIn(b *sandbox.Budget, src string, data any) (result any, err error) {
	defer func() {
		if err != nil {
			if stop := b.Err(); stop != nil {
				err = stop
			}
		}
	}()
	defer sandbox.Recover("jq", &err)
	code, err := e.code(src, b.Limits())
	if err != nil {
		return nil, err
	}
	iter := code.RunWithContext(b.Context(), data, b)
	var out []any
	for {
		v, ok := iter.Next()
		if !ok {
			break
		}
		if err, isErr := v.(error); isErr {
			if herr, ok := err.(*gojq.HaltError); ok && herr.Value() == nil {
				break
			}
			return nil, jqError(b, err)
		}
		if err := b.CheckValue(v, nil); err != nil {
			return nil, err
		}
		out = append(out, v)
		if len(out) > MaxJQResults {
			return nil, fmt.Errorf("jq: the program emits more than %d values", MaxJQResults)
		}
	}
	switch len(out) {
	case 0:
		return nil, nil
	case 1:
		return out[0], nil
	}
	return out, nil
}

// jqError is a jq error with a message of bounded size (error(v) carries any value).
func jqError(b *sandbox.Budget, err error) error {
	if stop := b.Err(); stop != nil {
		return stop
	}
	var ve gojq.ValueError
	if errors.As(err, &ve) {
		if s := sandbox.Measure(ve.Value(), 4096, nil); s.Bytes > 4096 {
			return fmt.Errorf("jq: error with a value of more than %d bytes", 4096)
		}
	}
	return fmt.Errorf("jq: %w", err)
}

// remoteError is an error from a helper process as the in-process evaluation gives it.
func remoteError(err error) error {
	var re *sandbox.RemoteError
	if errors.As(err, &re) {
		return errors.New(re.Msg)
	}
	return err
}

// withRoots makes sure every root the expressions were checked against exists.
func withRoots(scope map[string]any) map[string]any {
	env := make(map[string]any, len(scope)+len(exprEnv))
	for k, v := range exprEnv {
		env[k] = v
	}
	for k, v := range scope {
		if v != nil {
			env[k] = v
		}
	}
	return env
}

func exprError(err error) error {
	if sandbox.IsBudgetError(err) {
		return err
	}
	// expr's messages carry a source excerpt on following lines; the first line says it all.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return errors.New(msg)
}

// HelperHandlers are the evaluations a helper process serves for evaluators with a pool: the
// same code as in-process evaluation, under the budget the request carries. Numbers arrive
// as float64, as encoding/json decodes the scope in process.
func HelperHandlers() sandbox.Handlers {
	e := NewEvaluator(sandbox.Limits{}, nil)
	return sandbox.Handlers{
		methodExpr: func(b *sandbox.Budget, raw json.RawMessage) (any, error) {
			var a exprArgs
			if err := sandbox.DecodeJSON(raw, &a, false); err != nil {
				return nil, err
			}
			return e.evalIn(b, a.Src, a.Bool, a.Scope)
		},
		methodMapping: func(b *sandbox.Budget, raw json.RawMessage) (any, error) {
			var a exprArgs
			if err := sandbox.DecodeJSON(raw, &a, false); err != nil {
				return nil, err
			}
			return e.mappingIn(b, a.Mapping, a.Scope)
		},
		methodJQ: func(b *sandbox.Budget, raw json.RawMessage) (any, error) {
			var a jqArgs
			if err := sandbox.DecodeJSON(raw, &a, false); err != nil {
				return nil, err
			}
			return e.runJQIn(b, a.Src, a.Data)
		},
	}
}
