// Package api is the service's HTTP interface: an Echo server whose handlers bind and validate
// requests, call the domain services (rules, notify, engine, webhooks, events, diagnostics) and
// map their errors onto the API's statuses. Handlers hold no domain logic and run no store
// transactions: every service is built once, by the composition root (package app), and passed
// in Options.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pyairtable/automation-domain/catalog"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/diagnostics"
	"github.com/pyairtable/automation-domain/engine"
	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/notify"
	"github.com/pyairtable/automation-domain/ratelimit"
	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/tenants"
	"github.com/pyairtable/automation-domain/webhooks"
)

// Options are the server's dependencies. Every service is required: the server builds none of
// its own.
type Options struct {
	Config  *config.Config
	Logger  *slog.Logger
	Version string
	Limiter ratelimit.Limiter
	// Registry receives the HTTP metrics and is served at /metrics.
	Registry *prometheus.Registry
	// Gatherer is what /metrics serves; defaults to Registry.
	Gatherer prometheus.Gatherer
	// Checks are the dependencies reported by /health/detailed and required by /ready.
	Checks []Check
	// Modes says how each part runs ("temporal": "embedded", …), for /info and the start-up log.
	Modes map[string]string
	// Rules is the rules domain behind /api/v1/automation and the event reads.
	Rules *rules.Service
	// Notify is the notification module behind /api/v1/notifications.
	Notify *notify.Service
	// Workflows is the workflow engine behind /api/v1/workflows and /api/v1/executions.
	Workflows *engine.Service
	// Webhooks is the webhook module behind /api/v1/webhooks.
	Webhooks *webhooks.Service
	// Events is the event bus POST /api/v1/events publishes on.
	Events *events.Bus
	// Diagnostics runs POST /api/v1/diagnostics/ping.
	Diagnostics *diagnostics.Service
	// Tenants is the tenancy domain: tenants, tenant API keys, the audit log.
	Tenants *tenants.Service
	// Tracer, when set (tracing is on), makes every request a span (honouring an incoming W3C
	// traceparent) and names its trace in error bodies and log lines.
	Tracer trace.TracerProvider
	// Propagator reads the incoming trace context (W3C trace context and baggage when nil).
	Propagator propagation.TextMapPropagator
	// Catalog is the event catalog behind /api/v1/event-types.
	Catalog *catalog.Service
}

// Server is the HTTP API.
type Server struct {
	opts    Options
	cfg     *config.Config
	log     *slog.Logger
	echo    *echo.Echo
	limiter ratelimit.Limiter
	metrics *httpMetrics
	spec    *openAPISpec
	auth    *authenticator
	started time.Time
	http    *http.Server
	// routesByMethod holds "METHOD /path/:pattern" of every route (for 405's Allow).
	routesByMethod map[string]bool
	// draining is set once the server is told to stop: /ready answers 503 from then on.
	draining atomic.Bool
	// starting is set while the process has not finished starting (Temporal not reached yet):
	// /ready then counts optional dependencies as required.
	starting atomic.Bool

	rules       *rules.Service
	notify      *notify.Service
	engine      *engine.Service
	webhooks    *webhooks.Service
	events      *events.Bus
	diagnostics *diagnostics.Service
	tenants     *tenants.Service
	catalog     *catalog.Service
}

// New builds the server and its routes.
func New(o Options) (*Server, error) {
	if o.Config == nil || o.Limiter == nil || o.Registry == nil {
		return nil, errors.New("api: Config, Limiter and Registry are required")
	}
	if o.Rules == nil || o.Notify == nil || o.Workflows == nil || o.Webhooks == nil || o.Events == nil || o.Diagnostics == nil ||
		o.Tenants == nil {
		return nil, errors.New("api: the Rules, Notify, Workflows, Webhooks, Events, Diagnostics and Tenants services are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Gatherer == nil {
		o.Gatherer = o.Registry
	}
	m, err := newHTTPMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	spec, err := loadOpenAPISpec(o.Version)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: o, cfg: o.Config, log: o.Logger, limiter: o.Limiter, metrics: m, spec: spec,
		started: time.Now(),
		rules:   o.Rules, notify: o.Notify, engine: o.Workflows, webhooks: o.Webhooks, events: o.Events,
		diagnostics: o.Diagnostics, tenants: o.Tenants, catalog: o.Catalog,
	}
	if s.auth, err = newAuthenticator(o.Config, o.Tenants, o.Logger); err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	// The client address is the TCP peer: X-Forwarded-For is trivially forged, and rate limits
	// keyed on it would be too.
	e.IPExtractor = echo.ExtractIPDirect()
	if o.Tracer != nil {
		e.Use(s.traceRequests(o.Tracer, o.Propagator))
	}
	e.Use(s.requestID, s.observe, s.recoverPanics, s.limitBody)
	s.echo = e
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	e := s.echo
	e.GET("/health", s.health)
	e.GET("/health/detailed", s.healthDetailed)
	e.GET("/ready", s.ready)
	e.GET("/live", s.live)
	e.GET("/info", s.info)
	e.GET("/metrics", s.serveMetrics)
	e.GET("/openapi.json", s.openAPI)
	s.docsRoutes(e)

	v1 := e.Group("/api/v1", s.authenticate, s.authorize, s.rateLimit, s.quota, s.audit)
	v1.POST("/diagnostics/ping", s.ping)

	v1.POST("/notifications/email", s.sendEmail)
	v1.POST("/notifications/sms", s.sendSMS)
	v1.GET("/notifications", s.listNotifications)
	v1.GET("/notifications/:id", s.getNotification)
	v1.GET("/notifications/templates", s.listTemplates)
	v1.POST("/notifications/templates", s.createTemplate)
	v1.GET("/notifications/templates/:id", s.getTemplate)
	v1.PUT("/notifications/templates/:id", s.updateTemplate)
	v1.DELETE("/notifications/templates/:id", s.deleteTemplate)
	v1.POST("/notifications/templates/:id/render", s.renderTemplate)
	// Providers cannot send our API key; their signature authenticates them instead.
	e.POST("/api/v1/notifications/providers/twilio/status", s.twilioStatus, s.rateLimit)

	v1.GET("/workflows", s.listWorkflows)
	v1.POST("/workflows", s.createWorkflow)
	v1.GET("/workflows/:id", s.getWorkflow)
	v1.PUT("/workflows/:id", s.updateWorkflow)
	v1.DELETE("/workflows/:id", s.deleteWorkflow)
	v1.GET("/workflows/:id/versions", s.listWorkflowVersions)
	v1.GET("/workflows/:id/versions/:version", s.getWorkflowVersion)
	v1.POST("/workflows/:id/execute", s.executeWorkflow)
	v1.POST("/workflows/:id/pause", s.pauseWorkflow)
	v1.POST("/workflows/:id/resume", s.resumeWorkflow)
	v1.GET("/executions", s.listExecutions)
	v1.GET("/executions/:id", s.getExecution)
	v1.POST("/executions/:id/cancel", s.cancelExecution)
	v1.POST("/executions/:id/terminate", s.terminateExecution)
	v1.POST("/executions/:id/signal/:name", s.signalExecution)
	v1.POST("/executions/:id/retry", s.retryExecution)
	v1.POST("/events", s.postEvent)
	v1.GET("/events", s.listEvents)
	v1.GET("/events/:id", s.getEvent)
	v1.POST("/automation/rules", s.createRule)
	v1.GET("/automation/rules", s.listRules)
	v1.GET("/automation/rules/:id", s.getRule)
	v1.PUT("/automation/rules/:id", s.replaceRule)
	v1.DELETE("/automation/rules/:id", s.deleteRule)
	v1.POST("/automation/rules/:id/enable", s.enableRule)
	v1.POST("/automation/rules/:id/disable", s.disableRule)
	v1.GET("/automation/rules/:id/versions", s.listRuleVersions)
	v1.POST("/automation/rules/:id/test", s.testRule)
	v1.POST("/automation/test", s.testInlineRule)
	v1.GET("/automation/rules/:id/executions", s.listRuleExecutions)
	v1.GET("/automation/executions/:id", s.getRuleExecution)
	s.subscriberRoutes(e, v1)
	s.webhookRoutes(e, v1)
	s.tenantRoutes(v1)
	s.catalogRoutes(v1)
	s.routesByMethod = methodRoutes(e) // after every route is registered
}

// Handler exposes the routes (tests serve them with httptest).
func (s *Server) Handler() http.Handler { return s.echo }

// Serve answers on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.http = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", err)
	}
	return nil
}

// Starting makes /ready require every dependency, optional ones too, until Started: a process
// that has not reached Temporal yet is not ready, although a running API rides out a Temporal
// outage.
func (s *Server) Starting() { s.starting.Store(true) }

// Started ends Starting.
func (s *Server) Started() { s.starting.Store(false) }

// Drain makes /ready answer 503 (draining) while the server goes on serving: load balancers
// stop sending requests before Shutdown stops accepting them.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown stops accepting requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	return s.http.Shutdown(ctx)
}

// WorkflowURL links a workflow execution in the Temporal Web UI ("" when no UI is known).
func WorkflowURL(uiBase, namespace, workflowID, runID string) string {
	if uiBase == "" {
		return ""
	}
	u := fmt.Sprintf("%s/namespaces/%s/workflows/%s", uiBase, url.PathEscape(namespace), url.PathEscape(workflowID))
	if runID != "" {
		u += "/" + url.PathEscape(runID)
	}
	return u + "/history"
}

func (s *Server) workflowURL(workflowID, runID string) string {
	return WorkflowURL(s.cfg.TemporalUIURL, s.cfg.TemporalNamespace, workflowID, runID)
}
