// Package definition is the workflow engine's definition model: the JSON a user posts to
// /api/v1/workflows (name, trigger, steps with typed configs, dependencies, conditions, retries),
// its validation, and the dependency graph the interpreter walks. It holds no I/O, so the
// interpreter workflow (package workflows) can use it deterministically.
package definition

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// Trigger types.
const (
	TriggerManual   = "manual"
	TriggerEvent    = "event"
	TriggerSchedule = "schedule"
	TriggerWebhook  = "webhook"
)

// TriggerTypes lists the trigger types in the order they are documented.
var TriggerTypes = []string{TriggerManual, TriggerEvent, TriggerSchedule, TriggerWebhook}

// Step types.
const (
	// Activity steps: run as one Temporal activity each, with the step's retry policy.
	TypeDataTransform = "data_transform"
	TypeHTTPRequest   = "http_request"
	TypeNotification  = "notification"
	TypeWebhook       = "webhook"
	// Workflow-side steps: durable timers, signals, control flow and child workflows.
	TypeDelay         = "delay"
	TypeWaitForSignal = "wait_for_signal"
	TypeBranch        = "branch"
	TypeParallel      = "parallel"
	TypeSubWorkflow   = "sub_workflow"
)

// StepTypes lists every step type.
var StepTypes = []string{
	TypeDataTransform, TypeHTTPRequest, TypeNotification, TypeWebhook,
	TypeDelay, TypeWaitForSignal, TypeBranch, TypeParallel, TypeSubWorkflow,
}

// IsActivityStep tells the step types that run as one activity (with retries) from those the
// interpreter carries out itself.
func IsActivityStep(typ string) bool {
	switch typ {
	case TypeDataTransform, TypeHTTPRequest, TypeNotification, TypeWebhook:
		return true
	}
	return false
}

// Priorities, highest first.
const (
	PriorityCritical = "critical"
	PriorityHigh     = "high"
	PriorityNormal   = "normal"
	PriorityLow      = "low"
)

// Priorities lists the priorities, highest first.
var Priorities = []string{PriorityCritical, PriorityHigh, PriorityNormal, PriorityLow}

// PriorityKey maps a priority onto Temporal's task priority key (1 is served first; Temporal's
// default is 3, so "normal" is what an unprioritised task gets). It is the scale of workflow
// executions; notifications have a scale of three levels of their own (notify.PriorityKey).
func PriorityKey(p string) int {
	switch p {
	case PriorityCritical:
		return 1
	case PriorityHigh:
		return 2
	case PriorityLow:
		return 5
	}
	return 3
}

// On-error policies.
const (
	OnErrorFail     = "fail"
	OnErrorContinue = "continue"
)

// Definition is a workflow definition: the seed's body plus schedule and execution limits.
type Definition struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	TriggerType string `json:"trigger_type"`
	// Enabled defaults to true; a disabled definition cannot be executed (409).
	Enabled *bool  `json:"enabled,omitempty"`
	Steps   []Step `json:"steps"`
	// Schedule is required for trigger_type schedule and refused otherwise.
	Schedule *Schedule `json:"schedule,omitempty"`
	// Timeout bounds a whole execution (a duration such as "2h" or "7d"; default 30d, at most 365d).
	Timeout string `json:"timeout,omitempty"`
}

// IsEnabled reports Enabled with its default.
func (d *Definition) IsEnabled() bool { return d.Enabled == nil || *d.Enabled }

// Schedule runs the definition on a calendar (cron) or every interval, as a Temporal Schedule.
type Schedule struct {
	// Cron is a 5-field cron expression ("*/5 * * * *"); or use Interval.
	Cron string `json:"cron,omitempty"`
	// Interval is a Go duration ("30s", "1h") between runs; or use Cron.
	Interval string `json:"interval,omitempty"`
	// Timezone is an IANA name for Cron (default UTC).
	Timezone string `json:"timezone,omitempty"`
	// InputData is the input every scheduled run gets.
	InputData map[string]any `json:"input_data,omitempty"`
	// Priority of the scheduled runs (default normal).
	Priority string `json:"priority,omitempty"`
	// Overlap says what happens when a run is due while the previous one is still running:
	// skip (default), buffer_one, buffer_all, cancel_other, terminate_other, allow_all.
	Overlap string `json:"overlap,omitempty"`
}

// Step is one step of a definition.
type Step struct {
	// ID names the step in templates ({{ steps.<id>.output }}) and in the execution record.
	ID   string `json:"id"`
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
	// Config is the type's configuration (see the *Config types); strings in it may be
	// templates.
	Config json.RawMessage `json:"config,omitempty"`
	// DependsOn lists sibling step ids this step waits for. Absent: the step after the
	// previous one in the list (sequential); present (even []): exactly these, so independent
	// steps run in parallel.
	DependsOn []string `json:"depends_on"`
	// Condition is an expression (expr-lang); false skips the step, recorded as skipped.
	Condition string `json:"condition,omitempty"`
	// Retry is the step's retry policy (activity steps and sub_workflow).
	Retry *Retry `json:"retry,omitempty"`
	// Timeout bounds one attempt (Go duration).
	Timeout string `json:"timeout,omitempty"`
	// OnError is fail (default: the execution fails) or continue (the step is recorded as failed
	// and its dependents run).
	OnError string `json:"on_error,omitempty"`
}

// MarshalJSON writes the step with depends_on left out when it is absent (nil), and kept when it
// is present, even empty: absent means "after the previous step", [] means "no dependencies",
// and null is neither's spelling in what the API sends.
func (s Step) MarshalJSON() ([]byte, error) {
	type plain Step // without the method
	if s.DependsOn != nil {
		return json.Marshal(plain(s))
	}
	return json.Marshal(struct {
		plain
		DependsOn []string `json:"depends_on,omitempty"`
	}{plain: plain(s)})
}

// Retry is a step's retry policy; it becomes a Temporal RetryPolicy.
type Retry struct {
	MaxAttempts        int     `json:"max_attempts,omitempty"`
	InitialInterval    string  `json:"initial_interval,omitempty"`
	BackoffCoefficient float64 `json:"backoff_coefficient,omitempty"`
	MaxInterval        string  `json:"max_interval,omitempty"`
}

// DataTransformConfig reshapes data with a jq program (gojq) or an expression mapping.
type DataTransformConfig struct {
	// JQ is a jq program run over Data (default: the whole scope {input, steps, execution}).
	JQ string `json:"jq,omitempty"`
	// Mapping maps each output field to an expression (expr-lang) over the scope.
	Mapping map[string]string `json:"mapping,omitempty"`
	// Data is the jq program's input (templates allowed); default: the scope.
	Data any `json:"data,omitempty"`
	// Assert lists checks run first; a false one fails the step (not retried) with its message.
	Assert []Assertion `json:"assert,omitempty"`
}

// Assertion is an expression that must hold.
type Assertion struct {
	That    string `json:"that"`
	Message string `json:"message,omitempty"`
}

// HTTPRequestConfig sends one HTTP request through the SSRF guard.
type HTTPRequestConfig struct {
	Method  string            `json:"method,omitempty"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Query   map[string]string `json:"query,omitempty"`
	// Body is sent as JSON unless it is a string (sent as is).
	Body any `json:"body,omitempty"`
	// ExpectStatus lists the statuses that count as success (default: any 2xx).
	ExpectStatus []int `json:"expect_status,omitempty"`
}

// NotificationConfig sends an email or SMS through the notifications module.
type NotificationConfig struct {
	Channel      string         `json:"channel"`
	To           any            `json:"to"`
	Subject      string         `json:"subject,omitempty"`
	Body         string         `json:"body,omitempty"`
	TemplateID   string         `json:"template_id,omitempty"`
	TemplateData map[string]any `json:"template_data,omitempty"`
}

// WebhookConfig delivers an event to the subscribed webhook endpoints.
type WebhookConfig struct {
	EventType string `json:"event_type"`
	Payload   any    `json:"payload,omitempty"`
	// EndpointIDs restricts delivery to these endpoints (default: every endpoint subscribed to
	// EventType).
	EndpointIDs []string `json:"endpoint_ids,omitempty"`
}

// DelayConfig waits on a durable timer.
type DelayConfig struct {
	Duration string `json:"duration,omitempty"`
	// Until is an RFC 3339 time (templates allowed).
	Until string `json:"until,omitempty"`
}

// WaitForSignalConfig waits for POST /executions/{id}/signal/{signal}; the payload is the
// step's output.
type WaitForSignalConfig struct {
	Signal  string `json:"signal"`
	Timeout string `json:"timeout,omitempty"`
	// OnTimeout is fail (default) or continue (output {"timed_out": true}).
	OnTimeout string `json:"on_timeout,omitempty"`
}

// BranchConfig runs the steps of the first case whose expression holds, else Default.
type BranchConfig struct {
	Cases   []BranchCase `json:"cases"`
	Default []Step       `json:"default,omitempty"`
}

// BranchCase is one path of a branch step.
type BranchCase struct {
	Name  string `json:"name,omitempty"`
	When  string `json:"when"`
	Steps []Step `json:"steps"`
}

// ParallelConfig runs its branches at the same time; the step completes when all have.
type ParallelConfig struct {
	Branches []ParallelBranch `json:"branches"`
}

// ParallelBranch is one concurrent list of steps.
type ParallelBranch struct {
	Name  string `json:"name,omitempty"`
	Steps []Step `json:"steps"`
}

// SubWorkflowConfig runs another definition as a child workflow; its output is this step's.
type SubWorkflowConfig struct {
	WorkflowID string `json:"workflow_id"`
	// Input is the child's input_data (templates allowed).
	Input any `json:"input,omitempty"`
}

// Limits of a definition.
const (
	MaxSteps            = 200
	MaxNesting          = 5
	MaxSubWorkflowDepth = 5
	MaxExecutionTimeout = 365 * 24 * time.Hour
	DefaultTimeout      = 30 * 24 * time.Hour
	DefaultStepTimeout  = time.Minute
	DefaultMaxAttempts  = 3
)

var stepIDPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// TemporalTimeoutMargin is added to a definition's timeout for Temporal's own execution
// timeout: the interpreter stops a run that takes too long and records it as timed out; the
// Temporal timeout is the backstop for a run whose workers are all gone.
const TemporalTimeoutMargin = 10 * time.Minute

// ExecutionTimeout is the definition's timeout with its default.
func (d *Definition) ExecutionTimeout() time.Duration {
	if t, err := ParseDuration(d.Timeout); err == nil && t > 0 {
		return t
	}
	return DefaultTimeout
}

// ParseDuration reads a Go duration, also accepting a trailing "d" for days ("2d").
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n := len(s); n > 1 && s[n-1] == 'd' {
		var days int
		if _, err := fmt.Sscanf(s, "%dd", &days); err == nil && fmt.Sprintf("%dd", days) == s {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30s, 5m, 2h or 1d", s)
	}
	return d, nil
}

// StepTimeout is the step's per-attempt timeout with its default.
func (s *Step) StepTimeout() time.Duration {
	if t, err := ParseDuration(s.Timeout); err == nil && t > 0 {
		return t
	}
	return DefaultStepTimeout
}

// Policy returns the step's retry policy with its defaults filled in (3 attempts, 1 s initial
// interval, coefficient 2, at most 1 min between attempts).
func (s *Step) Policy() Retry {
	r := Retry{MaxAttempts: DefaultMaxAttempts, InitialInterval: "1s", BackoffCoefficient: 2, MaxInterval: "1m"}
	if s.Retry == nil {
		return r
	}
	if s.Retry.MaxAttempts > 0 {
		r.MaxAttempts = s.Retry.MaxAttempts
	}
	if s.Retry.InitialInterval != "" {
		r.InitialInterval = s.Retry.InitialInterval
	}
	if s.Retry.BackoffCoefficient > 0 {
		r.BackoffCoefficient = s.Retry.BackoffCoefficient
	}
	if s.Retry.MaxInterval != "" {
		r.MaxInterval = s.Retry.MaxInterval
	}
	return r
}

// Intervals returns the policy's intervals parsed (validation guarantees they parse).
func (r Retry) Intervals() (initial, maximum time.Duration) {
	initial, _ = ParseDuration(r.InitialInterval)
	maximum, _ = ParseDuration(r.MaxInterval)
	return initial, maximum
}

// ContinueOnError reports on_error: continue.
func (s *Step) ContinueOnError() bool { return s.OnError == OnErrorContinue }

// Decode parses a step's config strictly into v (unknown fields are errors).
func (s *Step) Decode(v any) error {
	raw := s.Config
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	return decodeStrict(raw, v)
}

// Parse reads a definition from JSON.
func Parse(b []byte) (*Definition, error) {
	var d Definition
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	return &d, nil
}
