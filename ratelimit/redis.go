package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis keeps the limits in Redis, shared by every process.
type Redis struct {
	limiter *redis_rate.Limiter
}

// NewRedis uses rdb for the limits.
func NewRedis(rdb *redis.Client) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(rdb)}
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	res, err := r.limiter.Allow(ctx, key, redis_rate.Limit{Rate: l.Rate, Burst: l.Burst, Period: l.Period})
	if err != nil {
		return Result{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	out := Result{Limit: l, Allowed: res.Allowed > 0, Remaining: res.Remaining, ResetAfter: res.ResetAfter}
	if !out.Allowed {
		out.RetryAfter = res.RetryAfter
	}
	return out, nil
}

// Peek implements Limiter: redis_rate's AllowN with n = 0 counts nothing and reports what is
// left; one more event fits when a whole token is.
func (r *Redis) Peek(ctx context.Context, key string, l Limit) (Result, error) {
	res, err := r.limiter.AllowN(ctx, key, redis_rate.Limit{Rate: l.Rate, Burst: l.Burst, Period: l.Period}, 0)
	if err != nil {
		return Result{}, fmt.Errorf("rate limit %s: %w", key, err)
	}
	out := Result{Limit: l, Allowed: res.Remaining >= 1, Remaining: res.Remaining, ResetAfter: res.ResetAfter}
	if !out.Allowed {
		// The bucket is full again after ResetAfter; one token is there (Burst-1) emissions sooner.
		emission := l.Period / time.Duration(max(l.Rate, 1))
		out.RetryAfter = max(res.ResetAfter-time.Duration(l.Burst-1)*emission, time.Millisecond)
	}
	return out, nil
}

// Backend implements Limiter.
func (r *Redis) Backend() string { return "redis" }
