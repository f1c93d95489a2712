package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Breaker puts a circuit breaker in front of a shared limiter (Redis): after Threshold errors in
// a row it stops asking it for Cooldown and decides with an in-process limiter instead (each
// process then enforces the limits on its own), then lets one call through to see whether it
// is back. A request never waits for a limiter that is down longer than one failed call.
type Breaker struct {
	primary   Limiter
	fallback  Limiter
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	up        prometheus.Gauge
	fellBack  prometheus.Counter

	mu        sync.Mutex
	failures  int
	openSince time.Time // zero while closed
	retryAt   time.Time
	probing   bool
	lastErr   error
}

// BreakerOptions configure NewBreaker.
type BreakerOptions struct {
	// Threshold errors in a row open the circuit (default 3).
	Threshold int
	// Cooldown is how long an open circuit waits before it tries the primary again (default 2 s).
	Cooldown time.Duration
	// Registry, when set, receives automation_redis_up and
	// automation_rate_limit_fallback_total.
	Registry prometheus.Registerer
}

// NewBreaker wraps primary; fallback decides while the circuit is open.
func NewBreaker(primary, fallback Limiter, o BreakerOptions) (*Breaker, error) {
	if o.Threshold <= 0 {
		o.Threshold = 3
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 2 * time.Second
	}
	b := &Breaker{primary: primary, fallback: fallback, threshold: o.Threshold, cooldown: o.Cooldown, now: time.Now,
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "automation_redis_up",
			Help: "1 while Redis answers the rate limiter, 0 while its circuit is open and limits are kept in process."}),
		fellBack: prometheus.NewCounter(prometheus.CounterOpts{Name: "automation_rate_limit_fallback_total",
			Help: "Rate limit decisions made in process because Redis did not answer."}),
	}
	b.up.Set(1)
	if o.Registry != nil {
		for _, c := range []prometheus.Collector{b.up, b.fellBack} {
			if err := o.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("rate limit metrics: %w", err)
			}
		}
	}
	return b, nil
}

// Allow implements Limiter: the primary's answer, or the fallback's while the primary is
// failing.
func (b *Breaker) Allow(ctx context.Context, key string, lim Limit) (Result, error) {
	if !b.admit() {
		b.fellBack.Inc()
		return b.fallback.Allow(ctx, key, lim)
	}
	res, err := b.primary.Allow(ctx, key, lim)
	b.done(err)
	if err != nil {
		b.fellBack.Inc()
		return b.fallback.Allow(ctx, key, lim)
	}
	return res, nil
}

// Peek implements Limiter like Allow: the primary's answer, or the fallback's while the primary
// is failing.
func (b *Breaker) Peek(ctx context.Context, key string, lim Limit) (Result, error) {
	if !b.admit() {
		b.fellBack.Inc()
		return b.fallback.Peek(ctx, key, lim)
	}
	res, err := b.primary.Peek(ctx, key, lim)
	b.done(err)
	if err != nil {
		b.fellBack.Inc()
		return b.fallback.Peek(ctx, key, lim)
	}
	return res, nil
}

// admit says whether this call may ask the primary.
func (b *Breaker) admit() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openSince.IsZero() {
		return true
	}
	if b.probing || b.now().Before(b.retryAt) {
		return false
	}
	b.probing = true
	return true
}

// done records the primary's outcome.
func (b *Breaker) done(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if err == nil {
		b.failures, b.openSince, b.lastErr = 0, time.Time{}, nil
		b.up.Set(1)
		return
	}
	b.failures++
	b.lastErr = err
	if b.failures >= b.threshold || !b.openSince.IsZero() {
		if b.openSince.IsZero() {
			b.openSince = b.now()
		}
		b.retryAt = b.now().Add(b.cooldown)
		b.up.Set(0)
	}
}

// Err is nil while the circuit is closed, and otherwise says since when the primary fails and
// why (for /health/detailed).
func (b *Breaker) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openSince.IsZero() {
		return nil
	}
	return fmt.Errorf("unavailable since %s, rate limits are kept in each process meanwhile: %w",
		b.openSince.UTC().Format(time.RFC3339), b.lastErr)
}

// Backend implements Limiter.
func (b *Breaker) Backend() string { return b.primary.Backend() }
