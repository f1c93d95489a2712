package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pyairtable/automation-domain/internal/tenant"

	"go.temporal.io/sdk/activity"

	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
)

// FireInput is a firing of a schedule trigger.
type FireInput struct {
	RuleID string `json:"rule_id"`
	// FiringID identifies the firing (the workflow id the Schedule gave it); the event id is
	// derived from it, so a retried activity publishes once.
	FiringID    string    `json:"firing_id"`
	ScheduledAt time.Time `json:"scheduled_at"`
}

// FireSchedule publishes the schedule event of a rule's firing, unless the rule is gone, disabled
// or no longer schedule-triggered.
func (a *Rules) FireSchedule(ctx context.Context, in FireInput) (string, error) {
	r, err := a.Store.GetRule(ctx, in.RuleID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("fire schedule of rule %s: %w", in.RuleID, err)
	}
	if !r.Enabled || r.TriggerType != rules.TriggerSchedule {
		return "", nil
	}
	e := store.Event{
		ID: EmittedEventID("schedule:" + in.FiringID), Type: rules.ScheduleEventType, Source: "automation/schedule",
		Subject: r.ID, OccurredAt: in.ScheduledAt,
		Data: store.MustJSON(map[string]any{"rule_id": r.ID, "rule_name": r.Name,
			"scheduled_at": in.ScheduledAt.UTC().Format(time.RFC3339)}),
	}
	stored, _, err := a.Bus.Publish(ctx, e)
	if err != nil {
		return "", fmt.Errorf("fire schedule of rule %s: %w", in.RuleID, err)
	}
	return stored.ID, nil
}

// PurgeExpired deletes events older than the retention with the engine's records of them, in
// batches, and returns how many it deleted.
func (a *Rules) PurgeExpired(ctx context.Context) (int, error) {
	retention := a.Retention
	if retention < 24*time.Hour {
		retention = 24 * time.Hour // the dedup window of event ids is never shorter
	}
	cutoff := a.now().Add(-retention)
	total := 0
	for {
		// Every tenant's events age out alike.
		n, err := a.Store.PurgeEvents(tenant.System(ctx), cutoff, 1000)
		total += n
		if err != nil {
			return total, fmt.Errorf("purge events before %s: %w", cutoff.Format(time.RFC3339), err)
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, total)
		}
		if n < 1000 || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}
