package app

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"google.golang.org/grpc"
)

// hungFrontend is a Temporal frontend that answers the client's start-up question and then, while
// hung, hangs on every workflow start, as an overloaded or half-partitioned cluster does.
type hungFrontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
	hung *atomic.Bool
}

func (hungFrontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{Capabilities: &workflowservice.GetSystemInfoResponse_Capabilities{}}, nil
}

func (f hungFrontend) StartWorkflowExecution(ctx context.Context, _ *workflowservice.StartWorkflowExecutionRequest) (*workflowservice.StartWorkflowExecutionResponse, error) {
	if !f.hung.Load() {
		return &workflowservice.StartWorkflowExecutionResponse{RunId: "run", Started: true}, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// Against a frontend that hangs, a start without a deadline of its own gives up after the RPC
// timeout, as Unavailable, and after two of those the next ones fail at once until Temporal
// answers again; a start with a deadline of its own keeps it.
func TestTemporalCallsWithoutADeadlineGetOne(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hung := &atomic.Bool{}
	hung.Store(true)
	srv := grpc.NewServer()
	workflowservice.RegisterWorkflowServiceServer(srv, hungFrontend{hung: hung})
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	circuit, err := newTemporalCircuit(nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := client.NewLazyClient(client.Options{HostPort: l.Addr().String(), Logger: nopLogger{},
		Interceptors:      []interceptor.ClientInterceptor{&rpcDeadline{timeout: 200 * time.Millisecond, circuit: circuit}},
		ConnectionOptions: client.ConnectionOptions{DialOptions: temporalDialOptions()}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	opts := client.StartWorkflowOptions{ID: "w", TaskQueue: "q"}
	_, err = tc.ExecuteWorkflow(context.Background(), opts, "Anything")
	var unavailable *serviceerror.Unavailable
	if !errors.As(err, &unavailable) || !strings.Contains(err.Error(), "TEMPORAL_RPC_TIMEOUT") {
		t.Fatalf("start without a deadline: %v, want Unavailable after TEMPORAL_RPC_TIMEOUT", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = tc.ExecuteWorkflow(ctx, opts, "Anything")
	if err == nil || strings.Contains(err.Error(), "TEMPORAL_RPC_TIMEOUT") || time.Since(start) < 500*time.Millisecond {
		t.Fatalf("a start with its own deadline was cut short: %v after %s", err, time.Since(start))
	}
	// Two calls without an answer in a row (the one with its own deadline does not count): the
	// next ones fail at once, without asking.
	if _, err := tc.ExecuteWorkflow(context.Background(), opts, "Anything"); !errors.As(err, &unavailable) ||
		!strings.Contains(err.Error(), "TEMPORAL_RPC_TIMEOUT") {
		t.Fatalf("the second start without a deadline: %v", err)
	}
	if _, err := tc.ExecuteWorkflow(context.Background(), opts, "Anything"); !errors.As(err, &unavailable) ||
		!strings.Contains(err.Error(), "has not answered since") {
		t.Fatalf("a start while Temporal does not answer: %v, want an immediate Unavailable", err)
	}
	// Once it answers again, the next call after the cool-down goes through and closes the circuit.
	hung.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err = tc.ExecuteWorkflow(context.Background(), opts, "Anything"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the circuit did not close once Temporal answered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := tc.ExecuteWorkflow(context.Background(), opts, "Anything"); err != nil {
		t.Errorf("a start after Temporal came back: %v", err)
	}
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
