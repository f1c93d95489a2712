// Package api is the service's HTTP interface: an Echo server whose handlers validate requests,
// read and write the store, and start, signal and query Temporal workflows.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/ratelimit"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/webhooks"
)

// Options are the server's dependencies.
type Options struct {
	Config   *config.Config
	Logger   *slog.Logger
	Version  string
	Store    *store.Store
	Temporal client.Client
	Limiter  ratelimit.Limiter
	// Registry receives the HTTP metrics and is served at /metrics.
	Registry *prometheus.Registry
	// Gatherer is what /metrics serves; defaults to Registry.
	Gatherer prometheus.Gatherer
	// Checks are the dependencies reported by /health/detailed and required by /ready.
	Checks []Check
	// Modes says how each part runs ("temporal": "embedded", …), for /info and the start-up log.
	Modes map[string]string
	// Webhooks is the webhook module behind /api/v1/webhooks.
	Webhooks *webhooks.Service
}

// Server is the HTTP API.
type Server struct {
	opts     Options
	cfg      *config.Config
	log      *slog.Logger
	echo     *echo.Echo
	store    *store.Store
	temporal client.Client
	limiter  ratelimit.Limiter
	metrics  *httpMetrics
	spec     *openAPISpec
	webhooks *webhooks.Service
	started  time.Time
	http     *http.Server
}

// New builds the server and its routes.
func New(o Options) (*Server, error) {
	if o.Config == nil || o.Store == nil || o.Temporal == nil || o.Limiter == nil || o.Registry == nil {
		return nil, errors.New("api: Config, Store, Temporal, Limiter and Registry are required")
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
		opts: o, cfg: o.Config, log: o.Logger, store: o.Store, temporal: o.Temporal,
		limiter: o.Limiter, metrics: m, spec: spec, webhooks: o.Webhooks, started: time.Now(),
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	// The client address is the TCP peer: X-Forwarded-For is trivially forged, and rate limits
	// keyed on it would be too.
	e.IPExtractor = echo.ExtractIPDirect()
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
	if !s.cfg.Production() {
		e.GET("/docs", s.docs)
	}

	v1 := e.Group("/api/v1", s.authenticate, s.rateLimit)
	v1.GET("/workflows", s.listWorkflows)
	v1.POST("/diagnostics/ping", s.ping)
	s.webhookRoutes(e, v1)
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

func newID() string { return store.NewID() }
