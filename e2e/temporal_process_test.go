package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/internal/testenv"
)

// TestAutomationTemporalSubcommand runs `automation temporal`, the embedded Temporal server as a
// process of its own for an API and workers started apart from it: it serves the namespace and
// the Web UI, stops cleanly on SIGTERM, keeps its state across a restart and refuses to start
// when TEMPORAL_ADDRESS names another server.
func TestAutomationTemporalSubcommand(t *testing.T) {
	dataDir := t.TempDir()
	port, uiPort := testenv.FreePort(t), testenv.FreePort(t)
	env := map[string]string{
		"DATA_DIR": dataDir, "TEMPORAL_PORT": strconv.Itoa(port), "TEMPORAL_UI_PORT": strconv.Itoa(uiPort),
	}
	address := fmt.Sprintf("127.0.0.1:%d", port)
	start := func() *process {
		t.Helper()
		p := startCommand(t, "automation temporal", binary(t, "automation"), env, "temporal")
		waitListening(t, address, 90*time.Second)
		waitListening(t, fmt.Sprintf("127.0.0.1:%d", uiPort), 30*time.Second)
		return p
	}
	describe := func() error {
		tc, err := client.Dial(client.Options{HostPort: address, Namespace: "automation", Logger: quietLogger()})
		if err != nil {
			return err
		}
		defer tc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = tc.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "automation"})
		return err
	}

	p := start()
	t.Run("serves the namespace", func(t *testing.T) {
		if err := describe(); err != nil {
			t.Fatalf("describe namespace automation: %v", err)
		}
	})
	t.Run("serves the Web UI", func(t *testing.T) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", uiPort))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET / on the UI port: %d", resp.StatusCode)
		}
	})
	t.Run("stops on SIGTERM and keeps its state", func(t *testing.T) {
		if err := p.Terminate(60 * time.Second); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out.String())
		}
		if !strings.Contains(p.out.String(), "temporal server up") {
			t.Errorf("log lacks the start-up line:\n%s", p.out.String())
		}
		start()
		if err := describe(); err != nil {
			t.Fatalf("after a restart on the same DATA_DIR: %v", err)
		}
	})
	t.Run("refuses when TEMPORAL_ADDRESS is set", func(t *testing.T) {
		refused := startCommand(t, "automation temporal", binary(t, "automation"),
			map[string]string{"DATA_DIR": t.TempDir(), "TEMPORAL_ADDRESS": "127.0.0.1:1"}, "temporal")
		err := refused.Wait(30 * time.Second)
		if err == nil || err == errNoExit {
			t.Fatalf("want a failed exit, got %v", err)
		}
		if !strings.Contains(refused.out.String(), "TEMPORAL_ADDRESS is set") {
			t.Errorf("output does not say why:\n%s", refused.out.String())
		}
	})
}
