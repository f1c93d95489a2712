package workflows

import (
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/wire"
)

// SendNotification sends one notification: it makes sure the notification is stored, waits for
// send_at, reserves each recipient's slot under the per-recipient throttle, then delivers to
// every recipient in parallel — each delivery waiting (a durable timer) for its slot, sending
// through its channel's rate-limited task queue with Temporal's retry policy, and emitting
// notification.sent or notification.failed. Nothing over a limit is dropped: it waits.
func SendNotification(ctx workflow.Context, in notify.WorkflowInput) (notify.WorkflowResult, error) {
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
			return notify.WorkflowResult{}, err
		}
		if err := workflow.Sleep(ctx, spec.SendAt.Sub(now)); err != nil {
			// Cancelled (from Temporal's UI or CLI) before send_at: nothing was sent.
			return cancelled(ctx, lctx, in, err)
		}
		err := workflow.ExecuteLocalActivity(lctx, a.ReserveSlots, activities.ReserveInput{
			Channel: spec.Channel, Deliveries: spec.Deliveries}).Get(ctx, &slots)
		if err != nil {
			return notify.WorkflowResult{}, err
		}
	} else {
		err := workflow.ExecuteLocalActivity(lctx, a.Prepare, activities.PrepareInput{Spec: spec, Reserve: true}).Get(ctx, &slots)
		if err != nil {
			return notify.WorkflowResult{}, err
		}
	}

	outcomes := make([]notify.DeliveryOutcome, len(spec.Deliveries))
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
			if len(spec.Channels) > 1 && d.SubscriberID != "" {
				outcomes[i] = fallBack(gctx, lctx, in, d, outcomes[i])
			}
		})
	}
	wg.Wait(ctx)

	res := notify.WorkflowResult{Deliveries: outcomes}
	statuses := make([]string, len(outcomes))
	for i, o := range outcomes {
		statuses[i] = o.Status
		switch o.Status {
		case wire.StatusSent:
			res.Sent++
		case wire.StatusSkipped:
			res.Skipped++
		case wire.StatusDigested:
			res.Digested++
		default:
			res.Failed++
		}
	}
	res.Status = wire.AggregateStatus(statuses)
	return res, nil
}

// deliver sends to one recipient once its throttle slot has come.
func deliver(ctx, lctx workflow.Context, in notify.WorkflowInput, d notify.DeliverySpec, slot time.Time) notify.DeliveryOutcome {
	var a *activities.Notifications
	out := notify.DeliveryOutcome{DeliveryID: d.ID, Recipient: d.Recipient}
	// Only notifications asked for since digests existed carry a digest rule.
	if d.Digest != nil && workflow.GetVersion(ctx, "notification-digest", workflow.DefaultVersion, 1) == 1 {
		return holdForDigest(ctx, lctx, in, d)
	}
	if wait := slot.Sub(workflow.Now(ctx)); wait > 0 {
		if err := workflow.Sleep(ctx, wait); err != nil {
			return fail(ctx, lctx, in.Spec, d, err)
		}
	}
	if d.QuietHours != nil && in.Spec.Priority != notify.PriorityCritical {
		if err := waitQuietHours(ctx, lctx, d); err != nil {
			return fail(ctx, lctx, in.Spec, d, err)
		}
	}
	queue, method := notify.EmailTaskQueue, any(a.DeliverEmail)
	if in.Spec.Channel == wire.ChannelSMS {
		queue, method = notify.SMSTaskQueue, a.DeliverSMS
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
		Priority: temporal.Priority{PriorityKey: notify.PriorityKey(in.Spec.Priority)},
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
	if err == nil && res.Skipped {
		// Suppressed or opted out at send time: recorded skipped by the activity, with the reason.
		// Histories before this version never return Skipped, so they replay unchanged.
		if workflow.GetVersion(ctx, "notification-skip", workflow.DefaultVersion, 1) == 1 {
			publish(ctx, lctx, in.Spec, d, notify.EventSkipped, notify.EventData{
				Status: wire.StatusSkipped, Error: res.SkipReason, ErrorCode: res.SkipCode,
			})
		}
		out.Status, out.Error = wire.StatusSkipped, res.SkipReason
		return out
	}
	if err == nil {
		if !res.Recorded {
			// Sent, but the activity could not write it down: record it here, never resend.
			_ = workflow.ExecuteActivity(bookkeeping, a.RecordSent, activities.RecordSentInput{DeliveryID: d.ID, Result: res}).Get(ctx, nil)
		}
		out.Status, out.Attempt, out.ProviderMessageID = wire.StatusSent, res.Attempt, res.ProviderMessageID
		publish(ctx, lctx, in.Spec, d, notify.EventSent, notify.EventData{
			Status: wire.StatusSent, Attempt: res.Attempt, Provider: res.Provider,
			ProviderMessageID: res.ProviderMessageID, ProviderStatus: res.ProviderStatus,
		})
		return out
	}

	return fail(ctx, lctx, in.Spec, d, err)
}

// waitQuietHours holds a delivery due inside its subscriber's quiet hours until they end: it
// records the hold on the delivery and sleeps on a durable timer. "Now" in the subscriber's zone
// comes from workflow.Now. Notifications before this version carry no quiet hours.
func waitQuietHours(ctx, lctx workflow.Context, d notify.DeliverySpec) error {
	if workflow.GetVersion(ctx, "notification-quiet-hours", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var a *activities.Notifications
	until, inside := notify.QuietUntil(workflow.Now(ctx), *d.QuietHours)
	if !inside {
		return nil
	}
	if err := workflow.ExecuteLocalActivity(lctx, a.HoldDelivery, activities.HoldInput{
		DeliveryID: d.ID, Until: until, Reason: notify.HoldQuietHours}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("record quiet hours", "delivery_id", d.ID, "error", err)
	}
	if wait := until.Sub(workflow.Now(ctx)); wait > 0 {
		return workflow.Sleep(ctx, wait)
	}
	return nil
}

// holdForDigest holds a delivery for its subscriber's digest of the category instead of sending
// it. The delivery that opens a digest window leads it: its workflow sleeps on a durable timer
// until the window closes, then closes it, and starts the SendNotification workflow of the
// composed digest message (abandoned, so it runs on after this one ends) — quiet hours, throttle,
// preferences, retries and events then apply to the digest as to any notification. The other
// deliveries of the window end here, digested. A leader cancelled while it waits sends the
// digest at once, so that the window's other notifications are not lost with it.
func holdForDigest(ctx, lctx workflow.Context, in notify.WorkflowInput, d notify.DeliverySpec) notify.DeliveryOutcome {
	var a *activities.Notifications
	out := notify.DeliveryOutcome{DeliveryID: d.ID, Recipient: d.Recipient, Status: wire.StatusDigested}
	var j activities.JoinDigestResult
	if err := workflow.ExecuteLocalActivity(lctx, a.JoinDigest, activities.JoinDigestInput{
		DeliveryID: d.ID, Rule: *d.Digest}).Get(ctx, &j); err != nil {
		return fail(ctx, lctx, in.Spec, d, err)
	}
	if j.Skipped {
		publish(ctx, lctx, in.Spec, d, notify.EventSkipped, notify.EventData{
			Status: wire.StatusSkipped, Error: j.SkipReason, ErrorCode: j.SkipCode,
		})
		out.Status, out.Error = wire.StatusSkipped, j.SkipReason
		return out
	}
	if !j.Leader {
		return out
	}
	if wait := j.ClosesAt.Sub(workflow.Now(ctx)); wait > 0 {
		if err := workflow.Sleep(ctx, wait); err != nil {
			ctx, _ = workflow.NewDisconnectedContext(ctx)
			lctx, _ = workflow.NewDisconnectedContext(lctx)
		}
	}
	var c activities.CloseDigestResult
	if err := workflow.ExecuteLocalActivity(lctx, a.CloseDigest, activities.CloseDigestInput{DigestID: j.DigestID}).Get(ctx, &c); err != nil {
		workflow.GetLogger(ctx).Error("close digest", "digest_id", j.DigestID, "error", err)
		return out
	}
	if c.Spec.ID == "" {
		workflow.GetLogger(ctx).Info("digest not sent", "digest_id", j.DigestID, "reason", c.Reason)
		return out
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            c.WorkflowID,
		TaskQueue:             workflow.GetInfo(ctx).TaskQueueName,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:         c.Spec.Channel + " digest " + c.Spec.ID,
	})
	child := workflow.ExecuteChildWorkflow(cctx, notify.NotificationWorkflow, notify.WorkflowInput{
		Spec: c.Spec, Retry: in.Retry, SendTimeout: in.SendTimeout})
	var started workflow.Execution
	if err := child.GetChildWorkflowExecution().Get(ctx, &started); err != nil &&
		!temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		workflow.GetLogger(ctx).Error("start digest notification", "digest_id", j.DigestID, "error", err)
	}
	return out
}

// fallBack tries the notification's next channels in order while a delivery to a subscriber
// has failed for good or been skipped (suppressed, opted out): each step is a new delivery of
// the notification, on the next channel at the subscriber's address there, that replaces the
// previous one. Notifications before this version have no channel list and never get here.
func fallBack(ctx, lctx workflow.Context, in notify.WorkflowInput, d notify.DeliverySpec, out notify.DeliveryOutcome) notify.DeliveryOutcome {
	if workflow.GetVersion(ctx, "notification-fallback", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return out
	}
	var a *activities.Notifications
	for _, ch := range in.Spec.Channels[1:] {
		if out.Status != wire.StatusFailed && out.Status != wire.StatusSkipped {
			break
		}
		if ctx.Err() != nil {
			break // cancelled: no further channel
		}
		var next activities.FallbackResult
		if err := workflow.ExecuteLocalActivity(lctx, a.Fallback, activities.FallbackInput{
			DeliveryID: d.ID, Channel: ch}).Get(ctx, &next); err != nil {
			workflow.GetLogger(ctx).Error("channel fallback", "delivery_id", d.ID, "channel", ch, "error", err)
			break
		}
		if next.Delivery.ID == "" {
			workflow.GetLogger(ctx).Info("no channel fallback", "delivery_id", d.ID, "channel", ch, "reason", next.Reason)
			continue
		}
		step := in
		step.Spec.Channel = ch
		d = next.Delivery
		out = deliver(ctx, lctx, step, d, time.Time{})
	}
	return out
}

// fail marks a delivery failed with the reason err gives and emits notification.failed. When
// the workflow was cancelled it does so on a disconnected context, so the record is still kept.
func fail(ctx, lctx workflow.Context, spec notify.Spec, d notify.DeliverySpec, err error) notify.DeliveryOutcome {
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
		publish(ctx, lctx, spec, d, notify.EventFailed, notify.EventData{
			Status: wire.StatusFailed, Error: reason, ErrorCode: code,
		})
	}
	return notify.DeliveryOutcome{DeliveryID: d.ID, Recipient: d.Recipient, Status: wire.StatusFailed, Error: reason}
}

// cancelled records every delivery of a notification cancelled before send_at as failed and
// returns the cancellation.
func cancelled(ctx, lctx workflow.Context, in notify.WorkflowInput, cause error) (notify.WorkflowResult, error) {
	res := notify.WorkflowResult{Status: wire.StatusFailed}
	for _, d := range in.Spec.Deliveries {
		res.Deliveries = append(res.Deliveries, fail(ctx, lctx, in.Spec, d, cause))
		res.Failed++
	}
	return res, cause
}

// publish emits an event about one delivery with a deterministic id, so a retried activity or
// a replay stores it once. It runs as a local activity: storing an event is a quick database
// write, and this spares a task-queue round trip per delivery.
func publish(ctx, lctx workflow.Context, spec notify.Spec, d notify.DeliverySpec, typ string, data notify.EventData) {
	var ev *activities.Events
	e := notify.DeliveryEvent(typ, spec, d, data)
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
