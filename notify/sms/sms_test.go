package sms_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/pyairtable/automation-domain/internal/twiliotest"
	"github.com/pyairtable/automation-domain/notify/sms"
)

func provider(t *testing.T, fake *twiliotest.Server, service string) *sms.Twilio {
	t.Helper()
	p, err := sms.NewTwilio(sms.TwilioConfig{AccountSID: twiliotest.AccountSID, AuthToken: twiliotest.AuthToken,
		From: twiliotest.From, MessagingServiceSID: service, APIURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTwilioSendsThroughTheMessagesAPI(t *testing.T) {
	fake := twiliotest.Start(t)
	p := provider(t, fake, "")
	res, err := p.Send(context.Background(), sms.Message{To: "+14155550100", Body: "code 123456",
		StatusCallback: "https://automation.example.com/api/v1/notifications/providers/twilio/status?delivery_id=d1"})
	if err != nil {
		t.Fatal(err)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || res.MessageID != reqs[0].SID || res.Status != "queued" {
		t.Fatalf("result %+v, requests %+v", res, reqs)
	}
	r := reqs[0]
	if r.To != "+14155550100" || r.From != twiliotest.From || r.Body != "code 123456" ||
		r.StatusCallback != "https://automation.example.com/api/v1/notifications/providers/twilio/status?delivery_id=d1" {
		t.Errorf("request %+v", r)
	}
	svc := provider(t, fake, "MGtest123")
	if _, err := svc.Send(context.Background(), sms.Message{To: "+14155550101", Body: "x"}); err != nil {
		t.Fatal(err)
	}
	if r := fake.Requests()[1]; r.ServiceSID != "MGtest123" || r.From != "" {
		t.Errorf("messaging service request %+v", r)
	}
}

func TestTwilioErrorsAreClassified(t *testing.T) {
	fake := twiliotest.Start(t)
	p := provider(t, fake, "")
	fake.Fail("+15005550001", &twiliotest.Failure{Status: 400, Code: 21211, Message: "The 'To' number is not a valid phone number."})
	fake.Fail("+15005550002", &twiliotest.Failure{Status: 429, Code: 20429, Message: "Too Many Requests"})
	fake.Fail("+15005550003", &twiliotest.Failure{Status: 503, Code: 20503, Message: "Service unavailable"})
	for to, permanent := range map[string]bool{"+15005550001": true, "+15005550002": false, "+15005550003": false} {
		_, err := p.Send(context.Background(), sms.Message{To: to, Body: "x"})
		var e *sms.Error
		if !errors.As(err, &e) || e.Permanent != permanent {
			t.Errorf("%s: %#v, want permanent=%v", to, err, permanent)
		}
	}
	bad, _ := sms.NewTwilio(sms.TwilioConfig{AccountSID: twiliotest.AccountSID, AuthToken: "wrong", From: twiliotest.From, APIURL: fake.URL})
	_, err := bad.Send(context.Background(), sms.Message{To: "+14155550100", Body: "x"})
	var e *sms.Error
	if !errors.As(err, &e) || !e.Permanent || e.Code != 20003 {
		t.Errorf("bad credentials: %#v", err)
	}
	_, err = sms.Unconfigured{}.Send(context.Background(), sms.Message{})
	if !errors.As(err, &e) || !e.Permanent || !errors.Is(err, sms.ErrNotConfigured) {
		t.Errorf("unconfigured: %#v", err)
	}
}

func TestTwilioCallbackSignatures(t *testing.T) {
	p := provider(t, twiliotest.Start(t), "")
	u := "https://automation.example.com/api/v1/notifications/providers/twilio/status?delivery_id=d1"
	form := url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}}
	params := map[string]string{"MessageSid": "SM1", "MessageStatus": "delivered"}
	sig := twiliotest.Sign(twiliotest.AuthToken, u, form)
	if !p.VerifyCallback(u, params, sig) {
		t.Error("a valid signature was refused")
	}
	params["MessageStatus"] = "failed"
	if p.VerifyCallback(u, params, sig) {
		t.Error("a signature over other parameters was accepted")
	}
	if p.VerifyCallback(u, map[string]string{"MessageSid": "SM1", "MessageStatus": "delivered"}, "") {
		t.Error("a missing signature was accepted")
	}
}

func TestOutcomes(t *testing.T) {
	for status, want := range map[string]string{"delivered": "delivered", "undelivered": "failed",
		"failed": "failed", "sent": "sent", "queued": "", "read": "delivered"} {
		if got := sms.TwilioOutcome(status); got != want {
			t.Errorf("TwilioOutcome(%q) = %q, want %q", status, got, want)
		}
	}
}
