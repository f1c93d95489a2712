// Package templating renders the service's Jinja-style templates ({{ user.email }}, filters,
// {% if %}, {% for %}) with gonja v2 in a sandbox: no include, import, extends or from (nothing
// reads files), a capped range(), bounded output, and strict undefined — a variable missing from
// the data is an error that names it, never a silent blank. Notification templates, workflow step
// configs and rule actions all render through it.
package templating

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"sync"

	"github.com/hashicorp/golang-lru/v2"
	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
	"github.com/nikolalohinski/gonja/v2/parser"
)

// Limits of one rendering.
const (
	// DefaultMaxOutput bounds what one template may produce.
	DefaultMaxOutput = 256 << 10
	// MaxRange bounds range(): loops over more items are refused.
	MaxRange = 10000
	// MaxSource bounds the template text itself.
	MaxSource = 64 << 10
)

// allowedStructures are the control structures a template may use; include, import, from and
// extends are left out because they load other templates by name.
var allowedStructures = []string{
	"if", "for", "set", "with", "filter", "raw", "autoescape", "macro", "call", "break", "continue",
}

// Engine compiles and renders templates. It is safe for concurrent use; compiled templates are
// cached by source.
type Engine struct {
	env       *exec.Environment
	maxOutput int
	cache     *lru.Cache[cacheKey, *exec.Template]
}

type cacheKey struct {
	src  string
	html bool
}

var quietOnce sync.Once

// New returns an engine whose renderings produce at most maxOutput bytes (0: DefaultMaxOutput).
func New(maxOutput int) *Engine {
	quietOnce.Do(func() { gonja.SetLoggerOutput(io.Discard) }) // gonja logs through logrus' global logger
	if maxOutput <= 0 {
		maxOutput = DefaultMaxOutput
	}
	structures := map[string]parser.ControlStructureParser{}
	for _, name := range allowedStructures {
		if p, ok := builtins.ControlStructures.Get(name); ok {
			structures[name] = p
		}
	}
	ctx := exec.EmptyContext().Update(builtins.GlobalFunctions)
	ctx.Set("range", boundedRange)
	cache, _ := lru.New[cacheKey, *exec.Template](1024)
	return &Engine{
		env: &exec.Environment{
			Context:           ctx,
			Filters:           builtins.Filters,
			Tests:             builtins.Tests,
			ControlStructures: exec.NewControlStructureSet(structures),
			Methods:           builtins.Methods,
		},
		maxOutput: maxOutput,
		cache:     cache,
	}
}

// Error is a template that does not compile or render, with a message fit for an API response.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// Compile checks that src is a valid template (used by validation; Render compiles on its own).
func (e *Engine) Compile(src string, html bool) error {
	_, err := e.compile(src, html)
	return err
}

func (e *Engine) compile(src string, html bool) (*exec.Template, error) {
	key := cacheKey{src, html}
	if t, ok := e.cache.Get(key); ok {
		return t, nil
	}
	if len(src) > MaxSource {
		return nil, &Error{Msg: fmt.Sprintf("template is longer than %d bytes", MaxSource)}
	}
	cfg := config.New()
	cfg.StrictUndefined = true
	cfg.AutoEscape = html
	cfg.KeepTrailingNewline = true
	loader, err := loaders.NewMemoryLoader(map[string]string{"/template": src})
	if err != nil {
		return nil, &Error{Msg: "template: " + err.Error(), Err: err}
	}
	t, err := exec.NewTemplate("/template", cfg, loader, e.env)
	if err != nil {
		return nil, &Error{Msg: cleanMessage(err), Err: err}
	}
	e.cache.Add(key, t)
	return t, nil
}

// Render renders src with data as plain text.
func (e *Engine) Render(src string, data map[string]any) (string, error) {
	return e.render(src, data, false)
}

// RenderHTML renders src with data, HTML-escaping every substituted value (use |safe to opt out).
func (e *Engine) RenderHTML(src string, data map[string]any) (string, error) {
	return e.render(src, data, true)
}

func (e *Engine) render(src string, data map[string]any, html bool) (string, error) {
	if !IsTemplate(src) {
		return src, nil
	}
	t, err := e.compile(src, html)
	if err != nil {
		return "", err
	}
	w := &limitedBuffer{max: e.maxOutput}
	err = t.Execute(w, exec.NewContext(normalize(data).(map[string]any)))
	if w.exceeded { // gonja does not always pass a writer's error on
		return "", &Error{Msg: fmt.Sprintf("rendered output exceeds %d bytes", e.maxOutput), Err: errTooLarge}
	}
	if err != nil {
		return "", &Error{Msg: cleanMessage(err), Err: err}
	}
	return w.String(), nil
}

// IsTemplate reports whether s contains template syntax at all.
func IsTemplate(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}

// singleExpression matches a string that is one {{ expression }} and nothing else.
var singleExpression = regexp.MustCompile(`^\s*\{\{-?\s*(.+?)\s*-?\}\}\s*$`)

// RenderValue renders every string inside a JSON-like value (maps, slices, strings, numbers …).
// A string that is exactly one {{ expression }} takes the expression's value with its type — a
// number stays a number, a list stays a list — so configs can pass structured data along; other
// strings render to strings.
func (e *Engine) RenderValue(v any, data map[string]any) (any, error) {
	switch x := v.(type) {
	case string:
		if !IsTemplate(x) {
			return x, nil
		}
		if m := singleExpression.FindStringSubmatch(x); m != nil && !strings.Contains(m[1], "}}") {
			out, err := e.Render("{{ ("+m[1]+") | tojson }}", data)
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
		return e.Render(x, data)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			r, err := e.RenderValue(item, data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			r, err := e.RenderValue(item, data)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
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

// boundedRange is range() with at most MaxRange items, returned as a slice (gonja's own streams
// through a goroutine that leaks when a loop breaks early).
func boundedRange(_ *exec.Evaluator, params *exec.VarArgs) ([]int, error) {
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
	n := (stop - start) / step
	if (stop-start)%step != 0 {
		n++
	}
	if n > MaxRange {
		return nil, exec.ErrInvalidCall(fmt.Errorf("range() of %d items exceeds the limit of %d", n, MaxRange))
	}
	out := make([]int, 0, max(n, 0))
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		out = append(out, i)
	}
	return out, nil
}

// limitedBuffer fails writes past max. It wraps rather than embeds bytes.Buffer so that no
// promoted WriteString slips past the limit.
type limitedBuffer struct {
	buf      bytes.Buffer
	max      int
	exceeded bool
}

var errTooLarge = errors.New("output limit reached")

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		b.exceeded = true
		return 0, errTooLarge
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) String() string { return b.buf.String() }

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
