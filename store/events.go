package store

import (
	"context"
	"time"

	"gorm.io/gorm/clause"
)

// Event is a row of the event log (see schema 00001: every domain event and every event posted
// to the API, written before it is handed to its subscribers).
type Event struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID string `gorm:"column:tenant_id" json:"-"`
	ID       string `gorm:"primaryKey" json:"id"`
	Type     string `json:"type"`
	Source   string `json:"source"`
	Subject  string `json:"subject,omitempty"`
	Data     JSON   `json:"data"`
	// OccurredAt is when it happened (the producer's clock); ReceivedAt when it was stored.
	OccurredAt time.Time `json:"occurred_at"`
	ReceivedAt time.Time `json:"received_at"`
	// CausationID is the event whose handling produced this one ("" for an outside event);
	// CorrelationID the first event of the chain; Depth the chain's length (0 for outside events).
	CausationID   string     `json:"causation_id,omitempty"`
	CorrelationID string     `json:"correlation_id,omitempty"`
	Depth         int        `json:"depth"`
	DispatchedAt  *time.Time `json:"dispatched_at,omitempty"`
}

// InsertEvent stores e unless an event with its id exists; inserted says which happened.
func (s *Store) InsertEvent(ctx context.Context, e *Event) (inserted bool, err error) {
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(e)
	if res.Error != nil {
		return false, classify(res.Error)
	}
	return res.RowsAffected == 1, nil
}

// GetEvent returns one event.
func (s *Store) GetEvent(ctx context.Context, id string) (Event, error) {
	var e Event
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&e).Error
	return e, classify(err)
}

// MarkEventDispatched records that every subscriber has taken the event.
func (s *Store) MarkEventDispatched(ctx context.Context, id string, at time.Time) error {
	return classify(s.db.WithContext(ctx).Model(&Event{}).Where("id = ?", id).Update("dispatched_at", at).Error)
}

// UndispatchedEvents returns up to limit events stored before receivedBefore and never
// dispatched, oldest first.
func (s *Store) UndispatchedEvents(ctx context.Context, receivedBefore time.Time, limit int) ([]Event, error) {
	var out []Event
	err := s.db.WithContext(ctx).Where("dispatched_at IS NULL AND received_at < ?", receivedBefore).
		Order("received_at").Limit(limit).Find(&out).Error
	return out, classify(err)
}
