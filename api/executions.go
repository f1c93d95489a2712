package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Executions: routes → engine.Service → Temporal (start, cancel, terminate, signal, query) and
// the workflow_executions / workflow_execution_steps tables the interpreter's activities write.

type executeRequest struct {
	InputData map[string]any `json:"input_data"`
	Priority  string         `json:"priority"`
	// Version runs an older version of the definition (default: the current one).
	Version int `json:"version"`
}

// executionResponse is an execution with its links.
type executionResponse struct {
	store.Execution
	ExecutionID string `json:"execution_id"`
	TemporalURL string `json:"temporal_url,omitempty"`
	URL         string `json:"url"`
}

func (s *Server) executionResponse(e store.Execution) executionResponse {
	return executionResponse{Execution: e, ExecutionID: e.ID, URL: "/api/v1/executions/" + e.ID,
		TemporalURL: s.workflowURL(e.TemporalWorkflowID, e.TemporalRunID)}
}

// executeWorkflow: POST /api/v1/workflows/{id}/execute {"input_data", "priority"} with an
// optional Idempotency-Key → 202 once Temporal has accepted the run.
func (s *Server) executeWorkflow(c echo.Context) error {
	var req executeRequest
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	if req.Version < 0 {
		return Unprocessable("version", "must be a positive integer")
	}
	e, err := s.engine.Execute(c.Request().Context(), engine.ExecuteRequest{
		DefinitionID: c.Param("id"), Input: req.InputData, Priority: req.Priority,
		IdempotencyKey: c.Request().Header.Get("Idempotency-Key"), Version: req.Version, TriggeredBy: "api",
	})
	if err != nil {
		return notFoundAs(engineError(err), "workflow", c.Param("id"))
	}
	return s.executionAccepted(c, e)
}

func (s *Server) executionAccepted(c echo.Context, e engine.Execution) error {
	if e.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/executions/"+e.ID)
	return c.JSON(http.StatusAccepted, s.executionResponse(e.Execution))
}

// listExecutions: GET /api/v1/executions?workflow_id=&status=&created_after=&created_before=
func (s *Server) listExecutions(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	var problems validation.Problems
	f := store.ExecutionFilter{WorkflowID: c.QueryParam("workflow_id"), Status: c.QueryParam("status")}
	oneOf(&problems, "status", f.Status, store.ExecutionStatuses...)
	f.CreatedAfter = timeParam(c, "created_after", &problems)
	f.CreatedBefore = timeParam(c, "created_before", &problems)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.engine.ListExecutions(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	out := make([]executionResponse, len(items))
	for i, e := range items {
		out[i] = s.executionResponse(e)
	}
	return c.JSON(http.StatusOK, newPage(out, next))
}

type executionDetailResponse struct {
	engine.ExecutionDetail
	ExecutionID string `json:"execution_id"`
	TemporalURL string `json:"temporal_url,omitempty"`
}

// getExecution: GET /api/v1/executions/{id} with every step (live while it runs).
func (s *Server) getExecution(c echo.Context) error {
	d, err := s.engine.GetExecution(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "execution", c.Param("id"))
	}
	return c.JSON(http.StatusOK, executionDetailResponse{ExecutionDetail: d, ExecutionID: d.ID,
		TemporalURL: s.workflowURL(d.TemporalWorkflowID, d.TemporalRunID)})
}

// cancelExecution: POST /api/v1/executions/{id}/cancel → 202 (the interpreter records it).
func (s *Server) cancelExecution(c echo.Context) error {
	e, err := s.engine.Cancel(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(engineError(err), "execution", c.Param("id"))
	}
	return c.JSON(http.StatusAccepted, s.executionResponse(e))
}

// terminateExecution: POST /api/v1/executions/{id}/terminate {"reason"} → 200.
func (s *Server) terminateExecution(c echo.Context) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	if len(req.Reason) > 1000 {
		return Unprocessable("reason", "must be at most 1000 characters")
	}
	e, err := s.engine.Terminate(c.Request().Context(), c.Param("id"), req.Reason)
	if err != nil {
		return notFoundAs(engineError(err), "execution", c.Param("id"))
	}
	return c.JSON(http.StatusOK, s.executionResponse(e))
}

// signalExecution: POST /api/v1/executions/{id}/signal/{name} with the payload as body → 202.
func (s *Server) signalExecution(c echo.Context) error {
	name := c.Param("name")
	if !validation.IsSignalName(name) {
		return Unprocessable("name", "must be 1-64 letters, digits, _, - or .")
	}
	var payload any
	if c.Request().ContentLength != 0 {
		var raw json.RawMessage
		if err := decodeJSON(c, &raw); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &payload); err != nil {
			return BadRequest("invalid JSON: %v", err)
		}
	}
	e, err := s.engine.Signal(c.Request().Context(), c.Param("id"), name, payload)
	if err != nil {
		return notFoundAs(engineError(err), "execution", c.Param("id"))
	}
	return c.JSON(http.StatusAccepted, map[string]any{"execution_id": e.ID, "signal": name, "status": "sent"})
}

// retryExecution: POST /api/v1/executions/{id}/retry → 202 with a new execution (same input
// and version).
func (s *Server) retryExecution(c echo.Context) error {
	e, err := s.engine.Retry(c.Request().Context(), c.Param("id"), c.Request().Header.Get("Idempotency-Key"))
	if err != nil {
		return notFoundAs(engineError(err), "execution", c.Param("id"))
	}
	return s.executionAccepted(c, e)
}
