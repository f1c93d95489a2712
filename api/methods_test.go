package api

import (
	"fmt"
	"testing"

	"go.temporal.io/api/serviceerror"
)

// A wrong method on a known path answers 405 with Allow naming the methods the path has, in
// the one error shape, at the top level and under /api/v1 (where the group's catch-all route
// used to answer 404); OPTIONS answers 204 with the same Allow; an unknown path stays 404.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	s := newTestServer(t, nil)
	key := []string{"X-API-Key", testKey}
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/health", "OPTIONS, GET"},
		{"DELETE", "/api/v1/events", "OPTIONS, GET, POST"},
		{"PATCH", "/api/v1/workflows/some-id", "OPTIONS, DELETE, GET, PUT"},
		{"GET", "/api/v1/workflows/some-id/execute", "OPTIONS, POST"},
		{"PUT", "/api/v1/webhooks/endpoints/some-id", "OPTIONS, DELETE, GET, PATCH"},
	} {
		r := s.do(t, tc.method, tc.path, nil, key...)
		if r.StatusCode != 405 || r.errorCode(t) != "method_not_allowed" {
			t.Errorf("%s %s: %d %s, want 405 method_not_allowed", tc.method, tc.path, r.StatusCode, r.body)
		}
		if got := r.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		r = s.do(t, "OPTIONS", tc.path, nil, key...)
		if r.StatusCode != 204 || r.Header.Get("Allow") != tc.allow {
			t.Errorf("OPTIONS %s: %d Allow %q, want 204 %q", tc.path, r.StatusCode, r.Header.Get("Allow"), tc.allow)
		}
	}
	for _, path := range []string{"/api/v1/nope", "/api/v1/workflows/a/b/c", "/api/v1"} {
		r := s.do(t, "GET", path, nil, key...)
		if r.StatusCode != 404 || r.errorCode(t) != "not_found" || r.Header.Get("Allow") != "" {
			t.Errorf("GET %s: %d Allow %q %s, want a plain 404", path, r.StatusCode, r.Header.Get("Allow"), r.body)
		}
	}
	// Authentication still comes first: the methods of /api/v1 are not shown to anonymous callers.
	if r := s.do(t, "DELETE", "/api/v1/events", nil); r.StatusCode != 401 {
		t.Errorf("anonymous wrong method: %d, want 401", r.StatusCode)
	}
}

// Temporal not knowing the namespace (yet) is a 503 with Retry-After, like Temporal down: the
// request may be tried again, and it is no internal error.
func TestUnknownNamespaceIs503(t *testing.T) {
	s := newTestServer(t, nil)
	e := s.toAPIError(fmt.Errorf("start: %w", serviceerror.NewNamespaceNotFound("late")))
	if e.Status != 503 || e.RetryAfter == 0 {
		t.Errorf("namespace not found: %d (Retry-After %d), want 503 with Retry-After", e.Status, e.RetryAfter)
	}
}
