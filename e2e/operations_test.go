package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/testenv"
)

// TestNamespaceCreatedLate starts the API and the worker as separate processes against a
// Temporal server that does not have their namespace yet: both wait (logging a bounded back-off
// and what to do) with /live answering and /ready refusing, and carry on once an operator creates
// the namespace. A wait longer than TEMPORAL_WAIT_TIMEOUT ends the process with the fix.
func TestNamespaceCreatedLate(t *testing.T) {
	srv, err := devserver.Start(devserver.Options{
		DatabaseFile: t.TempDir() + "/temporal.db", FrontendPort: testenv.FreePort(t), Namespaces: []string{"default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	namespace := "late-" + testenv.RandomHex(4)
	dbURL := testenv.PostgresURL(t) // two processes migrating one SQLite file at once collide
	env := func(extra ...string) map[string]string {
		m := map[string]string{
			"ENV": "production", "HOST": "127.0.0.1", "DATA_DIR": t.TempDir(), "DATABASE_URL": dbURL,
			"TEMPORAL_ADDRESS": srv.Address(), "TEMPORAL_NAMESPACE": namespace,
			"INTERNAL_API_KEY": "key-" + testenv.RandomHex(8), "JWT_SECRET_KEY": "j", "WEBHOOK_SECRET_KEY": "w",
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}

	t.Run("gives up after TEMPORAL_WAIT_TIMEOUT naming the fix", func(t *testing.T) {
		p := startProcess(t, "worker", env("TEMPORAL_WAIT_TIMEOUT", "2s"))
		select {
		case err := <-p.done:
			out := p.out.String()
			if err == nil || !strings.Contains(out, "temporal operator namespace create --namespace "+namespace) ||
				!strings.Contains(out, "TEMPORAL_WAIT_TIMEOUT") {
				t.Errorf("exit %v, output:\n%s", err, out)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the worker did not give up")
		}
	})

	t.Run("waits, then runs once the namespace exists", func(t *testing.T) {
		apiEnv := env("PORT", fmt.Sprint(testenv.FreePort(t)))
		workerEnv := env("METRICS_PORT", fmt.Sprint(testenv.FreePort(t)))
		workerEnv["INTERNAL_API_KEY"] = apiEnv["INTERNAL_API_KEY"]
		api := startProcess(t, "api", apiEnv)
		worker := startProcess(t, "worker", workerEnv)
		apiURL := "http://127.0.0.1:" + apiEnv["PORT"]
		workerURL := "http://127.0.0.1:" + workerEnv["METRICS_PORT"]

		// Both wait: each has logged a second attempt, and neither exited.
		for _, p := range []*process{api, worker} {
			eventually(t, 60*time.Second, "a second wait for the namespace", func() bool {
				return strings.Contains(p.out.String(), `"attempt":2`)
			})
			select {
			case err := <-p.done:
				t.Fatalf("exited while waiting: %v\n%s", err, p.out.String())
			default:
			}
		}
		for _, base := range []string{apiURL, workerURL} {
			if code := status(t, base+"/live"); code != 200 {
				t.Errorf("%s/live while waiting: %d", base, code)
			}
			if code := status(t, base+"/ready"); code != 503 {
				t.Errorf("%s/ready while waiting: %d", base, code)
			}
		}
		waits := waitLines(t, worker.out.String())
		if len(waits) == 0 {
			t.Fatalf("no wait logged:\n%s", worker.out.String())
		}
		first := waits[0]
		if first["retry_in"] != "1s" || !strings.Contains(fmt.Sprint(first["fix"]), "temporal operator namespace create --namespace "+namespace) {
			t.Errorf("the wait line does not say when and what to do: %v", first)
		}
		if len(waits) > 1 && waits[1]["retry_in"] != "2s" {
			t.Errorf("no back-off: %v then %v", first, waits[1])
		}

		// An operator creates the namespace.
		tc, err := client.Dial(client.Options{HostPort: srv.Address(), Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		if _, err := tc.WorkflowService().RegisterNamespace(context.Background(), &workflowservice.RegisterNamespaceRequest{
			Namespace: namespace, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
		}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 90*time.Second, "both processes to be ready", func() bool {
			return status(t, apiURL+"/ready") == 200 && status(t, workerURL+"/ready") == 200
		})
		c := &call{t: t, base: apiURL, key: apiEnv["INTERNAL_API_KEY"], header: http.Header{}}
		var ping pingReply
		eventually(t, 60*time.Second, "the worker to answer a ping", func() bool {
			r := c.post("/api/v1/diagnostics/ping", map[string]any{"message": "late", "wait_seconds": 5})
			r.Decode(t, &ping)
			return r.Status == 200 && ping.Status == "completed"
		})
		if ping.Result.Reply != "pong: late" {
			t.Errorf("ping: %+v", ping)
		}
		t.Run("metrics", func(t *testing.T) {
			checkMetrics(t, apiURL+"/metrics", "automation-api")
			checkMetrics(t, workerURL+"/metrics", "automation-worker")
		})
		for _, p := range []*process{api, worker} {
			if !strings.Contains(p.out.String(), "temporal namespace is there") {
				t.Errorf("the end of the wait is not logged:\n%s", p.out.String())
			}
			if err := p.Terminate(30 * time.Second); err != nil {
				t.Errorf("SIGTERM: %v", err)
			}
		}
	})
}

func status(t *testing.T, url string) int {
	t.Helper()
	res, err := contractGet(t, url)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// waitLines are the JSON log lines of a process waiting for its namespace.
func waitLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "waiting for the temporal namespace to be created" {
			lines = append(lines, m)
		}
	}
	return lines
}

// checkMetrics scrapes a /metrics page and checks it the way Prometheus' tooling does: promtool
// check metrics passes (every metric has HELP text, names and types follow the conventions),
// no Temporal SDK metric lacks a description of ours, and target_info names the service.
func checkMetrics(t *testing.T, url, service string) {
	t.Helper()
	res, err := contractGet(t, url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	page := string(body)
	if !strings.Contains(page, "temporal_request_total{") {
		t.Errorf("%s has no Temporal SDK metrics:\n%.1000s", url, page)
	}
	var target string
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "target_info{") {
			target = line
		}
		if strings.HasPrefix(line, "# HELP temporal_") && strings.Contains(line, "not described here yet") {
			t.Errorf("undescribed SDK metric: %s", line)
		}
	}
	if !strings.Contains(target, `service_name="`+service+`"`) || !strings.Contains(target, `service_version="`) {
		t.Errorf("target_info of %s: %q, want service_name=%q", url, target, service)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if testenv.Required() {
			t.Fatal("promtool is not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("promtool is not installed: apt-get install prometheus")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics %s: %v\n%s", url, err, out)
	}
}
