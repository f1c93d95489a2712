// Package webhooks is the webhook module: endpoints that receive signed (Standard Webhooks v1)
// deliveries of messages, the fan-out of messages and domain events to them, and inbound
// webhooks verified and recorded as events.
//
// Delivery is built for throughput on Temporal. A message is stored with one pending delivery
// row per matching endpoint (the deliveries table is the queue), then each endpoint's
// long-running dispatcher workflow (workflows.WebhookDispatcher, one per endpoint) is woken by a
// signal. A dispatcher sends its endpoint's due deliveries in batches from a local activity,
// schedules retries with durable timers, holds the endpoint while a circuit breaker is open or
// a receiver asked to wait, and continues as new before its history grows large. Endpoints never
// share a dispatcher, so a slow or failing one delays no other.
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

	"github.com/pyairtable/automation-domain/config"
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
	taskQueue string
	now       func() time.Time
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
	}
	s.waker = newWaker(s.signalDispatcher)
	return s, nil
}

// Settings returns the service-wide defaults.
func (s *Service) Settings() Settings { return s.settings }

// Secrets returns the box that encrypts stored secrets.
func (s *Service) Secrets() *SecretBox { return s.secrets }

// Sender returns the HTTP sender (for the delivery activities).
func (s *Service) Sender() *Sender { return s.sender }

// Metrics returns the module's collectors.
func (s *Service) Metrics() *Metrics { return s.metrics }
