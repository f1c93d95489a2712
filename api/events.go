package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Events: POST → events.Bus.Accept (the events table, then the webhook fan-out and the rules
// engine's evaluator workflows); reads → rules.Service (events with what the engine made of
// them).

type eventAccepted struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Source     string    `json:"source"`
	ReceivedAt time.Time `json:"received_at"`
	// Duplicate is set when an event with this id was accepted before: it is not evaluated again.
	Duplicate bool   `json:"duplicate"`
	URL       string `json:"url"`
}

// postEvent: POST /api/v1/events stores the event (durable from then on) and hands it to the
// rules engine and the webhook fan-out. 202; the same id again is accepted once.
func (s *Server) postEvent(c echo.Context) error {
	var in rules.EventInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	var problems validation.Problems
	e := in.Event("", false, &problems)
	if err := problems.Err(); err != nil {
		return err
	}
	stored, dup, err := s.events.Accept(c.Request().Context(), e)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, eventAccepted{
		ID: stored.ID, Type: stored.Type, Source: stored.Source, ReceivedAt: stored.ReceivedAt, Duplicate: dup,
		URL: "/api/v1/events/" + stored.ID,
	})
}

// listEvents: GET /api/v1/events?type=&source=&correlation_id=&limit=&cursor=
func (s *Server) listEvents(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	if !store.ValidEventCursor(page.Cursor) {
		return Unprocessable("cursor", "is not a cursor this service issued")
	}
	items, next, err := s.rules.ListEvents(c.Request().Context(), store.EventFilter{
		Type: c.QueryParam("type"), Source: c.QueryParam("source"), CorrelationID: c.QueryParam("correlation_id"),
	}, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// getEvent: GET /api/v1/events/{id} with every rule that considered it and what ran.
func (s *Server) getEvent(c echo.Context) error {
	e, err := s.rules.GetEvent(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "event", c.Param("id"))
	}
	return c.JSON(http.StatusOK, e)
}
