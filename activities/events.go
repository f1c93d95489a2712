package activities

import (
	"context"
	"fmt"

	"github.com/pyairtable/automation-domain/events"
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
