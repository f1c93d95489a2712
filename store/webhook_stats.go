package store

import (
	"context"
	"time"
)

// MaxStatsAttempts bounds the attempts WebhookEndpointStats reads for its latency figures.
const MaxStatsAttempts = 100000

// WebhookEndpointStatsRows are an endpoint's finished attempts started since a time (durations
// in milliseconds, up to MaxStatsAttempts of the newest, by outcome) and its pending deliveries.
type WebhookEndpointStatsRows struct {
	Attempts        []WebhookAttemptSample
	Pending         int64
	OldestPendingAt *time.Time
}

// WebhookAttemptSample is one attempt's outcome and duration.
type WebhookAttemptSample struct {
	Outcome    string
	DurationMS float64 `gorm:"column:duration_ms"`
}

// WebhookEndpointStats reads what an endpoint's statistics are computed from.
func (s *Store) WebhookEndpointStats(ctx context.Context, endpointID string, since time.Time) (WebhookEndpointStatsRows, error) {
	var out WebhookEndpointStatsRows
	db := s.db.WithContext(ctx)
	err := db.Model(&WebhookAttempt{}).Select("outcome, duration_ms").
		Where("endpoint_id = ? AND started_at >= ? AND outcome IN ?", endpointID, since,
			[]string{AttemptSucceeded, AttemptRetrying, AttemptFailed}).
		Order("started_at DESC").Limit(MaxStatsAttempts).Find(&out.Attempts).Error
	if err != nil {
		return out, classify(err)
	}
	if err := db.Model(&WebhookDelivery{}).Where("endpoint_id = ? AND status = ?", endpointID, DeliveryPending).
		Count(&out.Pending).Error; err != nil {
		return out, classify(err)
	}
	if out.Pending > 0 {
		var oldest []WebhookDelivery
		if err := db.Select("id, created_at").Where("endpoint_id = ? AND status = ?", endpointID, DeliveryPending).
			Order("id").Limit(1).Find(&oldest).Error; err != nil {
			return out, classify(err)
		}
		if len(oldest) == 1 {
			out.OldestPendingAt = &oldest[0].CreatedAt
		}
	}
	return out, nil
}
