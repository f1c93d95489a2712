package webhooks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pyairtable/automation-domain/netguard"
)

func headers(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h
}

// Our signatures verify with the official Standard Webhooks library, and its signatures with
// our verifier.
func TestSignaturesAgreeWithTheOfficialLibrary(t *testing.T) {
	secret, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q", secret)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if len(raw) < 24 || len(raw) > 64 {
		t.Fatalf("secret of %d bytes", len(raw))
	}
	key, err := SigningKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"workflow.completed","timestamp":"2025-01-01T00:00:00Z","data":{"id":1}}`)
	now := time.Now()
	sig := Sign("msg_1", now, body, key)
	official, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := official.Verify(body, headers("msg_1", now, sig)); err != nil {
		t.Fatalf("official library refuses our signature: %v", err)
	}
	if err := official.Verify(append(body, ' '), headers("msg_1", now, sig)); err == nil {
		t.Error("a changed body verified")
	}
	if err := official.Verify(body, headers("msg_2", now, sig)); err == nil {
		t.Error("another message id verified")
	}

	// Its signature, our verifier.
	theirs, err := official.Sign("msg_3", now, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyStandard([][]byte{key}, "msg_3", strconv.FormatInt(now.Unix(), 10), theirs, body, now, 5*time.Minute); err != nil {
		t.Errorf("our verifier refuses the library's signature: %v", err)
	}
	stale := now.Add(-6 * time.Minute)
	old, _ := official.Sign("msg_4", stale, body)
	if err := VerifyStandard([][]byte{key}, "msg_4", strconv.FormatInt(stale.Unix(), 10), old, body, now, 5*time.Minute); !errors.Is(err, ErrStaleTimestamp) {
		t.Errorf("stale timestamp: %v", err)
	}
	if err := VerifyStandard([][]byte{key}, "msg_3", strconv.FormatInt(now.Unix(), 10), "v1,AAAA", body, now, 5*time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("bad signature: %v", err)
	}
}

// During a rotation both secrets sign; a receiver holding either one verifies.
func TestRotationSignsWithBothSecrets(t *testing.T) {
	oldSecret, _ := GenerateSecret()
	newSecret, _ := GenerateSecret()
	oldKey, _ := SigningKey(oldSecret)
	newKey, _ := SigningKey(newSecret)
	body := []byte(`{"a":1}`)
	now := time.Now()
	sig := Sign("msg", now, body, newKey, oldKey)
	if n := len(strings.Fields(sig)); n != 2 {
		t.Fatalf("%d signatures in %q", n, sig)
	}
	for _, s := range []string{oldSecret, newSecret} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.Verify(body, headers("msg", now, sig)); err != nil {
			t.Errorf("a receiver with one of the secrets refuses: %v", err)
		}
	}
	other, _ := GenerateSecret()
	wh, _ := standardwebhooks.NewWebhook(other)
	if err := wh.Verify(body, headers("msg", now, sig)); err == nil {
		t.Error("an unrelated secret verified")
	}
}

// A secret that is not whsec_ (the seed's "webhook_secret_key") signs with its raw bytes.
func TestRawSecrets(t *testing.T) {
	key, err := SigningKey("webhook_secret_key")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{}`)
	now := time.Now()
	wh, _ := standardwebhooks.NewWebhookRaw([]byte("webhook_secret_key"))
	if err := wh.Verify(body, headers("m", now, Sign("m", now, body, key))); err != nil {
		t.Errorf("raw secret: %v", err)
	}
	for _, bad := range []string{"short", "whsec_not*base64", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 8))} {
		if _, err := SigningKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestHexHMAC(t *testing.T) {
	key := []byte("github-secret")
	body := []byte(`{"action":"opened"}`)
	sig := SignHexHMAC(key, body)
	digest, err := VerifyHexHMAC(key, sig, body)
	if !strings.HasPrefix(sig, "sha256=") || err != nil || "sha256="+hex.EncodeToString(digest) != sig {
		t.Fatalf("round trip: %s → %x %v", sig, digest, err)
	}
	// Upper-case hex is the same signature (and the same digest, the replay key).
	if d, err := VerifyHexHMAC(key, "sha256="+strings.ToUpper(sig[7:]), body); err != nil || !bytes.Equal(d, digest) {
		t.Errorf("upper-case hex: %x %v", d, err)
	}
	for _, bad := range []string{"", "sha1=abc", "sha256=zz", SignHexHMAC([]byte("other"), body)} {
		if _, err := VerifyHexHMAC(key, bad, body); err == nil {
			t.Errorf("%q verified", bad)
		}
	}
}

func TestFilters(t *testing.T) {
	cases := []struct {
		filters []string
		event   string
		want    bool
	}{
		{[]string{"*"}, "workflow.completed", true},
		{[]string{"workflow.completed"}, "workflow.completed", true},
		{[]string{"workflow.completed"}, "workflow.failed", false},
		{[]string{"workflow.*"}, "workflow.failed", true},
		{[]string{"workflow.*"}, "workflow.step.failed", true},
		{[]string{"workflow.*"}, "workflow", false},
		{[]string{"workflow.*"}, "notification.sent", false},
		{[]string{"*.failed"}, "notification.failed", true},
		{[]string{"*.failed"}, "notification.sent", false},
		{[]string{"a.*.c"}, "a.b.c", true},
		{[]string{"a.*.c"}, "a.b.d", false},
		{[]string{"notification.sent", "workflow.*"}, "workflow.completed", true},
		{nil, "workflow.completed", false},
	}
	for _, c := range cases {
		if got := Matches(c.filters, c.event); got != c.want {
			t.Errorf("%v %s: %v, want %v", c.filters, c.event, got, c.want)
		}
	}
	for _, bad := range []string{"", "a..b", "wo*rk", "a b", strings.Repeat("a", 200)} {
		if ValidFilter(bad) == "" {
			t.Errorf("filter %q accepted", bad)
		}
	}
	if ValidEventType("workflow.*") == "" {
		t.Error("a wildcard accepted as an event type")
	}
}

func TestRetrySchedule(t *testing.T) {
	s := DefaultRetrySchedule
	if MaxAttempts(0, s) != 8 || MaxAttempts(3, s) != 3 {
		t.Fatalf("max attempts %d %d", MaxAttempts(0, s), MaxAttempts(3, s))
	}
	for made, want := range map[int]time.Duration{1: 5 * time.Second, 2: 5 * time.Minute, 4: 2 * time.Hour, 7: 10 * time.Hour} {
		d, ok := RetryDelay(s, 8, made, 0.5)
		if !ok || d != want {
			t.Errorf("after %d attempts: %s %v, want %s", made, d, ok, want)
		}
		lo, _ := RetryDelay(s, 8, made, 0)
		hi, _ := RetryDelay(s, 8, made, 0.9999)
		if lo < time.Duration(float64(want)*0.79) || hi > time.Duration(float64(want)*1.21) || lo >= hi {
			t.Errorf("jitter after %d: %s..%s around %s", made, lo, hi, want)
		}
	}
	if _, ok := RetryDelay(s, 8, 8, 0.5); ok {
		t.Error("a ninth attempt was scheduled")
	}
	if d, ok := RetryDelay(s, 20, 12, 0.5); !ok || d != 10*time.Hour {
		t.Errorf("past the schedule's end: %s %v", d, ok)
	}
}

func TestJudge(t *testing.T) {
	cases := []struct {
		res  Response
		want Verdict
	}{
		{Response{StatusCode: 200}, Verdict{Success: true}},
		{Response{StatusCode: 204}, Verdict{Success: true}},
		{Response{StatusCode: 302}, Verdict{Retryable: true}},
		{Response{StatusCode: 400}, Verdict{}},
		{Response{StatusCode: 404}, Verdict{}},
		{Response{StatusCode: 408}, Verdict{Retryable: true}},
		{Response{StatusCode: 409}, Verdict{Retryable: true}},
		{Response{StatusCode: 410}, Verdict{Gone: true}},
		{Response{StatusCode: 425}, Verdict{Retryable: true}},
		{Response{StatusCode: 429, RetryAfter: 30 * time.Second}, Verdict{Retryable: true, Pause: 30 * time.Second}},
		{Response{StatusCode: 500}, Verdict{Retryable: true}},
		{Response{StatusCode: 503, RetryAfter: time.Minute}, Verdict{Retryable: true, Pause: time.Minute}},
		{Response{Err: "connection refused"}, Verdict{Retryable: true}},
		{Response{Err: "blocked", Blocked: true}, Verdict{}},
	}
	for _, c := range cases {
		if got := Judge(c.res); got != c.want {
			t.Errorf("%+v: %+v, want %+v", c.res, got, c.want)
		}
	}
	now := time.Now()
	if d := parseRetryAfter(now.Add(2*time.Minute).UTC().Format(http.TimeFormat), now); d < 119*time.Second || d > 2*time.Minute {
		t.Errorf("HTTP-date Retry-After: %s", d)
	}
	if d := parseRetryAfter("999999", now); d != MaxRetryAfter {
		t.Errorf("capped Retry-After: %s", d)
	}
}

func TestSecretBox(t *testing.T) {
	box, err := NewSecretBox("service-secret")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal("whsec_abc", "endpoint-1")
	if err != nil || strings.Contains(sealed, "whsec_abc") {
		t.Fatalf("sealed %q %v", sealed, err)
	}
	if got, err := box.Open(sealed, "endpoint-1"); err != nil || got != "whsec_abc" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := box.Open(sealed, "endpoint-2"); err == nil {
		t.Error("a secret opened for another row")
	}
	other, _ := NewSecretBox("another-service-secret")
	if _, err := other.Open(sealed, "endpoint-1"); err == nil {
		t.Error("a secret opened with another WEBHOOK_SECRET_KEY")
	}
}

// The sender signs, sends the body as is, keeps a bounded part of the response and never
// follows a redirect.
func TestSender(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody = make([]byte, r.ContentLength)
		_, _ = r.Body.Read(gotBody)
		switch r.URL.Path {
		case "/big":
			w.Header().Set("X-Request-Id", "rq-1")
			w.Header().Set("Set-Cookie", "secret=1")
			_, _ = w.Write([]byte(strings.Repeat("x", 50_000)))
		case "/redirect":
			http.Redirect(w, r, "http://10.0.0.1/internal", http.StatusFound)
		case "/busy":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/binary":
			_, _ = w.Write([]byte{'o', 'k', 0, 0xff, 0xfe})
		}
	}))
	defer srv.Close()
	policy := &netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	s := NewSender(policy)
	secret, _ := GenerateSecret()
	key, _ := SigningKey(secret)
	body := []byte(`{"type":"a.b","timestamp":"t","data":{}}`)
	req := Request{URL: srv.URL + "/big", MessageID: "msg_1", Timestamp: time.Now(), Body: body, Keys: [][]byte{key},
		Headers: map[string]string{"X-Tenant": "t1"}, Timeout: 2 * time.Second}
	res := s.Send(context.Background(), req)
	if res.StatusCode != 200 || len(res.Body) != MaxResponseBody || res.Header["X-Request-Id"] != "rq-1" || res.Header["Set-Cookie"] != "" {
		t.Fatalf("response kept: %d, %d bytes, headers %v", res.StatusCode, len(res.Body), res.Header)
	}
	if got.Header.Get("X-Tenant") != "t1" || got.Header.Get("Content-Type") != "application/json" || string(gotBody) != string(body) {
		t.Errorf("request: %v %s", got.Header, gotBody)
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(gotBody, got.Header); err != nil {
		t.Errorf("the official library refuses what the receiver got: %v", err)
	}

	req.URL = srv.URL + "/binary"
	if res := s.Send(context.Background(), req); strings.ContainsRune(res.Body, 0) || !utf8.ValidString(res.Body) || !strings.HasPrefix(res.Body, "ok") {
		t.Errorf("a binary body is kept as %q", res.Body)
	}
	req.URL = srv.URL + "/redirect"
	if res := s.Send(context.Background(), req); res.StatusCode != 302 || Judge(res).Success {
		t.Errorf("redirect: %+v", res)
	}
	req.URL = srv.URL + "/busy"
	if res := s.Send(context.Background(), req); Judge(res).Pause != 7*time.Second {
		t.Errorf("Retry-After: %+v", res)
	}
	req.URL, req.Timeout = srv.URL+"/slow", 50*time.Millisecond
	if res := s.Send(context.Background(), req); res.Err == "" || !Judge(res).Retryable {
		t.Errorf("timeout: %+v", res)
	}
	// A destination the guard refuses is never dialled, and that is final.
	strict := NewSender(&netguard.Policy{})
	req.URL, req.Timeout = srv.URL+"/big", time.Second
	if res := strict.Send(context.Background(), req); !res.Blocked || Judge(res).Retryable {
		t.Errorf("blocked destination: %+v", res)
	}
}
