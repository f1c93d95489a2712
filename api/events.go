package api

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// eventRequest is the body of POST /api/v1/events. CloudEvents 1.0 field names are accepted
// (specversion, time, datacontenttype) beside the seed's occurred_at.
type eventRequest struct {
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Source          string          `json:"source"`
	Subject         string          `json:"subject"`
	Data            json.RawMessage `json:"data"`
	OccurredAt      string          `json:"occurred_at"`
	Time            string          `json:"time"`
	SpecVersion     string          `json:"specversion"`
	DataContentType string          `json:"datacontenttype"`
}

var (
	eventIDPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	eventTypePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$`)
)

// toEvent validates the request (problems under prefix) and returns the event to publish.
// Reserved types and sources (automation.*, webhook/…) are refused unless sample is set (dry
// runs may imitate them).
func (r eventRequest) toEvent(prefix string, sample bool, problems *validation.Problems) store.Event {
	at := func(f string) string { return validation.Join(prefix, f) }
	e := store.Event{ID: r.ID, Type: r.Type, Source: r.Source, Subject: r.Subject}
	if r.ID != "" && !eventIDPattern.MatchString(r.ID) {
		problems.Add(at("id"), "must be 1-128 letters, digits and . _ : - (or left out to get one)")
	}
	switch {
	case r.Type == "":
		problems.Add(at("type"), "is required, e.g. user.created")
	case !eventTypePattern.MatchString(r.Type):
		problems.Add(at("type"), "must be letters, digits and . _ : / - (at most 200), e.g. user.created")
	case !sample && strings.HasPrefix(r.Type, "automation."):
		problems.Add(at("type"), "automation.* event types are reserved for the rules engine")
	}
	if e.Source == "" {
		e.Source = "api"
	}
	if len(e.Source) > 255 {
		problems.Add(at("source"), "must be at most 255 characters")
	}
	if !sample && (strings.HasPrefix(e.Source, rules.WebhookSourcePrefix) || strings.HasPrefix(e.Source, "automation/")) {
		problems.Add(at("source"), "%q and automation/ sources are reserved for events recorded by the service itself",
			rules.WebhookSourcePrefix)
	}
	if len(e.Subject) > 255 {
		problems.Add(at("subject"), "must be at most 255 characters")
	}
	if r.SpecVersion != "" && r.SpecVersion != "1.0" {
		problems.Add(at("specversion"), "must be 1.0 (CloudEvents), got %q", r.SpecVersion)
	}
	if r.DataContentType != "" {
		mt, _, err := mime.ParseMediaType(r.DataContentType)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			problems.Add(at("datacontenttype"), "must be application/json: data is a JSON object")
		}
	}
	for _, t := range []struct{ field, value string }{{"occurred_at", r.OccurredAt}, {"time", r.Time}} {
		if t.value == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, t.value)
		if err != nil {
			problems.Add(at(t.field), "must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
			continue
		}
		e.OccurredAt = ts.UTC()
	}
	data := bytes.TrimSpace(r.Data)
	switch {
	case len(data) == 0 || bytes.Equal(data, []byte("null")):
		e.Data = store.JSON("{}")
	case data[0] != '{':
		problems.Add(at("data"), "must be a JSON object")
	default:
		e.Data = store.JSON(data)
	}
	return e
}

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
	var req eventRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems validation.Problems
	e := req.toEvent("", false, &problems)
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

// eventSummary is an event in lists, with what the rules engine made of it.
type eventSummary struct {
	store.Event
	Evaluation *evaluationView `json:"evaluation"`
}

type evaluationView struct {
	// Status is evaluated or skipped; the evaluation is null while the event waits.
	Status       string    `json:"status"`
	Reason       string    `json:"reason,omitempty"`
	RulesMatched int       `json:"rules_fired"`
	EvaluatedAt  time.Time `json:"evaluated_at"`
}

func viewEvaluation(ev store.EventEvaluation) *evaluationView {
	return &evaluationView{Status: ev.Status, Reason: ev.Reason, RulesMatched: ev.RulesMatched, EvaluatedAt: ev.EvaluatedAt}
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
	ctx := c.Request().Context()
	items, next, err := s.store.ListEvents(ctx, store.EventFilter{
		Type: c.QueryParam("type"), Source: c.QueryParam("source"), CorrelationID: c.QueryParam("correlation_id"),
	}, page)
	if err != nil {
		return err
	}
	ids := make([]string, len(items))
	for i, e := range items {
		ids[i] = e.ID
	}
	evals, err := s.store.EventEvaluations(ctx, ids)
	if err != nil {
		return err
	}
	out := make([]eventSummary, len(items))
	for i, e := range items {
		out[i] = eventSummary{Event: e}
		if ev, ok := evals[e.ID]; ok {
			out[i].Evaluation = viewEvaluation(ev)
		}
	}
	return c.JSON(http.StatusOK, newPage(out, next))
}

// eventDetail is one event with every rule that considered it and what ran.
type eventDetail struct {
	store.Event
	Evaluation *evaluationView  `json:"evaluation"`
	Executions []executionView  `json:"executions"`
	Caused     []causedEventRef `json:"caused_events"`
}

type causedEventRef struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// getEvent: GET /api/v1/events/{id}
func (s *Server) getEvent(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	e, err := s.store.GetEvent(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return NotFound("event", id)
		}
		return err
	}
	out := eventDetail{Event: e, Executions: []executionView{}, Caused: []causedEventRef{}}
	if ev, err := s.store.GetEventEvaluation(ctx, id); err == nil {
		out.Evaluation = viewEvaluation(ev)
	} else if !isNotFound(err) {
		return err
	}
	execs, err := s.store.ExecutionsForEvent(ctx, id)
	if err != nil {
		return err
	}
	if out.Executions, err = s.executionViews(ctx, execs, false); err != nil {
		return err
	}
	for _, x := range out.Executions {
		for _, a := range x.Actions {
			var res struct {
				EventID string `json:"event_id"`
			}
			if a.Type == rules.ActionEmitEvent && json.Unmarshal(a.Result, &res) == nil && res.EventID != "" {
				out.Caused = append(out.Caused, causedEventRef{ID: res.EventID, Type: a.Rendered.EventType})
			}
		}
	}
	return c.JSON(http.StatusOK, out)
}
