package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/store"
)

// Task queues of the delivery activities, one per channel: the worker polling each sets
// Temporal's task-queue activity rate limit to the provider's send rate (SMTP_RATE_PER_SECOND,
// TWILIO_RATE_PER_SECOND), so a burst waits in the queue instead of being refused.
const (
	EmailTaskQueue = "automation-email"
	SMSTaskQueue   = "automation-sms"
)

// NotificationInput starts SendNotification.
type NotificationInput struct {
	Spec activities.NotificationSpec `json:"spec"`
	// Retry shapes the retries of a delivery's transient failures.
	Retry RetrySettings `json:"retry"`
	// SendTimeout bounds one attempt of one delivery.
	SendTimeout time.Duration `json:"send_timeout"`
}

// RetrySettings is the exponential backoff of delivery retries.
type RetrySettings struct {
	InitialInterval time.Duration `json:"initial_interval"`
	MaximumInterval time.Duration `json:"maximum_interval"`
	MaximumAttempts int           `json:"maximum_attempts"`
}

// NotificationResult summarizes a finished notification.
type NotificationResult struct {
	Status     string            `json:"status"`
	Sent       int               `json:"sent"`
	Failed     int               `json:"failed"`
	Deliveries []DeliveryOutcome `json:"deliveries"`
}

// DeliveryOutcome is how one recipient's delivery ended.
type DeliveryOutcome struct {
	DeliveryID        string `json:"delivery_id"`
	Recipient         string `json:"recipient"`
	Status            string `json:"status"` // sent or failed
	Attempt           int    `json:"attempt,omitempty"`
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	Error             string `json:"error,omitempty"`
}

// SendNotification sends one notification: it makes sure the notification is stored, waits for
// send_at, reserves each recipient's slot under the per-recipient throttle, then delivers to
// every recipient in parallel — each delivery waiting (a durable timer) for its slot, sending
// through its channel's rate-limited task queue with Temporal's retry policy, and emitting
// notification.sent or notification.failed. Nothing over a limit is dropped: it waits.
func SendNotification(ctx workflow.Context, in NotificationInput) (NotificationResult, error) {
	var a *activities.Notifications
	spec := in.Spec
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		// The database may be down for a while; keep trying rather than lose the notification.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})

	var slots activities.SlotsResult
	if now := workflow.Now(ctx); spec.SendAt != nil && spec.SendAt.After(now) {
		if err := workflow.ExecuteLocalActivity(lctx, a.Prepare, activities.PrepareInput{Spec: spec}).Get(ctx, nil); err != nil {
			return NotificationResult{}, err
		}
		if err := workflow.Sleep(ctx, spec.SendAt.Sub(now)); err != nil {
			// Cancelled (from Temporal's UI or CLI) before send_at: nothing was sent.
			return cancelled(ctx, lctx, in, err)
		}
		err := workflow.ExecuteLocalActivity(lctx, a.ReserveSlots, activities.ReserveInput{
			Channel: spec.Channel, Deliveries: spec.Deliveries}).Get(ctx, &slots)
		if err != nil {
			return NotificationResult{}, err
		}
	} else {
		err := workflow.ExecuteLocalActivity(lctx, a.Prepare, activities.PrepareInput{Spec: spec, Reserve: true}).Get(ctx, &slots)
		if err != nil {
			return NotificationResult{}, err
		}
	}

	outcomes := make([]DeliveryOutcome, len(spec.Deliveries))
	wg := workflow.NewWaitGroup(ctx)
	for i, d := range spec.Deliveries {
		var slot time.Time
		if i < len(slots.Slots) {
			slot = slots.Slots[i]
		}
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			outcomes[i] = deliver(gctx, lctx, in, d, slot)
		})
	}
	wg.Wait(ctx)

	res := NotificationResult{Deliveries: outcomes}
	statuses := make([]string, len(outcomes))
	for i, o := range outcomes {
		statuses[i] = o.Status
		if o.Status == store.StatusSent {
			res.Sent++
		} else {
			res.Failed++
		}
	}
	res.Status = store.AggregateStatus(statuses)
	return res, nil
}

// deliver sends to one recipient once its throttle slot has come.
func deliver(ctx, lctx workflow.Context, in NotificationInput, d activities.DeliverySpec, slot time.Time) DeliveryOutcome {
	var a *activities.Notifications
	out := DeliveryOutcome{DeliveryID: d.ID, Recipient: d.Recipient}
	if wait := slot.Sub(workflow.Now(ctx)); wait > 0 {
		if err := workflow.Sleep(ctx, wait); err != nil {
			return fail(ctx, lctx, in.Spec, d, err)
		}
	}
	queue, method := EmailTaskQueue, any(a.DeliverEmail)
	if in.Spec.Channel == store.ChannelSMS {
		queue, method = SMSTaskQueue, a.DeliverSMS
	}
	sendCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue,
		StartToCloseTimeout: in.SendTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    in.Retry.InitialInterval,
			BackoffCoefficient: 2,
			MaximumInterval:    in.Retry.MaximumInterval,
			MaximumAttempts:    int32(in.Retry.MaximumAttempts),
		},
		Priority: temporal.Priority{PriorityKey: priorityKey(in.Spec.Priority)},
		// On cancellation, let a send in progress finish so that what it did is recorded.
		WaitForCancellation: true,
		Summary:             in.Spec.Channel + " to " + d.Recipient,
	})
	bookkeeping := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})

	var res activities.DeliverResult
	var err error
	for {
		res = activities.DeliverResult{}
		err = workflow.ExecuteActivity(sendCtx, method, activities.DeliverInput{DeliveryID: d.ID}).Get(ctx, &res)
		if err != nil || res.ThrottledFor <= 0 {
			break
		}
		// Earlier sends to this recipient ran late and its window is still full: wait.
		if err = workflow.Sleep(ctx, res.ThrottledFor); err != nil {
			break
		}
	}
	if err == nil {
		if !res.Recorded {
			// Sent, but the activity could not write it down: record it here, never resend.
			_ = workflow.ExecuteActivity(bookkeeping, a.RecordSent, activities.RecordSentInput{DeliveryID: d.ID, Result: res}).Get(ctx, nil)
		}
		out.Status, out.Attempt, out.ProviderMessageID = store.StatusSent, res.Attempt, res.ProviderMessageID
		publish(ctx, lctx, in.Spec, d, EventNotificationSent, activities.NotificationEventData{
			Status: store.StatusSent, Attempt: res.Attempt, Provider: res.Provider,
			ProviderMessageID: res.ProviderMessageID, ProviderStatus: res.ProviderStatus,
		})
		return out
	}

	return fail(ctx, lctx, in.Spec, d, err)
}

// fail marks a delivery failed with the reason err gives and emits notification.failed. When
// the workflow was cancelled it does so on a disconnected context, so the record is still kept.
func fail(ctx, lctx workflow.Context, spec activities.NotificationSpec, d activities.DeliverySpec, err error) DeliveryOutcome {
	var a *activities.Notifications
	reason, code := failureReason(err)
	if temporal.IsCanceledError(err) {
		reason = "cancelled before it was sent"
		ctx, _ = workflow.NewDisconnectedContext(ctx)
		lctx, _ = workflow.NewDisconnectedContext(lctx)
	}
	var changed bool
	if ferr := workflow.ExecuteLocalActivity(lctx, a.FailDelivery, activities.FailInput{
		DeliveryID: d.ID, Reason: reason, Code: code}).Get(ctx, &changed); ferr != nil {
		workflow.GetLogger(ctx).Error("mark delivery failed", "delivery_id", d.ID, "error", ferr)
	}
	if changed {
		publish(ctx, lctx, spec, d, EventNotificationFailed, activities.NotificationEventData{
			Status: store.StatusFailed, Error: reason, ErrorCode: code,
		})
	}
	return DeliveryOutcome{DeliveryID: d.ID, Recipient: d.Recipient, Status: store.StatusFailed, Error: reason}
}

// cancelled records every delivery of a notification cancelled before send_at as failed and
// returns the cancellation.
func cancelled(ctx, lctx workflow.Context, in NotificationInput, cause error) (NotificationResult, error) {
	res := NotificationResult{Status: store.StatusFailed}
	for _, d := range in.Spec.Deliveries {
		res.Deliveries = append(res.Deliveries, fail(ctx, lctx, in.Spec, d, cause))
		res.Failed++
	}
	return res, cause
}

// Event types this workflow and the provider callbacks emit.
const (
	EventNotificationSent      = "notification.sent"
	EventNotificationDelivered = "notification.delivered"
	EventNotificationFailed    = "notification.failed"
)

// publish emits an event about one delivery with a deterministic id, so a retried activity or
// a replay stores it once. It runs as a local activity: storing an event is a quick database
// write, and this spares a task-queue round trip per delivery.
func publish(ctx, lctx workflow.Context, spec activities.NotificationSpec, d activities.DeliverySpec, typ string, data activities.NotificationEventData) {
	var ev *activities.Events
	e := activities.NotificationEvent(typ, spec, d, data)
	e.OccurredAt = workflow.Now(ctx)
	if err := workflow.ExecuteLocalActivity(lctx, ev.Publish, activities.PublishInput{Event: e}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("publish event", "type", typ, "delivery_id", d.ID, "error", err)
	}
}

// failureReason explains a failed delivery activity and returns the provider's code when known.
func failureReason(err error) (reason, code string) {
	var appErr *temporal.ApplicationError
	var timeoutErr *temporal.TimeoutError
	switch {
	case errors.As(err, &appErr):
		reason = appErr.Message()
		if appErr.HasDetails() {
			_ = appErr.Details(&code)
		}
	case errors.As(err, &timeoutErr):
		reason = "timed out: " + timeoutErr.TimeoutType().String()
	default:
		reason = err.Error()
	}
	return reason, code
}

// priorityKey maps a notification priority onto Temporal's task priority (1 runs first).
func priorityKey(p string) int {
	switch p {
	case "high":
		return 1
	case "low":
		return 5
	}
	return 0 // the default, 3
}
