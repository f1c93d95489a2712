package store

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/pyairtable/automation-domain/internal/tenant"
)

// Rule is an automation rule's current state; its definition (trigger, conditions, actions,
// limits) is versioned in RuleVersion and copied here for the current version.
type Rule struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID    string `gorm:"column:tenant_id" json:"-"`
	ID          string
	Name        string
	Description string
	TriggerType string
	EventType   string
	Source      string
	Priority    int
	Enabled     bool
	Version     int
	Definition  JSON
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeletedAt   *time.Time
}

// TableName is the rule table.
func (Rule) TableName() string { return "automation_rules" }

// RuleVersion is one immutable definition of a rule.
type RuleVersion struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID   string `gorm:"column:tenant_id" json:"-"`
	RuleID     string `gorm:"primaryKey"`
	Version    int    `gorm:"primaryKey"`
	Definition JSON
	CreatedAt  time.Time
}

// TableName is the version table.
func (RuleVersion) TableName() string { return "automation_rule_versions" }

// RuleRef names the version of an active rule.
type RuleRef struct {
	ID       string
	Version  int
	Priority int
}

// RuleFilter narrows ListRules; zero fields do not filter.
type RuleFilter struct {
	Name        string
	TriggerType string
	Enabled     *bool
}

// CreateRule stores r as version 1 (r.Version is set).
func (s *Store) CreateRule(ctx context.Context, r *Rule) error {
	r.Version = 1
	return s.Tx(ctx, func(tx *Store) error {
		if err := tx.db.WithContext(ctx).Create(r).Error; err != nil {
			return classify(err)
		}
		v := RuleVersion{RuleID: r.ID, Version: 1, Definition: r.Definition, CreatedAt: r.CreatedAt}
		return classify(tx.db.WithContext(ctx).Create(&v).Error)
	})
}

// GetRule returns a live (not deleted) rule.
func (s *Store) GetRule(ctx context.Context, id string) (Rule, error) {
	var r Rule
	err := s.db.WithContext(ctx).Where("id = ? AND deleted_at IS NULL", id).Take(&r).Error
	return r, classify(err)
}

// ListRules returns live rules, newest first.
func (s *Store) ListRules(ctx context.Context, f RuleFilter, p Page) ([]Rule, string, error) {
	q := s.db.WithContext(ctx).Model(&Rule{}).Where("deleted_at IS NULL")
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.TriggerType != "" {
		q = q.Where("trigger_type = ?", f.TriggerType)
	}
	if f.Enabled != nil {
		q = q.Where("enabled = ?", *f.Enabled)
	}
	return List(q, p, func(r Rule) string { return r.ID })
}

// UpdateRule loads live rule id inside a transaction (locked against concurrent updates on
// Postgres), lets change modify it and saves it. When change replaces the definition
// (newDefinition true) the version is bumped and the new version stored.
func (s *Store) UpdateRule(ctx context.Context, id string, change func(r *Rule) (newDefinition bool, err error)) (Rule, error) {
	var out Rule
	err := s.Tx(ctx, func(tx *Store) error {
		q := tx.db.WithContext(ctx)
		if tx.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		var r Rule
		if err := q.Where("id = ? AND deleted_at IS NULL", id).Take(&r).Error; err != nil {
			return classify(err)
		}
		newDef, err := change(&r)
		if err != nil {
			return err
		}
		if newDef {
			r.Version++
			v := RuleVersion{RuleID: r.ID, Version: r.Version, Definition: r.Definition, CreatedAt: r.UpdatedAt}
			if err := tx.db.WithContext(ctx).Create(&v).Error; err != nil {
				return classify(err)
			}
		}
		if err := tx.db.WithContext(ctx).Save(&r).Error; err != nil {
			return classify(err)
		}
		out = r
		return nil
	})
	return out, err
}

// ActiveRules lists the enabled live rules with their current versions, highest priority first
// (ties: oldest first).
func (s *Store) ActiveRules(ctx context.Context) ([]RuleRef, error) {
	var out []RuleRef
	err := s.db.WithContext(ctx).Model(&Rule{}).Select("id, version, priority").
		Where("enabled AND deleted_at IS NULL").Order("priority DESC, id").Find(&out).Error
	return out, classify(err)
}

// RulesWithTrigger lists live rules with the trigger type (enabled or not).
func (s *Store) RulesWithTrigger(ctx context.Context, triggerType string) ([]Rule, error) {
	var out []Rule
	err := s.db.WithContext(ctx).Where("trigger_type = ? AND deleted_at IS NULL", triggerType).Order("id").Find(&out).Error
	return out, classify(err)
}

// GetRuleVersion returns one version of a rule (deleted rules included: their executions still
// name them).
func (s *Store) GetRuleVersion(ctx context.Context, ruleID string, version int) (RuleVersion, error) {
	var v RuleVersion
	err := s.db.WithContext(ctx).Where("rule_id = ? AND version = ?", ruleID, version).Take(&v).Error
	return v, classify(err)
}

// RuleVersions lists every version of a rule, newest first.
func (s *Store) RuleVersions(ctx context.Context, ruleID string) ([]RuleVersion, error) {
	var out []RuleVersion
	err := s.db.WithContext(ctx).Where("rule_id = ?", ruleID).Order("version DESC").Find(&out).Error
	return out, classify(err)
}

// GetRuleAnyState returns a rule even when deleted (for history pages).
func (s *Store) GetRuleAnyState(ctx context.Context, id string) (Rule, error) {
	var r Rule
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	return r, classify(err)
}

// RuleNames maps rule ids to names (deleted rules included).
func (s *Store) RuleNames(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []Rule
	if err := s.db.WithContext(ctx).Select("id, name").Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, classify(err)
	}
	for _, r := range rows {
		out[r.ID] = r.Name
	}
	return out, nil
}

// Execution statuses.
const (
	RuleExecutionNotMatched = "not_matched" // a condition did not hold
	RuleExecutionSkipped    = "skipped"     // matched, but stop_processing, cooldown, rate limit or dedup_key
	RuleExecutionError      = "error"       // the rule could not be evaluated (expression error, dedup_key template)
	RuleExecutionRunning    = "running"     // actions are running
	RuleExecutionSucceeded  = "succeeded"   // every action succeeded
	RuleExecutionPartial    = "partial"     // some actions failed, others (continue_on_error) ran
	RuleExecutionFailed     = "failed"      // an action failed; the ones after it were skipped
)

// Action outcome statuses.
const (
	OutcomePending   = "pending"
	OutcomeRunning   = "running"
	OutcomeRetrying  = "retrying"
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeSkipped   = "skipped"
)

// Event evaluation statuses.
const (
	EvaluationEvaluated = "evaluated"
	EvaluationSkipped   = "skipped"
)

// EventEvaluation records that the rules engine took an event.
type EventEvaluation struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID     string `gorm:"column:tenant_id" json:"-"`
	EventID      string `gorm:"primaryKey"`
	EventType    string
	Status       string
	Reason       string
	RulesMatched int
	EvaluatedAt  time.Time
}

// TableName is the evaluation table.
func (EventEvaluation) TableName() string { return "automation_event_evaluations" }

// RuleExecution is one rule's evaluation of one event and, when it fired, the run of its
// actions.
type RuleExecution struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID    string `gorm:"column:tenant_id" json:"-"`
	ID          string
	EventID     string
	EventType   string
	RuleID      string
	RuleVersion int
	Status      string
	Reason      string
	Fired       bool
	Conditions  JSON
	DedupKey    string
	ActionCount int
	EvaluatedAt time.Time
	FinishedAt  *time.Time
}

// TableName is the execution table.
func (RuleExecution) TableName() string { return "automation_executions" }

// ActionOutcome is what became of one action of a fired execution.
type ActionOutcome struct {
	// TenantID owns the row (set and filtered by the store's tenancy callbacks).
	TenantID       string `gorm:"column:tenant_id" json:"-"`
	ExecutionID    string `gorm:"primaryKey"`
	ActionIndex    int    `gorm:"primaryKey"`
	Type           string
	Status         string
	IdempotencyKey string
	Rendered       JSON
	Result         JSON
	Error          string
	Attempts       int
	StartedAt      *time.Time
	FinishedAt     *time.Time
}

// TableName is the outcome table.
func (ActionOutcome) TableName() string { return "automation_action_outcomes" }

// GetEventEvaluation returns the engine's record of an event.
func (s *Store) GetEventEvaluation(ctx context.Context, eventID string) (EventEvaluation, error) {
	var ev EventEvaluation
	err := s.db.WithContext(ctx).Where("event_id = ?", eventID).Take(&ev).Error
	return ev, classify(err)
}

// EventEvaluations returns the records of the given events, by event id.
func (s *Store) EventEvaluations(ctx context.Context, eventIDs []string) (map[string]EventEvaluation, error) {
	out := map[string]EventEvaluation{}
	if len(eventIDs) == 0 {
		return out, nil
	}
	var rows []EventEvaluation
	if err := s.db.WithContext(ctx).Where("event_id IN ?", eventIDs).Find(&rows).Error; err != nil {
		return nil, classify(err)
	}
	for _, r := range rows {
		out[r.EventID] = r
	}
	return out, nil
}

// RecordEvaluation stores an event's evaluation with its executions and their pending action
// outcomes, all at once. ErrConflict means the event (or one of its event x rule pairs) was
// evaluated already. Use it inside Tx together with the limit checks.
func (s *Store) RecordEvaluation(ctx context.Context, ev EventEvaluation, execs []RuleExecution, outcomes []ActionOutcome) error {
	db := s.db.WithContext(ctx)
	if err := db.Create(&ev).Error; err != nil {
		return classify(err)
	}
	if len(execs) > 0 {
		if err := db.Create(&execs).Error; err != nil {
			return classify(err)
		}
	}
	if len(outcomes) > 0 {
		if err := db.Create(&outcomes).Error; err != nil {
			return classify(err)
		}
	}
	return nil
}

// LockRuleRuns serialises the limit checks of one rule until the transaction ends (Postgres
// advisory lock; SQLite write transactions are serial already).
func (s *Store) LockRuleRuns(ctx context.Context, ruleID string) error {
	if s.dialect != Postgres {
		return nil
	}
	return classify(s.db.WithContext(ctx).Exec("SELECT pg_advisory_xact_lock(hashtextextended(?, 7))", "rule:"+ruleID).Error)
}

// RuleRuns counts the fired executions of a rule evaluated after since, and returns the time of
// the latest fired execution (zero when none ever fired).
func (s *Store) RuleRuns(ctx context.Context, ruleID string, since time.Time) (count int, last time.Time, err error) {
	var n int64
	db := s.db.WithContext(ctx)
	if err := db.Model(&RuleExecution{}).Where("rule_id = ? AND fired AND evaluated_at > ?", ruleID, since).
		Count(&n).Error; err != nil {
		return 0, time.Time{}, classify(err)
	}
	var latest RuleExecution
	err = db.Select("evaluated_at").Where("rule_id = ? AND fired", ruleID).Order("evaluated_at DESC").
		Limit(1).Take(&latest).Error
	switch {
	case err == gorm.ErrRecordNotFound:
		return int(n), time.Time{}, nil
	case err != nil:
		return 0, time.Time{}, classify(err)
	}
	return int(n), latest.EvaluatedAt, nil
}

// FiredWithDedupKey returns the id of a fired execution of the rule with the dedup key evaluated
// after since ("" when none).
func (s *Store) FiredWithDedupKey(ctx context.Context, ruleID, key string, since time.Time) (string, error) {
	var e RuleExecution
	err := s.db.WithContext(ctx).Select("id").
		Where("rule_id = ? AND fired AND dedup_key = ? AND evaluated_at > ?", ruleID, key, since).
		Order("evaluated_at DESC").Limit(1).Take(&e).Error
	if err == gorm.ErrRecordNotFound {
		return "", nil
	}
	return e.ID, classify(err)
}

// ExecutionsForEvent lists the executions of an event, in the order they were decided.
func (s *Store) ExecutionsForEvent(ctx context.Context, eventID string) ([]RuleExecution, error) {
	var out []RuleExecution
	err := s.db.WithContext(ctx).Where("event_id = ?", eventID).Order("id").Find(&out).Error
	return out, classify(err)
}

// GetExecution returns one execution.
func (s *Store) GetRuleExecution(ctx context.Context, id string) (RuleExecution, error) {
	var e RuleExecution
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&e).Error
	return e, classify(err)
}

// ExecutionFilter narrows ListExecutions.
type RuleExecutionFilter struct {
	RuleID  string
	EventID string
	Status  string
}

// ListExecutions pages through executions, newest first.
func (s *Store) ListRuleExecutions(ctx context.Context, f RuleExecutionFilter, p Page) ([]RuleExecution, string, error) {
	q := s.db.WithContext(ctx).Model(&RuleExecution{})
	if f.RuleID != "" {
		q = q.Where("rule_id = ?", f.RuleID)
	}
	if f.EventID != "" {
		q = q.Where("event_id = ?", f.EventID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	return List(q, p, func(e RuleExecution) string { return e.ID })
}

// Outcomes returns the action outcomes of the executions, by execution id, in action order.
func (s *Store) Outcomes(ctx context.Context, executionIDs []string) (map[string][]ActionOutcome, error) {
	out := map[string][]ActionOutcome{}
	if len(executionIDs) == 0 {
		return out, nil
	}
	var rows []ActionOutcome
	if err := s.db.WithContext(ctx).Where("execution_id IN ?", executionIDs).
		Order("execution_id, action_index").Find(&rows).Error; err != nil {
		return nil, classify(err)
	}
	for _, r := range rows {
		out[r.ExecutionID] = append(out[r.ExecutionID], r)
	}
	return out, nil
}

// GetOutcome returns one action outcome.
func (s *Store) GetOutcome(ctx context.Context, executionID string, index int) (ActionOutcome, error) {
	var o ActionOutcome
	err := s.db.WithContext(ctx).Where("execution_id = ? AND action_index = ?", executionID, index).Take(&o).Error
	return o, classify(err)
}

// OutcomeAttempt is one finished attempt of an action.
type OutcomeAttempt struct {
	// Status is succeeded or failed (final), or retrying.
	Status   string
	Rendered JSON
	Result   JSON
	Error    string
	// StartedAt is when the attempt started (kept as the action's start for its first attempt).
	StartedAt time.Time
	At        time.Time
}

// RecordAttempt records an attempt of an action that is not final yet: one more attempt, its
// rendering, result or error, and — when the attempt is final and no action of the execution is
// left to run — the execution's status, in one transaction. It returns false (and changes
// nothing) when the action was final already: a concurrent duplicate finished it.
func (s *Store) RecordAttempt(ctx context.Context, executionID string, index int, a OutcomeAttempt) (bool, error) {
	recorded := false
	err := s.Tx(ctx, func(tx *Store) error {
		updates := map[string]any{
			"status": a.Status, "error": a.Error, "attempts": gorm.Expr("attempts + 1"),
			"started_at": gorm.Expr("COALESCE(started_at, ?)", a.StartedAt),
		}
		if a.Rendered != nil {
			updates["rendered"] = a.Rendered
		}
		if a.Result != nil {
			updates["result"] = a.Result
		}
		if a.Status != OutcomeRetrying {
			updates["finished_at"] = a.At
		}
		res := tx.db.WithContext(ctx).Model(&ActionOutcome{}).
			Where("execution_id = ? AND action_index = ? AND status NOT IN ?", executionID, index,
				[]string{OutcomeSucceeded, OutcomeFailed, OutcomeSkipped}).
			Updates(updates)
		if res.Error != nil {
			return classify(res.Error)
		}
		recorded = res.RowsAffected == 1
		if !recorded || a.Status == OutcomeRetrying {
			return nil
		}
		return tx.settleExecution(ctx, executionID, a.At, false)
	})
	return recorded, err
}

// AbandonExecution ends an execution whose run stopped early: the given actions failed (with
// errMsg where their record has none), the actions not run are skipped, and the execution's
// status is settled.
func (s *Store) AbandonExecution(ctx context.Context, executionID string, failed []int, errMsg string, at time.Time) error {
	return s.Tx(ctx, func(tx *Store) error {
		db := tx.db.WithContext(ctx)
		if len(failed) > 0 {
			if err := db.Model(&ActionOutcome{}).
				Where("execution_id = ? AND action_index IN ? AND status NOT IN ?", executionID, failed,
					[]string{OutcomeSucceeded, OutcomeFailed}).
				Updates(map[string]any{"status": OutcomeFailed, "finished_at": at}).Error; err != nil {
				return classify(err)
			}
			if err := db.Model(&ActionOutcome{}).
				Where("execution_id = ? AND action_index IN ? AND error = ''", executionID, failed).
				Update("error", errMsg).Error; err != nil {
				return classify(err)
			}
		}
		return tx.settleExecution(ctx, executionID, at, true)
	})
}

// settleExecution sets the execution's final status once no action is left to run; with
// abandon, actions not started are skipped first.
func (s *Store) settleExecution(ctx context.Context, executionID string, at time.Time, abandon bool) error {
	db := s.db.WithContext(ctx)
	if abandon {
		if err := db.Model(&ActionOutcome{}).
			Where("execution_id = ? AND status IN ?", executionID, []string{OutcomePending, OutcomeRunning, OutcomeRetrying}).
			Updates(map[string]any{"status": OutcomeSkipped, "finished_at": at}).Error; err != nil {
			return classify(err)
		}
	}
	var outcomes []ActionOutcome
	if err := db.Select("status").Where("execution_id = ?", executionID).Find(&outcomes).Error; err != nil {
		return classify(err)
	}
	succeeded, failed := 0, 0
	for _, o := range outcomes {
		switch o.Status {
		case OutcomeSucceeded:
			succeeded++
		case OutcomeFailed:
			failed++
		case OutcomeSkipped:
		default:
			return nil // still running
		}
	}
	status := RuleExecutionSucceeded
	switch {
	case failed > 0 && (abandon || succeeded == 0):
		status = RuleExecutionFailed
	case failed > 0:
		status = RuleExecutionPartial
	}
	return classify(db.Model(&RuleExecution{}).Where("id = ? AND status = ?", executionID, RuleExecutionRunning).
		Updates(map[string]any{"status": status, "finished_at": at}).Error)
}

// PurgeEvents deletes up to limit events received before cutoff and fully handed off, with the
// rules engine's records of them. It returns how many events it deleted.
// Event ids are unique per tenant only: in tenant.System each tenant's events are purged in a
// statement of their own, so that one tenant's old event never takes another's of the same id.
func (s *Store) PurgeEvents(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	var rows []Event
	if err := s.db.WithContext(ctx).Model(&Event{}).Select("tenant_id", "id").
		Where("received_at < ? AND dispatched_at IS NOT NULL", cutoff).
		Order("received_at").Limit(limit).Find(&rows).Error; err != nil {
		return 0, classify(err)
	}
	byTenant := map[string][]string{}
	var order []string
	for _, e := range rows {
		if _, ok := byTenant[e.TenantID]; !ok {
			order = append(order, e.TenantID)
		}
		byTenant[e.TenantID] = append(byTenant[e.TenantID], e.ID)
	}
	purged := 0
	for _, t := range order {
		tctx := ctx
		if _, system := tenant.From(ctx); system {
			tctx = tenant.With(ctx, t)
		}
		n, err := s.purgeEvents(tctx, byTenant[t])
		purged += n
		if err != nil {
			return purged, err
		}
	}
	return purged, nil
}

// purgeEvents deletes the context's tenant's events ids with the rules engine's records of them.
func (s *Store) purgeEvents(ctx context.Context, ids []string) (int, error) {
	err := s.Tx(ctx, func(tx *Store) error {
		db := tx.db.WithContext(ctx)
		execs := tx.db.WithContext(ctx).Model(&RuleExecution{}).Select("id").Where("event_id IN ?", ids)
		if err := db.Where("execution_id IN (?)", execs).Delete(&ActionOutcome{}).Error; err != nil {
			return classify(err)
		}
		if err := db.Where("event_id IN ?", ids).Delete(&RuleExecution{}).Error; err != nil {
			return classify(err)
		}
		if err := db.Where("event_id IN ?", ids).Delete(&EventEvaluation{}).Error; err != nil {
			return classify(err)
		}
		return classify(db.Where("id IN ?", ids).Delete(&Event{}).Error)
	})
	if err != nil {
		return 0, err
	}
	return len(ids), nil
}
