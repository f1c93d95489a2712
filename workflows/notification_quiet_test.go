package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/workflows"
)

// quietRun sends an email to a subscriber with quiet hours 22:00–07:00 in Berlin, starting at
// start, and returns when each delivery was sent (test clock) and the holds recorded.
func quietRun(t *testing.T, start time.Time, priority string) (map[string]time.Time, []activities.HoldInput) {
	t.Helper()
	env, _ := newEnv(t)
	env.SetStartTime(start)
	var a *activities.Notifications
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(activities.SlotsResult{}, nil)
	var holds []activities.HoldInput
	env.OnActivity(a.HoldDelivery, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.HoldInput) error {
		holds = append(holds, in)
		return nil
	})
	sent := map[string]time.Time{}
	env.OnActivity(a.DeliverEmail, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		sent[in.DeliveryID] = env.Now().UTC()
		return activities.DeliverResult{Attempt: 1, Provider: "smtp", ProviderMessageID: "m", Recorded: true}, nil
	})
	in := notificationInput("email", nil, "quiet@example.com", "raw@example.com")
	in.Spec.Priority = priority
	in.Spec.Deliveries[0].SubscriberID = "sub-q"
	in.Spec.Deliveries[0].QuietHours = &notify.QuietHours{Start: "22:00", End: "07:00", TimeZone: "Europe/Berlin"}
	env.ExecuteWorkflow(workflows.SendNotification, in)
	var res notify.WorkflowResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != "sent" || res.Sent != 2 {
		t.Fatalf("result %+v", res)
	}
	return sent, holds
}

func TestSendNotificationWaitsForQuietHoursToEnd(t *testing.T) {
	start := time.Date(2026, 3, 10, 22, 30, 0, 0, time.UTC) // 23:30 in Berlin
	sent, holds := quietRun(t, start, "normal")
	end := time.Date(2026, 3, 11, 6, 0, 0, 0, time.UTC) // 07:00 in Berlin
	if !sent["d1"].Equal(end) {
		t.Errorf("the subscriber's email went at %s, want %s", sent["d1"], end)
	}
	if sent["d2"].Sub(start) > time.Minute {
		t.Errorf("an address without quiet hours waited until %s", sent["d2"])
	}
	if len(holds) != 1 || holds[0].DeliveryID != "d1" || !holds[0].Until.Equal(end) || holds[0].Reason != notify.HoldQuietHours {
		t.Errorf("holds %+v", holds)
	}
}

func TestSendNotificationOutsideQuietHoursGoesAtOnce(t *testing.T) {
	start := time.Date(2026, 3, 11, 12, 0, 0, 0, time.UTC)
	sent, holds := quietRun(t, start, "normal")
	if sent["d1"].Sub(start) > time.Minute || len(holds) != 0 {
		t.Errorf("sent at %s, holds %+v", sent["d1"], holds)
	}
}

func TestCriticalNotificationsIgnoreQuietHours(t *testing.T) {
	start := time.Date(2026, 3, 10, 22, 30, 0, 0, time.UTC)
	sent, holds := quietRun(t, start, notify.PriorityCritical)
	if sent["d1"].Sub(start) > time.Minute || len(holds) != 0 {
		t.Errorf("a critical notification waited: sent at %s, holds %+v", sent["d1"], holds)
	}
}
