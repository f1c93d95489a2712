package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Rule executions: routes → rules.Service → the automation_executions and
// automation_action_outcomes tables the rules engine's activities write.

// listRuleExecutions: GET /api/v1/automation/rules/{id}/executions?status=&event_id=&limit=&cursor=
func (s *Server) listRuleExecutions(c echo.Context) error {
	id := c.Param("id")
	f := store.RuleExecutionFilter{RuleID: id, Status: c.QueryParam("status"), EventID: c.QueryParam("event_id")}
	// A missing rule is a 404 before the query is judged.
	if err := s.rules.RuleExisted(c.Request().Context(), id); err != nil {
		return notFoundAs(err, "rule", id)
	}
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	var problems validation.Problems
	oneOf(&problems, "status", f.Status, rules.ExecutionStatuses()...)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.rules.ListExecutions(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// getRuleExecution: GET /api/v1/automation/executions/{id} — the event, every condition with its
// actual value, and every action with status, attempts, timings, result or error.
func (s *Server) getRuleExecution(c echo.Context) error {
	x, err := s.rules.GetExecution(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "execution", c.Param("id"))
	}
	return c.JSON(http.StatusOK, x)
}
