// Package templating renders the service's Jinja-style templates ({{ user.email }}, filters,
// {% if %}, {% for %}) with gonja v2 in a sandbox: no include, import, extends or from (nothing
// reads files), strict undefined — a variable missing from the data is an error that names it,
// never a silent blank — bounded output, and every rendering under a sandbox.Budget: loops,
// macro calls, filters and methods count steps, calls nest at most so deep, and the operations
// that build large values (padding, repetition, concatenation, formatting, literals) check the
// size first. Renderings run in helper processes when the engine has a sandbox.Pool.
// Notification templates, workflow step configs and rule actions all render through it.
package templating

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"

	"github.com/pyairtable/automation-domain/sandbox"
)

// Limits of one rendering besides the evaluation budget.
const (
	// DefaultMaxOutput bounds what one template may produce.
	DefaultMaxOutput = 256 << 10
	// MaxRange bounds range(): loops over more items are refused.
	MaxRange = 10000
	// MaxSource bounds the template text itself.
	MaxSource = 64 << 10
)

// Options configure an Engine.
type Options struct {
	// MaxOutput bounds what one rendering produces (0: DefaultMaxOutput).
	MaxOutput int
	// Limits is the evaluation budget of one rendering (zero fields: sandbox defaults).
	Limits sandbox.Limits
	// Pool, when set, renders in helper processes; nil renders in this process.
	Pool *sandbox.Pool
}

// Engine compiles and renders templates. It is safe for concurrent use; compiled templates are
// cached by source.
type Engine struct {
	filters    *exec.FilterSet
	structures *exec.ControlStructureSet
	globals    *exec.Context
	maxOutput  int
	limits     sandbox.Limits
	pool       *sandbox.Pool
	cache      *lru.Cache[cacheKey, *compiled]
}

type cacheKey struct {
	src  string
	html bool
}

// compiled is a parsed template with its syntax tree rewritten to bounded operations.
type compiled struct {
	tmpl   *exec.Template
	cfg    *config.Config
	loader loaders.Loader
	// nesting and depth are how deeply the source and the syntax tree nest.
	nesting, depth int
}

var quietOnce sync.Once

// New returns an engine.
func New(o Options) *Engine {
	quietOnce.Do(func() { gonja.SetLoggerOutput(io.Discard) }) // gonja logs through logrus' global logger
	if o.MaxOutput <= 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	cache, _ := lru.New[cacheKey, *compiled](1024)
	return &Engine{
		filters:    boundedFilters(),
		structures: controlStructureSet(),
		globals:    globals(),
		maxOutput:  o.MaxOutput,
		limits:     o.Limits.OrDefaults(),
		pool:       o.Pool,
		cache:      cache,
	}
}

// Limits returns the evaluation budget of one rendering.
func (e *Engine) Limits() sandbox.Limits { return e.limits }

// Error is a template that does not compile or render, with a message fit for an API response.
// Err is the cause: a *sandbox.LimitError (or another sandbox error, see sandbox.IsBudgetError)
// when the rendering went over its budget.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Compile checks that src is a valid template within the nesting limit (used by validation;
// Render compiles on its own).
func (e *Engine) Compile(src string, html bool) error {
	_, err := e.compile(src, html, e.limits)
	return err
}

func (e *Engine) compile(src string, html bool, l sandbox.Limits) (c *compiled, err error) {
	defer func() {
		var pe *sandbox.PanicError
		if errors.As(err, &pe) {
			err = &Error{Msg: pe.Error(), Err: pe}
		}
	}()
	defer sandbox.Recover("template", &err)
	key := cacheKey{src, html}
	c, ok := e.cache.Get(key)
	if !ok {
		if len(src) > MaxSource {
			return nil, &Error{Msg: fmt.Sprintf("template is longer than %d bytes", MaxSource)}
		}
		if c, err = parse(src, html, e.structures, l); err != nil {
			return nil, err
		}
		e.cache.Add(key, c)
	}
	if c.nesting > l.MaxNesting || c.depth > l.MaxNesting*expressionDepthFactor {
		le := &sandbox.LimitError{Limit: sandbox.LimitNesting, Max: int64(l.MaxNesting)}
		return nil, &Error{Msg: "template: " + le.Error(), Err: le}
	}
	return c, nil
}

func parse(src string, html bool, structures *exec.ControlStructureSet, l sandbox.Limits) (*compiled, error) {
	cfg := config.New()
	cfg.StrictUndefined = true
	cfg.AutoEscape = html
	cfg.KeepTrailingNewline = true
	// The parser recurses on brackets and blocks: measure them first.
	c := &compiled{cfg: cfg, nesting: sourceNesting(src, cfg)}
	if c.nesting > l.MaxNesting {
		le := &sandbox.LimitError{Limit: sandbox.LimitNesting, Max: int64(l.MaxNesting)}
		return nil, &Error{Msg: "template: " + le.Error(), Err: le}
	}
	loader, err := loaders.NewMemoryLoader(map[string]string{"/template": src})
	if err != nil {
		return nil, &Error{Msg: "template: " + err.Error(), Err: err}
	}
	c.loader = loader
	env := &exec.Environment{Context: exec.EmptyContext(), ControlStructures: structures,
		Filters: exec.NewFilterSet(map[string]exec.FilterFunction{}), Tests: builtins.Tests}
	c.tmpl, err = exec.NewTemplate("/template", cfg, loader, env)
	if err != nil {
		return nil, &Error{Msg: cleanMessage(err), Err: err}
	}
	w := &rewriter{}
	w.nodes(c.tmpl.Root().Nodes)
	if w.err != nil {
		return nil, &Error{Msg: w.err.Error(), Err: w.err}
	}
	c.depth = w.deepest
	return c, nil
}

// Render renders src with data as plain text.
func (e *Engine) Render(ctx context.Context, src string, data map[string]any) (string, error) {
	return e.render(ctx, src, data, false)
}

// RenderHTML renders src with data, HTML-escaping every substituted value (use |safe to opt out).
func (e *Engine) RenderHTML(ctx context.Context, src string, data map[string]any) (string, error) {
	return e.render(ctx, src, data, true)
}

// renderArgs is a rendering sent to a helper process.
type renderArgs struct {
	Src       string         `json:"src,omitempty"`
	HTML      bool           `json:"html,omitempty"`
	Value     any            `json:"value,omitempty"`
	Data      map[string]any `json:"data"`
	MaxOutput int            `json:"max_output"`
}

func (e *Engine) render(ctx context.Context, src string, data map[string]any, html bool) (string, error) {
	if !IsTemplate(src) {
		return src, nil
	}
	if e.pool != nil {
		if _, err := e.compile(src, html, e.limits); err != nil {
			return "", err // what does not compile needs no helper
		}
		var out string
		err := e.pool.Call(ctx, methodRender, e.limits, renderArgs{Src: src, HTML: html, Data: data, MaxOutput: e.maxOutput}, &out)
		return out, remoteError(err)
	}
	b := sandbox.NewBudget(ctx, e.limits)
	defer b.Close()
	return e.renderIn(b, src, data, html, e.maxOutput)
}

// renderIn renders src under b: the engine's one recovery point.
func (e *Engine) renderIn(b *sandbox.Budget, src string, data map[string]any, html bool, maxOutput int) (out string, err error) {
	defer func() { err = budgetError(b, err) }()
	defer sandbox.Recover("template", &err)
	if !IsTemplate(src) {
		return src, nil
	}
	c, err := e.compile(src, html, b.Limits())
	if err != nil {
		return "", err
	}
	env := &exec.Environment{
		Context:           e.globals.Inherit().Update(exec.NewContext(normalize(data).(map[string]any))),
		Filters:           e.filters,
		Tests:             builtins.Tests,
		ControlStructures: e.structures,
		Methods:           boundMethods(b),
	}
	env.Context.Set(budgetKey, &renderState{b: b})
	w := &limitedBuffer{max: maxOutput, b: b}
	err = exec.NewRenderer(env, w, c.cfg, c.loader, c.tmpl).Execute()
	if w.exceeded { // gonja does not always pass a writer's error on
		return "", b.Err()
	}
	if err != nil {
		return "", &Error{Msg: cleanMessage(err), Err: err}
	}
	return w.String(), nil
}

// budgetError makes the reason a rendering stopped its error: the limit it went over (whatever
// gonja made of the error on its way out), a recovered panic, or the caller's context ending.
func budgetError(b *sandbox.Budget, err error) error {
	if err == nil {
		return nil
	}
	if stop := b.Err(); stop != nil {
		err = stop
	}
	var te *Error
	if errors.As(err, &te) {
		return err
	}
	if sandbox.IsBudgetError(err) {
		return &Error{Msg: err.Error(), Err: err}
	}
	return err // the caller's context ended: not the template's fault
}

// remoteError gives an error from a helper process the engine's type.
func remoteError(err error) error {
	var re *sandbox.RemoteError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re), sandbox.IsBudgetError(err):
		return &Error{Msg: err.Error(), Err: err}
	}
	return err
}

// IsTemplate reports whether s contains template syntax at all.
func IsTemplate(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}

// singleExpression matches a string that is one {{ expression }} and nothing else.
var singleExpression = regexp.MustCompile(`^\s*\{\{-?\s*(.+?)\s*-?\}\}\s*$`)

// RenderValue renders every string inside a JSON-like value (maps, slices, strings, numbers …),
// all under one budget. A string that is exactly one {{ expression }} takes the expression's
// value with its type — a number stays a number, a list stays a list — so configs can pass
// structured data along; other strings render to strings.
func (e *Engine) RenderValue(ctx context.Context, v any, data map[string]any) (any, error) {
	if !hasTemplate(v) {
		return e.renderValueIn(nil, v, data, e.maxOutput) // a copy; nothing to evaluate
	}
	if e.pool != nil {
		for path, err := range e.CompileValue(v) {
			if path != "" {
				err = fmt.Errorf("%s: %w", path, err)
			}
			return nil, err // what does not compile needs no helper
		}
		var out any
		err := e.pool.Call(ctx, methodValue, e.limits, renderArgs{Value: v, Data: data, MaxOutput: e.maxOutput}, &out)
		return out, remoteError(err)
	}
	b := sandbox.NewBudget(ctx, e.limits)
	defer b.Close()
	return e.renderValueIn(b, v, data, e.maxOutput)
}

func (e *Engine) renderValueIn(b *sandbox.Budget, v any, data map[string]any, maxOutput int) (any, error) {
	switch x := v.(type) {
	case string:
		if !IsTemplate(x) {
			return x, nil
		}
		if m := singleExpression.FindStringSubmatch(x); m != nil && !strings.Contains(m[1], "}}") {
			out, err := e.renderIn(b, "{{ ("+m[1]+") | tojson }}", data, false, maxOutput)
			if err != nil {
				return nil, err
			}
			var val any
			dec := json.NewDecoder(strings.NewReader(out))
			dec.UseNumber()
			if err := dec.Decode(&val); err != nil {
				return nil, &Error{Msg: fmt.Sprintf("expression %q does not give a JSON value", m[1]), Err: err}
			}
			return val, nil
		}
		return e.renderIn(b, x, data, false, maxOutput)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			r, err := e.renderValueIn(b, item, data, maxOutput)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			r, err := e.renderValueIn(b, item, data, maxOutput)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// hasTemplate reports whether any string inside v is a template.
func hasTemplate(v any) bool {
	switch x := v.(type) {
	case string:
		return IsTemplate(x)
	case map[string]any:
		for _, item := range x {
			if hasTemplate(item) {
				return true
			}
		}
	case []any:
		for _, item := range x {
			if hasTemplate(item) {
				return true
			}
		}
	}
	return false
}

// CompileValue checks every template string inside a JSON-like value and returns the problems by
// path ("to", "headers.X-Id", "items[2]").
func (e *Engine) CompileValue(v any) map[string]error {
	problems := map[string]error{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case string:
			if IsTemplate(x) {
				if err := e.Compile(x, false); err != nil {
					problems[path] = err
				}
			}
		case map[string]any:
			for k, item := range x {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, item)
			}
		case []any:
			for i, item := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), item)
			}
		}
	}
	walk("", v)
	return problems
}

// normalize copies data with whole float64 numbers (what encoding/json gives for every JSON
// number) turned into int64, so that {{ count }} renders "3", not "3.0", and json.Number into
// int64 or float64.
func normalize(v any) any {
	switch x := v.(type) {
	case nil:
		return map[string]any{}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[k] = normalizeValue(item)
		}
		return out
	}
	return v
}

func normalizeValue(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
	case map[string]any:
		return normalize(x)
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = normalizeValue(item)
		}
		return out
	}
	return v
}

// limitedBuffer fails writes past max, stopping the rendering's budget. It wraps rather than
// embeds bytes.Buffer so that no promoted WriteString slips past the limit.
type limitedBuffer struct {
	buf      bytes.Buffer
	max      int
	b        *sandbox.Budget
	exceeded bool
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		w.exceeded = true
		return 0, w.b.Exceed(&sandbox.LimitError{Limit: sandbox.LimitOutput, Max: int64(w.max)})
	}
	return w.buf.Write(p)
}

func (w *limitedBuffer) String() string { return w.buf.String() }

// cleanMessage trims gonja's wrapping ("unable to execute template: …") to what the user needs.
var noise = regexp.MustCompile(`(?i)^(unable to execute template: |failed to parse template '[^']*': )`)

func cleanMessage(err error) string {
	msg := err.Error()
	for {
		trimmed := noise.ReplaceAllString(msg, "")
		if trimmed == msg {
			break
		}
		msg = trimmed
	}
	msg = strings.ReplaceAll(msg, `Unable to evaluate name "`, `undefined variable "`)
	return msg
}
