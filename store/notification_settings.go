package store

import (
	"context"
	"time"

	"gorm.io/gorm/clause"
)

// NotificationSettings are a tenant's notification defaults (schema 00016): its default quiet
// hours, for subscribers with none of their own. A tenant that never set them has none.
type NotificationSettings struct {
	TenantID string `gorm:"column:tenant_id;primaryKey" json:"-"`
	// QuietHoursStart and QuietHoursEnd are the default daily quiet hours (HH:MM or HH:MM:SS;
	// both "" for none), in the subscriber's time zone, else in TimeZone, else UTC.
	QuietHoursStart string    `json:"quiet_hours_start"`
	QuietHoursEnd   string    `json:"quiet_hours_end"`
	TimeZone        string    `json:"time_zone"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// GetNotificationSettings returns the tenant's settings; a tenant that never set any gets the
// zero settings (no quiet hours) and no error.
func (s *Store) GetNotificationSettings(ctx context.Context) (NotificationSettings, error) {
	var rows []NotificationSettings
	if err := s.db.WithContext(ctx).Limit(1).Find(&rows).Error; err != nil {
		return NotificationSettings{}, classify(err)
	}
	if len(rows) == 0 {
		return NotificationSettings{}, nil
	}
	return rows[0], nil
}

// PutNotificationSettings replaces the tenant's settings.
func (s *Store) PutNotificationSettings(ctx context.Context, ns *NotificationSettings) error {
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "tenant_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"quiet_hours_start", "quiet_hours_end", "time_zone", "updated_at"}),
	}).Create(ns).Error
	return classify(err)
}
