package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Automation rules: routes → rules.Service → store (automation_rules, automation_rule_versions)
// and the Temporal Schedules of schedule triggers.

// createRule: POST /api/v1/automation/rules → 201 with the rule (version 1).
func (s *Server) createRule(c echo.Context) error {
	var raw json.RawMessage
	if err := decodeJSON(c, &raw); err != nil {
		return err
	}
	r, err := s.rules.CreateRule(c.Request().Context(), raw)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/api/v1/automation/rules/"+r.ID)
	return c.JSON(http.StatusCreated, r)
}

// listRules: GET /api/v1/automation/rules?enabled=&trigger_type=&name=&limit=&cursor=
func (s *Server) listRules(c echo.Context) error {
	var problems validation.Problems
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	f := store.RuleFilter{Name: c.QueryParam("name"), TriggerType: c.QueryParam("trigger_type"),
		Enabled: boolParam(c, "enabled", &problems)}
	oneOf(&problems, "trigger_type", f.TriggerType, rules.TriggerEvent, rules.TriggerSchedule, rules.TriggerWebhook)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.rules.ListRules(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// getRule: GET /api/v1/automation/rules/{id}
func (s *Server) getRule(c echo.Context) error {
	r, err := s.rules.GetRule(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "rule", c.Param("id"))
	}
	return c.JSON(http.StatusOK, r)
}

// replaceRule: PUT /api/v1/automation/rules/{id} replaces the definition; a changed definition
// is a new version, used from the next event on.
func (s *Server) replaceRule(c echo.Context) error {
	var raw json.RawMessage
	// A missing rule is a 404 before its body is judged.
	if _, err := s.rules.GetRule(c.Request().Context(), c.Param("id")); err != nil {
		return notFoundAs(err, "rule", c.Param("id"))
	}
	if err := decodeJSON(c, &raw); err != nil {
		return err
	}
	r, err := s.rules.ReplaceRule(c.Request().Context(), c.Param("id"), raw)
	if err != nil {
		return notFoundAs(err, "rule", c.Param("id"))
	}
	return c.JSON(http.StatusOK, r)
}

// deleteRule: DELETE /api/v1/automation/rules/{id} → 204. The rule stops at once; its history
// stays readable.
func (s *Server) deleteRule(c echo.Context) error {
	if err := s.rules.DeleteRule(c.Request().Context(), c.Param("id")); err != nil {
		return notFoundAs(err, "rule", c.Param("id"))
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) enableRule(c echo.Context) error  { return s.setEnabled(c, true) }
func (s *Server) disableRule(c echo.Context) error { return s.setEnabled(c, false) }

// setEnabled: POST /api/v1/automation/rules/{id}/enable and /disable (a schedule trigger's
// Schedule is paused while the rule is disabled).
func (s *Server) setEnabled(c echo.Context, enabled bool) error {
	r, err := s.rules.SetEnabled(c.Request().Context(), c.Param("id"), enabled)
	if err != nil {
		return notFoundAs(err, "rule", c.Param("id"))
	}
	return c.JSON(http.StatusOK, r)
}

// listRuleVersions: GET /api/v1/automation/rules/{id}/versions, newest first.
func (s *Server) listRuleVersions(c echo.Context) error {
	items, err := s.rules.Versions(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "rule", c.Param("id"))
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items})
}
