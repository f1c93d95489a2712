package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/ratelimit"
)

func forEachBackend(t *testing.T, fn func(t *testing.T, l ratelimit.Limiter)) {
	t.Run("in-process", func(t *testing.T) { fn(t, ratelimit.NewLocal()) })
	t.Run("redis", func(t *testing.T) {
		opt, err := redis.ParseURL(testenv.RedisURL(t))
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opt)
		t.Cleanup(func() { rdb.Close() })
		fn(t, ratelimit.NewRedis(rdb))
	})
}

func TestBurstThenRefusal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, l ratelimit.Limiter) {
		ctx := context.Background()
		key := "test:" + testenv.RandomHex(8)
		limit := ratelimit.Limit{Rate: 1, Burst: 3, Period: time.Minute}
		for i := range 3 {
			res, err := l.Allow(ctx, key, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Allowed {
				t.Fatalf("request %d of the burst refused", i+1)
			}
			if res.Remaining != 2-i {
				t.Errorf("request %d: remaining %d, want %d", i+1, res.Remaining, 2-i)
			}
		}
		res, err := l.Allow(ctx, key, limit)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed {
			t.Fatal("request past the burst allowed")
		}
		// One token a minute: the next one is most of a minute away.
		if res.RetryAfter < 50*time.Second || res.RetryAfter > time.Minute {
			t.Errorf("retry after %v, want about a minute", res.RetryAfter)
		}
		other, err := l.Allow(ctx, key+":other", limit)
		if err != nil || !other.Allowed {
			t.Errorf("another key is limited too: %+v %v", other, err)
		}
	})
}

func TestTokensComeBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, l ratelimit.Limiter) {
		ctx := context.Background()
		key := "test:" + testenv.RandomHex(8)
		limit := ratelimit.Limit{Rate: 20, Burst: 1, Period: time.Second} // a token every 50 ms
		first, _ := l.Allow(ctx, key, limit)
		second, _ := l.Allow(ctx, key, limit)
		if !first.Allowed || second.Allowed {
			t.Fatalf("first %+v second %+v", first, second)
		}
		time.Sleep(second.RetryAfter + 20*time.Millisecond)
		third, err := l.Allow(ctx, key, limit)
		if err != nil || !third.Allowed {
			t.Fatalf("after waiting RetryAfter (%v) still refused: %+v %v", second.RetryAfter, third, err)
		}
	})
}

// Peek reports what Allow would answer without counting: a limit can count only some events
// (failed logins) and still refuse every event once it is exhausted.
func TestPeekCountsNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, l ratelimit.Limiter) {
		ctx := context.Background()
		key := "test:" + testenv.RandomHex(8)
		limit := ratelimit.Limit{Rate: 1, Burst: 2, Period: time.Minute}
		for i := range 5 {
			res, err := l.Peek(ctx, key, limit)
			if err != nil || !res.Allowed || res.Remaining != 2 {
				t.Fatalf("peek %d on a fresh key: %+v %v", i, res, err)
			}
		}
		for range 2 {
			if res, err := l.Allow(ctx, key, limit); err != nil || !res.Allowed {
				t.Fatalf("allow within the burst: %+v %v", res, err)
			}
		}
		res, err := l.Peek(ctx, key, limit)
		if err != nil || res.Allowed || res.Remaining != 0 {
			t.Fatalf("peek at an exhausted key: %+v %v", res, err)
		}
		if res.RetryAfter < 50*time.Second || res.RetryAfter > time.Minute {
			t.Errorf("peek retry after %v, want about a minute", res.RetryAfter)
		}
		if again, err := l.Allow(ctx, key, limit); err != nil || again.Allowed {
			t.Errorf("allow after the peek: %+v %v (peeking must not have refilled it)", again, err)
		}
	})
}
