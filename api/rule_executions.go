package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// executionView is one rule's evaluation of one event and the run of its actions.
type executionView struct {
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
	Conditions  []rules.ConditionResult `json:"conditions,omitempty"`
	DedupKey    string                  `json:"dedup_key,omitempty"`
	EvaluatedAt time.Time               `json:"evaluated_at"`
	FinishedAt  *time.Time              `json:"finished_at,omitempty"`
	DurationMS  *float64                `json:"duration_ms,omitempty"`
	Actions     []actionView            `json:"actions"`
	// Event is the triggering event (detail only).
	Event *store.Event `json:"event,omitempty"`
}

type actionView struct {
	Index          int                   `json:"index"`
	Type           string                `json:"type"`
	Status         string                `json:"status"`
	Attempts       int                   `json:"attempts"`
	Error          string                `json:"error,omitempty"`
	IdempotencyKey string                `json:"idempotency_key"`
	Rendered       *rules.RenderedAction `json:"rendered,omitempty"`
	Result         json.RawMessage       `json:"result,omitempty"`
	StartedAt      *time.Time            `json:"started_at,omitempty"`
	FinishedAt     *time.Time            `json:"finished_at,omitempty"`
	DurationMS     *float64              `json:"duration_ms,omitempty"`
}

func durationMS(from time.Time, to *time.Time) *float64 {
	if to == nil {
		return nil
	}
	ms := float64(to.Sub(from).Microseconds()) / 1000
	return &ms
}

// executionViews builds the views of execs with their actions (and, with detail, their
// condition results).
func (s *Server) executionViews(ctx context.Context, execs []store.RuleExecution, detail bool) ([]executionView, error) {
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
	out := make([]executionView, 0, len(execs))
	for _, x := range execs {
		v := executionView{
			ID: x.ID, EventID: x.EventID, EventType: x.EventType, RuleID: x.RuleID, RuleName: names[x.RuleID],
			RuleVersion: x.RuleVersion, Status: x.Status, Reason: x.Reason, DedupKey: x.DedupKey,
			Matched:     x.Status != store.RuleExecutionNotMatched && x.Status != store.RuleExecutionError,
			EvaluatedAt: x.EvaluatedAt, FinishedAt: x.FinishedAt, DurationMS: durationMS(x.EvaluatedAt, x.FinishedAt),
			Actions: []actionView{},
		}
		if detail {
			if err := json.Unmarshal(x.Conditions, &v.Conditions); err != nil {
				return nil, err
			}
		}
		for _, o := range outcomes[x.ID] {
			a := actionView{Index: o.ActionIndex, Type: o.Type, Status: o.Status, Attempts: o.Attempts, Error: o.Error,
				IdempotencyKey: o.IdempotencyKey, StartedAt: o.StartedAt, FinishedAt: o.FinishedAt}
			if len(o.Rendered) > 0 && string(o.Rendered) != "null" {
				a.Rendered = &rules.RenderedAction{}
				if err := json.Unmarshal(o.Rendered, a.Rendered); err != nil {
					return nil, err
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

// listRuleExecutions: GET /api/v1/automation/rules/{id}/executions?status=&event_id=&limit=&cursor=
func (s *Server) listRuleExecutions(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if _, err := s.store.GetRuleAnyState(ctx, id); err != nil {
		if isNotFound(err) {
			return NotFound("rule", id)
		}
		return err
	}
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	var problems validation.Problems
	f := store.RuleExecutionFilter{RuleID: id, Status: c.QueryParam("status"), EventID: c.QueryParam("event_id")}
	oneOf(&problems, "status", f.Status, store.RuleExecutionNotMatched, store.RuleExecutionError, store.RuleExecutionSkipped,
		store.RuleExecutionRunning, store.RuleExecutionSucceeded, store.RuleExecutionPartial, store.RuleExecutionFailed)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.store.ListRuleExecutions(ctx, f, page)
	if err != nil {
		return err
	}
	views, err := s.executionViews(ctx, items, false)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(views, next))
}

// getRuleExecution: GET /api/v1/automation/executions/{id} — the event, every condition with its
// actual value, and every action with status, attempts, timings, result or error.
func (s *Server) getRuleExecution(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	x, err := s.store.GetRuleExecution(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return NotFound("execution", id)
		}
		return err
	}
	views, err := s.executionViews(ctx, []store.RuleExecution{x}, true)
	if err != nil {
		return err
	}
	v := views[0]
	if e, err := s.store.GetEvent(ctx, x.EventID); err == nil {
		v.Event = &e
	} else if !isNotFound(err) {
		return err
	}
	return c.JSON(http.StatusOK, v)
}
