package webhooks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/netguard"
)

// A request goes out once per Send, so that the attempt log (one row per Send) has every
// request the receiver gets: when the receiver drops a reused keep-alive connection after
// reading the request, the transport does not send it again, even with an endpoint's custom
// Idempotency-Key header (which makes Go's transport treat a POST as replayable).
func TestSendIsNotReplayedOnADroppedConnection(t *testing.T) {
	for _, headers := range []map[string]string{nil, {"Idempotency-Key": "k1"}, {"X-Idempotency-Key": "k1"}} {
		var mu sync.Mutex
		got := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got++
			n := got
			mu.Unlock()
			if n == 1 {
				return // 200, the connection is kept alive
			}
			// Every later request is read and its connection dropped without an answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		s := NewSender(&netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		req := Request{URL: srv.URL, MessageID: "msg_1", Timestamp: time.Now(), Body: []byte(`{}`),
			Keys: [][]byte{[]byte("k")}, Headers: headers, Timeout: 2 * time.Second}
		if res := s.Send(context.Background(), req); res.StatusCode != 200 {
			t.Fatalf("first request: %+v", res)
		}
		res := s.Send(context.Background(), req)
		srv.Close()
		mu.Lock()
		n := got
		mu.Unlock()
		if res.StatusCode != 0 || n != 2 {
			t.Errorf("headers %v: the receiver got %d requests for 2 sends (second answered %d %q)", headers, n, res.StatusCode, res.Err)
		}
	}
}
