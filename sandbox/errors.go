package sandbox

import (
	"errors"
	"fmt"
	"time"
)

// Limit names one of the bounds of an evaluation.
type Limit string

// The limits an evaluation can exceed.
const (
	LimitTime    Limit = "time"
	LimitSteps   Limit = "steps"
	LimitDepth   Limit = "depth"
	LimitNesting Limit = "nesting"
	LimitValue   Limit = "value size"
	LimitAlloc   Limit = "allocation"
	LimitOutput  Limit = "output size"
	// LimitMemory and LimitStack are the helper process's own: it ran out of memory or stack
	// (possible only through an engine bug the in-engine budget does not know of).
	LimitMemory Limit = "memory"
	LimitStack  Limit = "stack"
)

// LimitError is an evaluation stopped because it went over one of its limits. It names the
// limit and its value; it is a permanent failure of that evaluation (running it again exceeds
// the limit again).
type LimitError struct {
	Limit Limit `json:"limit"`
	// Max is the limit's value: a count, bytes, or nanoseconds for LimitTime.
	Max int64 `json:"max"`
	// Actual is the size that did not fit, when known.
	Actual int64 `json:"actual,omitempty"`
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case LimitTime:
		return fmt.Sprintf("evaluation exceeds the time limit of %v", time.Duration(e.Max))
	case LimitSteps:
		return fmt.Sprintf("evaluation exceeds the step limit of %d (loop iterations, calls and filters)", e.Max)
	case LimitDepth:
		return fmt.Sprintf("evaluation exceeds the call depth limit of %d (nested or recursive calls)", e.Max)
	case LimitNesting:
		return fmt.Sprintf("evaluation exceeds the nesting limit of %d levels", e.Max)
	case LimitValue:
		if e.Actual > 0 {
			return fmt.Sprintf("evaluation exceeds the value size limit of %d bytes (a value of %d bytes)", e.Max, e.Actual)
		}
		return fmt.Sprintf("evaluation exceeds the value size limit of %d bytes", e.Max)
	case LimitAlloc:
		return fmt.Sprintf("evaluation exceeds the allocation limit of %d bytes", e.Max)
	case LimitOutput:
		return fmt.Sprintf("rendered output exceeds %d bytes", e.Max)
	case LimitMemory:
		return fmt.Sprintf("evaluation exceeds the memory limit of %d bytes of its helper process", e.Max)
	case LimitStack:
		return fmt.Sprintf("evaluation exceeds the stack limit of %d bytes of its helper process", e.Max)
	}
	return fmt.Sprintf("evaluation exceeds the %s limit of %d", e.Limit, e.Max)
}

// PanicError is a panic inside an engine, recovered at the engine's recovery point.
type PanicError struct {
	Engine string `json:"engine"`
	Value  string `json:"value"`
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("%s engine failed on this input: %s", e.Engine, e.Value)
}

// CrashError is a helper process that died for another reason than its limits (an engine bug
// such as a fatal runtime error); the service goes on, the evaluation fails.
type CrashError struct {
	Reason string `json:"reason"`
}

func (e *CrashError) Error() string {
	return "evaluation crashed its helper process: " + e.Reason
}

// ErrUnavailable is returned when no helper process can be started (a deployment problem, not
// the input's): callers treat it as transient.
var ErrUnavailable = errors.New("evaluation helpers are unavailable")

// IsBudgetError reports whether err is an evaluation the sandbox stopped: a limit exceeded, a
// recovered engine panic or a crashed helper. Such a failure is the input's: it is permanent,
// and the API answers 422 naming the field.
func IsBudgetError(err error) bool {
	var (
		le *LimitError
		pe *PanicError
		ce *CrashError
	)
	return errors.As(err, &le) || errors.As(err, &pe) || errors.As(err, &ce)
}

// Recover is the recovery point of an engine: deferred at the engine's entry, it turns a panic
// into a *PanicError in *errp. (A Go stack overflow or a runtime out-of-memory cannot be
// recovered: the budget's depth and size limits stop those before they happen, and helper
// processes contain the rest.)
func Recover(engine string, errp *error) {
	r := recover()
	if r == nil {
		return
	}
	msg := fmt.Sprint(r)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	*errp = &PanicError{Engine: engine, Value: msg}
}
