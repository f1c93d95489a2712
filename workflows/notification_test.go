package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/workflows"
)

func notificationInput(channel string, sendAt *time.Time, recipients ...string) notify.WorkflowInput {
	spec := notify.Spec{ID: "n1", Channel: channel, Body: "hi", WorkflowID: "notification-n1", SendAt: sendAt,
		CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i, r := range recipients {
		spec.Deliveries = append(spec.Deliveries, notify.DeliverySpec{ID: "d" + string(rune('1'+i)), Recipient: r, RecipientKey: r})
	}
	return notify.WorkflowInput{Spec: spec, SendTimeout: time.Minute,
		Retry: notify.RetrySettings{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 5}}
}

type recorder struct {
	mu     sync.Mutex
	events []store.Event
	calls  map[string][]time.Time // delivery id → when each attempt ran (test clock)
}

func newEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *recorder) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.SendNotification)
	env.RegisterActivity(&activities.Notifications{})
	env.RegisterActivity(&activities.Events{})
	rec := &recorder{calls: map[string][]time.Time{}}
	var ev *activities.Events
	env.OnActivity(ev.Publish, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PublishInput) error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.events = append(rec.events, in.Event)
		return nil
	})
	return env, rec
}

func (r *recorder) attempt(id string, at time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[id] = append(r.calls[id], at)
	return len(r.calls[id])
}

func TestSendNotificationRetriesTransientFailures(t *testing.T) {
	env, rec := newEnv(t)
	var a *activities.Notifications
	start := env.Now()
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PrepareInput) (activities.SlotsResult, error) {
		if !in.Reserve || in.Spec.ID != "n1" {
			t.Errorf("prepare input %+v", in)
		}
		return activities.SlotsResult{Slots: []time.Time{start, start}}, nil
	})
	env.OnActivity(a.DeliverEmail, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		n := rec.attempt(in.DeliveryID, env.Now())
		if int(activity.GetInfo(ctx).Attempt) != n {
			t.Errorf("attempt %d, call %d", activity.GetInfo(ctx).Attempt, n)
		}
		if in.DeliveryID == "d1" && n < 3 {
			return activities.DeliverResult{}, temporal.NewApplicationError("451 greylisted", activities.ErrTypeTransient, "451 4.7.1")
		}
		return activities.DeliverResult{Attempt: n, Provider: "smtp", ProviderMessageID: in.DeliveryID + "@example.com", Recorded: true}, nil
	})
	env.ExecuteWorkflow(workflows.SendNotification, notificationInput("email", nil, "a@example.com", "b@example.com"))
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow: %v", env.GetWorkflowError())
	}
	var res notify.WorkflowResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != "sent" || res.Sent != 2 || res.Deliveries[0].Attempt != 3 || res.Deliveries[1].Attempt != 1 {
		t.Errorf("result %+v", res)
	}
	calls := rec.calls["d1"]
	if len(calls) != 3 || calls[1].Sub(calls[0]) != time.Second || calls[2].Sub(calls[1]) != 2*time.Second {
		t.Errorf("retries should back off 1 s then 2 s: %v", calls)
	}
	if len(rec.events) != 2 || rec.events[0].Type != "notification.sent" {
		t.Fatalf("events %+v", rec.events)
	}
	for _, e := range rec.events {
		if e.Subject != "n1" || e.ID != notify.EventID("notification.sent", "d1") && e.ID != notify.EventID("notification.sent", "d2") {
			t.Errorf("event %+v", e)
		}
	}
}

func TestSendNotificationFailsPermanentErrorsAtOnce(t *testing.T) {
	env, rec := newEnv(t)
	var a *activities.Notifications
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(activities.SlotsResult{Slots: []time.Time{{}}}, nil)
	env.OnActivity(a.DeliverSMS, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		rec.attempt(in.DeliveryID, env.Now())
		return activities.DeliverResult{}, temporal.NewNonRetryableApplicationError("twilio error 21211: invalid number", activities.ErrTypePermanent, nil, "21211")
	})
	var failed activities.FailInput
	env.OnActivity(a.FailDelivery, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FailInput) (bool, error) {
		failed = in
		return true, nil
	})
	env.ExecuteWorkflow(workflows.SendNotification, notificationInput("sms", nil, "+15005550001"))
	var res notify.WorkflowResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != "failed" || res.Failed != 1 || len(rec.calls["d1"]) != 1 {
		t.Errorf("result %+v after %d attempts", res, len(rec.calls["d1"]))
	}
	if failed.DeliveryID != "d1" || failed.Code != "21211" || failed.Reason != "twilio error 21211: invalid number" {
		t.Errorf("fail input %+v", failed)
	}
	if len(rec.events) != 1 || rec.events[0].Type != "notification.failed" {
		t.Fatalf("events %+v", rec.events)
	}
}

func TestSendNotificationGivesUpAfterMaximumAttempts(t *testing.T) {
	env, rec := newEnv(t)
	var a *activities.Notifications
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(activities.SlotsResult{Slots: []time.Time{{}}}, nil)
	env.OnActivity(a.DeliverEmail, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		rec.attempt(in.DeliveryID, env.Now())
		return activities.DeliverResult{}, temporal.NewApplicationError("connection refused", activities.ErrTypeTransient)
	})
	env.OnActivity(a.FailDelivery, mock.Anything, mock.Anything).Return(true, nil)
	env.ExecuteWorkflow(workflows.SendNotification, notificationInput("email", nil, "a@example.com"))
	var res notify.WorkflowResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != "failed" || len(rec.calls["d1"]) != 5 || res.Deliveries[0].Error != "connection refused" {
		t.Errorf("result %+v after %d attempts", res, len(rec.calls["d1"]))
	}
}

func TestSendNotificationWaitsForSendAtAndThrottleSlots(t *testing.T) {
	env, rec := newEnv(t)
	var a *activities.Notifications
	start := env.Now()
	sendAt := start.Add(time.Hour)
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PrepareInput) (activities.SlotsResult, error) {
		if in.Reserve {
			t.Error("slots reserved before send_at")
		}
		return activities.SlotsResult{}, nil
	})
	env.OnActivity(a.ReserveSlots, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ReserveInput) (activities.SlotsResult, error) {
		if now := env.Now(); now.Before(sendAt) {
			t.Errorf("slots reserved at %v, before send_at %v", now, sendAt)
		}
		return activities.SlotsResult{Slots: []time.Time{sendAt, sendAt.Add(6 * time.Second)}}, nil
	})
	env.OnActivity(a.DeliverEmail, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		if n := rec.attempt(in.DeliveryID, env.Now()); in.DeliveryID == "d2" && n == 1 {
			// Admission at send time finds the recipient's window full: wait, then try again.
			return activities.DeliverResult{ThrottledFor: 2 * time.Second}, nil
		}
		// The first one could not be written down: the workflow must record it, not resend it.
		return activities.DeliverResult{Attempt: 1, ProviderMessageID: "m-" + in.DeliveryID, Recorded: in.DeliveryID != "d1"}, nil
	})
	var recorded []string
	env.OnActivity(a.RecordSent, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RecordSentInput) error {
		recorded = append(recorded, in.DeliveryID+"="+in.Result.ProviderMessageID)
		return nil
	})
	env.ExecuteWorkflow(workflows.SendNotification, notificationInput("email", &sendAt, "a@example.com", "a@example.com"))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	d1, d2 := rec.calls["d1"], rec.calls["d2"]
	if len(d1) != 1 || len(d2) != 2 || d1[0].Before(sendAt) || d2[0].Before(sendAt.Add(6*time.Second)) ||
		d2[1].Sub(d2[0]) < 2*time.Second {
		t.Errorf("sent at %v and %v; send_at %v, second slot +6 s, then throttled 2 s", d1, d2, sendAt)
	}
	if len(recorded) != 1 || recorded[0] != "d1=m-d1" {
		t.Errorf("recorded %v", recorded)
	}
}

func TestSendNotificationCancelledBeforeSendAt(t *testing.T) {
	env, rec := newEnv(t)
	var a *activities.Notifications
	sendAt := env.Now().Add(time.Hour)
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(activities.SlotsResult{}, nil)
	var failed []activities.FailInput
	env.OnActivity(a.FailDelivery, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FailInput) (bool, error) {
		failed = append(failed, in)
		return true, nil
	})
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)
	env.ExecuteWorkflow(workflows.SendNotification, notificationInput("email", &sendAt, "a@example.com", "b@example.com"))
	if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
		t.Fatalf("workflow error %v, want cancelled", err)
	}
	if len(failed) != 2 || failed[0].Reason != "cancelled before it was sent" {
		t.Errorf("failed deliveries %+v", failed)
	}
	if len(rec.events) != 2 || rec.events[0].Type != "notification.failed" || len(rec.calls) != 0 {
		t.Errorf("events %+v, sends %v", rec.events, rec.calls)
	}
}

// A delivery the activity skipped (suppressed, opted out) is neither sent nor failed: the
// workflow reports it skipped with the reason and emits notification.skipped, once.
func TestSendNotificationReportsSkippedDeliveries(t *testing.T) {
	env, rec := newEnv(t)
	var a *activities.Notifications
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(activities.SlotsResult{Slots: []time.Time{{}, {}}}, nil)
	env.OnActivity(a.DeliverEmail, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		rec.attempt(in.DeliveryID, env.Now())
		if in.DeliveryID == "d1" {
			return activities.DeliverResult{Skipped: true, SkipCode: store.SkipSuppressed, SkipReason: "suppressed: hard_bounce (smtp)", Recorded: true}, nil
		}
		return activities.DeliverResult{Attempt: 1, Provider: "smtp", ProviderMessageID: "m", Recorded: true}, nil
	})
	env.ExecuteWorkflow(workflows.SendNotification, notificationInput("email", nil, "gone@example.com", "ok@example.com"))
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow: %v", env.GetWorkflowError())
	}
	var res notify.WorkflowResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != "sent" || res.Sent != 1 || res.Skipped != 1 || res.Failed != 0 ||
		res.Deliveries[0].Status != "skipped" || res.Deliveries[0].Error != "suppressed: hard_bounce (smtp)" {
		t.Errorf("result %+v", res)
	}
	if len(rec.calls["d1"]) != 1 {
		t.Errorf("a skipped delivery is not retried: %v", rec.calls["d1"])
	}
	var skipped int
	for _, e := range rec.events {
		if e.Type == notify.EventSkipped {
			skipped++
			if e.ID != notify.EventID(notify.EventSkipped, "d1") {
				t.Errorf("skipped event %+v", e)
			}
		}
	}
	if skipped != 1 || len(rec.events) != 2 {
		t.Errorf("events %+v", rec.events)
	}
}
