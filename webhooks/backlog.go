package webhooks

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// maxBacklogEndpoints bounds the endpoints one scrape reports.
const maxBacklogEndpoints = 1000

var backlogDesc = prometheus.NewDesc("webhook_backlog_oldest_due_seconds",
	"Age of each endpoint's oldest due pending delivery (how far behind its sender is), by endpoint; endpoints with nothing due are absent.",
	[]string{"endpoint_id"}, nil)

var backlogEndpointsDesc = prometheus.NewDesc("webhook_backlog_endpoints",
	"Webhook endpoints with a due pending delivery.", nil, nil)

// BacklogCollector reports the webhook backlog of every tenant at each scrape (one query per
// endpoint with a due delivery, bounded by a 2 s timeout).
type BacklogCollector struct {
	Store *store.Store
	Now   func() time.Time
}

// NewBacklogCollector reads the backlog from st.
func NewBacklogCollector(st *store.Store) *BacklogCollector {
	return &BacklogCollector{Store: st, Now: time.Now}
}

// Describe implements prometheus.Collector.
func (c *BacklogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- backlogEndpointsDesc
}

// Collect implements prometheus.Collector.
func (c *BacklogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(tenant.System(context.Background()), 2*time.Second)
	defer cancel()
	now := c.Now()
	due, err := c.Store.WebhookBacklog(ctx, now, maxBacklogEndpoints)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(backlogDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(backlogEndpointsDesc, prometheus.GaugeValue, float64(len(due)))
	for id, at := range due {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, max(now.Sub(at).Seconds(), 0), id)
	}
}
