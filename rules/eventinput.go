package rules

import (
	"bytes"
	"encoding/json"
	"mime"
	"regexp"
	"strings"
	"time"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// EventInput is an event as callers send it (the body of POST /api/v1/events, and the sample
// event of a dry run). CloudEvents 1.0 field names are accepted (specversion, time,
// datacontenttype) beside the seed's occurred_at.
type EventInput struct {
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
	eventIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
)

// The event types and sources only the service itself records.
const (
	reservedTypePrefix   = "automation."
	reservedSourcePrefix = "automation/"
)

// Event validates the input (problems under prefix) and returns the event to publish. The
// types and sources the service records itself (automation.*, webhook/…, automation/…) are
// refused unless sample is set (dry runs may imitate them).
func (r EventInput) Event(prefix string, sample bool, problems *validation.Problems) store.Event {
	at := func(f string) string { return validation.Join(prefix, f) }
	e := store.Event{ID: r.ID, Type: r.Type, Source: r.Source, Subject: r.Subject}
	if r.ID != "" && !eventIDPattern.MatchString(r.ID) {
		problems.Add(at("id"), "must be 1-128 letters, digits and . _ : - (or left out to get one)")
	}
	switch {
	case r.Type == "":
		problems.Add(at("type"), "is required, e.g. user.created")
	case !validation.IsEventType(r.Type):
		problems.Add(at("type"), "must be letters, digits and . _ : / - (at most 200), e.g. user.created")
	case !sample && strings.HasPrefix(r.Type, reservedTypePrefix):
		problems.Add(at("type"), "automation.* event types are reserved for the rules engine")
	}
	if e.Source == "" {
		e.Source = "api"
	}
	if len(e.Source) > 255 {
		problems.Add(at("source"), "must be at most 255 characters")
	}
	if !sample && (strings.HasPrefix(e.Source, WebhookSourcePrefix) || strings.HasPrefix(e.Source, reservedSourcePrefix)) {
		problems.Add(at("source"), "%q and automation/ sources are reserved for events recorded by the service itself",
			WebhookSourcePrefix)
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
