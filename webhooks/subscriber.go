package webhooks

import (
	"context"
	"encoding/json"

	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/store"
)

// Subscriber returns the events.Subscriber that fans every domain event out to the endpoints
// whose filter matches its type. The message takes the event's id, so the webhook-id a receiver
// sees is the event id and an event handed off twice is sent once.
func (s *Service) Subscriber() events.Subscriber { return eventSubscriber{s} }

type eventSubscriber struct{ s *Service }

func (eventSubscriber) Name() string { return "webhooks" }

// Immediate implements events.Immediate: the fan-out writes to the database and wakes senders
// without waiting for Temporal, so an accepted event's deliveries exist when its request ends
// (and an ordered endpoint gets events and messages in the order they were accepted).
func (eventSubscriber) Immediate() bool { return true }

// Deliver implements events.Subscriber: it returns once the deliveries are stored (a failure
// leaves the event to the bus's redispatch loop) and their senders are woken.
func (es eventSubscriber) Deliver(ctx context.Context, e store.Event) error {
	s := es.s
	var wake []string
	if existing, err := s.store.GetWebhookMessage(ctx, e.ID); err == nil {
		if _, wake, err = s.describe(ctx, existing); err != nil {
			return err
		}
	} else {
		endpoints, err := s.matching(ctx, e.Type, json.RawMessage(e.Data))
		if err != nil || len(endpoints) == 0 {
			return err
		}
		payload := json.RawMessage(e.Data)
		if len(payload) == 0 || !json.Valid(payload) {
			payload = json.RawMessage("{}")
		}
		m := store.WebhookMessage{ID: e.ID, EventType: e.Type, Payload: store.JSON(payload), Source: "event",
			CreatedAt: e.OccurredAt.UTC()}
		if m.CreatedAt.IsZero() {
			m.CreatedAt = s.now()
		}
		if _, wake, err = s.storeMessage(ctx, m, endpoints); err != nil {
			return err
		}
	}
	s.wake(ctx, wake)
	return nil
}
