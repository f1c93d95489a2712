package store

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// sqlLogger is gorm's slog logger with one change: a statement refused by a unique key is logged
// at debug instead of as an error. Such refusals are outcomes callers expect and handle (an
// idempotent insert that finds its row, a duplicate name answered 409), so logging them as
// errors buried real failures and filled passing test runs with "ERROR SQL executed".
type sqlLogger struct {
	logger.Interface
	log *slog.Logger
}

// ParamsFilter keeps gorm's ParameterizedQueries in force through the wrapper: statements are
// logged without their bound values.
func (l sqlLogger) ParamsFilter(ctx context.Context, sql string, params ...any) (string, []any) {
	if f, ok := l.Interface.(gorm.ParamsFilter); ok {
		return f.ParamsFilter(ctx, sql, params...)
	}
	return sql, nil
}

func (l sqlLogger) LogMode(level logger.LogLevel) logger.Interface {
	return sqlLogger{Interface: l.Interface.LogMode(level), log: l.log}
}

func (l sqlLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if err != nil && errors.Is(classify(err), ErrConflict) {
		if l.log.Enabled(ctx, slog.LevelDebug) {
			sql, rows := fc()
			l.log.DebugContext(ctx, "SQL refused by a unique key (the caller handles it)",
				"sql", sql, "rows", rows, "elapsed", time.Since(begin), "error", err)
		}
		return
	}
	l.Interface.Trace(ctx, begin, fc, err)
}
