package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// One-click unsubscribe (RFC 8058). Every email outside a transactional category carries
// List-Unsubscribe with a signed, expiring link to this service (and a mailto) and
// List-Unsubscribe-Post: List-Unsubscribe=One-Click. A POST to the link opts the recipient out
// of the notification's category on email; the signature is the only authentication.

// UnsubscribeTTL is how long an unsubscribe link works.
const UnsubscribeTTL = 90 * 24 * time.Hour

// UnsubscribePathPrefix is the route of unsubscribe links (followed by the token).
const UnsubscribePathPrefix = "/api/v1/unsubscribe/"

// ErrInvalidUnsubscribe: an unsubscribe token that is malformed, forged or expired.
var ErrInvalidUnsubscribe = errors.New("invalid or expired unsubscribe link")

// Unsubscribe is what an unsubscribe token names: whose address, in which category.
type Unsubscribe struct {
	TenantID     string
	Channel      string
	Address      string
	SubscriberID string
	Category     string
	Expires      time.Time
}

// UnsubscribeKey derives the signing key of unsubscribe links from the service's secret.
func UnsubscribeKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("automation-domain/unsubscribe/v1"))
	return m.Sum(nil)
}

// SignUnsubscribe makes the token of u.
func SignUnsubscribe(key []byte, u Unsubscribe) string {
	payload := strings.Join([]string{"1", u.TenantID, u.Channel, u.Address, u.SubscriberID, u.Category,
		strconv.FormatInt(u.Expires.Unix(), 10)}, "\n")
	p := base64.RawURLEncoding.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(p))
	return p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:20])
}

// VerifyUnsubscribe checks a token's signature and expiry at now and returns what it names.
func VerifyUnsubscribe(key []byte, token string, now time.Time) (Unsubscribe, error) {
	p, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 2048 {
		return Unsubscribe{}, ErrInvalidUnsubscribe
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(p))
	want := base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:20])
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return Unsubscribe{}, ErrInvalidUnsubscribe
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return Unsubscribe{}, ErrInvalidUnsubscribe
	}
	f := strings.Split(string(raw), "\n")
	if len(f) != 7 || f[0] != "1" {
		return Unsubscribe{}, ErrInvalidUnsubscribe
	}
	exp, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return Unsubscribe{}, ErrInvalidUnsubscribe
	}
	u := Unsubscribe{TenantID: f[1], Channel: f[2], Address: f[3], SubscriberID: f[4], Category: f[5], Expires: time.Unix(exp, 0).UTC()}
	if !now.Before(u.Expires) {
		return u, fmt.Errorf("%w: it expired at %s", ErrInvalidUnsubscribe, u.Expires.Format(time.RFC3339))
	}
	return u, nil
}

// UnsubscribeHeaders are the RFC 8058 headers of an email to u's address: List-Unsubscribe
// with the link under publicURL and a mailto to the sender's domain, and List-Unsubscribe-Post.
func UnsubscribeHeaders(key []byte, publicURL, from string, u Unsubscribe) map[string]string {
	token := SignUnsubscribe(key, u)
	link := strings.TrimRight(publicURL, "/") + UnsubscribePathPrefix + token
	value := "<" + link + ">"
	if a, err := mail.ParseAddress(from); err == nil {
		if _, domain, ok := strings.Cut(a.Address, "@"); ok {
			value += ", <mailto:unsubscribe@" + domain + "?subject=" + url.QueryEscape("unsubscribe "+token) + ">"
		}
	}
	return map[string]string{"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
}

// UnsubscribeResult is what an unsubscribe did.
type UnsubscribeResult struct {
	SubscriberID string `json:"subscriber_id"`
	Address      string `json:"address"`
	Channel      string `json:"channel"`
	Category     string `json:"category"`
}

// CheckUnsubscribe verifies a token without acting on it (the confirmation page).
func (s *Service) CheckUnsubscribe(token string) (Unsubscribe, error) {
	return VerifyUnsubscribe(s.unsubscribeKey, token, s.now())
}

// ApplyUnsubscribe opts the recipient a token names out of its category on its channel: the
// subscriber it names, or the tenant's subscriber with that address, created when there is
// none. Repeating it changes nothing. Errors: ErrInvalidUnsubscribe.
func (s *Service) ApplyUnsubscribe(ctx context.Context, token string) (UnsubscribeResult, error) {
	u, err := VerifyUnsubscribe(s.unsubscribeKey, token, s.now())
	if err != nil {
		return UnsubscribeResult{}, err
	}
	// The link carries no credentials of a tenant: the signed token says whose it is.
	ctx = tenant.With(ctx, u.TenantID)
	now := s.now().UTC()
	subID := u.SubscriberID
	if subID != "" {
		if _, err := s.store.GetSubscriber(ctx, subID); isNotFound(err) {
			subID = "" // deleted since: fall back to the address
		} else if err != nil {
			return UnsubscribeResult{}, err
		}
	}
	if subID == "" {
		sub, err := s.store.FindSubscriberByAddress(ctx, u.Channel, u.Address)
		switch {
		case err == nil:
			subID = sub.ID
		case isNotFound(err):
			sub = store.Subscriber{ID: store.NewID(), ExternalID: u.Channel + ":" + u.Address, Data: store.JSON("{}"),
				CreatedAt: now, UpdatedAt: now}
			if u.Channel == store.ChannelSMS {
				sub.Phone = u.Address
			} else {
				sub.Email = u.Address
			}
			if err := s.store.CreateSubscriber(ctx, &sub); err != nil && !errors.Is(err, store.ErrConflict) {
				return UnsubscribeResult{}, err
			} else if err != nil {
				existing, gerr := s.store.GetSubscriber(ctx, sub.ExternalID)
				if gerr != nil {
					return UnsubscribeResult{}, gerr
				}
				sub = existing
			}
			subID = sub.ID
		default:
			return UnsubscribeResult{}, err
		}
	}
	if err := s.store.SetPreference(ctx, &store.SubscriberPreference{SubscriberID: subID, Channel: u.Channel,
		Category: u.Category, Enabled: false, Source: "unsubscribe", UpdatedAt: now}); err != nil {
		return UnsubscribeResult{}, err
	}
	s.log.InfoContext(ctx, "unsubscribed", "subscriber_id", subID, "channel", u.Channel, "category", u.Category)
	return UnsubscribeResult{SubscriberID: subID, Address: u.Address, Channel: u.Channel, Category: u.Category}, nil
}
