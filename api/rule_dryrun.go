package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// sampleEvent is the event of a dry run: an event body (POST /api/v1/events) plus the causation
// depth, to try the loop limit. Type, source and subject default to what the rule's trigger
// listens to.
type sampleEvent struct {
	eventRequest
	Depth int `json:"depth"`
}

// dryRunResult says what a rule would do with an event, without doing it.
type dryRunResult struct {
	RuleID      string      `json:"rule_id,omitempty"`
	RuleVersion int         `json:"rule_version,omitempty"`
	Event       store.Event `json:"event"`
	// TriggerMatched: the trigger considers the event; Matched: and every condition holds.
	TriggerMatched bool `json:"trigger_matched"`
	Matched        bool `json:"matched"`
	// WouldRun: matched, enabled and within its limits (cooldown, rate limit, dedup_key, depth).
	WouldRun bool `json:"would_run"`
	// Reason says why it would not run.
	Reason     string                  `json:"reason,omitempty"`
	Conditions []rules.ConditionResult `json:"conditions"`
	DedupKey   string                  `json:"dedup_key,omitempty"`
	// Actions are rendered whether or not the rule matched, so that templates can be checked.
	Actions []dryRunAction `json:"actions"`
}

type dryRunAction struct {
	Index int    `json:"index"`
	Type  string `json:"type"`
	// Available is false when the module the action calls is not configured.
	Available bool                  `json:"available"`
	Rendered  *rules.RenderedAction `json:"rendered,omitempty"`
	Error     string                `json:"error,omitempty"`
}

// testRule: POST /api/v1/automation/rules/{id}/test with {"event": {...}} (or the event itself)
// → what the rule's current version would do: conditions with actual values, rendered actions.
// Nothing is stored or sent.
func (s *Server) testRule(c echo.Context) error {
	r, err := s.loadRule(c)
	if err != nil {
		return err
	}
	var body struct {
		Event json.RawMessage `json:"event"`
	}
	var raw json.RawMessage
	if err := decodeJSON(c, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return Unprocessable("", "must be a JSON object: {\"event\": {...}}")
	}
	eventJSON, prefix := body.Event, "event"
	if len(eventJSON) == 0 {
		eventJSON, prefix = raw, "" // the body is the event
	}
	compiled, err := rules.CompileStored(r.ID, r.Version, r.Definition, s.templates)
	if err != nil {
		return err
	}
	e, err := s.sampleEvent(eventJSON, prefix, compiled)
	if err != nil {
		return err
	}
	res, err := s.dryRun(c, compiled, e, true, "")
	if err != nil {
		return err
	}
	if !r.Enabled && res.WouldRun {
		res.WouldRun, res.Reason = false, "the rule is disabled"
	}
	return c.JSON(http.StatusOK, res)
}

// testInlineRule: POST /api/v1/automation/test with {"rule": {...}, "event": {...}}: a rule
// that is not stored, validated like a new one, tried on the event.
func (s *Server) testInlineRule(c echo.Context) error {
	var body struct {
		Rule  json.RawMessage `json:"rule"`
		Event json.RawMessage `json:"event"`
	}
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	var problems validation.Problems
	if len(body.Rule) == 0 {
		problems.Add("rule", "is required: the rule to try")
	}
	if len(body.Event) == 0 {
		problems.Add("event", "is required: the event to try the rule on")
	}
	if err := problems.Err(); err != nil {
		return err
	}
	req, problems, err := decodeRuleJSON(body.Rule, "rule")
	if err != nil && !errors.Is(err, errDecode) {
		return err
	}
	var compiled *rules.Compiled
	if err == nil {
		var more validation.Problems
		compiled, more = rules.Compile("dry-run", 0, req.Definition, rules.CompileOptions{Templates: s.templates})
		problems.Extend("rule", more)
	}
	if err := problems.Err(); err != nil {
		return err
	}
	e, err := s.sampleEvent(body.Event, "event", compiled)
	if err != nil {
		return err
	}
	res, err := s.dryRun(c, compiled, e, false, "rule")
	if err != nil {
		return err
	}
	res.RuleID = ""
	return c.JSON(http.StatusOK, res)
}

// sampleEvent reads the dry run's event, filling what the trigger implies.
func (s *Server) sampleEvent(raw json.RawMessage, prefix string, r *rules.Compiled) (store.Event, error) {
	var in sampleEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return store.Event{}, Unprocessable(prefix, "must be an event object: {\"type\": …, \"data\": {…}}")
	}
	t := r.Def.Trigger
	if in.Type == "" {
		switch t.Type {
		case rules.TriggerSchedule:
			in.Type = rules.ScheduleEventType
		default:
			if t.EventType != "" && !bytes.ContainsRune([]byte(t.EventType), '*') {
				in.Type = t.EventType
			}
		}
	}
	if in.Source == "" && t.Type == rules.TriggerWebhook {
		in.Source = rules.WebhookEventSource(t.Source)
	}
	if in.Subject == "" && t.Type == rules.TriggerSchedule {
		in.Subject = r.ID
	}
	var problems validation.Problems
	e := in.toEvent(prefix, true, &problems)
	if in.Depth < 0 {
		problems.Add(validation.Join(prefix, "depth"), "must not be negative")
	}
	if err := problems.Err(); err != nil {
		return e, err
	}
	if e.ID == "" {
		e.ID = newID()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now().UTC()
	}
	e.ReceivedAt, e.CorrelationID, e.Depth = time.Now().UTC(), e.ID, in.Depth
	return e, nil
}

// dryRun evaluates r on e like the engine does, reading (never writing) the rule's run history
// when withHistory is set. A template or expression that goes over a limit of the evaluation
// budget is a 422 naming its field (under prefix): the rule, not the event, is at fault.
func (s *Server) dryRun(c echo.Context, r *rules.Compiled, e store.Event, withHistory bool, prefix string) (dryRunResult, error) {
	ctx := c.Request().Context()
	res := dryRunResult{RuleID: r.ID, RuleVersion: r.Version, Event: e, Conditions: []rules.ConditionResult{},
		Actions: []dryRunAction{}}
	scope, err := rules.NewScope(e)
	if err != nil {
		res.Reason = err.Error()
		return res, nil
	}
	var over validation.Problems
	failed := func(err error) error {
		var fe *rules.FieldError
		switch {
		case !rules.IsPermanent(err):
			return err // no evaluation helper: 503
		case sandbox.IsBudgetError(err) && errors.As(err, &fe):
			over.Add(validation.Join(prefix, fe.Path), "%s", fe.Err)
		}
		return nil
	}
	for i, a := range r.Def.Actions {
		da := dryRunAction{Index: i, Type: a.Type, Available: s.opts.RuleTargets.Available(a.Type)}
		if rendered, err := r.RenderAction(ctx, s.templates, i, scope); err != nil {
			if err := failed(err); err != nil {
				return res, err
			}
			da.Error = err.Error()
		} else {
			da.Rendered = &rendered
		}
		res.Actions = append(res.Actions, da)
	}
	res.TriggerMatched = rules.MatchesTrigger(r.Def.Trigger, r.ID, e)
	ev := r.Evaluate(ctx, s.opts.Expressions, scope)
	switch {
	case ev.Err != nil && !sandbox.IsBudgetError(ev.Err):
		return res, ev.Err
	case ev.Err != nil:
		for _, cr := range failedExpressions(ev.Conditions) {
			over.Add(validation.Join(prefix, validation.Join(cr.Path, "expression")), "%s", cr.Error)
		}
	}
	if key, err := r.RenderDedupKey(ctx, s.templates, scope); err != nil {
		if err := failed(err); err != nil {
			return res, err
		}
		if !ev.Matched || !res.TriggerMatched {
			err = nil // as the engine does, the key matters only for a matching event
		}
		if err != nil && res.Reason == "" {
			res.Reason = err.Error()
		}
	} else {
		res.DedupKey = key
	}
	if err := over.Err(); err != nil {
		return res, err
	}
	res.Conditions = ev.Conditions
	res.Matched = res.TriggerMatched && ev.Matched
	switch {
	case !res.TriggerMatched:
		res.Reason = triggerMismatch(r.Def.Trigger, e)
	case !ev.Matched:
		res.Reason = ev.Reason
	case e.Depth > s.cfg.RulesMaxDepth:
		res.Reason = fmt.Sprintf("causation depth %d exceeds the limit of %d (loop prevention): not evaluated", e.Depth, s.cfg.RulesMaxDepth)
	}
	if res.Reason != "" {
		return res, nil
	}
	if withHistory {
		reason, err := r.OverLimit(ctx, s.store, res.DedupKey, time.Now().UTC())
		if err != nil {
			res.Reason = "limits could not be checked: " + err.Error()
			return res, nil
		}
		res.Reason = reason
	}
	for _, a := range res.Actions {
		switch {
		case res.Reason != "":
		case !a.Available:
			res.Reason = fmt.Sprintf("action %d would fail: %s actions are not available in this deployment", a.Index, a.Type)
		case a.Error != "":
			res.Reason = fmt.Sprintf("action %d would fail: %s", a.Index, a.Error)
		}
	}
	res.WouldRun = res.Reason == ""
	return res, nil
}

// failedExpressions are the expression conditions among results that carry an error.
func failedExpressions(results []rules.ConditionResult) []rules.ConditionResult {
	var out []rules.ConditionResult
	for _, r := range results {
		if r.Type == "expression" && r.Error != "" {
			out = append(out, r)
		}
		out = append(out, failedExpressions(r.Children)...)
	}
	return out
}

func triggerMismatch(t rules.Trigger, e store.Event) string {
	switch t.Type {
	case rules.TriggerSchedule:
		return fmt.Sprintf("the schedule trigger only runs on its own %s events", rules.ScheduleEventType)
	case rules.TriggerWebhook:
		if e.Source != rules.WebhookEventSource(t.Source) {
			return fmt.Sprintf("source %q is not the inbound webhook source %q", e.Source, rules.WebhookEventSource(t.Source))
		}
	}
	return fmt.Sprintf("event type %q does not match the trigger's %q", e.Type, t.EventType)
}
