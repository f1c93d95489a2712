package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// brokerTimeout bounds a private broker's start and stop (RabbitMQ boots in 5-10 s on an idle
// machine, much slower on a loaded one).
const brokerTimeout = 2 * time.Minute

// broker is one private server process: started with the same arguments, environment, port and
// data directory each time, so a Stop then Start is a restart of the same broker.
type broker struct {
	t    testing.TB
	name string
	addr string
	path string
	args []string
	env  []string
	dir  string
	log  string
	stop func(b *broker, p *os.Process) error // a graceful stop; the process group is killed if it does not exit

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (b *broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return fmt.Errorf("%s is already running", b.name)
	}
	logf, err := os.OpenFile(b.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%s log: %w", b.name, err)
	}
	cmd := exec.Command(b.path, b.args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = b.dir, b.env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its children (beam, epmd helpers) go with it
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", b.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	b.cmd, b.done = cmd, done
	deadline := time.Now().Add(brokerTimeout)
	for !portOpen(b.addr) {
		select {
		case <-done:
			b.cmd = nil
			return fmt.Errorf("%s exited while starting:\n%s", b.name, b.tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %v:\n%s", b.name, b.addr, brokerTimeout, b.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// halt stops the broker (gracefully when it can) and waits until its process has exited and its
// port is closed.
func (b *broker) halt() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil
	}
	cmd, done := b.cmd, b.done
	b.cmd = nil
	graceful := b.stop(b, cmd.Process)
	select {
	case <-done:
	case <-time.After(brokerTimeout):
		graceful = errors.Join(graceful, fmt.Errorf("%s did not exit within %v", b.name, brokerTimeout))
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever it left in its group
	for deadline := time.Now().Add(brokerTimeout); portOpen(b.addr); {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still listens on %s", b.name, b.addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return graceful
}

func (b *broker) tail() string {
	out, _ := os.ReadFile(b.log)
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	return string(out)
}

func (b *broker) register() {
	b.t.Cleanup(func() {
		if err := b.halt(); err != nil {
			b.t.Logf("stop %s: %v", b.name, err)
		}
	})
}

func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// findBinary returns the first of the candidates that exists (a bare name is looked up on
// PATH), or skips the test (fails it under REQUIRE_SERVICES=1).
func findBinary(t testing.TB, what string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if filepath.IsAbs(c) {
			if st, err := os.Stat(c); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return c
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	unavailable(t, "%s is not installed (looked for %v): private broker skipped", what, candidates)
	return ""
}

// NATS is a private nats-server with JetStream for one test, on a free loopback port with its
// store in a temporary directory: tests can stop and restart it without touching the machine's
// shared server. It is stopped when the test ends.
type NATS struct{ b *broker }

// StartNATS starts a private JetStream server. Without nats-server the test is skipped (failed
// under REQUIRE_SERVICES=1).
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	path := findBinary(t, "nats-server", "nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server")
	dir := t.TempDir()
	port := FreePort(t)
	b := &broker{
		t: t, name: "nats-server :" + strconv.Itoa(port), addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), path: path,
		args: []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "jetstream")},
		env:  []string{"PATH=" + os.Getenv("PATH")}, dir: dir, log: filepath.Join(dir, "nats-server.log"),
		stop: func(_ *broker, p *os.Process) error { return p.Signal(syscall.SIGTERM) },
	}
	b.register()
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	return &NATS{b: b}
}

// URL is the server's client URL (nats://127.0.0.1:port).
func (n *NATS) URL() string { return "nats://" + n.b.addr }

// Addr is the server's host:port.
func (n *NATS) Addr() string { return n.b.addr }

// Stop shuts the server down (SIGTERM: JetStream flushes its store) and waits until it has exited.
func (n *NATS) Stop(t testing.TB) {
	t.Helper()
	if err := n.b.halt(); err != nil {
		t.Fatal(err)
	}
}

// Start starts the server again on the same port and store, and waits for its port.
func (n *NATS) Start(t testing.TB) {
	t.Helper()
	if err := n.b.start(); err != nil {
		t.Fatal(err)
	}
}

// RabbitMQ is a private RabbitMQ node for one test: its own node name, AMQP and distribution
// ports on loopback, database, logs and Erlang cookie in a temporary directory, no plugins and
// none of the machine's configuration. Tests can stop and restart it without touching the
// machine's shared broker. It is stopped when the test ends. The guest/guest user exists
// (RabbitMQ's default, allowed from loopback).
type RabbitMQ struct {
	b    *broker
	node string
	ctl  string
}

// StartRabbitMQ starts a private RabbitMQ node (5-10 s). Without rabbitmq-server the test is
// skipped (failed under REQUIRE_SERVICES=1).
func StartRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	// Debian's /usr/sbin wrappers switch to the rabbitmq user when run as root; the scripts they
	// call run as whoever calls them, with the environment below.
	server := findBinary(t, "rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server")
	ctl := filepath.Join(filepath.Dir(server), "rabbitmqctl")
	dir := t.TempDir()
	port, dist := FreePort(t), FreePort(t)
	node := "t" + RandomHex(6) + "@localhost"
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir, // the Erlang cookie the node and rabbitmqctl share
		"RABBITMQ_NODENAME=" + node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(dist),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE=" + filepath.Join(dir, "rabbitmq.pid"),
		// None of the machine's configuration (its env file names the shared node and its
		// rabbitmq.conf its listener) and no plugins (management would take another port).
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_ENABLED_PLUGINS=",
	}
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &broker{
		t: t, name: "rabbitmq " + node, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), path: server,
		env: env, dir: dir, log: filepath.Join(dir, "rabbitmq-server.log"),
		stop: func(b *broker, p *os.Process) error {
			ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, ctl, "-n", node, "stop")
			cmd.Env, cmd.Dir = b.env, b.dir
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				_ = p.Signal(syscall.SIGTERM)
				return fmt.Errorf("rabbitmqctl stop: %w\n%s", err, out.String())
			}
			return nil
		},
	}
	b.register()
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	return &RabbitMQ{b: b, node: node, ctl: ctl}
}

// URL is the node's AMQP URL with the guest user (amqp://guest:guest@127.0.0.1:port/).
func (r *RabbitMQ) URL() string { return "amqp://guest:guest@" + r.b.addr + "/" }

// Addr is the node's AMQP host:port.
func (r *RabbitMQ) Addr() string { return r.b.addr }

// Stop shuts the node down (rabbitmqctl stop: durable queues and persistent messages are kept)
// and waits until it has exited.
func (r *RabbitMQ) Stop(t testing.TB) {
	t.Helper()
	if err := r.b.halt(); err != nil {
		t.Fatal(err)
	}
}

// Start starts the node again on the same ports and database, and waits for its AMQP port.
func (r *RabbitMQ) Start(t testing.TB) {
	t.Helper()
	if err := r.b.start(); err != nil {
		t.Fatal(err)
	}
}
