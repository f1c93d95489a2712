package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/validation"
	"github.com/pyairtable/automation-domain/workflows"
)

type pingRequest struct {
	Message string `json:"message"`
	// WaitSeconds bounds how long the call waits for the result (default 10, 0..60).
	WaitSeconds *int `json:"wait_seconds"`
}

type pingResponse struct {
	Status      string                 `json:"status"` // completed or running
	WorkflowID  string                 `json:"workflow_id"`
	RunID       string                 `json:"run_id"`
	Result      *activities.PingResult `json:"result,omitempty"`
	DurationMS  float64                `json:"duration_ms"`
	TemporalURL string                 `json:"temporal_url,omitempty"`
}

// ping: POST /api/v1/diagnostics/ping starts the ping workflow and waits for it, proving the path
// API → Temporal → worker → database. 200 with the result, or 202 if it has not finished in time.
func (s *Server) ping(c echo.Context) error {
	req := pingRequest{Message: "ping"}
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	wait := 10
	if req.WaitSeconds != nil {
		wait = *req.WaitSeconds
	}
	var problems validation.Problems
	if wait < 0 || wait > 60 {
		problems.Add("wait_seconds", "must be from 0 to 60")
	}
	if len(req.Message) > 1000 {
		problems.Add("message", "must be at most 1000 characters")
	}
	if err := problems.Err(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	start := time.Now()
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       "ping-" + newID(),
		TaskQueue:                workflows.TaskQueue,
		WorkflowExecutionTimeout: time.Minute,
	}, workflows.Ping, activities.PingInput{Message: req.Message})
	if err != nil {
		return err
	}
	resp := pingResponse{Status: "running", WorkflowID: run.GetID(), RunID: run.GetRunID(),
		TemporalURL: s.workflowURL(run.GetID(), run.GetRunID())}
	if wait > 0 {
		deadline := time.Now().Add(time.Duration(wait) * time.Second)
		wctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		var out activities.PingResult
		err := run.Get(wctx, &out)
		switch {
		case err == nil:
			resp.Status, resp.Result = "completed", &out
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(wctx.Err(), context.DeadlineExceeded) ||
			time.Until(deadline) < 100*time.Millisecond:
			// Not finished in time (no worker polling?): report it as accepted and running. (The
			// server, told the deadline, may end the long poll a moment before it passes here.)
		default:
			return err
		}
	}
	resp.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	code := http.StatusOK
	if resp.Status != "completed" {
		code = http.StatusAccepted
	}
	return c.JSON(code, resp)
}
