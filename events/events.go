// Package events is the service's event bus. Producers (the API's event ingest, workflow
// activities emitting workflow.completed, notification.sent, …) Publish; the bus writes the event
// to the events table first — from then on it is durable — and hands it to every Subscriber
// (webhook fan-out, automation rules), each of which passes it on to durable Temporal work before
// returning. An event whose hand-off did not finish (a crash, Temporal down) is handed off again
// by the redispatch loop that worker processes run, so subscribers must accept an event id more
// than once.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pyairtable/automation-domain/store"
)

// Subscriber takes stored events.
type Subscriber interface {
	// Name identifies the subscriber in logs.
	Name() string
	// Deliver hands e to durable processing. It must be idempotent per e.ID: the same event may
	// come again after a crash.
	Deliver(ctx context.Context, e store.Event) error
}

// Bus stores and dispatches events. Subscribe every subscriber before the first Publish.
type Bus struct {
	store *store.Store
	log   *slog.Logger
	subs  []Subscriber
	now   func() time.Time
}

// NewBus returns a bus over st with no subscribers.
func NewBus(st *store.Store, log *slog.Logger) *Bus {
	return &Bus{store: st, log: log, now: func() time.Time { return time.Now().UTC() }}
}

// Subscribe adds s.
func (b *Bus) Subscribe(s Subscriber) { b.subs = append(b.subs, s) }

// Publish stores e and hands it to the subscribers. Missing fields are filled: ID (a new UUIDv7),
// OccurredAt and ReceivedAt (now), CorrelationID (the event's own id). An id already stored is
// not stored again: duplicate is true and the stored event is returned (and handed off again only
// if its first hand-off did not finish). The error is non-nil only when the event could not be
// stored; a failed hand-off is logged and left to the redispatch loop.
func (b *Bus) Publish(ctx context.Context, e store.Event) (stored store.Event, duplicate bool, err error) {
	now := b.now()
	if e.ID == "" {
		e.ID = store.NewID()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = now
	}
	e.OccurredAt = e.OccurredAt.UTC()
	e.ReceivedAt = now
	if e.CorrelationID == "" {
		e.CorrelationID = e.ID
	}
	if len(e.Data) == 0 {
		e.Data = store.JSON("{}")
	}
	e.DispatchedAt = nil
	inserted, err := b.store.InsertEvent(ctx, &e)
	if err != nil {
		return store.Event{}, false, fmt.Errorf("publish %s %s: %w", e.Type, e.ID, err)
	}
	if !inserted {
		existing, err := b.store.GetEvent(ctx, e.ID)
		if err != nil {
			return store.Event{}, true, fmt.Errorf("publish %s: %w", e.ID, err)
		}
		if existing.DispatchedAt == nil {
			b.dispatch(ctx, existing)
		}
		return existing, true, nil
	}
	b.dispatch(ctx, e)
	return e, false, nil
}

// dispatch hands e to every subscriber and marks it dispatched when all of them took it.
func (b *Bus) dispatch(ctx context.Context, e store.Event) bool {
	var errs []error
	for _, s := range b.subs {
		if err := s.Deliver(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		b.log.WarnContext(ctx, "event hand-off failed; the redispatch loop will retry",
			"event_id", e.ID, "type", e.Type, "error", err)
		return false
	}
	if err := b.store.MarkEventDispatched(ctx, e.ID, b.now()); err != nil {
		b.log.WarnContext(ctx, "mark event dispatched", "event_id", e.ID, "error", err)
		return false
	}
	return true
}

// Redispatch hands off again, oldest first, up to limit events stored more than grace ago and
// never fully handed off. It returns how many it completed.
func (b *Bus) Redispatch(ctx context.Context, grace time.Duration, limit int) (int, error) {
	pending, err := b.store.UndispatchedEvents(ctx, b.now().Add(-grace), limit)
	if err != nil {
		return 0, fmt.Errorf("redispatch: %w", err)
	}
	done := 0
	for _, e := range pending {
		if ctx.Err() != nil {
			break
		}
		if b.dispatch(ctx, e) {
			done++
		}
	}
	return done, nil
}

// RunRedispatcher calls Redispatch every interval until ctx ends. Grace keeps it from racing
// a Publish that is still handing the event off.
func (b *Bus) RunRedispatcher(ctx context.Context, interval, grace time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := b.Redispatch(ctx, grace, 500); err != nil {
				b.log.Warn("redispatch", "error", err)
			} else if n > 0 {
				b.log.Info("redispatched events", "count", n)
			}
		}
	}
}

// Caused returns a new event of typ produced while handling parent: it continues parent's
// causation chain (loop prevention counts Depth).
func Caused(parent store.Event, typ, source string, data store.JSON) store.Event {
	return store.Event{
		Type: typ, Source: source, Data: data,
		CausationID: parent.ID, CorrelationID: parent.CorrelationID, Depth: parent.Depth + 1,
	}
}
