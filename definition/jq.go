package definition

import (
	"fmt"
	"math"
	"strings"

	"github.com/itchyny/gojq"

	"github.com/pyairtable/automation-domain/sandbox"
)

// jq programs (data_transform) run with gojq under a sandbox.Budget. gojq stops at the
// budget's deadline by itself (it watches the context at every instruction); the rest is
// bounded by rewriting the parsed program before it compiles:
//
//   - every function the program defines takes its call depth as a hidden argument and first
//     checks it (jq recursion lives on gojq's heap, so it is stopped by depth, not stack);
//   - every function call, reduce/foreach iteration and collected array element counts a step;
//   - +, * and the assignment operators check the size of what they would build (string
//     repetition, concatenation, an array grown to a far index) before building it;
//   - a prelude shadows the builtins that can build a large value from a small one
//     (tostring, tojson, @formats, join, add, flatten, implode, setpath, map, sort_by …,
//     combinations, pick, fromstream, sub, gsub) with versions that check sizes first.
//
// The hidden names hold a NUL byte: no program can name them.
const (
	jqBudgetVar   = "$\x00budget"
	jqBudgetInput = "$__sandbox_budget_input"
	jqDepthVar    = "$\x00depth"
	jqRename      = "\x00" // suffix of a program's own functions (which take the depth)

	jqEnter   = "\x00enter"   // (budget; depth): a call one level deeper
	jqNext    = "\x00next"    // (depth): depth + 1
	jqTick    = "\x00tick"    // (budget): a step; passes its input on
	jqElem    = "\x00elem"    // (budget): an element collected into an array
	jqMul     = "\x00mul"     // (budget; l; r): [l, r] once l * r is known to fit
	jqAdd     = "\x00add"     // (budget; l; r): [l, r] once l + r is known to fit
	jqPaths   = "\x00paths"   // (budget; paths): its input, once setting each path fits
	jqMeasure = "\x00measure" // (budget; extra bytes per element): its input, once it fits
)

// jqPrelude shadows builtins that can build a large value out of a small one: each checks
// what it is about to build, then calls gojq's own (the __sandbox_ prefix becomes a NUL name).
// The functions defined in jq itself are redefined here so that their arrays, additions and
// assignments go through the bounded operations.
const jqPrelude = `
def __sandbox_tostring: tostring;
def __sandbox_tojson: tojson;
def __sandbox_join($s): join($s);
def __sandbox_add: add;
def __sandbox_flatten: flatten;
def __sandbox_flatten($d): flatten($d);
def __sandbox_implode: implode;
def __sandbox_format($f): format($f);
def __sandbox_tohtml: _tohtml;
def __sandbox_touri: _touri;
def __sandbox_tourid: _tourid;
def __sandbox_tocsv: _tocsv;
def __sandbox_totsv: _totsv;
def __sandbox_tosh: _tosh;
def __sandbox_tobase64: _tobase64;
def __sandbox_tobase64d: _tobase64d;
def __sandbox_setpath($p; $v): setpath($p; $v);
def tostring: __sandbox_measure($__sandbox_budget; 0) | __sandbox_tostring;
def tojson: __sandbox_measure($__sandbox_budget; 0) | __sandbox_tojson;
def join($s): __sandbox_measure($__sandbox_budget; $s | tostring | length) | __sandbox_join($s);
def add: __sandbox_measure($__sandbox_budget; 0) | __sandbox_add;
def flatten: __sandbox_measure($__sandbox_budget; 0) | __sandbox_flatten;
def flatten($d): __sandbox_measure($__sandbox_budget; 0) | __sandbox_flatten($d);
def implode: __sandbox_measure($__sandbox_budget; 4) | __sandbox_implode;
def format($f): __sandbox_measure($__sandbox_budget; 0) | __sandbox_format($f);
def _tohtml: __sandbox_measure($__sandbox_budget; 0) | __sandbox_tohtml;
def _touri: __sandbox_measure($__sandbox_budget; 0) | __sandbox_touri;
def _tourid: __sandbox_measure($__sandbox_budget; 0) | __sandbox_tourid;
def _tocsv: __sandbox_measure($__sandbox_budget; 0) | __sandbox_tocsv;
def _totsv: __sandbox_measure($__sandbox_budget; 0) | __sandbox_totsv;
def _tosh: __sandbox_measure($__sandbox_budget; 0) | __sandbox_tosh;
def _tobase64: __sandbox_measure($__sandbox_budget; 0) | __sandbox_tobase64;
def _tobase64d: __sandbox_measure($__sandbox_budget; 0) | __sandbox_tobase64d;
def setpath($p; $v): __sandbox_paths($__sandbox_budget; [$p]) | __sandbox_setpath($p; $v);
def map(f): [.[] | f];
def add(f): [f] | add;
def min_by(f): _min_by(map([f]));
def max_by(f): _max_by(map([f]));
def sort_by(f): _sort_by(map([f]));
def group_by(f): _group_by(map([f]));
def unique_by(f): _unique_by(map([f]));
def combinations(n): [limit(n; repeat(.))] | combinations;
def pick(f): . as $v | reduce path(f) as $p (null; setpath($p; $v | getpath($p)));
def fromstream(f):
  foreach f as $e (null;
    if .done then null end
    | if ($e | length) == 2
      then setpath(["value"] + $e[0]; $e[1]) | setpath(["done"]; ($e[0] | length) == 0)
      else setpath(["done"]; ($e[0] | length) == 1) end;
    if .done then .value else empty end);
def sub($re; str): sub($re; str; null);
def sub($re; str; $flags):
  . as $in
  | reduce match($re; $flags) as $m ({out: [], at: 0};
      . as $acc
      | reduce ($m.captures | _captures | str) as $rep ({acc: $acc, n: 0};
          .acc.out[.n] += $in[.acc.at:$m.offset] + $rep | .n += 1)
      | .acc | .at = $m.offset + $m.length)
  | if (.out | length) == 0 then $in else .at as $at | .out[] + $in[$at:] end;
def gsub($re; str): sub($re; str; "g");
def gsub($re; str; $flags): sub($re; str; $flags + "g");
`

// compileJQ parses a jq program, bounds it and compiles it. The program cannot read the
// environment ($ENV and env are empty) nor load modules.
func compileJQ(src string, limits sandbox.Limits) (code *gojq.Code, err error) {
	defer sandbox.Recover("jq", &err)
	limits = limits.OrDefaults()
	if len(src) > MaxJQSource {
		return nil, fmt.Errorf("jq: the program is longer than %d bytes", MaxJQSource)
	}
	if n := jqNesting(src); n > limits.MaxNesting {
		return nil, &sandbox.LimitError{Limit: sandbox.LimitNesting, Max: int64(limits.MaxNesting)}
	}
	q, err := gojq.Parse(src) // gojq's parser is table-driven, but its compiler recurses
	if err != nil {
		return nil, fmt.Errorf("jq: %w", err)
	}
	w := &jqRewriter{depth: true}
	w.query(q, nil)
	if w.deepest > limits.MaxNesting*jqDepthFactor {
		return nil, &sandbox.LimitError{Limit: sandbox.LimitNesting, Max: int64(limits.MaxNesting)}
	}
	prelude, err := gojq.Parse(jqPrelude)
	if err != nil {
		return nil, fmt.Errorf("jq prelude: %w", err)
	}
	(&jqRewriter{prelude: true}).query(prelude, nil)
	q.FuncDefs = append(prelude.FuncDefs, q.FuncDefs...)
	// The budget comes in as a variable gojq accepts the name of, and is bound at once to the
	// hidden name; the program sees the first as null.
	imports := q.Imports
	q.Imports = nil
	bound := &gojq.Query{Imports: imports, Left: jqVar(jqBudgetInput), Op: gojq.OpPipe,
		Patterns: []*gojq.Pattern{{Name: jqBudgetVar}}, Right: &gojq.Query{
			Left: &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeNull}}, Op: gojq.OpPipe,
			Patterns: []*gojq.Pattern{{Name: jqBudgetInput}}, Right: q}}
	opts := append([]gojq.CompilerOption{
		gojq.WithEnvironLoader(func() []string { return nil }),
		gojq.WithVariables([]string{jqBudgetInput}),
	}, jqFunctions()...)
	code, err = gojq.Compile(bound, opts...)
	if err != nil {
		return nil, fmt.Errorf("jq: %w", err)
	}
	return code, nil
}

// jqNesting is how deeply src's brackets nest, string interpolations ("\(…)") included.
func jqNesting(src string) int {
	depth, deepest := 0, 0
	// interp holds, for each open interpolation, the depth its string was at.
	var interp []int
	inString, escaped, comment := false, false, false
	for _, c := range src {
		switch {
		case comment:
			comment = c != '\n'
		case inString && escaped:
			escaped = false
			if c == '(' {
				interp = append(interp, depth)
				inString = false
				depth++
				deepest = max(deepest, depth)
			}
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '#':
			comment = true
		case c == '(' || c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ')' || c == ']' || c == '}':
			depth = max(depth-1, 0)
			if c == ')' && len(interp) > 0 && interp[len(interp)-1] == depth {
				interp = interp[:len(interp)-1]
				inString = true
			}
		}
	}
	return deepest
}

// jqDepthFactor: a program's syntax tree may nest this many times deeper than the nesting
// limit (a | b | c … is one level of nesting per pipe).
const jqDepthFactor = 8

// MaxJQSource bounds a jq program's text.
const MaxJQSource = 64 << 10

// jqScope is what a name means where it is used: the functions defined by the program in an
// enclosing query (renamed when they take the depth), and the closure parameters of the
// enclosing function.
type jqScope struct {
	parent *jqScope
	funcs  map[string]bool // name/arity
	params map[string]bool
	inFunc bool // inside a function of the program: its depth is in scope
}

func (s *jqScope) userFunc(name string, arity int) bool {
	for sc := s; sc != nil; sc = sc.parent {
		if arity == 0 && sc.params[name] {
			return false
		}
		if sc.funcs[fmt.Sprintf("%s/%d", name, arity)] {
			return true
		}
	}
	return false
}

// jqRewriter bounds a parsed program in place (see compileJQ). With depth set, the program's
// own functions take their depth; the prelude's do not (they do not recurse).
type jqRewriter struct {
	depth bool
	// prelude: the prelude's own __sandbox_ names become the hidden ones (only there: a
	// program that writes them gets nothing but an undefined function).
	prelude        bool
	level, deepest int
}

// replace puts r in q's place, keeping the definitions q carries (they scope over r too).
func replace(q, r *gojq.Query) {
	r.Meta, r.Imports, r.FuncDefs = q.Meta, q.Imports, q.FuncDefs
	*q = *r
}

func jqCall(name string, args ...*gojq.Query) *gojq.Query {
	return &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeFunc, Func: &gojq.Func{Name: name, Args: args}}}
}

func jqVar(name string) *gojq.Query { return jqCall(name) }

func jqPipe(l, r *gojq.Query) *gojq.Query { return &gojq.Query{Left: l, Op: gojq.OpPipe, Right: r} }

func jqIndex(i int) *gojq.Query {
	return &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeIndex, Index: &gojq.Index{
		Start: &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeNumber, Number: fmt.Sprint(i)}}}}}
}

// checkedOp is l op r once the check function has seen both operands: check(budget; l; r)
// gives [l, r], then .[0] op .[1] — the same evaluation order as l op r.
func checkedOp(check string, op gojq.Operator, l, r *gojq.Query) *gojq.Query {
	return jqPipe(jqCall(check, jqVar(jqBudgetVar), l, r), &gojq.Query{Left: jqIndex(0), Op: op, Right: jqIndex(1)})
}

func (w *jqRewriter) query(q *gojq.Query, s *jqScope) {
	if q == nil {
		return
	}
	w.level++
	w.deepest = max(w.deepest, w.level)
	defer func() { w.level-- }()
	if len(q.FuncDefs) > 0 {
		inner := &jqScope{parent: s, funcs: map[string]bool{}, inFunc: s != nil && s.inFunc}
		for _, fd := range q.FuncDefs {
			if w.depth {
				inner.funcs[fmt.Sprintf("%s/%d", fd.Name, len(fd.Args))] = true
			}
			w.funcDef(fd, inner)
		}
		s = inner
	}
	w.term(q.Term, s)
	w.query(q.Left, s)
	w.query(q.Right, s)
	w.patterns(q.Patterns, s)
	// Renaming a program's calls to user functions happened in term; now the operators.
	switch q.Op {
	case gojq.OpMul:
		replace(q, checkedOp(jqMul, gojq.OpMul, q.Left, q.Right))
	case gojq.OpAdd:
		replace(q, checkedOp(jqAdd, gojq.OpAdd, q.Left, q.Right))
	case gojq.OpAssign, gojq.OpModify:
		w.guardPaths(q)
	case gojq.OpUpdateAdd, gojq.OpUpdateSub, gojq.OpUpdateMul, gojq.OpUpdateDiv, gojq.OpUpdateMod, gojq.OpUpdateAlt:
		// l op= r is r as $x | l |= (. op $x), with op bounded like any other.
		const v = "$\x00update"
		var f *gojq.Query
		dot := &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeIdentity}}
		switch q.Op {
		case gojq.OpUpdateAdd:
			f = checkedOp(jqAdd, gojq.OpAdd, dot, jqVar(v))
		case gojq.OpUpdateMul:
			f = checkedOp(jqMul, gojq.OpMul, dot, jqVar(v))
		default:
			f = &gojq.Query{Left: dot, Op: map[gojq.Operator]gojq.Operator{gojq.OpUpdateSub: gojq.OpSub,
				gojq.OpUpdateDiv: gojq.OpDiv, gojq.OpUpdateMod: gojq.OpMod, gojq.OpUpdateAlt: gojq.OpAlt}[q.Op], Right: jqVar(v)}
		}
		modify := &gojq.Query{Left: q.Left, Op: gojq.OpModify, Right: f}
		w.guardPaths(modify)
		replace(q, &gojq.Query{Left: q.Right, Op: gojq.OpPipe, Patterns: []*gojq.Pattern{{Name: v}}, Right: modify})
	}
}

// guardPaths puts, before an assignment l = r or l |= f, a check that setting every path of l
// fits (an index far past an array's end would grow it in one step).
func (w *jqRewriter) guardPaths(q *gojq.Query) {
	paths := &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeArray, Array: &gojq.Array{Query: jqCall("path", q.Left)}}}
	assign := &gojq.Query{Left: q.Left, Op: q.Op, Right: q.Right}
	replace(q, jqPipe(jqCall(jqPaths, jqVar(jqBudgetVar), paths), assign))
}

func (w *jqRewriter) funcDef(fd *gojq.FuncDef, s *jqScope) {
	body := &jqScope{parent: s, params: map[string]bool{}, inFunc: w.depth || (s != nil && s.inFunc)}
	for _, a := range fd.Args {
		body.params[strings.TrimPrefix(a, "$")] = true
	}
	w.query(fd.Body, body)
	if w.prelude {
		fd.Name = unhide(fd.Name)
	}
	if w.depth {
		fd.Name += jqRename
		fd.Args = append(fd.Args, jqDepthVar)
		fd.Body = &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeIf, If: &gojq.If{
			Cond: jqCall(jqEnter, jqVar(jqBudgetVar), jqVar(jqDepthVar)),
			Then: fd.Body,
		}}}
	}
}

// unhide turns the prelude's __sandbox_ names into the hidden ones.
func unhide(name string) string {
	switch {
	case name == "$__sandbox_budget":
		return jqBudgetVar
	case strings.HasPrefix(name, "__sandbox_"):
		return "\x00" + strings.TrimPrefix(name, "__sandbox_")
	}
	return name
}

func (w *jqRewriter) term(t *gojq.Term, s *jqScope) {
	if t == nil {
		return
	}
	switch t.Type {
	case gojq.TermTypeFunc:
		f := t.Func
		for _, a := range f.Args {
			w.query(a, s)
		}
		if w.prelude {
			f.Name = unhide(f.Name)
		} else if w.depth && !strings.HasPrefix(f.Name, "$") && s.userFunc(f.Name, len(f.Args)) {
			depth := &gojq.Query{Term: &gojq.Term{Type: gojq.TermTypeNumber, Number: "0"}}
			if s.inFunc {
				depth = jqCall(jqNext, jqVar(jqDepthVar))
			}
			f.Name += jqRename
			f.Args = append(f.Args, depth)
		}
	case gojq.TermTypeObject:
		for _, kv := range t.Object.KeyVals {
			w.query(kv.KeyQuery, s)
			w.str(kv.KeyString, s)
			w.query(kv.Val, s)
		}
	case gojq.TermTypeArray:
		if t.Array.Query != nil {
			w.query(t.Array.Query, s)
			t.Array.Query = jqPipe(t.Array.Query, jqCall(jqElem, jqVar(jqBudgetVar)))
		}
	case gojq.TermTypeUnary:
		w.term(t.Unary.Term, s)
	case gojq.TermTypeFormat, gojq.TermTypeString:
		w.str(t.Str, s)
	case gojq.TermTypeIf:
		w.query(t.If.Cond, s)
		w.query(t.If.Then, s)
		for _, e := range t.If.Elif {
			w.query(e.Cond, s)
			w.query(e.Then, s)
		}
		w.query(t.If.Else, s)
	case gojq.TermTypeTry:
		w.query(t.Try.Body, s)
		w.query(t.Try.Catch, s)
	case gojq.TermTypeReduce:
		w.query(t.Reduce.Query, s)
		t.Reduce.Query = jqPipe(t.Reduce.Query, jqCall(jqTick, jqVar(jqBudgetVar)))
		w.patterns(t.Reduce.Patterns, s)
		w.query(t.Reduce.Start, s)
		w.query(t.Reduce.Update, s)
	case gojq.TermTypeForeach:
		w.query(t.Foreach.Query, s)
		t.Foreach.Query = jqPipe(t.Foreach.Query, jqCall(jqTick, jqVar(jqBudgetVar)))
		w.patterns(t.Foreach.Patterns, s)
		w.query(t.Foreach.Start, s)
		w.query(t.Foreach.Update, s)
		w.query(t.Foreach.Extract, s)
	case gojq.TermTypeLabel:
		w.query(t.Label.Body, s)
	case gojq.TermTypeQuery:
		w.query(t.Query, s)
	case gojq.TermTypeIndex:
		w.index(t.Index, s)
	}
	for _, sfx := range t.SuffixList {
		w.index(sfx.Index, s)
	}
}

func (w *jqRewriter) index(x *gojq.Index, s *jqScope) {
	if x != nil {
		w.str(x.Str, s)
		w.query(x.Start, s)
		w.query(x.End, s)
	}
}

func (w *jqRewriter) str(x *gojq.String, s *jqScope) {
	if x != nil {
		for _, q := range x.Queries {
			w.query(q, s)
		}
	}
}

func (w *jqRewriter) patterns(ps []*gojq.Pattern, s *jqScope) {
	for _, p := range ps {
		w.patterns(p.Array, s)
		for _, o := range p.Object {
			w.query(o.KeyQuery, s)
			w.str(o.KeyString, s)
			if o.Val != nil {
				w.patterns([]*gojq.Pattern{o.Val}, s)
			}
		}
	}
}

// jqFunctions are the bounded operations the rewritten program calls.
func jqFunctions() []gojq.CompilerOption {
	budget := func(args []any) (*sandbox.Budget, error) {
		if len(args) > 0 {
			if b, ok := args[0].(*sandbox.Budget); ok && b != nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("jq: no budget")
	}
	return []gojq.CompilerOption{
		gojq.WithFunction(jqEnter, 2, 2, func(_ any, args []any) any {
			b, err := budget(args)
			if err != nil {
				return err
			}
			if err := b.Step(); err != nil {
				return err
			}
			if d, _ := gojq.ToInt(args[1]); d >= b.Limits().MaxDepth {
				return b.Exceed(&sandbox.LimitError{Limit: sandbox.LimitDepth, Max: int64(b.Limits().MaxDepth)})
			}
			return true
		}),
		gojq.WithFunction(jqNext, 1, 1, func(_ any, args []any) any {
			d, _ := gojq.ToInt(args[0])
			return d + 1
		}),
		gojq.WithFunction(jqTick, 1, 1, func(v any, args []any) any {
			b, err := budget(args)
			if err == nil {
				err = b.Step()
			}
			if err != nil {
				return err
			}
			return v
		}),
		gojq.WithFunction(jqElem, 1, 1, func(v any, args []any) any {
			b, err := budget(args)
			if err == nil {
				err = b.Step()
			}
			if err == nil {
				err = b.Alloc(16)
			}
			if err != nil {
				return err
			}
			return v
		}),
		gojq.WithFunction(jqMul, 3, 3, func(_ any, args []any) any {
			b, err := budget(args)
			if err != nil {
				return err
			}
			l, r := args[1], args[2]
			var size int64
			switch {
			case isString(l) && isNumber(r):
				size = repeatSize(l.(string), r)
			case isString(r) && isNumber(l):
				size = repeatSize(r.(string), l)
			default:
				lm, lok := l.(map[string]any)
				rm, rok := r.(map[string]any)
				if lok && rok {
					size = 16 * int64(len(lm)+len(rm))
				}
			}
			if err := b.Value(size); err != nil {
				return err
			}
			return []any{l, r}
		}),
		gojq.WithFunction(jqAdd, 3, 3, func(_ any, args []any) any {
			b, err := budget(args)
			if err != nil {
				return err
			}
			if err := b.Value(shallowSize(args[1]) + shallowSize(args[2])); err != nil {
				return err
			}
			return []any{args[1], args[2]}
		}),
		gojq.WithFunction(jqPaths, 2, 2, func(v any, args []any) any {
			b, err := budget(args)
			if err != nil {
				return err
			}
			paths, _ := args[1].([]any)
			var grow int64
			for _, p := range paths {
				ks, _ := p.([]any)
				grow += pathGrowth(v, ks)
			}
			if err := b.Value(grow); err != nil {
				return err
			}
			return v
		}),
		gojq.WithFunction(jqMeasure, 2, 2, func(v any, args []any) any {
			b, err := budget(args)
			if err != nil {
				return err
			}
			extra, _ := gojq.ToInt(args[1])
			s := sandbox.Measure(v, b.Limits().MaxValueBytes, nil)
			if s.Depth > b.Limits().MaxNesting {
				return b.Exceed(&sandbox.LimitError{Limit: sandbox.LimitNesting, Max: int64(b.Limits().MaxNesting)})
			}
			size := s.Bytes
			if xs, ok := v.([]any); ok && extra > 0 {
				size += int64(len(xs)) * int64(extra)
			}
			if err := b.Value(size); err != nil {
				return err
			}
			return v
		}),
	}
}

func isString(v any) bool { _, ok := v.(string); return ok }

func isNumber(v any) bool { _, ok := gojq.ToFloat64(v); return ok && !isString(v) }

// repeatSize is the length of s * n as gojq computes it (n <= 0: null).
func repeatSize(s string, n any) int64 {
	f, _ := gojq.ToFloat64(n)
	if f <= 0 || math.IsNaN(f) {
		return 0
	}
	if f >= float64(math.MaxInt32) {
		f = math.MaxInt32
	}
	return int64(len(s)) * int64(f)
}

// shallowSize is what l + r copies of one operand: a string's bytes, an array's or an
// object's entries (their elements are shared, not copied).
func shallowSize(v any) int64 {
	switch x := v.(type) {
	case string:
		return int64(len(x))
	case []any:
		return 16 * int64(len(x))
	case map[string]any:
		return 16 * int64(len(x))
	}
	return 0
}

// pathGrowth is how many bytes of array elements setting path in v adds (an index past an
// array's end fills it with nulls).
func pathGrowth(v any, path []any) int64 {
	var grow int64
	cur := v
	for _, k := range path {
		switch key := k.(type) {
		case string:
			m, _ := cur.(map[string]any)
			cur = m[key]
		default:
			i, ok := gojq.ToInt(key)
			if !ok {
				return grow // a slice: bounded by the array
			}
			a, _ := cur.([]any)
			if i >= len(a) {
				grow += 16 * int64(i-len(a)+1)
				cur = nil
			} else if i >= 0 {
				cur = a[i]
			} else {
				cur = nil
			}
		}
	}
	return grow
}
