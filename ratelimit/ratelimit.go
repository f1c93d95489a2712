// Package ratelimit answers "may this key act now?" with a generic cell rate limit: in Redis
// (go-redis/redis_rate) when the service runs with REDIS_URL, so that every API and worker process
// shares the budget, and in process (golang.org/x/time/rate) in the embedded mode.
package ratelimit

import (
	"context"
	"time"
)

// Limit is Rate events per Period with bursts up to Burst.
type Limit struct {
	Rate   int
	Burst  int
	Period time.Duration
}

// PerSecond is rate events a second with a burst of burst.
func PerSecond(rate, burst int) Limit { return Limit{Rate: rate, Burst: burst, Period: time.Second} }

// Result is the answer for one event.
type Result struct {
	Limit     Limit
	Allowed   bool
	Remaining int
	// RetryAfter is how long until the next event would be allowed (0 when allowed).
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to a full burst.
	ResetAfter time.Duration
}

// Limiter decides whether one event under key is allowed now.
type Limiter interface {
	Allow(ctx context.Context, key string, limit Limit) (Result, error)
	// Peek answers what Allow would, without counting an event: for limits that count only some
	// events (failed logins) but must refuse every event once exhausted.
	Peek(ctx context.Context, key string, limit Limit) (Result, error)
	// Backend names the implementation for /info ("redis" or "in-process").
	Backend() string
}
