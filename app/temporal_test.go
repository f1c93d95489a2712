package app

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"google.golang.org/grpc"
)

// hungFrontend is a Temporal frontend that answers the client's start-up question and then
// hangs on every workflow start, as an overloaded or half-partitioned cluster does.
type hungFrontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
}

func (hungFrontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{Capabilities: &workflowservice.GetSystemInfoResponse_Capabilities{}}, nil
}

func (hungFrontend) StartWorkflowExecution(ctx context.Context, _ *workflowservice.StartWorkflowExecutionRequest) (*workflowservice.StartWorkflowExecutionResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Against a frontend that hangs, a start without a deadline of its own gives up after the RPC
// timeout, as Unavailable; one with a deadline keeps it.
func TestTemporalCallsWithoutADeadlineGetOne(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	workflowservice.RegisterWorkflowServiceServer(srv, hungFrontend{})
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	tc, err := client.NewLazyClient(client.Options{HostPort: l.Addr().String(), Logger: nopLogger{},
		Interceptors:      []interceptor.ClientInterceptor{&rpcDeadline{timeout: 200 * time.Millisecond}},
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
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
