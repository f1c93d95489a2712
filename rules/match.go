package rules

import (
	"strings"

	"github.com/pyairtable/automation-domain/store"
)

// ScheduleEventType is the type of the event a schedule trigger's Temporal Schedule publishes
// each time it fires; its subject is the rule id and its data {rule_id, scheduled_at}.
const ScheduleEventType = "automation.schedule.fired"

// WebhookSourcePrefix starts the source of every event recorded from an inbound webhook:
// the event of source "github" has Source "webhook/github" (see WebhookEventSource).
const WebhookSourcePrefix = "webhook/"

// WebhookEventSource is the Source the webhook module gives the events it records from the
// inbound webhook source named name; webhook triggers match on it.
func WebhookEventSource(name string) string { return WebhookSourcePrefix + name }

// MatchType reports whether typ matches pattern, where * matches any run of characters
// (including none and including dots): "user.*" matches "user.created" and "user.profile.updated",
// "*" matches everything, anything else must be equal.
func MatchType(pattern, typ string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == typ
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(typ, parts[0]) {
		return false
	}
	rest := typ[len(parts[0]):]
	last := len(parts) - 1
	for _, p := range parts[1:last] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return strings.HasSuffix(rest, parts[last])
}

// MatchesTrigger reports whether rule ruleID's trigger t considers event e.
func MatchesTrigger(t Trigger, ruleID string, e store.Event) bool {
	switch t.Type {
	case TriggerEvent:
		return MatchType(t.EventType, e.Type)
	case TriggerSchedule:
		return e.Type == ScheduleEventType && e.Subject == ruleID
	case TriggerWebhook:
		if e.Source != WebhookEventSource(t.Source) {
			return false
		}
		return t.EventType == "" || MatchType(t.EventType, e.Type)
	}
	return false
}
