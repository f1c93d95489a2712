package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PoolConfig shapes a pool of helper processes.
type PoolConfig struct {
	// Size is how many helpers may run at once (each evaluates one request at a time); more
	// requests wait for one.
	Size int
	// MemoryBytes is how much each helper's memory may grow past what it takes to start: a
	// hard cap on its data segment (RLIMIT_DATA on Linux); the Go runtime's soft limit is three
	// quarters of it.
	MemoryBytes int64
	// StackBytes is each helper's maximum goroutine stack.
	StackBytes int64
	// IdleTimeout ends a helper that has had nothing to do for this long.
	IdleTimeout time.Duration
	// Grace is how long past an evaluation's own deadline the pool waits for its answer before
	// it kills the helper.
	Grace time.Duration
	// Command builds the command that starts a helper; nil runs this program's own binary,
	// which must call ServeHelperIfRequested first.
	Command func() (*exec.Cmd, error)
	Log     *slog.Logger
}

// Defaults of PoolConfig.
const (
	DefaultHelpers      = 2
	DefaultHelperMemory = 192 << 20
	DefaultHelperStack  = 64 << 20
	DefaultHelperIdle   = time.Minute
	defaultGrace        = 500 * time.Millisecond
	helperStartTimeout  = 15 * time.Second
	// startBackoff: after a helper failed to start, calls fail at once for this long (rather
	// than each waiting for a start that fails the same way).
	startBackoff            = 10 * time.Second
	helperStderrKept        = 4 << 10
	helperExitReportTimeout = 2 * time.Second
)

// Pool runs evaluations in helper processes, started lazily (re-executions of the service's own
// binary) and ended when idle. A helper that dies or overruns its deadline is replaced; its
// evaluation fails with an error naming the limit, and nothing else is affected.
type Pool struct {
	cfg     PoolConfig
	slots   chan struct{}
	ids     atomic.Uint64
	started atomic.Uint64
	lost    atomic.Uint64
	// exitedCPU is the CPU time of the helpers that have exited, in nanoseconds.
	exitedCPU atomic.Int64

	mu      sync.Mutex
	idle    []*helper
	all     map[*helper]bool
	closed  bool
	reaping bool
	done    chan struct{}
	// startErr is the last failure to start a helper, until retryAt.
	startErr error
	retryAt  time.Time
}

// NewPool returns a pool; no helper starts before the first Call.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.Size <= 0 {
		cfg.Size = DefaultHelpers
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = DefaultHelperMemory
	}
	if cfg.StackBytes <= 0 {
		cfg.StackBytes = DefaultHelperStack
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultHelperIdle
	}
	if cfg.Grace <= 0 {
		cfg.Grace = defaultGrace
	}
	if cfg.Command == nil {
		cfg.Command = selfCommand
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Pool{cfg: cfg, slots: make(chan struct{}, cfg.Size), all: map[*helper]bool{}, done: make(chan struct{})}
}

// selfCommand runs this program's binary again.
func selfCommand() (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return exec.Command(exe), nil
}

// MemoryLimit returns a helper's memory cap.
func (p *Pool) MemoryLimit() int64 { return p.cfg.MemoryBytes }

// PIDs returns the process ids of the helpers alive now.
func (p *Pool) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]int, 0, len(p.all))
	for h := range p.all {
		out = append(out, h.pid)
	}
	return out
}

// PoolStats count the pool's helpers.
type PoolStats struct {
	// Started counts the helpers started; Lost those that died or were killed during an
	// evaluation (a limit, a crash, a caller that gave up).
	Started, Lost uint64
	// CPU is the CPU time the helpers used, alive or gone (the live ones' only on Linux).
	CPU time.Duration
}

// Stats returns the pool's counts so far.
func (p *Pool) Stats() PoolStats {
	cpu := time.Duration(p.exitedCPU.Load())
	for _, pid := range p.PIDs() {
		cpu += processCPU(pid)
	}
	return PoolStats{Started: p.started.Load(), Lost: p.lost.Load(), CPU: cpu}
}

// Close ends every helper; later calls fail.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	helpers := make([]*helper, 0, len(p.all))
	for h := range p.all {
		helpers = append(helpers, h)
	}
	p.idle = nil
	p.mu.Unlock()
	for _, h := range helpers {
		h.stop()
	}
	return nil
}

// Call evaluates method with args in a helper under limits and decodes the result into reply
// (numbers as json.Number). The helper's answer must come within the limits' timeout (plus a
// grace period) and before ctx ends; otherwise the helper is killed. Errors: the evaluation's
// own (a *LimitError, *PanicError or *RemoteError), a *LimitError or *CrashError for a helper
// that died, ErrUnavailable when no helper can be started.
func (p *Pool) Call(ctx context.Context, method string, limits Limits, args any, reply any) error {
	limits = limits.OrDefaults()
	raw, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("evaluation arguments: %w", err)
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("evaluation stopped while waiting for a helper: %w", context.Cause(ctx))
	}
	defer func() { <-p.slots }()
	h, err := p.take()
	if err != nil {
		return err
	}
	res, err := h.call(ctx, request{ID: p.ids.Add(1), Method: method, Limits: limits, Args: raw},
		limits.Timeout+p.cfg.Grace, p.cfg)
	if err != nil {
		p.lost.Add(1)
		p.discard(h)
		return err
	}
	p.put(h)
	if res.Error != nil {
		return res.Error.err()
	}
	if reply == nil {
		return nil
	}
	return DecodeJSON(res.Result, reply, true)
}

// take returns an idle helper or starts one (the caller holds a slot).
func (p *Pool) take() (*helper, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: the pool is closed", ErrUnavailable)
	}
	if n := len(p.idle); n > 0 {
		h := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return h, nil
	}
	if p.startErr != nil && time.Now().Before(p.retryAt) {
		err := p.startErr
		p.mu.Unlock()
		return nil, err
	}
	p.mu.Unlock()
	h, err := startHelper(p.cfg)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.cfg.Log.Error("evaluation helper does not start", "error", err)
		p.startErr, p.retryAt = fmt.Errorf("%w: %v", ErrUnavailable, err), time.Now().Add(startBackoff)
		return nil, p.startErr
	}
	p.startErr = nil
	if p.closed {
		go h.stop()
		return nil, fmt.Errorf("%w: the pool is closed", ErrUnavailable)
	}
	p.all[h] = true
	p.started.Add(1)
	go func() {
		<-h.exited
		if ps := h.cmd.ProcessState; ps != nil {
			p.exitedCPU.Add(int64(ps.UserTime() + ps.SystemTime()))
		}
	}()
	if !p.reaping {
		p.reaping = true
		go p.reap()
	}
	return h, nil
}

func (p *Pool) put(h *helper) {
	h.lastUsed = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		go h.stop()
		return
	}
	p.idle = append(p.idle, h)
}

func (p *Pool) discard(h *helper) {
	p.mu.Lock()
	delete(p.all, h)
	p.mu.Unlock()
	h.stop()
}

// reap ends helpers idle for longer than IdleTimeout.
func (p *Pool) reap() {
	t := time.NewTicker(max(p.cfg.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			var old []*helper
			p.mu.Lock()
			kept := p.idle[:0]
			for _, h := range p.idle {
				if now.Sub(h.lastUsed) >= p.cfg.IdleTimeout {
					old = append(old, h)
					delete(p.all, h)
				} else {
					kept = append(kept, h)
				}
			}
			p.idle = kept
			p.mu.Unlock()
			for _, h := range old {
				h.stop()
			}
		}
	}
}

// helper is one helper process.
type helper struct {
	cmd       *exec.Cmd
	pid       int
	stdin     io.WriteCloser
	responses chan response
	exited    chan struct{} // closed when the process has exited and stderr is drained
	stderr    *headBuffer
	lastUsed  time.Time
	stopOnce  sync.Once
}

func startHelper(cfg PoolConfig) (*helper, error) {
	cmd, err := cfg.Command()
	if err != nil {
		return nil, err
	}
	cmd.Env = helperEnviron(cfg)
	cmd.SysProcAttr = helperProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	h := &helper{cmd: cmd, stdin: stdin, responses: make(chan response, 1), exited: make(chan struct{}),
		stderr: &headBuffer{max: helperStderrKept}}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h.pid = cmd.Process.Pid
	hellos := make(chan error, 1)
	go h.read(stdout, hellos)
	go func() {
		_ = cmd.Wait() // also waits for the stderr copy
		close(h.exited)
	}()
	select {
	case err := <-hellos:
		if err != nil {
			h.stop()
			return nil, fmt.Errorf("helper %d: %w%s", h.pid, err, h.stderr.summary())
		}
	case <-time.After(helperStartTimeout):
		h.stop()
		return nil, fmt.Errorf("helper %d did not say hello within %v (does the program call sandbox.ServeHelperIfRequested first?)", h.pid, helperStartTimeout)
	}
	return h, nil
}

// helperEnviron is all a helper gets of the environment: its limits and what the Go runtime
// and time zones need — no secrets.
func helperEnviron(cfg PoolConfig) []string {
	env := []string{
		helperEnv + "=1",
		helperMemoryEnv + "=" + strconv.FormatInt(cfg.MemoryBytes, 10),
		helperStackEnv + "=" + strconv.FormatInt(cfg.StackBytes, 10),
		"GOTRACEBACK=single",
	}
	for _, k := range []string{"TZ", "ZONEINFO", "GOCOVERDIR", "GODEBUG", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// read forwards the helper's frames: first its hello, then one response per request.
func (h *helper) read(stdout io.Reader, hellos chan<- error) {
	dec := json.NewDecoder(bufio.NewReaderSize(stdout, 64<<10))
	var hi hello
	if err := dec.Decode(&hi); err != nil || hi.Hello == 0 {
		if err == nil {
			err = errors.New("no hello")
		}
		hellos <- fmt.Errorf("did not start: %v", err)
		close(h.responses)
		return
	}
	hellos <- nil
	for {
		var res response
		if err := dec.Decode(&res); err != nil {
			close(h.responses) // the helper is gone (or garbled its answer): died says which
			return
		}
		h.responses <- res
	}
}

// call sends one request and waits for its response, at most wait and while ctx lasts.
func (h *helper) call(ctx context.Context, req request, wait time.Duration, cfg PoolConfig) (response, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return response{}, err
	}
	if _, err := h.stdin.Write(append(b, '\n')); err != nil {
		return response{}, h.died(cfg)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case res, ok := <-h.responses:
		if !ok {
			return response{}, h.died(cfg)
		}
		if res.ID != req.ID {
			return response{}, &CrashError{Reason: fmt.Sprintf("answered request %d instead of %d", res.ID, req.ID)}
		}
		return res, nil
	case <-timer.C:
		h.stop()
		cfg.Log.Warn("evaluation helper killed: it overran the evaluation's deadline", "pid", h.pid, "method", req.Method)
		return response{}, &LimitError{Limit: LimitTime, Max: int64(req.Limits.Timeout)}
	case <-ctx.Done():
		h.stop()
		return response{}, fmt.Errorf("evaluation stopped: %w", context.Cause(ctx))
	}
}

// died waits for the helper's exit and says which limit killed it.
func (h *helper) died(cfg PoolConfig) error {
	select {
	case <-h.exited:
	case <-time.After(helperExitReportTimeout):
		h.stop()
	}
	out := h.stderr.String()
	var err error
	switch {
	// A pure-Go helper at its data limit mostly dies "out of memory"; when the mapping that
	// failed was a thread's or a signal stack's, it dies of a segmentation fault or a thread it
	// could not create.
	case strings.Contains(out, "out of memory"), strings.Contains(out, "cannot allocate memory"),
		strings.Contains(out, "SIGSEGV"), strings.Contains(out, "failed to create new OS thread"),
		strings.Contains(out, "failed to allocate"): // the last: under the race detector
		err = &LimitError{Limit: LimitMemory, Max: cfg.MemoryBytes}
	case strings.Contains(out, "stack exceeds") || strings.Contains(out, "stack overflow"):
		err = &LimitError{Limit: LimitStack, Max: cfg.StackBytes}
	default:
		reason := firstLine(out)
		if reason == "" && h.cmd.ProcessState != nil {
			reason = h.cmd.ProcessState.String()
		}
		if reason == "" {
			reason = "it exited"
		}
		err = &CrashError{Reason: reason}
	}
	cfg.Log.Warn("evaluation helper died", "pid", h.pid, "error", err, "stderr", firstLine(out))
	return err
}

// stop kills the helper (idempotent).
func (h *helper) stop() {
	h.stopOnce.Do(func() {
		_ = h.stdin.Close()
		_ = h.cmd.Process.Kill()
	})
	<-h.exited
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// headBuffer keeps the first max bytes written to it (where a dying Go program says why).
type headBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *headBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *headBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func (b *headBuffer) summary() string {
	if l := firstLine(b.String()); l != "" {
		return ": " + l
	}
	return ""
}
