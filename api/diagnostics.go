package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/diagnostics"
	"github.com/pyairtable/automation-domain/validation"
)

type pingRequest struct {
	Message string `json:"message"`
	// WaitSeconds bounds how long the call waits for the result (default 10, 0..60).
	WaitSeconds *int `json:"wait_seconds"`
}

type pingResponse struct {
	Status      string                  `json:"status"` // completed or running
	WorkflowID  string                  `json:"workflow_id"`
	RunID       string                  `json:"run_id"`
	Result      *diagnostics.PingResult `json:"result,omitempty"`
	DurationMS  float64                 `json:"duration_ms"`
	TemporalURL string                  `json:"temporal_url,omitempty"`
}

// ping: POST /api/v1/diagnostics/ping → diagnostics.Service.Ping, which starts the ping
// workflow and waits for it, proving the path API → Temporal → worker → database. 200 with the
// result, or 202 if it has not finished in time.
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
	start := time.Now()
	run, err := s.diagnostics.Ping(c.Request().Context(), req.Message, time.Duration(wait)*time.Second)
	if err != nil {
		return err
	}
	resp := pingResponse{Status: "running", WorkflowID: run.WorkflowID, RunID: run.RunID, Result: run.Result,
		TemporalURL: s.workflowURL(run.WorkflowID, run.RunID)}
	code := http.StatusAccepted
	if run.Result != nil {
		resp.Status, code = "completed", http.StatusOK
	}
	resp.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	return c.JSON(code, resp)
}
