package wire

import "github.com/google/uuid"

// NewID returns a UUIDv7: unique across processes and ordered by creation time, which is what
// the store's cursor pagination relies on. Workflow code calls it only inside a SideEffect.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}
