package store

import (
	"encoding/base64"
	"errors"

	"gorm.io/gorm"
)

// Page bounds a list: at most Limit rows after Cursor, newest first. Ids are UUIDv7, so id order
// is creation order and the cursor is the last id seen.
type Page struct {
	Limit  int
	Cursor string
}

// Page limits.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 200
)

// ErrBadCursor is returned for a cursor this service did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// EncodeCursor makes the opaque cursor for the row with this id.
func EncodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// DecodeCursor reverses EncodeCursor.
func DecodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 || len(b) > 128 {
		return "", ErrBadCursor
	}
	return string(b), nil
}

// paginate applies p to q (whose table has an id column) and fetches one extra row to tell
// whether another page follows.
func paginate(q *gorm.DB, column string, p Page) (*gorm.DB, error) {
	after, err := DecodeCursor(p.Cursor)
	if err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		p.Limit = DefaultPageLimit
	}
	if p.Limit > MaxPageLimit {
		p.Limit = MaxPageLimit
	}
	if after != "" {
		q = q.Where(column+" < ?", after)
	}
	return q.Order(column + " DESC").Limit(p.Limit + 1), nil
}

// trimPage cuts the extra row fetched by paginate and returns the next cursor ("" on the last page).
func trimPage[T any](rows []T, p Page, id func(T) string) ([]T, string) {
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	if limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, EncodeCursor(id(rows[len(rows)-1]))
}

// List runs a paginated query of T for callers outside this file.
func List[T any](q *gorm.DB, p Page, id func(T) string) ([]T, string, error) {
	q, err := paginate(q, "id", p)
	if err != nil {
		return nil, "", err
	}
	var rows []T
	if err := q.Find(&rows).Error; err != nil {
		return nil, "", classify(err)
	}
	items, next := trimPage(rows, p, id)
	return items, next, nil
}
