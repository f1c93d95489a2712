package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/pyairtable/automation-domain/store"
)

// EventMeta is what conditions and templates see of an event besides its data, under the name
// "event": {{ event.type }}, event.depth > 2.
type EventMeta struct {
	ID            string         `expr:"id" json:"id"`
	Type          string         `expr:"type" json:"type"`
	Source        string         `expr:"source" json:"source"`
	Subject       string         `expr:"subject" json:"subject"`
	Time          string         `expr:"time" json:"time"`
	Depth         int            `expr:"depth" json:"depth"`
	CorrelationID string         `expr:"correlation_id" json:"correlation_id"`
	CausationID   string         `expr:"causation_id" json:"causation_id"`
	Data          map[string]any `expr:"data" json:"data"`
}

// Scope is the set of names one event offers to conditions and templates: the top-level fields
// of its data (user.email for {"user": {"email": …}}) and "event" (EventMeta). "event" is
// reserved: a data field of that name stays reachable as event.data.event.
type Scope struct {
	// Vars is the template and field-check view (event as a map).
	Vars map[string]any
	// exprVars is the expression view (event as EventMeta, so that its fields are type-checked).
	exprVars map[string]any
	// Data is the event's data as decoded (nil when it is not an object).
	Data map[string]any
	// Event is the event itself.
	Event store.Event
}

// NewScope decodes e's data and builds its scope. Data that is not a JSON object is reachable as
// event.data only.
func NewScope(e store.Event) (Scope, error) {
	var data map[string]any
	if len(e.Data) > 0 && !bytes.Equal(bytes.TrimSpace(e.Data), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(e.Data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return Scope{}, fmt.Errorf("event %s: data is not JSON: %w", e.ID, err)
		}
		data, _ = plainNumbers(v).(map[string]any)
	}
	meta := EventMeta{
		ID: e.ID, Type: e.Type, Source: e.Source, Subject: e.Subject,
		Time: e.OccurredAt.UTC().Format(time.RFC3339Nano), Depth: e.Depth,
		CorrelationID: e.CorrelationID, CausationID: e.CausationID, Data: data,
	}
	if meta.Data == nil {
		meta.Data = map[string]any{}
	}
	vars := make(map[string]any, len(data)+1)
	exprVars := make(map[string]any, len(data)+1)
	for k, v := range data {
		vars[k] = v
		exprVars[k] = v
	}
	vars["event"] = map[string]any{
		"id": meta.ID, "type": meta.Type, "source": meta.Source, "subject": meta.Subject, "time": meta.Time,
		"depth": meta.Depth, "correlation_id": meta.CorrelationID, "causation_id": meta.CausationID,
		"data": meta.Data,
	}
	exprVars["event"] = meta
	return Scope{Vars: vars, exprVars: exprVars, Data: data, Event: e}, nil
}

// plainNumbers turns the json.Numbers of a decoded document into int (when whole and in range)
// or float64, the types expressions and templates compute with.
func plainNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i)
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case map[string]any:
		for k, item := range x {
			x[k] = plainNumbers(item)
		}
		return x
	case []any:
		for i, item := range x {
			x[i] = plainNumbers(item)
		}
		return x
	}
	return v
}
