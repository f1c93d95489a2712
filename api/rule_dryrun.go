package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Dry runs: routes → rules.Service (TestRule, TestInline); nothing is stored or sent.

// testRule: POST /api/v1/automation/rules/{id}/test with {"event": {...}} (or the event itself)
// → what the rule's current version would do: conditions with actual values, rendered actions.
func (s *Server) testRule(c echo.Context) error {
	if _, err := s.rules.GetRule(c.Request().Context(), c.Param("id")); err != nil {
		return notFoundAs(err, "rule", c.Param("id"))
	}
	var raw json.RawMessage
	if err := decodeJSON(c, &raw); err != nil {
		return err
	}
	res, err := s.rules.TestRule(c.Request().Context(), c.Param("id"), raw)
	if err != nil {
		return notFoundAs(err, "rule", c.Param("id"))
	}
	return c.JSON(http.StatusOK, res)
}

// testInlineRule: POST /api/v1/automation/test with {"rule": {...}, "event": {...}}: a rule
// that is not stored, validated like a new one, tried on the event.
func (s *Server) testInlineRule(c echo.Context) error {
	var body struct {
		Rule  json.RawMessage `json:"rule"`
		Event json.RawMessage `json:"event"`
	}
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	res, err := s.rules.TestInline(c.Request().Context(), body.Rule, body.Event)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}
