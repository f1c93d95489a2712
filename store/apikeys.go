package store

import (
	"context"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
)

// APIKey is a tenant API key (schema 00009). The key itself is shown once, at creation; the
// row keeps its SHA-256 (Hash) and its first characters (Prefix).
type APIKey struct {
	ID         string     `gorm:"primaryKey" json:"id"`
	TenantID   string     `gorm:"column:tenant_id" json:"tenant_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Hash       string     `json:"-"`
	Scopes     JSON       `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
}

// TableName is the key table.
func (APIKey) TableName() string { return "api_keys" }

// CreateAPIKey stores k for the context's tenant.
func (s *Store) CreateAPIKey(ctx context.Context, k *APIKey) error {
	return classify(s.db.WithContext(ctx).Create(k).Error)
}

// ListAPIKeys pages through the tenant's keys (revoked ones too), newest first.
func (s *Store) ListAPIKeys(ctx context.Context, p Page) ([]APIKey, string, error) {
	return List(s.db.WithContext(ctx).Model(&APIKey{}), p, func(k APIKey) string { return k.ID })
}

// GetAPIKey returns one of the tenant's keys.
func (s *Store) GetAPIKey(ctx context.Context, id string) (APIKey, error) {
	var k APIKey
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&k).Error
	return k, classify(err)
}

// RevokeAPIKey marks one of the tenant's keys revoked at `at` (ErrNotFound when it has no such
// key; revoking twice keeps the first time).
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) (APIKey, error) {
	k, err := s.GetAPIKey(ctx, id)
	if err != nil {
		return k, err
	}
	if k.RevokedAt == nil {
		if err := s.db.WithContext(ctx).Model(&APIKey{}).Where("id = ? AND revoked_at IS NULL", id).
			Update("revoked_at", at.UTC()).Error; err != nil {
			return k, classify(err)
		}
		t := at.UTC()
		k.RevokedAt = &t
	}
	return k, nil
}

// APIKeyByHash finds a key of any tenant by the SHA-256 of its text (authentication, before the
// tenant is known).
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (APIKey, error) {
	var k APIKey
	err := s.db.WithContext(tenant.System(ctx)).Where("hash = ?", hash).Take(&k).Error
	return k, classify(err)
}

// TouchAPIKey records that the key was used at `at`, at most once per `every`.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time, every time.Duration) error {
	return classify(s.db.WithContext(tenant.System(ctx)).Model(&APIKey{}).
		Where("id = ? AND (last_used_at IS NULL OR last_used_at < ?)", id, at.Add(-every).UTC()).
		Update("last_used_at", at.UTC()).Error)
}
