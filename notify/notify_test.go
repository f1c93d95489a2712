package notify_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/smtptest"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/internal/teststack"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
	"github.com/pyairtable/automation-domain/workflows"
)

// stack is the notification module with its real parts: a SQLite store, an embedded Temporal
// server, a worker registered as the service's (workflows.RegisterNotifications), and an SMTP
// server.
type stack struct {
	svc   *notify.Service
	store *store.Store
	mail  *smtptest.Server
}

func start(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	mail := smtptest.Start(t)
	mail.SetResponder(func(rcpt string, _ int) error {
		if strings.HasPrefix(rcpt, "nobody@") {
			return smtptest.Permanent()
		}
		return nil
	})
	cfg, err := config.LoadFrom(map[string]string{
		"ENV": "test", "DATA_DIR": dir, "TEMPORAL_PORT": fmt.Sprint(testenv.FreePort(t)), "TEMPORAL_UI_PORT": "0",
		"SMTP_HOST": mail.Host, "SMTP_PORT": fmt.Sprint(mail.Port), "SMTP_USE_TLS": "false",
		"SMTP_FROM":                           "Automation <noreply@example.com>",
		"NOTIFICATION_RETRY_INITIAL_INTERVAL": "100ms", "NOTIFICATION_RETRY_MAX_INTERVAL": "200ms",
		"NOTIFICATION_RETRY_MAX_ATTEMPTS": "2",
	})
	if err != nil {
		t.Fatal(err)
	}
	st := teststack.Store(t)
	tc := teststack.Temporal(t, cfg)
	bus := events.NewBus(st, log)
	svc, err := notify.New(notify.Options{Config: cfg, Store: st, Temporal: tc, Templates: templating.New(templating.Options{}),
		Events: bus, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(tc, workflows.TaskQueue, worker.Options{})
	email := worker.New(tc, notify.EmailTaskQueue, worker.Options{DisableWorkflowWorker: true})
	sms := worker.New(tc, notify.SMSTaskQueue, worker.Options{DisableWorkflowWorker: true})
	workflows.RegisterPlatform(w, &activities.Diagnostics{Store: st}, &activities.Events{Bus: bus})
	workflows.RegisterNotifications(w, email, sms, &activities.Notifications{Store: st, Channels: svc.Channels()})
	for _, x := range []worker.Worker{w, email, sms} {
		if err := x.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(x.Stop)
	}
	return &stack{svc: svc, store: st, mail: mail}
}

// await waits for a notification's outcome (bounded, so a broken stack fails instead of hanging).
func (s *stack) await(t *testing.T, id string) notify.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := s.svc.Await(ctx, id)
	if err != nil {
		t.Fatalf("await %s: %v", id, err)
	}
	return n
}

func TestNotificationService(t *testing.T) {
	s := start(t)
	ctx := context.Background()

	t.Run("an email reaches every recipient and each delivery ends sent or failed", func(t *testing.T) {
		sent, err := s.svc.SendEmail(ctx, notify.EmailRequest{To: []string{"a@example.com", "nobody@example.com"},
			Subject: "Hello", Body: "Hi {{ name }}", TemplateData: map[string]any{"name": "Ada"}, Priority: "high"})
		if err != nil {
			t.Fatal(err)
		}
		if sent.Status != store.StatusQueued || len(sent.Deliveries) != 2 {
			t.Fatalf("queued notification %+v", sent)
		}
		done := s.await(t, sent.ID)
		if done.Status != store.StatusPartiallyFailed {
			t.Fatalf("status %s, want %s: %+v", done.Status, store.StatusPartiallyFailed, done.Deliveries)
		}
		byRecipient := map[string]store.NotificationDelivery{}
		for _, d := range done.Deliveries {
			byRecipient[d.Recipient] = d
		}
		if d := byRecipient["a@example.com"]; d.Status != store.StatusSent {
			t.Errorf("delivery to a@: %+v", d)
		}
		if d := byRecipient["nobody@example.com"]; d.Status != store.StatusFailed || d.Error == "" {
			t.Errorf("delivery to nobody@: %+v", d)
		}
		var got []smtptest.Message
		for _, m := range s.mail.Messages() {
			if len(m.To) == 1 && m.To[0] == "a@example.com" {
				got = append(got, m)
			}
		}
		if len(got) != 1 || got[0].Subject() != "Hello" || !strings.Contains(got[0].Parts["text/plain"], "Hi Ada") {
			t.Errorf("messages to a@: %+v", got)
		}
		// The workflow emitted one event per delivery, with the ids notify.EventID gives.
		for typ, d := range map[string]store.NotificationDelivery{notify.EventSent: byRecipient["a@example.com"],
			notify.EventFailed: byRecipient["nobody@example.com"]} {
			e, err := s.store.GetEvent(ctx, notify.EventID(typ, d.ID))
			if err != nil || e.Type != typ || e.Subject != sent.ID {
				t.Errorf("%s event of %s: %+v %v", typ, d.ID, e, err)
			}
		}
	})

	t.Run("an idempotency key sends once and refuses another request", func(t *testing.T) {
		req := notify.EmailRequest{To: []string{"b@example.com"}, Subject: "Once", Body: "once", IdempotencyKey: "k-1"}
		first, err := s.svc.SendEmail(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.svc.SendEmail(ctx, req)
		if err != nil || again.ID != first.ID || !again.Replayed {
			t.Fatalf("repeated key: %+v %v (first %s)", again, err, first.ID)
		}
		req.Body = "something else"
		if _, err := s.svc.SendEmail(ctx, req); !errors.Is(err, notify.ErrIdempotencyMismatch) {
			t.Fatalf("reused key with another request: %v", err)
		}
		if done := s.await(t, first.ID); done.Status != store.StatusSent {
			t.Errorf("status %s", done.Status)
		}
		if n := s.mail.RcptCount("b@example.com"); n != 1 {
			t.Errorf("b@ got %d messages", n)
		}
	})

	t.Run("bad requests are refused with every problem, unconfigured channels by name", func(t *testing.T) {
		_, err := s.svc.SendEmail(ctx, notify.EmailRequest{To: []string{"not an address"}, Priority: "urgent"})
		var problems validation.Problems
		if !errors.As(err, &problems) {
			t.Fatalf("invalid email: %v", err)
		}
		fields := map[string]bool{}
		for _, p := range problems {
			fields[p.Field] = true
		}
		if !fields["priority"] || len(problems) < 2 {
			t.Errorf("problems %v", problems)
		}
		_, err = s.svc.SendSMS(ctx, notify.SMSRequest{To: []string{"+14155550100"}, Message: "hi"})
		if !errors.Is(err, notify.ErrChannelNotConfigured) {
			t.Errorf("SMS without a provider: %v", err)
		}
		_, err = s.svc.SendSMS(ctx, notify.SMSRequest{To: []string{"+12345"}, Message: "hi"})
		if !errors.As(err, &problems) && !errors.Is(err, notify.ErrChannelNotConfigured) {
			t.Errorf("SMS to a number too short: %v", err)
		}
	})
}
