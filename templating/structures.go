package templating

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	pkgerrors "github.com/pkg/errors"

	"github.com/nikolalohinski/gonja/v2/builtins"
	controlStructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"

	"github.com/pyairtable/automation-domain/sandbox"
)

// The control structures a template may use. for, macro, call, set, with and filter are this
// package's: they loop, call or capture output, so they count against the rendering's budget
// (every iteration and call a step, calls one level deeper, captured output a value). if, raw,
// autoescape, break and continue are gonja's. include, import, from and extends are left out:
// they load other templates by name.
func controlStructureSet() *exec.ControlStructureSet {
	set := map[string]parser.ControlStructureParser{
		"for": parseFor, "macro": parseMacro, "call": parseCall, "set": parseSet, "with": parseWith,
		"filter": parseFilterBlock,
	}
	for _, name := range []string{"if", "raw", "autoescape", "break", "continue"} {
		if p, ok := builtins.ControlStructures.Get(name); ok {
			set[name] = p
		}
	}
	return exec.NewControlStructureSet(set)
}

// renderState is what one rendering carries in its context (under budgetKey): its budget, and
// the body of the {% call %} block whose macro is being called.
type renderState struct {
	b      *sandbox.Budget
	caller any
}

func stateOf(r *exec.Renderer) (*renderState, error) {
	if v, ok := r.Environment.Context.Get(budgetKey); ok {
		if s, ok := v.(*renderState); ok {
			return s, nil
		}
	}
	return nil, errNoBudget
}

// capture collects output that becomes a value (a macro's, a {% set %} block's, a filtered
// block's): it may grow to the value size limit, and what it holds counts as allocated.
type capture struct {
	b   *sandbox.Budget
	buf bytes.Buffer
}

func newCapture(b *sandbox.Budget) *capture { return &capture{b: b} }

func (c *capture) Write(p []byte) (int, error) {
	if max := c.b.Limits().MaxValueBytes; int64(c.buf.Len()+len(p)) > max {
		return 0, c.b.Exceed(&sandbox.LimitError{Limit: sandbox.LimitValue, Max: max, Actual: int64(c.buf.Len() + len(p))})
	}
	if err := c.b.Alloc(int64(len(p))); err != nil {
		return 0, err
	}
	return c.buf.Write(p)
}

func (c *capture) String() string { return c.buf.String() }

// isLoopControl tells a {% break %} or {% continue %} of type T through the wrapping of the
// structures between it and its loop.
func isLoopControl[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// forLoop is {% for key[, value] in iterable [if cond] [recursive] %} … [{% else %} …] {% endfor %}.
type forLoop struct {
	pos        *tokens.Token
	key, value string
	iterable   nodes.Expression
	cond       nodes.Expression
	recursive  bool
	body       *nodes.Wrapper
	empty      *nodes.Wrapper
}

func (f *forLoop) Position() *tokens.Token { return f.pos }
func (f *forLoop) String() string          { return fmt.Sprintf("for(line %d)", f.pos.Line) }

func (f *forLoop) rewrite(w *rewriter) {
	f.iterable, f.cond = w.expr(f.iterable), w.expr(f.cond)
	w.wrapper(f.body)
	w.wrapper(f.empty)
}

func parseFor(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	f := &forLoop{pos: p.Current()}
	key := args.Match(tokens.Name)
	if key == nil {
		return nil, args.Error("Expected a key identifier as first argument for 'for'-tag", nil)
	}
	f.key = key.Val
	if args.Match(tokens.Comma) != nil {
		value := args.Match(tokens.Name)
		if value == nil {
			return nil, args.Error("Value name must be an identifier.", nil)
		}
		f.value = value.Val
	}
	if args.Match(tokens.In) == nil {
		return nil, args.Error("Expected keyword 'in'.", nil)
	}
	var err error
	if f.iterable, err = args.ParseExpression(); err != nil {
		return nil, err
	}
	if args.MatchName("if") != nil {
		if f.cond, err = args.ParseExpression(); err != nil {
			return nil, err
		}
	}
	f.recursive = args.MatchName("recursive") != nil
	if !args.End() {
		return nil, args.Error("Malformed for-loop args.", nil)
	}
	wrapper, endargs, err := p.WrapUntil("else", "endfor")
	if err != nil {
		return nil, err
	}
	if !endargs.End() {
		return nil, endargs.Error("Arguments not allowed here.", nil)
	}
	f.body = wrapper
	if wrapper.EndTag == "else" {
		if f.empty, endargs, err = p.WrapUntil("endfor"); err != nil {
			return nil, err
		}
		if !endargs.End() {
			return nil, endargs.Error("Arguments not allowed here.", nil)
		}
	}
	return f, nil
}

func (f *forLoop) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	st, err := stateOf(r)
	if err != nil {
		return err
	}
	obj := r.Eval(f.iterable)
	if obj.IsError() {
		return obj
	}
	return f.run(r, st.b, obj)
}

type loopItem struct{ key, value *exec.Value }

func (f *forLoop) bind(ctx *exec.Context, key, value *exec.Value) loopItem {
	it := loopItem{key: key}
	if f.value != "" && !key.IsString() && key.Len() == 2 {
		// for k, v in [[k1, v1], …]: each item unpacks
		key.Iterate(func(idx, _ int, k, _ *exec.Value) bool {
			if idx == 0 {
				it.key = k
			} else {
				it.value = k
			}
			return true
		}, func() {})
	} else if value != nil {
		it.value = value
	}
	ctx.Set(f.key, it.key)
	if it.value != nil && f.value != "" {
		ctx.Set(f.value, it.value)
	}
	return it
}

// run renders the loop over obj (again for each loop(children) of a recursive loop).
func (f *forLoop) run(r *exec.Renderer, b *sandbox.Budget, obj *exec.Value) error {
	var items []loopItem
	var stop error
	obj.Iterate(func(_, _ int, key, value *exec.Value) bool {
		if stop = b.Step(); stop != nil {
			return false
		}
		sub := r.Inherit()
		it := f.bind(sub.Environment.Context, key, value)
		if f.cond != nil && !sub.Eval(f.cond).IsTrue() {
			return true
		}
		items = append(items, it)
		return true
	}, func() {})
	if stop != nil {
		return stop
	}
	if len(items) == 0 {
		if f.empty != nil {
			return r.Inherit().ExecuteWrapper(f.empty)
		}
		return nil
	}
	depth := 1
	if parent, ok := r.Environment.Context.Get("loop"); ok {
		if p, ok := parent.(*loopInfo); ok {
			depth = p.depth + 1
		}
	}
	loop := &loopInfo{length: len(items), depth: depth, items: items}
	var loopValue any = loop
	if f.recursive {
		// loop(children) renders the body for children, one call deeper.
		loopValue = func(va *exec.VarArgs) *exec.Value {
			if len(va.Args) == 0 {
				return exec.AsValue("")
			}
			if err := b.Enter(); err != nil {
				return exec.AsValue(err)
			}
			defer b.Leave()
			out := newCapture(b)
			sub := r.Inherit()
			sub.Output = out
			if err := f.run(sub, b, va.Args[0]); err != nil {
				return exec.AsValue(err)
			}
			return exec.AsSafeValue(out.String())
		}
	}
	for i, it := range items {
		if err := b.Step(); err != nil {
			return err
		}
		sub := r.Inherit()
		ctx := sub.Environment.Context
		ctx.Set(f.key, it.key)
		if it.value != nil && f.value != "" {
			ctx.Set(f.value, it.value)
		}
		ctx.Set("loop", loopValue)
		loop.index0 = i
		err := sub.ExecuteWrapper(f.body)
		switch {
		case err == nil, isLoopControl[*controlStructures.LoopContinueError](err):
		case isLoopControl[*controlStructures.LoopBreakError](err):
			return nil
		default:
			return err
		}
	}
	return nil
}

// loopInfo is the loop variable inside a {% for %} body (Jinja's loop.index, loop.first …).
type loopInfo struct {
	index0, length, depth int
	items                 []loopItem
	last                  *exec.Value
}

func (l *loopInfo) item(i int) *exec.Value {
	if i < 0 || i >= len(l.items) {
		return exec.AsValue(nil)
	}
	if it := l.items[i]; it.value != nil {
		return exec.AsValue([2]*exec.Value{it.key, it.value})
	}
	return l.items[i].key
}

// GetAttribute implements exec.AttributeGetter.
func (l *loopInfo) GetAttribute(name string) (*exec.Value, bool) {
	switch name {
	case "index":
		return exec.AsValue(l.index0 + 1), true
	case "index0":
		return exec.AsValue(l.index0), true
	case "revindex":
		return exec.AsValue(l.length - l.index0), true
	case "revindex0":
		return exec.AsValue(l.length - l.index0 - 1), true
	case "first":
		return exec.AsValue(l.index0 == 0), true
	case "last":
		return exec.AsValue(l.index0 == l.length-1), true
	case "length":
		return exec.AsValue(l.length), true
	case "depth":
		return exec.AsValue(l.depth), true
	case "depth0":
		return exec.AsValue(l.depth - 1), true
	case "previtem", "PrevItem":
		return l.item(l.index0 - 1), true
	case "nextitem", "NextItem":
		return l.item(l.index0 + 1), true
	case "cycle", "Cycle":
		return exec.AsValue(func(va *exec.VarArgs) *exec.Value {
			if len(va.Args) == 0 {
				return exec.AsValue("")
			}
			return va.Args[l.index0%len(va.Args)]
		}), true
	case "changed", "Changed":
		return exec.AsValue(func(va *exec.VarArgs) *exec.Value {
			var current *exec.Value
			if len(va.Args) == 1 {
				current = va.Args[0]
			} else {
				items := make([]any, 0, len(va.Args))
				for _, a := range va.Args {
					items = append(items, a.Interface())
				}
				current = exec.AsValue(items)
			}
			same := l.last != nil && current.EqualValueTo(l.last)
			l.last = current
			return exec.AsValue(!same)
		}), true
	}
	return exec.AsValue(nil), false
}

// macroDef is {% macro name(args) %} … {% endmacro %} (parsed by gonja); calling the macro
// counts a step one level deeper, and its output is captured within the value size limit.
type macroDef struct{ m *nodes.Macro }

func (d *macroDef) Position() *tokens.Token { return d.m.Location }
func (d *macroDef) String() string          { return fmt.Sprintf("macro(%s)", d.m.Name) }

func (d *macroDef) rewrite(w *rewriter) {
	for _, kw := range d.m.Kwargs {
		kw.Value = w.expr(kw.Value)
	}
	w.wrapper(d.m.Wrapper)
}

func parseMacro(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	gonjaParser, _ := builtins.ControlStructures.Get("macro")
	cs, err := gonjaParser(p, args)
	if err != nil {
		return nil, err
	}
	m, ok := cs.(*controlStructures.MacroControlStructure)
	if !ok {
		return nil, fmt.Errorf("macro: unexpected %T", cs)
	}
	return &macroDef{m: m.Macro}, nil
}

func (d *macroDef) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	st, err := stateOf(r)
	if err != nil {
		return err
	}
	r.Environment.Context.Set(d.m.Name, macroFunc(d.m, r, st))
	return nil
}

// macroFunc is the callable of a macro defined in r: its arguments bind like Python's
// (positional, keyword, defaults, *varargs, **kwargs, caller() inside a {% call %}).
func macroFunc(node *nodes.Macro, r *exec.Renderer, st *renderState) exec.Macro {
	return func(params *exec.VarArgs) *exec.Value {
		b := st.b
		if err := b.Enter(); err != nil {
			return exec.AsValue(err)
		}
		defer b.Leave()
		caller := st.caller
		st.caller = nil // for this call only, not the calls inside it
		out := newCapture(b)
		sub := r.Inherit()
		sub.Output = out
		ctx := sub.Environment.Context
		bound := make([]bool, len(node.Kwargs))
		names := make([]string, len(node.Kwargs))
		for i, kw := range node.Kwargs {
			names[i] = r.Eval(kw.Key).String()
		}
		if len(params.Args) > len(names) && node.VarArgsName == "" {
			return exec.AsValue(fmt.Errorf("macro '%s' received %d arguments but expected only %d",
				node.Name, len(params.Args), len(names)))
		}
		var varArgs []any
		for i, a := range params.Args {
			if i < len(names) {
				ctx.Set(names[i], a)
				bound[i] = true
			} else {
				varArgs = append(varArgs, a.Interface())
			}
		}
		extra := map[string]any{}
	kwargs:
		for key, a := range params.KwArgs {
			for i, name := range names {
				if name == key {
					if bound[i] {
						return exec.AsValue(fmt.Errorf("macro '%s' received '%s' argument twice", node.Name, key))
					}
					ctx.Set(name, a)
					bound[i] = true
					continue kwargs
				}
			}
			if node.KwArgsName == "" {
				return exec.AsValue(fmt.Errorf("macro '%s' takes no keyword argument '%s'", node.Name, key))
			}
			extra[key] = a.Interface()
		}
		for i, kw := range node.Kwargs {
			if !bound[i] {
				v := r.Eval(kw.Value)
				if v.IsError() {
					return exec.AsValue(fmt.Errorf("macro '%s' failed to evaluate '%s': %s", node.Name, kw.Value, v))
				}
				ctx.Set(names[i], v)
			}
		}
		if node.VarArgsName != "" {
			if varArgs == nil {
				varArgs = []any{}
			}
			ctx.Set(node.VarArgsName, varArgs)
		}
		if node.KwArgsName != "" {
			ctx.Set(node.KwArgsName, extra)
		}
		if caller != nil {
			ctx.Set("caller", caller)
		}
		if err := sub.ExecuteWrapper(node.Wrapper); err != nil {
			return exec.AsValue(pkgerrors.Wrapf(err, `Unable to execute macro '%s'`, node.Name))
		}
		return exec.AsSafeValue(out.String())
	}
}

// callBlock is {% call macro(args) %} body {% endcall %} (parsed by gonja): the body is the
// macro's caller(), itself a call one level deeper.
type callBlock struct {
	c *controlStructures.CallControlStructure
}

func (c *callBlock) Position() *tokens.Token { return c.c.Location }
func (c *callBlock) String() string          { return fmt.Sprintf("call(line %d)", c.c.Location.Line) }

func (c *callBlock) rewrite(w *rewriter) {
	if call, ok := w.expr(c.c.Call).(*nodes.Call); ok {
		c.c.Call = call
	}
	w.wrapper(c.c.Body)
}

func parseCall(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	gonjaParser, _ := builtins.ControlStructures.Get("call")
	cs, err := gonjaParser(p, args)
	if err != nil {
		return nil, err
	}
	c, ok := cs.(*controlStructures.CallControlStructure)
	if !ok {
		return nil, fmt.Errorf("call: unexpected %T", cs)
	}
	return &callBlock{c: c}, nil
}

func (c *callBlock) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	st, err := stateOf(r)
	if err != nil {
		return err
	}
	b := st.b
	st.caller = func(*exec.VarArgs) *exec.Value {
		if err := b.Enter(); err != nil {
			return exec.AsValue(err)
		}
		defer b.Leave()
		out := newCapture(b)
		sub := r.Inherit()
		sub.Output = out
		if err := sub.ExecuteWrapper(c.c.Body); err != nil {
			return exec.AsValue(err)
		}
		return exec.AsSafeValue(out.String())
	}
	result := r.Eval(c.c.Call)
	st.caller = nil
	if result.IsError() {
		return pkgerrors.Wrapf(result, "Unable to execute {%% call %%}")
	}
	_, err = io.WriteString(r.Output, result.String())
	return err
}

// setTag is {% set target = expr [if cond else alt] %} or {% set target %} … {% endset %}.
type setTag struct {
	pos                   *tokens.Token
	target                nodes.Expression
	expr, cond, otherwise nodes.Expression
	body                  *nodes.Wrapper
}

func (s *setTag) Position() *tokens.Token { return s.pos }
func (s *setTag) String() string          { return fmt.Sprintf("set(line %d)", s.pos.Line) }

func (s *setTag) rewrite(w *rewriter) {
	s.target = w.expr(s.target)
	s.expr, s.cond, s.otherwise = w.expr(s.expr), w.expr(s.cond), w.expr(s.otherwise)
	w.wrapper(s.body)
}

func parseSet(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	s := &setTag{pos: p.Current()}
	target, err := args.ParseVariableOrLiteral()
	if err != nil {
		return nil, pkgerrors.Wrap(err, `unable to parse identifier`)
	}
	switch target.(type) {
	case *nodes.Name, *nodes.GetItem, *nodes.GetAttribute:
		s.target = target
	default:
		return nil, pkgerrors.Errorf(`unexpected set target %s`, target)
	}
	if args.Match(tokens.Assign) == nil {
		if !args.End() {
			return nil, args.Error("Expected '=' or end of tag for block-set.", args.Current())
		}
		wrapper, endargs, err := p.WrapUntil("endset")
		if err != nil {
			return nil, err
		}
		if !endargs.End() {
			return nil, endargs.Error("endset takes no arguments", nil)
		}
		s.body = wrapper
		return s, nil
	}
	if s.expr, err = args.ParseExpression(); err != nil {
		return nil, err
	}
	if s.cond, s.otherwise, err = args.ParseCondition(); err != nil {
		return nil, err
	}
	if s.cond != nil && s.otherwise == nil {
		return nil, args.Error("Malformed 'set' if else condition", args.Current())
	}
	if !args.End() {
		return nil, args.Error("Malformed 'set' tag args.", args.Current())
	}
	return s, nil
}

func (s *setTag) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	var value *exec.Value
	switch {
	case s.body != nil:
		st, err := stateOf(r)
		if err != nil {
			return err
		}
		out := newCapture(st.b)
		sub := r.Inherit()
		sub.Output = out
		if err := sub.ExecuteWrapper(s.body); err != nil {
			return err
		}
		value = exec.AsSafeValue(out.String())
	case s.cond != nil:
		c := r.Eval(s.cond)
		if c.IsError() {
			return c
		}
		if !c.IsNil() && c.IsTrue() {
			value = r.Eval(s.expr)
		} else {
			value = r.Eval(s.otherwise)
		}
	default:
		value = r.Eval(s.expr)
	}
	if value.IsError() {
		return value
	}
	switch t := s.target.(type) {
	case *nodes.Name:
		r.Environment.Context.Set(t.Name.Val, value.Interface())
	case *nodes.GetAttribute:
		target := r.Eval(t.Node)
		if target.IsError() {
			return pkgerrors.Wrapf(target, `Unable to evaluate target %s`, t)
		}
		if err := target.Set(exec.AsValue(t.Attribute), value.Interface()); err != nil {
			return pkgerrors.Wrapf(err, `Unable to set value on "%s"`, t.Attribute)
		}
	case *nodes.GetItem:
		target := r.Eval(t.Node)
		if target.IsError() {
			return pkgerrors.Wrapf(target, `Unable to evaluate target %s`, t)
		}
		key := r.Eval(t.Arg)
		if key.IsError() {
			return pkgerrors.Wrapf(key, `Unable to evaluate argument %s`, t.Arg)
		}
		if err := target.Set(key, value.Interface()); err != nil {
			return pkgerrors.Wrapf(err, `Unable to set value on "%s"`, t.Arg)
		}
	}
	return nil
}

// withBlock is {% with name = expr, … %} … {% endwith %}.
type withBlock struct {
	pos   *tokens.Token
	names []string
	exprs []nodes.Expression
	body  *nodes.Wrapper
}

func (wb *withBlock) Position() *tokens.Token { return wb.pos }
func (wb *withBlock) String() string          { return fmt.Sprintf("with(line %d)", wb.pos.Line) }

func (wb *withBlock) rewrite(w *rewriter) {
	w.exprs(wb.exprs)
	w.wrapper(wb.body)
}

func parseWith(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	wb := &withBlock{pos: p.Current()}
	wrapper, endargs, err := p.WrapUntil("endwith")
	if err != nil {
		return nil, err
	}
	if !endargs.End() {
		return nil, endargs.Error("Arguments not allowed here.", nil)
	}
	wb.body = wrapper
	for !args.End() {
		key := args.Match(tokens.Name)
		if key == nil {
			return nil, args.Error("Expected an identifier", args.Current())
		}
		if args.Match(tokens.Assign) == nil {
			return nil, args.Error("Expected '='.", args.Current())
		}
		value, err := args.ParseExpression()
		if err != nil {
			return nil, err
		}
		wb.names, wb.exprs = append(wb.names, key.Val), append(wb.exprs, value)
		if args.Match(tokens.Comma) == nil {
			break
		}
	}
	if !args.End() {
		return nil, args.Error("Malformed with-tag args.", args.Current())
	}
	return wb, nil
}

func (wb *withBlock) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	sub := r.Inherit()
	for i, e := range wb.exprs {
		v := r.Eval(e)
		if v.IsError() {
			return pkgerrors.Wrapf(v, `unable to evaluate parameter %s`, e)
		}
		sub.Environment.Context.Set(wb.names[i], v)
	}
	return sub.ExecuteWrapper(wb.body)
}

// filterBlock is {% filter f | g(args) %} … {% endfilter %}.
type filterBlock struct {
	pos   *tokens.Token
	chain []*nodes.FilterCall
	body  *nodes.Wrapper
}

func (fb *filterBlock) Position() *tokens.Token { return fb.pos }
func (fb *filterBlock) String() string          { return fmt.Sprintf("filter(line %d)", fb.pos.Line) }

func (fb *filterBlock) rewrite(w *rewriter) {
	for _, f := range fb.chain {
		w.filterCall(f)
	}
	w.wrapper(fb.body)
}

func parseFilterBlock(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	fb := &filterBlock{pos: p.Current()}
	wrapper, _, err := p.WrapUntil("endfilter")
	if err != nil {
		return nil, err
	}
	fb.body = wrapper
	for !args.End() {
		call, err := args.ParseFilter()
		if err != nil {
			return nil, err
		}
		fb.chain = append(fb.chain, call)
		if args.Match(tokens.Pipe) == nil {
			break
		}
	}
	if !args.End() {
		return nil, p.Error("Malformed filter-tag args.", nil)
	}
	return fb, nil
}

func (fb *filterBlock) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	st, err := stateOf(r)
	if err != nil {
		return err
	}
	out := newCapture(st.b)
	sub := r.Inherit()
	sub.Output = out
	if err := sub.ExecuteWrapper(fb.body); err != nil {
		return err
	}
	value := exec.AsValue(out.String())
	for _, call := range fb.chain {
		value = r.Evaluator().ExecuteFilter(call, value)
		if value.IsError() {
			return pkgerrors.Wrapf(value, `Unable to apply filter %s`, call.Name)
		}
	}
	_, err = io.WriteString(r.Output, value.String())
	return err
}
