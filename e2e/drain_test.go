package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/testenv"
)

// TestAPIDrainsOnSIGTERM stops an API process the way Kubernetes or a load balancer does: on
// SIGTERM /ready answers 503 at once while every other request is still served for
// DRAIN_PERIOD; then the listener closes (new connections are refused) and the request in
// flight still gets its answer before the process exits.
func TestAPIDrainsOnSIGTERM(t *testing.T) {
	const drain = 3 * time.Second
	srv, err := devserver.Start(devserver.Options{
		DatabaseFile: t.TempDir() + "/temporal.db", FrontendPort: testenv.FreePort(t), Namespaces: []string{"automation"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	port := testenv.FreePort(t)
	env := map[string]string{
		"ENV": "production", "HOST": "127.0.0.1", "PORT": fmt.Sprint(port), "DATA_DIR": t.TempDir(),
		"DATABASE_URL": testenv.PostgresURL(t), "TEMPORAL_ADDRESS": srv.Address(),
		"INTERNAL_API_KEY": "drain-key", "JWT_SECRET_KEY": "j", "WEBHOOK_SECRET_KEY": "w",
		"DRAIN_PERIOD": drain.String(), "SHUTDOWN_TIMEOUT": "20s",
	}
	api := startProcess(t, "api", env)
	c := &call{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), key: env["INTERNAL_API_KEY"], header: http.Header{}}
	eventually(t, 90*time.Second, "the API to be ready", func() bool { return statusOf(c.base+"/ready") == 200 })

	// In flight across the whole shutdown: a ping that waits 6 s for a worker (none runs).
	inFlight := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", c.base+"/api/v1/diagnostics/ping", bytes.NewReader([]byte(`{"wait_seconds": 6}`)))
		req.Header.Set("X-API-Key", c.key)
		req.Header.Set("Content-Type", "application/json")
		res, err := contractClient(t, nil).Do(req)
		if err != nil {
			t.Errorf("the request in flight got no answer: %v", err)
			inFlight <- 0
			return
		}
		res.Body.Close()
		inFlight <- res.StatusCode
	}()
	time.Sleep(500 * time.Millisecond)

	termAt := time.Now()
	if err := api.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, drain, "/ready to answer 503 while draining", func() bool { return statusOf(c.base+"/ready") == 503 })
	if r := c.get("/api/v1/workflows"); r.Status != 200 {
		t.Errorf("a request while draining: %d %s", r.Status, r.Body)
	}
	if time.Since(termAt) >= drain {
		t.Fatalf("the checks during the drain took longer than the drain (%s)", drain)
	}
	// After the drain no new connection is accepted.
	eventually(t, 10*time.Second, "the listener to close", func() bool {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	if closed := time.Since(termAt); closed < drain {
		t.Errorf("the listener closed %s after SIGTERM, before the %s drain period", closed, drain)
	}
	select {
	case status := <-inFlight:
		if status != http.StatusAccepted {
			t.Errorf("the request in flight answered %d, want 202 (the ping still running)", status)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the request in flight never finished")
	}
	if err := api.Wait(20 * time.Second); err != nil {
		t.Errorf("the API did not exit cleanly: %v", err)
	}
}
