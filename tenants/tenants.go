// Package tenants is the tenancy domain: the tenants themselves (id, name, limits, enabled),
// tenant API keys (stored as hashes, checked against the database on every request so that a
// revocation holds at once in every API process), the scopes credentials carry and the audit log.
// Which tenant a statement acts for travels in its context (internal/tenant); the store filters
// on it.
package tenants

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pyairtable/automation-domain/internal/groupcommit"
	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Scopes a credential can carry. Admin grants every other one within its tenant (and the
// management of its API keys and reading its audit log).
const (
	ScopeAdmin              = "admin"
	ScopeWorkflowsRead      = "workflows:read"
	ScopeWorkflowsWrite     = "workflows:write"
	ScopeWorkflowsExecute   = "workflows:execute"
	ScopeNotificationsSend  = "notifications:send"
	ScopeNotificationsRead  = "notifications:read"
	ScopeTemplatesWrite     = "templates:write"
	ScopeWebhooksRead       = "webhooks:read"
	ScopeWebhooksWrite      = "webhooks:write"
	ScopeEventsWrite        = "events:write"
	ScopeEventsRead         = "events:read"
	ScopeRulesRead          = "rules:read"
	ScopeRulesWrite         = "rules:write"
	keyPrefixLen            = 8
	lastUsedResolution      = time.Minute
	maxKeyNameLen           = 200
	maxTenantNameLen        = 200
	defaultKeyLifetimeLimit = 10 * 365 * 24 * time.Hour
)

// AllScopes lists every scope, admin last.
var AllScopes = []string{ScopeWorkflowsRead, ScopeWorkflowsWrite, ScopeWorkflowsExecute, ScopeNotificationsSend,
	ScopeNotificationsRead, ScopeTemplatesWrite, ScopeWebhooksRead, ScopeWebhooksWrite, ScopeEventsWrite,
	ScopeEventsRead, ScopeRulesRead, ScopeRulesWrite, ScopeAdmin}

// ValidScope reports whether s is one of AllScopes.
func ValidScope(s string) bool { return slices.Contains(AllScopes, s) }

// Errors of the service.
var (
	// ErrInvalidKey: no such key, or revoked, or expired (the caller learns no more).
	ErrInvalidKey = errors.New("invalid API key")
	// ErrTenantDisabled refuses every credential of a disabled tenant.
	ErrTenantDisabled = errors.New("tenant disabled")
)

// Limits are a tenant's own bounds; zero fields fall back to the service's defaults.
type Limits struct {
	// RequestsPerSecond and Burst bound the tenant's API requests (all credentials together).
	RequestsPerSecond int `json:"requests_per_second,omitempty"`
	Burst             int `json:"burst,omitempty"`
	// ExecutionsPerDay and MessagesPerDay bound workflow executions and notifications sent per
	// UTC day; Endpoints and Rules bound how many webhook endpoints and rules it keeps.
	ExecutionsPerDay int `json:"executions_per_day,omitempty"`
	MessagesPerDay   int `json:"messages_per_day,omitempty"`
	Endpoints        int `json:"endpoints,omitempty"`
	Rules            int `json:"rules,omitempty"`
}

// Tenant is a tenant as the API shows it.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Limits    Limits    `json:"limits"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Service is the tenancy domain.
type Service struct {
	store *store.Store
	now   func() time.Time
	// audit writes the entries of concurrent requests in group commits, one line per tenant: an
	// entry per audited request written alone was an eighth of the CPU of a burst of messages.
	audit groupcommit.Signaller[string, store.AuditEntry]
}

// maxAuditBatch bounds the entries of one group commit.
const maxAuditBatch = 128

// New builds the service over st.
func New(st *store.Store) *Service {
	s := &Service{store: st, now: func() time.Time { return time.Now().UTC() }}
	s.audit.MaxBatch = maxAuditBatch
	s.audit.Send = func(ctx context.Context, tenantID string, entries []store.AuditEntry) error {
		return st.AppendAudits(tenant.With(ctx, tenantID), entries)
	}
	return s
}

func fromRow(r store.Tenant) (Tenant, error) {
	t := Tenant{ID: r.ID, Name: r.Name, Enabled: r.Enabled, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if len(r.Limits) > 0 {
		if err := json.Unmarshal(r.Limits, &t.Limits); err != nil {
			return t, fmt.Errorf("tenant %s: limits: %w", r.ID, err)
		}
	}
	return t, nil
}

func checkLimits(p *validation.Problems, l Limits) {
	for name, v := range map[string]int{"requests_per_second": l.RequestsPerSecond, "burst": l.Burst,
		"executions_per_day": l.ExecutionsPerDay, "messages_per_day": l.MessagesPerDay,
		"endpoints": l.Endpoints, "rules": l.Rules} {
		if v < 0 {
			p.Add("limits."+name, "must not be negative")
		}
	}
}

// Create adds a tenant (store.ErrConflict when the id is taken).
func (s *Service) Create(ctx context.Context, t Tenant) (Tenant, error) {
	var p validation.Problems
	if !tenant.ValidID(t.ID) {
		p.Add("id", "must be 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit")
	}
	t.Name = strings.TrimSpace(t.Name)
	if t.Name == "" {
		t.Name = t.ID
	}
	if len(t.Name) > maxTenantNameLen {
		p.Add("name", "must be at most %d characters", maxTenantNameLen)
	}
	checkLimits(&p, t.Limits)
	if err := p.Err(); err != nil {
		return Tenant{}, err
	}
	limits, _ := json.Marshal(t.Limits)
	now := s.now()
	row := store.Tenant{ID: t.ID, Name: t.Name, Limits: store.JSON(limits), Enabled: t.Enabled, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateTenant(ctx, &row); err != nil {
		return Tenant{}, fmt.Errorf("create tenant %s: %w", t.ID, err)
	}
	return fromRow(row)
}

// Get returns a tenant.
func (s *Service) Get(ctx context.Context, id string) (Tenant, error) {
	r, err := s.store.GetTenant(ctx, id)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant %s: %w", id, err)
	}
	return fromRow(r)
}

// List pages through the tenants.
func (s *Service) List(ctx context.Context, p store.Page) ([]Tenant, string, error) {
	rows, next, err := s.store.ListTenants(ctx, p)
	if err != nil {
		return nil, "", fmt.Errorf("list tenants: %w", err)
	}
	out := make([]Tenant, 0, len(rows))
	for _, r := range rows {
		t, err := fromRow(r)
		if err != nil {
			return nil, "", err
		}
		out = append(out, t)
	}
	return out, next, nil
}

// Patch changes what the patch sets of a tenant's name, limits and enabled flag.
type Patch struct {
	Name    *string `json:"name"`
	Limits  *Limits `json:"limits"`
	Enabled *bool   `json:"enabled"`
}

// Update applies patch to tenant id.
func (s *Service) Update(ctx context.Context, id string, patch Patch) (Tenant, error) {
	t, err := s.Get(ctx, id)
	if err != nil {
		return Tenant{}, err
	}
	var p validation.Problems
	if patch.Name != nil {
		t.Name = strings.TrimSpace(*patch.Name)
		if t.Name == "" || len(t.Name) > maxTenantNameLen {
			p.Add("name", "must be 1-%d characters", maxTenantNameLen)
		}
	}
	if patch.Limits != nil {
		checkLimits(&p, *patch.Limits)
		t.Limits = *patch.Limits
	}
	if patch.Enabled != nil {
		if !*patch.Enabled && id == tenant.Default {
			p.Add("enabled", "the default tenant cannot be disabled")
		}
		t.Enabled = *patch.Enabled
	}
	if err := p.Err(); err != nil {
		return Tenant{}, err
	}
	limits, _ := json.Marshal(t.Limits)
	t.UpdatedAt = s.now()
	row := store.Tenant{ID: t.ID, Name: t.Name, Limits: store.JSON(limits), Enabled: t.Enabled, UpdatedAt: t.UpdatedAt}
	if err := s.store.UpdateTenant(ctx, &row); err != nil {
		return Tenant{}, fmt.Errorf("update tenant %s: %w", id, err)
	}
	return t, nil
}

// Delete removes a tenant that owns nothing any more (store.ErrConflict otherwise).
func (s *Service) Delete(ctx context.Context, id string) error {
	if err := s.store.DeleteTenant(ctx, id); err != nil {
		return fmt.Errorf("delete tenant %s: %w", id, err)
	}
	return nil
}

// Active returns the tenant a credential names when it may act: ErrTenantDisabled for a
// disabled one, store.ErrNotFound for none.
func (s *Service) Active(ctx context.Context, id string) (Tenant, error) {
	t, err := s.Get(ctx, id)
	if err != nil {
		return Tenant{}, err
	}
	if !t.Enabled {
		return t, ErrTenantDisabled
	}
	return t, nil
}

// --- API keys ---

// NewKey is what creating a key asks for.
type NewKey struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// Key is a tenant API key as listed (without its secret).
type Key struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

func keyFromRow(r store.APIKey) Key {
	k := Key{ID: r.ID, TenantID: r.TenantID, Name: r.Name, Prefix: r.Prefix, ExpiresAt: r.ExpiresAt,
		LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt, CreatedAt: r.CreatedAt}
	_ = json.Unmarshal(r.Scopes, &k.Scopes)
	if k.Scopes == nil {
		k.Scopes = []string{}
	}
	return k
}

// HashKey is the stored form of a key's text.
func HashKey(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// CreateKey makes a key for the context's tenant and returns it with its text, which is shown
// this once.
func (s *Service) CreateKey(ctx context.Context, in NewKey) (Key, string, error) {
	var p validation.Problems
	in.Name = strings.TrimSpace(in.Name)
	if len(in.Name) > maxKeyNameLen {
		p.Add("name", "must be at most %d characters", maxKeyNameLen)
	}
	if len(in.Scopes) == 0 {
		p.Add("scopes", "at least one scope is required")
	}
	for i, sc := range in.Scopes {
		if !ValidScope(sc) {
			p.Add(fmt.Sprintf("scopes[%d]", i), "unknown scope %q (one of %s)", sc, strings.Join(AllScopes, ", "))
		}
	}
	now := s.now()
	if in.ExpiresAt != nil && (!in.ExpiresAt.After(now) || in.ExpiresAt.Sub(now) > defaultKeyLifetimeLimit) {
		p.Add("expires_at", "must be in the future, within 10 years")
	}
	if err := p.Err(); err != nil {
		return Key{}, "", err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return Key{}, "", fmt.Errorf("create API key: %w", err)
	}
	text := "ak_" + hex.EncodeToString(raw)
	scopes, _ := json.Marshal(in.Scopes)
	row := store.APIKey{ID: store.NewID(), Name: in.Name, Prefix: text[:3+keyPrefixLen], Hash: HashKey(text),
		Scopes: store.JSON(scopes), CreatedAt: now}
	if in.ExpiresAt != nil {
		e := in.ExpiresAt.UTC()
		row.ExpiresAt = &e
	}
	if err := s.store.CreateAPIKey(ctx, &row); err != nil {
		return Key{}, "", fmt.Errorf("create API key: %w", err)
	}
	return keyFromRow(row), text, nil
}

// ListKeys pages through the context's tenant's keys.
func (s *Service) ListKeys(ctx context.Context, p store.Page) ([]Key, string, error) {
	rows, next, err := s.store.ListAPIKeys(ctx, p)
	if err != nil {
		return nil, "", fmt.Errorf("list API keys: %w", err)
	}
	out := make([]Key, 0, len(rows))
	for _, r := range rows {
		out = append(out, keyFromRow(r))
	}
	return out, next, nil
}

// GetKey returns one of the context's tenant's keys.
func (s *Service) GetKey(ctx context.Context, id string) (Key, error) {
	r, err := s.store.GetAPIKey(ctx, id)
	if err != nil {
		return Key{}, fmt.Errorf("API key %s: %w", id, err)
	}
	return keyFromRow(r), nil
}

// RevokeKey revokes one of the context's tenant's keys: the next request with it is refused,
// in every API process (each looks the key up in the database).
func (s *Service) RevokeKey(ctx context.Context, id string) (Key, error) {
	r, err := s.store.RevokeAPIKey(ctx, id, s.now())
	if err != nil {
		return Key{}, fmt.Errorf("revoke API key %s: %w", id, err)
	}
	return keyFromRow(r), nil
}

// Authenticate returns the key whose text this is, if it is valid now, and records its use.
func (s *Service) Authenticate(ctx context.Context, text string) (Key, error) {
	r, err := s.store.APIKeyByHash(ctx, HashKey(text))
	if errors.Is(err, store.ErrNotFound) {
		return Key{}, ErrInvalidKey
	}
	if err != nil {
		return Key{}, fmt.Errorf("look up API key: %w", err)
	}
	now := s.now()
	if r.RevokedAt != nil || (r.ExpiresAt != nil && !r.ExpiresAt.After(now)) {
		return Key{}, ErrInvalidKey
	}
	if err := s.store.TouchAPIKey(ctx, r.ID, now, lastUsedResolution); err != nil {
		return Key{}, fmt.Errorf("record API key use: %w", err)
	}
	return keyFromRow(r), nil
}

// LooksLikeKey reports whether a credential is a tenant API key (rather than the internal key).
func LooksLikeKey(text string) bool { return strings.HasPrefix(text, "ak_") && len(text) == 3+48 }

// --- audit ---

// Record appends an audit entry for the context's tenant.
func (s *Service) Record(ctx context.Context, e store.AuditEntry) error {
	e.ID = store.NewID()
	if e.CreatedAt.IsZero() {
		e.CreatedAt = s.now()
	}
	id, system := tenant.From(ctx)
	if system {
		if err := s.store.AppendAudit(ctx, &e); err != nil {
			return fmt.Errorf("audit %s %s: %w", e.Action, e.Resource, err)
		}
		return nil
	}
	// The caller returns once the group commit holding its entry has committed; when the group's
	// statement fails, the entry is written alone, so one bad entry fails only its own record.
	if err := s.audit.Submit(ctx, id, e); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("audit %s %s: %w", e.Action, e.Resource, err)
		}
		if err := s.store.AppendAudit(ctx, &e); err != nil {
			return fmt.Errorf("audit %s %s: %w", e.Action, e.Resource, err)
		}
	}
	return nil
}

// Audit pages through the context's tenant's audit log (every tenant's in tenant.System).
func (s *Service) Audit(ctx context.Context, p store.Page) ([]store.AuditEntry, string, error) {
	rows, next, err := s.store.ListAudit(ctx, p)
	if err != nil {
		return nil, "", fmt.Errorf("list audit log: %w", err)
	}
	return rows, next, nil
}

// Quotas a tenant's Limits set.
const (
	QuotaEndpoints        = "endpoints"
	QuotaRules            = "rules"
	QuotaExecutionsPerDay = "executions_per_day"
	QuotaMessagesPerDay   = "messages_per_day"
)

// QuotaError says which quota is reached.
type QuotaError struct {
	Quota string
	Limit int
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("the tenant's quota %s (%d) is reached", e.Quota, e.Limit)
}

// CheckQuota returns a *QuotaError when creating one more of what quota bounds would pass t's
// limit (nil when t sets none).
func (s *Service) CheckQuota(ctx context.Context, t Tenant, quota string) error {
	limit := map[string]int{QuotaEndpoints: t.Limits.Endpoints, QuotaRules: t.Limits.Rules,
		QuotaExecutionsPerDay: t.Limits.ExecutionsPerDay, QuotaMessagesPerDay: t.Limits.MessagesPerDay}[quota]
	if limit <= 0 {
		return nil
	}
	now := s.now()
	u, err := s.store.Usage(ctx, time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC))
	if err != nil {
		return fmt.Errorf("quota %s: %w", quota, err)
	}
	used := map[string]int64{QuotaEndpoints: u.Endpoints, QuotaRules: u.Rules,
		QuotaExecutionsPerDay: u.Executions, QuotaMessagesPerDay: u.Messages}[quota]
	if used >= int64(limit) {
		return &QuotaError{Quota: quota, Limit: limit}
	}
	return nil
}
