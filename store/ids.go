package store

import "github.com/pyairtable/automation-domain/wire"

// NewID returns a UUIDv7 (wire.NewID): unique across processes and ordered by creation time,
// which is what cursor pagination relies on.
func NewID() string { return wire.NewID() }
