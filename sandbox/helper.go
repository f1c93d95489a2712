package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// The environment a Pool starts its helpers with.
const (
	helperEnv       = "AUTOMATION_EVAL_HELPER"
	helperMemoryEnv = "AUTOMATION_EVAL_HELPER_MEMORY"
	helperStackEnv  = "AUTOMATION_EVAL_HELPER_STACK"
)

// Handler evaluates one request in a helper process, under b, from its JSON arguments; the
// result is sent back as JSON.
type Handler func(b *Budget, args json.RawMessage) (any, error)

// Handlers maps method names to their handlers.
type Handlers map[string]Handler

// ServeHelperIfRequested makes this process an evaluation helper when a Pool started it as one:
// it applies the limits the pool asked for, serves requests from stdin until stdin closes, and
// exits. Otherwise it returns at once. Every program that evaluates through a Pool (each main,
// and a TestMain whose tests start one) calls it first: the pool starts helpers by running the
// program's own binary again.
func ServeHelperIfRequested(handlers Handlers) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	if err := applyHelperLimits(); err != nil {
		fmt.Fprintln(os.Stderr, "evaluation helper:", err)
		os.Exit(3)
	}
	if err := serve(os.Stdin, os.Stdout, handlers); err != nil {
		fmt.Fprintln(os.Stderr, "evaluation helper:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// applyHelperLimits sets the stack and memory caps named in the environment: the process
// dies (and the pool reports the limit) rather than grow past them.
func applyHelperLimits() error {
	runtime.GOMAXPROCS(1) // one evaluation at a time
	if s := os.Getenv(helperStackEnv); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%s=%q is not a size", helperStackEnv, s)
		}
		debug.SetMaxStack(int(n))
	}
	if s := os.Getenv(helperMemoryEnv); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%s=%q is not a size", helperMemoryEnv, s)
		}
		// The collector works hard well before the hard cap, which makes an allocation that
		// would pass it fail instead (the runtime dies: "out of memory").
		debug.SetMemoryLimit(n * 3 / 4)
		if err := limitData(uint64(n)); err != nil {
			return err
		}
	}
	return nil
}

// serve answers requests one at a time.
func serve(in io.Reader, out io.Writer, handlers Handlers) error {
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	if err := enc.Encode(hello{Hello: os.Getpid()}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	dec := json.NewDecoder(bufio.NewReaderSize(in, 64<<10))
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read request: %w", err)
		}
		res := handle(handlers, req)
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write response: %w", err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write response: %w", err)
		}
	}
}

// freeAfter is what an evaluation must have counted for the helper to hand its memory back to
// the system afterwards (an idle helper stays small).
const freeAfter = 8 << 20

func handle(handlers Handlers, req request) response {
	res := response{ID: req.ID}
	h, ok := handlers[req.Method]
	if !ok {
		res.Error = &wireError{Message: fmt.Sprintf("evaluation helper: unknown method %q", req.Method)}
		return res
	}
	b := NewBudget(context.Background(), req.Limits)
	defer b.Close()
	out, err := h(b, req.Args)
	if err == nil {
		res.Result, err = json.Marshal(out)
	}
	if err != nil {
		res.Result, res.Error = nil, toWire(err)
	}
	if _, alloc := b.Spent(); alloc > freeAfter {
		debug.FreeOSMemory()
	}
	return res
}
