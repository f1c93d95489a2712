// Package sandbox bounds the evaluation of user-written text — templates (gonja), jq programs
// (gojq) and expressions (expr-lang) — with one budget, and can run each evaluation in a small
// pool of resource-limited helper processes so that even an engine bug nobody has found yet
// cannot take the service down.
//
// The engines count against a Budget (created per evaluation from the caller's context and the
// configured Limits): a wall-clock deadline, evaluation steps (loop iterations, calls, filters,
// across nesting), call depth, the size of every intermediate value and the total allocated per
// evaluation. Going over a limit stops the evaluation with a *LimitError naming the limit; a
// panic inside an engine becomes a *PanicError at the engine's one recovery point (Recover).
// A Pool adds the second layer: a helper process with a small stack and a hard memory cap whose
// death (out of memory, stack overflow, a deadline it could not keep) is reported as a
// *LimitError naming the limit, while the service goes on.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limits bound one evaluation. A zero field takes its default (DefaultLimits).
type Limits struct {
	// Timeout is the wall-clock time one evaluation may take (the caller's context may end it
	// sooner).
	Timeout time.Duration `json:"timeout"`
	// MaxSteps bounds the evaluation steps: every loop iteration, macro or function call,
	// filter and collected element counts one, across nesting.
	MaxSteps int64 `json:"max_steps"`
	// MaxDepth bounds the call depth: nested macro calls, recursive jq functions.
	MaxDepth int `json:"max_depth"`
	// MaxNesting bounds how deeply the source nests (brackets, blocks), checked before parsing.
	MaxNesting int `json:"max_nesting"`
	// MaxValueBytes bounds the size of every intermediate value (strings, lists, maps).
	MaxValueBytes int64 `json:"max_value_bytes"`
	// MaxAllocBytes bounds what one evaluation may allocate in all (as the engines count it).
	MaxAllocBytes int64 `json:"max_alloc_bytes"`
}

// Defaults of Limits.
const (
	DefaultTimeout       = time.Second
	DefaultMaxSteps      = 1_000_000
	DefaultMaxDepth      = 200
	DefaultMaxNesting    = 64
	DefaultMaxValueBytes = 1 << 20
	DefaultMaxAllocBytes = 64 << 20
)

// DefaultLimits are safe defaults: ample for templates that render a message or a config,
// and well below what could hurt the process.
func DefaultLimits() Limits {
	return Limits{
		Timeout: DefaultTimeout, MaxSteps: DefaultMaxSteps, MaxDepth: DefaultMaxDepth,
		MaxNesting: DefaultMaxNesting, MaxValueBytes: DefaultMaxValueBytes, MaxAllocBytes: DefaultMaxAllocBytes,
	}
}

// OrDefaults returns l with every zero field set to its default.
func (l Limits) OrDefaults() Limits {
	d := DefaultLimits()
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	if l.MaxSteps <= 0 {
		l.MaxSteps = d.MaxSteps
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxNesting <= 0 {
		l.MaxNesting = d.MaxNesting
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = d.MaxValueBytes
	}
	if l.MaxAllocBytes <= 0 {
		l.MaxAllocBytes = d.MaxAllocBytes
	}
	return l
}

// Budget is what one evaluation may still spend. The engines call Step, Enter/Leave and Value
// as they go; the first limit exceeded is kept (Err) and every later call fails with it, so an
// engine that swallows an error still stops soon. A Budget is used by one evaluation at a time
// (it is not safe for concurrent use), and must be closed.
type Budget struct {
	limits Limits
	ctx    context.Context
	stop   context.CancelCauseFunc
	cancel context.CancelFunc
	steps  int64
	alloc  int64
	depth  int
	err    error
}

// NewBudget starts the budget of one evaluation: its deadline is Limits.Timeout from now or
// the end of ctx, whichever comes first.
func NewBudget(ctx context.Context, l Limits) *Budget {
	l = l.OrDefaults()
	timed, cancel := context.WithTimeoutCause(ctx, l.Timeout, &LimitError{Limit: LimitTime, Max: int64(l.Timeout)})
	stopped, stop := context.WithCancelCause(timed)
	return &Budget{limits: l, ctx: stopped, stop: stop, cancel: cancel}
}

// Close releases the budget's timer.
func (b *Budget) Close() {
	b.stop(context.Canceled)
	b.cancel()
}

// Limits returns the limits the budget enforces.
func (b *Budget) Limits() Limits { return b.limits }

// Context ends when the evaluation must stop: at the deadline, when the caller's context ends,
// or as soon as a limit is exceeded (engines that watch a context, like gojq, stop there).
func (b *Budget) Context() context.Context { return b.ctx }

// Err returns why the evaluation must stop (nil while it may go on): the first limit exceeded,
// the deadline, or the end of the caller's context.
func (b *Budget) Err() error {
	if b.err != nil {
		return b.err
	}
	if b.ctx.Err() == nil {
		return nil
	}
	cause := context.Cause(b.ctx)
	var le *LimitError
	if errors.As(cause, &le) {
		b.err = le
	} else {
		b.err = fmt.Errorf("evaluation stopped: %w", cause)
	}
	return b.err
}

// fail records err as the reason to stop (unless there is one already) and returns the reason.
func (b *Budget) fail(err error) error {
	if b.err == nil {
		b.err = err
		b.stop(err)
	}
	return b.err
}

// Step counts one evaluation step.
func (b *Budget) Step() error { return b.Steps(1) }

// Steps counts n evaluation steps and checks the deadline.
func (b *Budget) Steps(n int64) error {
	if b.err != nil {
		return b.err
	}
	b.steps += n
	if b.steps > b.limits.MaxSteps {
		return b.fail(&LimitError{Limit: LimitSteps, Max: b.limits.MaxSteps})
	}
	return b.Err()
}

// Enter counts one call (a step) one level deeper; every successful Enter needs its Leave.
func (b *Budget) Enter() error {
	if err := b.Step(); err != nil {
		return err
	}
	if b.depth >= b.limits.MaxDepth {
		return b.fail(&LimitError{Limit: LimitDepth, Max: int64(b.limits.MaxDepth)})
	}
	b.depth++
	return nil
}

// Leave ends a call begun with Enter.
func (b *Budget) Leave() {
	if b.depth > 0 {
		b.depth--
	}
}

// Value accounts for a new intermediate value of size bytes: it must fit the value size limit,
// and it counts against the allocation limit. Call it before building the value where the size
// is known in advance, so that nothing too large is ever allocated.
func (b *Budget) Value(size int64) error {
	if b.err != nil {
		return b.err
	}
	if size > b.limits.MaxValueBytes || size < 0 {
		return b.fail(&LimitError{Limit: LimitValue, Max: b.limits.MaxValueBytes, Actual: size})
	}
	return b.Alloc(size)
}

// Alloc counts n bytes against the allocation limit.
func (b *Budget) Alloc(n int64) error {
	if b.err != nil {
		return b.err
	}
	b.alloc += n
	if b.alloc > b.limits.MaxAllocBytes {
		return b.fail(&LimitError{Limit: LimitAlloc, Max: b.limits.MaxAllocBytes})
	}
	return nil
}

// Exceed stops the evaluation with a limit the engine checked itself (the output size, the
// source nesting) and returns it.
func (b *Budget) Exceed(err *LimitError) error { return b.fail(err) }

// Spent reports what the evaluation used so far: steps and bytes counted.
func (b *Budget) Spent() (steps, allocated int64) { return b.steps, b.alloc }
