// Package tenant carries the tenant a piece of work acts for in its context.Context: the API sets
// it from the caller's credentials, the Temporal context propagator (app) carries it from the
// request into workflows and their activities, and the store filters every statement on a
// tenant-owned table by it. A context without a tenant acts for Default, so work started before
// tenants existed keeps acting on the data it always had; System (cross-tenant maintenance such as
// the webhook sweeper) must be asked for explicitly.
package tenant

import (
	"context"
	"regexp"
	"strings"
)

// Default is the tenant that existing data was migrated to and that requests without a tenant
// act for.
const Default = "default"

type ctxKey struct{}

type scope struct {
	id     string
	system bool
}

// With returns ctx acting for tenant id ("" means Default).
func With(ctx context.Context, id string) context.Context {
	if id == "" {
		id = Default
	}
	return context.WithValue(ctx, ctxKey{}, scope{id: id})
}

// System returns ctx acting across every tenant: statements are not filtered and rows it
// creates must name their tenant. Only background maintenance uses it.
func System(ctx context.Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, scope{system: true})
}

// From returns the tenant ctx acts for (Default when none was set) and whether it is System
// (then id is "").
func From(ctx context.Context) (id string, system bool) {
	s, ok := ctx.Value(ctxKey{}).(scope)
	if !ok {
		return Default, false
	}
	return s.id, s.system
}

// ID is From without the System flag: the tenant id, or "" in System.
func ID(ctx context.Context) string {
	id, _ := From(ctx)
	return id
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidID reports whether id can name a tenant: 1–63 lower-case letters, digits, '-' and '_',
// starting with a letter or digit (it goes into Temporal workflow ids and search attributes).
func ValidID(id string) bool { return idPattern.MatchString(id) }

// WorkflowID is the Temporal workflow id of a workflow the service names id, started for tenant
// tenantID: "<tenant>/<id>" for every tenant but the default one, whose ids are what they were
// before tenants (so that its running workflows go on being found). A prefixed id is left alone.
func WorkflowID(tenantID, id string) string {
	if tenantID == "" || tenantID == Default || id == "" || strings.HasPrefix(id, tenantID+"/") {
		return id
	}
	return tenantID + "/" + id
}
