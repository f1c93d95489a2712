package store

import (
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// spanKey keeps a statement's span between its before and after callbacks.
const spanKey = "automation:otel-span"

// Trace makes every statement a client span of tp (its SQL without bound values, the rows it
// affected, its error): database/sql instrumentation at the level of gorm's callbacks.
func (s *Store) Trace(tp trace.TracerProvider) error {
	tracer := tp.Tracer("gorm.io/gorm")
	system := "postgresql"
	if s.dialect == SQLite {
		system = "sqlite"
	}
	before := func(op string) func(*gorm.DB) {
		return func(db *gorm.DB) {
			if db.Statement == nil || db.Statement.Context == nil {
				return
			}
			ctx, span := tracer.Start(db.Statement.Context, "db."+op, trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("db.system.name", system), attribute.String("db.operation.name", op)))
			db.Statement.Context = ctx
			db.InstanceSet(spanKey, span)
		}
	}
	after := func(db *gorm.DB) {
		v, ok := db.InstanceGet(spanKey)
		if !ok {
			return
		}
		span := v.(trace.Span)
		if db.Statement != nil {
			span.SetAttributes(attribute.String("db.collection.name", db.Statement.Table),
				attribute.String("db.query.text", db.Statement.SQL.String()),
				attribute.Int64("db.response.returned_rows", db.RowsAffected))
		}
		if db.Error != nil && db.Error != gorm.ErrRecordNotFound {
			span.RecordError(db.Error)
			span.SetStatus(codes.Error, db.Error.Error())
		}
		span.End()
	}
	cb := s.db.Callback()
	for _, r := range []struct {
		op            string
		before, after interface {
			Register(string, func(*gorm.DB)) error
		}
	}{
		{"create", cb.Create().Before("gorm:create"), cb.Create().After("gorm:create")},
		{"query", cb.Query().Before("gorm:query"), cb.Query().After("gorm:query")},
		{"update", cb.Update().Before("gorm:update"), cb.Update().After("gorm:update")},
		{"delete", cb.Delete().Before("gorm:delete"), cb.Delete().After("gorm:delete")},
		{"row", cb.Row().Before("gorm:row"), cb.Row().After("gorm:row")},
		{"raw", cb.Raw().Before("gorm:raw"), cb.Raw().After("gorm:raw")},
	} {
		if err := r.before.Register("otel:before_"+r.op, before(r.op)); err != nil {
			return fmt.Errorf("trace %s statements: %w", r.op, err)
		}
		if err := r.after.Register("otel:after_"+r.op, after); err != nil {
			return fmt.Errorf("trace %s statements: %w", r.op, err)
		}
	}
	return nil
}
