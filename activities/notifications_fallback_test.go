package activities_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/internal/twiliotest"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/notify/email"
	"github.com/pyairtable/automation-domain/notify/sms"
	"github.com/pyairtable/automation-domain/store"
)

func TestFallbackSendsTheEmailAsAnSMSToTheSubscriber(t *testing.T) {
	ctx := context.Background()
	fake := twiliotest.Start(t)
	p, err := sms.NewTwilio(sms.TwilioConfig{AccountSID: twiliotest.AccountSID, AuthToken: twiliotest.AuthToken,
		From: twiliotest.From, APIURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	a := &activities.Notifications{Store: st, Channels: notify.Channels{SMS: p, Email: email.New(email.Config{}),
		RecipientLimit: 10, RecipientWindow: time.Hour}}
	now := time.Now().UTC()
	withPhone := &store.Subscriber{ID: store.NewID(), ExternalID: "ada", Email: "ada@example.com", Phone: "+14155550100",
		Data: store.MustJSON(map[string]any{}), CreatedAt: now, UpdatedAt: now}
	noPhone := &store.Subscriber{ID: store.NewID(), ExternalID: "bob", Email: "bob@example.com",
		Data: store.MustJSON(map[string]any{}), CreatedAt: now, UpdatedAt: now}
	for _, s := range []*store.Subscriber{withPhone, noPhone} {
		if err := st.CreateSubscriber(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	spec := notify.Spec{ID: store.NewID(), Channel: "email", Subject: "Your order", Body: "has shipped",
		Priority: "normal", WorkflowID: "wf", CreatedAt: now, Channels: []string{"email", "sms"},
		Deliveries: []notify.DeliverySpec{
			{ID: store.NewID(), Recipient: withPhone.Email, RecipientKey: withPhone.Email, SubscriberID: withPhone.ID},
			{ID: store.NewID(), Recipient: noPhone.Email, RecipientKey: noPhone.Email, SubscriberID: noPhone.ID},
		}}
	if _, err := a.Prepare(ctx, activities.PrepareInput{Spec: spec}); err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)

	val, err := env.ExecuteActivity(a.Fallback, activities.FallbackInput{DeliveryID: spec.Deliveries[0].ID, Channel: "sms"})
	if err != nil {
		t.Fatal(err)
	}
	var next activities.FallbackResult
	_ = val.Get(&next)
	if next.Delivery.ID == "" || next.Delivery.Recipient != "+14155550100" || next.Delivery.SubscriberID != withPhone.ID {
		t.Fatalf("fallback %+v", next)
	}
	val, err = env.ExecuteActivity(a.Fallback, activities.FallbackInput{DeliveryID: spec.Deliveries[0].ID, Channel: "sms"})
	if err != nil {
		t.Fatal(err)
	}
	var again activities.FallbackResult
	_ = val.Get(&again)
	if again.Delivery.ID != next.Delivery.ID {
		t.Errorf("a retried fallback makes a second delivery: %+v", again)
	}
	val, err = env.ExecuteActivity(a.Fallback, activities.FallbackInput{DeliveryID: spec.Deliveries[1].ID, Channel: "sms"})
	if err != nil {
		t.Fatal(err)
	}
	var none activities.FallbackResult
	_ = val.Get(&none)
	if none.Delivery.ID != "" || none.Reason != "the subscriber has no sms address" {
		t.Errorf("no phone: %+v", none)
	}

	if _, err := env.ExecuteActivity(a.DeliverSMS, activities.DeliverInput{DeliveryID: next.Delivery.ID}); err != nil {
		t.Fatal(err)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].To != "+14155550100" || reqs[0].Body != "Your order\n\nhas shipped" {
		t.Fatalf("requests %+v", reqs)
	}
	n, err := st.GetNotification(ctx, spec.ID)
	if err != nil || len(n.Deliveries) != 3 || n.Deliveries[2].Channel != "sms" || n.Deliveries[2].Status != store.StatusSent ||
		n.Deliveries[2].FallbackOf != spec.Deliveries[0].ID || n.Deliveries[0].FallbackID != next.Delivery.ID {
		t.Fatalf("notification %+v %v", n, err)
	}
}
