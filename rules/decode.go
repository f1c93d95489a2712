package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/pyairtable/automation-domain/validation"
)

// RuleInput is a rule body as the API takes it (POST and PUT /api/v1/automation/rules): the
// seed's rule body (Definition) and whether the rule is enabled (default true on create,
// unchanged on replace).
type RuleInput struct {
	Definition
	Enabled *bool `json:"enabled"`
}

// ruleFields are the keys a rule body may have, by object; read-only fields of a rule as GET
// returns it are accepted (and ignored) so that a fetched rule can be sent back with PUT.
var ruleFields = map[string][]string{
	"":           {"name", "description", "trigger", "conditions", "actions", "priority", "enabled", "stop_processing", "cooldown", "rate_limit", "dedup_key", "dedup_window", "id", "version", "created_at", "updated_at", "schedule_id"},
	"trigger":    {"type", "event_type", "cron", "timezone", "source"},
	"rate_limit": {"max_runs", "window"},
	"condition":  {"type", "field", "operator", "value", "expression", "all", "any", "not"},
	"action":     {"type", "workflow_id", "input_data", "priority", "notification_type", "template", "to", "subject", "body", "message", "template_data", "event_type", "payload", "data", "continue_on_error"},
}

// checkRuleShape reports unknown fields (a typo must not be silently ignored) and malformed
// durations, each with its path.
func checkRuleShape(body map[string]any) validation.Problems {
	var p validation.Problems
	known := func(path, kind string, obj map[string]any) {
		allowed := map[string]bool{}
		for _, f := range ruleFields[kind] {
			allowed[f] = true
		}
		for k := range obj {
			if !allowed[k] {
				p.Add(validation.Join(path, k), "is not a field of a rule %s", map[string]string{
					"": "", "trigger": "trigger", "rate_limit": "rate limit", "condition": "condition", "action": "action",
				}[kind])
			}
		}
	}
	duration := func(path string, v any) {
		switch x := v.(type) {
		case nil:
		case json.Number:
			if f, err := x.Float64(); err != nil || f < 0 {
				p.Add(path, "must be a non-negative number of seconds or a duration such as \"5m\"")
			}
		case string:
			if _, err := ParseDuration(x); err != nil {
				p.Add(path, "%v", err)
			}
		default:
			p.Add(path, "must be a number of seconds or a duration such as \"5m\"")
		}
	}
	var condition func(path string, v any)
	condition = func(path string, v any) {
		c, ok := v.(map[string]any)
		if !ok {
			if v != nil {
				p.Add(path, "must be an object")
			}
			return
		}
		known(path, "condition", c)
		for _, group := range []string{"all", "any"} {
			if list, ok := c[group].([]any); ok {
				for i, child := range list {
					condition(validation.Index(validation.Join(path, group), i), child)
				}
			}
		}
		if not, ok := c["not"]; ok {
			condition(validation.Join(path, "not"), not)
		}
	}
	known("", "", body)
	if t, ok := body["trigger"].(map[string]any); ok {
		known("trigger", "trigger", t)
	} else if body["trigger"] != nil {
		p.Add("trigger", "must be an object")
	}
	if rl, ok := body["rate_limit"].(map[string]any); ok {
		known("rate_limit", "rate_limit", rl)
		duration("rate_limit.window", rl["window"])
	}
	duration("cooldown", body["cooldown"])
	duration("dedup_window", body["dedup_window"])
	if list, ok := body["conditions"].([]any); ok {
		for i, c := range list {
			condition(validation.Index("conditions", i), c)
		}
	}
	if list, ok := body["actions"].([]any); ok {
		for i, a := range list {
			if obj, ok := a.(map[string]any); ok {
				known(validation.Index("actions", i), "action", obj)
			} else {
				p.Add(validation.Index("actions", i), "must be an object")
			}
		}
	}
	return p
}

// ErrRuleDecode says that a rule body did not decode: the problems DecodeRule returned with it
// are all there is to report.
var ErrRuleDecode = errors.New("rule body does not decode")

// DecodeRule turns a rule body into a RuleInput, listing every unknown field, malformed
// duration and value of the wrong type under prefix. A body that is not a JSON object is
// returned as validation.Problems; one that does not decode returns ErrRuleDecode with its
// problems. It does not compile the rule (see Compile).
func DecodeRule(raw json.RawMessage, prefix string) (RuleInput, validation.Problems, error) {
	var in RuleInput
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil || body == nil {
		var p validation.Problems
		p.Add(prefix, "must be a JSON object (a rule)")
		return in, nil, p
	}
	var problems validation.Problems
	problems.Extend(prefix, checkRuleShape(body))
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typ):
			// The rule's fields are those of the embedded Definition.
			field := strings.TrimPrefix(typ.Field, "Definition.")
			problems.Add(validation.Join(prefix, field), "must be %s, got %s", validation.JSONTypeName(typ.Type.Kind().String()), typ.Value)
		case len(problems) == 0: // a malformed duration is reported by checkRuleShape already
			problems.Add(prefix, "%v", err)
		}
		return in, problems, ErrRuleDecode
	}
	return in, problems, nil
}
