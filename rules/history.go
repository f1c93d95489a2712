package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/pyairtable/automation-domain/store"
)

// Execution is one rule's evaluation of one event and the run of its actions.
type Execution struct {
	ID          string `json:"id"`
	EventID     string `json:"event_id"`
	EventType   string `json:"event_type"`
	RuleID      string `json:"rule_id"`
	RuleName    string `json:"rule_name"`
	RuleVersion int    `json:"rule_version"`
	// Status: not_matched, error, skipped, running, succeeded, partial, failed.
	Status string `json:"status"`
	// Matched says whether the conditions held.
	Matched bool `json:"matched"`
	// Reason says why: the failing condition with its actual value, the limit hit, …
	Reason string `json:"reason"`
	// Conditions are the results of every condition with its actual value (detail only).
	Conditions  []ConditionResult `json:"conditions,omitempty"`
	DedupKey    string            `json:"dedup_key,omitempty"`
	EvaluatedAt time.Time         `json:"evaluated_at"`
	FinishedAt  *time.Time        `json:"finished_at,omitempty"`
	DurationMS  *float64          `json:"duration_ms,omitempty"`
	Actions     []ActionRun       `json:"actions"`
	// Event is the triggering event (detail only).
	Event *store.Event `json:"event,omitempty"`
}

// ActionRun is one action of an execution: its state, attempts, timings, result or error.
type ActionRun struct {
	Index          int             `json:"index"`
	Type           string          `json:"type"`
	Status         string          `json:"status"`
	Attempts       int             `json:"attempts"`
	Error          string          `json:"error,omitempty"`
	IdempotencyKey string          `json:"idempotency_key"`
	Rendered       *RenderedAction `json:"rendered,omitempty"`
	Result         json.RawMessage `json:"result,omitempty"`
	StartedAt      *time.Time      `json:"started_at,omitempty"`
	FinishedAt     *time.Time      `json:"finished_at,omitempty"`
	DurationMS     *float64        `json:"duration_ms,omitempty"`
}

// ExecutionStatuses are the statuses an execution can have (ListExecutions filters on them).
func ExecutionStatuses() []string {
	return []string{store.RuleExecutionNotMatched, store.RuleExecutionError, store.RuleExecutionSkipped,
		store.RuleExecutionRunning, store.RuleExecutionSucceeded, store.RuleExecutionPartial, store.RuleExecutionFailed}
}

func durationMS(from time.Time, to *time.Time) *float64 {
	if to == nil {
		return nil
	}
	ms := float64(to.Sub(from).Microseconds()) / 1000
	return &ms
}

// executions builds the views of execs with their actions (and, with detail, their condition
// results).
func (s *Service) executions(ctx context.Context, execs []store.RuleExecution, detail bool) ([]Execution, error) {
	ids := make([]string, len(execs))
	ruleIDs := make([]string, 0, len(execs))
	for i, x := range execs {
		ids[i] = x.ID
		ruleIDs = append(ruleIDs, x.RuleID)
	}
	outcomes, err := s.store.Outcomes(ctx, ids)
	if err != nil {
		return nil, err
	}
	names, err := s.store.RuleNames(ctx, ruleIDs)
	if err != nil {
		return nil, err
	}
	out := make([]Execution, 0, len(execs))
	for _, x := range execs {
		v := Execution{
			ID: x.ID, EventID: x.EventID, EventType: x.EventType, RuleID: x.RuleID, RuleName: names[x.RuleID],
			RuleVersion: x.RuleVersion, Status: x.Status, Reason: x.Reason, DedupKey: x.DedupKey,
			Matched:     x.Status != store.RuleExecutionNotMatched && x.Status != store.RuleExecutionError,
			EvaluatedAt: x.EvaluatedAt, FinishedAt: x.FinishedAt, DurationMS: durationMS(x.EvaluatedAt, x.FinishedAt),
			Actions: []ActionRun{},
		}
		if detail {
			if err := json.Unmarshal(x.Conditions, &v.Conditions); err != nil {
				return nil, fmt.Errorf("execution %s: conditions: %w", x.ID, err)
			}
		}
		for _, o := range outcomes[x.ID] {
			a := ActionRun{Index: o.ActionIndex, Type: o.Type, Status: o.Status, Attempts: o.Attempts, Error: o.Error,
				IdempotencyKey: o.IdempotencyKey, StartedAt: o.StartedAt, FinishedAt: o.FinishedAt}
			if len(o.Rendered) > 0 && string(o.Rendered) != "null" {
				a.Rendered = &RenderedAction{}
				if err := json.Unmarshal(o.Rendered, a.Rendered); err != nil {
					return nil, fmt.Errorf("execution %s action %d: %w", x.ID, o.ActionIndex, err)
				}
			}
			if len(o.Result) > 0 && string(o.Result) != "null" {
				a.Result = json.RawMessage(o.Result)
			}
			if o.StartedAt != nil {
				a.DurationMS = durationMS(*o.StartedAt, o.FinishedAt)
			}
			v.Actions = append(v.Actions, a)
		}
		out = append(out, v)
	}
	return out, nil
}

// RuleExisted returns store.ErrNotFound unless rule id exists or existed: a deleted rule's
// history stays readable.
func (s *Service) RuleExisted(ctx context.Context, id string) error {
	_, err := s.store.GetRuleAnyState(ctx, id)
	return err
}

// ListExecutions lists the executions of rule f.RuleID (deleted rules too: their history stays
// readable), newest first.
func (s *Service) ListExecutions(ctx context.Context, f store.RuleExecutionFilter, p store.Page) ([]Execution, string, error) {
	items, next, err := s.store.ListRuleExecutions(ctx, f, p)
	if err != nil {
		return nil, "", err
	}
	views, err := s.executions(ctx, items, false)
	if err != nil {
		return nil, "", err
	}
	return views, next, nil
}

// GetExecution returns one execution with its event, every condition with its actual value, and
// every action.
func (s *Service) GetExecution(ctx context.Context, id string) (Execution, error) {
	x, err := s.store.GetRuleExecution(ctx, id)
	if err != nil {
		return Execution{}, err
	}
	views, err := s.executions(ctx, []store.RuleExecution{x}, true)
	if err != nil {
		return Execution{}, err
	}
	v := views[0]
	if e, err := s.store.GetEvent(ctx, x.EventID); err == nil {
		v.Event = &e
	} else if !isNotFound(err) {
		return Execution{}, err
	}
	return v, nil
}

// EventSummary is an event in lists, with what the rules engine made of it.
type EventSummary struct {
	store.Event
	Evaluation *EventEvaluation `json:"evaluation"`
}

// EventEvaluation says what the rules engine made of an event.
type EventEvaluation struct {
	// Status is evaluated or skipped; the evaluation is null while the event waits.
	Status       string    `json:"status"`
	Reason       string    `json:"reason,omitempty"`
	RulesMatched int       `json:"rules_fired"`
	EvaluatedAt  time.Time `json:"evaluated_at"`
}

func viewEvaluation(ev store.EventEvaluation) *EventEvaluation {
	return &EventEvaluation{Status: ev.Status, Reason: ev.Reason, RulesMatched: ev.RulesMatched, EvaluatedAt: ev.EvaluatedAt}
}

// EventDetail is one event with every rule that considered it, what ran and the events its
// actions emitted.
type EventDetail struct {
	store.Event
	Evaluation *EventEvaluation `json:"evaluation"`
	Executions []Execution      `json:"executions"`
	Caused     []EventRef       `json:"caused_events"`
}

// ListEvents lists stored events with their evaluations, newest first.
func (s *Service) ListEvents(ctx context.Context, f store.EventFilter, p store.Page) ([]EventSummary, string, error) {
	items, next, err := s.store.ListEvents(ctx, f, p)
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, len(items))
	for i, e := range items {
		ids[i] = e.ID
	}
	evals, err := s.store.EventEvaluations(ctx, ids)
	if err != nil {
		return nil, "", err
	}
	out := make([]EventSummary, len(items))
	for i, e := range items {
		out[i] = EventSummary{Event: e}
		if ev, ok := evals[e.ID]; ok {
			out[i].Evaluation = viewEvaluation(ev)
		}
	}
	return out, next, nil
}

// GetEvent returns event id with its evaluation, its executions and the events they caused.
func (s *Service) GetEvent(ctx context.Context, id string) (EventDetail, error) {
	e, err := s.store.GetEvent(ctx, id)
	if err != nil {
		return EventDetail{}, err
	}
	out := EventDetail{Event: e, Executions: []Execution{}, Caused: []EventRef{}}
	if ev, err := s.store.GetEventEvaluation(ctx, id); err == nil {
		out.Evaluation = viewEvaluation(ev)
	} else if !isNotFound(err) {
		return EventDetail{}, err
	}
	execs, err := s.store.ExecutionsForEvent(ctx, id)
	if err != nil {
		return EventDetail{}, err
	}
	if out.Executions, err = s.executions(ctx, execs, false); err != nil {
		return EventDetail{}, err
	}
	for _, x := range out.Executions {
		for _, a := range x.Actions {
			var res struct {
				EventID string `json:"event_id"`
			}
			if a.Type == ActionEmitEvent && json.Unmarshal(a.Result, &res) == nil && res.EventID != "" {
				out.Caused = append(out.Caused, EventRef{ID: res.EventID, Type: a.Rendered.EventType})
			}
		}
	}
	return out, nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
