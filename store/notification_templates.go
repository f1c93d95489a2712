package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"

	"github.com/pyairtable/automation-domain/internal/tenant"
)

// NotificationTemplate is a template's identity; its content lives in versions.
type NotificationTemplate struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID       string    `gorm:"column:tenant_id" json:"-"`
	ID             string    `gorm:"primaryKey" json:"id"`
	Channel        string    `json:"channel"`
	Description    string    `json:"description"`
	CurrentVersion int       `json:"version"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Shared marks the installed seed templates (schema 00009): every tenant reads and renders
	// them, read-only; only the default tenant, which owns them, changes them.
	Shared bool `json:"-"`
}

// NotificationTemplateVersion is one immutable revision of a template's content.
type NotificationTemplateVersion struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID   string    `gorm:"column:tenant_id" json:"-"`
	TemplateID string    `gorm:"primaryKey" json:"-"`
	Version    int       `gorm:"primaryKey;autoIncrement:false" json:"version"`
	Subject    string    `json:"subject,omitempty"`
	Body       string    `json:"body"`
	HTMLBody   string    `gorm:"column:html_body" json:"html_body,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// CreateNotificationTemplate stores a new template with v as its version 1 (ErrConflict when the
// id is taken).
func (s *Store) CreateNotificationTemplate(ctx context.Context, t *NotificationTemplate, v *NotificationTemplateVersion) error {
	t.CurrentVersion, v.TemplateID, v.Version = 1, t.ID, 1
	return s.Tx(ctx, func(tx *Store) error {
		if err := tx.db.Create(t).Error; err != nil {
			return err
		}
		return tx.db.Create(v).Error
	})
}

// UpdateNotificationTemplate adds v as the next version of template id and makes it current;
// description, when not nil, replaces the template's description.
func (s *Store) UpdateNotificationTemplate(ctx context.Context, id string, description *string, v *NotificationTemplateVersion, now time.Time) (NotificationTemplate, error) {
	var t NotificationTemplate
	err := s.Tx(ctx, func(ts *Store) error {
		q := ts.db.Where("id = ?", id)
		if s.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&t).Error; err != nil {
			return err
		}
		t.CurrentVersion++
		t.UpdatedAt = now
		if description != nil {
			t.Description = *description
		}
		v.TemplateID, v.Version, v.CreatedAt = id, t.CurrentVersion, now
		if err := ts.db.Create(v).Error; err != nil {
			return err
		}
		return ts.db.Save(&t).Error
	})
	if err != nil {
		return t, fmt.Errorf("update template %s: %w", id, err)
	}
	return t, nil
}

// GetNotificationTemplate returns a template and one of its versions (0: the current one).
func (s *Store) GetNotificationTemplate(ctx context.Context, id string, version int) (NotificationTemplate, NotificationTemplateVersion, error) {
	var (
		t NotificationTemplate
		v NotificationTemplateVersion
	)
	ctx, err := s.templateScope(ctx, id)
	if err != nil {
		return t, v, err
	}
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&t).Error; err != nil {
		return t, v, classify(err)
	}
	if version == 0 {
		version = t.CurrentVersion
	}
	err = s.db.WithContext(ctx).Where("template_id = ? AND version = ?", id, version).Take(&v).Error
	return t, v, classify(err)
}

// templateScope is where template id is read: the context's tenant when it has one of that id,
// else the default tenant when its template of that id is a shared seed template.
func (s *Store) templateScope(ctx context.Context, id string) (context.Context, error) {
	own, system := tenant.From(ctx)
	if system || own == tenant.Default {
		return ctx, nil
	}
	var n int64
	if err := s.db.WithContext(ctx).Model(&NotificationTemplate{}).Where("id = ?", id).Count(&n).Error; err != nil {
		return ctx, classify(err)
	}
	if n > 0 {
		return ctx, nil
	}
	shared := tenant.With(ctx, tenant.Default)
	if err := s.db.WithContext(shared).Model(&NotificationTemplate{}).Where("id = ? AND shared", id).Count(&n).Error; err != nil {
		return ctx, classify(err)
	}
	if n > 0 {
		return shared, nil
	}
	return ctx, nil
}

// NotificationTemplateVersions lists a template's versions, newest first.
func (s *Store) NotificationTemplateVersions(ctx context.Context, id string) ([]NotificationTemplateVersion, error) {
	var out []NotificationTemplateVersion
	ctx, err := s.templateScope(ctx, id)
	if err != nil {
		return nil, err
	}
	err = s.db.WithContext(ctx).Where("template_id = ?", id).Order("version DESC").Find(&out).Error
	return out, classify(err)
}

// ListNotificationTemplates returns templates in id order (ids are readable names), optionally
// of one channel: the tenant's own and the shared seed templates it has none of its own for.
// The cursor is the last id of the previous page.
func (s *Store) ListNotificationTemplates(ctx context.Context, channel string, p Page) ([]NotificationTemplate, string, error) {
	after, err := DecodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := p.Limit
	if limit <= 0 || limit > MaxPageLimit {
		limit = DefaultPageLimit
	}
	q := s.db.WithContext(ctx).Model(&NotificationTemplate{})
	if own, system := tenant.From(ctx); !system && own != tenant.Default {
		// The shared seed templates are every tenant's too, except where it has its own of that id.
		q = s.db.WithContext(tenant.System(ctx)).Model(&NotificationTemplate{}).
			Where("tenant_id = ? OR (tenant_id = ? AND shared AND id NOT IN (?))", own, tenant.Default,
				s.db.WithContext(tenant.System(ctx)).Model(&NotificationTemplate{}).Select("id").Where("tenant_id = ?", own))
	}
	if channel != "" {
		q = q.Where("channel = ?", channel)
	}
	if after != "" {
		q = q.Where("id > ?", after)
	}
	var rows []NotificationTemplate
	if err := q.Order("id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, "", classify(err)
	}
	if len(rows) <= limit {
		return rows, "", nil
	}
	rows = rows[:limit]
	return rows, EncodeCursor(rows[len(rows)-1].ID), nil
}

// DeleteNotificationTemplate removes a template and its versions. Notifications keep the
// content they were rendered with.
func (s *Store) DeleteNotificationTemplate(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *Store) error {
		if err := tx.db.Where("template_id = ?", id).Delete(&NotificationTemplateVersion{}).Error; err != nil {
			return err
		}
		res := tx.db.Where("id = ?", id).Delete(&NotificationTemplate{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}
