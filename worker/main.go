// Command worker is the Temporal worker process: it polls the service's task queue and runs its
// workflows and activities. Scale it out by running more of them. It needs TEMPORAL_ADDRESS and
// stops gracefully on SIGTERM (running activities get SHUTDOWN_TIMEOUT to finish).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	_ "modernc.org/sqlite" // the SQLite driver, when DATABASE_URL is unset

	"github.com/pyairtable/automation-domain/app"
	"github.com/pyairtable/automation-domain/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=…"; buildinfo.Version falls back to
// what the toolchain or git records.
var version string

func main() {
	app.RunEvalHelper() // first: a helper process of this binary evaluates and exits here
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, log, err := app.LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := app.Run(ctx, app.Options{Config: cfg, Logger: log, Version: buildinfo.Version(version), Worker: true}); err != nil {
		log.Error("exit", "error", err)
		os.Exit(1)
	}
}
