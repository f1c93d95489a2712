package store

import (
	"context"
	"time"
)

// AuditEntry is one recorded change (schema 00009): who (Principal: "key:<prefix>",
// "jwt:<sub>", "internal") did what (Action, the request's method and route) to which resource.
type AuditEntry struct {
	ID         string    `gorm:"primaryKey" json:"id"`
	TenantID   string    `gorm:"column:tenant_id" json:"tenant_id"`
	Principal  string    `json:"principal"`
	Action     string    `json:"action"`
	Resource   string    `json:"resource"`
	ResourceID string    `json:"resource_id,omitempty"`
	Status     int       `json:"status"`
	RequestID  string    `json:"request_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// TableName is the audit table.
func (AuditEntry) TableName() string { return "audit_log" }

// AppendAudit records e.
func (s *Store) AppendAudit(ctx context.Context, e *AuditEntry) error {
	return classify(s.db.WithContext(ctx).Create(e).Error)
}

// AppendAudits records entries in one statement (a group commit of concurrent requests' entries,
// all of the context's tenant).
func (s *Store) AppendAudits(ctx context.Context, entries []AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return classify(s.db.WithContext(ctx).Create(&entries).Error)
}

// ListAudit pages through the context's tenant's entries (every tenant's in tenant.System),
// newest first.
func (s *Store) ListAudit(ctx context.Context, p Page) ([]AuditEntry, string, error) {
	return List(s.db.WithContext(ctx).Model(&AuditEntry{}), p, func(e AuditEntry) string { return e.ID })
}
