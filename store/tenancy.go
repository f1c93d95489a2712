package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/pyairtable/automation-domain/internal/tenant"
)

// Tenancy is one mechanism, applied to every statement in gorm callbacks (registerTenancy): the
// tenant of the statement's context (tenant.From) is added as `tenant_id = ?` to every query,
// update and delete of a tenant-owned table, and stamped on every row created. Hand-written SQL
// (Raw, Exec) cannot be rewritten: on a tenant-owned table it must filter on tenant_id itself, or
// run in tenant.System, or the statement is refused (ErrUnscoped). store tests run every
// statement through these callbacks, so a query that escapes the filter fails them.

// ErrUnscoped refuses a statement that would read or write tenant-owned rows without a tenant.
var ErrUnscoped = errors.New("statement on a tenant-owned table without a tenant filter")

// tenantTables are the tables with a tenant_id column (schemas 00009, 00010).
var tenantTables = map[string]bool{}

// tenantTableRe finds a tenant-owned table's name in hand-written SQL.
var tenantTableRe *regexp.Regexp

func init() {
	names := strings.Fields(`workflows events workflow_versions workflow_executions workflow_execution_steps
		notification_templates notification_template_versions notifications notification_deliveries
		notification_attempts notification_throttle_slots webhook_endpoints webhook_messages
		webhook_deliveries webhook_attempts webhook_sources webhook_inbound_seen automation_rules
		automation_rule_versions automation_event_evaluations automation_executions
		automation_action_outcomes api_keys audit_log tenant_quota_usage subscribers subscriber_preferences
		notification_categories notification_suppressions notification_settings event_types event_catalog_settings
		notification_digests`)
	for _, n := range names {
		tenantTables[n] = true
	}
	tenantTableRe = regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
}

// TenantOwned reports whether table holds a tenant_id column filtered by the store.
func TenantOwned(table string) bool { return tenantTables[table] }

func registerTenancy(db *gorm.DB) error {
	cb := db.Callback()
	for _, r := range []struct {
		name string
		err  error
	}{
		{"query", cb.Query().Before("gorm:query").Register("tenant:query", scopeStatement)},
		{"row", cb.Row().Before("gorm:row").Register("tenant:row", scopeStatement)},
		{"update", cb.Update().Before("gorm:update").Register("tenant:update", scopeStatement)},
		{"delete", cb.Delete().Before("gorm:delete").Register("tenant:delete", scopeStatement)},
		{"create", cb.Create().Before("gorm:create").Register("tenant:create", stampCreate)},
		{"raw", cb.Raw().Before("gorm:raw").Register("tenant:raw", scopeStatement)},
	} {
		if r.err != nil {
			return fmt.Errorf("register tenant %s callback: %w", r.name, r.err)
		}
	}
	return nil
}

// statementTable is the table a gorm-built statement works on ("" when unknown).
func statementTable(stmt *gorm.Statement) string {
	t := stmt.Table
	if t == "" && stmt.Schema != nil {
		t = stmt.Schema.Table
	}
	// "webhook_deliveries AS d"
	if name, _, ok := strings.Cut(t, " "); ok {
		return name
	}
	return t
}

// tableAlias is the name a statement's columns are qualified with: the alias of "t AS a", or t.
func tableAlias(stmt *gorm.Statement) string {
	t := stmt.Table
	if t == "" && stmt.Schema != nil {
		t = stmt.Schema.Table
	}
	f := strings.Fields(t)
	if len(f) == 3 && strings.EqualFold(f[1], "as") {
		return f[2]
	}
	return statementTable(stmt)
}

func scopeStatement(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	stmt := db.Statement
	id, system := tenant.From(stmt.Context)
	if stmt.SQL.Len() > 0 { // hand-written
		sql := stmt.SQL.String()
		if !system && tenantTableRe.MatchString(sql) && !strings.Contains(sql, "tenant_id") {
			_ = db.AddError(fmt.Errorf("%w: %s", ErrUnscoped, firstWords(sql)))
		}
		return
	}
	table := statementTable(stmt)
	if system || !tenantTables[table] {
		return
	}
	stmt.AddClause(clause.Where{Exprs: []clause.Expression{
		clause.Eq{Column: clause.Column{Table: tableAlias(stmt), Name: "tenant_id"}, Value: id},
	}})
	if stmt.Schema != nil && stmt.ReflectValue.IsValid() && stmt.ReflectValue.Kind() == reflect.Struct {
		// Save of a whole row writes tenant_id too: keep it the statement's tenant.
		if f := stmt.Schema.LookUpField("TenantID"); f != nil {
			if v, zero := f.ValueOf(stmt.Context, stmt.ReflectValue); zero || v != id {
				_ = f.Set(stmt.Context, stmt.ReflectValue, id)
			}
		}
	}
}

// stampCreate sets the tenant of every row created: the statement's tenant, or in tenant.System
// the one the row names already (a row without one is refused).
func stampCreate(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	stmt := db.Statement
	id, system := tenant.From(stmt.Context)
	if stmt.SQL.Len() > 0 {
		scopeStatement(db)
		return
	}
	if stmt.Schema == nil || !tenantTables[statementTable(stmt)] {
		return
	}
	f := stmt.Schema.LookUpField("TenantID")
	if f == nil {
		_ = db.AddError(fmt.Errorf("%w: model %s has no TenantID", ErrUnscoped, stmt.Schema.Name))
		return
	}
	set := func(rv reflect.Value) {
		for rv.Kind() == reflect.Pointer {
			rv = rv.Elem()
		}
		v, zero := f.ValueOf(stmt.Context, rv)
		switch {
		case system && zero:
			_ = db.AddError(fmt.Errorf("%w: a %s row created across tenants names none", ErrUnscoped, stmt.Schema.Table))
		case system:
		case zero:
			_ = f.Set(stmt.Context, rv, id)
		case v != id:
			_ = db.AddError(fmt.Errorf("%w: a %s row of tenant %v created for tenant %s", ErrUnscoped, stmt.Schema.Table, v, id))
		}
	}
	switch rv := stmt.ReflectValue; rv.Kind() {
	case reflect.Slice, reflect.Array:
		for i := 0; i < rv.Len(); i++ {
			set(rv.Index(i))
		}
	case reflect.Struct:
		set(rv)
	}
}

func firstWords(sql string) string {
	if len(sql) > 60 {
		return sql[:60] + "…"
	}
	return sql
}

// tenantFilter is the condition hand-written SQL adds for the statement's tenant (" AND
// tenant_id = ?" and its argument; nothing in tenant.System). column qualifies it ("d.tenant_id").
func tenantFilter(ctx context.Context, column string) (string, []any) {
	id, system := tenant.From(ctx)
	if system {
		return "", nil
	}
	return " AND " + column + " = ?", []any{id}
}

// rowTenant is the tenant a row written by hand-written SQL belongs to: the one it names, which
// must be the context's unless that is tenant.System, else the context's.
func rowTenant(ctx context.Context, named string) (string, error) {
	id, system := tenant.From(ctx)
	switch {
	case system && named == "":
		return "", fmt.Errorf("%w: a row created across tenants names none", ErrUnscoped)
	case system:
		return named, nil
	case named != "" && named != id:
		return "", fmt.Errorf("%w: a row of tenant %s created for tenant %s", ErrUnscoped, named, id)
	}
	return id, nil
}
