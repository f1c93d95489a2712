package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/webhooks"
	"github.com/pyairtable/automation-domain/workflows"
)

// Environment of the Temporal server helper process (see TestMain).
const (
	temporalHelperDB   = "E2E_TEMPORAL_HELPER_DB"
	temporalHelperPort = "E2E_TEMPORAL_HELPER_PORT"
)

// temporalHelperMain runs this test binary as a Temporal server when asked to (temporalServer
// starts it that way; TestMain calls it): the fault tests need a Temporal server in a process of
// its own that they can stop and start again without stopping themselves.
func temporalHelperMain() {
	if db := os.Getenv(temporalHelperDB); db != "" {
		os.Exit(runTemporalHelper(db, os.Getenv(temporalHelperPort)))
	}
}

// runTemporalHelper serves Temporal on port with its state in db until SIGTERM or SIGINT.
func runTemporalHelper(db, port string) int {
	p, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "temporal helper: port:", err)
		return 2
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	srv, err := devserver.Start(devserver.Options{DatabaseFile: db, FrontendPort: p, Namespaces: []string{"automation"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "temporal helper:", err)
		return 1
	}
	fmt.Println("temporal helper: serving on", srv.Address())
	<-stop
	srv.Stop()
	return 0
}

// temporalServer is a Temporal server (the embedded one, on SQLite) running in its own process,
// so that a test can kill it and start it again on the same port and state.
type temporalServer struct {
	t    *testing.T
	db   string
	port int
	proc *process
}

// startTemporalServer starts a Temporal server process and waits until it accepts connections.
func startTemporalServer(t *testing.T) *temporalServer {
	t.Helper()
	ts := &temporalServer{t: t, db: t.TempDir() + "/temporal.db", port: testenv.FreePort(t)}
	ts.Start()
	return ts
}

// Address is the frontend's host:port (TEMPORAL_ADDRESS).
func (ts *temporalServer) Address() string { return fmt.Sprintf("127.0.0.1:%d", ts.port) }

// Start starts the server process (again) and waits for its frontend.
func (ts *temporalServer) Start() {
	ts.t.Helper()
	self, err := os.Executable()
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.proc = startCommand(ts.t, "temporal", self, map[string]string{
		temporalHelperDB: ts.db, temporalHelperPort: strconv.Itoa(ts.port),
	})
	waitListening(ts.t, ts.Address(), 60*time.Second)
}

// Kill stops the server at once, as a crash or a network partition would.
func (ts *temporalServer) Kill() {
	ts.proc.Kill()
	ts.proc.Wait(30 * time.Second)
}

// redisServer is a private redis-server on a free port, for tests that stop Redis (the shared
// one on :6379 must never be stopped).
type redisServer struct {
	t    *testing.T
	port int
	proc *process
}

// startRedisServer starts a redis-server without persistence; the test is skipped (or fails
// under REQUIRE_SERVICES=1) when redis-server is not installed.
func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if testenv.Required() {
			t.Fatal("redis-server is not installed")
		}
		t.Skip("redis-server is not installed")
	}
	rs := &redisServer{t: t, port: testenv.FreePort(t)}
	rs.Start()
	return rs
}

// URL is REDIS_URL for this server.
func (rs *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", rs.port) }

// Start starts redis-server (again) on its port.
func (rs *redisServer) Start() {
	rs.t.Helper()
	path, _ := exec.LookPath("redis-server")
	rs.proc = startCommand(rs.t, "redis", path, nil,
		"--port", strconv.Itoa(rs.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	waitListening(rs.t, fmt.Sprintf("127.0.0.1:%d", rs.port), 20*time.Second)
}

// Kill stops the server at once.
func (rs *redisServer) Kill() {
	rs.proc.Kill()
	rs.proc.Wait(10 * time.Second)
}

// waitListening waits until something accepts TCP connections on addr.
func waitListening(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %v", addr, timeout)
}

// dumpHistory logs the events of every run of a workflow between from and to, one line per
// event with what explains a delay: task queues (sticky or not), attempts, identities, timeouts
// and causes.
func dumpHistory(t *testing.T, address, workflowID string, from, to time.Time) {
	t.Helper()
	tc, err := client.Dial(client.Options{HostPort: address, Namespace: "automation", Logger: quietLogger()})
	if err != nil {
		t.Logf("history of %s: %v", workflowID, err)
		return
	}
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runs, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", workflowID), PageSize: 1000})
	if err != nil {
		t.Logf("runs of %s: %v", workflowID, err)
		return
	}
	var b strings.Builder
	for i := len(runs.Executions) - 1; i >= 0; i-- {
		run := runs.Executions[i]
		if run.CloseTime != nil && run.CloseTime.AsTime().Before(from) || run.StartTime.AsTime().After(to) {
			continue
		}
		fmt.Fprintf(&b, "run %s (%s):\n", run.Execution.RunId, run.Status)
		it := tc.GetWorkflowHistory(ctx, workflowID, run.Execution.RunId, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				fmt.Fprintf(&b, "error: %v\n", err)
				break
			}
			if at := e.EventTime.AsTime(); !at.Before(from) && !at.After(to) {
				b.WriteString(describeEvent(e) + "\n")
			}
		}
	}
	t.Logf("history of %s from %s to %s:\n%s", workflowID, from.Format("15:04:05.000"), to.Format("15:04:05.000"), b.String())
}

func describeEvent(e *historypb.HistoryEvent) string {
	s := fmt.Sprintf("%4d %s %s", e.EventId, e.EventTime.AsTime().Local().Format("15:04:05.000"),
		strings.TrimPrefix(e.EventType.String(), "EVENT_TYPE_"))
	switch {
	case e.GetWorkflowTaskScheduledEventAttributes() != nil:
		a := e.GetWorkflowTaskScheduledEventAttributes()
		s += fmt.Sprintf(" queue=%s(%s) attempt=%d timeout=%s", a.TaskQueue.GetName(), a.TaskQueue.GetKind(),
			a.Attempt, a.StartToCloseTimeout.AsDuration())
	case e.GetWorkflowTaskStartedEventAttributes() != nil:
		s += " by=" + e.GetWorkflowTaskStartedEventAttributes().Identity
	case e.GetWorkflowTaskTimedOutEventAttributes() != nil:
		s += " " + e.GetWorkflowTaskTimedOutEventAttributes().TimeoutType.String()
	case e.GetWorkflowTaskFailedEventAttributes() != nil:
		a := e.GetWorkflowTaskFailedEventAttributes()
		s += fmt.Sprintf(" cause=%s by=%s %s", a.Cause, a.Identity, a.Failure.GetMessage())
	case e.GetWorkflowExecutionSignaledEventAttributes() != nil:
		s += " " + e.GetWorkflowExecutionSignaledEventAttributes().SignalName
	case e.GetActivityTaskScheduledEventAttributes() != nil:
		s += " " + e.GetActivityTaskScheduledEventAttributes().ActivityType.GetName()
	case e.GetActivityTaskStartedEventAttributes() != nil:
		a := e.GetActivityTaskStartedEventAttributes()
		s += fmt.Sprintf(" by=%s attempt=%d", a.Identity, a.Attempt)
	case e.GetActivityTaskTimedOutEventAttributes() != nil:
		s += " " + e.GetActivityTaskTimedOutEventAttributes().Failure.GetMessage()
	case e.GetActivityTaskFailedEventAttributes() != nil:
		s += " " + e.GetActivityTaskFailedEventAttributes().Failure.GetMessage()
	case e.GetTimerStartedEventAttributes() != nil:
		s += " " + e.GetTimerStartedEventAttributes().StartToFireTimeout.AsDuration().String()
	}
	return s
}

// replayDispatcherRuns replays every run of an endpoint's dispatcher against the current
// workflow code and returns the longest history. A run recorded here is what a deployment finds
// running: a change to WebhookDispatcher that would break it fails the test (guard such changes
// with workflow.GetVersion).
func replayDispatcherRuns(t *testing.T, address, endpointID string) *historypb.History {
	t.Helper()
	tc, err := client.Dial(client.Options{HostPort: address, Namespace: "automation", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := webhooks.DispatcherWorkflowID(endpointID)
	runs, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", id), PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var longest *historypb.History
	for _, run := range runs.Executions {
		hist := fetchHistory(t, tc, id, run.Execution.RunId)
		replayer := worker.NewWorkflowReplayer()
		replayer.RegisterWorkflow(workflows.WebhookDispatcher)
		if err := replayer.ReplayWorkflowHistory(nil, hist); err != nil {
			t.Errorf("dispatcher run %s (%d events) does not replay: %v", run.Execution.RunId, len(hist.Events), err)
		}
		if longest == nil || len(hist.Events) > len(longest.Events) {
			longest = hist
		}
	}
	return longest
}

// saveReplayFixture writes a history as a replay test fixture in workflows/testdata when
// UPDATE_REPLAY_HISTORY=1.
// fetchHistory reads a run's whole history (to replay it or save it as a fixture).
func fetchHistory(t *testing.T, tc client.Client, workflowID, runID string) *historypb.History {
	t.Helper()
	hist := &historypb.History{}
	it := tc.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	return hist
}

func saveReplayFixture(t *testing.T, hist *historypb.History, name string) {
	t.Helper()
	if os.Getenv("UPDATE_REPLAY_HISTORY") != "1" || hist == nil {
		return
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("../workflows/testdata/"+name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote the replay fixture %s (%d events)", name, len(hist.Events))
}
