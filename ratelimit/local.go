package ratelimit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Local keeps the limits in this process: one token bucket per key, forgotten after idleTTL.
type Local struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
	calls   int
}

type bucket struct {
	lim      *rate.Limiter
	limit    Limit
	lastSeen time.Time
}

// idleTTL is how long an unused bucket is kept; a bucket idle that long is full again anyway
// for every limit this service uses.
const idleTTL = 10 * time.Minute

// NewLocal returns an empty in-process limiter.
func NewLocal() *Local {
	return &Local{buckets: make(map[string]*bucket), now: time.Now}
}

// Allow implements Limiter.
func (l *Local) Allow(_ context.Context, key string, lim Limit) (Result, error) {
	return l.take(key, lim, 1), nil
}

// Peek implements Limiter.
func (l *Local) Peek(_ context.Context, key string, lim Limit) (Result, error) {
	return l.take(key, lim, 0), nil
}

// take counts n (0 or 1) events under key and reports whether one more fits now.
func (l *Local) take(key string, lim Limit, n int) Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.calls++
	if l.calls%1024 == 0 {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil || b.limit != lim {
		every := lim.Period / time.Duration(max(lim.Rate, 1))
		b = &bucket{lim: rate.NewLimiter(rate.Every(every), max(lim.Burst, 1)), limit: lim}
		l.buckets[key] = b
	}
	b.lastSeen = now
	res := Result{Limit: lim}
	if n == 0 {
		if tokens := b.lim.TokensAt(now); tokens >= 1 {
			res.Allowed = true
		} else {
			res.RetryAfter = time.Duration((1 - tokens) / float64(b.lim.Limit()) * float64(time.Second))
		}
	} else if r := b.lim.ReserveN(now, 1); r.DelayFrom(now) > 0 {
		res.RetryAfter = r.DelayFrom(now)
		r.CancelAt(now)
	} else {
		res.Allowed = true
	}
	tokens := b.lim.TokensAt(now)
	res.Remaining = max(int(tokens), 0)
	missing := float64(b.lim.Burst()) - tokens
	if missing > 0 {
		res.ResetAfter = time.Duration(missing / float64(b.lim.Limit()) * float64(time.Second))
	}
	return res
}

func (l *Local) sweep(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.lastSeen) > idleTTL {
			delete(l.buckets, k)
		}
	}
}

// Backend implements Limiter.
func (l *Local) Backend() string { return "in-process" }
