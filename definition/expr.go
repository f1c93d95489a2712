package definition

import (
	"context"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/itchyny/gojq"
)

// Expressions (conditions, branch cases, mappings, assertions) are expr-lang programs over the
// scope {input, steps, execution, workflow}; jq programs (data_transform) are gojq.

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

// CompileCondition compiles an expression that must give a boolean.
func CompileCondition(src string) (*vm.Program, error) {
	p, err := expr.Compile(src, expr.Env(exprEnv), expr.AsBool(), expr.MaxNodes(maxExprNodes))
	if err != nil {
		return nil, exprError(err)
	}
	return p, nil
}

// CompileValue compiles an expression of any type.
func CompileValue(src string) (*vm.Program, error) {
	p, err := expr.Compile(src, expr.Env(exprEnv), expr.MaxNodes(maxExprNodes))
	if err != nil {
		return nil, exprError(err)
	}
	return p, nil
}

// EvalCondition runs a boolean expression over scope.
func EvalCondition(src string, scope map[string]any) (bool, error) {
	p, err := CompileCondition(src)
	if err != nil {
		return false, err
	}
	out, err := expr.Run(p, withRoots(scope))
	if err != nil {
		return false, exprError(err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("expression %q gave %T, not a boolean", src, out)
	}
	return b, nil
}

// EvalValue runs an expression over scope and returns its value.
func EvalValue(src string, scope map[string]any) (any, error) {
	p, err := CompileValue(src)
	if err != nil {
		return nil, err
	}
	out, err := expr.Run(p, withRoots(scope))
	if err != nil {
		return nil, exprError(err)
	}
	return out, nil
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
	// expr's messages carry a source excerpt on following lines; the first line says it all.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return fmt.Errorf("%s", msg)
}

// CompileJQ parses and compiles a jq program. The program cannot read the environment ($ENV
// and env are empty).
func CompileJQ(src string) (*gojq.Code, error) {
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("jq: %w", err)
	}
	code, err := gojq.Compile(q, gojq.WithEnvironLoader(func() []string { return nil }))
	if err != nil {
		return nil, fmt.Errorf("jq: %w", err)
	}
	return code, nil
}

// MaxJQResults bounds how many values a jq program may emit.
const MaxJQResults = 10000

// RunJQ runs a jq program over data: one emitted value is the result, several are returned as
// an array, none as null.
func RunJQ(ctx context.Context, src string, data any) (any, error) {
	code, err := CompileJQ(src)
	if err != nil {
		return nil, err
	}
	iter := code.RunWithContext(ctx, data)
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
			return nil, fmt.Errorf("jq: %w", err)
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
