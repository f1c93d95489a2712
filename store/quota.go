package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/pyairtable/automation-domain/internal/tenant"
)

// Daily quotas (a tenant's limits executions_per_day and messages_per_day) are counted in
// tenant_quota_usage (schema 00010): one row per tenant, quota and UTC day, raised by a
// conditional UPDATE in the transaction that creates what the quota bounds. Whoever starts the
// work (an API request, a rule's action, a schedule) goes through the same count, and two
// concurrent creates cannot both take the last unit: Postgres re-checks the condition on the
// row it locked, SQLite runs one writer at a time.

// Daily quota names, as in a tenant's limits.
const (
	QuotaExecutionsPerDay = "executions_per_day"
	QuotaMessagesPerDay   = "messages_per_day"
)

// QuotaError refuses a create that would pass one of the tenant's quotas.
type QuotaError struct {
	Quota string
	Limit int
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("the tenant's quota %s (%d) is reached", e.Quota, e.Limit)
}

// quotaCounted is what each daily quota counts, to start a day's row from what was created
// that day before the row existed.
var quotaCounted = map[string]string{
	QuotaExecutionsPerDay: "workflow_executions",
	QuotaMessagesPerDay:   "notifications",
}

// ReserveQuota takes n units of the context's tenant's daily quota at now, or returns a
// *QuotaError (taking nothing) when that would pass the tenant's limit. A tenant without that
// limit, and tenant.System, are not counted. Inside Tx the units are given back if the
// transaction rolls back.
func (s *Store) ReserveQuota(ctx context.Context, quota string, n int, now time.Time) error {
	table, ok := quotaCounted[quota]
	if !ok {
		return fmt.Errorf("reserve quota: unknown quota %q", quota)
	}
	id, system := tenant.From(ctx)
	if system || n <= 0 {
		return nil
	}
	limit, err := s.dailyLimit(ctx, id, quota)
	if err != nil || limit <= 0 {
		return err
	}
	now = now.UTC()
	day := now.Format(time.DateOnly)
	since := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return s.Tx(ctx, func(tx *Store) error {
		db := tx.db.WithContext(ctx)
		for try := 0; try < 2; try++ {
			res := db.Exec(`UPDATE tenant_quota_usage SET used = used + ? WHERE tenant_id = ? AND quota = ? AND day = ? AND used + ? <= ?`,
				n, id, quota, day, n, limit)
			if res.Error != nil {
				return classify(res.Error)
			}
			if res.RowsAffected == 1 {
				return nil
			}
			// No row for the day yet, or the limit is reached: start the day's row from what was
			// created today (unless that is past the limit already).
			res = db.Exec(`INSERT INTO tenant_quota_usage (tenant_id, quota, day, used)
				SELECT ?, ?, ?, c.n + ? FROM (SELECT COUNT(*) AS n FROM `+table+` WHERE tenant_id = ? AND created_at >= ?) AS c
				WHERE c.n + ? <= ? ON CONFLICT DO NOTHING`,
				id, quota, day, n, id, since, n, limit)
			if res.Error != nil {
				return classify(res.Error)
			}
			if res.RowsAffected == 1 {
				return nil
			}
			var exists int64
			if err := db.Raw(`SELECT COUNT(*) FROM tenant_quota_usage WHERE tenant_id = ? AND quota = ? AND day = ?`,
				id, quota, day).Scan(&exists).Error; err != nil {
				return classify(err)
			}
			if exists == 0 || try == 1 {
				return &QuotaError{Quota: quota, Limit: limit}
			}
			// Another transaction made the day's row meanwhile: count on it.
		}
		return &QuotaError{Quota: quota, Limit: limit}
	})
}

// ReleaseQuota gives back n units of a daily quota reserved at now (the work was not started
// after all).
func (s *Store) ReleaseQuota(ctx context.Context, quota string, n int, now time.Time) error {
	id, system := tenant.From(ctx)
	if system || n <= 0 {
		return nil
	}
	return classify(s.db.WithContext(ctx).Exec(
		`UPDATE tenant_quota_usage SET used = CASE WHEN used > ? THEN used - ? ELSE 0 END WHERE tenant_id = ? AND quota = ? AND day = ?`,
		n, n, id, quota, now.UTC().Format(time.DateOnly)).Error)
}

// QuotaUsed is how many units of a daily quota the context's tenant has taken on now's day.
func (s *Store) QuotaUsed(ctx context.Context, quota string, now time.Time) (int64, error) {
	var used int64
	err := s.db.WithContext(ctx).Raw(`SELECT COALESCE(SUM(used), 0) FROM tenant_quota_usage WHERE tenant_id = ? AND quota = ? AND day = ?`,
		tenant.ID(ctx), quota, now.UTC().Format(time.DateOnly)).Scan(&used).Error
	return used, classify(err)
}

// dailyLimit is tenant id's limit of quota (0: none).
func (s *Store) dailyLimit(ctx context.Context, id, quota string) (int, error) {
	var t Tenant
	err := s.db.WithContext(ctx).Select("limits").Where("id = ?", id).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, classify(err)
	}
	var limits map[string]json.RawMessage
	if json.Unmarshal(t.Limits, &limits) != nil {
		return 0, nil
	}
	var limit int
	if raw, ok := limits[quota]; ok && json.Unmarshal(raw, &limit) != nil {
		return 0, nil
	}
	return limit, nil
}
