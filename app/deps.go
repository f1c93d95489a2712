// Package app wires the service together: it turns a config.Config into connected dependencies
// (store, Redis, Temporal client, metrics), builds the Temporal worker with every workflow and
// activity registered, and runs the API and the worker until the context ends.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/pyairtable/automation-domain/catalog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"github.com/pyairtable/automation-domain/activities"
	"github.com/pyairtable/automation-domain/api"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/diagnostics"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/ports"
	"github.com/pyairtable/automation-domain/ratelimit"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/tenants"
	"github.com/pyairtable/automation-domain/webhooks"
	"github.com/pyairtable/automation-domain/workflows"
)

// Deps are the connected dependencies shared by the API and the worker of one process.
type Deps struct {
	Config  *config.Config
	Log     *slog.Logger
	Store   *store.Store
	Redis   *redis.Client // nil when REDIS_URL is unset
	Limiter ratelimit.Limiter
	// RedisBreaker is the limiter's circuit breaker in front of Redis (nil without Redis).
	RedisBreaker *ratelimit.Breaker
	Temporal     client.Client
	Registry     *prometheus.Registry
	// Events stores and dispatches domain events (see package events).
	Events *events.Bus
	// Templates renders every user template (notifications, step configs, rule actions).
	Templates *templating.Engine
	// Eval evaluates the workflow steps' expressions and jq programs; Expressions the rules'
	// expression conditions. Like Templates, each evaluation runs under the budget of
	// EvalLimits, in the helper processes of EvalPool (nil: in this process).
	Eval        *definition.Evaluator
	Expressions *rules.Expressions
	EvalPool    *sandbox.Pool
	// Egress guards every outbound HTTP request against SSRF.
	Egress *netguard.Policy
	// Notify is the notification module (email, SMS, templates, delivery tracking).
	Notify *notify.Service
	// Workflows is the workflow engine (definitions, executions, schedules); other domains start
	// executions through Workflows.Execute.
	Workflows *engine.Service
	// StepNotifier and StepWebhooks carry out the workflow engine's notification and webhook
	// steps; while nil, definitions using those steps fail validation (422 "not available").
	StepNotifier ports.Notifier
	StepWebhooks ports.WebhookSender
	// RuleTargets are the modules that rule actions of type workflow, notification and webhook
	// call (see rules.Targets); a nil one makes its action type unavailable (422 on rule writes).
	RuleTargets rules.Targets
	// Webhooks is the webhook module (endpoints, fan-out, inbound); subscribed to Events.
	Webhooks *webhooks.Service
	// Catalog is the event catalog: it checks the payloads of events and webhook messages.
	Catalog *catalog.Service
	// Rules is the rules domain (CRUD, versions, Schedule sync and reconciliation, dry runs,
	// rule executions and event reads).
	Rules *rules.Service
	// Diagnostics runs the ping workflow.
	Diagnostics *diagnostics.Service
	// Tenants is the tenancy domain (tenants, tenant API keys, audit log).
	Tenants *tenants.Service
	// Modes says how each part runs, for /info and the start-up log.
	Modes map[string]string

	meterProvider *sdkmetric.MeterProvider
	// tracerProvider exports spans when OTEL_* asks for traces (nil: tracing is off).
	tracerProvider   *sdktrace.TracerProvider
	uninstallTracing func()
	// notificationMetrics count the notification sends (the worker's delivery activities).
	notificationMetrics *activities.NotificationMetrics
}

// Service names the process in its telemetry (service.name and service.version).
type Service struct{ Name, Version string }

// Open connects every dependency named by cfg (cfg.TemporalAddress must be set by now) and
// applies the database migrations. modes says how each part runs (see Modes); it is computed by
// the caller before an embedded Temporal server fills in TEMPORAL_ADDRESS.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger, modes map[string]string, svc Service) (*Deps, error) {
	d := &Deps{Config: cfg, Log: log, Registry: prometheus.NewRegistry(), Modes: modes}
	d.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()

	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	d.Store = st
	if d.tracerProvider, err = newTracerProvider(ctx, svc.Name, svc.Version); err != nil {
		return nil, err
	}
	if d.tracerProvider != nil {
		d.uninstallTracing = installTracing(d.tracerProvider)
		if err := st.Trace(d.tracerProvider); err != nil {
			return nil, fmt.Errorf("database tracing: %w", err)
		}
	}
	if _, err := st.Migrate(ctx, log); err != nil {
		return nil, err
	}
	d.Events = events.NewBus(st, log)
	d.EvalPool = cfg.EvalPool(log.With("component", "eval-helpers"))
	limits := cfg.EvalLimits()
	d.Templates = templating.New(templating.Options{Limits: limits, Pool: d.EvalPool})
	d.Eval = definition.NewEvaluator(limits, d.EvalPool)
	d.Expressions = rules.NewExpressions(limits, d.EvalPool)
	if d.EvalPool != nil {
		registerPoolMetrics(d.Registry, d.EvalPool)
	}
	d.Egress = cfg.EgressPolicy()

	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		if cfg.RedisPassword != "" {
			opt.Password = cfg.RedisPassword
		}
		opt.PoolSize = cfg.RedisMaxConnections
		// A Redis that is down must not hold requests up: short timeouts, no retries (the
		// breaker decides in process after a few failures).
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout =
			cfg.RedisTimeout, cfg.RedisTimeout, cfg.RedisTimeout, cfg.RedisTimeout
		opt.MaxRetries, opt.DialerRetries = -1, 1
		d.Redis = redis.NewClient(opt)
		if d.tracerProvider != nil {
			if err := redisotel.InstrumentTracing(d.Redis, redisotel.WithTracerProvider(d.tracerProvider)); err != nil {
				return nil, fmt.Errorf("redis tracing: %w", err)
			}
		}
		d.RedisBreaker, err = ratelimit.NewBreaker(ratelimit.NewRedis(d.Redis), ratelimit.NewLocal(),
			ratelimit.BreakerOptions{Registry: d.Registry})
		if err != nil {
			return nil, err
		}
		d.Limiter = d.RedisBreaker
		if err := d.Redis.Ping(ctx).Err(); err != nil {
			// Not fatal: limits are kept in process until it answers (degraded, not unready).
			log.Warn("redis does not answer yet", "error", err)
		}
	} else {
		d.Limiter = ratelimit.NewLocal()
	}

	d.meterProvider, err = newMeterProvider(ctx, d.Registry, svc.Name, svc.Version)
	if err != nil {
		return nil, err
	}
	circuit, err := newTemporalCircuit(d.Registry)
	if err != nil {
		return nil, err
	}
	interceptors := []interceptor.ClientInterceptor{&tenantIDs{}, &rpcDeadline{timeout: cfg.TemporalRPCTimeout, circuit: circuit}}
	if d.tracerProvider != nil {
		// Workflows and activities are spans of the request that started them; it also
		// intercepts the workers built on this client.
		traced, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
			Tracer: d.tracerProvider.Tracer("temporal-sdk-go"), TextMapPropagator: propagator,
		})
		if err != nil {
			return nil, fmt.Errorf("temporal tracing: %w", err)
		}
		interceptors = append([]interceptor.ClientInterceptor{traced}, interceptors...)
	}
	d.Temporal, err = client.NewLazyClient(client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.TemporalNamespace,
		Logger:    sdklog.NewStructuredLogger(log.With("component", "temporal-sdk")),
		MetricsHandler: temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
			Meter:                d.meterProvider.Meter("temporal-sdk-go"),
			UseMonotonicCounters: true,
			OnError:              func(err error) { log.Warn("temporal metrics", "error", err) },
		}),
		Identity:     identity(),
		Interceptors: interceptors,
		// Workflows and their activities act for the tenant of the request that started them.
		ContextPropagators: []workflow.ContextPropagator{tenantPropagator{}},
		ConnectionOptions: client.ConnectionOptions{DialOptions: temporalDialOptions(),
			GetSystemInfoTimeout: cfg.TemporalRPCTimeout},
	})
	if err != nil {
		return nil, fmt.Errorf("temporal client for %s: %w", cfg.TemporalAddress, err)
	}
	d.Notify, err = notify.New(notify.Options{
		Config: cfg, Store: d.Store, Temporal: d.Temporal, Templates: d.Templates, Events: d.Events,
		Log: log.With("component", "notify"),
	})
	if err != nil {
		return nil, err
	}
	d.Catalog = catalog.New(st)
	d.Events.SetChecker(d.Catalog)
	d.Webhooks, err = webhooks.New(webhooks.Options{
		Settings: webhooks.SettingsFrom(cfg), Store: st, Temporal: d.Temporal, Events: d.Events,
		Egress: d.Egress, ServiceSecret: cfg.WebhookSecretKey, Registry: d.Registry, Log: log,
		TaskQueue: workflows.TaskQueue, SenderID: identity() + "-" + store.NewID(),
		Eval: d.Eval, Catalog: d.Catalog,
	})
	if err != nil {
		return nil, err
	}
	d.Workflows = engine.New(engine.Options{
		Store: st, Temporal: d.Temporal, Templates: d.Templates, Egress: d.Egress, Log: log,
		// Read at call time: the notification and webhook modules are wired after Open.
		Unavailable: func(stepType string) string {
			return engine.StepUnavailable(stepType, d.StepNotifier, d.StepWebhooks)
		},
	})
	d.wireModules()
	d.Rules, err = rules.NewService(rules.ServiceOptions{
		Store: st, Temporal: d.Temporal, TaskQueue: workflows.TaskQueue, Templates: d.Templates,
		Expressions: d.Expressions, Targets: d.RuleTargets, MaxDepth: cfg.RulesMaxDepth,
		Log: log.With("component", "rules"),
	})
	if err != nil {
		return nil, err
	}
	if d.notificationMetrics, err = activities.NewNotificationMetrics(d.Registry); err != nil {
		return nil, err
	}
	// How far behind each webhook endpoint's sender is, read at each scrape.
	if err := d.Registry.Register(webhooks.NewBacklogCollector(st)); err != nil {
		return nil, fmt.Errorf("webhook backlog metrics: %w", err)
	}
	d.Diagnostics = diagnostics.New(d.Temporal, workflows.TaskQueue)
	d.Tenants = tenants.New(st)
	// Every stored event fans out to the webhook endpoints subscribed to its type and is
	// signalled into the rules engine's evaluator workflows.
	d.Events.Subscribe(d.Webhooks.Subscriber())
	d.Events.Subscribe(&rules.Dispatcher{Temporal: d.Temporal, TaskQueue: workflows.TaskQueue, Partitions: cfg.RulesPartitions})
	ok = true
	return d, nil
}

// openStore connects to the database, retrying for a while: in a fresh deployment the database
// container may still be starting.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.Store, error) {
	box, err := webhooks.NewSecretBox(cfg.WebhookSecretKey)
	if err != nil {
		return nil, err
	}
	opts := store.Options{
		URL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath(), Logger: log,
		PoolSize: cfg.DatabasePoolSize, MaxOverflow: cfg.DatabaseMaxOverflow,
		SealHeaders: box.SealHeaders,
	}
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 1; ; attempt++ {
		st, err := store.Open(ctx, opts)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			return nil, fmt.Errorf("database: %w", err)
		}
		log.Warn("database does not answer yet; retrying", "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// APIOptions are the API server's dependencies: the services built by Open, each the one
// instance this process has (the API builds none of its own).
func (d *Deps) APIOptions(version string) api.Options {
	return api.Options{
		Config: d.Config, Logger: d.Log, Version: version, Limiter: d.Limiter, Registry: d.Registry,
		Checks: d.Checks(), Modes: d.Modes,
		Rules: d.Rules, Notify: d.Notify, Workflows: d.Workflows, Webhooks: d.Webhooks, Events: d.Events, Catalog: d.Catalog,
		Diagnostics: d.Diagnostics, Tenants: d.Tenants,
		Tracer: d.tracerOrNil(), Propagator: propagator,
	}
}

// tracerOrNil is the tracer provider while tracing is on, nil (an untyped one) otherwise.
func (d *Deps) tracerOrNil() trace.TracerProvider {
	if d.tracerProvider == nil {
		return nil
	}
	return d.tracerProvider
}

// Checks are the dependencies the API's /health/detailed reports and /ready requires: the API
// serves nothing without its database, but goes on without Temporal (what stores first is
// accepted, what needs Temporal answers 503 at once) and without Redis, which only degrade it.
func (d *Deps) Checks() []api.Check { return d.checks(false) }

// checks lists the dependencies; a worker (needsTemporal) cannot work without Temporal.
func (d *Deps) checks(needsTemporal bool) []api.Check {
	checks := []api.Check{
		{Name: "database", Mode: d.Modes["database"], Probe: d.Store.Ping},
		// Ready once the frontend answers and the namespace exists (see waitForTemporal).
		{Name: "temporal", Mode: d.Modes["temporal"], Optional: !needsTemporal, Probe: func(ctx context.Context) error {
			if _, err := d.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
				return err
			}
			return checkNamespace(ctx, d.Temporal, d.Config.TemporalNamespace)
		}},
	}
	if d.Redis != nil {
		// Tolerated: without Redis the rate limits are kept in each process, so it degrades the
		// service and takes no instance out.
		checks = append(checks, api.Check{Name: "redis", Mode: "external", Optional: true, Probe: func(ctx context.Context) error {
			if err := d.RedisBreaker.Err(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, d.Config.RedisTimeout)
			defer cancel()
			return d.Redis.Ping(ctx).Err()
		}})
	} else {
		checks = append(checks, api.Check{Name: "redis", Mode: "in-process"})
	}
	return append(checks, d.notificationChecks()...)
}

// notificationChecks report the notification channels: the SMTP server is probed (optional: a
// mail server down delays email, which is retried, but serves everything else); an
// unconfigured channel says so.
func (d *Deps) notificationChecks() []api.Check {
	emailCheck := api.Check{Name: "email", Mode: "smtp", Optional: true, Probe: d.Notify.ProbeEmail}
	if !d.Notify.EmailConfigured() {
		emailCheck = api.Check{Name: "email", Mode: "not_configured", Optional: true,
			NotConfigured: "not configured: set SMTP_HOST to send email"}
	}
	smsCheck := api.Check{Name: "sms", Mode: d.Notify.SMSProviderName(), Optional: true}
	if !d.Notify.SMSConfigured() {
		smsCheck = api.Check{Name: "sms", Mode: "not_configured", Optional: true,
			NotConfigured: "not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID to send SMS"}
	}
	return []api.Check{emailCheck, smsCheck}
}

// Close releases every connection; it is safe on a partly opened Deps.
func (d *Deps) Close() {
	if d.Temporal != nil {
		d.Temporal.Close()
	}
	if d.EvalPool != nil {
		_ = d.EvalPool.Close()
	}
	if d.Webhooks != nil {
		d.Webhooks.Sender().Close() // the broker connections of stream endpoints
	}
	if d.meterProvider != nil {
		_ = d.meterProvider.Shutdown(context.Background())
	}
	if d.Redis != nil {
		_ = d.Redis.Close()
	}
	if d.Store != nil {
		_ = d.Store.Close()
	}
	if d.tracerProvider != nil {
		// The spans still batched are sent (bounded: a collector that is down costs 5 s).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = d.tracerProvider.Shutdown(ctx)
		cancel()
		d.uninstallTracing()
	}
}

// Modes says how each part runs under cfg.
func Modes(cfg *config.Config) map[string]string {
	m := map[string]string{"temporal": "external", "database": "postgres", "rate_limit": "redis"}
	if cfg.EmbeddedTemporal() {
		m["temporal"] = "embedded"
	}
	if cfg.EmbeddedDatabase() {
		m["database"] = "sqlite"
	}
	if cfg.EmbeddedRedis() {
		m["rate_limit"] = "in-process"
	}
	return m
}

func identity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%d@%s", os.Getpid(), host)
}

// metricsServer serves /metrics, /live and /ready for a process without the API (the worker).
func (d *Deps) metricsServer() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"alive"}`))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for _, c := range d.checks(true) {
			if c.Probe == nil || c.Optional {
				continue
			}
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			err := c.Probe(ctx)
			cancel()
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = fmt.Fprintf(w, `{"status":"not_ready","failing":[%q]}`, c.Name)
				return
			}
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
}
