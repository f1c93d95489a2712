package templating

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/exec"

	"github.com/pyairtable/automation-domain/sandbox"
)

// One rendering's budget travels in its context under a name no template can write.
const budgetKey = "\x00budget"

var errNoBudget = errors.New("template: rendering without a budget")

// budgetOf finds the budget of the rendering that ctx belongs to.
func budgetOf(ctx *exec.Context) (*sandbox.Budget, error) {
	if v, ok := ctx.Get(budgetKey); ok {
		if s, ok := v.(*renderState); ok {
			return s.b, nil
		}
	}
	return nil, errNoBudget
}

// unwrapValue lets sandbox.Measure see through gonja's value wrappers.
func unwrapValue(v any) (any, bool) {
	switch x := v.(type) {
	case *exec.Value:
		if x == nil {
			return nil, true
		}
		return x.Interface(), true
	case reflect.Value:
		if x.IsValid() && x.CanInterface() {
			return x.Interface(), true
		}
		return nil, true
	}
	return nil, false
}

// checkValue accounts for a value the template built.
func checkValue(b *sandbox.Budget, v any) error { return b.CheckValue(v, unwrapValue) }

// textSize is the size of a string that n repetitions of s would take, without overflowing.
func textSize(n, each int64) int64 {
	if n <= 0 || each <= 0 {
		return 0
	}
	if n > math.MaxInt64/each {
		return math.MaxInt64
	}
	return n * each
}

// arg returns the argument at position i or named name (gonja lets keyword arguments be given
// by position), nil when absent.
func arg(p *exec.VarArgs, i int, name string) *exec.Value {
	if i >= 0 && i < len(p.Args) {
		return p.Args[i]
	}
	if name != "" {
		if v, ok := p.KwArgs[name]; ok {
			return v
		}
	}
	return nil
}

func intArg(p *exec.VarArgs, i int, name string, fallback int) int {
	if v := arg(p, i, name); v != nil && v.IsInteger() {
		return v.Integer()
	}
	return fallback
}

// The operations the rewritten syntax tree calls in place of gonja's operators and literals
// (see rewriter). Each behaves as gonja's own, but first counts a step and checks that the
// value it builds fits the budget.

func boundedOp(op func(b *sandbox.Budget, l, r *exec.Value) (*exec.Value, error)) func(*exec.Evaluator, *exec.VarArgs) *exec.Value {
	return func(e *exec.Evaluator, p *exec.VarArgs) *exec.Value {
		b, err := budgetOf(e.Environment.Context)
		if err == nil {
			err = b.Step()
		}
		if err == nil && len(p.Args) != 2 {
			err = errors.New("operator takes two operands")
		}
		if err != nil {
			return exec.AsValue(err)
		}
		out, err := op(b, p.Args[0], p.Args[1])
		if err != nil {
			return exec.AsValue(err)
		}
		return out
	}
}

// opMul is a * b: numbers, or a string repeated (a negative count repeats it zero times).
func opMul(b *sandbox.Budget, l, r *exec.Value) (*exec.Value, error) {
	switch {
	case l.IsFloat() || r.IsFloat():
		return exec.AsValue(l.Float() * r.Float()), nil
	case l.IsString():
		s, n := l.String(), r.Integer()
		if n <= 0 || s == "" {
			return exec.AsValue(""), nil
		}
		if err := b.Value(textSize(int64(n), int64(len(s)))); err != nil {
			return nil, err
		}
		return exec.AsValue(strings.Repeat(s, n)), nil
	}
	return exec.AsValue(l.Integer() * r.Integer()), nil
}

// opAdd is a + b: lists concatenated, numbers added, or strings concatenated.
func opAdd(b *sandbox.Budget, l, r *exec.Value) (*exec.Value, error) {
	switch {
	case l.IsList():
		if !r.IsList() {
			return nil, fmt.Errorf("unable to concatenate list to %s", r.String())
		}
		n, m := l.Len(), r.Len()
		if err := b.Value(textSize(int64(n+m), 16)); err != nil {
			return nil, err
		}
		out := make([]any, 0, n+m)
		for i := range n {
			out = append(out, l.Index(i).Interface())
		}
		for i := range m {
			out = append(out, r.Index(i).Interface())
		}
		if err := checkValue(b, out); err != nil {
			return nil, err
		}
		return exec.AsValue(out), nil
	case l.IsFloat() || r.IsFloat():
		return exec.AsValue(l.Float() + r.Float()), nil
	case l.IsString() || r.IsString():
		return concat(b, l, r)
	}
	return exec.AsValue(l.Integer() + r.Integer()), nil
}

// opCat is a ~ b.
func opCat(b *sandbox.Budget, l, r *exec.Value) (*exec.Value, error) { return concat(b, l, r) }

func concat(b *sandbox.Budget, l, r *exec.Value) (*exec.Value, error) {
	ls, rs := l.String(), r.String()
	if err := b.Value(int64(len(ls)) + int64(len(rs))); err != nil {
		return nil, err
	}
	return exec.AsValue(ls + rs), nil
}

// opPow is a ** b.
func opPow(_ *sandbox.Budget, l, r *exec.Value) (*exec.Value, error) {
	return exec.AsValue(math.Pow(l.Float(), r.Float())), nil
}

// opList builds a list (or tuple) literal.
func opList(e *exec.Evaluator, p *exec.VarArgs) *exec.Value {
	b, err := budgetOf(e.Environment.Context)
	if err == nil {
		err = b.Step()
	}
	if err != nil {
		return exec.AsValue(err)
	}
	out := make(exec.ValuesList, len(p.Args))
	copy(out, p.Args)
	if err := checkValue(b, []*exec.Value(out)); err != nil {
		return exec.AsValue(err)
	}
	return exec.AsValue(out)
}

// opDict builds a dict literal from its keys and values, alternating.
func opDict(e *exec.Evaluator, p *exec.VarArgs) *exec.Value {
	b, err := budgetOf(e.Environment.Context)
	if err == nil {
		err = b.Step()
	}
	if err != nil {
		return exec.AsValue(err)
	}
	d := &exec.Dict{Pairs: make([]*exec.Pair, 0, len(p.Args)/2)}
	for i := 0; i+1 < len(p.Args); i += 2 {
		d.Pairs = append(d.Pairs, &exec.Pair{Key: p.Args[i], Value: p.Args[i+1]})
	}
	if err := checkValue(b, d); err != nil {
		return exec.AsValue(err)
	}
	return exec.AsValue(d)
}

// Filters: an allowlist of gonja's, each wrapped to count a step, check what it is asked to
// build where its arguments say (padding widths, repetitions, separators) and check the value
// it returns.
var allowedFilters = []string{
	"abs", "attr", "batch", "capitalize", "center", "default", "d", "dictsort", "e", "escape",
	"filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "join",
	"items", "last", "length", "count", "list", "lower", "map", "max", "min", "pprint", "random",
	"rejectattr", "reject", "replace", "reverse", "round", "safe", "selectattr", "select", "slice",
	"sort", "string", "striptags", "sum", "title", "tojson", "trim", "truncate", "unique", "upper",
	"urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
}

// filterCheck checks, before a filter runs, the size of what it would build.
type filterCheck func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error

var filterChecks = map[string]filterCheck{
	"center": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		return b.Value(int64(len(in.String())) + int64(max(intArg(p, 0, "width", 0), 0)))
	},
	"format": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		return b.Value(int64(len(in.String())) + printfWidths(in.String(), p))
	},
	"indent": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		var each int64 = 4
		if w := arg(p, 0, "width"); w != nil {
			switch {
			case w.IsInteger():
				each = int64(max(w.Integer(), 0))
			case w.IsString():
				each = int64(len(w.String()))
			}
		}
		if err := b.Value(each); err != nil {
			return err
		}
		s := in.String()
		return b.Value(int64(len(s)) + textSize(int64(strings.Count(s, "\n")+1), each))
	},
	"join": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		d := arg(p, 0, "d")
		if d == nil || !in.IsIterable() {
			return nil
		}
		return b.Value(textSize(int64(in.Len()), int64(len(d.String()))))
	},
	"replace": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		old, repl := arg(p, 0, "old"), arg(p, 1, "new")
		if old == nil || repl == nil {
			return nil
		}
		limit := -1
		if c := arg(p, 2, "count"); c != nil && !c.IsNil() {
			limit = c.Integer()
		}
		return b.Value(replacedSize(in.String(), old.String(), repl.String(), limit))
	},
	"batch": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		n := intArg(p, 0, "linecount", 0)
		if n < 1 {
			return errors.New("linecount must be at least 1")
		}
		return b.Value(textSize(int64(n), 16))
	},
	"slice": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		return b.Value(textSize(int64(intArg(p, 0, "slices", 1)), 16))
	},
	"tojson": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		ind := arg(p, 0, "indent")
		if ind == nil || ind.IsNil() || !ind.IsInteger() {
			return nil
		}
		n := ind.Integer()
		if n < 0 {
			return errors.New("indent must not be negative")
		}
		s := sandbox.Measure(in.Interface(), b.Limits().MaxValueBytes, unwrapValue)
		// Every element goes on its own line, indented once per level.
		lines := s.Bytes/8 + 1
		return b.Value(2*s.Bytes + textSize(lines, textSize(int64(n), int64(s.Depth))))
	},
	"int": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		if base := intArg(p, 1, "base", 10); base != 0 && (base < 2 || base > 36) {
			return fmt.Errorf("base must be 0 or from 2 to 36, got %d", base)
		}
		return nil
	},
	"truncate": func(b *sandbox.Budget, in *exec.Value, p *exec.VarArgs) error {
		if l := arg(p, 3, "leeway"); l != nil && l.IsInteger() && l.Integer() < 0 {
			return errors.New("leeway must not be negative")
		}
		if l := arg(p, 0, "length"); l != nil && l.IsInteger() && l.Integer() < 0 {
			return errors.New("length must not be negative")
		}
		return nil
	},
}

// boundedFilters returns the allowlisted filters, bounded.
func boundedFilters() *exec.FilterSet {
	out := map[string]exec.FilterFunction{}
	for _, name := range allowedFilters {
		f, ok := builtins.Filters.Get(name)
		if !ok {
			continue
		}
		check := filterChecks[name]
		out[name] = func(e *exec.Evaluator, in *exec.Value, p *exec.VarArgs) *exec.Value {
			b, err := budgetOf(e.Environment.Context)
			if err == nil {
				err = b.Step()
			}
			if err == nil && check != nil && !in.IsError() {
				err = check(b, in, p)
			}
			if err != nil {
				return exec.AsValue(exec.ErrInvalidCall(err))
			}
			v := f(e, in, p)
			if v != nil && !v.IsError() {
				if err := checkValue(b, v.Interface()); err != nil {
					return exec.AsValue(err)
				}
			}
			return v
		}
	}
	return exec.NewFilterSet(out)
}

// replacedSize is the length of s with old replaced by repl (at most limit times; -1: all).
func replacedSize(s, old, repl string, limit int) int64 {
	n := 0
	if old == "" {
		n = utf8.RuneCountInString(s) + 1
	} else {
		n = strings.Count(s, old)
	}
	if limit >= 0 && limit < n {
		n = limit
	}
	grow := int64(len(repl)) - int64(len(old))
	if grow <= 0 {
		return int64(len(s))
	}
	return int64(len(s)) + textSize(int64(n), grow)
}

// printfWidths bounds what the widths and precisions of a printf format (%10s, %.*f) add to
// its output. A * width takes its value from the arguments: then every integer argument counts.
func printfWidths(format string, p *exec.VarArgs) int64 {
	var total int64
	star := false
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
	spec:
		for i++; i < len(format); i++ {
			switch c := format[i]; {
			case c >= '0' && c <= '9':
				j := i
				for j < len(format) && format[j] >= '0' && format[j] <= '9' {
					j++
				}
				total = addSize(total, digits(format[i:j]))
				i = j - 1
			case c == '*':
				star = true
			case strings.IndexByte("+-# .[]", c) >= 0:
			default:
				break spec
			}
		}
	}
	if star {
		for _, a := range p.Args {
			if a.IsInteger() {
				total = addSize(total, int64(max(a.Integer(), 0)))
			}
		}
	}
	return total
}

// formatWidths bounds what the numbers inside the replacement fields of a str.format string
// ({:>10}, {0:.3f}) add to its output; a nested field ({:{}}) takes its value from the
// arguments: then every integer argument counts.
func formatWidths(format string, p *exec.VarArgs) int64 {
	var total int64
	nested := false
	depth := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '{':
			if depth == 0 && i+1 < len(format) && format[i+1] == '{' {
				i++
				continue
			}
			depth++
			if depth > 1 {
				nested = true
			}
		case c == '}':
			depth = max(depth-1, 0)
		case depth > 0 && c >= '0' && c <= '9':
			j := i
			for j < len(format) && format[j] >= '0' && format[j] <= '9' {
				j++
			}
			total = addSize(total, digits(format[i:j]))
			i = j - 1
		}
	}
	if nested {
		for _, a := range p.Args {
			if a.IsInteger() {
				total = addSize(total, int64(max(a.Integer(), 0)))
			}
		}
		for _, a := range p.KwArgs {
			if a.IsInteger() {
				total = addSize(total, int64(max(a.Integer(), 0)))
			}
		}
	}
	return total
}

// digits is the value of a run of decimal digits, capped so that it cannot overflow.
func digits(s string) int64 {
	var n int64
	for _, c := range s {
		n = n*10 + int64(c-'0')
		if n > math.MaxInt32 {
			return math.MaxInt32
		}
	}
	return n
}

func addSize(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Methods (x.upper(), '{}'.format(…)): an allowlist of gonja's per type, bounded like the
// filters. gonja does not pass methods the evaluator, so each rendering gets its own set bound
// to its budget.
var allowedMethods = struct{ str, list, dict, intm, float, boolm []string }{
	str: []string{"capitalize", "capwords", "casefold", "center", "count", "encode", "endswith", "expandtabs",
		"find", "format", "format_map", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "islower",
		"isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
		"partition", "removeprefix", "removesuffix", "replace", "rfind", "rjust", "rpartition", "rsplit",
		"rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill"},
	list:  []string{"append", "reverse", "copy"},
	dict:  []string{"keys", "values", "items", "get", "pop", "setdefault", "update", "copy", "clear"},
	intm:  []string{"is_integer", "bit_length", "bit_count", "as_integer_ratio"},
	float: []string{"is_integer", "as_integer_ratio", "hex"},
	boolm: []string{"string", "int", "bit_length", "bit_count", "as_integer_ratio"},
}

func widthCheck(b *sandbox.Budget, self string, p *exec.VarArgs) error {
	return b.Value(int64(len(self)) + textSize(int64(max(intArg(p, 0, "width", 0), 0)), 4))
}

var strMethodChecks = map[string]func(*sandbox.Budget, string, *exec.VarArgs) error{
	"center": widthCheck, "ljust": widthCheck, "rjust": widthCheck, "zfill": widthCheck,
	"expandtabs": func(b *sandbox.Budget, self string, p *exec.VarArgs) error {
		return b.Value(int64(len(self)) + textSize(int64(strings.Count(self, "\t")), int64(max(intArg(p, 0, "tabsize", 8), 0))))
	},
	"join": func(b *sandbox.Budget, self string, p *exec.VarArgs) error {
		if it := arg(p, 0, "iterable"); it != nil && it.IsIterable() {
			return b.Value(textSize(int64(it.Len()), int64(len(self))))
		}
		return nil
	},
	"replace": func(b *sandbox.Budget, self string, p *exec.VarArgs) error {
		old, repl := arg(p, 0, "old"), arg(p, 1, "new")
		if old == nil || repl == nil {
			return nil
		}
		return b.Value(replacedSize(self, old.String(), repl.String(), intArg(p, 2, "count", -1)))
	},
	"format": func(b *sandbox.Budget, self string, p *exec.VarArgs) error {
		return b.Value(int64(len(self)) + formatWidths(self, p))
	},
	"format_map": func(b *sandbox.Budget, self string, p *exec.VarArgs) error {
		return b.Value(int64(len(self)) + formatWidths(self, p))
	},
}

func boundMethodSet[I any](b *sandbox.Budget, from *exec.MethodSet[I], names []string, checks map[string]func(*sandbox.Budget, I, *exec.VarArgs) error) *exec.MethodSet[I] {
	out := make(map[string]exec.Method[I], len(names))
	for _, name := range names {
		m, ok := from.Get(name)
		if !ok {
			continue
		}
		check := checks[name]
		out[name] = func(self I, selfValue *exec.Value, p *exec.VarArgs) (any, error) {
			if err := b.Step(); err != nil {
				return nil, err
			}
			if check != nil {
				if err := check(b, self, p); err != nil {
					return nil, err
				}
			}
			v, err := m(self, selfValue, p)
			if err == nil {
				err = checkValue(b, v)
			}
			return v, err
		}
	}
	return exec.NewMethodSet(out)
}

// boundMethods returns the methods of one rendering.
func boundMethods(b *sandbox.Budget) exec.Methods {
	m := builtins.Methods
	return exec.Methods{
		Str:   boundMethodSet(b, m.Str, allowedMethods.str, strMethodChecks),
		List:  boundMethodSet[[]any](b, m.List, allowedMethods.list, nil),
		Dict:  boundMethodSet[map[string]any](b, m.Dict, allowedMethods.dict, nil),
		Int:   boundMethodSet[int](b, m.Int, allowedMethods.intm, nil),
		Float: boundMethodSet[float64](b, m.Float, allowedMethods.float, nil),
		Bool:  boundMethodSet[bool](b, m.Bool, allowedMethods.boolm, nil),
	}
}

// globals are the functions every template can call: gonja's, less lipsum (filler text of
// any length), with range() bounded, plus the bounded operations of the rewritten tree.
func globals() *exec.Context {
	ctx := exec.EmptyContext()
	for _, name := range []string{"cycler", "dict", "joiner", "namespace", "_", "gettext", "ngettext"} {
		if f, ok := builtins.GlobalFunctions.Get(name); ok {
			ctx.Set(name, f)
		}
	}
	ctx.Set("range", boundedRange)
	ctx.Set(fnMul, boundedOp(opMul))
	ctx.Set(fnAdd, boundedOp(opAdd))
	ctx.Set(fnCat, boundedOp(opCat))
	ctx.Set(fnPow, boundedOp(opPow))
	ctx.Set(fnList, opList)
	ctx.Set(fnDict, opDict)
	return ctx
}

// boundedRange is range() with at most MaxRange items, returned as a slice (gonja's own streams
// through a goroutine that leaks when a loop breaks early).
func boundedRange(e *exec.Evaluator, params *exec.VarArgs) ([]int, error) {
	b, err := budgetOf(e.Environment.Context)
	if err == nil {
		err = b.Step()
	}
	if err != nil {
		return nil, err
	}
	start, stop, step := 0, 0, 1
	args := params.Args
	for _, a := range args {
		if !a.IsInteger() {
			return nil, exec.ErrInvalidCall(errors.New("range() takes integers: [start, ]stop[, step]"))
		}
	}
	switch len(args) {
	case 1:
		stop = args[0].Integer()
	case 2:
		start, stop = args[0].Integer(), args[1].Integer()
	case 3:
		start, stop, step = args[0].Integer(), args[1].Integer(), args[2].Integer()
	default:
		return nil, exec.ErrInvalidCall(errors.New("range() takes [start, ]stop[, step]"))
	}
	if step == 0 {
		return nil, exec.ErrInvalidCall(errors.New("range() step cannot be 0"))
	}
	// In float arithmetic: stop-start may overflow an int.
	n := math.Ceil((float64(stop) - float64(start)) / float64(step))
	if n > MaxRange {
		return nil, exec.ErrInvalidCall(fmt.Errorf("range() of %.0f items exceeds the limit of %d", n, MaxRange))
	}
	if n < 0 {
		n = 0
	}
	if err := b.Value(int64(n) * 8); err != nil {
		return nil, err
	}
	out := make([]int, 0, int(n))
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		out = append(out, i)
		if len(out) >= int(n) {
			break
		}
	}
	return out, nil
}
