package email_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/internal/smtptest"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/notify/email"
)

func sender(srv *smtptest.Server) *email.Sender {
	return email.New(email.Config{Host: srv.Host, Port: srv.Port, From: "Automation <noreply@example.com>",
		Timeout: 5 * time.Second})
}

func TestSendMultipartWithHeaders(t *testing.T) {
	srv := smtptest.Start(t)
	id := email.NewMessageID("d-123", "Automation <noreply@example.com>")
	if id != "d-123@example.com" {
		t.Fatalf("message id %q", id)
	}
	err := sender(srv).Send(context.Background(), email.Message{
		MessageID: id, To: "ada@example.com", Cc: []string{"cc@example.com"}, Bcc: []string{"bcc@example.com"},
		ReplyTo: "support@example.com", Subject: "Grüße, Ada", Text: "Hello Ada", HTML: "<p>Hello <b>Ada</b></p>",
		Priority: "high", Headers: map[string]string{"X-Notification-ID": "n-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := srv.WaitFor(t, 1, 5*time.Second)
	m := msgs[0]
	if strings.Join(m.To, ",") != "ada@example.com,cc@example.com,bcc@example.com" {
		t.Errorf("envelope recipients %v", m.To)
	}
	if m.Header.Get("Message-ID") != "<d-123@example.com>" || m.Subject() != "Grüße, Ada" {
		t.Errorf("headers %v", m.Header)
	}
	if m.Header.Get("Cc") != "<cc@example.com>" || m.Header.Get("Bcc") != "" || m.Header.Get("Reply-To") != "<support@example.com>" {
		t.Errorf("cc/bcc/reply-to headers %v", m.Header)
	}
	if m.Header.Get("X-Notification-ID") != "n-1" || m.Header.Get("Importance") != "high" {
		t.Errorf("custom headers %v", m.Header)
	}
	if m.Parts["text/plain"] != "Hello Ada" || m.Parts["text/html"] != "<p>Hello <b>Ada</b></p>" {
		t.Errorf("parts %q", m.Parts)
	}
}

func TestFailuresAreClassified(t *testing.T) {
	srv := smtptest.Start(t)
	srv.SetResponder(func(rcpt string, n int) error {
		switch {
		case strings.HasPrefix(rcpt, "grey"):
			return smtptest.Temporary()
		case strings.HasPrefix(rcpt, "nobody"):
			return smtptest.Permanent()
		}
		return nil
	})
	s := sender(srv)
	ctx := context.Background()
	var e *email.Error

	err := s.Send(ctx, email.Message{To: "grey@example.com", Subject: "s", Text: "t"})
	if !errors.As(err, &e) || e.Permanent || e.Code != 451 {
		t.Errorf("451: %#v", err)
	}
	err = s.Send(ctx, email.Message{To: "nobody@example.com", Subject: "s", Text: "t"})
	if !errors.As(err, &e) || !e.Permanent || e.Code != 550 || e.CodeString() != "550 5.1.1" {
		t.Errorf("550: %#v %q", err, e.CodeString())
	}
	closed := email.New(email.Config{Host: "127.0.0.1", Port: testenv.FreePort(t), From: "a@example.com", Timeout: time.Second})
	err = closed.Send(ctx, email.Message{To: "a@example.com", Text: "t"})
	if !errors.As(err, &e) || e.Permanent {
		t.Errorf("connection refused should be transient: %#v", err)
	}
	if err := closed.Probe(ctx); err == nil {
		t.Error("probe of a closed port succeeded")
	}
	none := email.New(email.Config{})
	err = none.Send(ctx, email.Message{To: "a@example.com", Text: "t"})
	if !errors.As(err, &e) || !e.Permanent || !errors.Is(err, email.ErrNotConfigured) {
		t.Errorf("not configured: %#v", err)
	}
	if len(srv.Messages()) != 0 {
		t.Errorf("refused messages were recorded: %d", len(srv.Messages()))
	}
}

func TestStartTLSAndAuth(t *testing.T) {
	srv := smtptest.StartWith(t, smtptest.Options{TLS: true, Username: "mailer", Password: "s3cret"})
	cfg := email.Config{Host: srv.Host, Port: srv.Port, From: "noreply@example.com", UseTLS: true,
		Username: "mailer", Password: "s3cret", Timeout: 5 * time.Second, TLSConfig: srv.ClientTLS()}
	if err := email.New(cfg).Probe(context.Background()); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if err := email.New(cfg).Send(context.Background(), email.Message{To: "a@example.com", Subject: "tls", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	srv.WaitFor(t, 1, 5*time.Second)

	cfg.Password = "wrong"
	var e *email.Error
	err := email.New(cfg).Send(context.Background(), email.Message{To: "a@example.com", Text: "t"})
	if !errors.As(err, &e) || !e.Permanent || e.Code != 535 {
		t.Errorf("bad password: %#v", err)
	}
	// TLS is mandatory when asked for: a server without STARTTLS is refused.
	plain := smtptest.Start(t)
	err = email.New(email.Config{Host: plain.Host, Port: plain.Port, From: "a@example.com", UseTLS: true,
		Timeout: 5 * time.Second}).Send(context.Background(), email.Message{To: "a@example.com", Text: "t"})
	if err == nil || len(plain.Messages()) != 0 {
		t.Errorf("sent without TLS: %v", err)
	}
}
