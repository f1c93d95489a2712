package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pyairtable/automation-domain/api"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/engine"
)

// Embedded is an in-process Temporal server started by Options.StartTemporal.
type Embedded interface {
	Address() string
	UIURL() string
	Stop()
}

// Options says which parts Run runs.
type Options struct {
	Config  *config.Config
	Logger  *slog.Logger
	Version string
	API     bool
	Worker  bool
	// StartTemporal starts an in-process Temporal server; Run calls it when TEMPORAL_ADDRESS is
	// unset. Binaries that cannot embed leave it nil and then need TEMPORAL_ADDRESS.
	StartTemporal func(cfg *config.Config, log *slog.Logger) (Embedded, error)
	// Listener, if set, is where the API answers instead of HOST:PORT (tests pass :0).
	Listener net.Listener
	// Ready, if set, is closed once every part is up.
	Ready chan<- struct{}
	// Wire, if set, is called with the opened dependencies before the API and the worker are
	// built: it connects modules into them (Deps.RuleTargets), and tests substitute parts.
	Wire func(*Deps)
}

// Run starts what o asks for and blocks until ctx ends (then shuts down gracefully) or a part
// fails.
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Logger
	if err := cfg.EnsureSecrets(); err != nil {
		return err
	}
	modes := Modes(cfg)
	log.Info("starting automation-domain", "version", o.Version, "env", cfg.Env,
		"api", o.API, "worker", o.Worker)
	log.Info("mode", "temporal", describeTemporal(cfg), "database", describeDatabase(cfg),
		"rate_limit", modes["rate_limit"])
	if o.API && o.Listener == nil {
		// Where it will answer, before the (slower) start-up steps; "ready" repeats it at the end.
		urls := []any{"api", cfg.PublicURL + "/api/v1"}
		if !cfg.Production() {
			urls = append(urls, "docs", cfg.PublicURL+"/docs")
		}
		if ui := cfg.TemporalUIURL; ui != "" {
			urls = append(urls, "temporal_ui", ui)
		} else if cfg.EmbeddedTemporal() && cfg.TemporalUIPort != 0 {
			urls = append(urls, "temporal_ui", fmt.Sprintf("http://localhost:%d", cfg.TemporalUIPort))
		}
		log.Info("urls", urls...)
	}
	if len(cfg.GeneratedSecrets) > 0 {
		log.Warn("generated development secrets; they are kept in "+cfg.DevSecretsPath()+
			" and not shown again", secretAttrs(cfg)...)
	}

	if cfg.EmbeddedTemporal() {
		if o.StartTemporal == nil {
			return errors.New("TEMPORAL_ADDRESS is required: this binary does not embed a Temporal server " +
				"(run `make run` for the embedded stack)")
		}
		start := time.Now()
		srv, err := o.StartTemporal(cfg, log)
		if err != nil {
			return fmt.Errorf("embedded temporal: %w", err)
		}
		defer srv.Stop()
		cfg.TemporalAddress = srv.Address()
		if cfg.TemporalUIURL == "" {
			cfg.TemporalUIURL = srv.UIURL()
		}
		log.Info("embedded temporal server up", "address", srv.Address(), "namespace", cfg.TemporalNamespace,
			"ui", srv.UIURL(), "took", time.Since(start).Round(time.Millisecond))
	}

	deps, err := Open(ctx, cfg, log, modes, Service{Name: ServiceName(o.API, o.Worker), Version: o.Version})
	if err != nil {
		return err
	}
	defer deps.Close()
	if o.Wire != nil {
		o.Wire(deps)
	}

	// runCtx ends the parts already started when start-up fails half-way (abort).
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	g, gctx := errgroup.WithContext(runCtx)
	abort := func(err error) error {
		cancelRun()
		if werr := g.Wait(); werr != nil {
			err = werr // a part that failed first is the cause
		}
		if ctx.Err() != nil {
			return nil // stopped (SIGTERM, Ctrl-C) while starting: a clean stop
		}
		return err
	}
	var listener net.Listener
	var server *api.Server
	started := make(chan struct{}) // closed once every part is up
	if o.API {
		server, err = api.New(deps.APIOptions(o.Version))
		if err != nil {
			return err
		}
		server.Starting()
		listener = o.Listener
		if listener == nil {
			addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
			if listener, err = net.Listen("tcp", addr); err != nil {
				return fmt.Errorf("api: listen on %s (PORT): %w", addr, err)
			}
		}
		g.Go(func() error {
			err := server.Serve(listener)
			if gctx.Err() != nil && errors.Is(err, net.ErrClosed) {
				return nil // closed below: a stop that came before Serve had begun
			}
			return err
		})
		g.Go(func() error {
			<-gctx.Done()
			select {
			case <-started:
				// Load balancers see /ready fail and stop sending requests; those that still
				// come are served until the drain period is over.
				server.Drain()
				if cfg.DrainPeriod > 0 {
					log.Info("draining the API: /ready answers 503, requests are still served", "for", cfg.DrainPeriod)
					time.Sleep(cfg.DrainPeriod)
				}
			default: // stopped while starting: nothing was sent here yet
			}
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			log.Info("shutting down the API: no new connections, finishing requests in flight")
			err := server.Shutdown(sctx)
			_ = listener.Close() // ends a Serve that Shutdown did not see start yet
			// Events accepted by the last requests are still being handed off (the redispatch
			// loop would do it later otherwise).
			deps.Events.Wait(sctx)
			return err
		})
	}
	if err := servePprof(gctx, g, cfg.PprofPort, log); err != nil {
		return abort(err)
	}
	if !o.API && cfg.MetricsPort != 0 {
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.MetricsPort))
		ml, err := net.Listen("tcp", addr)
		if err != nil {
			return abort(fmt.Errorf("metrics: listen on %s (METRICS_PORT): %w", addr, err))
		}
		ms := deps.metricsServer()
		g.Go(func() error {
			if err := ms.Serve(ml); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			return ms.Close()
		})
		log.Info("metrics served", "url", fmt.Sprintf("http://%s/metrics", addr))
	}
	// The API answers /live (and /ready, failing) meanwhile; so does the worker's METRICS_PORT.
	if err := waitForTemporal(gctx, deps.Temporal, cfg.TemporalNamespace, cfg.TemporalAddress,
		cfg.TemporalWaitTimeout, log); err != nil {
		return abort(err)
	}
	// The interpreter upserts these (a workflow task would fail until they exist), and every
	// workflow a tenant starts carries TenantId: the API registers them too, so that its starts
	// have them whether or not a worker has run yet.
	added, err := engine.RegisterSearchAttributes(gctx, deps.Temporal, cfg.TemporalNamespace)
	if err != nil {
		return abort(err)
	}
	if o.Worker {
		if added {
			settle := 11 * time.Second // a cluster's default namespace cache refresh is 10 s
			if deps.Modes["temporal"] == "embedded" {
				settle = 2 * time.Second // devserver refreshes every second
			}
			log.Info("registered the workflow engine's search attributes; waiting for Temporal to load them",
				"names", engine.SearchAttributeNames(), "wait", settle)
			select {
			case <-gctx.Done():
				return abort(gctx.Err())
			case <-time.After(settle):
			}
		}
		w := NewWorker(deps)
		if err := w.Start(); err != nil {
			return abort(fmt.Errorf("worker: start: %w", err))
		}
		// Sender sessions keep their endpoints' leases while they hand them over: renewal ends
		// after the worker has stopped.
		leases, stopLeases := context.WithCancel(context.WithoutCancel(gctx))
		g.Go(func() error {
			deps.Webhooks.Senders().Run(leases)
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			w.Stop() // waits for running activities up to SHUTDOWN_TIMEOUT
			stopLeases()
			return nil
		})
		// Events stored but not handed off (a crash, Temporal down) are handed off again.
		g.Go(func() error {
			deps.Events.RunRedispatcher(gctx, 10*time.Second, 30*time.Second)
			return nil
		})
		// The rules engine's Schedules (schedule triggers, event retention).
		g.Go(func() error {
			deps.Rules.KeepReconciling(gctx, 3*time.Second)
			return nil
		})
		// The wake-ups other processes send to this process's sender sessions.
		g.Go(func() error {
			deps.Webhooks.Senders().RunListener(gctx)
			return nil
		})
		// Webhook deliveries whose dispatcher was not woken (or ended) are woken again.
		g.Go(func() error {
			deps.Webhooks.RunSweeper(gctx, 5*time.Second, 5*time.Second)
			return nil
		})
	}
	if o.API {
		base := cfg.PublicURL
		if o.Listener != nil {
			base = "http://" + listener.Addr().String()
		}
		attrs := []any{"api", base + "/api/v1", "health", base + "/health/detailed", "openapi", base + "/openapi.json"}
		if !cfg.Production() {
			attrs = append(attrs, "docs", base+"/docs")
		}
		if cfg.TemporalUIURL != "" {
			attrs = append(attrs, "temporal_ui", cfg.TemporalUIURL)
		}
		log.Info("ready", attrs...)
	} else {
		log.Info("ready", "worker", "polling task queue", "temporal", cfg.TemporalAddress)
	}
	if server != nil {
		server.Started()
	}
	close(started)
	if o.Ready != nil {
		close(o.Ready)
	}
	err = g.Wait()
	log.Info("stopped")
	return err
}

func describeTemporal(cfg *config.Config) string {
	if cfg.EmbeddedTemporal() {
		return fmt.Sprintf("embedded (SQLite %s, port %d)", cfg.TemporalSQLitePath(), cfg.TemporalPort)
	}
	return "external " + cfg.TemporalAddress
}

func describeDatabase(cfg *config.Config) string {
	if cfg.EmbeddedDatabase() {
		return "sqlite " + cfg.SQLitePath()
	}
	return "postgres " + redactURL(cfg.DatabaseURL)
}

// redactURL hides the password of a connection URL in logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func secretAttrs(cfg *config.Config) []any {
	values := map[string]string{
		"INTERNAL_API_KEY": cfg.InternalAPIKey, "JWT_SECRET_KEY": cfg.JWTSecretKey,
		"WEBHOOK_SECRET_KEY": cfg.WebhookSecretKey,
	}
	var attrs []any
	for _, name := range cfg.GeneratedSecrets {
		attrs = append(attrs, name, values[name])
	}
	return attrs
}
