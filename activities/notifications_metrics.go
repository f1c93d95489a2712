package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/internal/tracing"
)

// NotificationMetrics count the notification deliveries' sends and time them from the
// notification's creation (the request or event that asked for it) to the send.
type NotificationMetrics struct {
	sends    *prometheus.CounterVec
	endToEnd *prometheus.HistogramVec
}

// NewNotificationMetrics registers the collectors on reg.
func NewNotificationMetrics(reg prometheus.Registerer) (*NotificationMetrics, error) {
	m := &NotificationMetrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "notification_sends_total",
			Help: "Notification delivery attempts, by channel and outcome (sent, retrying, failed).",
		}, []string{"channel", "outcome"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "notification_end_to_end_seconds",
			Help:                        "Time from a notification's creation (a request or an event accepted) to its send, by channel.",
			Buckets:                     []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400},
			NativeHistogramBucketFactor: 1.1,
		}, []string{"channel"}),
	}
	for _, c := range []prometheus.Collector{m.sends, m.endToEnd} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("notification metrics: %w", err)
		}
	}
	return m, nil
}

// observe records one delivery attempt's outcome; created is when its notification was.
func (m *NotificationMetrics) observe(ctx context.Context, channel string, created time.Time, res DeliverResult, err error) {
	if m == nil || res.ThrottledFor > 0 || res.AlreadySent {
		return
	}
	switch {
	case err == nil:
		m.sends.WithLabelValues(channel, "sent").Inc()
		if created.IsZero() {
			return
		}
		o := m.endToEnd.WithLabelValues(channel)
		v := max(time.Since(created).Seconds(), 0)
		if traceID, _ := tracing.IDs(ctx); traceID != "" {
			if eo, ok := o.(prometheus.ExemplarObserver); ok {
				eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": traceID})
				return
			}
		}
		o.Observe(v)
	case isNonRetryable(err):
		m.sends.WithLabelValues(channel, "failed").Inc()
	default:
		m.sends.WithLabelValues(channel, "retrying").Inc()
	}
}

func isNonRetryable(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.NonRetryable()
}
