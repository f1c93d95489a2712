package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"go.opentelemetry.io/otel/trace"

	"github.com/pyairtable/automation-domain/internal/tracing"
)

// TwilioConfig holds the account and sender.
type TwilioConfig struct {
	AccountSID string
	AuthToken  string
	// From is an E.164 number; MessagingServiceSID, when set, is used instead.
	From                string
	MessagingServiceSID string
	// APIURL replaces https://api.twilio.com (twilio-go hard-codes it; a mock in development
	// and tests).
	APIURL  string
	Timeout time.Duration
	// Transport, when set, carries the HTTP requests (tests); APIURL still applies.
	Transport http.RoundTripper
}

// Twilio sends SMS through Twilio's Messages API.
type Twilio struct {
	cfg       TwilioConfig
	rest      *twilio.RestClient
	validator twclient.RequestValidator
}

// NewTwilio returns a Twilio provider.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	transport := cfg.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	if cfg.APIURL != "" {
		base, err := url.Parse(cfg.APIURL)
		if err != nil || base.Host == "" {
			return nil, fmt.Errorf("twilio api url %q: not an absolute URL", cfg.APIURL)
		}
		transport = rebase{base: base, next: transport}
	}
	hc := &http.Client{
		Timeout:   cfg.Timeout,
		Transport: transport,
		// Twilio's client follows no redirects either.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c := &twclient.Client{Credentials: twclient.NewCredentials(cfg.AccountSID, cfg.AuthToken), HTTPClient: hc}
	c.SetAccountSid(cfg.AccountSID)
	return &Twilio{
		cfg:       cfg,
		rest:      twilio.NewRestClientWithParams(twilio.ClientParams{Client: c}),
		validator: twclient.NewRequestValidator(cfg.AuthToken),
	}, nil
}

// Name implements Provider.
func (t *Twilio) Name() string { return "twilio" }

// Send implements Provider.
func (t *Twilio) Send(ctx context.Context, m Message) (res Result, err error) {
	_, span := tracing.Start(ctx, "twilio.messages.create", trace.WithSpanKind(trace.SpanKindClient))
	defer func() { tracing.End(span, err) }()
	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To).SetBody(m.Body)
	if t.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(t.cfg.MessagingServiceSID)
	} else {
		params.SetFrom(t.cfg.From)
	}
	if m.StatusCallback != "" {
		params.SetStatusCallback(m.StatusCallback)
	}
	// twilio-go takes no context; the HTTP client's timeout bounds the call. It is not abandoned
	// when ctx ends: Twilio may accept a request we stopped waiting for, and a retry would then
	// send the message twice.
	msg, err := t.rest.Api.CreateMessage(params)
	if err != nil {
		return Result{}, twilioError(err)
	}
	res = Result{}
	if msg.Sid != nil {
		res.MessageID = *msg.Sid
	}
	if msg.Status != nil {
		res.Status = *msg.Status
	}
	if res.MessageID == "" {
		return Result{}, &Error{Provider: "twilio", Message: "Twilio accepted the message but returned no SID"}
	}
	return res, nil
}

// VerifyCallback checks a status callback's X-Twilio-Signature: fullURL is the URL Twilio
// posted to (as given in StatusCallback), params the form fields.
func (t *Twilio) VerifyCallback(fullURL string, params map[string]string, signature string) bool {
	if signature == "" {
		return false
	}
	return t.validator.Validate(fullURL, params, signature)
}

// permanentCodes are Twilio error codes that no retry can fix: bad or unreachable numbers,
// opted-out recipients, bodies Twilio refuses, senders the account may not use, credentials.
var permanentCodes = map[int]string{
	20003: "authentication failed",
	20404: "resource not found",
	21211: "invalid 'To' phone number",
	21212: "invalid 'From' phone number",
	21214: "'To' phone number cannot be reached",
	21217: "phone number does not appear to be valid",
	21401: "invalid phone number",
	21407: "this phone number type does not support SMS",
	21408: "permission to send to this region is not enabled",
	21421: "phone number is invalid",
	21602: "message body is required",
	21604: "'To' phone number is required",
	21606: "'From' number is not a message-capable Twilio number",
	21608: "trial accounts may only send to verified numbers",
	21610: "recipient has unsubscribed (replied STOP)",
	21612: "'To' number is not reachable by SMS",
	21614: "'To' number is not a mobile number",
	21617: "message body exceeds 1600 characters",
	21660: "'From' number does not belong to the account",
}

// twilioError classifies a twilio-go error: a permanent code, or any 4xx reply other than 429,
// is permanent; 429, 5xx and transport failures are transient.
func twilioError(err error) *Error {
	var rest *twclient.TwilioRestError
	if errors.As(err, &rest) {
		e := &Error{Provider: "twilio", Code: rest.Code, Status: rest.Status, Message: rest.Message, Err: err}
		_, permanent := permanentCodes[rest.Code]
		e.Permanent = permanent || (rest.Status >= 400 && rest.Status < 500 && rest.Status != http.StatusTooManyRequests)
		return e
	}
	return &Error{Provider: "twilio", Message: err.Error(), Err: err}
}

// TwilioOutcome maps a Twilio MessageStatus onto a delivery status: delivered (or read),
// undelivered, failed (or canceled) and sent are reported; others ("queued", "sending",
// "accepted") are recorded but change nothing ("").
func TwilioOutcome(status string) string {
	switch status {
	case "delivered", "read":
		return "delivered"
	case "undelivered", "failed", "canceled":
		return "failed"
	case "sent":
		return "sent"
	}
	return ""
}

// TwilioErrorText explains a Twilio error code in a status callback ("" when unknown).
func TwilioErrorText(code int) string {
	if s, ok := permanentCodes[code]; ok {
		return s
	}
	switch code {
	case 30001:
		return "queue overflow"
	case 30002:
		return "account suspended"
	case 30003:
		return "unreachable destination handset"
	case 30004:
		return "message blocked"
	case 30005:
		return "unknown destination handset"
	case 30006:
		return "landline or unreachable carrier"
	case 30007:
		return "carrier violation (filtered)"
	case 30008:
		return "unknown error"
	}
	return ""
}

// rebase sends requests for Twilio's API to another base URL.
type rebase struct {
	base *url.URL
	next http.RoundTripper
}

func (r rebase) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Scheme = r.base.Scheme
	out.URL.Host = r.base.Host
	out.URL.Path = strings.TrimRight(r.base.Path, "/") + req.URL.Path
	out.Host = r.base.Host
	return r.next.RoundTrip(out)
}
