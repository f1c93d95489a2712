// Package webhooks is the webhook module: endpoints that receive signed (Standard Webhooks v1)
// deliveries of messages, the fan-out of messages and domain events to them, and inbound
// webhooks verified and recorded as events.
//
// Delivery is built to keep going through worker changes and to cost Temporal little per
// message. A message is stored with one pending delivery row per matching endpoint (the
// deliveries table is the queue). Each endpoint has a dispatcher workflow
// (workflows.WebhookDispatcher, one per endpoint, started and woken with SignalWithStart) whose
// work is done by sender sessions: heartbeating activities on SenderTaskQueue that hold the
// endpoint with a lease in the database (Senders), send its due deliveries in batches, record
// every attempt (as started before the request goes out), keep the circuit breaker's state on
// the endpoint's row and wait for more. While a session holds the endpoint, a new message costs
// Temporal nothing: the session is told through Postgres NOTIFY (or directly, in the embedded
// mode); only an endpoint without a session gets a signal. A worker that dies lets go within
// seconds (heartbeat timeout and lease), one that stops hands its sessions over at once, and
// far retries and open circuits wait on the workflow's durable timers instead of a session.
// Endpoints never share a session, so a slow or failing one delays no other.
//
// Other domains call Service.Deliver (the workflow engine's webhook step, automation rules'
// webhook action); domain events reach it through the events bus (Service.Subscriber).
package webhooks

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/catalog"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/store"
)

// MaxPayloadBytes caps a message's payload (413 above it).
const MaxPayloadBytes = 256 << 10

// ErrPayloadTooLarge is returned for a payload over MaxPayloadBytes.
var ErrPayloadTooLarge = fmt.Errorf("the payload exceeds %d bytes", MaxPayloadBytes)

// Settings are the service-wide delivery defaults (endpoints may override some of them).
type Settings struct {
	// RetrySchedule are the delays before each retry.
	RetrySchedule []time.Duration
	// Timeout bounds one request.
	Timeout time.Duration
	// DisableAfter disables an endpoint whose every attempt failed for this long.
	DisableAfter time.Duration
	// DisableAfterFailures disables an endpoint after this many deliveries in a row failed for
	// good (0: never on count alone).
	DisableAfterFailures int
	// CircuitThreshold failed attempts in a row open an endpoint's circuit: nothing is sent for
	// CircuitCooldown (doubling while probes fail, up to MaxCircuitCooldown), then one probe
	// (0: no circuit breaker).
	CircuitThreshold int
	CircuitCooldown  time.Duration
	// RotationGrace is how long a rotated-out secret keeps signing beside the new one.
	RotationGrace time.Duration
	// ReplayWindow is how long an accepted inbound webhook's id and signature are remembered
	// (EVENT_RETENTION; DefaultReplayWindow when zero): the same again within it is a replay.
	ReplayWindow time.Duration
}

// MaxCircuitCooldown caps how long an open circuit waits before a probe.
const MaxCircuitCooldown = 10 * time.Minute

// SettingsFrom reads the WEBHOOK_* configuration.
func SettingsFrom(cfg *config.Config) Settings {
	return Settings{
		RetrySchedule:        cfg.WebhookRetrySchedule,
		Timeout:              cfg.WebhookTimeout,
		DisableAfter:         cfg.WebhookDisableAfter,
		DisableAfterFailures: cfg.WebhookDisableAfterFailures,
		CircuitThreshold:     cfg.WebhookCircuitThreshold,
		CircuitCooldown:      cfg.WebhookCircuitCooldown,
		RotationGrace:        cfg.WebhookSecretRotationGrace,
		ReplayWindow:         cfg.EventRetention,
	}
}

// Options are the service's dependencies.
type Options struct {
	Settings Settings
	Store    *store.Store
	Temporal client.Client
	// Events records inbound webhooks and webhook.endpoint.disabled events.
	Events *events.Bus
	// Egress is the SSRF guard: URLs are checked at registration and at every request.
	Egress *netguard.Policy
	// ServiceSecret (WEBHOOK_SECRET_KEY) encrypts stored secrets.
	ServiceSecret string
	Registry      prometheus.Registerer
	Log           *slog.Logger
	// TaskQueue is where dispatcher workflows run.
	TaskQueue string
	// SignalTimeout bounds one wake-up signal to a dispatcher (0: groupcommit.DefaultTimeout).
	SignalTimeout time.Duration
	// SenderID names this process among those that run sender sessions (unique per process
	// run; generated when empty).
	SenderID string
	// Eval runs endpoints' transforms (nil: in process with the default limits).
	Eval *definition.Evaluator
	// Catalog, when set, checks payloads against their event type's schema.
	Catalog *catalog.Service
}

// Service is the webhook module.
type Service struct {
	settings  Settings
	store     *store.Store
	temporal  client.Client
	events    *events.Bus
	egress    *netguard.Policy
	secrets   *SecretBox
	sender    *Sender
	metrics   *Metrics
	log       *slog.Logger
	waker     *waker
	accept    *acceptor
	senders   *Senders
	taskQueue string
	now       func() time.Time
	// transformer runs endpoints' filters and transforms; catalog checks payloads (may be nil).
	transformer *Transformer
	catalog     *catalog.Service
}

// New builds the service and registers its metrics.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Temporal == nil || o.Events == nil || o.Egress == nil || o.Registry == nil || o.TaskQueue == "" {
		return nil, errors.New("webhooks: Store, Temporal, Events, Egress, Registry and TaskQueue are required")
	}
	if len(o.Settings.RetrySchedule) == 0 {
		o.Settings.RetrySchedule = DefaultRetrySchedule
	}
	if o.Settings.ReplayWindow <= 0 {
		o.Settings.ReplayWindow = DefaultReplayWindow
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	box, err := NewSecretBox(o.ServiceSecret)
	if err != nil {
		return nil, err
	}
	m, err := NewMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	s := &Service{
		settings: o.Settings, store: o.Store, temporal: o.Temporal, events: o.Events, egress: o.Egress,
		secrets: box, sender: NewSender(o.Egress), metrics: m, log: o.Log.With("component", "webhooks"),
		taskQueue: o.TaskQueue, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		transformer: NewTransformer(o.Eval), catalog: o.Catalog,
	}
	s.waker = newWaker(s.signalDispatcher, o.SignalTimeout, s.log)
	s.accept = newAcceptor(o.Store)
	owner := o.SenderID
	if owner == "" {
		owner = "sender-" + store.NewID()
	}
	s.senders = NewSenders(o.Store, owner, s.log)
	return s, nil
}

// Senders returns the lease keeper of this process's sender sessions.
func (s *Service) Senders() *Senders { return s.senders }

// Settings returns the service-wide defaults.
func (s *Service) Settings() Settings { return s.settings }

// Secrets returns the box that encrypts stored secrets.
func (s *Service) Secrets() *SecretBox { return s.secrets }

// Sender returns the HTTP sender (for the delivery activities).
func (s *Service) Sender() *Sender { return s.sender }

// Transformer returns what runs endpoints' filters and transforms (for the delivery activities).
func (s *Service) Transformer() *Transformer { return s.transformer }

// Metrics returns the module's collectors.
func (s *Service) Metrics() *Metrics { return s.metrics }
