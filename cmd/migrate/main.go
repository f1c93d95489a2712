// Command migrate applies the database migrations (schema/) and exits: `make db-upgrade`.
// The API and the worker also apply them at start-up; this is for deploy pipelines that migrate
// first.
package main

import (
	"context"
	"fmt"
	"os"

	_ "modernc.org/sqlite" // the SQLite driver, when DATABASE_URL is unset

	"github.com/pyairtable/automation-domain/app"
)

func main() {
	cfg, log, err := app.LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := app.Migrate(context.Background(), cfg, log); err != nil {
		log.Error("migrate", "error", err)
		os.Exit(1)
	}
}
