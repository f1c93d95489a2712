package webhooks

import (
	"math/rand/v2"
	"time"
)

// DefaultRetrySchedule is Standard Webhooks' (and Svix's): after the immediate first attempt,
// retries 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h later, each with ±20% jitter.
var DefaultRetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Jitter is the relative spread of each retry delay.
const Jitter = 0.2

// MaxAttempts is how many requests a delivery gets: configured, else the schedule's steps plus
// the first attempt.
func MaxAttempts(configured int, schedule []time.Duration) int {
	if configured > 0 {
		return configured
	}
	return len(schedule) + 1
}

// RetryDelay returns the delay before the next attempt of a delivery that has made `made`
// attempts (counted since its schedule restarted), and false when no attempt is left. Attempts
// past the schedule's end reuse its last step. jitter in [0,1) spreads the delay by ±Jitter.
func RetryDelay(schedule []time.Duration, maxAttempts, made int, jitter float64) (time.Duration, bool) {
	if made >= maxAttempts || made < 1 {
		return 0, made < 1
	}
	if len(schedule) == 0 {
		return 0, true
	}
	step := schedule[min(made-1, len(schedule)-1)]
	spread := float64(step) * Jitter * (2*jitter - 1)
	return time.Duration(float64(step) + spread), true
}

// RandomJitter is the jitter source of real deliveries.
func RandomJitter() float64 { return rand.Float64() }

// CircuitCooldown is how long an open circuit holds an endpoint after its trips-th trip in a
// row: the base cool-down, doubling with each trip up to MaxCircuitCooldown (or the base, when
// that is longer).
func CircuitCooldown(base time.Duration, trips int) time.Duration {
	limit := max(base, MaxCircuitCooldown)
	d := base
	for i := 1; i < trips && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
