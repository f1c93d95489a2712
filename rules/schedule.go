package rules

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
)

// ScheduleFireInput is the argument of the workflow a schedule trigger's Schedule starts.
type ScheduleFireInput struct {
	RuleID string `json:"rule_id"`
}

// searchTenantID is the TenantId search attribute every workflow of a tenant carries (registered
// by engine.RegisterSearchAttributes).
var searchTenantID = temporal.NewSearchAttributeKeyKeyword("TenantId")

// ScheduleID is the Temporal Schedule id of a schedule-triggered rule.
func ScheduleID(ruleID string) string { return "automation-rule-" + ruleID }

// Schedules keeps one Temporal Schedule per schedule-triggered rule: Temporal does the timing,
// overlap policy, pausing and catch-up; each firing starts RuleScheduleFire, which publishes a
// ScheduleEventType event that the rule evaluates like any other.
type Schedules struct {
	Temporal  client.Client
	TaskQueue string
}

// Sync makes the Schedule of rule r match it: created or updated for a live schedule-triggered
// rule (paused while the rule is disabled), deleted otherwise. An invalid cron expression or
// time zone (as Temporal judges it) is returned as a PermanentError.
func (s *Schedules) Sync(ctx context.Context, r store.Rule, t Trigger) error {
	if t.Type != TriggerSchedule || r.DeletedAt != nil {
		return s.Delete(ctx, r.ID)
	}
	spec := client.ScheduleSpec{CronExpressions: []string{t.Cron}, TimeZoneName: t.Timezone}
	action := &client.ScheduleWorkflowAction{
		ID:                 "automation-rule-fire-" + r.ID,
		Workflow:           ScheduleFireWorkflow,
		Args:               []any{ScheduleFireInput{RuleID: r.ID}},
		TaskQueue:          s.TaskQueue,
		WorkflowRunTimeout: 10 * time.Minute,
	}
	// The tenant's workflow id and TenantId are set here, not only by the client's tenant
	// interceptor: that one sees a Schedule's creation, not its updates, which replace the action.
	if r.TenantID != "" { // the rule's tenant, also when reconciling across tenants
		ctx = tenant.With(ctx, r.TenantID)
	}
	var attrs temporal.SearchAttributes // an update's (a creation's are the interceptor's)
	if id, system := tenant.From(ctx); !system {
		action.ID = tenant.WorkflowID(id, action.ID)
		attrs = temporal.NewSearchAttributes(searchTenantID.ValueSet(id))
	}
	note := fmt.Sprintf("automation rule %q (version %d)", r.Name, r.Version)
	update := func() error {
		return s.Temporal.ScheduleClient().GetHandle(ctx, ScheduleID(r.ID)).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				sch := in.Description.Schedule
				sch.Spec = &spec
				updated := *action
				updated.TypedSearchAttributes = attrs
				sch.Action = &updated
				if sch.State == nil {
					sch.State = &client.ScheduleState{}
				}
				sch.State.Paused = !r.Enabled
				sch.State.Note = note
				return &client.ScheduleUpdate{Schedule: &sch}, nil
			},
		})
	}
	// A namespace that does not know TenantId (not registered yet, or not by this service) still
	// gets the schedule, without the attribute; its workflow id keeps the tenant.
	withoutAttribute := func(err error) bool {
		if err == nil || !strings.Contains(err.Error(), "no mapping defined for search attribute") || attrs.Size() == 0 {
			return false
		}
		attrs = temporal.SearchAttributes{}
		return true
	}
	err := update()
	if withoutAttribute(err) {
		err = update()
	}
	if err == nil {
		return nil
	}
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		return scheduleError(r.ID, err)
	}
	create := func() error {
		_, err := s.Temporal.ScheduleClient().Create(ctx, client.ScheduleOptions{
			ID:      ScheduleID(r.ID),
			Spec:    spec,
			Action:  action,
			Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
			Paused:  !r.Enabled,
			Note:    note,
		})
		return err
	}
	err = create()
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		err = update() // created meanwhile by another process
	}
	if err != nil {
		return scheduleError(r.ID, err)
	}
	return nil
}

// Delete removes rule ruleID's Schedule; a missing one is not an error.
func (s *Schedules) Delete(ctx context.Context, ruleID string) error {
	err := s.Temporal.ScheduleClient().GetHandle(ctx, ScheduleID(ruleID)).Delete(ctx)
	var notFound *serviceerror.NotFound
	if err != nil && !errors.As(err, &notFound) {
		return fmt.Errorf("delete schedule of rule %s: %w", ruleID, err)
	}
	return nil
}

func scheduleError(ruleID string, err error) error {
	var invalid *serviceerror.InvalidArgument
	if errors.As(err, &invalid) {
		return Permanentf("trigger: Temporal refused the schedule: %s", invalid.Message)
	}
	return fmt.Errorf("schedule of rule %s: %w", ruleID, err)
}

// RetentionScheduleID is the Schedule that purges old events.
const RetentionScheduleID = "automation-event-retention"

// EnsureRetentionSchedule creates (or updates) the Schedule that runs RetentionWorkflow every
// interval.
func EnsureRetentionSchedule(ctx context.Context, c client.Client, taskQueue string, every time.Duration) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	action := &client.ScheduleWorkflowAction{
		ID: "automation-event-retention-run", Workflow: RetentionWorkflow, TaskQueue: taskQueue,
		WorkflowRunTimeout: time.Hour,
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: RetentionScheduleID, Spec: spec, Action: action, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note: "purges events older than EVENT_RETENTION with their rule executions",
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		err = c.ScheduleClient().GetHandle(ctx, RetentionScheduleID).Update(ctx, client.ScheduleUpdateOptions{
			DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
				sch := in.Description.Schedule
				sch.Spec = &spec
				sch.Action = action
				return &client.ScheduleUpdate{Schedule: &sch}, nil
			},
		})
	}
	if err != nil {
		return fmt.Errorf("event retention schedule: %w", err)
	}
	return nil
}
