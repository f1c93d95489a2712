package engine

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/ports"
)

// InterpreterWorkflow is the registered name of the workflow that runs one execution of a
// definition (workflows.Interpreter, registered under this name by workflows.RegisterEngine).
// Changing it would orphan every running execution.
const InterpreterWorkflow = "Interpreter"

// The interpreter's wire types: its input, result, live state and query. They travel through
// Temporal histories; never change their JSON.

// Search attributes the interpreter upserts, so operators can find runs with
// `temporal workflow list --query 'WorkflowDefinitionId="…"'`. They are registered on the
// namespace at start-up (see RegisterSearchAttributes).
var (
	SearchDefinitionID      = temporal.NewSearchAttributeKeyKeyword("WorkflowDefinitionId")
	SearchDefinitionVersion = temporal.NewSearchAttributeKeyInt64("WorkflowDefinitionVersion")
	SearchPriority          = temporal.NewSearchAttributeKeyKeyword("WorkflowPriority")
	// SearchTenantID is set on every workflow started for a tenant (app's tenant interceptor):
	// `temporal workflow list --query 'TenantId="acme"'`.
	SearchTenantID = temporal.NewSearchAttributeKeyKeyword("TenantId")
)

// StateQuery is the query that returns a running execution's live state (RunState).
const StateQuery = "state"

// RunInput starts the interpreter. Executions started through the API carry ExecutionID (their
// row and input are in the database); scheduled and child runs carry the definition and input,
// and the interpreter creates their row.
type RunInput struct {
	ExecutionID  string `json:"execution_id,omitempty"`
	DefinitionID string `json:"definition_id"`
	// Version pins a definition version; 0 takes the current one.
	Version           int            `json:"version,omitempty"`
	Priority          string         `json:"priority,omitempty"`
	Input             map[string]any `json:"input_data,omitempty"`
	TriggeredBy       string         `json:"triggered_by,omitempty"`
	ParentExecutionID string         `json:"parent_execution_id,omitempty"`
	// Depth counts sub_workflow nesting.
	Depth int `json:"depth,omitempty"`
	// Cause is the event whose handling started this execution (an automation rule's trigger);
	// the execution's outcome event continues its chain, so loop prevention sees rule →
	// workflow → workflow.completed → rule cycles.
	Cause *EventCause `json:"cause,omitempty"`
}

// EventCause is the part of an event a caused event needs (see events.Caused): ports.EventCause,
// so that activity steps can hand it on (a notification step's notification.* events continue
// the chain too).
type EventCause = ports.EventCause

// RunResult is an execution's outcome: every step's output by step id.
type RunResult struct {
	ExecutionID string         `json:"execution_id"`
	Status      string         `json:"status"`
	Output      map[string]any `json:"output"`
}

// RunState is the live view the StateQuery returns.
type RunState struct {
	ExecutionID  string      `json:"execution_id"`
	DefinitionID string      `json:"definition_id"`
	Version      int         `json:"version"`
	Status       string      `json:"status"`
	Steps        []StepState `json:"steps"`
}

// StepState is one step as the interpreter sees it.
type StepState struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	Status     string     `json:"status"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Output     any        `json:"output,omitempty"`
	Error      string     `json:"error,omitempty"`
	// WaitingFor names the signal a wait_for_signal step waits for.
	WaitingFor string `json:"waiting_for,omitempty"`
	// WakeAt is when a delay step (or a signal wait's timeout) ends.
	WakeAt *time.Time `json:"wake_at,omitempty"`
}

// StepUnavailable says why a step type cannot run with this wiring ("" when it can): a
// notification or webhook step needs its module's port.
func StepUnavailable(stepType string, n ports.Notifier, w ports.WebhookSender) string {
	switch {
	case stepType == definition.TypeNotification && n == nil:
		return "the notifications module is not enabled in this deployment"
	case stepType == definition.TypeWebhook && w == nil:
		return "the webhooks module is not enabled in this deployment"
	}
	return ""
}
