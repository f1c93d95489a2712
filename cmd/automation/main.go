// Command automation runs the whole service in one process: the API, the worker and, for each
// dependency whose address is unset, an embedded stand-in (a Temporal server with its Web UI on
// SQLite, SQLite for the app's tables, in-process rate limits). `make run` starts it.
//
//	automation           run everything
//	automation migrate   apply the database migrations and exit
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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
	default:
		fmt.Fprintf(os.Stderr, "usage: automation [run|migrate]\n")
		os.Exit(2)
	}
	if err != nil {
		log.Error("exit", "error", err)
		os.Exit(1)
	}
}
