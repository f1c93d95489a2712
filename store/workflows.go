package store

import (
	"context"
	"time"
)

// Workflow is a workflow definition's current state.
type Workflow struct {
	ID          string     `gorm:"primaryKey" json:"id"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	TriggerType string     `json:"trigger_type"`
	Enabled     bool       `json:"enabled"`
	Version     int        `json:"version"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	DeletedAt   *time.Time `json:"-"`
}

// WorkflowFilter narrows ListWorkflows; zero fields do not filter.
type WorkflowFilter struct {
	Name        string
	TriggerType string
	Enabled     *bool
}

// ListWorkflows returns live (not deleted) definitions, newest first.
func (s *Store) ListWorkflows(ctx context.Context, f WorkflowFilter, p Page) ([]Workflow, string, error) {
	q := s.db.WithContext(ctx).Model(&Workflow{}).Where("deleted_at IS NULL")
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.TriggerType != "" {
		q = q.Where("trigger_type = ?", f.TriggerType)
	}
	if f.Enabled != nil {
		q = q.Where("enabled = ?", *f.Enabled)
	}
	return List(q, p, func(w Workflow) string { return w.ID })
}
