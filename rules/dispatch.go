package rules

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/internal/groupcommit"
	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/internal/tracing"
	"github.com/pyairtable/automation-domain/store"
)

// Names shared with package workflows (which registers the functions under these names; a test
// there keeps them in step). They are strings here so that this package need not import the
// workflow code.
const (
	// EvaluatorWorkflow is the long-running, signal-driven rule evaluator of one partition.
	EvaluatorWorkflow = "RuleEvaluator"
	// EventSignal is the signal that hands an event to an evaluator.
	EventSignal = "event"
	// ScheduleFireWorkflow runs each time a schedule trigger's Temporal Schedule fires.
	ScheduleFireWorkflow = "RuleScheduleFire"
	// RetentionWorkflow purges events older than EVENT_RETENTION; a Schedule runs it hourly.
	RetentionWorkflow = "PurgeExpiredEvents"
)

// DefaultPartitions is how many evaluator workflows share the events when RULES_PARTITIONS is
// unset.
const DefaultPartitions = 8

// EventRef names a stored event (the evaluator reads the rest from the database).
type EventRef struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// TraceParent is the W3C trace context of the span that handed the event off (the request
	// that posted it): the evaluator's work on the event continues that trace and links its own
	// long-running one ("" while tracing is off).
	TraceParent string `json:"traceparent,omitempty"`
}

// EventBatch is the payload of the event signal: events handed off together.
type EventBatch struct {
	Events []EventRef `json:"events"`
}

// EvaluatorSettings tune an evaluator; they are carried from run to run.
type EvaluatorSettings struct {
	// MaxBatch bounds how many waiting events one evaluation activity takes (default 100).
	MaxBatch int `json:"max_batch,omitempty"`
	// MaxInFlight bounds the events whose actions run at once (default 200; Temporal allows
	// 2,000 pending activities per execution).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// MaxHistory continues the workflow as new once its history reaches this many events, or
	// when Temporal suggests it (~4k events), whichever is first (0: Temporal's suggestion only).
	MaxHistory int `json:"max_history,omitempty"`
	// MaxEventsPerRun continues the workflow as new after it has taken this many events (default
	// 1000), well below Temporal's 10,000 signals per execution.
	MaxEventsPerRun int `json:"max_events_per_run,omitempty"`
}

// EvaluatorInput starts (or continues) the evaluator of one partition.
type EvaluatorInput struct {
	Partition int               `json:"partition"`
	Settings  EvaluatorSettings `json:"settings"`
	// Pending are events received by the previous run and not yet evaluated.
	Pending []EventRef `json:"pending,omitempty"`
}

// Partition maps an event type onto one of n evaluators: events of one type are always evaluated
// by the same workflow, in the order they arrived.
func Partition(eventType string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(eventType))
	return int(h.Sum32() % uint32(n))
}

// EvaluatorID is the workflow id of partition p's evaluator.
func EvaluatorID(p int) string { return fmt.Sprintf("automation-rules-evaluator-%d", p) }

// maxSignalBatch bounds the events one signal carries.
const maxSignalBatch = 500

// Dispatcher is the rules engine's events.Subscriber: it hands each stored event to its
// partition's evaluator workflow with SignalWithStart (the workflow is started if it is not
// running). Once Deliver returns, the event is in Temporal's durable history. Hand-offs to one
// partition that arrive while a signal is in flight share the next signal (group commit, the
// service's one groupcommit.Signaller), so a burst of events costs a few signals, not one each.
// A second Deliver of the same event signals again; the evaluator's database records make the
// second one a no-op.
type Dispatcher struct {
	Temporal   client.Client
	TaskQueue  string
	Partitions int
	Settings   EvaluatorSettings
	// SignalTimeout bounds one signal (0: groupcommit.DefaultTimeout); while Temporal is
	// unreachable, callers get an error after this long and the redispatch loop hands the
	// events off later.
	SignalTimeout time.Duration

	once      sync.Once
	signaller groupcommit.Signaller[evaluatorKey, EventRef]
}

// evaluatorKey names an evaluator: each tenant has its own per partition (its workflow id carries
// the tenant), so that its activities act for that tenant's rules only.
type evaluatorKey struct {
	Tenant    string
	Partition int
}

// Name identifies the subscriber in logs.
func (d *Dispatcher) Name() string { return "automation-rules" }

// Deliver signals e into its evaluator and returns once the signal is recorded.
func (d *Dispatcher) Deliver(ctx context.Context, e store.Event) error {
	d.once.Do(func() {
		d.signaller.Send, d.signaller.MaxBatch, d.signaller.Timeout = d.signal, maxSignalBatch, d.SignalTimeout
	})
	n := d.Partitions
	if n <= 0 {
		n = DefaultPartitions
	}
	// If ctx ends first, the event stays undispatched and the redispatch loop hands it off again.
	owner := e.TenantID
	if owner == "" {
		owner = tenant.ID(ctx)
	}
	return d.signaller.Submit(ctx, evaluatorKey{Tenant: owner, Partition: Partition(e.Type, n)}, EventRef{ID: e.ID, Type: e.Type,
		TraceParent: tracing.TraceParent(ctx)})
}

// signal hands partition p's batch of events to its evaluator, starting it if need be.
func (d *Dispatcher) signal(ctx context.Context, key evaluatorKey, refs []EventRef) error {
	p := key.Partition
	ctx = tenant.With(ctx, key.Tenant)
	_, err := d.Temporal.SignalWithStartWorkflow(ctx, EvaluatorID(p), EventSignal, EventBatch{Events: refs},
		client.StartWorkflowOptions{
			ID:                       EvaluatorID(p),
			TaskQueue:                d.TaskQueue,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		},
		EvaluatorWorkflow, EvaluatorInput{Partition: p, Settings: d.Settings})
	if err != nil {
		return fmt.Errorf("signal %d event(s) to %s: %w", len(refs), EvaluatorID(p), err)
	}
	return nil
}
