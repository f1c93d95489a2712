package devserver

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// serverLogger adapts the server's tag-based logger to slog, dropping records under min. Stop
// raises min past every level: a server shutting down logs a burst of expected connection
// errors that would only alarm the reader.
type serverLogger struct {
	log *slog.Logger
	min *slog.LevelVar
}

// silenced is above every level the server logs at.
const silenced = slog.LevelError + 100

func newServerLogger(l *slog.Logger, min *slog.LevelVar) log.Logger {
	return serverLogger{log: l, min: min}
}

func (l serverLogger) emit(level slog.Level, msg string, tags []tag.Tag) {
	if level < l.min.Level() {
		return
	}
	attrs := make([]slog.Attr, 0, len(tags))
	for _, t := range tags {
		attrs = append(attrs, slog.Any(t.Key(), tagValue(t.Value())))
	}
	l.log.LogAttrs(context.Background(), level, msg, attrs...)
}

func tagValue(v any) any {
	switch x := v.(type) {
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	}
	return v
}

func (l serverLogger) Debug(msg string, tags ...tag.Tag) { l.emit(slog.LevelDebug, msg, tags) }
func (l serverLogger) Info(msg string, tags ...tag.Tag)  { l.emit(slog.LevelInfo, msg, tags) }
func (l serverLogger) Warn(msg string, tags ...tag.Tag)  { l.emit(slog.LevelWarn, msg, tags) }
func (l serverLogger) Error(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }

// DPanic is a development-time assertion in the server: logged as an error.
func (l serverLogger) DPanic(msg string, tags ...tag.Tag) { l.emit(slog.LevelError, msg, tags) }

// Panic and Fatal keep their contract (the server's code does not expect to return from them).
func (l serverLogger) Panic(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	panic("temporal server: " + msg)
}

func (l serverLogger) Fatal(msg string, tags ...tag.Tag) {
	l.emit(slog.LevelError, msg, tags)
	fmt.Fprintf(os.Stderr, "embedded temporal server: fatal: %s %v\n", msg, tags)
	os.Exit(1)
}

// With returns a logger that adds tags to every record.
func (l serverLogger) With(tags ...tag.Tag) log.Logger {
	args := make([]any, 0, len(tags))
	for _, t := range tags {
		args = append(args, slog.Any(t.Key(), tagValue(t.Value())))
	}
	return serverLogger{log: l.log.With(args...), min: l.min}
}
