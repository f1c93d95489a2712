package activities_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/notify/email"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
)

// TestDigestActivities: joining skips an opted-out subscriber and holds the others; closing
// composes the message with the digest's template, stores it once however often it runs, and a
// digest whose subscriber was deleted fails what it held.
func TestDigestActivities(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	a := &activities.Notifications{Store: st, Channels: notify.Channels{Email: email.New(email.Config{})},
		Templates: templating.New(templating.Options{})}
	now := time.Now().UTC()
	subscriber := func(ext string) *store.Subscriber {
		s := &store.Subscriber{ID: store.NewID(), ExternalID: ext, Email: ext + "@example.com",
			Data: store.MustJSON(map[string]any{}), CreatedAt: now, UpdatedAt: now}
		if err := st.CreateSubscriber(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	ada, bob, gone := subscriber("ada"), subscriber("bob"), subscriber("gone")
	if err := st.SetPreference(ctx, &store.SubscriberPreference{SubscriberID: bob.ID, Channel: "", Category: "news",
		Enabled: false, Source: "api", UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateNotificationTemplate(ctx, &store.NotificationTemplate{ID: "news_digest", Channel: "email", CreatedAt: now, UpdatedAt: now},
		&store.NotificationTemplateVersion{Subject: "{{ count }} news", Body: "{% for it in items %}[{{ it.subject }}]{% endfor %}", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	rule := notify.DigestRule{WindowSeconds: 3600, TemplateID: "news_digest"}
	held := func(sub *store.Subscriber, subject string) notify.Spec {
		spec := notify.Spec{ID: store.NewID(), Channel: "email", Subject: subject, Body: "b", Category: "news",
			Priority: "normal", WorkflowID: "wf", CreatedAt: now,
			Deliveries: []notify.DeliverySpec{{ID: store.NewID(), Recipient: sub.Email, RecipientKey: sub.Email,
				SubscriberID: sub.ID, Digest: &rule}}}
		if _, err := a.Prepare(ctx, activities.PrepareInput{Spec: spec}); err != nil {
			t.Fatal(err)
		}
		return spec
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	join := func(spec notify.Spec) activities.JoinDigestResult {
		t.Helper()
		val, err := env.ExecuteActivity(a.JoinDigest, activities.JoinDigestInput{DeliveryID: spec.Deliveries[0].ID, Rule: rule})
		if err != nil {
			t.Fatal(err)
		}
		var j activities.JoinDigestResult
		_ = val.Get(&j)
		return j
	}
	closeDigest := func(id string) activities.CloseDigestResult {
		t.Helper()
		val, err := env.ExecuteActivity(a.CloseDigest, activities.CloseDigestInput{DigestID: id})
		if err != nil {
			t.Fatal(err)
		}
		var c activities.CloseDigestResult
		_ = val.Get(&c)
		return c
	}

	first, second := held(ada, "One"), held(ada, "Two")
	j1, j2 := join(first), join(second)
	if !j1.Leader || j2.Leader || j1.DigestID != j2.DigestID || j1.ClosesAt.Sub(now) < 59*time.Minute {
		t.Fatalf("joins %+v %+v", j1, j2)
	}
	if j := join(held(bob, "Opted out")); !j.Skipped || j.SkipCode != store.SkipOptedOut || j.DigestID != "" {
		t.Errorf("opted-out subscriber: %+v", j)
	}

	c := closeDigest(j1.DigestID)
	if c.Spec.ID == "" || c.Spec.Subject != "2 news" || c.Spec.Body != "[One][Two]" || c.Spec.TemplateID != "news_digest" ||
		len(c.Spec.Deliveries) != 1 || c.Spec.Deliveries[0].Recipient != ada.Email || c.Spec.Deliveries[0].Digest != nil ||
		c.WorkflowID != c.Spec.WorkflowID {
		t.Fatalf("closed: %+v", c)
	}
	again := closeDigest(j1.DigestID)
	if again.Spec.ID != c.Spec.ID || again.Spec.Deliveries[0].ID != c.Spec.Deliveries[0].ID || again.Spec.Body != c.Spec.Body {
		t.Errorf("closing again composed another message: %+v", again)
	}
	n, err := st.GetNotification(ctx, c.Spec.ID)
	if err != nil || n.Status != store.StatusQueued || len(n.Deliveries) != 1 || n.Category != "news" {
		t.Errorf("stored digest: %+v %v", n, err)
	}
	if got, _ := st.GetNotification(ctx, first.ID); got.Deliveries[0].DigestNotificationID != c.Spec.ID {
		t.Errorf("held delivery points at %q", got.Deliveries[0].DigestNotificationID)
	}

	lost := held(gone, "Lost")
	jl := join(lost)
	if err := st.DeleteSubscriber(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if c := closeDigest(jl.DigestID); c.Spec.ID != "" || !strings.Contains(c.Reason, "deleted") {
		t.Errorf("deleted subscriber: %+v", c)
	}
	if got, _ := st.GetNotification(ctx, lost.ID); got.Status != store.StatusFailed || !strings.Contains(got.Deliveries[0].Error, "deleted") {
		t.Errorf("held for a deleted subscriber: %+v", got)
	}
}
