package app

import (
	"context"
	"encoding/json"
	"time"

	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/workflows"
)

// ensureRuleSchedules creates the event retention Schedule and brings the Schedule of every
// schedule-triggered rule in line with the rule (a rule written while Temporal was unreachable,
// or restored from a backup). It retries until it succeeds or ctx ends.
func (d *Deps) ensureRuleSchedules(ctx context.Context) {
	sched := &rules.Schedules{Temporal: d.Temporal, TaskQueue: workflows.TaskQueue}
	for attempt := 0; ; attempt++ {
		err := rules.EnsureRetentionSchedule(ctx, d.Temporal, workflows.TaskQueue, time.Hour)
		if err == nil {
			err = d.syncRuleSchedules(ctx, sched)
		}
		if err == nil {
			return
		}
		if attempt%10 == 0 {
			d.Log.Warn("rule schedules not in place yet; retrying", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
	}
}

func (d *Deps) syncRuleSchedules(ctx context.Context, sched *rules.Schedules) error {
	list, err := d.Store.RulesWithTrigger(ctx, rules.TriggerSchedule)
	if err != nil {
		return err
	}
	for _, r := range list {
		var def rules.Definition
		if err := json.Unmarshal(r.Definition, &def); err != nil {
			d.Log.Error("stored rule definition is not readable", "rule_id", r.ID, "error", err)
			continue
		}
		if err := sched.Sync(ctx, r, def.Trigger); err != nil {
			if rules.IsPermanent(err) {
				d.Log.Error("rule schedule refused by Temporal", "rule_id", r.ID, "error", err)
				continue
			}
			return err
		}
	}
	return nil
}
