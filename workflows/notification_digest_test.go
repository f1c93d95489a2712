package workflows_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/workflows"
)

// digestRun sends one email to a subscriber in a digested category (window 1 h) whose join
// answers join, cancelling the workflow after cancelAfter when it is positive, and reports when
// the digest was closed and what was sent when (test clock).
type digestRun struct {
	res      notify.WorkflowResult
	closedAt time.Time
	sent     map[string]time.Time
	events   []string
}

func runDigest(t *testing.T, join activities.JoinDigestResult, cancelAfter time.Duration) digestRun {
	t.Helper()
	env, rec := newEnv(t)
	start := time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	var a *activities.Notifications
	var mu sync.Mutex
	out := digestRun{sent: map[string]time.Time{}}
	env.OnActivity(a.Prepare, mock.Anything, mock.Anything).Return(activities.SlotsResult{}, nil)
	env.OnActivity(a.JoinDigest, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.JoinDigestInput) (activities.JoinDigestResult, error) {
		if in.DeliveryID != "d1" || in.Rule.WindowSeconds != 3600 {
			t.Errorf("join %+v", in)
		}
		j := join
		if j.ClosesAt.IsZero() && !j.Skipped {
			j.ClosesAt = start.Add(time.Hour)
		}
		return j, nil
	})
	digest := notificationInput("email", nil, "ada@example.com").Spec
	digest.ID, digest.WorkflowID, digest.Deliveries[0].ID = "ndigest", "notification-ndigest", "ddigest"
	env.OnActivity(a.CloseDigest, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.CloseDigestInput) (activities.CloseDigestResult, error) {
		mu.Lock()
		defer mu.Unlock()
		out.closedAt = env.Now().UTC()
		return activities.CloseDigestResult{Spec: digest, WorkflowID: digest.WorkflowID}, nil
	})
	env.OnActivity(a.DeliverEmail, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeliverInput) (activities.DeliverResult, error) {
		mu.Lock()
		defer mu.Unlock()
		out.sent[in.DeliveryID] = env.Now().UTC()
		return activities.DeliverResult{Attempt: 1, Provider: "smtp", ProviderMessageID: "m", Recorded: true}, nil
	})
	if cancelAfter > 0 {
		env.RegisterDelayedCallback(env.CancelWorkflow, cancelAfter)
	}
	in := notificationInput("email", nil, "ada@example.com")
	in.Spec.Category = "news"
	in.Spec.Deliveries[0].SubscriberID = "sub-1"
	in.Spec.Deliveries[0].Digest = &notify.DigestRule{WindowSeconds: 3600}
	env.ExecuteWorkflow(workflows.SendNotification, in)
	if err := env.GetWorkflowResult(&out.res); err != nil {
		t.Fatal(err)
	}
	for _, e := range rec.events {
		out.events = append(out.events, e.Type)
	}
	return out
}

// The delivery that opens a window waits for it on a durable timer, closes it and starts the
// digest's own SendNotification, which sends it; it is never sent on its own.
func TestDigestLeaderSendsTheDigestWhenTheWindowCloses(t *testing.T) {
	r := runDigest(t, activities.JoinDigestResult{DigestID: "g1", Leader: true}, 0)
	if r.res.Status != "digested" || r.res.Digested != 1 || r.res.Sent != 0 || r.res.Failed != 0 {
		t.Errorf("result %+v", r.res)
	}
	want := time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)
	if !r.closedAt.Equal(want) {
		t.Errorf("closed at %s, want %s", r.closedAt, want)
	}
	if _, ok := r.sent["d1"]; ok {
		t.Errorf("the held delivery was sent on its own")
	}
	if at, ok := r.sent["ddigest"]; !ok || at.Before(want) {
		t.Errorf("digest sent at %s (%v), want after %s", at, ok, want)
	}
}

// Other deliveries of an open window end at once, digested: no timer, no close, no send.
func TestDigestFollowerEndsDigested(t *testing.T) {
	r := runDigest(t, activities.JoinDigestResult{DigestID: "g1"}, 0)
	if r.res.Status != "digested" || r.res.Digested != 1 || !r.closedAt.IsZero() || len(r.sent) != 0 {
		t.Errorf("result %+v, closed at %s, sent %v", r.res, r.closedAt, r.sent)
	}
}

// A delivery that the join found suppressed or opted out is skipped with the reason and its event.
func TestDigestJoinSkipsAnOptedOutSubscriber(t *testing.T) {
	r := runDigest(t, activities.JoinDigestResult{Skipped: true, SkipReason: "the subscriber opted out of news", SkipCode: "opted_out"}, 0)
	if r.res.Status != "skipped" || r.res.Skipped != 1 || len(r.sent) != 0 {
		t.Errorf("result %+v, sent %v", r.res, r.sent)
	}
	if len(r.events) != 1 || r.events[0] != notify.EventSkipped {
		t.Errorf("events %v", r.events)
	}
}

// A leader cancelled while it waits sends the digest at once rather than lose the window.
func TestDigestLeaderCancelledSendsAtOnce(t *testing.T) {
	r := runDigest(t, activities.JoinDigestResult{DigestID: "g1", Leader: true}, 10*time.Minute)
	want := time.Date(2026, 3, 10, 10, 10, 0, 0, time.UTC)
	if !r.closedAt.Equal(want) {
		t.Errorf("closed at %s, want %s (when cancelled)", r.closedAt, want)
	}
	if _, ok := r.sent["ddigest"]; !ok {
		t.Errorf("the digest was not sent after the cancel: %v", r.sent)
	}
}
