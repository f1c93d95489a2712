package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/logging"
)

// LoadConfig reads the environment and builds the logger it asks for (JSON in production, text
// otherwise).
func LoadConfig() (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, nil, err
	}
	return cfg, logging.New(os.Stderr, cfg.Production(), cfg.LogLevel), nil
}

// Migrate applies the database migrations and reports the schema version. Some migrations
// encrypt stored values, so the secrets are needed (generated ones in development).
func Migrate(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if err := cfg.EnsureSecrets(); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := st.Migrate(ctx, log)
	if err != nil {
		return err
	}
	current, _, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	log.Info(fmt.Sprintf("database is at schema version %d (%d migrations applied now)", current, n),
		"database", describeDatabase(cfg))
	return nil
}
