package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pyairtable/automation-domain/internal/tracing"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// DeliverRequest asks for a message to be sent to every enabled endpoint whose filter matches
// its event type.
type DeliverRequest struct {
	EventType string
	// Payload is any JSON value, at most MaxPayloadBytes; it is sent as the "data" of the body.
	Payload json.RawMessage
	// IdempotencyKey makes a repeated request return the first one's message and send nothing
	// more (callers in workflows derive it from the run and step).
	IdempotencyKey string
	// EndpointIDs, when set, sends to these endpoints only (each must be enabled); their event
	// filters are not applied.
	EndpointIDs []string
	// Source names the caller in metrics and the message ("api" by default).
	Source string
}

// Message is an accepted message and where it goes.
type Message struct {
	ID             string          `json:"message_id"`
	EventType      string          `json:"event_type"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	Duplicate      bool            `json:"duplicate"`
	Deliveries     []DeliveryState `json:"deliveries"`
}

// DeliveryState is a delivery of a message in short.
type DeliveryState struct {
	ID         string `json:"id"`
	EndpointID string `json:"endpoint_id"`
	Status     string `json:"status"`
}

const maxIdempotencyKey = 255

// Deliver stores the message with a pending delivery per matching endpoint and wakes their
// senders (see wake); it does not wait for Temporal. Once it returns without error the message
// is durable: a dispatcher that was not woken (Temporal unreachable, a crash) is woken by the
// sweeper. A request repeating an idempotency key returns the first message with Duplicate set.
func (s *Service) Deliver(ctx context.Context, req DeliverRequest) (Message, error) {
	var p validation.Problems
	if msg := ValidEventType(req.EventType); msg != "" {
		p.Add("event_type", "%s", msg)
	}
	switch {
	case len(req.Payload) == 0:
		p.Add("payload", "is required (any JSON value)")
	case len(req.Payload) > MaxPayloadBytes:
		return Message{}, ErrPayloadTooLarge
	case !json.Valid(req.Payload):
		p.Add("payload", "must be valid JSON")
	}
	if len(req.IdempotencyKey) > maxIdempotencyKey {
		p.Add("idempotency_key", "must be at most %d characters", maxIdempotencyKey)
	}
	if err := p.Err(); err != nil {
		return Message{}, err
	}
	if err := s.checkPayload(ctx, req); err != nil {
		return Message{}, err
	}
	if req.IdempotencyKey != "" {
		if m, err := s.store.WebhookMessageByKey(ctx, req.IdempotencyKey); err == nil {
			return s.duplicate(ctx, m)
		} else if !errors.Is(err, store.ErrNotFound) {
			return Message{}, err
		}
	}
	endpoints, err := s.targets(ctx, req)
	if err != nil {
		return Message{}, err
	}
	source := req.Source
	if source == "" {
		source = "api"
	}
	m := store.WebhookMessage{ID: store.NewID(), EventType: req.EventType, Payload: store.JSON(req.Payload),
		Source: source, CreatedAt: s.now()}
	if req.IdempotencyKey != "" {
		m.IdempotencyKey = &req.IdempotencyKey
	}
	return s.fanOut(ctx, m, endpoints)
}

// targets are the endpoints a request goes to.
func (s *Service) targets(ctx context.Context, req DeliverRequest) ([]string, error) {
	if len(req.EndpointIDs) == 0 {
		return s.matching(ctx, req.EventType, req.Payload)
	}
	var p validation.Problems
	seen := map[string]bool{}
	var ids []string
	for i, id := range req.EndpointIDs {
		e, err := s.store.GetWebhookEndpoint(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			p.Add(validation.Index("endpoint_ids", i), "no endpoint %q", id)
		case err != nil:
			return nil, err
		case !e.Enabled:
			p.Add(validation.Index("endpoint_ids", i), "endpoint %q is disabled", id)
		case !seen[id]:
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, p.Err()
}

// matching returns the enabled endpoints whose event types accept eventType and whose filter
// (filter.go's passes) accepts the payload.
func (s *Service) matching(ctx context.Context, eventType string, payload json.RawMessage) ([]string, error) {
	all, err := s.store.EnabledWebhookEndpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("fan out %s: %w", eventType, err)
	}
	var ids []string
	for _, e := range all {
		var filters []string
		if json.Unmarshal(e.EventTypes, &filters) == nil && Matches(filters, eventType) && s.passes(ctx, e, eventType, payload) {
			ids = append(ids, e.ID)
		}
	}
	return ids, nil
}

// fanOut stores m with one delivery per endpoint and wakes the endpoints.
func (s *Service) fanOut(ctx context.Context, m store.WebhookMessage, endpointIDs []string) (Message, error) {
	out, wake, err := s.storeMessage(ctx, m, endpointIDs)
	if err != nil {
		return Message{}, err
	}
	s.wake(ctx, wake)
	return out, nil
}

// wake gets these endpoints' pending deliveries sent without waiting for Temporal: the sessions
// that hold them, in this process or another, are told at once (NOTIFY on Postgres); the
// dispatchers of the endpoints no session holds are signalled in the background. Nothing here
// fails the caller: the deliveries are stored, and the sweeper wakes whatever a lost wake-up
// left behind.
func (s *Service) wake(ctx context.Context, endpointIDs []string) {
	if len(endpointIDs) == 0 {
		return
	}
	// Sessions of this process are woken here and need nothing more: a session that ends after
	// this finds the delivery when it looks for due ones after letting go (see
	// senderSession.end). Only the others are looked up (and, on Postgres, notified).
	elsewhere := s.senders.WakeHeld(endpointIDs)
	if len(elsewhere) == 0 {
		return
	}
	if err := s.store.NotifyWebhookEndpoints(ctx, elsewhere); err != nil {
		s.log.WarnContext(ctx, "notify webhook senders", "endpoints", len(elsewhere), "error", err)
	}
	idle, err := s.store.WebhookEndpointsWithoutSender(ctx, elsewhere, s.now())
	if err != nil {
		s.log.WarnContext(ctx, "look up webhook senders; waking every dispatcher", "error", err)
		idle = elsewhere
	}
	s.waker.wakeLater(idle)
}

// storeMessage stores m with one pending delivery per endpoint and returns it with the
// endpoints to wake. When m's id or idempotency key is taken, the stored message is returned
// (Duplicate set) with its endpoints that still have it pending.
func (s *Service) storeMessage(ctx context.Context, m store.WebhookMessage, endpointIDs []string) (Message, []string, error) {
	if m.TraceParent == "" {
		m.TraceParent = tracing.TraceParent(ctx) // its sends continue the caller's trace
	}
	now := s.now()
	deliveries := make([]store.WebhookDelivery, len(endpointIDs))
	states := make([]DeliveryState, len(endpointIDs))
	for i, id := range endpointIDs {
		deliveries[i] = store.WebhookDelivery{
			ID: store.NewID(), MessageID: m.ID, EndpointID: id, EventType: m.EventType,
			Status: store.DeliveryPending, NextAttemptAt: &now, CreatedAt: now, UpdatedAt: now,
		}
		states[i] = DeliveryState{ID: deliveries[i].ID, EndpointID: id, Status: store.DeliveryPending}
	}
	created, err := s.accept.create(ctx, &m, deliveries)
	if err != nil {
		return Message{}, nil, fmt.Errorf("store message %s: %w", m.ID, err)
	}
	if !created {
		existing, err := s.store.GetWebhookMessage(ctx, m.ID)
		if errors.Is(err, store.ErrNotFound) && m.IdempotencyKey != nil {
			existing, err = s.store.WebhookMessageByKey(ctx, *m.IdempotencyKey)
		}
		if err != nil {
			return Message{}, nil, fmt.Errorf("load message %s: %w", m.ID, err)
		}
		return s.describe(ctx, existing)
	}
	s.metrics.Messages.WithLabelValues(m.Source).Inc()
	return Message{ID: m.ID, EventType: m.EventType, IdempotencyKey: deref(m.IdempotencyKey),
		CreatedAt: m.CreatedAt, Deliveries: states}, endpointIDs, nil
}

// duplicate describes a stored message again and wakes its endpoints that still have it
// pending (the first request may have stopped before it woke them).
func (s *Service) duplicate(ctx context.Context, m store.WebhookMessage) (Message, error) {
	out, pending, err := s.describe(ctx, m)
	if err != nil {
		return Message{}, err
	}
	s.wake(ctx, pending)
	return out, nil
}

// GetMessage returns a message with the current state of each of its deliveries (callers that
// sent it with Deliver can follow it to the end).
func (s *Service) GetMessage(ctx context.Context, id string) (Message, error) {
	m, err := s.store.GetWebhookMessage(ctx, id)
	if err != nil {
		return Message{}, err
	}
	out, _, err := s.describe(ctx, m)
	out.Duplicate = false
	return out, err
}

// describe returns a stored message as a duplicate, with the endpoints that still have it pending.
func (s *Service) describe(ctx context.Context, m store.WebhookMessage) (Message, []string, error) {
	ds, err := s.store.MessageWebhookDeliveries(ctx, m.ID)
	if err != nil {
		return Message{}, nil, err
	}
	out := Message{ID: m.ID, EventType: m.EventType, IdempotencyKey: deref(m.IdempotencyKey),
		CreatedAt: m.CreatedAt, Duplicate: true, Deliveries: make([]DeliveryState, len(ds))}
	var pending []string
	for i, d := range ds {
		out.Deliveries[i] = DeliveryState{ID: d.ID, EndpointID: d.EndpointID, Status: d.Status}
		if d.Status == store.DeliveryPending {
			pending = append(pending, d.EndpointID)
		}
	}
	return out, pending, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Delivery is a message on its way to one endpoint, as the API shows it.
type Delivery struct {
	ID             string     `json:"id"`
	MessageID      string     `json:"message_id"`
	EndpointID     string     `json:"endpoint_id"`
	EventType      string     `json:"event_type"`
	Status         string     `json:"status"`
	AttemptCount   int        `json:"attempt_count"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	LastStatusCode int        `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	CompletedAt    *time.Time `json:"completed_at,omitempty"`
}

// DeliveryDetail is a delivery with its payload and every attempt.
type DeliveryDetail struct {
	Delivery
	Payload  json.RawMessage `json:"payload"`
	Attempts []Attempt       `json:"attempts"`
}

// Attempt is one request of a delivery.
type Attempt struct {
	Attempt         int               `json:"attempt"`
	URL             string            `json:"url"`
	StartedAt       time.Time         `json:"started_at"`
	DurationMS      float64           `json:"duration_ms"`
	StatusCode      int               `json:"status_code,omitempty"`
	ResponseHeaders map[string]string `json:"response_headers"`
	ResponseBody    string            `json:"response_body,omitempty"`
	Error           string            `json:"error,omitempty"`
	// Outcome is succeeded, retrying or failed; started while the request is in flight, unknown
	// when its worker stopped before the response was recorded.
	Outcome string `json:"outcome"`
}

func deliveryView(d store.WebhookDelivery) Delivery {
	out := Delivery{
		ID: d.ID, MessageID: d.MessageID, EndpointID: d.EndpointID, EventType: d.EventType, Status: d.Status,
		AttemptCount: d.Attempts, LastStatusCode: d.LastStatusCode, LastError: d.LastError,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, CompletedAt: d.CompletedAt,
	}
	if d.Status == store.DeliveryPending {
		out.NextAttemptAt = d.NextAttemptAt
	}
	return out
}

// ListDeliveries returns a page of deliveries, newest first.
func (s *Service) ListDeliveries(ctx context.Context, f store.WebhookDeliveryFilter, p store.Page) ([]Delivery, string, error) {
	rows, next, err := s.store.ListWebhookDeliveries(ctx, f, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]Delivery, len(rows))
	for i, d := range rows {
		out[i] = deliveryView(d)
	}
	return out, next, nil
}

// GetDelivery returns a delivery with its payload and attempts.
func (s *Service) GetDelivery(ctx context.Context, id string) (DeliveryDetail, error) {
	d, err := s.store.GetWebhookDelivery(ctx, id)
	if err != nil {
		return DeliveryDetail{}, err
	}
	m, err := s.store.GetWebhookMessage(ctx, d.MessageID)
	if err != nil {
		return DeliveryDetail{}, fmt.Errorf("delivery %s: message: %w", id, err)
	}
	rows, err := s.store.WebhookDeliveryAttempts(ctx, id)
	if err != nil {
		return DeliveryDetail{}, err
	}
	out := DeliveryDetail{Delivery: deliveryView(d), Payload: json.RawMessage(m.Payload), Attempts: make([]Attempt, len(rows))}
	for i, a := range rows {
		out.Attempts[i] = Attempt{
			Attempt: a.Attempt, URL: a.URL, StartedAt: a.StartedAt, DurationMS: a.DurationMS,
			StatusCode: a.StatusCode, ResponseBody: a.ResponseBody, Error: a.Error, Outcome: a.Outcome,
		}
		_ = json.Unmarshal(a.ResponseHeaders, &out.Attempts[i].ResponseHeaders)
	}
	return out, nil
}

// ErrDeliveryPending refuses a retry of a delivery that is still on its way.
var ErrDeliveryPending = errors.New("the delivery is pending already")

// RetryDelivery sends a finished delivery again now, with a fresh retry schedule.
func (s *Service) RetryDelivery(ctx context.Context, id string) (Delivery, error) {
	d, err := s.store.GetWebhookDelivery(ctx, id)
	if err != nil {
		return Delivery{}, err
	}
	e, err := s.store.GetWebhookEndpoint(ctx, d.EndpointID)
	if errors.Is(err, store.ErrNotFound) {
		return Delivery{}, fmt.Errorf("%w: its endpoint was deleted", ErrEndpointDisabled)
	} else if err != nil {
		return Delivery{}, err
	}
	if !e.Enabled {
		return Delivery{}, ErrEndpointDisabled
	}
	if err := s.store.RequeueWebhookDelivery(ctx, id, s.now()); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return Delivery{}, ErrDeliveryPending
		}
		return Delivery{}, err
	}
	s.wake(ctx, []string{d.EndpointID})
	d, err = s.store.GetWebhookDelivery(ctx, id)
	return deliveryView(d), err
}
