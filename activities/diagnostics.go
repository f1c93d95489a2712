// Package activities holds the side effects of the service's workflows, as methods on structs
// that carry their dependencies (store, clients, configuration). The worker registers one value
// of each struct; workflows name the methods through a nil pointer of the same type.
package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/pyairtable/automation-domain/diagnostics"
	"github.com/pyairtable/automation-domain/store"
)

// Diagnostics answers the ping workflow.
type Diagnostics struct {
	Store *store.Store
	// Identity names this worker process in the reply.
	Identity string
}

// Pong checks the database from the worker and echoes the message.
func (d *Diagnostics) Pong(ctx context.Context, in diagnostics.PingInput) (diagnostics.PingResult, error) {
	start := time.Now()
	if err := d.Store.Ping(ctx); err != nil {
		return diagnostics.PingResult{}, fmt.Errorf("pong: %w", err)
	}
	return diagnostics.PingResult{
		Reply:             "pong: " + in.Message,
		Worker:            d.Identity,
		DatabaseLatencyMS: float64(time.Since(start).Microseconds()) / 1000,
	}, nil
}
