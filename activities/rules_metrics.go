package activities

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RulesMetrics count what the rules engine decides and does. A nil *RulesMetrics records
// nothing.
type RulesMetrics struct {
	events     *prometheus.CounterVec
	executions *prometheus.CounterVec
	actions    *prometheus.CounterVec
	latency    prometheus.Histogram
}

// NewRulesMetrics registers the rules engine's metrics on reg.
func NewRulesMetrics(reg prometheus.Registerer) *RulesMetrics {
	m := &RulesMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "automation_events_evaluated_total",
			Help: "Events taken by the rules engine, by outcome (evaluated, or skipped by loop prevention).",
		}, []string{"status"}),
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "automation_rule_decisions_total",
			Help: "Rule x event decisions, by status (running = fired, not_matched, skipped, error).",
		}, []string{"status"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "automation_action_attempts_total",
			Help: "Rule action attempts, by action type and status (succeeded, failed, retrying).",
		}, []string{"type", "status"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "automation_event_to_decision_seconds",
			Help:    "Time from an event's receipt to its evaluation by the rules engine.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
	reg.MustRegister(m.events, m.executions, m.actions, m.latency)
	return m
}

func (m *RulesMetrics) event(status string, receivedAt, now time.Time) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(status).Inc()
	m.latency.Observe(now.Sub(receivedAt).Seconds())
}

func (m *RulesMetrics) decision(status string) {
	if m != nil {
		m.executions.WithLabelValues(status).Inc()
	}
}

func (m *RulesMetrics) attempt(typ, status string) {
	if m != nil {
		m.actions.WithLabelValues(typ, status).Inc()
	}
}
