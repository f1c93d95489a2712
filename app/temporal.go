package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
// SDK's 10 s of retries. After two such calls in a row got no answer, they fail at once for a
// second (then one goes through to see whether Temporal is back), so that an outage costs a
// request milliseconds, not the timeout. Callers that may wait longer (background hand-offs,
// activities) set their own deadlines and are left alone.
type rpcDeadline struct {
	interceptor.ClientInterceptorBase
	timeout time.Duration
	circuit *temporalCircuit
}

func (r *rpcDeadline) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &rpcDeadlineOutbound{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next},
		timeout: r.timeout, circuit: r.circuit}
}

type rpcDeadlineOutbound struct {
	interceptor.ClientOutboundInterceptorBase
	timeout time.Duration
	circuit *temporalCircuit
}

// temporalCircuit remembers that Temporal does not answer.
type temporalCircuit struct {
	up prometheus.Gauge

	mu        sync.Mutex
	failures  int
	openSince time.Time
	retryAt   time.Time
	probing   bool
}

const (
	temporalCircuitThreshold = 2
	temporalCircuitCooldown  = time.Second
)

func newTemporalCircuit(reg prometheus.Registerer) (*temporalCircuit, error) {
	c := &temporalCircuit{up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "automation_temporal_up",
		Help: "1 while Temporal answers this process's calls, 0 while they fail at once (its circuit is open)."})}
	c.up.Set(1)
	if reg != nil {
		if err := reg.Register(c.up); err != nil {
			return nil, fmt.Errorf("temporal metrics: %w", err)
		}
	}
	return c, nil
}

// admit says whether a call may go to Temporal; the error says why not.
func (c *temporalCircuit) admit() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.openSince.IsZero() {
		return nil
	}
	if c.probing || time.Now().Before(c.retryAt) {
		return serviceerror.NewUnavailable(fmt.Sprintf("temporal has not answered since %s", c.openSince.UTC().Format(time.RFC3339)))
	}
	c.probing = true
	return nil
}

// done records whether Temporal answered (nil: the call says nothing either way).
func (c *temporalCircuit) done(answered *bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probing = false
	if answered == nil {
		return
	}
	if *answered {
		c.failures, c.openSince = 0, time.Time{}
		c.up.Set(1)
		return
	}
	c.failures++
	if c.failures >= temporalCircuitThreshold || !c.openSince.IsZero() {
		if c.openSince.IsZero() {
			c.openSince = time.Now()
		}
		c.retryAt = time.Now().Add(temporalCircuitCooldown)
		c.up.Set(0)
	}
}

// call runs fn under the deadline (and the circuit) when ctx has no deadline of its own, and
// says so in the error when the deadline passed.
func call[T any](o *rpcDeadlineOutbound, ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); ok {
		return fn(ctx)
	}
	if err := o.circuit.admit(); err != nil {
		var zero T
		return zero, err
	}
	bounded, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	out, err := fn(bounded)
	var (
		unavailable *serviceerror.Unavailable
		deadline    *serviceerror.DeadlineExceeded
	)
	switch {
	case err != nil && ctx.Err() != nil:
		o.circuit.done(nil) // its caller gave up: that says nothing about Temporal
	case err != nil && (bounded.Err() != nil || errors.As(err, &unavailable) || errors.As(err, &deadline)):
		if !errors.As(err, &unavailable) {
			err = serviceerror.NewUnavailable(fmt.Sprintf("temporal did not answer within %s (TEMPORAL_RPC_TIMEOUT): %v", o.timeout, err))
		}
		answered := false
		o.circuit.done(&answered)
	default:
		answered := true // an answer, even an error of Temporal's own
		o.circuit.done(&answered)
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
