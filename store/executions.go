package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm/clause"

	"github.com/pyairtable/automation-domain/wire"
)

// Execution statuses. Pending: stored, its Temporal workflow not started yet; the others are
// written by the interpreter's activities (terminated by the API, which is what terminates).
// They are the wire package's values (workflow code reads them there).
const (
	ExecutionPending    = wire.ExecutionPending
	ExecutionRunning    = wire.ExecutionRunning
	ExecutionCompleted  = wire.ExecutionCompleted
	ExecutionFailed     = wire.ExecutionFailed
	ExecutionCancelled  = wire.ExecutionCancelled
	ExecutionTerminated = wire.ExecutionTerminated
	ExecutionTimedOut   = wire.ExecutionTimedOut
)

// ExecutionStatuses lists every execution status.
var ExecutionStatuses = []string{ExecutionPending, ExecutionRunning, ExecutionCompleted, ExecutionFailed,
	ExecutionCancelled, ExecutionTerminated, ExecutionTimedOut}

// Finished reports whether status is final.
func Finished(status string) bool {
	switch status {
	case ExecutionCompleted, ExecutionFailed, ExecutionCancelled, ExecutionTerminated, ExecutionTimedOut:
		return true
	}
	return false
}

var finishedStatuses = []string{ExecutionCompleted, ExecutionFailed, ExecutionCancelled, ExecutionTerminated, ExecutionTimedOut}

// Step statuses (the wire package's).
const (
	StepPending   = wire.StepPending
	StepRunning   = wire.StepRunning
	StepWaiting   = wire.StepWaiting
	StepCompleted = wire.StepCompleted
	StepFailed    = wire.StepFailed
	StepSkipped   = wire.StepSkipped
	StepCancelled = wire.StepCancelled
)

// Execution is one run of a pinned definition version.
type Execution struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID    string `gorm:"column:tenant_id" json:"-"`
	ID          string `gorm:"primaryKey" json:"id"`
	WorkflowID  string `json:"workflow_id"`
	Version     int    `json:"version"`
	Status      string `json:"status"`
	Priority    string `json:"priority"`
	TriggeredBy string `json:"triggered_by"`
	Input       JSON   `json:"input_data"`
	// Output is every completed step's output by step id; absent (not null) until a step ran.
	Output             JSON       `json:"output,omitempty"`
	Error              string     `json:"error,omitempty"`
	IdempotencyKey     *string    `json:"idempotency_key,omitempty"`
	TemporalWorkflowID string     `json:"temporal_workflow_id"`
	TemporalRunID      string     `json:"temporal_run_id"`
	RetryOf            string     `json:"retry_of,omitempty"`
	ParentExecutionID  string     `json:"parent_execution_id,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
	StartedAt          *time.Time `json:"started_at,omitempty"`
	FinishedAt         *time.Time `json:"finished_at,omitempty"`
	UpdatedAt          time.Time  `json:"updated_at"`
}

// TableName is the executions table.
func (Execution) TableName() string { return "workflow_executions" }

// ExecutionStep is the record of one step of an execution.
type ExecutionStep struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID    string     `gorm:"column:tenant_id" json:"-"`
	ExecutionID string     `gorm:"primaryKey" json:"-"`
	StepID      string     `gorm:"primaryKey" json:"id"`
	Type        string     `json:"type"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	Output      JSON       `json:"output"`
	Error       string     `json:"error,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	UpdatedAt   time.Time  `json:"-"`
}

// TableName is the step records table.
func (ExecutionStep) TableName() string { return "workflow_execution_steps" }

// InsertExecution stores a new execution. A second one with the same definition and
// idempotency key (or the same Temporal workflow id) is ErrConflict. It counts against the
// tenant's executions_per_day: a *QuotaError when the quota is reached (nothing stored).
func (s *Store) InsertExecution(ctx context.Context, e *Execution) error {
	return s.Tx(ctx, func(tx *Store) error {
		if err := tx.ReserveQuota(ctx, QuotaExecutionsPerDay, 1, e.CreatedAt); err != nil {
			return err
		}
		return classify(tx.db.WithContext(ctx).Create(e).Error)
	})
}

// EnsureExecution stores e unless an execution for its Temporal workflow id exists, and
// returns the stored one: the interpreter calls it for runs it did not get an id for
// (scheduled and child runs), and calling it again after a crash finds the first row.
func (s *Store) EnsureExecution(ctx context.Context, e *Execution) (Execution, error) {
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(e)
	if res.Error != nil {
		return Execution{}, classify(res.Error)
	}
	var out Execution
	err := s.db.WithContext(ctx).Where("temporal_workflow_id = ?", e.TemporalWorkflowID).Take(&out).Error
	return out, classify(err)
}

// GetExecution returns one execution.
func (s *Store) GetExecution(ctx context.Context, id string) (Execution, error) {
	var e Execution
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&e).Error
	return e, classify(err)
}

// FindExecutionByKey returns the execution started on a definition with an idempotency key.
func (s *Store) FindExecutionByKey(ctx context.Context, workflowID, key string) (Execution, error) {
	var e Execution
	err := s.db.WithContext(ctx).Where("workflow_id = ? AND idempotency_key = ?", workflowID, key).Take(&e).Error
	return e, classify(err)
}

// ExecutionFilter narrows ListExecutions; zero fields do not filter.
type ExecutionFilter struct {
	WorkflowID string
	Status     string
	// CreatedAfter and CreatedBefore bound created_at.
	CreatedAfter, CreatedBefore time.Time
}

// ListExecutions returns executions, newest first.
func (s *Store) ListExecutions(ctx context.Context, f ExecutionFilter, p Page) ([]Execution, string, error) {
	q := s.db.WithContext(ctx).Model(&Execution{})
	if f.WorkflowID != "" {
		q = q.Where("workflow_id = ?", f.WorkflowID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if !f.CreatedAfter.IsZero() {
		q = q.Where("created_at >= ?", f.CreatedAfter.UTC())
	}
	if !f.CreatedBefore.IsZero() {
		q = q.Where("created_at < ?", f.CreatedBefore.UTC())
	}
	return List(q, p, func(e Execution) string { return e.ID })
}

// SetExecutionRun records the Temporal run that carries out a pending execution.
func (s *Store) SetExecutionRun(ctx context.Context, id, runID string, at time.Time) error {
	return classify(s.db.WithContext(ctx).Model(&Execution{}).Where("id = ?", id).
		Updates(map[string]any{"temporal_run_id": runID, "updated_at": at}).Error)
}

// MarkExecutionRunning records that the interpreter started (a pending execution, or one it
// restarted after a crash: started_at keeps the first start). It returns ErrNotFound when the
// execution is gone (its request failed and removed it: see DeleteUnstartedExecution).
func (s *Store) MarkExecutionRunning(ctx context.Context, id, runID string, at time.Time) error {
	res := s.db.WithContext(ctx).Model(&Execution{}).
		Where("id = ? AND status IN ?", id, []string{ExecutionPending, ExecutionRunning}).
		Updates(map[string]any{
			"status": ExecutionRunning, "temporal_run_id": runID, "updated_at": at,
			"started_at": clause.Expr{SQL: "COALESCE(started_at, ?)", Vars: []any{at}},
		})
	if res.Error != nil || res.RowsAffected > 0 {
		return classify(res.Error)
	}
	_, err := s.GetExecution(ctx, id)
	return err
}

// DeleteUnstartedExecution removes an execution whose start Temporal refused or did not
// confirm, unless a run has begun it meanwhile; deleted says whether it did.
func (s *Store) DeleteUnstartedExecution(ctx context.Context, id string) (deleted bool, err error) {
	res := s.db.WithContext(ctx).Where("id = ? AND status = ? AND temporal_run_id = ''", id, ExecutionPending).
		Delete(&Execution{})
	return res.RowsAffected == 1, classify(res.Error)
}

// FinishExecution records an execution's final status unless it has one already (terminate,
// recorded by the API, wins over what a late activity says).
func (s *Store) FinishExecution(ctx context.Context, id, status string, output JSON, errMsg string, at time.Time) error {
	if !Finished(status) {
		return errors.New("finish execution: " + status + " is not a final status")
	}
	res := s.db.WithContext(ctx).Model(&Execution{}).Where("id = ? AND status NOT IN ?", id, finishedStatuses).
		Updates(map[string]any{"status": status, "output": output, "error": errMsg, "finished_at": at, "updated_at": at})
	if res.Error != nil {
		return classify(res.Error)
	}
	if status == ExecutionTerminated || status == ExecutionCancelled {
		// Steps still marked running or waiting will never finish.
		return classify(s.db.WithContext(ctx).Model(&ExecutionStep{}).
			Where("execution_id = ? AND status IN ?", id, []string{StepRunning, StepWaiting}).
			Updates(map[string]any{"status": StepCancelled, "finished_at": at, "updated_at": at}).Error)
	}
	return nil
}

// StartStep records that an attempt of a step began (attempt counts from 1; started_at keeps
// the first attempt's time).
func (s *Store) StartStep(ctx context.Context, executionID, stepID, typ, status string, attempt int, at time.Time) error {
	row := ExecutionStep{ExecutionID: executionID, StepID: stepID, Type: typ, Status: status,
		Attempts: attempt, StartedAt: &at, UpdatedAt: at}
	return classify(s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "execution_id"}, {Name: "step_id"}},
		DoUpdates: clause.Assignments(map[string]any{
			"status": status, "attempts": attempt, "updated_at": at, "finished_at": nil,
		}),
	}).Create(&row).Error)
}

// RecordStep writes one attempt of an activity step in a single statement: its status,
// attempt number, output or error and times (started_at keeps the first attempt's time).
func (s *Store) RecordStep(ctx context.Context, row ExecutionStep) error {
	return classify(s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "execution_id"}, {Name: "step_id"}},
		DoUpdates: clause.Assignments(map[string]any{
			"status": row.Status, "attempts": row.Attempts, "output": row.Output, "error": row.Error,
			"finished_at": row.FinishedAt, "updated_at": row.UpdatedAt,
			"started_at": clause.Expr{SQL: "COALESCE(workflow_execution_steps.started_at, excluded.started_at)"},
		}),
	}).Create(&row).Error)
}

// FinishStep records a step's outcome (completed, failed, skipped or cancelled), creating the
// record when the step never started (a skipped step).
func (s *Store) FinishStep(ctx context.Context, executionID, stepID, typ, status string, output JSON, errMsg string, at time.Time) error {
	row := ExecutionStep{ExecutionID: executionID, StepID: stepID, Type: typ, Status: status,
		Output: output, Error: errMsg, FinishedAt: &at, UpdatedAt: at}
	if status == StepSkipped {
		row.StartedAt = &at
	}
	return classify(s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "execution_id"}, {Name: "step_id"}},
		DoUpdates: clause.Assignments(map[string]any{
			"status": status, "output": output, "error": errMsg, "finished_at": at, "updated_at": at,
		}),
	}).Create(&row).Error)
}

// ExecutionSteps returns the step records of an execution in the order they started.
func (s *Store) ExecutionSteps(ctx context.Context, executionID string) ([]ExecutionStep, error) {
	var out []ExecutionStep
	err := s.db.WithContext(ctx).Where("execution_id = ?", executionID).
		Order("started_at, step_id").Find(&out).Error
	return out, classify(err)
}

// GetExecutionStep returns one step record.
func (s *Store) GetExecutionStep(ctx context.Context, executionID, stepID string) (ExecutionStep, error) {
	var out ExecutionStep
	err := s.db.WithContext(ctx).Where("execution_id = ? AND step_id = ?", executionID, stepID).Take(&out).Error
	return out, classify(err)
}
