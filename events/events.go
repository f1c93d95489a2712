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
	"sync"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
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

// Immediate is implemented by subscribers whose hand-off only writes to the database (the
// webhook fan-out): Accept runs them before it returns, so that what they store follows the
// order in which events were accepted, and runs the others (which wait on Temporal) after.
type Immediate interface {
	Subscriber
	Immediate() bool
}

func immediate(s Subscriber) bool {
	i, ok := s.(Immediate)
	return ok && i.Immediate()
}

// Bus stores and dispatches events. Subscribe every subscriber before the first Publish.
type Bus struct {
	store *store.Store
	log   *slog.Logger
	subs  []Subscriber
	now   func() time.Time
	// background counts the hand-offs Accept left running; slots bounds them.
	background sync.WaitGroup
	slots      chan struct{}
	checker    Checker
}

// Checker validates an event posted from outside before Accept stores it (the event catalog:
// its type's schema). An error refuses the event; validation.Problems are the caller's fault.
type Checker interface {
	CheckEvent(ctx context.Context, e store.Event) error
}

// SetChecker makes Accept check events with c first (before the first Accept).
func (b *Bus) SetChecker(c Checker) { b.checker = c }

// maxBackground bounds the hand-offs Accept runs at once; beyond it events wait for the
// redispatch loop (they are stored already).
const maxBackground = 1000

// NewBus returns a bus over st with no subscribers.
func NewBus(st *store.Store, log *slog.Logger) *Bus {
	return &Bus{store: st, log: log, now: func() time.Time { return time.Now().UTC() }, slots: make(chan struct{}, maxBackground)}
}

// Subscribe adds s.
func (b *Bus) Subscribe(s Subscriber) { b.subs = append(b.subs, s) }

// Publish stores e and hands it to the subscribers. Missing fields are filled: ID (a new UUIDv7),
// OccurredAt and ReceivedAt (now), CorrelationID (the event's own id). An id already stored is
// not stored again: duplicate is true and the stored event is returned (and handed off again only
// if its first hand-off did not finish). The error is non-nil only when the event could not be
// stored; a failed hand-off is logged and left to the redispatch loop.
func (b *Bus) Publish(ctx context.Context, e store.Event) (stored store.Event, duplicate bool, err error) {
	stored, duplicate, pending, err := b.record(ctx, e)
	if err == nil && pending {
		b.dispatch(ctx, stored)
	}
	return stored, duplicate, err
}

// Accept stores e as Publish does and hands it to the Immediate subscribers, and to the others
// in the background, so that the caller (an API request) waits for the database only: once
// Accept returns the event is durable, and the redispatch loop hands off what a crash or an
// outage (Temporal down) interrupted. Wait waits for the hand-offs still running.
func (b *Bus) Accept(ctx context.Context, e store.Event) (stored store.Event, duplicate bool, err error) {
	if b.checker != nil {
		if err := b.checker.CheckEvent(ctx, e); err != nil {
			return store.Event{}, false, err
		}
	}
	stored, duplicate, pending, err := b.record(ctx, e)
	if err != nil || !pending {
		return stored, duplicate, err
	}
	var now, later []Subscriber
	for _, s := range b.subs {
		if immediate(s) {
			now = append(now, s)
		} else {
			later = append(later, s)
		}
	}
	errs := b.deliver(ctx, stored, now)
	select {
	case b.slots <- struct{}{}:
	default:
		b.log.WarnContext(ctx, "too many event hand-offs running; this one waits for the redispatch loop", "event_id", stored.ID)
		return stored, duplicate, nil
	}
	b.background.Add(1)
	go func() {
		defer func() { <-b.slots; b.background.Done() }()
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		b.finish(hctx, stored, append(errs, b.deliver(hctx, stored, later)...))
	}()
	return stored, duplicate, nil
}

// Wait waits until the hand-offs Accept started are done, or ctx ends.
func (b *Bus) Wait(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		b.background.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// record stores e (see Publish); pending says whether it still has to be handed off.
func (b *Bus) record(ctx context.Context, e store.Event) (stored store.Event, duplicate, pending bool, err error) {
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
		return store.Event{}, false, false, fmt.Errorf("publish %s %s: %w", e.Type, e.ID, err)
	}
	if !inserted {
		existing, err := b.store.GetEvent(ctx, e.ID)
		if err != nil {
			return store.Event{}, true, false, fmt.Errorf("publish %s: %w", e.ID, err)
		}
		return existing, true, existing.DispatchedAt == nil, nil
	}
	return e, false, true, nil
}

// dispatch hands e to every subscriber and marks it dispatched when all of them took it.
// Subscribers act for the event's tenant: its rules, its endpoints.
func (b *Bus) dispatch(ctx context.Context, e store.Event) bool {
	if e.TenantID != "" {
		ctx = tenant.With(ctx, e.TenantID)
	}
	return b.finish(ctx, e, b.deliver(ctx, e, b.subs))
}

// deliver hands e to subs and returns their failures.
func (b *Bus) deliver(ctx context.Context, e store.Event, subs []Subscriber) []error {
	var errs []error
	for _, s := range subs {
		if err := s.Deliver(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
	}
	return errs
}

// finish marks e dispatched when no hand-off failed.
func (b *Bus) finish(ctx context.Context, e store.Event, errs []error) bool {
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
	// Every tenant's events; each is handed off as its tenant's (dispatch).
	pending, err := b.store.UndispatchedEvents(tenant.System(ctx), b.now().Add(-grace), limit)
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
