package templating

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.ServeHelperIfRequested(HelperHandlers())
	os.Exit(m.Run())
}

// hostile are templates of every class the budget must stop, with the limit each goes over.
var hostile = []struct {
	name, src string
	limit     sandbox.Limit
}{
	{"recursive macro", "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", sandbox.LimitDepth},
	{"recursive caller", "{% macro m() %}{% call m() %}x{% endcall %}{% endmacro %}{{ m() }}", sandbox.LimitDepth},
	{"recursive loop", "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", sandbox.LimitDepth},
	{"nested loops", "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", sandbox.LimitSteps},
	{"loops in macros", "{% macro m() %}{% for i in range(10000) %}{% endfor %}{% endmacro %}{% for i in range(10000) %}{{ m() }}{% endfor %}", sandbox.LimitSteps},
	{"center filter", "{{ 'x'|center(200000000) }}", sandbox.LimitValue},
	{"center method", "{{ 'x'.center(200000000) }}", sandbox.LimitValue},
	{"ljust method", "{{ 'x'.ljust(200000000) }}", sandbox.LimitValue},
	{"zfill method", "{{ '1'.zfill(200000000) }}", sandbox.LimitValue},
	{"indent", "{{ 'a\nb'|indent(200000000, true) }}", sandbox.LimitValue},
	{"printf width", "{{ '%200000000d'|format(1) }}", sandbox.LimitValue},
	{"printf star width", "{{ '%*d'|format(200000000, 1) }}", sandbox.LimitValue},
	{"str.format width", "{{ '{:>200000000}'.format('x') }}", sandbox.LimitValue},
	{"string repetition", "{{ 'x' * 200000000 }}", sandbox.LimitValue},
	{"repeated repetition", "{{ ('x' * 100000) * 100000 }}", sandbox.LimitValue},
	{"concatenation doubling", "{% set s = 'x' * 500000 %}{% set s = s ~ s %}{% set s = s ~ s %}{{ s|length }}", sandbox.LimitValue},
	{"plus doubling", "{% set s = 'x' * 500000 %}{% set s = s + s %}{% set s = s + s %}{{ s|length }}", sandbox.LimitValue},
	{"list doubling", "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}", sandbox.LimitValue},
	{"shared list nesting", "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}", sandbox.LimitValue},
	{"join separator", "{{ range(10000)|join('x' * 500000) }}", sandbox.LimitValue},
	{"str.join", "{{ ('x' * 500000).join(range(10000)|list) }}", sandbox.LimitValue},
	{"replace empty", "{{ ('x' * 1000)|replace('', 'y' * 100000) }}", sandbox.LimitValue},
	{"tojson indent", "{{ range(1000)|list|tojson(indent=100000000) }}", sandbox.LimitValue},
	{"expandtabs", "{{ ('\t' * 1000).expandtabs(100000000) }}", sandbox.LimitValue},
	{"slice count", "{{ [1]|slice(2000000000) }}", sandbox.LimitValue},
	{"batch fill", "{{ [1]|batch(2000000000, fill_with=0) }}", sandbox.LimitValue},
	{"macro output", "{% macro m() %}{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}{% endmacro %}{{ m()|length }}", sandbox.LimitValue},
	{"set block", "{% set s %}{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}{{ s|length }}", sandbox.LimitValue},
	{"filter block", "{% filter upper %}{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}{% endfilter %}", sandbox.LimitValue},
	{"output", "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", sandbox.LimitOutput},
	{"allocation", "{% for i in range(10000) %}{% set s = 'x' * 900000 %}{% endfor %}", sandbox.LimitAlloc},
	{"repetition overflow", "{{ 'x' * 9223372036854775807 }}", sandbox.LimitValue},
	{"deep parentheses", "{{ " + strings.Repeat("(", 1000) + "1" + strings.Repeat(")", 1000) + " }}", sandbox.LimitNesting},
	{"deep lists", "{{ " + strings.Repeat("[", 1000) + "1" + strings.Repeat("]", 1000) + " }}", sandbox.LimitNesting},
	{"deep blocks", strings.Repeat("{% if true %}", 200) + "x" + strings.Repeat("{% endif %}", 200), sandbox.LimitNesting},
	{"long operator chain", "{{ 1" + strings.Repeat(" ~ 1", 2000) + " }}", sandbox.LimitNesting},
}

// mistakes are templates that fail with an ordinary error (not a limit) where gonja used to panic.
var mistakes = []string{
	"{{ [1, 2]|tojson(indent=-1) }}",
	"{{ 'abcdef'|truncate(1, leeway=-100) }}",
	"{{ '12'|int(base=99) }}",
	"{{ [1]|batch(0) }}",
	"{{ range(-9223372036854775807, 9223372036854775807)|length }}",
}

// heapPeak samples the live heap until the returned function is called, which returns how far
// it grew past where it started.
func heapPeak() func() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base, peak := m.HeapAlloc, m.HeapAlloc
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapAlloc)
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		return peak - base
	}
}

// sameLimit: work that only costs time (loops) may reach the time limit before the step limit.
func sameLimit(got, want sandbox.Limit) bool {
	return got == want || want == sandbox.LimitSteps && got == sandbox.LimitTime
}

func engines(t *testing.T) map[string]*Engine {
	pool := sandbox.NewPool(sandbox.PoolConfig{Size: 2})
	t.Cleanup(func() { _ = pool.Close() })
	return map[string]*Engine{"in process": New(Options{}), "helper process": New(Options{Pool: pool})}
}

func TestHostileTemplatesStopAtTheirLimit(t *testing.T) {
	for mode, e := range engines(t) {
		t.Run(mode, func(t *testing.T) {
			for _, h := range hostile {
				t.Run(h.name, func(t *testing.T) {
					peak := heapPeak()
					start := time.Now()
					_, err := e.Render(context.Background(), h.src, map[string]any{})
					took := time.Since(start)
					grew := peak()
					var le *sandbox.LimitError
					var te *Error
					if !errors.As(err, &te) || !errors.As(err, &le) || !sameLimit(le.Limit, h.limit) {
						t.Fatalf("got %v, want the %s limit", err, h.limit)
					}
					if took > 2*time.Second {
						t.Errorf("took %v", took)
					}
					if grew > 256<<20 {
						t.Errorf("the heap grew by %d MB in this process", grew>>20)
					}
				})
			}
			for _, src := range mistakes {
				_, err := e.Render(context.Background(), src, map[string]any{})
				var te *Error
				if !errors.As(err, &te) || sandbox.IsBudgetError(err) {
					t.Errorf("%s: %v, want a template error", src, err)
				}
			}
		})
	}
}

func TestSaveTimeNestingCheck(t *testing.T) {
	e := New(Options{})
	err := e.Compile(strings.Repeat("{% for i in x %}", 100)+strings.Repeat("{% endfor %}", 100), false)
	var le *sandbox.LimitError
	if !errors.As(err, &le) || le.Limit != sandbox.LimitNesting {
		t.Errorf("deep blocks: %v", err)
	}
	if err := e.Compile(strings.Repeat("{% for i in x %}", 30)+strings.Repeat("{% endfor %}", 30), false); err != nil {
		t.Errorf("30 nested loops: %v", err)
	}
	if p := e.CompileValue(map[string]any{"a": []any{"{{ " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + " }}"}}); p["a[0]"] == nil {
		t.Errorf("CompileValue: %v", p)
	}
}

// The budget leaves ordinary templates alone, in both modes, and an abandoned rendering stops.
func TestBudgetKeepsOrdinaryTemplates(t *testing.T) {
	src := `{% macro row(u) %}<tr><td>{{ u.name|title }}</td><td>{{ '%5.1f'|format(u.score) }}</td></tr>{% endmacro %}` +
		`{% for u in users if u.active %}{{ row(u) }}{% if loop.last %}{{ loop.length }} active{% endif %}{% endfor %}` +
		`{% set total = users|map(attribute='score')|sum %}|{{ total }}|{{ ('-' * 3) ~ '>' }}|{{ [1, 2] + [3] }}|{{ {'a': 1}['a'] }}` +
		`|{{ 'ab'.center(6, '*') }}|{{ 2 ** 10 }}|{% with x = 5 %}{{ x * 2 }}{% endwith %}|{% filter upper %}shout{% endfilter %}`
	data := map[string]any{"users": []any{
		map[string]any{"name": "ada", "score": 9.5, "active": true},
		map[string]any{"name": "bob", "score": 7.0, "active": false},
		map[string]any{"name": "cy", "score": 8.25, "active": true},
	}}
	want := "<tr><td>Ada</td><td>  9.5</td></tr><tr><td>Cy</td><td>  8.2</td></tr>2 active|24.75|--->|[1, 2, 3]|1|**ab**|1024.0|10|SHOUT"
	for mode, e := range engines(t) {
		got, err := e.Render(context.Background(), src, data)
		if err != nil || got != want {
			t.Errorf("%s: %q, %v\nwant %q", mode, got, err, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err = e.Render(ctx, "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", nil)
		cancel()
		if err == nil || sandbox.IsBudgetError(err) && !strings.Contains(err.Error(), "time") {
			t.Errorf("%s: abandoned rendering: %v", mode, err)
		}
	}
}
