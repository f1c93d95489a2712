package store

import (
	"context"
	"time"

	"gorm.io/gorm/clause"
)

// EventType is an entry of a tenant's event catalog (schema 00012): a declared event type with
// the JSON Schema its payloads must follow. Schema and Example are kept as given ("" when none);
// Versions is a JSON array of every schema the type had, oldest first.
type EventType struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID    string `gorm:"column:tenant_id" json:"-"`
	ID          string
	Name        string
	Description string
	Schema      string
	Example     string
	Deprecated  bool
	Versions    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName implements gorm's tabler.
func (EventType) TableName() string { return "event_types" }

// EventCatalogSettings are a tenant's catalog settings (schema 00012).
type EventCatalogSettings struct {
	TenantID string `gorm:"column:tenant_id;primaryKey" json:"-"`
	// RejectUnknownTypes refuses events and messages whose type is not in the catalog.
	RejectUnknownTypes bool
	UpdatedAt          time.Time
}

// TableName implements gorm's tabler.
func (EventCatalogSettings) TableName() string { return "event_catalog_settings" }

// CreateEventType stores a new type (ErrConflict when the tenant has one of that name).
func (s *Store) CreateEventType(ctx context.Context, t *EventType) error {
	return classify(s.db.WithContext(ctx).Create(t).Error)
}

// GetEventType returns the tenant's type of that name.
func (s *Store) GetEventType(ctx context.Context, name string) (EventType, error) {
	var t EventType
	err := s.db.WithContext(ctx).Where("name = ?", name).Take(&t).Error
	return t, classify(err)
}

// ListEventTypes returns a page of the tenant's types, newest first.
func (s *Store) ListEventTypes(ctx context.Context, p Page) ([]EventType, string, error) {
	return List(s.db.WithContext(ctx).Model(&EventType{}), p, func(t EventType) string { return t.ID })
}

// AllEventTypes returns every type of the tenant, by name (the published catalog).
func (s *Store) AllEventTypes(ctx context.Context) ([]EventType, error) {
	var out []EventType
	err := s.db.WithContext(ctx).Order("name").Limit(10000).Find(&out).Error
	return out, classify(err)
}

// UpdateEventType writes the columns of the tenant's type of that name.
func (s *Store) UpdateEventType(ctx context.Context, name string, columns map[string]any) error {
	res := s.db.WithContext(ctx).Model(&EventType{}).Where("name = ?", name).Updates(columns)
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteEventType deletes the tenant's type of that name.
func (s *Store) DeleteEventType(ctx context.Context, name string) error {
	res := s.db.WithContext(ctx).Where("name = ?", name).Delete(&EventType{})
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// GetEventCatalogSettings returns the tenant's settings (the zero settings when never set).
func (s *Store) GetEventCatalogSettings(ctx context.Context) (EventCatalogSettings, error) {
	var out []EventCatalogSettings
	if err := s.db.WithContext(ctx).Limit(1).Find(&out).Error; err != nil {
		return EventCatalogSettings{}, classify(err)
	}
	if len(out) == 0 {
		return EventCatalogSettings{}, nil
	}
	return out[0], nil
}

// PutEventCatalogSettings writes the tenant's settings.
func (s *Store) PutEventCatalogSettings(ctx context.Context, set EventCatalogSettings) error {
	set.TenantID = ""
	return classify(s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "tenant_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"reject_unknown_types", "updated_at"}),
	}).Create(&set).Error)
}
