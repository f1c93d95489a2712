package app

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/logging"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAPIWithoutTemporal runs the API against a Temporal address where nothing listens.
func startAPIWithoutTemporal(t *testing.T, ctx context.Context, wait string) (string, *syncBuffer, chan error) {
	t.Helper()
	cfg, err := config.LoadFrom(map[string]string{
		"ENV": "test", "DATA_DIR": t.TempDir(), "TEMPORAL_ADDRESS": fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"TEMPORAL_WAIT_TIMEOUT": wait, "INTERNAL_API_KEY": "k", "JWT_SECRET_KEY": "j", "WEBHOOK_SECRET_KEY": "w",
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, Logger: logging.New(logs, true, "info"), Version: "test", API: true, Listener: l})
	}()
	return "http://" + l.Addr().String(), logs, done
}

func TestRunWaitsForTemporalThenGivesUp(t *testing.T) {
	base, logs, done := startAPIWithoutTemporal(t, context.Background(), "3s")
	// While it waits, the API answers /live and refuses /ready.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "waiting for temporal to answer") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if res, err := http.Get(base + "/live"); err != nil || res.StatusCode != 200 {
		t.Errorf("/live while waiting: %v %v", res, err)
	}
	if res, err := http.Get(base + "/ready"); err != nil || res.StatusCode != 503 {
		t.Errorf("/ready while waiting: %v %v", res, err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "TEMPORAL_WAIT_TIMEOUT") || !strings.Contains(err.Error(), "does not answer") {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not give up")
	}
	if _, err := http.Get(base + "/live"); err == nil {
		t.Error("the API still answers after Run gave up")
	}
}

func TestRunStoppedWhileWaitingIsACleanStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	_, logs, done := startAPIWithoutTemporal(t, ctx, "0")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `"attempt":1`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after a stop while waiting: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
}
