package activities

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyairtable/automation-domain/internal/tracing"
	"github.com/pyairtable/automation-domain/store"
)

// observeEndToEnd records, for each delivery of the batch that ended (succeeded or failed for
// good), the time since its message was created, with the message's trace id as exemplar.
func (a *Webhooks) observeEndToEnd(jobs []*sendJob, results []store.WebhookAttemptResult, applied []string) {
	if a.Metrics == nil || a.Metrics.EndToEndSeconds == nil {
		return
	}
	written := make(map[string]bool, len(applied))
	for _, id := range applied {
		written[id] = true
	}
	created := make(map[string]*sendJob, len(jobs))
	for _, j := range jobs {
		created[j.d.ID] = j
	}
	at := now()
	for _, r := range results {
		j := created[r.Attempt.DeliveryID]
		if !written[r.Attempt.DeliveryID] || r.Status == store.DeliveryPending || j == nil || j.created.IsZero() {
			continue
		}
		observeWithTrace(a.Metrics.EndToEndSeconds.WithLabelValues(r.Attempt.EndpointID, r.Status),
			at.Sub(j.created), j.traceParent)
	}
}

// observeWithTrace observes d, with the trace of traceparent as exemplar when there is one.
func observeWithTrace(o prometheus.Observer, d time.Duration, traceparent string) {
	v := max(d.Seconds(), 0)
	if sc := tracing.SpanContext(traceparent); sc.IsValid() && sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(v, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(v)
}
