package ratelimit_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/ratelimit"
)

// With Redis down the breaker answers from the in-process limiter (the limits still hold, per
// process), stops asking Redis after the threshold, reports why, and goes back to Redis once it
// answers again.
func TestBreakerFallsBackWhileRedisIsDown(t *testing.T) {
	port := testenv.FreePort(t)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	reg := prometheus.NewRegistry()
	b, err := ratelimit.NewBreaker(ratelimit.NewRedis(rdb), ratelimit.NewLocal(),
		ratelimit.BreakerOptions{Threshold: 2, Cooldown: 100 * time.Millisecond, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "test:" + testenv.RandomHex(8)
	limit := ratelimit.Limit{Rate: 1, Burst: 3, Period: time.Minute}
	allowed := 0
	for range 5 {
		res, err := b.Allow(ctx, key, limit)
		if err != nil {
			t.Fatalf("the breaker passed Redis' error on: %v", err)
		}
		if res.Allowed {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("%d of 5 allowed with a burst of 3: the limit must hold while Redis is down", allowed)
	}
	if b.Err() == nil {
		t.Error("the circuit did not open")
	}
	if up := value(t, reg, "automation_redis_up"); up != 0 {
		t.Errorf("automation_redis_up %v while Redis is down", up)
	}
	if n := value(t, reg, "automation_rate_limit_fallback_total"); n != 5 {
		t.Errorf("fallback decisions %v, want 5", n)
	}

	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed: the recovery is not checked")
	}
	srv := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for b.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the breaker did not go back to Redis: %v", b.Err())
		}
		time.Sleep(50 * time.Millisecond)
		_, _ = b.Allow(ctx, key+":probe", limit)
	}
	if up := value(t, reg, "automation_redis_up"); up != 1 {
		t.Errorf("automation_redis_up %v once Redis is back", up)
	}
	if err := rdb.Exists(ctx, key+":probe").Err(); err != nil {
		t.Errorf("the probe did not reach Redis: %v", err)
	}
}

// value is the value of the registry's metric named name (a gauge or a counter).
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
