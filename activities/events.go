package activities

import (
	"context"
	"fmt"

	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/store"
)

// Events lets workflows emit domain events (workflow.completed, notification.sent, …).
type Events struct {
	Bus *events.Bus
}

// PublishInput is one event to emit. Workflows must set ID deterministically (e.g. from the
// workflow id and what happened) so that a retried activity does not emit it twice.
type PublishInput struct {
	Event store.Event `json:"event"`
}

// Publish stores and dispatches the event; a repeated id is accepted once.
func (a *Events) Publish(ctx context.Context, in PublishInput) error {
	if in.Event.ID == "" || in.Event.Type == "" {
		return fmt.Errorf("publish event: id and type are required")
	}
	if _, _, err := a.Bus.Publish(ctx, in.Event); err != nil {
		return fmt.Errorf("publish event %s: %w", in.Event.ID, err)
	}
	return nil
}

// ExecutionEvent is the PublishInput of a workflow execution's outcome event (workflow.completed,
// .failed, .cancelled) with id, about definition subject, continuing cause's chain if there is
// one. OccurredAt is left for the caller. Workflows call it: the JSON encoding of a map (whose
// keys it sorts) is deterministic.
func ExecutionEvent(id, eventType, subject string, data map[string]any, cause *ports.EventCause) PublishInput {
	e := store.Event{ID: id, Type: eventType, Source: "workflows", Subject: subject,
		Data: store.MustJSON(data)} //workflowcheck:ignore
	if cause != nil {
		e.CausationID, e.CorrelationID, e.Depth = cause.EventID, cause.CorrelationID, cause.Depth+1
	}
	return PublishInput{Event: e}
}
