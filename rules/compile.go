package rules

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // schedule triggers name IANA time zones; do not depend on the host's database

	"github.com/robfig/cron/v3"

	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
)

// Limits of one rule.
const (
	MaxConditions  = 100
	MaxActions     = 20
	MaxNameLength  = 200
	maxDescription = 4000
	maxLimitWindow = 365 * 24 * time.Hour
)

// Priorities a workflow action may ask for.
var workflowPriorities = []string{"low", "normal", "high", "critical"}

var webhookSourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// Compiled is a rule version ready to evaluate: its conditions compiled (expressions, regular
// expressions) once. It is immutable and safe for concurrent use.
type Compiled struct {
	ID         string
	Version    int
	Def        Definition
	conditions []*condition
}

// CompileOptions say what Compile checks besides the definition itself.
type CompileOptions struct {
	// Templates checks the syntax of every template in the rule.
	Templates *templating.Engine
	// Targets, when CheckTargets is set, makes an action whose module is not wired a problem
	// ("not available"). Stored versions are compiled without it: a rule accepted once is not
	// rejected at evaluation time; its action fails instead.
	Targets      Targets
	CheckTargets bool
}

// limits are the evaluation limits the rule's expressions compile within: the template
// engine's (one budget for every engine).
func (o CompileOptions) limits() sandbox.Limits {
	if o.Templates != nil {
		return o.Templates.Limits()
	}
	return sandbox.DefaultLimits()
}

// Compile validates def and compiles it. Problems name each field by its JSON path
// ("conditions[1].operator", "actions[0].to").
func Compile(id string, version int, def Definition, o CompileOptions) (*Compiled, validation.Problems) {
	var problems validation.Problems
	if strings.TrimSpace(def.Name) == "" {
		problems.Add("name", "is required")
	} else if len(def.Name) > MaxNameLength {
		problems.Add("name", "must be at most %d characters", MaxNameLength)
	}
	if len(def.Description) > maxDescription {
		problems.Add("description", "must be at most %d characters", maxDescription)
	}
	checkTrigger(def.Trigger, &problems)
	if len(def.Conditions) > MaxConditions {
		problems.Add("conditions", "must have at most %d conditions", MaxConditions)
	}
	conds := compileConditions("conditions", def.Conditions, 1, o.limits(), &problems)
	switch {
	case len(def.Actions) == 0:
		problems.Add("actions", "must have at least one action")
	case len(def.Actions) > MaxActions:
		problems.Add("actions", "must have at most %d actions", MaxActions)
	}
	for i, a := range def.Actions {
		checkAction(validation.Index("actions", i), a, o, &problems)
	}
	if def.Priority < -1_000_000 || def.Priority > 1_000_000 {
		problems.Add("priority", "must be between -1000000 and 1000000")
	}
	if def.Cooldown != nil && (def.Cooldown.D() < 0 || def.Cooldown.D() > maxLimitWindow) {
		problems.Add("cooldown", "must be between 0s and 365d")
	}
	if rl := def.RateLimit; rl != nil {
		if rl.MaxRuns < 1 {
			problems.Add("rate_limit.max_runs", "must be at least 1")
		}
		if w := time.Duration(rl.Window); w <= 0 || w > maxLimitWindow {
			problems.Add("rate_limit.window", "must be longer than 0s and at most 365d")
		}
	}
	if def.DedupKey != "" {
		checkTemplate("dedup_key", def.DedupKey, o.Templates, &problems)
	}
	if def.DedupWindow != nil {
		if def.DedupKey == "" {
			problems.Add("dedup_window", "needs a dedup_key")
		}
		if w := def.DedupWindow.D(); w <= 0 || w > maxLimitWindow {
			problems.Add("dedup_window", "must be longer than 0s and at most 365d")
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return &Compiled{ID: id, Version: version, Def: def, conditions: conds}, nil
}

func checkTrigger(t Trigger, problems *validation.Problems) {
	leftOut := func(field, value string) {
		if value != "" {
			problems.Add("trigger."+field, "must be left out for %s triggers", t.Type)
		}
	}
	switch t.Type {
	case TriggerEvent:
		checkEventTypePattern("trigger.event_type", t.EventType, true, problems)
		leftOut("cron", t.Cron)
		leftOut("timezone", t.Timezone)
		leftOut("source", t.Source)
	case TriggerSchedule:
		if strings.TrimSpace(t.Cron) == "" {
			problems.Add("trigger.cron", "is required for schedule triggers")
		} else if _, err := cron.ParseStandard(t.Cron); err != nil || strings.HasPrefix(strings.TrimSpace(t.Cron), "TZ=") ||
			strings.HasPrefix(strings.TrimSpace(t.Cron), "CRON_TZ=") {
			problems.Add("trigger.cron", "must be a five-field cron expression (\"0 9 * * 1-5\"), @hourly, @daily, @weekly, @monthly, @yearly or \"@every 10m\"; set the zone in timezone")
		}
		if t.Timezone != "" {
			if _, err := time.LoadLocation(t.Timezone); err != nil {
				problems.Add("trigger.timezone", "is not an IANA time zone name (e.g. Europe/Paris), got %q", t.Timezone)
			}
		}
		leftOut("event_type", t.EventType)
		leftOut("source", t.Source)
	case TriggerWebhook:
		if !webhookSourceName.MatchString(t.Source) {
			problems.Add("trigger.source", "is required for webhook triggers: the inbound webhook source's name (letters, digits, . _ -)")
		}
		if t.EventType != "" {
			checkEventTypePattern("trigger.event_type", t.EventType, true, problems)
		}
		leftOut("cron", t.Cron)
		leftOut("timezone", t.Timezone)
	case "":
		problems.Add("trigger.type", "is required: event, schedule or webhook")
	default:
		problems.Add("trigger.type", "must be event, schedule or webhook, got %q", t.Type)
	}
}

func checkEventTypePattern(field, pattern string, wildcards bool, problems *validation.Problems) {
	switch {
	case pattern == "":
		problems.Add(field, "is required")
	case !validation.IsEventTypePattern(pattern):
		problems.Add(field, "must be an event type such as user.created (letters, digits, . _ - : /), at most 200 characters")
	case !wildcards && strings.Contains(pattern, "*"):
		problems.Add(field, "must not contain wildcards")
	}
}

func checkAction(path string, a Action, o CompileOptions, problems *validation.Problems) {
	at := func(field string) string { return validation.Join(path, field) }
	// fields lists the fields set on a, so that a field of another action type is refused
	// instead of ignored.
	fields := map[string]bool{
		"workflow_id": a.WorkflowID != "", "input_data": a.InputData != nil, "priority": a.Priority != "",
		"notification_type": a.NotificationType != "", "template": a.Template != "", "to": a.To != nil,
		"subject": a.Subject != "", "body": a.Body != "", "message": a.Message != "",
		"template_data": a.TemplateData != nil, "event_type": a.EventType != "", "payload": a.Payload != nil,
		"data": a.Data != nil,
	}
	allowed := map[string][]string{
		ActionWorkflow:     {"workflow_id", "input_data", "priority"},
		ActionNotification: {"notification_type", "template", "to", "subject", "body", "message", "template_data"},
		ActionWebhook:      {"event_type", "payload"},
		ActionEmitEvent:    {"event_type", "data"},
	}
	own, known := allowed[a.Type]
	if !known {
		if a.Type == "" {
			problems.Add(at("type"), "is required: workflow, notification, webhook or emit_event")
		} else {
			problems.Add(at("type"), "must be workflow, notification, webhook or emit_event, got %q", a.Type)
		}
		return
	}
	if o.CheckTargets && !o.Targets.Available(a.Type) {
		problems.Add(at("type"), "%s actions are not available: the %s module is not configured in this deployment",
			a.Type, moduleOf(a.Type))
	}
	var extra []string
	for f, set := range fields {
		if set && !slices.Contains(own, f) {
			extra = append(extra, f)
		}
	}
	sort.Strings(extra)
	for _, f := range extra {
		problems.Add(at(f), "is not a field of %s actions", a.Type)
	}
	tpl := func(field string, v any) {
		if v != nil {
			checkTemplates(at(field), v, o.Templates, problems)
		}
	}
	switch a.Type {
	case ActionWorkflow:
		if strings.TrimSpace(a.WorkflowID) == "" {
			problems.Add(at("workflow_id"), "is required: the id of the workflow definition to execute")
		}
		tpl("workflow_id", a.WorkflowID)
		if a.InputData != nil {
			if _, ok := a.InputData.(map[string]any); !ok && !isTemplateString(a.InputData) {
				problems.Add(at("input_data"), "must be an object")
			}
		}
		tpl("input_data", a.InputData)
		if a.Priority != "" && !slices.Contains(workflowPriorities, a.Priority) {
			problems.Add(at("priority"), "must be one of %s, got %q", strings.Join(workflowPriorities, ", "), a.Priority)
		}
	case ActionNotification:
		kind := a.NotificationType
		if kind == "" {
			kind = "email"
		}
		switch kind {
		case "email":
			if a.Template == "" && (a.Subject == "" || a.Body == "") {
				problems.Add(path, "an email action needs a template, or a subject and a body")
			}
			if a.Message != "" {
				problems.Add(at("message"), "is for sms; email actions use subject and body")
			}
		case "sms":
			if a.Template == "" && a.Message == "" {
				problems.Add(path, "an sms action needs a template or a message")
			}
			if a.Subject != "" || a.Body != "" {
				problems.Add(path, "subject and body are for email; sms actions use message")
			}
		default:
			problems.Add(at("notification_type"), "must be email or sms, got %q", a.NotificationType)
		}
		switch to := a.To.(type) {
		case nil:
			problems.Add(at("to"), "is required: a recipient, a list of recipients, or a template such as {{ user.email }}")
		case string:
			if strings.TrimSpace(to) == "" {
				problems.Add(at("to"), "must not be empty")
			}
		case []any:
			if len(to) == 0 {
				problems.Add(at("to"), "must list at least one recipient")
			}
			for i, r := range to {
				if s, ok := r.(string); !ok || strings.TrimSpace(s) == "" {
					problems.Add(validation.Index(at("to"), i), "must be a non-empty string")
				}
			}
		default:
			problems.Add(at("to"), "must be a string or a list of strings")
		}
		tpl("to", a.To)
		tpl("template", a.Template)
		tpl("subject", a.Subject)
		tpl("body", a.Body)
		tpl("message", a.Message)
		if a.TemplateData != nil {
			if _, ok := a.TemplateData.(map[string]any); !ok && !isTemplateString(a.TemplateData) {
				problems.Add(at("template_data"), "must be an object")
			}
		}
		tpl("template_data", a.TemplateData)
	case ActionWebhook, ActionEmitEvent:
		if templating.IsTemplate(a.EventType) {
			tpl("event_type", a.EventType)
		} else {
			checkEventTypePattern(at("event_type"), a.EventType, false, problems)
		}
		body, field := a.Payload, "payload"
		if a.Type == ActionEmitEvent {
			body, field = a.Data, "data"
		}
		if body != nil {
			if _, ok := body.(map[string]any); !ok && !isTemplateString(body) {
				problems.Add(at(field), "must be an object")
			}
		}
		tpl(field, body)
	}
}

func moduleOf(actionType string) string {
	switch actionType {
	case ActionWorkflow:
		return "workflow engine"
	case ActionNotification:
		return "notification"
	}
	return "webhook"
}

func isTemplateString(v any) bool {
	s, ok := v.(string)
	return ok && templating.IsTemplate(s)
}

func checkTemplate(field, src string, eng *templating.Engine, problems *validation.Problems) {
	if eng == nil || !templating.IsTemplate(src) {
		return
	}
	if err := eng.Compile(src, false); err != nil {
		problems.Add(field, "is not a valid template: %s", err)
	}
}

func checkTemplates(field string, v any, eng *templating.Engine, problems *validation.Problems) {
	if eng == nil {
		return
	}
	bad := eng.CompileValue(v)
	paths := make([]string, 0, len(bad))
	for p := range bad {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		problems.Add(validation.Join(field, p), "is not a valid template: %s", bad[p])
	}
}

// Evaluation is the outcome of a rule's conditions for one event.
type Evaluation struct {
	Matched    bool              `json:"matched"`
	Conditions []ConditionResult `json:"conditions"`
	// Reason says why the rule did not match: the first failing condition with its actual value.
	Reason string `json:"reason,omitempty"`
	// Err is set when the expression conditions could not be evaluated: a budget error (the
	// evaluation went over a limit: permanent, its message is on each condition it stopped), or
	// another failure (no evaluation helper could start: transient).
	Err error `json:"-"`
}

// Evaluate tests every condition (all of them, so that the trace is complete; the top-level
// list must hold entirely). The expression conditions run under one budget (see Expressions).
func (c *Compiled) Evaluate(ctx context.Context, x *Expressions, scope Scope) Evaluation {
	done, err := x.run(ctx, expressions(c.conditions), scope)
	ev := Evaluation{Matched: true, Conditions: make([]ConditionResult, 0, len(c.conditions)), Err: err}
	for _, cond := range c.conditions {
		r := cond.eval(scope, done)
		ev.Conditions = append(ev.Conditions, r)
		if !r.Matched {
			if ev.Matched {
				ev.Reason = "condition " + r.Describe()
			}
			ev.Matched = false
		}
	}
	return ev
}

// String names the rule version in logs.
func (c *Compiled) String() string {
	return fmt.Sprintf("rule %s v%d (%s)", c.ID, c.Version, c.Def.Name)
}
