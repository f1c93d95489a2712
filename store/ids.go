package store

import "github.com/google/uuid"

// NewID returns a UUIDv7: unique across processes and ordered by creation time, which is what
// cursor pagination relies on.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}
