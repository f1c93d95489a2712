package store

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/pyairtable/automation-domain/schema"
)

// Migrate applies every pending migration from package schema and returns how many ran.
// On Postgres a session advisory lock makes concurrent starts (API and worker processes) safe.
func (s *Store) Migrate(ctx context.Context, log *slog.Logger) (int, error) {
	p, err := s.migrationProvider()
	if err != nil {
		return 0, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return len(results), fmt.Errorf("migrate %s: %w", s.dialect, classify(err))
	}
	for _, r := range results {
		if log != nil {
			log.Info("migration applied", "dialect", s.dialect, "version", r.Source.Version,
				"file", r.Source.Path, "duration", r.Duration)
		}
	}
	return len(results), nil
}

// SchemaVersion reports the newest applied migration and the newest one this binary knows.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := s.migrationProvider()
	if err != nil {
		return 0, 0, err
	}
	current, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, classify(err)
	}
	sources := p.ListSources()
	if len(sources) > 0 {
		latest = sources[len(sources)-1].Version
	}
	return current, latest, nil
}

func (s *Store) migrationProvider() (*goose.Provider, error) {
	files, err := fs.Sub(schema.FS, string(s.dialect))
	if err != nil {
		return nil, err
	}
	return s.provider(files, schema.GoMigrations(s.dialect == Postgres, s.sealHeaders)...)
}

// provider is a goose provider over the migration files in files and the Go migrations.
func (s *Store) provider(files fs.FS, goMigrations ...*goose.Migration) (*goose.Provider, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectSQLite3
	// Migration numbers are reserved per domain (00004 webhooks, 00005 rules, …) and the
	// domains are merged in whatever order they are finished: a database that already has
	// 00005 and 00006 must still take 00004 when it arrives, instead of refusing to start
	// ("missing migrations"). The domains' migrations touch their own tables, so applying a
	// lower number later is safe.
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithAllowOutofOrder(true),
		goose.WithGoMigrations(goMigrations...)}
	if s.dialect == Postgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, sqlDB, files, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}
