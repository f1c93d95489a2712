// Package e2e drives the running service over HTTP: the embedded stack started in process the
// way `make run` starts it, and the production shape (separate API and worker processes on
// Postgres, Redis and a Temporal server reached over TEMPORAL_ADDRESS).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/app"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/logging"
)

// stack is a running service under test.
type stack struct {
	URL      string
	APIKey   string
	Config   *config.Config
	Temporal client.Client // for assertions on Temporal's own state
	Logs     *logBuffer
	stop     func() error
}

// Stop shuts the stack down gracefully and returns Run's error.
func (s *stack) Stop() error { return s.stop() }

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testConfig is the configuration a test stack starts from: its own DATA_DIR and ports.
func testConfig(t testing.TB, dataDir string, env map[string]string) *config.Config {
	t.Helper()
	base := map[string]string{
		"ENV": "test", "DATA_DIR": dataDir, "LOG_LEVEL": "info",
		"TEMPORAL_PORT": fmt.Sprint(testenv.FreePort(t)), "TEMPORAL_UI_PORT": "0",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := config.LoadFrom(base)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startEmbedded runs the whole service in this process exactly as `make run` does (app.Run with
// an embedded Temporal server), with the API on a free port. The stack stops when the test ends.
func startEmbedded(t testing.TB, cfg *config.Config) *stack {
	t.Helper()
	return startEmbeddedWired(t, cfg, nil)
}

// startEmbeddedWired is startEmbedded with app.Options.Wire: wire sees the opened dependencies
// (the real modules, wired by the app) before the API and the worker are built. The rules test
// keeps Deps to publish an event the way the webhook module will (an inbound webhook's source
// cannot be forged over the API); it substitutes nothing.
func startEmbeddedWired(t testing.TB, cfg *config.Config, wire func(*app.Deps)) *stack {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.PublicURL = "http://" + l.Addr().String()
	logs := &logBuffer{}
	log := logging.New(io.MultiWriter(logs, testWriter{t}), false, cfg.LogLevel)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			Config: cfg, Logger: log, Version: "e2e", API: true, Worker: true, Listener: l, Ready: ready, Wire: wire,
			StartTemporal: func(c *config.Config, l *slog.Logger) (app.Embedded, error) {
				return devserver.FromConfig(c, l)
			},
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("stack did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("stack did not start within 60 s")
	}
	tc, err := client.Dial(client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		Logger: quietLogger()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	var stopErr error
	s := &stack{URL: cfg.PublicURL, APIKey: cfg.InternalAPIKey, Config: cfg, Temporal: tc, Logs: logs}
	s.stop = func() error {
		once.Do(func() {
			tc.Close()
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = fmt.Errorf("stack did not stop within 60 s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

// testWriter sends the stack's log to the test log (shown with -v or on failure).
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func quietLogger() *sdkLogger { return &sdkLogger{} }

// sdkLogger drops the SDK client's own logs in tests.
type sdkLogger struct{}

func (*sdkLogger) Debug(string, ...any) {}
func (*sdkLogger) Info(string, ...any)  {}
func (*sdkLogger) Warn(string, ...any)  {}
func (*sdkLogger) Error(string, ...any) {}

// call is one HTTP request to the stack.
type call struct {
	t      testing.TB
	base   string
	key    string
	header http.Header
}

func (s *stack) client(t testing.TB) *call {
	return &call{t: t, base: s.URL, key: s.APIKey, header: http.Header{}}
}

type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("not JSON (%d): %s", r.Status, r.Body)
	}
	return m
}

// Decode unmarshals the body into v.
func (r reply) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode (%d) %s: %v", r.Status, r.Body, err)
	}
}

func (c *call) do(method, path string, body any, headers ...string) reply {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	res, err := contractClient(c.t, nil).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{Status: res.StatusCode, Header: res.Header, Body: b}
}

func (c *call) get(path string, headers ...string) reply { return c.do("GET", path, nil, headers...) }

func (c *call) post(path string, body any, headers ...string) reply {
	return c.do("POST", path, body, headers...)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

// Binaries built once per test run, for tests that need separate processes.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binary builds (once) and returns the path of one of the service's commands: "api", "worker",
// "starter", "automation" (everything in one process, as `make run`).
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "automation-e2e-bin-")
		if buildErr != nil {
			return
		}
		for bin, pkg := range map[string]string{"api": "./cmd/api", "worker": "./worker", "starter": "./starter",
			"automation": "./cmd/automation"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, bin), pkg)
			cmd.Dir = ".."
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// process is a service binary running as its own OS process.
type process struct {
	cmd  *exec.Cmd
	out  *logBuffer
	done chan error
}

// startProcess runs a service binary with env (and nothing inherited but PATH and HOME).
func startProcess(t *testing.T, name string, env map[string]string) *process {
	t.Helper()
	return startCommand(t, name, binary(t, name), env)
}

// startCommand runs the program at path with env (and nothing inherited but PATH and HOME) and
// kills it when the test ends; its output is shown when the test fails.
func startCommand(t *testing.T, name, path string, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &logBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	return p
}

// errNoExit is Wait's error when the process is still running.
var errNoExit = errors.New("the process did not exit in time")

// Wait waits up to timeout for the process to exit and returns its exit error (errNoExit when
// it is still running).
func (p *process) Wait(timeout time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		return errNoExit
	}
}

// Terminate sends SIGTERM and waits up to timeout for the exit.
func (p *process) Terminate(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Kill stops the process at once (as a crash would).
func (p *process) Kill() {
	_ = p.cmd.Process.Kill() // an error means it had exited already
}

// starter runs the operator CLI against the stack and returns its output and exit code.
func (s *stack) starter(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary(t, "starter"), append([]string{"--api", s.URL, "--api-key", s.APIKey}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// readFile returns a fixture file's text.
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
