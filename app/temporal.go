package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// temporalDialOptions reconnect to a Temporal frontend that was down within about a second of
// its return (gRPC's backoff would wait up to 10 s as the SDK sets it, 120 s by default).
func temporalDialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 5 * time.Second,
	})}
}

// rpcDeadline gives every workflow start, signal, cancel, terminate, query and update made
// without a deadline of its own (the API's requests) one of timeout: with Temporal down such a
// request fails after that long, as Unavailable (503 with Retry-After), instead of after the
// SDK's 10 s of retries. Callers that may wait longer (background hand-offs, activities) set
// their own deadlines and are left alone.
type rpcDeadline struct {
	interceptor.ClientInterceptorBase
	timeout time.Duration
}

func (r *rpcDeadline) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &rpcDeadlineOutbound{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}, timeout: r.timeout}
}

type rpcDeadlineOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	timeout time.Duration
}

// call runs fn under the deadline when ctx has none, and says so in the error when it passed.
func call[T any](o *rpcDeadlineOutbound, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); ok {
		return fn(ctx)
	}
	bounded, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	out, err := fn(bounded)
	if err != nil && ctx.Err() == nil && bounded.Err() != nil {
		var unavailable *serviceerror.Unavailable
		if !errors.As(err, &unavailable) {
			err = serviceerror.NewUnavailable(fmt.Sprintf("temporal did not answer within %s (TEMPORAL_RPC_TIMEOUT): %v", o.timeout, err))
		}
	}
	return out, err
}

func (o *rpcDeadlineOutbound) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	return call(o, ctx, func(ctx context.Context) (client.WorkflowRun, error) { return o.Next.ExecuteWorkflow(ctx, in) })
}

func (o *rpcDeadlineOutbound) SignalWorkflow(ctx context.Context, in *interceptor.ClientSignalWorkflowInput) error {
	_, err := call(o, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, o.Next.SignalWorkflow(ctx, in) })
	return err
}

func (o *rpcDeadlineOutbound) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	return call(o, ctx, func(ctx context.Context) (client.WorkflowRun, error) { return o.Next.SignalWithStartWorkflow(ctx, in) })
}

func (o *rpcDeadlineOutbound) CancelWorkflow(ctx context.Context, in *interceptor.ClientCancelWorkflowInput) error {
	_, err := call(o, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, o.Next.CancelWorkflow(ctx, in) })
	return err
}

func (o *rpcDeadlineOutbound) TerminateWorkflow(ctx context.Context, in *interceptor.ClientTerminateWorkflowInput) error {
	_, err := call(o, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, o.Next.TerminateWorkflow(ctx, in) })
	return err
}

func (o *rpcDeadlineOutbound) QueryWorkflow(ctx context.Context, in *interceptor.ClientQueryWorkflowInput) (converter.EncodedValue, error) {
	return call(o, ctx, func(ctx context.Context) (converter.EncodedValue, error) { return o.Next.QueryWorkflow(ctx, in) })
}

func (o *rpcDeadlineOutbound) CreateSchedule(ctx context.Context, in *interceptor.ScheduleClientCreateInput) (client.ScheduleHandle, error) {
	return call(o, ctx, func(ctx context.Context) (client.ScheduleHandle, error) { return o.Next.CreateSchedule(ctx, in) })
}
