// Package rules is the automation domain: the JSON shape of a rule (trigger, conditions,
// prioritised actions, limits), its validation, its compiled form (field checks, expr-lang
// expressions, regular expressions — compiled once per rule version), trigger matching, condition
// evaluation with a trace of every actual value, and action rendering through the shared template
// engine. It also holds the Temporal-facing glue that does not belong in workflow code: the
// events.Subscriber that signals events into the partitioned evaluator workflows, and the
// Temporal Schedules behind schedule triggers.
//
// The engine itself is workflows.RuleEvaluator (signal-driven, one per event-type partition) and
// the activities in activities.Rules.
package rules

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Trigger types.
const (
	TriggerEvent    = "event"
	TriggerSchedule = "schedule"
	TriggerWebhook  = "webhook"
)

// Action types.
const (
	ActionWorkflow     = "workflow"
	ActionNotification = "notification"
	ActionWebhook      = "webhook"
	ActionEmitEvent    = "emit_event"
)

// Definition is one version of a rule: the seed's body (name, trigger, conditions, actions) plus
// priority, stop_processing and the loop/duplicate guards. It is stored as JSON per version;
// whether the rule is enabled is state of the rule, not of a version.
type Definition struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	Trigger     Trigger     `json:"trigger"`
	Conditions  []Condition `json:"conditions"`
	Actions     []Action    `json:"actions"`
	// Priority orders the rules one event matches: higher first; ties run oldest rule first.
	Priority int `json:"priority"`
	// StopProcessing: when this rule matches an event, rules of lower priority are not run for it.
	StopProcessing bool `json:"stop_processing"`
	// Cooldown is the least time between two runs of the rule.
	Cooldown *Duration `json:"cooldown,omitempty"`
	// RateLimit caps the runs in a sliding window.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// DedupKey is a template rendered against the event; a run whose key equals that of a run in
	// the last DedupWindow (default 24 h) is skipped.
	DedupKey    string    `json:"dedup_key,omitempty"`
	DedupWindow *Duration `json:"dedup_window,omitempty"`
}

// DefaultDedupWindow applies when a rule has a dedup_key and no dedup_window.
const DefaultDedupWindow = 24 * time.Hour

// Trigger says which events a rule considers.
type Trigger struct {
	// Type is event, schedule or webhook.
	Type string `json:"type"`
	// EventType is a pattern for event triggers (required) and webhook triggers (optional):
	// an exact type, or `*` wildcards matching any run of characters ("user.*", "*.failed", "*").
	EventType string `json:"event_type,omitempty"`
	// Cron and Timezone define schedule triggers: five-field cron, @hourly/@daily/…, or
	// "@every 10m"; Timezone is an IANA name (default UTC).
	Cron     string `json:"cron,omitempty"`
	Timezone string `json:"timezone,omitempty"`
	// Source names the inbound webhook source of webhook triggers (see WebhookEventSource).
	Source string `json:"source,omitempty"`
}

// RateLimit allows at most MaxRuns runs of a rule in any Window.
type RateLimit struct {
	MaxRuns int      `json:"max_runs"`
	Window  Duration `json:"window"`
}

// Condition is one test of an event. Exactly one form is used: a field check (Type
// "field_check" with Field, Operator, Value), an expression (Type "expression"), or a group —
// All (every child holds), Any (one holds) or Not (the child does not hold).
type Condition struct {
	Type       string          `json:"type,omitempty"`
	Field      string          `json:"field,omitempty"`
	Operator   string          `json:"operator,omitempty"`
	Value      json.RawMessage `json:"value,omitempty"`
	Expression string          `json:"expression,omitempty"`
	All        []Condition     `json:"all,omitempty"`
	Any        []Condition     `json:"any,omitempty"`
	Not        *Condition      `json:"not,omitempty"`
}

// Action is one thing a rule does. Every string in it may be a template rendered against the
// event ({{ user.email }}); fields depend on Type.
type Action struct {
	Type string `json:"type"`

	// workflow: execute the workflow definition WorkflowID with InputData (default: the event's
	// data) at Priority (low, normal, high, critical).
	WorkflowID string `json:"workflow_id,omitempty"`
	InputData  any    `json:"input_data,omitempty"`
	Priority   string `json:"priority,omitempty"`

	// notification: NotificationType email (default) or sms to To (one address or a list),
	// either with the notification module's Template (template_data defaults to the event's
	// data) or with Subject/Body (email) or Message (sms).
	NotificationType string `json:"notification_type,omitempty"`
	Template         string `json:"template,omitempty"`
	To               any    `json:"to,omitempty"`
	Subject          string `json:"subject,omitempty"`
	Body             string `json:"body,omitempty"`
	Message          string `json:"message,omitempty"`
	TemplateData     any    `json:"template_data,omitempty"`

	// webhook: deliver EventType with Payload (default: the event's data) to the webhook
	// endpoints subscribed to it. emit_event: publish EventType with Data (default: the event's
	// data) on the event bus, caused by the triggering event.
	EventType string `json:"event_type,omitempty"`
	Payload   any    `json:"payload,omitempty"`
	Data      any    `json:"data,omitempty"`

	// ContinueOnError runs the rule's next actions even when this one fails.
	ContinueOnError bool `json:"continue_on_error,omitempty"`
}

// Duration is a length of time written as seconds (a number) or a string: "90s", "5m", "2h",
// "1d", "1h30m".
type Duration time.Duration

// D returns d as a time.Duration (zero for nil).
func (d *Duration) D() time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// ParseDuration reads the string form of Duration.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q is not a duration (e.g. 30s, 5m, 2h, 1d)", s)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 30s, 5m, 2h, 1d)", s)
	}
	return d, nil
}

// UnmarshalJSON accepts seconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var n float64
	if err := json.Unmarshal(b, &n); err == nil {
		*d = Duration(time.Duration(n * float64(time.Second)))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a number of seconds or a string such as \"5m\"")
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the shortest exact form: "1d", "2h", "5m", "90s", or Go's form.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

func (d Duration) String() string {
	v := time.Duration(d)
	switch {
	case v == 0:
		return "0s"
	case v%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", v/(24*time.Hour))
	case v%time.Hour == 0:
		return fmt.Sprintf("%dh", v/time.Hour)
	case v%time.Minute == 0:
		return fmt.Sprintf("%dm", v/time.Minute)
	case v%time.Second == 0:
		return fmt.Sprintf("%ds", v/time.Second)
	}
	return v.String()
}
