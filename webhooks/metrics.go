package webhooks

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook module's collectors, labelled by endpoint id where it matters.
type Metrics struct {
	// Messages counts messages accepted, by source (api, event, …).
	Messages *prometheus.CounterVec
	// Deliveries counts deliveries finished, by endpoint and outcome (succeeded, failed).
	Deliveries *prometheus.CounterVec
	// Attempts counts requests, by endpoint and outcome (succeeded, retrying, failed).
	Attempts *prometheus.CounterVec
	// AttemptSeconds is the latency of requests, by endpoint.
	AttemptSeconds *prometheus.HistogramVec
	// Disabled counts endpoints disabled automatically, by reason (gone, failing, failures).
	Disabled *prometheus.CounterVec
	// CircuitOpened counts circuit breaker trips, by endpoint.
	CircuitOpened *prometheus.CounterVec
	// EndToEndSeconds is the time from a message's creation to its delivery's end (succeeded or
	// failed for good), by endpoint and outcome, with the message's trace as exemplar.
	EndToEndSeconds *prometheus.HistogramVec
	// FilterErrors counts messages an endpoint's filter could not be evaluated on, by endpoint.
	FilterErrors *prometheus.CounterVec
}

// NewMetrics registers the collectors on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_messages_total", Help: "Webhook messages accepted for fan-out, by source.",
		}, []string{"source"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_deliveries_total", Help: "Webhook deliveries finished, by endpoint and outcome.",
		}, []string{"endpoint_id", "outcome"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_attempts_total", Help: "Webhook requests made, by endpoint and outcome.",
		}, []string{"endpoint_id", "outcome"}),
		AttemptSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "webhook_attempt_duration_seconds",
			Help:    "Latency of webhook requests, by endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"endpoint_id"}),
		Disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_endpoints_disabled_total", Help: "Webhook endpoints disabled automatically, by reason.",
		}, []string{"reason"}),
		CircuitOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_circuit_opened_total", Help: "Times an endpoint's circuit breaker opened, by endpoint.",
		}, []string{"endpoint_id"}),
		EndToEndSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "webhook_end_to_end_seconds",
			Help:    "Time from a webhook message's creation (an event's acceptance) to its delivery's end, by endpoint and outcome.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400},
			// Native histograms too, for scrapers that ask for them.
			NativeHistogramBucketFactor: 1.1,
		}, []string{"endpoint_id", "outcome"}),
		FilterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "webhook_filter_errors_total", Help: "Messages an endpoint's filter failed on (not delivered to it), by endpoint.",
		}, []string{"endpoint_id"}),
	}
	for _, c := range []prometheus.Collector{m.Messages, m.Deliveries, m.Attempts, m.AttemptSeconds, m.Disabled, m.CircuitOpened, m.EndToEndSeconds, m.FilterErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("webhooks: register metrics: %w", err)
		}
	}
	return m, nil
}
