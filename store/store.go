// Package store keeps the app's tables (definitions, delivery records, events) behind small typed
// methods. It runs on Postgres in production and on SQLite (the pure-Go modernc.org/sqlite
// driver) in the embedded mode; the schema for both is in package schema and applied by Migrate.
package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	msqlite "modernc.org/sqlite"

	"github.com/pyairtable/automation-domain/schema"
)

// Dialect names the database engine behind a Store.
type Dialect string

// Supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Errors callers can test with errors.Is. The API maps them to 404, 409 and 503.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("database unavailable")
)

// Options configures Open.
type Options struct {
	// URL is a postgres:// URL; empty means SQLite at SQLitePath.
	URL        string
	SQLitePath string
	// PoolSize connections are kept idle; up to PoolSize+MaxOverflow are opened under load.
	PoolSize    int
	MaxOverflow int
	Logger      *slog.Logger
	// SealHeaders encrypts webhook endpoint header values; migration 00007 uses it on rows
	// written before they were encrypted. Nil is fine on a database without such rows.
	SealHeaders schema.SealHeaders
}

// Store is the app's database.
type Store struct {
	db          *gorm.DB
	dialect     Dialect
	sealHeaders schema.SealHeaders
	url         string // Postgres: for connections of its own (Listen)
	// writeSlot (SQLite) lets one transaction of this process at a time begin: the others wait
	// here, woken the moment it ends, instead of in SQLite's busy handler, which sleeps up to
	// 100 ms between tries and made the tail latency of concurrent requests. Other processes on
	// the same file still meet the busy timeout. Nil inside a transaction (nested ones are
	// savepoints of the one that holds it).
	writeSlot chan struct{}
}

// Open connects to the database. It does not migrate: call Migrate.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.PoolSize < 1 {
		o.PoolSize = 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	gcfg := &gorm.Config{
		// Failed and slow statements are logged without their bound values: those include
		// encrypted secrets, header values and users' data. Unique-key refusals, which
		// callers handle, are logged at debug (sqlLogger).
		Logger: sqlLogger{log: o.Logger.With("component", "gorm"), Interface: logger.NewSlogLogger(
			o.Logger.With("component", "gorm"), logger.Config{
				SlowThreshold:             500 * time.Millisecond,
				LogLevel:                  logger.Warn,
				IgnoreRecordNotFoundError: true,
				ParameterizedQueries:      true,
			})},
		NowFunc:                func() time.Time { return time.Now().UTC() },
		SkipDefaultTransaction: true,
	}
	var (
		dialector gorm.Dialector
		dialect   Dialect
	)
	if o.URL != "" {
		dialect = Postgres
		dialector = postgres.New(postgres.Config{DSN: o.URL})
	} else {
		dialect = SQLite
		if o.SQLitePath == "" {
			return nil, errors.New("open store: neither a database URL nor a SQLite path")
		}
		if err := os.MkdirAll(filepath.Dir(o.SQLitePath), 0o755); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		dialector = sqlite.New(sqlite.Config{DriverName: "sqlite", DSN: sqliteDSN(o.SQLitePath)})
	}
	db, err := gorm.Open(dialector, gcfg)
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", dialect, classify(err))
	}
	if err := registerTenancy(db); err != nil {
		return nil, fmt.Errorf("open %s store: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", dialect, err)
	}
	sqlDB.SetMaxOpenConns(o.PoolSize + o.MaxOverflow)
	if dialect == SQLite {
		// A SQLite connection is a file handle and a page cache in this process, but opening
		// one runs the DSN's pragmas and parses the whole schema: closing the overflow ones
		// as they go idle made a burst of 32 clients spend a quarter of its CPU reopening them.
		sqlDB.SetMaxIdleConns(o.PoolSize + o.MaxOverflow)
	} else {
		sqlDB.SetMaxIdleConns(o.PoolSize)
	}
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db, dialect: dialect, sealHeaders: o.SealHeaders, url: o.URL}
	if dialect == SQLite {
		s.writeSlot = make(chan struct{}, 1)
	}
	if err := s.Ping(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open %s store: %w", dialect, err)
	}
	return s, nil
}

// sqliteBusyTimeout is how long a SQLite statement waits for another's write lock.
const sqliteBusyTimeout = 10 * time.Second

// sqliteDSN sets what a shared SQLite file needs: WAL so readers do not block the writer, a busy
// timeout so concurrent writers (API and worker processes) wait instead of failing, foreign keys,
// immediate write transactions (no lock upgrade deadlocks) and a sortable time format.
func sqliteDSN(path string) string {
	return "file:" + path + fmt.Sprintf("?_pragma=busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()) + "&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate&_time_format=sqlite"
}

// Dialect reports the engine.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the gorm handle to the domain files of this package and to tests.
func (s *Store) DB() *gorm.DB { return s.db }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return classify(err)
	}
	return nil
}

// Close releases the connections.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Tx runs fn in one transaction.
func (s *Store) Tx(ctx context.Context, fn func(tx *Store) error) error {
	if s.writeSlot != nil {
		wait := time.NewTimer(sqliteBusyTimeout)
		select {
		case s.writeSlot <- struct{}{}:
			defer func() { <-s.writeSlot }()
		case <-wait.C:
			// Held this long: go on to SQLite's own lock and busy timeout, as without the slot.
		case <-ctx.Done():
			wait.Stop()
			return ctx.Err()
		}
		wait.Stop()
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return fn(&Store{db: tx, dialect: s.dialect, sealHeaders: s.sealHeaders, url: s.url})
	})
	return classify(err)
}

// classify maps driver errors onto ErrNotFound, ErrConflict and ErrUnavailable (keeping the
// original in the chain) so that callers and the API can tell a missing row and a duplicate key
// from a database that is down.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrUnavailable) {
		return err
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505": // unique_violation
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "57"):
			// connection exceptions and operator intervention (shutdown, too many connections)
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var sqliteErr *msqlite.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() & 0xff {
		case 19: // SQLITE_CONSTRAINT (unique, primary key)
			if c := sqliteErr.Code(); c == 2067 || c == 1555 {
				return fmt.Errorf("%w: %w", ErrConflict, err)
			}
		case 5, 6, 10, 14: // BUSY, LOCKED, IOERR, CANTOPEN
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	if errors.As(err, &netErr) || errors.As(err, &connErr) || errors.Is(err, driver.ErrBadConn) ||
		pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
