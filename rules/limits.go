package rules

import (
	"context"
	"fmt"
	"time"
)

// RunLog is what the limit checks read: the fired executions of a rule (store.Store has these
// methods).
type RunLog interface {
	// RuleRuns counts the rule's fired executions evaluated after since and returns the latest
	// one's time (zero when none).
	RuleRuns(ctx context.Context, ruleID string, since time.Time) (int, time.Time, error)
	// FiredWithDedupKey returns a fired execution of the rule with the key after since ("").
	FiredWithDedupKey(ctx context.Context, ruleID, key string, since time.Time) (string, error)
}

// HasLimits reports whether the rule has a dedup key, a cooldown or a rate limit to check.
func (c *Compiled) HasLimits(dedupKey string) bool {
	return dedupKey != "" || c.Def.Cooldown.D() > 0 || c.Def.RateLimit != nil
}

// OverLimit checks the rule's dedup_key, cooldown and rate limit at now and returns why it must
// not run ("" when it may). The caller serialises concurrent checks of one rule (the evaluation
// locks the rule's runs in the same transaction that records the run).
func (c *Compiled) OverLimit(ctx context.Context, log RunLog, dedupKey string, now time.Time) (string, error) {
	if dedupKey != "" {
		window := c.Def.DedupWindow.D()
		if window <= 0 {
			window = DefaultDedupWindow
		}
		id, err := log.FiredWithDedupKey(ctx, c.ID, dedupKey, now.Add(-window))
		if err != nil {
			return "", err
		}
		if id != "" {
			return fmt.Sprintf("duplicate: dedup_key %q already ran in execution %s within %s", dedupKey, id,
				Duration(window)), nil
		}
	}
	cooldown, limit := c.Def.Cooldown.D(), c.Def.RateLimit
	if cooldown <= 0 && limit == nil {
		return "", nil
	}
	since := now
	if limit != nil {
		since = now.Add(-time.Duration(limit.Window))
	}
	count, last, err := log.RuleRuns(ctx, c.ID, since)
	if err != nil {
		return "", err
	}
	if cooldown > 0 && !last.IsZero() && now.Sub(last) < cooldown {
		return fmt.Sprintf("cooldown: last run at %s, next run allowed after %s", last.UTC().Format(time.RFC3339),
			last.Add(cooldown).UTC().Format(time.RFC3339)), nil
	}
	if limit != nil && count >= limit.MaxRuns {
		return fmt.Sprintf("rate limit: %d run(s) in the last %s (max_runs %d)", count, limit.Window, limit.MaxRuns), nil
	}
	return "", nil
}
