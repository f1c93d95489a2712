package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Workflow definitions: routes → engine.Service → store (workflows, workflow_versions) and
// Temporal Schedules.

// listWorkflows: GET /api/v1/workflows?name=&trigger_type=&enabled=&limit=&cursor=
func (s *Server) listWorkflows(c echo.Context) error {
	var problems validation.Problems
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	f := store.WorkflowFilter{
		Name:        c.QueryParam("name"),
		TriggerType: c.QueryParam("trigger_type"),
		Enabled:     boolParam(c, "enabled", &problems),
	}
	oneOf(&problems, "trigger_type", f.TriggerType, definition.TriggerTypes...)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.engine.ListWorkflows(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// createWorkflow: POST /api/v1/workflows with a definition → 201.
func (s *Server) createWorkflow(c echo.Context) error {
	var d definition.Definition
	if err := decodeJSON(c, &d); err != nil {
		return err
	}
	w, err := s.engine.CreateWorkflow(c.Request().Context(), d)
	if err != nil {
		return engineError(err)
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/workflows/"+w.ID)
	return c.JSON(http.StatusCreated, w)
}

// getWorkflow: GET /api/v1/workflows/{id}.
func (s *Server) getWorkflow(c echo.Context) error {
	w, err := s.engine.GetWorkflow(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "workflow", c.Param("id"))
	}
	return c.JSON(http.StatusOK, w)
}

// updateWorkflow: PUT /api/v1/workflows/{id} with the whole definition → a new version.
func (s *Server) updateWorkflow(c echo.Context) error {
	var d definition.Definition
	if err := decodeJSON(c, &d); err != nil {
		return err
	}
	w, err := s.engine.UpdateWorkflow(c.Request().Context(), c.Param("id"), d)
	if err != nil {
		return notFoundAs(engineError(err), "workflow", c.Param("id"))
	}
	return c.JSON(http.StatusOK, w)
}

// deleteWorkflow: DELETE /api/v1/workflows/{id} → 204.
func (s *Server) deleteWorkflow(c echo.Context) error {
	if err := s.engine.DeleteWorkflow(c.Request().Context(), c.Param("id")); err != nil {
		return notFoundAs(err, "workflow", c.Param("id"))
	}
	return c.NoContent(http.StatusNoContent)
}

// listWorkflowVersions: GET /api/v1/workflows/{id}/versions, newest first.
func (s *Server) listWorkflowVersions(c echo.Context) error {
	items, err := s.engine.Versions(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "workflow", c.Param("id"))
	}
	return c.JSON(http.StatusOK, newPage(items, ""))
}

// getWorkflowVersion: GET /api/v1/workflows/{id}/versions/{version}.
func (s *Server) getWorkflowVersion(c echo.Context) error {
	n, err := strconv.Atoi(c.Param("version"))
	if err != nil || n < 1 {
		return Unprocessable("version", "must be a positive integer, got %q", c.Param("version"))
	}
	v, err := s.engine.GetVersion(c.Request().Context(), c.Param("id"), n)
	if err != nil {
		return notFoundAs(err, "workflow version", c.Param("id")+"@"+c.Param("version"))
	}
	return c.JSON(http.StatusOK, v)
}

// pauseWorkflow: POST /api/v1/workflows/{id}/pause pauses the definition's Schedule.
func (s *Server) pauseWorkflow(c echo.Context) error { return s.setPaused(c, true) }

// resumeWorkflow: POST /api/v1/workflows/{id}/resume resumes it.
func (s *Server) resumeWorkflow(c echo.Context) error { return s.setPaused(c, false) }

func (s *Server) setPaused(c echo.Context, paused bool) error {
	w, err := s.engine.SetPaused(c.Request().Context(), c.Param("id"), paused)
	if err != nil {
		return notFoundAs(engineError(err), "workflow", c.Param("id"))
	}
	return c.JSON(http.StatusOK, w)
}

// engineError maps the engine's refusals onto 409.
func engineError(err error) error {
	var e *engine.Error
	if errors.As(err, &e) {
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: e.Msg}
	}
	return err
}

// notFoundAs names the missing resource in a 404.
func notFoundAs(err error, kind, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return NotFound(kind, id)
	}
	return err
}
