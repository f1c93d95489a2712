package webhooks

import (
	"context"
	"encoding/json"
	"math"
	"sort"
	"time"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// TestSend asks for a test message to one endpoint (POST /webhooks/endpoints/{id}/test).
type TestSend struct {
	EventType string `json:"event_type"`
	// Payload is sent as the message's data; absent, the event type's example from the catalog,
	// or {"test": true} when it has none.
	Payload json.RawMessage `json:"payload"`
}

// SendTest sends a test message of the chosen type to the endpoint only (its event types and
// filter are not applied; its transform is). The payload is checked against the type's schema
// like any other message.
func (s *Service) SendTest(ctx context.Context, id string, in TestSend) (Message, error) {
	e, err := s.store.GetWebhookEndpoint(ctx, id)
	if err != nil {
		return Message{}, err
	}
	if !e.Enabled {
		return Message{}, ErrEndpointDisabled
	}
	payload := in.Payload
	if len(payload) == 0 || string(payload) == "null" {
		payload = json.RawMessage(`{"test":true}`)
		if s.catalog != nil && ValidEventType(in.EventType) == "" {
			if t, err := s.catalog.Get(ctx, in.EventType); err == nil && len(t.Example) > 0 {
				payload = t.Example
			}
		}
	}
	return s.Deliver(ctx, DeliverRequest{EventType: in.EventType, Payload: payload, EndpointIDs: []string{id}, Source: "test"})
}

// EndpointStats are an endpoint's figures over a window.
type EndpointStats struct {
	EndpointID string    `json:"endpoint_id"`
	Window     string    `json:"window"`
	Since      time.Time `json:"since"`
	// Attempts counts the finished requests started in the window; SuccessRate is the share
	// that succeeded (null without attempts).
	Attempts    int      `json:"attempts"`
	Succeeded   int      `json:"succeeded"`
	Failed      int      `json:"failed"`
	SuccessRate *float64 `json:"success_rate"`
	// LatencyMS are the requests' duration percentiles (null without attempts).
	LatencyMS struct {
		P50 *float64 `json:"p50"`
		P99 *float64 `json:"p99"`
	} `json:"latency_ms"`
	// Backlog counts the deliveries pending now; OldestPendingAt is when the oldest was created.
	Backlog         int64      `json:"backlog"`
	OldestPendingAt *time.Time `json:"oldest_pending_at,omitempty"`
}

// MaxStatsWindow bounds the window of endpoint statistics.
const MaxStatsWindow = 30 * 24 * time.Hour

// Stats computes the endpoint's statistics over the window ending now.
func (s *Service) Stats(ctx context.Context, id string, window time.Duration) (EndpointStats, error) {
	if window <= 0 || window > MaxStatsWindow {
		var p validation.Problems
		p.Add("window", "must be a duration from 1s to 720h such as \"1h\"")
		return EndpointStats{}, p
	}
	if _, err := s.store.GetWebhookEndpoint(ctx, id); err != nil {
		return EndpointStats{}, err
	}
	since := s.now().Add(-window)
	rows, err := s.store.WebhookEndpointStats(ctx, id, since)
	if err != nil {
		return EndpointStats{}, err
	}
	out := EndpointStats{EndpointID: id, Window: window.String(), Since: since, Attempts: len(rows.Attempts),
		Backlog: rows.Pending, OldestPendingAt: rows.OldestPendingAt}
	durations := make([]float64, 0, len(rows.Attempts))
	for _, a := range rows.Attempts {
		if a.Outcome == store.AttemptSucceeded {
			out.Succeeded++
		} else {
			out.Failed++
		}
		durations = append(durations, a.DurationMS)
	}
	if len(durations) > 0 {
		rate := float64(out.Succeeded) / float64(len(durations))
		out.SuccessRate = &rate
		sort.Float64s(durations)
		p50, p99 := percentile(durations, 0.50), percentile(durations, 0.99)
		out.LatencyMS.P50, out.LatencyMS.P99 = &p50, &p99
	}
	return out, nil
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, q float64) float64 {
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
