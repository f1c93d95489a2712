package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Endpoint is a registered receiver as the API shows it (never with its secret).
type Endpoint struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	// Headers are the custom headers' names, each with the value RedactedHeaderValue: values
	// (often credentials) are stored encrypted and never shown.
	Headers map[string]string `json:"headers"`
	Enabled bool              `json:"enabled"`
	// DisabledReason says why it was disabled ("" when enabled).
	DisabledReason     string     `json:"disabled_reason,omitempty"`
	DisabledAt         *time.Time `json:"disabled_at,omitempty"`
	RateLimitPerSecond int        `json:"rate_limit_per_second"`
	Ordered            bool       `json:"ordered"`
	// MaxAttempts and RetrySchedule are the effective values (the service defaults unless set).
	MaxAttempts          int      `json:"max_attempts"`
	RetrySchedule        []string `json:"retry_schedule"`
	TimeoutSeconds       int      `json:"timeout_seconds"`
	DisableAfterFailures int      `json:"disable_after_failures"`
	// FailingSince is the first failed request since the last success; ConsecutiveFailures the
	// deliveries that failed for good since then.
	FailingSince        *time.Time `json:"failing_since,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	// CircuitOpenUntil is set while the circuit breaker holds the endpoint (then one probe
	// decides); PausedUntil while a receiver's Retry-After does.
	CircuitOpenUntil *time.Time `json:"circuit_open_until,omitempty"`
	PausedUntil      *time.Time `json:"paused_until,omitempty"`
	// SendTraceparent: requests carry the W3C traceparent of the trace that caused them.
	SendTraceparent bool `json:"send_traceparent"`
	// Filter and Transform are the endpoint's expr condition and jq program ("": none; see
	// transform.go).
	Filter    string `json:"filter"`
	Transform string `json:"transform"`
	// Type is http, nats or amqp; a broker endpoint's URL is shown with its password redacted.
	Type       string    `json:"type"`
	Subject    string    `json:"subject,omitempty"`
	Exchange   string    `json:"exchange,omitempty"`
	RoutingKey string    `json:"routing_key,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// EndpointInput creates an endpoint (the seed's name, url, events, secret and the rest).
type EndpointInput struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	// Secret signs the requests; empty generates a whsec_ secret.
	Secret               string            `json:"secret"`
	Headers              map[string]string `json:"headers"`
	Enabled              *bool             `json:"enabled"`
	RateLimitPerSecond   int               `json:"rate_limit_per_second"`
	Ordered              bool              `json:"ordered"`
	MaxAttempts          int               `json:"max_attempts"`
	RetrySchedule        []string          `json:"retry_schedule"`
	TimeoutSeconds       int               `json:"timeout_seconds"`
	DisableAfterFailures int               `json:"disable_after_failures"`
	// SendTraceparent (default true) sends the W3C traceparent header with each request.
	SendTraceparent *bool  `json:"send_traceparent"`
	Filter          string `json:"filter"`
	Transform       string `json:"transform"`
	// Type is http (default), nats or amqp. For a broker, URL is the broker's (credentials
	// allowed; stored encrypted) and the message goes to Subject (nats) or Exchange with
	// RoutingKey (amqp).
	Type       string `json:"type"`
	Subject    string `json:"subject"`
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
}

// RedactedHeaderValue stands for a custom header's value in what the API shows. In a PATCH it
// keeps the header's stored value, so that an endpoint read and written back keeps its headers.
const RedactedHeaderValue = "[redacted]"

// EndpointPatch changes the fields that are set. Headers replaces every custom header; a value
// of RedactedHeaderValue keeps that header's stored value.
type EndpointPatch struct {
	Name                 *string            `json:"name"`
	Description          *string            `json:"description"`
	URL                  *string            `json:"url"`
	Events               *[]string          `json:"events"`
	Headers              *map[string]string `json:"headers"`
	Enabled              *bool              `json:"enabled"`
	RateLimitPerSecond   *int               `json:"rate_limit_per_second"`
	Ordered              *bool              `json:"ordered"`
	MaxAttempts          *int               `json:"max_attempts"`
	RetrySchedule        *[]string          `json:"retry_schedule"`
	TimeoutSeconds       *int               `json:"timeout_seconds"`
	DisableAfterFailures *int               `json:"disable_after_failures"`
	SendTraceparent      *bool              `json:"send_traceparent"`
	Filter               *string            `json:"filter"`
	Transform            *string            `json:"transform"`
	// The destination of a broker endpoint (its type cannot change).
	Subject    *string `json:"subject"`
	Exchange   *string `json:"exchange"`
	RoutingKey *string `json:"routing_key"`
}

// Limits of endpoint settings.
const (
	maxNameLength    = 200
	maxDescription   = 2000
	maxURLLength     = 2048
	maxFilters       = 100
	maxHeaders       = 20
	maxHeaderValue   = 1000
	maxRatePerSecond = 10000
	maxAttemptsLimit = 100
)

// reservedHeaders are set by the sender and cannot be configured.
var reservedHeaders = map[string]bool{
	"webhook-id": true, "webhook-timestamp": true, "webhook-signature": true, "content-type": true,
	"content-length": true, "host": true, "transfer-encoding": true, "connection": true,
}

// CreateEndpoint validates and stores a new endpoint. The URL is refused (422) when the SSRF
// guard does not allow it.
func (s *Service) CreateEndpoint(ctx context.Context, in EndpointInput) (Endpoint, error) {
	var p validation.Problems
	in.Name = strings.TrimSpace(in.Name)
	checkName(&p, in.Name)
	if len(in.Description) > maxDescription {
		p.Add("description", "must be at most %d characters", maxDescription)
	}
	if in.Type == "" {
		in.Type = TypeHTTP
	}
	dest := destination{Type: in.Type, URL: in.URL, Subject: in.Subject, Exchange: in.Exchange, RoutingKey: in.RoutingKey}
	s.checkDestination(ctx, &p, dest)
	if in.Events == nil {
		in.Events = []string{"*"}
	}
	checkFilters(&p, in.Events)
	checkHeaders(&p, in.Headers, nil)
	schedule := checkSchedule(&p, in.RetrySchedule)
	checkSettings(&p, in.RateLimitPerSecond, in.MaxAttempts, in.TimeoutSeconds, in.DisableAfterFailures)
	if in.Secret != "" {
		if _, err := SigningKey(in.Secret); err != nil {
			p.Add("secret", "%v", err)
		}
	}
	s.checkProgram(&p, in.Filter, in.Transform)
	if err := p.Err(); err != nil {
		return Endpoint{}, err
	}
	secret := in.Secret
	if secret == "" {
		var err error
		if secret, err = GenerateSecret(); err != nil {
			return Endpoint{}, err
		}
	}
	now := s.now()
	e := store.WebhookEndpoint{
		ID: store.NewID(), Name: in.Name, Description: in.Description,
		EventTypes: store.MustJSON(in.Events), Enabled: in.Enabled == nil || *in.Enabled,
		RateLimitPerSecond: in.RateLimitPerSecond, Ordered: in.Ordered, MaxAttempts: in.MaxAttempts,
		RetryScheduleMS: scheduleJSON(schedule), TimeoutMS: in.TimeoutSeconds * 1000,
		DisableAfterFailures: in.DisableAfterFailures, Filter: in.Filter, Transform: in.Transform,
		CreatedAt: now, UpdatedAt: now,
		OmitTraceparent: in.SendTraceparent != nil && !*in.SendTraceparent,
	}
	if err := s.setDestination(&e, dest); err != nil {
		return Endpoint{}, err
	}
	sealed, err := s.secrets.Seal(secret, e.ID)
	if err != nil {
		return Endpoint{}, err
	}
	e.Secret = sealed
	headers, err := s.secrets.SealHeaders(e.ID, in.Headers)
	if err != nil {
		return Endpoint{}, err
	}
	e.Headers = store.MustJSON(headers)
	if !e.Enabled {
		e.DisabledReason, e.DisabledAt = "created disabled", &now
	}
	if err := s.store.CreateWebhookEndpoint(ctx, &e); err != nil {
		return Endpoint{}, fmt.Errorf("create endpoint: %w", err)
	}
	return s.view(e), nil
}

// GetEndpoint returns a live endpoint (store.ErrNotFound otherwise).
func (s *Service) GetEndpoint(ctx context.Context, id string) (Endpoint, error) {
	e, err := s.store.GetWebhookEndpoint(ctx, id)
	if err != nil {
		return Endpoint{}, err
	}
	return s.view(e), nil
}

// ListEndpoints returns a page of live endpoints, newest first.
func (s *Service) ListEndpoints(ctx context.Context, f store.WebhookEndpointFilter, p store.Page) ([]Endpoint, string, error) {
	rows, next, err := s.store.ListWebhookEndpoints(ctx, f, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]Endpoint, len(rows))
	for i, e := range rows {
		out[i] = s.view(e)
	}
	return out, next, nil
}

// UpdateEndpoint applies a patch. Enabling a disabled endpoint resets its failure tracking and
// circuit; disabling it fails its pending deliveries (recover them later with Recover).
func (s *Service) UpdateEndpoint(ctx context.Context, id string, in EndpointPatch) (Endpoint, error) {
	cur, err := s.store.GetWebhookEndpoint(ctx, id)
	if err != nil {
		return Endpoint{}, err
	}
	var p validation.Problems
	cols := map[string]any{}
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		checkName(&p, name)
		cols["name"] = name
	}
	if in.Description != nil {
		if len(*in.Description) > maxDescription {
			p.Add("description", "must be at most %d characters", maxDescription)
		}
		cols["description"] = *in.Description
	}
	moved := s.patchDestination(ctx, &p, cur, in, cols)
	if in.Events != nil {
		checkFilters(&p, *in.Events)
		cols["event_types"] = store.MustJSON(*in.Events)
	}
	if in.Headers != nil {
		var stored map[string]string
		_ = json.Unmarshal(cur.Headers, &stored)
		checkHeaders(&p, *in.Headers, stored)
		headers, err := s.patchHeaders(cur.ID, *in.Headers, stored)
		if err != nil {
			return Endpoint{}, err
		}
		cols["headers"] = store.MustJSON(headers)
	}
	if in.RetrySchedule != nil {
		cols["retry_schedule_ms"] = scheduleJSON(checkSchedule(&p, *in.RetrySchedule))
	}
	rate, attempts, timeout, failures := cur.RateLimitPerSecond, cur.MaxAttempts, cur.TimeoutMS/1000, cur.DisableAfterFailures
	setInt := func(v *int, dst *int, col string, scale int) {
		if v != nil {
			*dst = *v
			cols[col] = *v * scale
		}
	}
	setInt(in.RateLimitPerSecond, &rate, "rate_limit_per_second", 1)
	setInt(in.MaxAttempts, &attempts, "max_attempts", 1)
	setInt(in.TimeoutSeconds, &timeout, "timeout_ms", 1000)
	setInt(in.DisableAfterFailures, &failures, "disable_after_failures", 1)
	checkSettings(&p, rate, attempts, timeout, failures)
	if in.Ordered != nil {
		cols["ordered"] = *in.Ordered
	}
	if in.SendTraceparent != nil {
		cols["omit_traceparent"] = !*in.SendTraceparent
	}
	if in.Filter != nil {
		s.checkProgram(&p, *in.Filter, "")
		cols["filter"] = *in.Filter
	}
	if in.Transform != nil {
		s.checkProgram(&p, "", *in.Transform)
		cols["transform"] = *in.Transform
	}
	if err := p.Err(); err != nil {
		return Endpoint{}, err
	}
	now := s.now()
	enabling := in.Enabled != nil && *in.Enabled && !cur.Enabled
	disabling := in.Enabled != nil && !*in.Enabled && cur.Enabled
	if enabling {
		cols["enabled"], cols["disabled_reason"], cols["disabled_at"] = true, "", nil
		cols["failing_since"], cols["consecutive_failures"] = nil, 0
	}
	reset := enabling || moved
	if reset {
		// A re-enabled endpoint, or one at a new address, starts with a closed circuit.
		cols["failed_requests"], cols["circuit_trips"], cols["circuit_open_until"], cols["paused_until"] = 0, 0, nil, nil
	}
	cols["updated_at"] = now
	if err := s.store.UpdateWebhookEndpoint(ctx, id, cols); err != nil {
		return Endpoint{}, fmt.Errorf("update endpoint %s: %w", id, err)
	}
	if disabling {
		if _, err := s.store.DisableWebhookEndpoint(ctx, id, "disabled through the API", now); err != nil {
			return Endpoint{}, fmt.Errorf("disable endpoint %s: %w", id, err)
		}
	}
	// The sender re-reads the endpoint on every batch; a wake-up makes a change take effect now
	// (and starts a dispatcher for pending deliveries after a re-enable). Dispatchers started
	// before sender sessions keep the circuit's state themselves: a reset signal tells them.
	if reset {
		s.waker.signalLater(id, Wake{Reset: true})
	}
	s.wake(ctx, []string{id})
	return s.GetEndpoint(ctx, id)
}

// DeleteEndpoint deletes an endpoint; its pending deliveries fail.
func (s *Service) DeleteEndpoint(ctx context.Context, id string) error {
	if err := s.store.DeleteWebhookEndpoint(ctx, id, s.now()); err != nil {
		return err
	}
	// Its sender (or dispatcher) sees the deletion, fails what was left and ends.
	s.wake(ctx, []string{id})
	return nil
}

// EndpointSecret is an endpoint's signing secret.
type EndpointSecret struct {
	Key string `json:"key"`
	// PreviousExpiresAt is when the rotated-out secret stops signing (nil when none is active).
	PreviousExpiresAt *time.Time `json:"previous_key_expires_at,omitempty"`
}

// Secret returns the endpoint's current signing secret.
func (s *Service) Secret(ctx context.Context, id string) (EndpointSecret, error) {
	e, err := s.store.GetWebhookEndpoint(ctx, id)
	if err != nil {
		return EndpointSecret{}, err
	}
	key, err := s.secrets.Open(e.Secret, e.ID)
	if err != nil {
		return EndpointSecret{}, fmt.Errorf("endpoint %s: %w", id, err)
	}
	out := EndpointSecret{Key: key}
	if e.PreviousSecret != "" && e.PreviousSecretExpiresAt != nil && e.PreviousSecretExpiresAt.After(s.now()) {
		out.PreviousExpiresAt = e.PreviousSecretExpiresAt
	}
	return out, nil
}

// RotateInput rotates a secret: Key is the new one (generated when empty); Grace is how long the
// old one keeps signing beside it (the service default when nil).
type RotateInput struct {
	Key   string
	Grace *time.Duration
}

// RotateSecret replaces the signing secret. Until the grace period ends every request carries a
// signature with the old secret and one with the new.
func (s *Service) RotateSecret(ctx context.Context, id string, in RotateInput) (EndpointSecret, error) {
	var p validation.Problems
	if in.Key != "" {
		if _, err := SigningKey(in.Key); err != nil {
			p.Add("key", "%v", err)
		}
	}
	grace := s.settings.RotationGrace
	if in.Grace != nil {
		grace = *in.Grace
		if grace < 0 || grace > 30*24*time.Hour {
			p.Add("grace_period", "must be from 0s to 720h")
		}
	}
	if err := p.Err(); err != nil {
		return EndpointSecret{}, err
	}
	e, err := s.store.GetWebhookEndpoint(ctx, id)
	if err != nil {
		return EndpointSecret{}, err
	}
	key := in.Key
	if key == "" {
		if key, err = GenerateSecret(); err != nil {
			return EndpointSecret{}, err
		}
	}
	sealed, err := s.secrets.Seal(key, e.ID)
	if err != nil {
		return EndpointSecret{}, err
	}
	now := s.now()
	expires := now.Add(grace)
	cols := map[string]any{"secret": sealed, "updated_at": now, "previous_secret": "", "previous_secret_expires_at": nil}
	if grace > 0 {
		cols["previous_secret"], cols["previous_secret_expires_at"] = e.Secret, expires
	}
	if err := s.store.UpdateWebhookEndpoint(ctx, id, cols); err != nil {
		return EndpointSecret{}, fmt.Errorf("rotate secret of %s: %w", id, err)
	}
	out := EndpointSecret{Key: key}
	if grace > 0 {
		out.PreviousExpiresAt = &expires
	}
	return out, nil
}

// ErrEndpointDisabled refuses work for a disabled endpoint.
var ErrEndpointDisabled = errors.New("the endpoint is disabled; enable it first")

// Recover makes every failed delivery to the endpoint created since `since` (and before
// `until`, when set) pending again with a fresh retry schedule, and wakes its dispatcher.
func (s *Service) Recover(ctx context.Context, id string, since, until time.Time) (int64, error) {
	e, err := s.store.GetWebhookEndpoint(ctx, id)
	if err != nil {
		return 0, err
	}
	if !e.Enabled {
		return 0, ErrEndpointDisabled
	}
	n, err := s.store.RecoverWebhookDeliveries(ctx, id, since, until, s.now())
	if err != nil {
		return 0, fmt.Errorf("recover endpoint %s: %w", id, err)
	}
	if n > 0 {
		s.wake(ctx, []string{id})
	}
	return n, nil
}

// view turns a row into what the API shows.
func (s *Service) view(e store.WebhookEndpoint) Endpoint {
	out := Endpoint{
		ID: e.ID, Name: e.Name, Description: e.Description, URL: e.URL, Enabled: e.Enabled,
		DisabledReason: e.DisabledReason, DisabledAt: e.DisabledAt, RateLimitPerSecond: e.RateLimitPerSecond,
		Ordered: e.Ordered, DisableAfterFailures: e.DisableAfterFailures, FailingSince: e.FailingSince,
		ConsecutiveFailures: e.ConsecutiveFailures, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
		CircuitOpenUntil: future(e.CircuitOpenUntil, s.now()), PausedUntil: future(e.PausedUntil, s.now()),
		TimeoutSeconds: int(s.EffectiveTimeout(e) / time.Second), SendTraceparent: !e.OmitTraceparent,
		Filter: e.Filter, Transform: e.Transform,
		Type: EndpointType(e), Subject: e.Subject, Exchange: e.Exchange, RoutingKey: e.RoutingKey,
	}
	_ = json.Unmarshal(e.EventTypes, &out.Events)
	var sealed map[string]string
	_ = json.Unmarshal(e.Headers, &sealed)
	out.Headers = make(map[string]string, len(sealed))
	for name := range sealed {
		out.Headers[name] = RedactedHeaderValue
	}
	if out.DisableAfterFailures == 0 {
		out.DisableAfterFailures = s.settings.DisableAfterFailures
	}
	schedule := s.EffectiveSchedule(e)
	out.MaxAttempts = MaxAttempts(e.MaxAttempts, schedule)
	out.RetrySchedule = make([]string, len(schedule))
	for i, d := range schedule {
		out.RetrySchedule[i] = d.String()
	}
	return out
}

// EffectiveSchedule is the endpoint's retry schedule, or the service default.
func (s *Service) EffectiveSchedule(e store.WebhookEndpoint) []time.Duration {
	return EffectiveSchedule(e, s.settings)
}

// EffectiveSchedule is the endpoint's retry schedule, or the default of settings.
func EffectiveSchedule(e store.WebhookEndpoint, settings Settings) []time.Duration {
	var ms []int64
	if json.Unmarshal(e.RetryScheduleMS, &ms) == nil && len(ms) > 0 {
		out := make([]time.Duration, len(ms))
		for i, v := range ms {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	return settings.RetrySchedule
}

// EffectiveTimeout is the endpoint's request timeout, or the service default.
func (s *Service) EffectiveTimeout(e store.WebhookEndpoint) time.Duration {
	return EffectiveTimeout(e, s.settings)
}

// EffectiveTimeout is the endpoint's request timeout, or the default of settings.
func EffectiveTimeout(e store.WebhookEndpoint, settings Settings) time.Duration {
	if e.TimeoutMS > 0 {
		return time.Duration(e.TimeoutMS) * time.Millisecond
	}
	return settings.Timeout
}

func (s *Service) checkURL(ctx context.Context, p *validation.Problems, raw string) {
	if raw == "" {
		p.Add("url", "is required")
		return
	}
	if len(raw) > maxURLLength {
		p.Add("url", "must be at most %d characters", maxURLLength)
		return
	}
	if u, err := url.Parse(raw); err != nil || !u.IsAbs() {
		p.Add("url", "must be an absolute http(s) URL")
		return
	}
	if err := s.egress.CheckURL(ctx, raw); err != nil {
		var be *netguard.BlockedError
		if errors.As(err, &be) {
			p.Add("url", "%s", be.Error())
		} else {
			p.Add("url", "cannot be checked: %v", err)
		}
	}
}

// checkProgram compiles a filter and a transform ("": none).
func (s *Service) checkProgram(p *validation.Problems, filter, transform string) {
	if filter != "" {
		if msg := s.transformer.CheckFilter(filter); msg != "" {
			p.Add("filter", "%s", msg)
		}
	}
	if transform != "" {
		if msg := s.transformer.CheckTransform(transform); msg != "" {
			p.Add("transform", "%s", msg)
		}
	}
}

func checkName(p *validation.Problems, name string) {
	if name == "" {
		p.Add("name", "is required")
	} else if len(name) > maxNameLength {
		p.Add("name", "must be at most %d characters", maxNameLength)
	}
}

func checkFilters(p *validation.Problems, filters []string) {
	if len(filters) == 0 {
		p.Add("events", "must list at least one event type or pattern (\"*\" for all)")
	}
	if len(filters) > maxFilters {
		p.Add("events", "must list at most %d entries", maxFilters)
	}
	for i, f := range filters {
		if msg := ValidFilter(f); msg != "" {
			p.Add(validation.Index("events", i), "%s", msg)
		}
	}
}

// checkHeaders validates custom headers; stored are the endpoint's current ones (nil on create),
// whose values a RedactedHeaderValue keeps.
func checkHeaders(p *validation.Problems, h, stored map[string]string) {
	if len(h) > maxHeaders {
		p.Add("headers", "must have at most %d entries", maxHeaders)
	}
	for k, v := range h {
		field := "headers." + k
		_, kept := stored[k]
		switch {
		case !validHeaderName(k):
			p.Add(field, "is not a valid header name")
		case reservedHeaders[strings.ToLower(k)]:
			p.Add(field, "is set by the service and cannot be configured")
		case len(v) > maxHeaderValue || strings.ContainsAny(v, "\r\n\x00"):
			p.Add(field, "must be at most %d characters without line breaks", maxHeaderValue)
		case v == RedactedHeaderValue && !kept:
			p.Add(field, "is %q, which keeps a stored value, but the endpoint has no header %s", RedactedHeaderValue, k)
		}
	}
}

// patchHeaders seals the new custom headers, keeping the stored (sealed) value of each header
// given as RedactedHeaderValue.
func (s *Service) patchHeaders(endpointID string, h, stored map[string]string) (map[string]string, error) {
	fresh := map[string]string{}
	for k, v := range h {
		if v != RedactedHeaderValue {
			fresh[k] = v
		}
	}
	out, err := s.secrets.SealHeaders(endpointID, fresh)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		if v == RedactedHeaderValue {
			out[k] = stored[k]
		}
	}
	return out, nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// checkSchedule parses duration strings ("5s", "30m"); nil or empty means the default.
func checkSchedule(p *validation.Problems, raw []string) []time.Duration {
	if len(raw) > 50 {
		p.Add("retry_schedule", "must list at most 50 delays")
		return nil
	}
	out := make([]time.Duration, 0, len(raw))
	for i, r := range raw {
		d, err := time.ParseDuration(r)
		if err != nil || d < 0 || d > 7*24*time.Hour {
			p.Add(validation.Index("retry_schedule", i), "must be a duration from 0s to 168h such as \"5s\" or \"30m\", got %q", r)
			continue
		}
		out = append(out, d)
	}
	return out
}

func checkSettings(p *validation.Problems, rate, attempts, timeoutSeconds, failures int) {
	if rate < 0 || rate > maxRatePerSecond {
		p.Add("rate_limit_per_second", "must be from 0 (no limit) to %d", maxRatePerSecond)
	}
	if attempts < 0 || attempts > maxAttemptsLimit {
		p.Add("max_attempts", "must be from 1 to %d (0: the schedule's length plus one)", maxAttemptsLimit)
	}
	if timeoutSeconds < 0 || timeoutSeconds > 60 {
		p.Add("timeout_seconds", "must be from 1 to 60 (0: the service default)")
	}
	if failures < 0 || failures > 100000 {
		p.Add("disable_after_failures", "must be from 0 (the service default) to 100000")
	}
}

func scheduleJSON(d []time.Duration) store.JSON {
	ms := make([]int64, len(d))
	for i, v := range d {
		ms[i] = v.Milliseconds()
	}
	return store.MustJSON(ms)
}

func orEmpty(h map[string]string) map[string]string {
	if h == nil {
		return map[string]string{}
	}
	return h
}

// future is t when it is after now, nil otherwise.
func future(t *time.Time, now time.Time) *time.Time {
	if t == nil || !t.After(now) {
		return nil
	}
	return t
}
