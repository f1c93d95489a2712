package store

import (
	"context"
	"encoding/base64"
	"strings"
	"time"
)

// EventFilter narrows ListEvents; zero fields do not filter.
type EventFilter struct {
	// Type is an exact event type.
	Type   string
	Source string
	// CorrelationID lists one causation chain.
	CorrelationID string
}

// ListEvents pages through the event log, most recently received first. Event ids may be chosen
// by the producer, so the order (and the cursor) is (received_at, id).
func (s *Store) ListEvents(ctx context.Context, f EventFilter, p Page) ([]Event, string, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	if limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	q := s.db.WithContext(ctx).Model(&Event{})
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	if f.Source != "" {
		q = q.Where("source = ?", f.Source)
	}
	if f.CorrelationID != "" {
		q = q.Where("correlation_id = ?", f.CorrelationID)
	}
	if p.Cursor != "" {
		at, id, err := decodeEventCursor(p.Cursor)
		if err != nil {
			return nil, "", err
		}
		q = q.Where("received_at < ? OR (received_at = ? AND id < ?)", at, at, id)
	}
	var rows []Event
	if err := q.Order("received_at DESC, id DESC").Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, "", classify(err)
	}
	if len(rows) <= limit {
		return rows, "", nil
	}
	rows = rows[:limit]
	last := rows[len(rows)-1]
	return rows, encodeEventCursor(last.ReceivedAt, last.ID), nil
}

func encodeEventCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeEventCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 512 {
		return time.Time{}, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(b), "|")
	if !ok || id == "" {
		return time.Time{}, "", ErrBadCursor
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	return at, id, nil
}

// ValidEventCursor reports whether c is a cursor ListEvents issued.
func ValidEventCursor(c string) bool {
	if c == "" {
		return true
	}
	_, _, err := decodeEventCursor(c)
	return err == nil
}

// GetEvents returns the stored events among ids, by id.
func (s *Store) GetEvents(ctx context.Context, ids []string) (map[string]Event, error) {
	out := make(map[string]Event, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []Event
	if err := s.db.WithContext(ctx).Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, classify(err)
	}
	for _, e := range rows {
		out[e.ID] = e
	}
	return out, nil
}
