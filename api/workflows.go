package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

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
	oneOf(&problems, "trigger_type", f.TriggerType, "manual", "event", "schedule", "webhook")
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.store.ListWorkflows(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}
