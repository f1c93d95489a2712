package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The handlers the tests' helpers serve: each misbehaves in one way.
var testHandlers = Handlers{
	"echo": func(b *Budget, args json.RawMessage) (any, error) {
		var v any
		err := DecodeJSON(args, &v, true)
		return v, err
	},
	"steps": func(b *Budget, args json.RawMessage) (any, error) {
		for {
			if err := b.Step(); err != nil {
				return nil, err
			}
		}
	},
	"spin": func(b *Budget, args json.RawMessage) (any, error) {
		for { // ignores its budget, as an engine bug would
		}
	},
	"alloc": func(b *Budget, args json.RawMessage) (any, error) {
		var keep [][]byte
		for {
			keep = append(keep, make([]byte, 64<<20))
			for i := range keep[len(keep)-1] {
				keep[len(keep)-1][i] = 1
			}
		}
	},
	"recurse": func(b *Budget, args json.RawMessage) (any, error) {
		return recurse(0), nil
	},
	"panic": func(b *Budget, args json.RawMessage) (_ any, err error) {
		defer Recover("test", &err)
		var m map[string]int
		m["x"] = 1
		return nil, nil
	},
	"message": func(b *Budget, args json.RawMessage) (any, error) {
		return nil, errors.New("undefined variable \"x\"")
	},
	"exit": func(b *Budget, args json.RawMessage) (any, error) {
		os.Exit(7)
		return nil, nil
	},
}

func recurse(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	return recurse(n+1) + int(pad[1])
}

func TestMain(m *testing.M) {
	ServeHelperIfRequested(testHandlers)
	os.Exit(m.Run())
}

func testPool(t *testing.T, cfg PoolConfig) *Pool {
	t.Helper()
	p := NewPool(cfg)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestPoolEvaluates(t *testing.T) {
	p := testPool(t, PoolConfig{Size: 2})
	var out map[string]any
	if err := p.Call(context.Background(), "echo", Limits{}, map[string]any{"n": 3, "s": "x"}, &out); err != nil {
		t.Fatal(err)
	}
	if out["n"] != json.Number("3") || out["s"] != "x" {
		t.Errorf("got %#v", out)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int
			if err := p.Call(context.Background(), "echo", Limits{}, i, &n); err != nil || n != i {
				t.Errorf("echo %d: %d, %v", i, n, err)
			}
		}()
	}
	wg.Wait()
	if n := len(p.PIDs()); n < 1 || n > 2 {
		t.Errorf("%d helpers for a pool of 2", n)
	}
}

func TestPoolReportsEachLimit(t *testing.T) {
	p := testPool(t, PoolConfig{Size: 1, MemoryBytes: 256 << 20, StackBytes: 8 << 20, Grace: 200 * time.Millisecond})
	limits := Limits{Timeout: 300 * time.Millisecond, MaxSteps: 1000}
	for method, want := range map[string]Limit{
		"steps": LimitSteps, "spin": LimitTime, "alloc": LimitMemory, "recurse": LimitStack,
	} {
		l := limits
		if want != LimitTime {
			l.Timeout = 10 * time.Second // filling the memory or the stack takes a moment
		}
		start := time.Now()
		err := p.Call(context.Background(), method, l, nil, nil)
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != want {
			t.Errorf("%s: %v, want the %s limit", method, err, want)
			continue
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: took %v", method, took)
		}
		t.Logf("%s: %v", method, err)
	}
	// The pool goes on with a new helper.
	var s string
	if err := p.Call(context.Background(), "echo", limits, "still here", &s); err != nil || s != "still here" {
		t.Errorf("after the deaths: %q, %v", s, err)
	}
}

func TestPoolKeepsErrorTypes(t *testing.T) {
	p := testPool(t, PoolConfig{Size: 1})
	err := p.Call(context.Background(), "panic", Limits{}, nil, nil)
	var pe *PanicError
	if !errors.As(err, &pe) || pe.Engine != "test" || !strings.Contains(pe.Value, "nil map") {
		t.Errorf("panic: %v", err)
	}
	err = p.Call(context.Background(), "message", Limits{}, nil, nil)
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), `undefined variable "x"`) || IsBudgetError(err) {
		t.Errorf("message: %v", err)
	}
	err = p.Call(context.Background(), "exit", Limits{}, nil, nil)
	var ce *CrashError
	if !errors.As(err, &ce) || !IsBudgetError(err) {
		t.Errorf("exit: %v", err)
	}
	if err := p.Call(context.Background(), "nope", Limits{}, nil, nil); err == nil || !strings.Contains(err.Error(), "unknown method") {
		t.Errorf("unknown method: %v", err)
	}
}

func TestPoolStopsWithTheCaller(t *testing.T) {
	p := testPool(t, PoolConfig{Size: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Call(ctx, "spin", Limits{Timeout: time.Minute}, nil, nil)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("abandoned call: %v after %v", err, time.Since(start))
	}
	if len(p.PIDs()) != 0 {
		t.Errorf("the spinning helper is still there: %v", p.PIDs())
	}
}

func TestPoolEndsIdleHelpers(t *testing.T) {
	p := testPool(t, PoolConfig{Size: 1, IdleTimeout: 100 * time.Millisecond})
	if err := p.Call(context.Background(), "echo", Limits{}, 1, nil); err != nil {
		t.Fatal(err)
	}
	pids := p.PIDs()
	if len(pids) != 1 {
		t.Fatalf("helpers: %v", pids)
	}
	deadline := time.Now().Add(10 * time.Second)
	gone := func() bool {
		_, err := os.Stat("/proc/" + itoa(pids[0]))
		return len(p.PIDs()) == 0 && err != nil
	}
	for !gone() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !gone() {
		t.Fatalf("idle helper %d was not ended", pids[0])
	}
}

func TestPoolClosed(t *testing.T) {
	p := NewPool(PoolConfig{})
	_ = p.Close()
	if err := p.Call(context.Background(), "echo", Limits{}, 1, nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("closed pool: %v", err)
	}
}

func TestPoolReportsABinaryThatIsNoHelper(t *testing.T) {
	p := testPool(t, PoolConfig{Size: 1, Command: func() (*exec.Cmd, error) { return exec.Command("true"), nil }})
	for range 2 {
		start := time.Now()
		err := p.Call(context.Background(), "echo", Limits{}, 1, nil)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("a helper that exits at once: %v", err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("took %v", took)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestBudget(t *testing.T) {
	b := NewBudget(context.Background(), Limits{MaxSteps: 10, MaxDepth: 2, MaxValueBytes: 100, MaxAllocBytes: 150})
	defer b.Close()
	for range 10 {
		if err := b.Step(); err != nil {
			t.Fatal(err)
		}
	}
	err := b.Step()
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != LimitSteps || le.Max != 10 {
		t.Fatalf("11th step: %v", err)
	}
	if b.Context().Err() == nil {
		t.Error("the budget's context goes on after a limit")
	}
	if err := b.Value(1); err != le {
		t.Errorf("a later check: %v, want the first limit", err)
	}

	b2 := NewBudget(context.Background(), Limits{MaxDepth: 2, MaxValueBytes: 100, MaxAllocBytes: 150})
	defer b2.Close()
	if b2.Enter() != nil || b2.Enter() != nil {
		t.Fatal("two levels")
	}
	if err := b2.Enter(); !errors.As(err, &le) || le.Limit != LimitDepth {
		t.Errorf("third level: %v", err)
	}
	b3 := NewBudget(context.Background(), Limits{MaxValueBytes: 100, MaxAllocBytes: 150})
	defer b3.Close()
	if err := b3.Value(101); !errors.As(err, &le) || le.Limit != LimitValue || le.Actual != 101 {
		t.Errorf("101 bytes: %v", err)
	}
	b4 := NewBudget(context.Background(), Limits{MaxValueBytes: 100, MaxAllocBytes: 150})
	defer b4.Close()
	if b4.Value(100) != nil {
		t.Fatal("100 bytes")
	}
	if err := b4.Value(100); !errors.As(err, &le) || le.Limit != LimitAlloc {
		t.Errorf("200 bytes in all: %v", err)
	}
	b5 := NewBudget(context.Background(), Limits{Timeout: 20 * time.Millisecond})
	defer b5.Close()
	<-b5.Context().Done()
	if err := b5.Step(); !errors.As(err, &le) || le.Limit != LimitTime {
		t.Errorf("after the deadline: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b6 := NewBudget(ctx, Limits{})
	defer b6.Close()
	cancel()
	if err := b6.Step(); !errors.Is(err, context.Canceled) || IsBudgetError(err) {
		t.Errorf("caller gone: %v", err)
	}
}

func TestMeasure(t *testing.T) {
	shared := []any{"abcdefgh", "abcdefgh"}
	v := []any{shared, shared, map[string]any{"k": 1.5}}
	s := Measure(v, 1<<20, nil)
	// outer 3×16, each shared list 2×16 + 2×(8+8), the map 16+1 + 8
	if want := int64(48 + 2*(32+32) + 25); s.Bytes != want || s.Depth != 3 {
		t.Errorf("size %+v, want %d bytes, depth 3", s, want)
	}
	// Sharing doubles the size at each level: measuring stops at the limit.
	x := []any{"x"}
	for range 60 {
		x = []any{x, x}
	}
	if s := Measure(x, 1000, nil); s.Bytes <= 1000 || s.Bytes > 2000 {
		t.Errorf("a value of 2^60 elements measured %d bytes past a limit of 1000", s.Bytes)
	}
}
