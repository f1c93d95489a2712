package templating

import (
	"fmt"

	controlStructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/tokens"

	"github.com/pyairtable/automation-domain/sandbox"
)

// expressionDepthFactor: an expression's syntax tree may nest this many times deeper than the
// nesting limit (a chain of a ~ b ~ c … is one level of source nesting per operator).
const expressionDepthFactor = 8

// Names of the bounded operations the rewritten syntax tree calls. They hold a NUL byte, so no
// template can name them.
const (
	fnMul  = "\x00mul"
	fnAdd  = "\x00add"
	fnCat  = "\x00cat"
	fnPow  = "\x00pow"
	fnList = "\x00list"
	fnDict = "\x00dict"
)

// sourceNesting measures how deeply src nests — brackets inside tags plus open blocks — from
// its tokens, before the recursive parser sees it.
func sourceNesting(src string, cfg *config.Config) int {
	s := tokens.LexAll(src, cfg)
	var blocks, brackets, deepest int
	afterBlockBegin, blockName, sawAssign := false, "", false
	for tok := s.Current(); tok != nil && !s.End(); tok = s.Next() {
		switch tok.Type {
		case tokens.BlockBegin:
			afterBlockBegin, blockName, sawAssign = true, "", false
			continue
		case tokens.Name:
			if afterBlockBegin {
				blockName = tok.Val
			}
		case tokens.Assign:
			sawAssign = true
		case tokens.LeftParenthesis, tokens.LeftBracket, tokens.LeftBrace:
			brackets++
		case tokens.RightParenthesis, tokens.RightBracket, tokens.RightBrace:
			brackets = max(brackets-1, 0)
		case tokens.BlockEnd:
			switch {
			case blockName == "set" && !sawAssign, blockName == "for", blockName == "if", blockName == "macro",
				blockName == "call", blockName == "filter", blockName == "with", blockName == "autoescape":
				blocks++
			case len(blockName) > 3 && blockName[:3] == "end":
				blocks = max(blocks-1, 0)
			}
			brackets = 0
		case tokens.VariableEnd:
			brackets = 0
		}
		afterBlockBegin = false
		deepest = max(deepest, blocks+brackets)
	}
	return deepest
}

// rewriter replaces, in a parsed template, the operators and literals that can build a large
// value in one step (string repetition, concatenation, list and dict literals) with calls of
// bounded functions, and measures the tree's depth. gonja evaluates operators itself; the
// syntax tree is the only place to bound them.
type rewriter struct {
	depth, deepest int
	err            error
}

func (w *rewriter) enter() func() {
	w.depth++
	w.deepest = max(w.deepest, w.depth)
	return func() { w.depth-- }
}

func hidden(tok *tokens.Token, fn string, args ...nodes.Expression) nodes.Expression {
	loc := &tokens.Token{Type: tokens.Name, Val: fn}
	if tok != nil {
		loc.Line, loc.Col, loc.Pos = tok.Line, tok.Col, tok.Pos
	}
	return &nodes.Call{Location: loc, Func: &nodes.Name{Name: loc}, Args: args, Kwargs: map[string]nodes.Expression{}}
}

func (w *rewriter) nodes(list []nodes.Node) {
	for i, n := range list {
		list[i] = w.node(n)
	}
}

func (w *rewriter) wrapper(wr *nodes.Wrapper) {
	if wr != nil {
		defer w.enter()()
		w.nodes(wr.Nodes)
	}
}

// node rewrites a document node (output, control structure, data).
func (w *rewriter) node(n nodes.Node) nodes.Node {
	switch x := n.(type) {
	case *nodes.Output:
		x.Expression = w.expr(x.Expression)
		x.Condition = w.expr(x.Condition)
		x.Alternative = w.expr(x.Alternative)
	case *nodes.ControlStructureBlock:
		w.structure(x.ControlStructure)
	case *nodes.Wrapper:
		w.wrapper(x)
	case *nodes.Data, *nodes.Comment:
	default:
		w.fail(n)
	}
	return n
}

func (w *rewriter) structure(cs nodes.ControlStructure) {
	switch x := cs.(type) {
	case rewritable:
		x.rewrite(w)
	case *controlStructures.IfControlStructure:
		for i, c := range x.Conditions {
			x.Conditions[i] = w.expr(c)
		}
		for _, wr := range x.Wrappers {
			w.wrapper(wr)
		}
	case *controlStructures.AutoescapeControlStructure:
		w.wrapper(x.Wrapper)
	case *controlStructures.RawControlStructure, *controlStructures.BreakControlStructure,
		*controlStructures.ContinueControlStructure:
	default:
		w.fail(cs)
	}
}

// rewritable is a control structure of this package: it rewrites its own expressions.
type rewritable interface {
	rewrite(w *rewriter)
}

func (w *rewriter) fail(n nodes.Node) {
	if w.err == nil {
		w.err = fmt.Errorf("template: %T is not supported", n)
	}
}

func (w *rewriter) exprs(list []nodes.Expression) {
	for i, e := range list {
		list[i] = w.expr(e)
	}
}

func (w *rewriter) kwargs(m map[string]nodes.Expression) {
	for k, e := range m {
		m[k] = w.expr(e)
	}
}

func (w *rewriter) anyNode(n nodes.Node) nodes.Node {
	if e, ok := n.(nodes.Expression); ok && e != nil {
		return w.expr(e)
	}
	return n
}

// expr rewrites an expression and returns what replaces it.
func (w *rewriter) expr(e nodes.Expression) nodes.Expression {
	if e == nil {
		return nil
	}
	defer w.enter()()
	switch x := e.(type) {
	case *nodes.BinaryExpression:
		x.Left, x.Right = w.expr(x.Left), w.expr(x.Right)
		fn := ""
		switch x.Operator.Token.Type {
		case tokens.Multiply:
			fn = fnMul
		case tokens.Addition:
			fn = fnAdd
		case tokens.Tilde:
			fn = fnCat
		case tokens.Power:
			fn = fnPow
		}
		if fn != "" {
			return hidden(x.Operator.Token, fn, x.Left, x.Right)
		}
	case *nodes.UnaryExpression:
		x.Term = w.expr(x.Term)
	case *nodes.Negation:
		x.Term = w.expr(x.Term)
	case *nodes.List:
		w.exprs(x.Val)
		return hidden(x.Location, fnList, x.Val...)
	case *nodes.Tuple:
		w.exprs(x.Val)
		return hidden(x.Location, fnList, x.Val...)
	case *nodes.Dict:
		args := make([]nodes.Expression, 0, 2*len(x.Pairs))
		for _, p := range x.Pairs {
			args = append(args, w.expr(p.Key), w.expr(p.Value))
		}
		return hidden(x.Token, fnDict, args...)
	case *nodes.Pair:
		x.Key, x.Value = w.expr(x.Key), w.expr(x.Value)
	case *nodes.Call:
		// gonja reads Parent only for a method call (x.method()), where it is the object of
		// the GetAttribute: point it at the rewritten object (elsewhere it is unused).
		x.Func = w.anyNode(x.Func)
		if ga, ok := x.Func.(*nodes.GetAttribute); ok {
			x.Parent = ga.Node
		} else {
			x.Parent = nil
		}
		w.exprs(x.Args)
		w.kwargs(x.Kwargs)
	case *nodes.GetItem:
		x.Node, x.Arg = w.anyNode(x.Node), w.anyNode(x.Arg)
	case *nodes.GetSlice:
		x.Node, x.Start, x.End, x.Step = w.anyNode(x.Node), w.anyNode(x.Start), w.anyNode(x.End), w.anyNode(x.Step)
	case *nodes.GetAttribute:
		x.Node = w.anyNode(x.Node)
	case *nodes.FilteredExpression:
		x.Expression = w.expr(x.Expression)
		for _, f := range x.Filters {
			w.filterCall(f)
		}
	case *nodes.TestExpression:
		x.Expression = w.expr(x.Expression)
		if x.Test != nil {
			w.exprs(x.Test.Args)
			w.kwargs(x.Test.Kwargs)
		}
	case *nodes.Variable:
		for _, p := range x.Parts {
			w.exprs(p.Args)
			w.kwargs(p.Kwargs)
		}
	case *nodes.Name, *nodes.String, *nodes.Integer, *nodes.Float, *nodes.Bool, *nodes.None, *nodes.Error:
	default:
		w.fail(e)
	}
	return e
}

func (w *rewriter) filterCall(f *nodes.FilterCall) {
	if f != nil {
		w.exprs(f.Args)
		w.kwargs(f.Kwargs)
	}
}

// rewriteTemplate bounds root's operations and checks how deeply it nests.
func rewriteTemplate(root *nodes.Template, maxNesting int) error {
	w := &rewriter{}
	w.nodes(root.Nodes)
	if w.err != nil {
		return w.err
	}
	if w.deepest > maxNesting*expressionDepthFactor {
		return &sandbox.LimitError{Limit: sandbox.LimitNesting, Max: int64(maxNesting)}
	}
	return nil
}
