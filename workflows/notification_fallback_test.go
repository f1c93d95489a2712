package workflows_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/workflows"
)

// fallbackInput is an email to two subscribers that falls back to SMS.
func fallbackInput() notify.WorkflowInput {
	in := notificationInput("email", nil, "a@example.com", "b@example.com")
	in.Spec.Channels = []string{"email", "sms"}
	in.Spec.Deliveries[0].SubscriberID = "sub-a"
	in.Spec.Deliveries[1].SubscriberID = "sub-b"
	return in
}

func TestSendNotificationFallsBackToTheNextChannel(t *testing.T) {
	env, rec := newEnv(t)
	var a *activities.Notifications
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(activities.SlotsResult{}, nil)
	env.OnActivity(a.DeliverEmail, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		rec.attempt(in.DeliveryID, env.Now())
		switch in.DeliveryID {
		case "d1": // hard bounce
			return activities.DeliverResult{}, temporal.NewNonRetryableApplicationError("550 5.1.1 no such user", activities.ErrTypePermanent, nil, "550")
		default: // opted out of email
			return activities.DeliverResult{Skipped: true, SkipCode: store.SkipOptedOut, SkipReason: "opted out of email", Recorded: true}, nil
		}
	})
	env.OnActivity(a.FailDelivery, mock.Anything, mock.Anything).Return(true, nil)
	var asked []activities.FallbackInput
	env.OnActivity(a.Fallback, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FallbackInput) (activities.FallbackResult, error) {
		rec.mu.Lock()
		asked = append(asked, in)
		rec.mu.Unlock()
		phone := "+15005550001"
		if in.DeliveryID == "d2" {
			phone = "+15005550002"
		}
		return activities.FallbackResult{Delivery: notify.DeliverySpec{ID: in.DeliveryID + "-sms", Recipient: phone, RecipientKey: phone}}, nil
	})
	env.OnActivity(a.DeliverSMS, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		n := rec.attempt(in.DeliveryID, env.Now())
		if in.DeliveryID == "d2-sms" && n < 2 {
			return activities.DeliverResult{}, temporal.NewApplicationError("twilio 503", activities.ErrTypeTransient, "20503")
		}
		return activities.DeliverResult{Attempt: n, Provider: "twilio", ProviderMessageID: "SM" + in.DeliveryID, Recorded: true}, nil
	})
	env.ExecuteWorkflow(workflows.SendNotification, fallbackInput())
	var res notify.WorkflowResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != "sent" || res.Sent != 2 || len(res.Deliveries) != 2 ||
		res.Deliveries[0].DeliveryID != "d1-sms" || res.Deliveries[1].DeliveryID != "d2-sms" || res.Deliveries[1].Attempt != 2 {
		t.Fatalf("result %+v", res)
	}
	if len(asked) != 2 || asked[0].Channel != "sms" || asked[1].Channel != "sms" {
		t.Errorf("fallback requests %+v", asked)
	}
	byType := map[string][]store.Event{}
	for _, e := range rec.events {
		byType[e.Type] = append(byType[e.Type], e)
	}
	if len(byType[notify.EventFailed]) != 1 || len(byType[notify.EventSkipped]) != 1 || len(byType[notify.EventSent]) != 2 {
		t.Errorf("events %+v", rec.events)
	}
	for _, e := range byType[notify.EventSent] {
		if e.ID != notify.EventID(notify.EventSent, "d1-sms") && e.ID != notify.EventID(notify.EventSent, "d2-sms") {
			t.Errorf("sent event %+v", e)
		}
	}
}

func TestSendNotificationFallbackStopsWithoutAnAddress(t *testing.T) {
	env, rec := newEnv(t)
	var a *activities.Notifications
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(activities.SlotsResult{}, nil)
	env.OnActivity(a.DeliverEmail, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		rec.attempt(in.DeliveryID, env.Now())
		if in.DeliveryID == "d1" {
			return activities.DeliverResult{}, temporal.NewNonRetryableApplicationError("550 no such user", activities.ErrTypePermanent, nil, "550")
		}
		return activities.DeliverResult{Attempt: 1, Provider: "smtp", ProviderMessageID: "m", Recorded: true}, nil
	})
	env.OnActivity(a.FailDelivery, mock.Anything, mock.Anything).Return(true, nil)
	var asked int
	env.OnActivity(a.Fallback, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FallbackInput) (activities.FallbackResult, error) {
		asked++
		return activities.FallbackResult{Reason: "the subscriber has no sms address"}, nil
	})
	env.ExecuteWorkflow(workflows.SendNotification, fallbackInput())
	var res notify.WorkflowResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != "partially_failed" || res.Sent != 1 || res.Failed != 1 || res.Deliveries[0].DeliveryID != "d1" || asked != 1 {
		t.Fatalf("result %+v, fallback asked %d times", res, asked)
	}
	if len(rec.calls["d2"]) != 1 {
		t.Errorf("a sent delivery does not fall back: %v", rec.calls)
	}
}
