// Package notify is the notification module's service API: send email and SMS to up to 100
// recipients (rendered from a template or given inline), track each recipient's delivery,
// manage templates, and take provider status callbacks. The HTTP handlers, the workflow engine's
// notification step and automation rules all call it.
//
// A send validates and renders the content, then starts the SendNotification workflow (whose id
// comes from the idempotency key, so a repeated key starts nothing) and stores the notification;
// from then on the send is durable and Temporal delivers it.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/notify/email"
	"github.com/pyairtable/automation-domain/notify/sms"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/wire"
)

// Limits of one send.
const (
	// MaxRecipients bounds to (and, separately, cc + bcc) of one notification.
	MaxRecipients = 100
	// MaxSubject is the longest subject (RFC 5322's line limit).
	MaxSubject = 998
	// MaxScheduleAhead is how far in the future send_at may be.
	MaxScheduleAhead = 366 * 24 * time.Hour
	// MaxMetadata bounds the JSON of a request's metadata.
	MaxMetadata = 16 << 10
)

// Errors callers can test with errors.Is.
var (
	// ErrChannelNotConfigured: the channel has no provider configured (no SMTP_HOST, no Twilio).
	ErrChannelNotConfigured = errors.New("channel not configured")
	// ErrTemplateNotFound: no template (or template version) with that id.
	ErrTemplateNotFound = errors.New("template not found")
	// ErrIdempotencyMismatch: an idempotency key was used again with a different request.
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")
	// ErrInvalidSignature: a provider callback whose signature does not verify.
	ErrInvalidSignature = errors.New("invalid callback signature")
)

// Notification is a notification with its deliveries (and, from Get, their attempts).
type Notification = store.Notification

// Options are the service's dependencies.
type Options struct {
	Config    *config.Config
	Store     *store.Store
	Temporal  client.Client
	Templates *templating.Engine
	Events    *events.Bus
	Log       *slog.Logger
	// Email and SMS are the channels' providers; New builds them from Config when nil.
	Email *email.Sender
	SMS   sms.Provider
	// Now is the clock (tests replace it); nil means time.Now.
	Now func() time.Time
}

// Service is the notification module.
type Service struct {
	cfg       *config.Config
	store     *store.Store
	temporal  client.Client
	templates *templating.Engine
	events    *events.Bus
	log       *slog.Logger
	email     *email.Sender
	sms       sms.Provider
	now       func() time.Time
	// unsubscribeKey signs unsubscribe links.
	unsubscribeKey []byte

	probeMu  sync.Mutex
	probeAt  time.Time
	probeErr error
}

// New builds the service.
func New(o Options) (*Service, error) {
	if o.Config == nil || o.Store == nil || o.Temporal == nil || o.Templates == nil || o.Events == nil {
		return nil, errors.New("notify: Config, Store, Temporal, Templates and Events are required")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Email == nil {
		o.Email = NewEmailSender(o.Config)
	}
	if o.SMS == nil {
		p, err := NewSMSProvider(o.Config)
		if err != nil {
			return nil, err
		}
		o.SMS = p
	}
	return &Service{cfg: o.Config, store: o.Store, temporal: o.Temporal, templates: o.Templates,
		events: o.Events, log: o.Log, email: o.Email, sms: o.SMS, now: o.Now,
		unsubscribeKey: UnsubscribeKey(o.Config.JWTSecretKey)}, nil
}

// NewEmailSender is the SMTP sender configured by SMTP_*.
func NewEmailSender(cfg *config.Config) *email.Sender {
	return email.New(email.Config{
		Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword,
		UseTLS: cfg.SMTPUseTLS, From: cfg.SMTPFrom, Timeout: cfg.SMTPTimeout,
	})
}

// NewSMSProvider is the SMS provider configured by TWILIO_* (sms.Unconfigured without one).
func NewSMSProvider(cfg *config.Config) (sms.Provider, error) {
	if !cfg.SMSConfigured() {
		return sms.Unconfigured{}, nil
	}
	return sms.NewTwilio(sms.TwilioConfig{
		AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken, From: cfg.TwilioFromNumber,
		MessagingServiceSID: cfg.TwilioMessagingServiceSID, APIURL: cfg.TwilioAPIURL,
	})
}

// Channels are the providers the delivery activities send through, with the settings they
// apply (the worker builds activities.Notifications from them).
type Channels struct {
	Email *email.Sender
	SMS   sms.Provider
	// PublicURL is the API's address as providers reach it (status callbacks).
	PublicURL string
	// RecipientLimit sends per RecipientWindow to one recipient of a channel (0: no limit).
	RecipientLimit  int
	RecipientWindow time.Duration
	// UnsubscribeKey signs the unsubscribe links of emails (UnsubscribeKey of the service secret).
	UnsubscribeKey []byte
}

// Channels returns the service's providers and delivery settings.
func (s *Service) Channels() Channels {
	return Channels{Email: s.email, SMS: s.sms, PublicURL: s.cfg.PublicURL,
		RecipientLimit: s.cfg.NotificationRecipientLimit, RecipientWindow: s.cfg.NotificationRecipientWindow,
		UnsubscribeKey: s.unsubscribeKey}
}

// EmailConfigured reports whether an SMTP server is configured.
func (s *Service) EmailConfigured() bool { return s.email.Configured() }

// SMSConfigured reports whether an SMS provider is configured.
func (s *Service) SMSConfigured() bool { _, none := s.sms.(sms.Unconfigured); return !none }

// SMSProviderName names the SMS provider ("twilio", or "none").
func (s *Service) SMSProviderName() string { return s.sms.Name() }

// ProbeEmail connects to the SMTP server (health checks). The answer is kept for
// probeCacheTTL so that frequent readiness probes do not open an SMTP session each.
func (s *Service) ProbeEmail(ctx context.Context) error {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	if !s.probeAt.IsZero() && time.Since(s.probeAt) < probeCacheTTL {
		return s.probeErr
	}
	s.probeErr = s.email.Probe(ctx)
	s.probeAt = time.Now()
	return s.probeErr
}

const probeCacheTTL = 15 * time.Second

// Get returns a notification with every delivery and attempt (store.ErrNotFound if unknown).
func (s *Service) Get(ctx context.Context, id string) (Notification, error) {
	return s.store.GetNotification(ctx, id)
}

// Await blocks until every delivery of notification id has been sent or has failed (its
// SendNotification workflow finished) or ctx ends, and returns the notification then. A
// scheduled notification waits for its send_at; an SMS may still become delivered afterwards.
// Callers inside an activity should heartbeat while they wait.
func (s *Service) Await(ctx context.Context, id string) (Notification, error) {
	n, err := s.store.GetNotification(ctx, id)
	if err != nil {
		return n, err
	}
	var res WorkflowResult
	if err := s.temporal.GetWorkflow(ctx, tenant.WorkflowID(n.TenantID, n.WorkflowID), "").Get(ctx, &res); err != nil && ctx.Err() != nil {
		return n, ctx.Err()
	}
	// A failed or cancelled workflow has recorded its deliveries as failed: read what it left.
	return s.store.GetNotification(ctx, id)
}

// Filter narrows List.
type Filter = store.NotificationFilter

// List returns notifications newest first with their deliveries; next is the cursor of the
// following page ("" on the last).
func (s *Service) List(ctx context.Context, f Filter, p store.Page) (items []Notification, next string, err error) {
	if f.Recipient != "" {
		f.Recipient = recipientKey(f.Recipient)
	}
	return s.store.ListNotifications(ctx, f, p)
}

// submit starts the workflow of spec and stores it; with an idempotency key it returns the
// notification first submitted under that key instead.
func (s *Service) submit(ctx context.Context, spec Spec) (Notification, error) {
	if spec.IdempotencyKey != "" {
		if existing, err := s.store.FindNotificationByIdempotencyKey(ctx, spec.IdempotencyKey); err == nil {
			return replay(existing, spec)
		} else if !errors.Is(err, store.ErrNotFound) {
			return Notification{}, err
		}
	}
	in := WorkflowInput{
		Spec:        spec,
		SendTimeout: 2*s.cfg.SMTPTimeout + 30*time.Second,
		Retry: RetrySettings{
			InitialInterval: s.cfg.NotificationRetryInitialInterval,
			MaximumInterval: s.cfg.NotificationRetryMaxInterval,
			MaximumAttempts: s.cfg.NotificationRetryMaxAttempts,
		},
	}
	opts := client.StartWorkflowOptions{
		ID:        spec.WorkflowID,
		TaskQueue: wire.TaskQueue,
		// One workflow per id, ever: a second start with the same idempotency key — concurrent
		// or long after the first finished — is refused by Temporal, and we answer with the
		// notification the first one created.
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo:                                     map[string]any{"notification_id": spec.ID},
		StaticSummary:                            spec.Channel + " notification " + spec.ID,
	}
	if k := PriorityKey(spec.Priority); k != 0 {
		opts.Priority = temporal.Priority{PriorityKey: k}
	}
	// Every send counts against the tenant's messages_per_day, whoever asks for it (the API, a
	// rule's action); one not started after all is given back.
	reservedAt := s.now()
	if err := s.store.ReserveQuota(ctx, store.QuotaMessagesPerDay, 1, reservedAt); err != nil {
		return Notification{}, err
	}
	_, err := s.temporal.ExecuteWorkflow(ctx, opts, NotificationWorkflow, in)
	if err != nil {
		if rerr := s.store.ReleaseQuota(ctx, store.QuotaMessagesPerDay, 1, reservedAt); rerr != nil {
			s.log.WarnContext(ctx, "give back the messages_per_day unit of a send not started", "error", rerr)
		}
	}
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) && spec.IdempotencyKey != "" {
		return s.existing(ctx, spec)
	}
	if err != nil {
		return Notification{}, fmt.Errorf("start notification workflow: %w", err)
	}
	row := spec.Row()
	if _, err := s.store.InsertNotification(ctx, row); err != nil {
		// The workflow is started and stores the notification itself: the send is accepted.
		s.log.WarnContext(ctx, "store notification; its workflow will", "notification_id", spec.ID, "error", err)
	}
	return *row, nil
}

// existing finds the notification whose workflow holds spec's idempotency key: stored by the
// request that started it, or in a moment by that workflow.
func (s *Service) existing(ctx context.Context, spec Spec) (Notification, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := s.store.FindNotificationByIdempotencyKey(ctx, spec.IdempotencyKey)
		if err == nil {
			return replay(n, spec)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return Notification{}, err
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return Notification{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Not stored yet (its workflow waits for a worker): answer with what Temporal knows.
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, spec.WorkflowID, "")
	if err != nil {
		return Notification{}, fmt.Errorf("describe notification workflow %s: %w", spec.WorkflowID, err)
	}
	var id string
	if f := desc.GetWorkflowExecutionInfo().GetMemo().GetFields()["notification_id"]; f != nil {
		_ = json.Unmarshal(f.GetData(), &id)
	}
	return Notification{ID: id, Channel: spec.Channel, Status: store.StatusQueued, WorkflowID: spec.WorkflowID,
		Replayed: true}, nil
}

func replay(n Notification, spec Spec) (Notification, error) {
	if n.RequestHash != "" && n.RequestHash != spec.RequestHash {
		return Notification{}, fmt.Errorf("notification %s: %w", n.ID, ErrIdempotencyMismatch)
	}
	n.Replayed = true
	return n, nil
}

// workflowID is the SendNotification workflow id of a notification: derived from the
// idempotency key when there is one.
func workflowID(id, key string) string {
	if key != "" {
		return "notification-key-" + key
	}
	return "notification-" + id
}

// hashKey scopes and hashes a caller's idempotency key.
func hashKey(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// requestHash fingerprints a request so that a reused key with another request is refused.
func requestHash(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
