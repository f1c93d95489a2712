package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// SampleEvent is the event of a dry run: an event body (EventInput) plus the causation depth,
// to try the loop limit. Type, source and subject default to what the rule's trigger listens to.
type SampleEvent struct {
	EventInput
	Depth int `json:"depth"`
}

// DryRun says what a rule would do with an event, without doing it.
type DryRun struct {
	RuleID      string      `json:"rule_id,omitempty"`
	RuleVersion int         `json:"rule_version,omitempty"`
	Event       store.Event `json:"event"`
	// TriggerMatched: the trigger considers the event; Matched: and every condition holds.
	TriggerMatched bool `json:"trigger_matched"`
	Matched        bool `json:"matched"`
	// WouldRun: matched, enabled and within its limits (cooldown, rate limit, dedup_key, depth).
	WouldRun bool `json:"would_run"`
	// Reason says why it would not run.
	Reason     string            `json:"reason,omitempty"`
	Conditions []ConditionResult `json:"conditions"`
	DedupKey   string            `json:"dedup_key,omitempty"`
	// Actions are rendered whether or not the rule matched, so that templates can be checked.
	Actions []DryRunAction `json:"actions"`
}

// DryRunAction is one action of a dry run, rendered.
type DryRunAction struct {
	Index int    `json:"index"`
	Type  string `json:"type"`
	// Available is false when the module the action calls is not configured.
	Available bool            `json:"available"`
	Rendered  *RenderedAction `json:"rendered,omitempty"`
	Error     string          `json:"error,omitempty"`
}

func unprocessable(field, format string, args ...any) error {
	var p validation.Problems
	p.Add(field, format, args...)
	return p
}

// TestRule tries stored rule id's current version on the event of body ({"event": {...}} or
// the event itself): its conditions with actual values, its rendered actions, and whether it
// would run given its run history. Nothing is stored or sent.
func (s *Service) TestRule(ctx context.Context, id string, body json.RawMessage) (DryRun, error) {
	r, err := s.store.GetRule(ctx, id)
	if err != nil {
		return DryRun{}, err
	}
	var wrapped struct {
		Event json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(body, &wrapped); err != nil {
		return DryRun{}, unprocessable("", "must be a JSON object: {\"event\": {...}}")
	}
	eventJSON, prefix := wrapped.Event, "event"
	if len(eventJSON) == 0 {
		eventJSON, prefix = body, "" // the body is the event
	}
	compiled, err := CompileStored(r.ID, r.Version, r.Definition, s.templates)
	if err != nil {
		return DryRun{}, err
	}
	e, err := s.sampleEvent(eventJSON, prefix, compiled)
	if err != nil {
		return DryRun{}, err
	}
	res, err := s.dryRun(ctx, compiled, e, true, "")
	if err != nil {
		return DryRun{}, err
	}
	if !r.Enabled && res.WouldRun {
		res.WouldRun, res.Reason = false, "the rule is disabled"
	}
	return res, nil
}

// TestInline tries a rule that is not stored (validated like a new one, problems under "rule")
// on an event (problems under "event").
func (s *Service) TestInline(ctx context.Context, rule, event json.RawMessage) (DryRun, error) {
	var problems validation.Problems
	if len(rule) == 0 {
		problems.Add("rule", "is required: the rule to try")
	}
	if len(event) == 0 {
		problems.Add("event", "is required: the event to try the rule on")
	}
	if err := problems.Err(); err != nil {
		return DryRun{}, err
	}
	in, problems, err := DecodeRule(rule, "rule")
	if err != nil && !errors.Is(err, ErrRuleDecode) {
		return DryRun{}, err
	}
	var compiled *Compiled
	if err == nil {
		var more validation.Problems
		compiled, more = Compile("dry-run", 0, in.Definition, CompileOptions{Templates: s.templates})
		problems.Extend("rule", more)
	}
	if err := problems.Err(); err != nil {
		return DryRun{}, err
	}
	e, err := s.sampleEvent(event, "event", compiled)
	if err != nil {
		return DryRun{}, err
	}
	res, err := s.dryRun(ctx, compiled, e, false, "rule")
	if err != nil {
		return DryRun{}, err
	}
	res.RuleID = ""
	return res, nil
}

// sampleEvent reads the dry run's event, filling what the trigger implies.
func (s *Service) sampleEvent(raw json.RawMessage, prefix string, r *Compiled) (store.Event, error) {
	var in SampleEvent
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return store.Event{}, unprocessable(prefix, "must be an event object: {\"type\": …, \"data\": {…}}")
	}
	t := r.Def.Trigger
	if in.Type == "" {
		switch t.Type {
		case TriggerSchedule:
			in.Type = ScheduleEventType
		default:
			if t.EventType != "" && !bytes.ContainsRune([]byte(t.EventType), '*') {
				in.Type = t.EventType
			}
		}
	}
	if in.Source == "" && t.Type == TriggerWebhook {
		in.Source = WebhookEventSource(t.Source)
	}
	if in.Subject == "" && t.Type == TriggerSchedule {
		in.Subject = r.ID
	}
	var problems validation.Problems
	e := in.Event(prefix, true, &problems)
	if in.Depth < 0 {
		problems.Add(validation.Join(prefix, "depth"), "must not be negative")
	}
	if err := problems.Err(); err != nil {
		return e, err
	}
	if e.ID == "" {
		e.ID = store.NewID()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = s.now()
	}
	e.ReceivedAt, e.CorrelationID, e.Depth = s.now(), e.ID, in.Depth
	return e, nil
}

// dryRun evaluates r on e like the engine does, reading (never writing) the rule's run history
// when withHistory is set. A template or expression that goes over a limit of the evaluation
// budget is a problem naming its field (under prefix): the rule, not the event, is at fault.
func (s *Service) dryRun(ctx context.Context, r *Compiled, e store.Event, withHistory bool, prefix string) (DryRun, error) {
	res := DryRun{RuleID: r.ID, RuleVersion: r.Version, Event: e, Conditions: []ConditionResult{},
		Actions: []DryRunAction{}}
	scope, err := NewScope(e)
	if err != nil {
		res.Reason = err.Error()
		return res, nil
	}
	var over validation.Problems
	failed := func(err error) error {
		var fe *FieldError
		switch {
		case !IsPermanent(err):
			return err // no evaluation helper: unavailable
		case sandbox.IsBudgetError(err) && errors.As(err, &fe):
			over.Add(validation.Join(prefix, fe.Path), "%s", fe.Err)
		}
		return nil
	}
	for i, a := range r.Def.Actions {
		da := DryRunAction{Index: i, Type: a.Type, Available: s.targets.Available(a.Type)}
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
	res.TriggerMatched = MatchesTrigger(r.Def.Trigger, r.ID, e)
	ev := r.Evaluate(ctx, s.expressions, scope)
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
	case e.Depth > s.maxDepth:
		res.Reason = fmt.Sprintf("causation depth %d exceeds the limit of %d (loop prevention): not evaluated", e.Depth, s.maxDepth)
	}
	if res.Reason != "" {
		return res, nil
	}
	if withHistory {
		reason, err := r.OverLimit(ctx, s.store, res.DedupKey, s.now())
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
func failedExpressions(results []ConditionResult) []ConditionResult {
	var out []ConditionResult
	for _, r := range results {
		if r.Type == "expression" && r.Error != "" {
			out = append(out, r)
		}
		out = append(out, failedExpressions(r.Children)...)
	}
	return out
}

func triggerMismatch(t Trigger, e store.Event) string {
	switch t.Type {
	case TriggerSchedule:
		return fmt.Sprintf("the schedule trigger only runs on its own %s events", ScheduleEventType)
	case TriggerWebhook:
		if e.Source != WebhookEventSource(t.Source) {
			return fmt.Sprintf("source %q is not the inbound webhook source %q", e.Source, WebhookEventSource(t.Source))
		}
	}
	return fmt.Sprintf("event type %q does not match the trigger's %q", e.Type, t.EventType)
}
