package ratelimit

import (
	"context"
	"fmt"

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

// Backend implements Limiter.
func (r *Redis) Backend() string { return "redis" }
