// Package email sends notification emails over SMTP with wneessen/go-mail: STARTTLS or implicit
// TLS per SMTP_USE_TLS, authentication when a username is set, timeouts, multipart text + HTML,
// and a Message-ID chosen by the caller so that it can be recorded before the send. Failures are
// classified: a 5xx reply is permanent, a 4xx reply or a broken connection is transient.
package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/pyairtable/automation-domain/internal/tracing"
)

// Config says how to reach the SMTP server.
type Config struct {
	Host     string
	Port     int
	Username string
	Password string
	// UseTLS asks for implicit TLS on port 465 and for mandatory STARTTLS on any other port;
	// false talks plain SMTP.
	UseTLS  bool
	From    string
	Timeout time.Duration
	// TLSConfig overrides the TLS settings (tests trust their own certificate with it).
	TLSConfig *tls.Config
}

// Message is one email to send.
type Message struct {
	// MessageID is the Message-ID header without angle brackets (see NewMessageID).
	MessageID string
	To        string
	Cc        []string
	Bcc       []string
	ReplyTo   string
	Subject   string
	Text      string
	HTML      string
	// Priority "high" or "low" sets the Importance/X-Priority headers.
	Priority string
	// Headers are added as they are (X-Notification-ID …).
	Headers map[string]string
}

// Sender sends email through one SMTP server.
type Sender struct {
	cfg Config
}

// ErrNotConfigured is returned by every send when no SMTP server is configured.
var ErrNotConfigured = errors.New("the email channel is not configured: set SMTP_HOST (and SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD, SMTP_USE_TLS, SMTP_FROM)")

// New returns a sender for cfg. A zero Host gives a sender whose sends fail with
// ErrNotConfigured.
func New(cfg Config) *Sender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Sender{cfg: cfg}
}

// From is the sender address (SMTP_FROM).
func (s *Sender) From() string { return s.cfg.From }

// Configured reports whether an SMTP server is set.
func (s *Sender) Configured() bool { return s.cfg.Host != "" }

// Error is a failed send: Code is the SMTP reply code (0 when the server never answered) and
// Permanent says that trying again cannot help.
type Error struct {
	Code      int
	Enhanced  string
	Permanent bool
	Err       error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// CodeString is the reply code and enhanced status as one string ("550 5.1.1"), "" when none.
func (e *Error) CodeString() string {
	if e.Code == 0 {
		return ""
	}
	return strings.TrimSpace(fmt.Sprintf("%d %s", e.Code, e.Enhanced))
}

// NewMessageID makes a Message-ID for key (a delivery id) in the domain of the From address.
func NewMessageID(key, from string) string {
	domain := "localhost"
	if a, err := mail.ParseAddress(from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && i < len(a.Address)-1 {
			domain = a.Address[i+1:]
		}
	}
	return key + "@" + domain
}

func (s *Sender) client() (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
	}
	tlsCfg := s.cfg.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}
	}
	switch {
	case !s.cfg.UseTLS:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.NoTLS))
	case s.cfg.Port == 465:
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSConfig(tlsCfg))
	default:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(tlsCfg))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	c, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return nil, &Error{Permanent: true, Err: fmt.Errorf("smtp client for %s: %w", s.cfg.Host, err)}
	}
	return c, nil
}

// build turns m into a go-mail message. Errors here are the message's own fault: permanent.
func (s *Sender) build(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return nil, &Error{Permanent: true, Err: fmt.Errorf("from %q: %w", s.cfg.From, err)}
	}
	if err := msg.To(m.To); err != nil {
		return nil, &Error{Permanent: true, Err: fmt.Errorf("to %q: %w", m.To, err)}
	}
	if len(m.Cc) > 0 {
		if err := msg.Cc(m.Cc...); err != nil {
			return nil, &Error{Permanent: true, Err: fmt.Errorf("cc: %w", err)}
		}
	}
	if len(m.Bcc) > 0 {
		if err := msg.Bcc(m.Bcc...); err != nil {
			return nil, &Error{Permanent: true, Err: fmt.Errorf("bcc: %w", err)}
		}
	}
	if m.ReplyTo != "" {
		if err := msg.ReplyTo(m.ReplyTo); err != nil {
			return nil, &Error{Permanent: true, Err: fmt.Errorf("reply_to: %w", err)}
		}
	}
	msg.Subject(m.Subject)
	if m.MessageID != "" {
		msg.SetMessageIDWithValue(m.MessageID)
	} else {
		msg.SetMessageID()
	}
	msg.SetDate()
	switch m.Priority {
	case "high", "critical":
		msg.SetImportance(gomail.ImportanceHigh)
	case "low":
		msg.SetImportance(gomail.ImportanceLow)
	}
	for k, v := range m.Headers {
		msg.SetGenHeader(gomail.Header(k), v)
	}
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	}
	return msg, nil
}

// Send delivers m in one SMTP session. The error is an *Error telling permanent from transient
// failures, or ErrNotConfigured.
func (s *Sender) Send(ctx context.Context, m Message) (err error) {
	ctx, span := tracing.Start(ctx, "smtp.send", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("server.address", s.cfg.Host), attribute.Int("server.port", s.cfg.Port)))
	defer func() { tracing.End(span, err) }()
	if !s.Configured() {
		return &Error{Permanent: true, Err: ErrNotConfigured}
	}
	msg, err := s.build(m)
	if err != nil {
		return err
	}
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(fmt.Errorf("smtp %s:%d: %w", s.cfg.Host, s.cfg.Port, err))
	}
	return nil
}

// Probe connects, greets, negotiates TLS and authenticates, then quits: what /health/detailed
// reports for the email channel.
func (s *Sender) Probe(ctx context.Context) error {
	if !s.Configured() {
		return ErrNotConfigured
	}
	c, err := s.client()
	if err != nil {
		return err
	}
	if err := c.DialWithContext(ctx); err != nil {
		return fmt.Errorf("smtp %s:%d: %w", s.cfg.Host, s.cfg.Port, err)
	}
	return c.Close()
}

// classify wraps err as an *Error: the server's reply code decides (5xx permanent, 4xx
// transient); a failure without a reply (refused, reset, timed out, TLS) is transient, except
// for a message go-mail could not even address.
func classify(err error) error {
	e := &Error{Err: err}
	var sendErr *gomail.SendError
	var protoErr *textproto.Error
	switch {
	case errors.As(err, &sendErr):
		switch sendErr.Reason {
		case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
			e.Permanent = true
			return e
		}
		e.Code = sendErr.ErrorCode()
		e.Enhanced = sendErr.EnhancedStatusCode()
		if e.Code == 0 && errors.As(err, &protoErr) {
			e.Code = protoErr.Code
		}
	case errors.As(err, &protoErr):
		e.Code = protoErr.Code
	}
	e.Permanent = e.Code >= 500 && e.Code < 600
	return e
}
