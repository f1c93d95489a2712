package config

import (
	"log/slog"
	"time"

	"github.com/pyairtable/automation-domain/sandbox"
)

// Isolation modes of evaluations (EVAL_ISOLATION).
const (
	EvalInProcess = "inprocess"
	EvalProcess   = "process"
)

// Bounds of the evaluation settings: past them a limit no longer protects the process (a
// call depth whose Go stack would not fit, a helper too small to start).
const (
	MaxEvalTimeout     = 10 * time.Minute
	MaxEvalDepth       = 1000
	MaxEvalNesting     = 512
	MinEvalHelperBytes = 128 << 20
)

func (c *Config) checkEval(bad func(name, format string, args ...any)) {
	if c.EvalTimeout < 10*time.Millisecond || c.EvalTimeout > MaxEvalTimeout {
		bad("EVAL_TIMEOUT", "must be from 10ms to %v, got %v", MaxEvalTimeout, c.EvalTimeout)
	}
	if c.EvalMaxSteps < 1000 {
		bad("EVAL_MAX_STEPS", "must be at least 1000, got %d", c.EvalMaxSteps)
	}
	if c.EvalMaxDepth < 1 || c.EvalMaxDepth > MaxEvalDepth {
		bad("EVAL_MAX_DEPTH", "must be from 1 to %d, got %d", MaxEvalDepth, c.EvalMaxDepth)
	}
	if c.EvalMaxNesting < 4 || c.EvalMaxNesting > MaxEvalNesting {
		bad("EVAL_MAX_NESTING", "must be from 4 to %d, got %d", MaxEvalNesting, c.EvalMaxNesting)
	}
	if c.EvalMaxValueBytes < 1024 {
		bad("EVAL_MAX_VALUE_BYTES", "must be at least 1024, got %d", c.EvalMaxValueBytes)
	}
	if c.EvalMaxAllocBytes < c.EvalMaxValueBytes {
		bad("EVAL_MAX_ALLOC_BYTES", "must be at least EVAL_MAX_VALUE_BYTES (%d), got %d", c.EvalMaxValueBytes, c.EvalMaxAllocBytes)
	}
	switch c.EvalIsolation {
	case EvalProcess:
		if c.EvalHelpers < 1 || c.EvalHelpers > 64 {
			bad("EVAL_HELPERS", "must be from 1 to 64, got %d", c.EvalHelpers)
		}
		if c.EvalHelperMemory < MinEvalHelperBytes {
			bad("EVAL_HELPER_MEMORY_BYTES", "must be at least %d, got %d", MinEvalHelperBytes, c.EvalHelperMemory)
		} else if c.EvalHelperMemory < 2*c.EvalMaxAllocBytes {
			bad("EVAL_HELPER_MEMORY_BYTES", "must be at least twice EVAL_MAX_ALLOC_BYTES (%d), got %d", c.EvalMaxAllocBytes, c.EvalHelperMemory)
		}
		if c.EvalHelperStack < 1<<20 || c.EvalHelperStack >= c.EvalHelperMemory {
			bad("EVAL_HELPER_STACK_BYTES", "must be at least 1 MiB and less than EVAL_HELPER_MEMORY_BYTES, got %d", c.EvalHelperStack)
		}
		if c.EvalHelperIdle < time.Second {
			bad("EVAL_HELPER_IDLE", "must be at least 1s, got %v", c.EvalHelperIdle)
		}
	case EvalInProcess:
	default:
		bad("EVAL_ISOLATION", "must be %s or %s, got %q", EvalProcess, EvalInProcess, c.EvalIsolation)
	}
}

// EvalLimits is the budget of one evaluation.
func (c *Config) EvalLimits() sandbox.Limits {
	return sandbox.Limits{
		Timeout: c.EvalTimeout, MaxSteps: c.EvalMaxSteps, MaxDepth: c.EvalMaxDepth, MaxNesting: c.EvalMaxNesting,
		MaxValueBytes: c.EvalMaxValueBytes, MaxAllocBytes: c.EvalMaxAllocBytes,
	}
}

// EvalPool is the pool of evaluation helpers, or nil when evaluations run in process.
func (c *Config) EvalPool(log *slog.Logger) *sandbox.Pool {
	if c.EvalIsolation != EvalProcess {
		return nil
	}
	return sandbox.NewPool(sandbox.PoolConfig{Size: c.EvalHelpers, MemoryBytes: c.EvalHelperMemory,
		StackBytes: c.EvalHelperStack, IdleTimeout: c.EvalHelperIdle, Log: log})
}
