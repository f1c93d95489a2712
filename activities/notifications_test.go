package activities_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/internal/smtptest"
	"github.com/pyairtable/automation-domain/internal/twiliotest"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/notify/email"
	"github.com/pyairtable/automation-domain/notify/sms"
	"github.com/pyairtable/automation-domain/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return st
}

func prepared(t *testing.T, a *activities.Notifications, channel string, recipients ...string) notify.Spec {
	t.Helper()
	spec := notify.Spec{ID: store.NewID(), Channel: channel, Subject: "Hello", Body: "Body text",
		Priority: "normal", WorkflowID: "wf", CreatedAt: time.Now().UTC()}
	for _, r := range recipients {
		spec.Deliveries = append(spec.Deliveries, notify.DeliverySpec{ID: store.NewID(), Recipient: r, RecipientKey: r})
	}
	if _, err := a.Prepare(context.Background(), activities.PrepareInput{Spec: spec, Reserve: true}); err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestDeliverEmailNeverSendsTwice(t *testing.T) {
	mail := smtptest.Start(t)
	mail.SetResponder(func(rcpt string, _ int) error {
		if strings.HasPrefix(rcpt, "nobody@") {
			return smtptest.Permanent()
		}
		return nil
	})
	a := &activities.Notifications{Store: openStore(t), Channels: notify.Channels{SMS: sms.Unconfigured{},
		Email:          email.New(email.Config{Host: mail.Host, Port: mail.Port, From: "noreply@example.com", Timeout: 5 * time.Second}),
		RecipientLimit: 10, RecipientWindow: time.Minute}}
	spec := prepared(t, a, "email", "ada@example.com", "nobody@example.com")
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)

	val, err := env.ExecuteActivity(a.DeliverEmail, activities.DeliverInput{DeliveryID: spec.Deliveries[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	var res activities.DeliverResult
	_ = val.Get(&res)
	if !res.Recorded || res.AlreadySent || res.ProviderMessageID != spec.Deliveries[0].ID+"@example.com" {
		t.Errorf("first send: %+v", res)
	}
	// A retry of an activity that had sent (its completion lost) sends nothing.
	val, err = env.ExecuteActivity(a.DeliverEmail, activities.DeliverInput{DeliveryID: spec.Deliveries[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	_ = val.Get(&res)
	if !res.AlreadySent || res.ProviderMessageID != spec.Deliveries[0].ID+"@example.com" {
		t.Errorf("retry: %+v", res)
	}
	if n := len(mail.Messages()); n != 1 {
		t.Errorf("%d messages at the SMTP server, want 1", n)
	}

	// A 550 is a non-retryable failure carrying the reply code.
	_, err = env.ExecuteActivity(a.DeliverEmail, activities.DeliverInput{DeliveryID: spec.Deliveries[1].ID})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Type() != activities.ErrTypePermanent {
		t.Fatalf("550: %v", err)
	}
	var code string
	_ = appErr.Details(&code)
	if code != "550 5.1.1" {
		t.Errorf("code %q", code)
	}
	n, _ := a.Store.GetNotification(context.Background(), spec.ID)
	if d := n.Deliveries[1]; d.Status != "sending" || len(d.Attempts) != 1 || d.Attempts[0].Status != "failed" || d.Attempts[0].Retryable {
		t.Errorf("failed attempt recorded as %+v", d)
	}
}

func TestDeliverSMSAsksForStatusCallbacks(t *testing.T) {
	fake := twiliotest.Start(t)
	p, err := sms.NewTwilio(sms.TwilioConfig{AccountSID: twiliotest.AccountSID, AuthToken: twiliotest.AuthToken,
		From: twiliotest.From, APIURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	a := &activities.Notifications{Store: openStore(t), Channels: notify.Channels{SMS: p, Email: email.New(email.Config{}),
		PublicURL: "https://automation.example.com", RecipientLimit: 1, RecipientWindow: time.Hour}}
	spec := prepared(t, a, "sms", "+14155550100")
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(a.DeliverSMS, activities.DeliverInput{DeliveryID: spec.Deliveries[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	var res activities.DeliverResult
	_ = val.Get(&res)
	reqs := fake.Requests()
	if len(reqs) != 1 || res.ProviderMessageID != reqs[0].SID || res.Provider != "twilio" ||
		reqs[0].StatusCallback != "https://automation.example.com/api/v1/notifications/providers/twilio/status?delivery_id="+spec.Deliveries[0].ID {
		t.Fatalf("result %+v, requests %+v", res, reqs)
	}
	// A second SMS to the same number within the hour is held back (limit 1), not sent.
	other := prepared(t, a, "sms", "+14155550100")
	val, err = env.ExecuteActivity(a.DeliverSMS, activities.DeliverInput{DeliveryID: other.Deliveries[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	_ = val.Get(&res)
	if res.ThrottledFor <= 50*time.Minute || len(fake.Requests()) != 1 {
		t.Errorf("throttled: %+v, %d requests", res, len(fake.Requests()))
	}
}
