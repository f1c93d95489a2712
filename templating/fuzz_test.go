package templating

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/sandbox"
)

// fuzzLimits keep each input cheap, so that the fuzzer tries many.
var fuzzLimits = sandbox.Limits{Timeout: 50 * time.Millisecond, MaxSteps: 20_000, MaxValueBytes: 64 << 10,
	MaxAllocBytes: 1 << 20}

// FuzzRender renders arbitrary templates over arbitrary data: no panic may escape, no rendering
// may outlive its budget by much or produce more than its output limit, and the process must
// survive (a stack overflow or an out-of-memory would end the fuzzer). The seeds hold every
// hostile class.
func FuzzRender(f *testing.F) {
	for _, h := range hostile {
		f.Add(h.src, `{}`)
	}
	for _, src := range mistakes {
		f.Add(src, `{}`)
	}
	for _, src := range []string{
		"Welcome {{ user_name }} to {{ app_name }}!", "{% for i in items %}{{ loop.index }}:{{ i }},{% endfor %}",
		"{{ user.name|title }} {{ '%05.1f'|format(count) }} {{ items|join(', ') }}", "{% set x = {'a': [1, 2]} %}{{ x.a[1] + 2 }}",
		"{% macro m(a, b=2) %}{{ a * b }}{{ caller() }}{% endmacro %}{% call m(3) %}!{% endcall %}",
		"{% with a = 'x' ~ 'y' %}{{ a.upper().center(7, '*') }}{% endwith %}{% filter lower %}UP{% endfilter %}",
		"{{ items|batch(2)|list }}{{ items|slice(2)|list }}{{ items|tojson(indent=2) }}{{ 'a b'.split() }}",
	} {
		f.Add(src, `{"user_name": "Ada", "app_name": "X", "items": [1, 2, 3], "count": 3.14159, "user": {"name": "ada lovelace"}}`)
	}
	e := New(Options{Limits: fuzzLimits, MaxOutput: 16 << 10})
	f.Fuzz(func(t *testing.T, src, data string) {
		var d map[string]any
		_ = json.Unmarshal([]byte(data), &d)
		start := time.Now()
		out, err := e.Render(context.Background(), src, d)
		if took := time.Since(start); took > 5*fuzzLimits.Timeout+time.Second {
			t.Fatalf("rendering took %v, over a budget of %v", took, fuzzLimits.Timeout)
		}
		if err == nil && len(out) > 16<<10 && IsTemplate(src) {
			t.Fatalf("output of %d bytes past the limit", len(out))
		}
		_, _ = e.RenderValue(context.Background(), map[string]any{"a": src, "b": []any{src}}, d)
		if took := time.Since(start); took > 10*fuzzLimits.Timeout+time.Second {
			t.Fatalf("rendering a value took %v, over a budget of %v", took, fuzzLimits.Timeout)
		}
	})
}
