package store

import (
	"context"
	"time"
)

// Workflow is a workflow definition's current state; every version it had is a WorkflowVersion.
type Workflow struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID    string `gorm:"column:tenant_id" json:"-"`
	ID          string `gorm:"primaryKey" json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	TriggerType string `json:"trigger_type"`
	Enabled     bool   `json:"enabled"`
	Version     int    `json:"version"`
	// Definition is the current body (definition.Definition as JSON).
	Definition JSON `json:"-"`
	// ScheduleID is the Temporal Schedule of a schedule-triggered definition ("" otherwise).
	ScheduleID string     `json:"-"`
	Paused     bool       `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	DeletedAt  *time.Time `json:"-"`
}

// WorkflowVersion is one version of a definition, kept forever: executions pin it.
type WorkflowVersion struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID    string    `gorm:"column:tenant_id" json:"-"`
	WorkflowID  string    `gorm:"primaryKey" json:"workflow_id"`
	Version     int       `gorm:"primaryKey" json:"version"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	TriggerType string    `json:"trigger_type"`
	Definition  JSON      `json:"definition"`
	CreatedAt   time.Time `json:"created_at"`
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

// CreateWorkflow stores a new definition and its first version.
func (s *Store) CreateWorkflow(ctx context.Context, w *Workflow) error {
	return s.Tx(ctx, func(tx *Store) error {
		if err := tx.db.Create(w).Error; err != nil {
			return classify(err)
		}
		return classify(tx.db.Create(versionOf(w)).Error)
	})
}

func versionOf(w *Workflow) *WorkflowVersion {
	return &WorkflowVersion{WorkflowID: w.ID, Version: w.Version, Name: w.Name, Description: w.Description,
		TriggerType: w.TriggerType, Definition: w.Definition, CreatedAt: w.UpdatedAt}
}

// UpdateWorkflow stores w as the next version of a live definition whose current version is
// previous. A concurrent update (the version moved) is ErrConflict; a missing or deleted
// definition ErrNotFound.
func (s *Store) UpdateWorkflow(ctx context.Context, w *Workflow, previous int) error {
	return s.Tx(ctx, func(tx *Store) error {
		res := tx.db.Model(&Workflow{}).Where("id = ? AND version = ? AND deleted_at IS NULL", w.ID, previous).
			Updates(map[string]any{
				"name": w.Name, "description": w.Description, "trigger_type": w.TriggerType,
				"enabled": w.Enabled, "version": w.Version, "definition": w.Definition,
				"updated_at": w.UpdatedAt,
			})
		if res.Error != nil {
			return classify(res.Error)
		}
		if res.RowsAffected == 0 {
			if _, err := tx.GetWorkflow(ctx, w.ID); err != nil {
				return err
			}
			return ErrConflict
		}
		return classify(tx.db.Create(versionOf(w)).Error)
	})
}

// GetWorkflow returns a live definition.
func (s *Store) GetWorkflow(ctx context.Context, id string) (Workflow, error) {
	var w Workflow
	err := s.db.WithContext(ctx).Where("id = ? AND deleted_at IS NULL", id).Take(&w).Error
	return w, classify(err)
}

// GetWorkflowVersion returns one version of a definition (of a deleted one too).
func (s *Store) GetWorkflowVersion(ctx context.Context, id string, version int) (WorkflowVersion, error) {
	var v WorkflowVersion
	err := s.db.WithContext(ctx).Where("workflow_id = ? AND version = ?", id, version).Take(&v).Error
	return v, classify(err)
}

// ListWorkflowVersions returns a definition's versions, newest first.
func (s *Store) ListWorkflowVersions(ctx context.Context, id string) ([]WorkflowVersion, error) {
	var out []WorkflowVersion
	err := s.db.WithContext(ctx).Where("workflow_id = ?", id).Order("version DESC").Find(&out).Error
	return out, classify(err)
}

// DeleteWorkflow marks a live definition deleted (its versions and executions stay readable).
func (s *Store) DeleteWorkflow(ctx context.Context, id string, at time.Time) error {
	res := s.db.WithContext(ctx).Model(&Workflow{}).Where("id = ? AND deleted_at IS NULL", id).
		Updates(map[string]any{"deleted_at": at, "updated_at": at})
	if res.Error != nil {
		return classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// SetWorkflowSchedule records a definition's Temporal Schedule id and whether it is paused.
func (s *Store) SetWorkflowSchedule(ctx context.Context, id, scheduleID string, paused bool) error {
	return classify(s.db.WithContext(ctx).Model(&Workflow{}).Where("id = ?", id).
		Updates(map[string]any{"schedule_id": scheduleID, "paused": paused}).Error)
}
