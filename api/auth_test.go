package api

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/ratelimit"
)

// Failed authentications are limited per client address, in the shared limiter: past the limit
// every authentication from that address is answered 429 with Retry-After — a valid key too, or
// guessing would go on — while other addresses (and other IPv6 /64s) are unaffected.
func TestFailedAuthenticationsAreThrottledPerAddress(t *testing.T) {
	limiters := map[string]func(t *testing.T) ratelimit.Limiter{
		"in-process": func(*testing.T) ratelimit.Limiter { return ratelimit.NewLocal() },
		"redis": func(t *testing.T) ratelimit.Limiter {
			opt, err := redis.ParseURL(testenv.RedisURL(t))
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opt)
			t.Cleanup(func() { rdb.Close() })
			return ratelimit.NewRedis(rdb)
		},
	}
	for name, limiter := range limiters {
		t.Run(name, func(t *testing.T) {
			s := newTestServer(t, func(c *config.Config) { c.AuthFailureLimit, c.AuthFailureWindow = 3, time.Minute })
			s.limiter = limiter(t)
			// Addresses of their own per run: the Redis budget outlives a run.
			r := testenv.RandomHex(3)
			prefix := "10." + strconv.Itoa(hexByte(r[0:2])) + "." + strconv.Itoa(hexByte(r[2:4])) + "."
			attacker, neighbour := prefix+strconv.Itoa(hexByte(r[4:6]))+":40000", prefix+strconv.Itoa(hexByte(r[4:6])^1)+":40000"
			get := func(from string, headers ...string) response {
				return s.doFrom(t, from, "GET", "/api/v1/workflows", nil, headers...)
			}
			for i := range 3 {
				if r := get(attacker, "X-API-Key", "guess-"+strconv.Itoa(i)); r.StatusCode != 401 {
					t.Fatalf("failure %d: %d %s, want 401", i+1, r.StatusCode, r.body)
				}
			}
			for what, headers := range map[string][]string{
				"another guess": {"X-API-Key", "guess-4"},
				"a bad token":   {"Authorization", "Bearer abc.def"},
				"the valid key": {"X-API-Key", testKey},
			} {
				r := get(attacker, headers...)
				retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
				if r.StatusCode != 429 || r.errorCode(t) != "too_many_failed_authentications" || retry < 1 || retry > 60 {
					t.Errorf("%s from the throttled address: %d Retry-After %q %s", what, r.StatusCode, r.Header.Get("Retry-After"), r.body)
				}
			}
			if r := get(neighbour, "X-API-Key", testKey); r.StatusCode != 200 {
				t.Errorf("the valid key from another address: %d %s", r.StatusCode, r.body)
			}
			if r := get(neighbour, "X-API-Key", "typo"); r.StatusCode != 401 {
				t.Errorf("a first failure from another address: %d %s", r.StatusCode, r.body)
			}
			// /health/detailed checks credentials under the same limit (it would be a way around
			// it otherwise); without credentials it answers, with the public view.
			if r := s.doFrom(t, attacker, "GET", "/health/detailed", nil, "X-API-Key", testKey); r.StatusCode != 429 {
				t.Errorf("/health/detailed with a key from the throttled address: %d", r.StatusCode)
			}
			if r := s.doFrom(t, attacker, "GET", "/health/detailed", nil); r.StatusCode == 429 || r.StatusCode == 401 {
				t.Errorf("/health/detailed without credentials from the throttled address: %d", r.StatusCode)
			}
			if !strings.Contains(s.logs.String(), "failed authentications from one address reached the limit") {
				t.Error("reaching the limit was not logged")
			}

			// IPv6 clients are counted by /64.
			v6 := func(host string) string { return "[2001:db8:" + r[:4] + ":" + host + "]:40000" }
			for i := range 3 {
				if r := get(v6("1::1"), "X-API-Key", "guess-"+strconv.Itoa(i)); r.StatusCode != 401 {
					t.Fatalf("IPv6 failure %d: %d", i+1, r.StatusCode)
				}
			}
			if r := get(v6("1::ffff"), "X-API-Key", testKey); r.StatusCode != 429 {
				t.Errorf("another address of the same /64: %d, want 429", r.StatusCode)
			}
			if r := get(v6("2::1"), "X-API-Key", testKey); r.StatusCode != 200 {
				t.Errorf("another /64: %d, want 200", r.StatusCode)
			}
		})
	}
}

func hexByte(s string) int {
	n, _ := strconv.ParseUint(s, 16, 8)
	return int(n)
}

func TestAuthFailureKey(t *testing.T) {
	for ip, want := range map[string]string{
		"203.0.113.7":            "auth-failures:203.0.113.7",
		"::ffff:203.0.113.7":     "auth-failures:203.0.113.7",
		"2001:db8:1:2:3:4:5:6":   "auth-failures:2001:db8:1:2::/64",
		"2001:db8:1:2::ffff%eth": "auth-failures:2001:db8:1:2::/64",
	} {
		if got := authFailureKey(ip); got != want {
			t.Errorf("%s: %s, want %s", ip, got, want)
		}
	}
}
