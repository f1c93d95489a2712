package store

import (
	"context"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"
)

// Tenant is a row of tenants (schema 00009): who owns rows of every other table.
type Tenant struct {
	ID        string    `gorm:"primaryKey" json:"id"`
	Name      string    `json:"name"`
	Limits    JSON      `json:"limits"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// CreateTenant stores t (ErrConflict when its id is taken).
func (s *Store) CreateTenant(ctx context.Context, t *Tenant) error {
	if len(t.Limits) == 0 {
		t.Limits = JSON("{}")
	}
	return classify(s.db.WithContext(ctx).Create(t).Error)
}

// GetTenant returns one tenant.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&t).Error
	return t, classify(err)
}

// ListTenants pages through the tenants, newest id first.
func (s *Store) ListTenants(ctx context.Context, p Page) ([]Tenant, string, error) {
	return List(s.db.WithContext(ctx).Model(&Tenant{}), p, func(t Tenant) string { return t.ID })
}

// UpdateTenant writes t's name, limits and enabled flag.
func (s *Store) UpdateTenant(ctx context.Context, t *Tenant) error {
	res := s.db.WithContext(ctx).Model(&Tenant{}).Where("id = ?", t.ID).
		Updates(map[string]any{"name": t.Name, "limits": t.Limits, "enabled": t.Enabled, "updated_at": t.UpdatedAt})
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteTenant removes a tenant that owns no workflows, rules, endpoints, templates or sources
// (ErrConflict otherwise; the default tenant cannot be deleted).
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	if id == tenant.Default {
		return ErrConflict
	}
	return s.Tx(ctx, func(tx *Store) error {
		in := tenant.With(ctx, id)
		for _, m := range []any{&Workflow{}, &Rule{}, &WebhookEndpoint{}, &NotificationTemplate{}, &WebhookSource{}} {
			var n int64
			if err := tx.db.WithContext(in).Model(m).Count(&n).Error; err != nil {
				return classify(err)
			}
			if n > 0 {
				return ErrConflict
			}
		}
		res := tx.db.WithContext(ctx).Where("id = ?", id).Delete(&Tenant{})
		if res.Error != nil {
			return classify(res.Error)
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// TenantUsage counts what a tenant's quotas bound: live webhook endpoints and rules, and
// workflow executions and notifications created since `since` (the start of the UTC day).
type TenantUsage struct {
	Endpoints, Rules, Executions, Messages int64
}

// Usage counts the context's tenant's usage.
func (s *Store) Usage(ctx context.Context, since time.Time) (TenantUsage, error) {
	var u TenantUsage
	db := s.db.WithContext(ctx)
	for _, q := range []struct {
		n     *int64
		model any
		where string
		arg   any
	}{
		{&u.Endpoints, &WebhookEndpoint{}, "deleted_at IS NULL", nil},
		{&u.Rules, &Rule{}, "deleted_at IS NULL", nil},
		{&u.Executions, &Execution{}, "created_at >= ?", since.UTC()},
		{&u.Messages, &Notification{}, "created_at >= ?", since.UTC()},
	} {
		tx := db.Model(q.model)
		if q.arg != nil {
			tx = tx.Where(q.where, q.arg)
		} else {
			tx = tx.Where(q.where)
		}
		if err := tx.Count(q.n).Error; err != nil {
			return u, classify(err)
		}
	}
	return u, nil
}
