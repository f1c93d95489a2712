package webhooks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Inbound verification schemes.
const (
	// SchemeStandard is Standard Webhooks v1 (webhook-id, webhook-timestamp, webhook-signature;
	// Svix's svix-* headers are accepted too).
	SchemeStandard = "standard_webhooks"
	// SchemeHMAC is GitHub-style: a header carrying "sha256=" + hex HMAC-SHA256 of the body.
	SchemeHMAC = "hmac_sha256"
)

// Inbound defaults.
const (
	DefaultTolerance    = 5 * time.Minute
	DefaultHMACHeader   = "X-Hub-Signature-256"
	DefaultHMACIDHeader = "X-GitHub-Delivery"
	DefaultInboundType  = "webhook.received"
	// DefaultReplayWindow is how long replay keys are remembered when Settings.ReplayWindow is
	// unset (EVENT_RETENTION's default).
	DefaultReplayWindow    = 720 * time.Hour
	maxSourceNameLength    = 64
	maxInboundTypeSegments = 32
)

// ErrReplay refuses an inbound webhook that was accepted before: the same webhook id or, for
// hmac_sha256 sources, the same signed body.
var ErrReplay = errors.New("this webhook was received already")

var sourceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Source is a sender of inbound webhooks, as the API shows it (never with its secret).
type Source struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	Description      string    `json:"description"`
	Scheme           string    `json:"scheme"`
	SignatureHeader  string    `json:"signature_header,omitempty"`
	IDHeader         string    `json:"id_header,omitempty"`
	EventTypeHeader  string    `json:"event_type_header,omitempty"`
	EventTypePath    string    `json:"event_type_path,omitempty"`
	DefaultEventType string    `json:"default_event_type"`
	ToleranceSeconds int       `json:"tolerance_seconds"`
	InboundPath      string    `json:"inbound_path"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// CreatedSource is a new source with its secret, shown once.
type CreatedSource struct {
	Source
	Secret string `json:"secret"`
}

// SourceInput creates a source.
type SourceInput struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Scheme is standard_webhooks (default) or hmac_sha256.
	Scheme string `json:"scheme"`
	// Secret verifies signatures; empty generates one.
	Secret string `json:"secret"`
	// SignatureHeader and IDHeader name the headers of the hmac_sha256 scheme (defaults
	// X-Hub-Signature-256 and X-GitHub-Delivery). A request is refused as a replay when its
	// signature (so its body) was seen, or its id: the id header is not signed, so anyone who
	// captured a request could otherwise send it again under a new id.
	SignatureHeader string `json:"signature_header"`
	IDHeader        string `json:"id_header"`
	// The event type is read from EventTypePath in the JSON body ("type", "data.kind",
	// "action"), else from EventTypeHeader, else DefaultEventType (webhook.received). The body is
	// signed; a header is not, and can be changed by whoever relays or captured the request.
	EventTypeHeader  string `json:"event_type_header"`
	EventTypePath    string `json:"event_type_path"`
	DefaultEventType string `json:"default_event_type"`
	// ToleranceSeconds bounds the clock difference of signed timestamps (default 300).
	ToleranceSeconds int `json:"tolerance_seconds"`
}

// CreateSource validates and stores a source.
func (s *Service) CreateSource(ctx context.Context, in SourceInput) (CreatedSource, error) {
	var p validation.Problems
	switch {
	case in.Name == "":
		p.Add("name", "is required")
	case len(in.Name) > maxSourceNameLength || !sourceName.MatchString(in.Name):
		p.Add("name", "must be lower-case letters, digits, '-' and '_' (at most %d), as it appears in the URL", maxSourceNameLength)
	}
	if len(in.Description) > maxDescription {
		p.Add("description", "must be at most %d characters", maxDescription)
	}
	if in.Scheme == "" {
		in.Scheme = SchemeStandard
	}
	switch in.Scheme {
	case SchemeStandard:
		if in.SignatureHeader != "" || in.IDHeader != "" {
			p.Add("signature_header", "applies to the hmac_sha256 scheme only")
		}
	case SchemeHMAC:
		if in.SignatureHeader == "" {
			in.SignatureHeader = DefaultHMACHeader
		}
		if in.IDHeader == "" {
			in.IDHeader = DefaultHMACIDHeader
		}
		for field, h := range map[string]string{"signature_header": in.SignatureHeader, "id_header": in.IDHeader} {
			if !validHeaderName(h) {
				p.Add(field, "is not a valid header name")
			}
		}
	default:
		p.Add("scheme", "must be %s or %s, got %q", SchemeStandard, SchemeHMAC, in.Scheme)
	}
	if in.EventTypeHeader != "" && !validHeaderName(in.EventTypeHeader) {
		p.Add("event_type_header", "is not a valid header name")
	}
	if in.EventTypePath != "" && (strings.Contains(in.EventTypePath, "..") || strings.Count(in.EventTypePath, ".") >= maxInboundTypeSegments) {
		p.Add("event_type_path", "must be a dot path into the body such as \"type\" or \"data.kind\"")
	}
	if in.DefaultEventType == "" {
		in.DefaultEventType = DefaultInboundType
	}
	if msg := ValidEventType(in.DefaultEventType); msg != "" {
		p.Add("default_event_type", "%s", msg)
	}
	if in.ToleranceSeconds == 0 {
		in.ToleranceSeconds = int(DefaultTolerance / time.Second)
	}
	if in.ToleranceSeconds < 1 || in.ToleranceSeconds > 3600 {
		p.Add("tolerance_seconds", "must be from 1 to 3600")
	}
	if in.Secret != "" {
		if _, err := SigningKey(in.Secret); err != nil {
			p.Add("secret", "%v", err)
		}
	}
	if err := p.Err(); err != nil {
		return CreatedSource{}, err
	}
	secret := in.Secret
	if secret == "" {
		var err error
		if secret, err = newSourceSecret(in.Scheme); err != nil {
			return CreatedSource{}, err
		}
	}
	now := s.now()
	src := store.WebhookSource{
		ID: store.NewID(), Name: in.Name, Description: in.Description, Scheme: in.Scheme,
		SignatureHeader: in.SignatureHeader, IDHeader: in.IDHeader, EventTypeHeader: in.EventTypeHeader,
		EventTypePath: in.EventTypePath, DefaultEventType: in.DefaultEventType,
		ToleranceSeconds: in.ToleranceSeconds, CreatedAt: now, UpdatedAt: now,
	}
	sealed, err := s.secrets.Seal(secret, src.ID)
	if err != nil {
		return CreatedSource{}, err
	}
	src.Secret = sealed
	if err := s.store.CreateWebhookSource(ctx, &src); err != nil {
		if errors.Is(err, store.ErrConflict) {
			var p validation.Problems
			p.Add("name", "a source named %q exists", in.Name)
			return CreatedSource{}, p
		}
		return CreatedSource{}, fmt.Errorf("create source: %w", err)
	}
	return CreatedSource{Source: sourceView(src), Secret: secret}, nil
}

func newSourceSecret(scheme string) (string, error) {
	if scheme == SchemeStandard {
		return GenerateSecret()
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func sourceView(src store.WebhookSource) Source {
	return Source{
		ID: src.ID, Name: src.Name, Description: src.Description, Scheme: src.Scheme,
		SignatureHeader: src.SignatureHeader, IDHeader: src.IDHeader, EventTypeHeader: src.EventTypeHeader,
		EventTypePath: src.EventTypePath, DefaultEventType: src.DefaultEventType,
		ToleranceSeconds: src.ToleranceSeconds, InboundPath: inboundPath(src),
		CreatedAt: src.CreatedAt, UpdatedAt: src.UpdatedAt,
	}
}

// inboundPath is where src's sender posts: the default tenant's sources by name, as before
// tenants; another tenant's by id, since names are unique only per tenant.
func inboundPath(src store.WebhookSource) string {
	if src.TenantID == "" || src.TenantID == tenant.Default {
		return "/api/v1/webhooks/inbound/" + src.Name
	}
	return "/api/v1/webhooks/inbound/" + src.ID
}

// GetSource returns a source by id or name.
func (s *Service) GetSource(ctx context.Context, idOrName string) (Source, error) {
	src, err := s.store.GetWebhookSource(ctx, idOrName)
	if err != nil {
		return Source{}, err
	}
	return sourceView(src), nil
}

// ListSources returns a page of sources, newest first.
func (s *Service) ListSources(ctx context.Context, p store.Page) ([]Source, string, error) {
	rows, next, err := s.store.ListWebhookSources(ctx, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]Source, len(rows))
	for i, src := range rows {
		out[i] = sourceView(src)
	}
	return out, next, nil
}

// DeleteSource deletes a source by id or name; its URL answers 404 from then on.
func (s *Service) DeleteSource(ctx context.Context, idOrName string) error {
	src, err := s.store.GetWebhookSource(ctx, idOrName)
	if err != nil {
		return err
	}
	return s.store.DeleteWebhookSource(ctx, src.ID)
}

// Inbound is an inbound webhook recorded as an event.
type Inbound struct {
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	WebhookID string `json:"webhook_id,omitempty"`
}

// Receive verifies an inbound webhook from the named source and records its body as an event
// (for automation rules). A bad or missing signature or a stale timestamp returns an error
// matching ErrBadSignature, ErrMissingHeaders or ErrStaleTimestamp; a webhook seen before (within
// the replay window) returns ErrReplay. Nothing is recorded in those cases.
func (s *Service) Receive(ctx context.Context, name string, header http.Header, body []byte) (Inbound, error) {
	// Sources are per tenant: the one the path names (by id, or by name) says whose the message
	// is, and the rest acts for that tenant.
	src, err := s.store.InboundWebhookSource(ctx, name)
	if err != nil {
		return Inbound{}, err
	}
	ctx = tenant.With(ctx, src.TenantID)
	secret, err := s.secrets.Open(src.Secret, src.ID)
	if err != nil {
		return Inbound{}, fmt.Errorf("source %s: %w", src.Name, err)
	}
	now := s.now()
	var webhookID string
	var replayKeys []string
	switch src.Scheme {
	case SchemeStandard:
		key, err := SigningKey(secret)
		if err != nil {
			return Inbound{}, fmt.Errorf("source %s: %w", src.Name, err)
		}
		webhookID = firstHeader(header, HeaderID, "svix-id")
		if err := VerifyStandard([][]byte{key}, webhookID, firstHeader(header, HeaderTimestamp, "svix-timestamp"),
			firstHeader(header, HeaderSignature, "svix-signature"), body, now,
			time.Duration(src.ToleranceSeconds)*time.Second); err != nil {
			return Inbound{}, err
		}
		// The id is signed with the body and the timestamp: it is the message's identity.
		replayKeys = []string{webhookID}
	case SchemeHMAC:
		digest, err := VerifyHexHMAC([]byte(secret), header.Get(src.SignatureHeader), body)
		if err != nil {
			return Inbound{}, err
		}
		// Only the body is signed. Its signature is the key nobody without the secret can vary;
		// the sender's id (unsigned) is remembered too, so a redelivery of the same id is a replay.
		webhookID = header.Get(src.IDHeader)
		replayKeys = []string{"sha256=" + hex.EncodeToString(digest)}
		if webhookID != "" {
			replayKeys = append(replayKeys, webhookID)
		}
	default:
		return Inbound{}, fmt.Errorf("source %s: unknown scheme %q", src.Name, src.Scheme)
	}
	if len(webhookID) > 255 {
		return Inbound{}, fmt.Errorf("%w: the webhook id is longer than 255 characters", ErrMissingHeaders)
	}
	eventType, err := inboundType(src, header, body)
	if err != nil {
		return Inbound{}, err
	}
	eventID, err := s.claimReplayKeys(ctx, src.ID, replayKeys, store.NewID(), now)
	if err != nil {
		return Inbound{}, err
	}
	data := json.RawMessage(body)
	// Bodies that are not JSON (or carry \u0000, which Postgres' JSONB refuses) are kept as text.
	if !json.Valid(body) || bytes.Contains(body, []byte(`\u0000`)) {
		data = json.RawMessage(store.MustJSON(map[string]string{"raw": string(body), "content_type": header.Get("Content-Type")}))
	}
	e, _, err := s.events.Publish(ctx, store.Event{ID: eventID, Type: eventType, Source: "webhook/" + src.Name,
		Subject: webhookID, Data: store.JSON(data), OccurredAt: now})
	if err != nil {
		_ = s.store.ForgetWebhookSeen(context.WithoutCancel(ctx), src.ID, replayKeys...)
		return Inbound{}, fmt.Errorf("record inbound webhook: %w", err)
	}
	return Inbound{EventID: e.ID, EventType: e.Type, WebhookID: webhookID}, nil
}

// claimReplayKeys records the webhook's replay keys before its event is stored, so that a replay
// racing the first request is refused. When a previous request recorded a key but stopped before
// its event was stored (and did not get to forget the key), its event id is reused: the sender's
// retry completes it.
func (s *Service) claimReplayKeys(ctx context.Context, sourceID string, keys []string, eventID string, now time.Time) (string, error) {
	rows := func(eventID string, keys []string) []store.WebhookInboundSeen {
		out := make([]store.WebhookInboundSeen, len(keys))
		for i, k := range keys {
			out[i] = store.WebhookInboundSeen{SourceID: sourceID, WebhookID: k, EventID: eventID, SeenAt: now}
		}
		return out
	}
	err := s.store.MarkWebhookSeen(ctx, rows(eventID, keys)...)
	if err == nil {
		return eventID, nil
	}
	if !errors.Is(err, store.ErrConflict) {
		return "", err
	}
	seen, err := s.store.WebhookSeen(ctx, sourceID, keys...)
	if err != nil {
		return "", err
	}
	if len(seen) == 0 { // forgotten meanwhile by a request that failed: a replay of nothing
		return "", ErrReplay
	}
	for _, x := range seen {
		if now.Sub(x.SeenAt) <= time.Minute { // possibly still in flight
			return "", ErrReplay
		}
		if _, err := s.store.GetEvent(ctx, x.EventID); err == nil {
			return "", ErrReplay
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	reuse := seen[0].EventID
	var missing []string
	for _, k := range keys {
		if !slices.ContainsFunc(seen, func(x store.WebhookInboundSeen) bool { return x.WebhookID == k }) {
			missing = append(missing, k)
		}
	}
	if err := s.store.MarkWebhookSeen(ctx, rows(reuse, missing)...); err != nil {
		return "", err
	}
	return reuse, nil
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// inboundType reads the event type from the configured JSON path of the (signed) body, else
// from the configured (unsigned) header, else it is the default.
func inboundType(src store.WebhookSource, header http.Header, body []byte) (string, error) {
	t, from := "", ""
	if src.EventTypePath != "" {
		t, from = jsonPathString(body, src.EventTypePath), "body path "+src.EventTypePath
	}
	if t == "" && src.EventTypeHeader != "" {
		t, from = strings.TrimSpace(header.Get(src.EventTypeHeader)), "header "+src.EventTypeHeader
	}
	if t == "" {
		return src.DefaultEventType, nil
	}
	if msg := ValidEventType(t); msg != "" {
		var p validation.Problems
		p.Add(from, "event type %q %s", t, msg)
		return "", p
	}
	return t, nil
}

// jsonPathString follows a dot path ("data.kind", "items.0.type") into a JSON document and
// returns the string (or number) found there, or "".
func jsonPathString(body []byte, path string) string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	for _, seg := range strings.Split(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			v = node[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return ""
			}
			v = node[i]
		default:
			return ""
		}
	}
	switch leaf := v.(type) {
	case string:
		return leaf
	case float64:
		return strconv.FormatFloat(leaf, 'f', -1, 64)
	}
	return ""
}
