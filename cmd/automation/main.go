// Command automation runs the whole service in one process: the API, the worker and, for each
// dependency whose address is unset, an embedded stand-in (a Temporal server with its Web UI on
// SQLite, SQLite for the app's tables, in-process rate limits). `make run` starts it.
//
//	automation           run everything
//	automation migrate   apply the database migrations and exit
//	automation temporal  run only the embedded Temporal server and its Web UI (on
//	                     TEMPORAL_PORT and TEMPORAL_UI_PORT, state in DATA_DIR), for an API and
//	                     workers started as separate processes with TEMPORAL_ADDRESS
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pyairtable/automation-domain/app"
	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/devserver"
	"github.com/pyairtable/automation-domain/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=…"; buildinfo.Version falls back to
// what the toolchain or git records.
var version string

func main() {
	app.RunEvalHelper() // first: a helper process of this binary evaluates and exits here
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := "run"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	cfg, log, err := app.LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch cmd {
	case "run":
		err = app.Run(ctx, app.Options{
			Config: cfg, Logger: log, Version: buildinfo.Version(version), API: true, Worker: true,
			StartTemporal: func(c *config.Config, l *slog.Logger) (app.Embedded, error) {
				return devserver.FromConfig(c, l)
			},
		})
	case "migrate":
		err = app.Migrate(ctx, cfg, log)
	case "temporal":
		err = runTemporal(ctx, cfg, log)
	default:
		fmt.Fprintf(os.Stderr, "usage: automation [run|migrate|temporal]\n")
		os.Exit(2)
	}
	if err != nil {
		log.Error("exit", "error", err)
		os.Exit(1)
	}
}

// runTemporal serves the embedded Temporal server alone until ctx ends. It is the production
// shape's Temporal on one machine without a cluster: the API (cmd/api) and any number of workers
// dial it with TEMPORAL_ADDRESS, and it can be stopped or killed apart from them.
func runTemporal(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if !cfg.EmbeddedTemporal() {
		return fmt.Errorf("automation temporal: TEMPORAL_ADDRESS is set (%s): that server is the one to use; "+
			"unset it to run the embedded server", cfg.TemporalAddress)
	}
	start := time.Now()
	srv, err := devserver.FromConfig(cfg, log)
	if err != nil {
		return fmt.Errorf("automation temporal: %w", err)
	}
	defer srv.Stop()
	log.Info("temporal server up", "address", srv.Address(), "namespace", cfg.TemporalNamespace,
		"ui", srv.UIURL(), "database", cfg.TemporalSQLitePath(), "took", time.Since(start).Round(time.Millisecond))
	<-ctx.Done()
	log.Info("temporal server stopping")
	return nil
}
