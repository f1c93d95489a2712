package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var s Sample
	for i := 100; i >= 1; i-- { // added out of order
		s.Add(time.Duration(i) * time.Millisecond)
	}
	got := s.Summary()
	want := Summary{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("summary %+v, want %+v", got, want)
	}
	if one := summarize([]time.Duration{7}); one.P50 != 7 || one.P99 != 7 {
		t.Errorf("one sample: %+v", one)
	}
	if empty := (&Sample{}).Summary(); empty.N != 0 || empty.String() != "no samples" {
		t.Errorf("empty: %+v", empty)
	}
	// Nearest rank: with 3 samples p50 is the 2nd, p90 and p99 the 3rd.
	three := summarize([]time.Duration{3, 1, 2})
	if three.P50 != 2 || three.P90 != 3 || three.P99 != 3 {
		t.Errorf("three samples: %+v", three)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 250 and stime 50 ticks.
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 1000 2000000 5000 18446744073709551615"
	comm, cpu, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if comm != "a (b) c" || cpu != 3*time.Second {
		t.Errorf("comm %q cpu %s", comm, cpu)
	}
	for _, bad := range []string{"", "12 nocomm", "1 (x) S 1 2"} {
		if _, _, err := parseStat(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseRSS(t *testing.T) {
	rss, err := parseRSS("Name:\tautomation\nVmPeak:\t  999 kB\nVmRSS:\t  204800 kB\nThreads:\t12\n")
	if err != nil || rss != 200<<20 {
		t.Errorf("rss %d %v", rss, err)
	}
	if anon, err := statusBytes("VmRSS:\t  204800 kB\nRssAnon:\t   57984 kB\nRssFile:\t  146816 kB\n", "RssAnon"); err != nil || anon != 57984<<10 {
		t.Errorf("anon %d %v", anon, err)
	}
	if _, err := parseRSS("Name:\tx\n"); err == nil {
		t.Error("no VmRSS parsed")
	}
}

func TestReadOwnProcess(t *testing.T) {
	p, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.RSSBytes <= 0 || p.Comm == "" {
		t.Errorf("%+v", p)
	}
	if u := readUsage([]int{os.Getpid(), 1 << 30}); u.N != 1 {
		t.Errorf("a missing process was counted: %+v", u)
	}
}

func TestParsePIDs(t *testing.T) {
	got, err := parsePIDs(" 12, 34,,56 ")
	if err != nil || len(got) != 3 || got[0] != 12 || got[2] != 56 {
		t.Errorf("%v %v", got, err)
	}
	for _, bad := range []string{"x", "1,-2", "0"} {
		if _, err := parsePIDs(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-key", "k", "-mode", "steady", "-rate", "20", "-duration", "5s", "-url", "http://x:1/", "-pids", "3,4"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Count != 100 || o.URL != "http://x:1" || len(o.PIDs) != 2 || o.Scenario != "webhooks" || o.Endpoints != 10 {
		t.Errorf("%+v", o)
	}
	if o, _ := parseFlags([]string{"-key", "k"}); o.Count != 1500 || o.Mode != "burst" {
		t.Errorf("burst default count: %+v", o)
	}
	for _, bad := range [][]string{
		{},                                  // no key
		{"-key", "k", "-scenario", "other"}, // unknown scenario
		{"-key", "k", "-mode", "fast"},      // unknown mode
		{"-key", "k", "-failing", "11"},     // more failing than endpoints
		{"-key", "k", "-concurrency", "0"},  // nobody posts
		{"-key", "k", "-pids", "x"},         // not a pid
		{"-key", "k", "-mode", "steady", "-rate", "0"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestKeyFromDevSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/dev-secrets.json", []byte(`{"internal_api_key": "dev-key"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOAD_API_KEY", "")
	t.Setenv("INTERNAL_API_KEY", "")
	t.Setenv("DATA_DIR", dir)
	if o, err := parseFlags(nil); err != nil || o.Key != "dev-key" {
		t.Errorf("%q %v", o.Key, err)
	}
	t.Setenv("DATA_DIR", t.TempDir())
	if _, err := parseFlags(nil); err == nil {
		t.Error("no key accepted")
	}
}

func TestExpectedReceipts(t *testing.T) {
	l := &loader{o: options{Scenario: "webhooks", Endpoints: 10, Failing: 1}}
	if got := l.expected(100); got != 900 {
		t.Errorf("webhooks: %d", got)
	}
	l.o.Scenario, l.o.Rules = "events", 0
	if got := l.expected(100); got != 0 {
		t.Errorf("events without rules: %d", got)
	}
	l.o.Rules = 10
	if got := l.expected(100); got != 900 {
		t.Errorf("events with rules: %d", got)
	}
	l.o.Scenario = "workflows"
	if got := l.expected(100); got != 100 {
		t.Errorf("workflows: %d", got)
	}
}

func TestVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"data":{"seq":1}}`)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("msg_1.1700000000." + string(body)))
	sig := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", "1700000000")
	h.Set("webhook-signature", "v1,bm9wZQ== "+sig) // a rotated-out key's signature first
	if !verify(key, h, body) {
		t.Error("a good signature was refused")
	}
	if verify(key, h, []byte(strings.Replace(string(body), "1", "2", 1))) {
		t.Error("a changed body was accepted")
	}
}

// TestRetryErrorsKeepsTheIdempotencyKey: with -retry-errors a request that lost its connection
// or was answered 503 is sent again with the same body and Idempotency-Key until it is accepted,
// and the retries are counted; without the flag the first failure is final.
func TestRetryErrorsKeepsTheIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var keys, bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		keys, bodies = append(keys, r.Header.Get("Idempotency-Key")), append(bodies, string(b))
		n := len(keys)
		mu.Unlock()
		switch n {
		case 1: // the connection drops, as when the service is killed
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"message_id":"m1"}`))
		}
	}))
	defer srv.Close()
	newLoader := func(retry bool) *loader {
		return &loader{o: options{URL: srv.URL, Key: "k", Scenario: "webhooks", RetryErrors: retry},
			hc: srv.Client(), runID: "run1", sent: make([]atomic.Int64, 1), accepted: make([]atomic.Int64, 1)}
	}

	l := newLoader(true)
	l.post(context.Background(), 0, 0)
	if l.accepted[0].Load() == 0 || l.failed.Load() != 0 {
		t.Fatalf("not accepted after retries: failed %d", l.failed.Load())
	}
	if got := l.retried.Load(); got != 2 {
		t.Errorf("retried %d, want 2", got)
	}
	if len(keys) != 3 || keys[0] != "run1-0" || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Errorf("Idempotency-Key of the attempts: %q", keys)
	}
	if bodies[1] != bodies[0] || bodies[2] != bodies[0] || !strings.Contains(bodies[0], `"idempotency_key":"run1-0"`) {
		t.Errorf("bodies differ or lack the key: %q", bodies)
	}

	mu.Lock()
	keys, bodies = []string{"dropped"}, []string{""} // the next request is answered 503
	mu.Unlock()
	l = newLoader(false)
	l.post(context.Background(), 0, 0)
	if l.failed.Load() != 1 || l.accepted[0].Load() != 0 || len(keys) != 2 || l.retried.Load() != 0 {
		t.Errorf("without -retry-errors: failed %d, accepted %d, attempts %d, retried %d",
			l.failed.Load(), l.accepted[0].Load(), len(keys)-1, l.retried.Load())
	}
}
