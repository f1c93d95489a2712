// Package diagnostics is the service's self-test: POST /api/v1/diagnostics/ping starts the ping
// workflow and waits for it, proving the path API → Temporal → worker → database.
package diagnostics

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/wire"
)

// PingWorkflow is the name the ping workflow is registered under (workflows.RegisterPlatform
// registers workflows.Ping by it).
const PingWorkflow = "Ping"

// PingInput is the ping workflow's argument.
type PingInput struct {
	Message string `json:"message"`
}

// PingResult reports which worker answered and how fast the database did.
type PingResult struct {
	Reply             string  `json:"reply"`
	Worker            string  `json:"worker"`
	DatabaseLatencyMS float64 `json:"database_latency_ms"`
}

// Run is a ping workflow started by Ping: Result is set once it completed within the wait.
type Run struct {
	WorkflowID string
	RunID      string
	Result     *PingResult
}

// Service starts ping workflows.
type Service struct {
	temporal  client.Client
	taskQueue string
}

// New returns the diagnostics service; the ping workflow runs on taskQueue.
func New(temporal client.Client, taskQueue string) *Service {
	return &Service{temporal: temporal, taskQueue: taskQueue}
}

// Ping starts the ping workflow with message and waits up to wait for its result. A run that
// has not finished by then (no worker polling?) is returned without a result and without error.
func (s *Service) Ping(ctx context.Context, message string, wait time.Duration) (Run, error) {
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       "ping-" + wire.NewID(),
		TaskQueue:                s.taskQueue,
		WorkflowExecutionTimeout: time.Minute,
	}, PingWorkflow, PingInput{Message: message})
	if err != nil {
		return Run{}, err
	}
	out := Run{WorkflowID: run.GetID(), RunID: run.GetRunID()}
	if wait <= 0 {
		return out, nil
	}
	deadline := time.Now().Add(wait)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var res PingResult
	err = run.Get(wctx, &res)
	switch {
	case err == nil:
		out.Result = &res
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(wctx.Err(), context.DeadlineExceeded) ||
		time.Until(deadline) < 100*time.Millisecond:
		// Not finished in time: running. (The server, told the deadline, may end the long poll a
		// moment before it passes here.)
	default:
		return out, err
	}
	return out, nil
}
