// Package wire holds the values that both sides of the Temporal boundary and the store share:
// the task queue, the status values of executions, steps, notifications and deliveries, the
// notification channels and the rule that aggregates delivery statuses. Workflow code imports
// it instead of the store; the store defines its status constants as these. It imports nothing
// of this module.
//
// Every value here is wire format (it is stored, and it travels through Temporal histories):
// never change one.
package wire

// TaskQueue is the task queue the worker polls for this service's workflows and activities.
const TaskQueue = "automation"

// Execution statuses. Pending: stored, its Temporal workflow not started yet; the others are
// written by the interpreter's activities (terminated by the API, which is what terminates).
const (
	ExecutionPending    = "pending"
	ExecutionRunning    = "running"
	ExecutionCompleted  = "completed"
	ExecutionFailed     = "failed"
	ExecutionCancelled  = "cancelled"
	ExecutionTerminated = "terminated"
	ExecutionTimedOut   = "timed_out"
)

// Step statuses.
const (
	StepPending   = "pending"
	StepRunning   = "running"
	StepWaiting   = "waiting"
	StepCompleted = "completed"
	StepFailed    = "failed"
	StepSkipped   = "skipped"
	StepCancelled = "cancelled"
)

// Notification channels.
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"
)

// Statuses of a delivery (one recipient) and of a notification (all of them). A notification is
// queued until a delivery starts, sending while any is unfinished, then sent, delivered, failed,
// or partially_failed when some recipients failed and others did not.
const (
	StatusQueued          = "queued"
	StatusSending         = "sending"
	StatusSent            = "sent"
	StatusDelivered       = "delivered"
	StatusFailed          = "failed"
	StatusPartiallyFailed = "partially_failed"
	// StatusSkipped: a delivery not sent on purpose (the address is suppressed, the subscriber
	// opted out); its error says why. A notification whose every delivery was skipped is skipped.
	StatusSkipped = "skipped"
	// StatusDigested: a delivery held for its subscriber's digest of the category and sent as
	// part of that digest's message (the delivery's digest_notification_id), not on its own. A
	// notification whose every delivery was digested is digested.
	StatusDigested = "digested"
)

// AggregateStatus is a notification's status given its deliveries' statuses.
func AggregateStatus(statuses []string) string {
	var queued, pending, sent, delivered, failed, skipped, digested int
	for _, st := range statuses {
		switch st {
		case StatusQueued:
			queued++
		case StatusSending:
			pending++
		case StatusSent:
			sent++
		case StatusDelivered:
			delivered++
		case StatusFailed:
			failed++
		case StatusSkipped:
			skipped++
		case StatusDigested:
			digested++
		}
	}
	switch {
	case len(statuses) == 0 || queued == len(statuses):
		return StatusQueued
	case queued+pending > 0:
		return StatusSending
	case failed == len(statuses):
		return StatusFailed
	case failed > 0:
		return StatusPartiallyFailed
	case skipped == len(statuses):
		return StatusSkipped
	case digested > 0 && digested+skipped == len(statuses):
		return StatusDigested
	case delivered > 0 && delivered+skipped == len(statuses):
		return StatusDelivered
	}
	return StatusSent
}
