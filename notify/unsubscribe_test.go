package notify

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestUnsubscribeTokens(t *testing.T) {
	key := UnsubscribeKey("secret")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	u := Unsubscribe{TenantID: "acme", Channel: "email", Address: "ada@example.com", SubscriberID: "s1",
		Category: "news", Expires: now.Add(time.Hour)}
	tok := SignUnsubscribe(key, u)
	got, err := VerifyUnsubscribe(key, tok, now)
	if err != nil || got != u {
		t.Fatalf("verify: %+v %v", got, err)
	}
	if _, err := VerifyUnsubscribe(key, tok, now.Add(2*time.Hour)); !errors.Is(err, ErrInvalidUnsubscribe) {
		t.Errorf("expired: %v", err)
	}
	if _, err := VerifyUnsubscribe(UnsubscribeKey("other"), tok, now); !errors.Is(err, ErrInvalidUnsubscribe) {
		t.Errorf("another key: %v", err)
	}
	forged := SignUnsubscribe(key, Unsubscribe{TenantID: "beta", Expires: now.Add(time.Hour)})
	p, _, _ := strings.Cut(forged, ".")
	_, sig, _ := strings.Cut(tok, ".")
	if _, err := VerifyUnsubscribe(key, p+"."+sig, now); !errors.Is(err, ErrInvalidUnsubscribe) {
		t.Errorf("payload swapped: %v", err)
	}
	for _, bad := range []string{"", ".", "abc", tok + "x"} {
		if _, err := VerifyUnsubscribe(key, bad, now); !errors.Is(err, ErrInvalidUnsubscribe) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// The headers follow RFC 8058: List-Unsubscribe holds an HTTPS URI (and a mailto) in angle
// brackets, List-Unsubscribe-Post exactly List-Unsubscribe=One-Click.
func TestUnsubscribeHeaders(t *testing.T) {
	key := UnsubscribeKey("secret")
	h := UnsubscribeHeaders(key, "https://api.example.com/", "Acme <noreply@acme.example>", Unsubscribe{
		TenantID: "acme", Channel: "email", Address: "ada@example.com", Expires: time.Now().Add(time.Hour)})
	if h["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
		t.Errorf("post header %q", h["List-Unsubscribe-Post"])
	}
	m := regexp.MustCompile(`^<(https://api\.example\.com/api/v1/unsubscribe/[A-Za-z0-9_.-]+)>, <(mailto:unsubscribe@acme\.example\?subject=[^>]+)>$`).
		FindStringSubmatch(h["List-Unsubscribe"])
	if m == nil {
		t.Fatalf("List-Unsubscribe %q", h["List-Unsubscribe"])
	}
	tok := strings.TrimPrefix(m[1], "https://api.example.com"+UnsubscribePathPrefix)
	if _, err := VerifyUnsubscribe(key, tok, time.Now()); err != nil {
		t.Errorf("link token: %v", err)
	}
	mu, _ := url.Parse(m[2])
	if mu.Query().Get("subject") != "unsubscribe "+tok {
		t.Errorf("mailto subject %q", mu.Query().Get("subject"))
	}
}
