// Package expression compiles and runs expr-lang expressions (workflow conditions and mappings,
// rule conditions) under a sandbox.Budget. expr bounds the syntax tree (MaxNodes) and what its
// own operations allocate (the VM's memory budget); this package adds the rest: the source's
// nesting is checked before parsing, every predicate iteration (map, filter, all, reduce …)
// counts a step and checks the deadline, string concatenation checks the size of what it
// builds, and the builtins that can build a large string in one call (repeat, replace, join)
// are replaced by bounded versions.
package expression

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/pyairtable/automation-domain/sandbox"
)

// Names the rewritten syntax tree uses; they hold a NUL byte, so no expression can name them.
const (
	budgetVar = "\x00budget"
	tickVar   = "\x00ticked"
	fnTick    = "\x00tick"
	fnAdd     = "\x00add"
)

// Options shape how an expression compiles.
type Options struct {
	// Env declares the names an expression may use and their types (a map or struct value,
	// as for expr.Env). It must be a map: the budget travels in it.
	Env map[string]any
	// AllowUndefined lets names Env does not declare through (they are nil when absent).
	AllowUndefined bool
	// AsBool requires a boolean result.
	AsBool bool
	// MaxNodes bounds the syntax tree.
	MaxNodes uint
}

// Program is a compiled expression.
type Program struct {
	src  string
	prog *vm.Program
}

// Source returns the expression's text.
func (p *Program) Source() string { return p.src }

// Compile checks src's nesting against limits, then compiles it with o.
func Compile(src string, o Options, limits sandbox.Limits) (p *Program, err error) {
	defer sandbox.Recover("expression", &err)
	limits = limits.OrDefaults()
	if n := nesting(src); n > limits.MaxNesting {
		return nil, &sandbox.LimitError{Limit: sandbox.LimitNesting, Max: int64(limits.MaxNesting)}
	}
	env := make(map[string]any, len(o.Env)+1)
	for k, v := range o.Env {
		env[k] = v
	}
	env[budgetVar] = (*sandbox.Budget)(nil)
	opts := []expr.Option{expr.Env(env), expr.MaxNodes(o.MaxNodes), expr.Patch(&bounder{})}
	if o.AllowUndefined {
		opts = append(opts, expr.AllowUndefinedVariables())
	}
	if o.AsBool {
		opts = append(opts, expr.AsBool())
	}
	opts = append(opts, functions()...)
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	return &Program{src: src, prog: prog}, nil
}

// Run evaluates the program over vars under b: the engine's one recovery point.
func (p *Program) Run(b *sandbox.Budget, vars map[string]any) (out any, err error) {
	defer func() {
		if err != nil {
			if stop := b.Err(); stop != nil {
				err = stop
			} else if strings.Contains(err.Error(), "memory budget exceeded") {
				err = b.Exceed(&sandbox.LimitError{Limit: sandbox.LimitAlloc, Max: b.Limits().MaxAllocBytes})
			}
		}
	}()
	defer sandbox.Recover("expression", &err)
	if err := b.Step(); err != nil {
		return nil, err
	}
	env := make(map[string]any, len(vars)+1)
	for k, v := range vars {
		env[k] = v
	}
	env[budgetVar] = b
	// expr counts what its operations allocate in elements; about 16 bytes each.
	machine := vm.VM{MemoryBudget: uint(max(b.Limits().MaxAllocBytes/16, 1))}
	out, err = machine.Run(p.prog, env)
	if err != nil {
		return nil, err
	}
	if err := b.CheckValue(out, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// nesting is how deeply src's brackets nest, outside string literals.
func nesting(src string) int {
	depth, deepest := 0, 0
	var quote rune
	escaped := false
	for _, c := range src {
		switch {
		case quote != 0:
			switch {
			case escaped:
				escaped = false
			case c == '\\' && quote != '`':
				escaped = true
			case c == quote:
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ')' || c == ']' || c == '}':
			depth = max(depth-1, 0)
		}
	}
	return deepest
}

func ident(name string) ast.Node { return &ast.IdentifierNode{Value: name} }

// bounder rewrites the syntax tree (before type checking, as an expr patch): string
// concatenation and the bounded builtins get the budget as their first argument, and every
// predicate body first counts a step.
type bounder struct{ predicates int }

func (w *bounder) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if n.Operator == "+" && mayBeString(n.Left) && mayBeString(n.Right) {
			ast.Patch(node, &ast.CallNode{Callee: ident(fnAdd), Arguments: []ast.Node{ident(budgetVar), n.Left, n.Right}})
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && bounded[id.Value] {
			n.Arguments = append([]ast.Node{ident(budgetVar)}, n.Arguments...)
		}
	case *ast.PredicateNode:
		w.predicates++ // each its own name: expr refuses to redeclare one in a nested predicate
		n.Node = &ast.VariableDeclaratorNode{
			Name:  fmt.Sprintf("%s%d", tickVar, w.predicates),
			Value: &ast.CallNode{Callee: ident(fnTick), Arguments: []ast.Node{ident(budgetVar)}},
			Expr:  n.Node,
		}
	}
}

// mayBeString: a + whose operand is known not to be a string (a number, a time) cannot build
// a long string, and keeps its compile-time type check.
func mayBeString(n ast.Node) bool {
	t := n.Type()
	return t == nil || t.Kind() == reflect.Interface || t.Kind() == reflect.String
}

// bounded are the builtins replaced by versions that take the budget.
var bounded = map[string]bool{"repeat": true, "replace": true, "join": true}

func budgetArg(params []any) (*sandbox.Budget, []any, error) {
	if len(params) == 0 {
		return nil, nil, errors.New("expression: no budget")
	}
	b, ok := params[0].(*sandbox.Budget)
	if !ok || b == nil {
		return nil, nil, errors.New("expression: no budget")
	}
	return b, params[1:], nil
}

func functions() []expr.Option {
	return []expr.Option{
		expr.Function(fnTick, func(params ...any) (any, error) {
			b, _, err := budgetArg(params)
			if err != nil {
				return nil, err
			}
			return true, b.Step()
		}, new(func(*sandbox.Budget) bool)),
		expr.Function(fnAdd, func(params ...any) (any, error) {
			b, args, err := budgetArg(params)
			if err != nil {
				return nil, err
			}
			if l, ok := args[0].(string); ok {
				if r, ok := args[1].(string); ok {
					if err := b.Value(int64(len(l)) + int64(len(r))); err != nil {
						return nil, err
					}
					return l + r, nil
				}
			}
			return runtime.Add(args[0], args[1]), nil
		}, new(func(*sandbox.Budget, any, any) any)),
		expr.DisableBuiltin("repeat"),
		expr.Function("repeat", func(params ...any) (any, error) {
			b, args, err := budgetArg(params)
			if err != nil {
				return nil, err
			}
			s, n := args[0].(string), runtime.ToInt(args[1])
			if n < 0 {
				return nil, fmt.Errorf("invalid argument for repeat (expected positive integer, got %d)", n)
			}
			if n > 0 && int64(len(s)) > b.Limits().MaxValueBytes/int64(n) {
				return nil, b.Value(b.Limits().MaxValueBytes + 1)
			}
			if err := b.Value(int64(len(s)) * int64(n)); err != nil {
				return nil, err
			}
			return strings.Repeat(s, n), nil
		}, new(func(*sandbox.Budget, string, int) string)),
		expr.DisableBuiltin("replace"),
		expr.Function("replace", func(params ...any) (any, error) {
			b, args, err := budgetArg(params)
			if err != nil {
				return nil, err
			}
			s, old, repl := args[0].(string), args[1].(string), args[2].(string)
			n := -1
			if len(args) == 4 {
				n = runtime.ToInt(args[3])
			}
			if err := b.Value(replacedSize(s, old, repl, n)); err != nil {
				return nil, err
			}
			return strings.Replace(s, old, repl, n), nil
		}, new(func(*sandbox.Budget, string, string, string) string), new(func(*sandbox.Budget, string, string, string, int) string)),
		expr.DisableBuiltin("join"),
		expr.Function("join", func(params ...any) (any, error) {
			b, args, err := budgetArg(params)
			if err != nil {
				return nil, err
			}
			glue := ""
			if len(args) == 2 {
				glue = args[1].(string)
			}
			v := reflect.ValueOf(args[0])
			if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
				return nil, fmt.Errorf("invalid argument for join (type %T)", args[0])
			}
			var size int64
			parts := make([]string, v.Len())
			for i := range parts {
				s, ok := v.Index(i).Interface().(string)
				if !ok {
					return nil, fmt.Errorf("invalid argument for join (type %T): its elements must be strings", args[0])
				}
				parts[i] = s
				size += int64(len(s) + len(glue))
			}
			if err := b.Value(size); err != nil {
				return nil, err
			}
			return strings.Join(parts, glue), nil
		}, new(func(*sandbox.Budget, []any) string), new(func(*sandbox.Budget, []any, string) string),
			new(func(*sandbox.Budget, []string) string), new(func(*sandbox.Budget, []string, string) string)),
	}
}

// replacedSize is the length of s with old replaced by repl (at most limit times; -1: all).
func replacedSize(s, old, repl string, limit int) int64 {
	n := strings.Count(s, old)
	if old == "" {
		n = utf8.RuneCountInString(s) + 1
	}
	if limit >= 0 && limit < n {
		n = limit
	}
	grow := int64(len(repl)) - int64(len(old))
	if grow <= 0 {
		return int64(len(s))
	}
	if int64(n) > (1<<62)/grow {
		return 1 << 62
	}
	return int64(len(s)) + int64(n)*grow
}
