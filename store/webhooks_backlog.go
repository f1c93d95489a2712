package store

import (
	"context"
	"time"
)

// WebhookBacklog returns, for each endpoint with a pending delivery that is due at now (up to
// limit endpoints), when its oldest due delivery became due: how far behind its sender is. The
// caller decides the tenants (tenant.System for every tenant's endpoints).
func (s *Store) WebhookBacklog(ctx context.Context, now time.Time, limit int) (map[string]time.Time, error) {
	var ids []string
	db := s.db.WithContext(ctx)
	err := db.Model(&WebhookDelivery{}).
		Where("status = ? AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?", DeliveryPending, now.UTC()).
		Distinct("endpoint_id").Limit(limit).Pluck("endpoint_id", &ids).Error
	if err != nil {
		return nil, classify(err)
	}
	out := make(map[string]time.Time, len(ids))
	for _, id := range ids {
		var due []time.Time
		err := db.Model(&WebhookDelivery{}).
			Where("endpoint_id = ? AND status = ? AND next_attempt_at IS NOT NULL AND next_attempt_at <= ?", id, DeliveryPending, now.UTC()).
			Order("next_attempt_at").Limit(1).Pluck("next_attempt_at", &due).Error
		if err != nil {
			return nil, classify(err)
		}
		if len(due) == 1 {
			out[id] = due[0]
		}
	}
	return out, nil
}
