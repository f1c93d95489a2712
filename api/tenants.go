package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/tenants"
)

// scopeInternal marks the routes only the internal API key may call (tenant management).
const scopeInternal = "internal"

// routeScopes is the scope each /api/v1 operation requires, by "METHOD /path" as routed. The
// OpenAPI document lists the same (x-required-scopes, set from this table when it is loaded);
// TestEveryRouteHasAScope fails for a route missing here.
var routeScopes = map[string]string{
	"POST /api/v1/diagnostics/ping": tenants.ScopeAdmin,

	"POST /api/v1/notifications/email":                tenants.ScopeNotificationsSend,
	"POST /api/v1/notifications/sms":                  tenants.ScopeNotificationsSend,
	"GET /api/v1/notifications":                       tenants.ScopeNotificationsRead,
	"GET /api/v1/notifications/:id":                   tenants.ScopeNotificationsRead,
	"GET /api/v1/notifications/templates":             tenants.ScopeNotificationsRead,
	"POST /api/v1/notifications/templates":            tenants.ScopeTemplatesWrite,
	"GET /api/v1/notifications/templates/:id":         tenants.ScopeNotificationsRead,
	"PUT /api/v1/notifications/templates/:id":         tenants.ScopeTemplatesWrite,
	"DELETE /api/v1/notifications/templates/:id":      tenants.ScopeTemplatesWrite,
	"POST /api/v1/notifications/templates/:id/render": tenants.ScopeNotificationsRead,
	"POST /api/v1/notifications/providers/bounces":    tenants.ScopeNotificationsSend,
	"POST /api/v1/subscribers":                        tenants.ScopeNotificationsSend,
	"GET /api/v1/subscribers":                         tenants.ScopeNotificationsRead,
	"GET /api/v1/subscribers/:id":                     tenants.ScopeNotificationsRead,
	"PATCH /api/v1/subscribers/:id":                   tenants.ScopeNotificationsSend,
	"DELETE /api/v1/subscribers/:id":                  tenants.ScopeNotificationsSend,
	"PUT /api/v1/subscribers/:id/preferences":         tenants.ScopeNotificationsSend,
	"GET /api/v1/notification-categories":             tenants.ScopeNotificationsRead,
	"POST /api/v1/notification-categories":            tenants.ScopeTemplatesWrite,
	"PUT /api/v1/notification-categories/:id":         tenants.ScopeTemplatesWrite,
	"DELETE /api/v1/notification-categories/:id":      tenants.ScopeTemplatesWrite,
	"GET /api/v1/suppressions":                        tenants.ScopeNotificationsRead,
	"DELETE /api/v1/suppressions/:channel/:address":   tenants.ScopeNotificationsSend,
	"GET /api/v1/notifications/settings":              tenants.ScopeNotificationsRead,
	"PUT /api/v1/notifications/settings":              tenants.ScopeTemplatesWrite,

	"GET /api/v1/workflows":                       tenants.ScopeWorkflowsRead,
	"POST /api/v1/workflows":                      tenants.ScopeWorkflowsWrite,
	"GET /api/v1/workflows/:id":                   tenants.ScopeWorkflowsRead,
	"PUT /api/v1/workflows/:id":                   tenants.ScopeWorkflowsWrite,
	"DELETE /api/v1/workflows/:id":                tenants.ScopeWorkflowsWrite,
	"GET /api/v1/workflows/:id/versions":          tenants.ScopeWorkflowsRead,
	"GET /api/v1/workflows/:id/versions/:version": tenants.ScopeWorkflowsRead,
	"POST /api/v1/workflows/:id/execute":          tenants.ScopeWorkflowsExecute,
	"POST /api/v1/workflows/:id/pause":            tenants.ScopeWorkflowsWrite,
	"POST /api/v1/workflows/:id/resume":           tenants.ScopeWorkflowsWrite,
	"GET /api/v1/executions":                      tenants.ScopeWorkflowsRead,
	"GET /api/v1/executions/:id":                  tenants.ScopeWorkflowsRead,
	"POST /api/v1/executions/:id/cancel":          tenants.ScopeWorkflowsExecute,
	"POST /api/v1/executions/:id/terminate":       tenants.ScopeWorkflowsExecute,
	"POST /api/v1/executions/:id/signal/:name":    tenants.ScopeWorkflowsExecute,
	"POST /api/v1/executions/:id/retry":           tenants.ScopeWorkflowsExecute,

	"POST /api/v1/events":    tenants.ScopeEventsWrite,
	"GET /api/v1/events":     tenants.ScopeEventsRead,
	"GET /api/v1/events/:id": tenants.ScopeEventsRead,

	"POST /api/v1/automation/rules":                     tenants.ScopeRulesWrite,
	"GET /api/v1/automation/rules":                      tenants.ScopeRulesRead,
	"GET /api/v1/automation/rules/:id":                  tenants.ScopeRulesRead,
	"PUT /api/v1/automation/rules/:id":                  tenants.ScopeRulesWrite,
	"DELETE /api/v1/automation/rules/:id":               tenants.ScopeRulesWrite,
	"POST /api/v1/automation/rules/:id/enable":          tenants.ScopeRulesWrite,
	"POST /api/v1/automation/rules/:id/disable":         tenants.ScopeRulesWrite,
	"GET /api/v1/automation/rules/:id/versions":         tenants.ScopeRulesRead,
	"POST /api/v1/automation/rules/:id/test":            tenants.ScopeRulesRead,
	"POST /api/v1/automation/test":                      tenants.ScopeRulesRead,
	"GET /api/v1/automation/rules/:id/executions":       tenants.ScopeRulesRead,
	"GET /api/v1/automation/executions/:id":             tenants.ScopeRulesRead,
	"POST /api/v1/webhooks/endpoints":                   tenants.ScopeWebhooksWrite,
	"GET /api/v1/webhooks/endpoints":                    tenants.ScopeWebhooksRead,
	"GET /api/v1/webhooks/endpoints/:id":                tenants.ScopeWebhooksRead,
	"PATCH /api/v1/webhooks/endpoints/:id":              tenants.ScopeWebhooksWrite,
	"DELETE /api/v1/webhooks/endpoints/:id":             tenants.ScopeWebhooksWrite,
	"GET /api/v1/webhooks/endpoints/:id/secret":         tenants.ScopeWebhooksWrite,
	"POST /api/v1/webhooks/endpoints/:id/secret/rotate": tenants.ScopeWebhooksWrite,
	"POST /api/v1/webhooks/endpoints/:id/recover":       tenants.ScopeWebhooksWrite,
	"POST /api/v1/webhooks/deliver":                     tenants.ScopeWebhooksWrite,
	"GET /api/v1/webhooks/messages/:id":                 tenants.ScopeWebhooksRead,
	"GET /api/v1/webhooks/deliveries":                   tenants.ScopeWebhooksRead,
	"GET /api/v1/webhooks/deliveries/:id":               tenants.ScopeWebhooksRead,
	"POST /api/v1/webhooks/deliveries/:id/retry":        tenants.ScopeWebhooksWrite,
	"POST /api/v1/webhooks/sources":                     tenants.ScopeWebhooksWrite,
	"GET /api/v1/webhooks/sources":                      tenants.ScopeWebhooksRead,
	"GET /api/v1/webhooks/sources/:id":                  tenants.ScopeWebhooksRead,
	"DELETE /api/v1/webhooks/sources/:id":               tenants.ScopeWebhooksWrite,

	"POST /api/v1/tenants":        scopeInternal,
	"GET /api/v1/tenants":         scopeInternal,
	"GET /api/v1/tenants/:id":     scopeInternal,
	"PATCH /api/v1/tenants/:id":   scopeInternal,
	"DELETE /api/v1/tenants/:id":  scopeInternal,
	"POST /api/v1/api-keys":       tenants.ScopeAdmin,
	"GET /api/v1/api-keys":        tenants.ScopeAdmin,
	"GET /api/v1/api-keys/:id":    tenants.ScopeAdmin,
	"DELETE /api/v1/api-keys/:id": tenants.ScopeAdmin,
	"GET /api/v1/audit-log":       tenants.ScopeAdmin,

	// The event catalog (issue 17) and the endpoint tools.
	"POST /api/v1/event-types":                           tenants.ScopeEventsWrite,
	"GET /api/v1/event-types":                            tenants.ScopeEventsRead,
	"GET /api/v1/event-types/:name":                      tenants.ScopeEventsRead,
	"PATCH /api/v1/event-types/:name":                    tenants.ScopeEventsWrite,
	"DELETE /api/v1/event-types/:name":                   tenants.ScopeEventsWrite,
	"GET /api/v1/event-catalog/settings":                 tenants.ScopeEventsRead,
	"PATCH /api/v1/event-catalog/settings":               tenants.ScopeAdmin,
	"GET /api/v1/asyncapi.json":                          tenants.ScopeEventsRead,
	"POST /api/v1/webhooks/endpoints/:id/transform/test": tenants.ScopeWebhooksRead,
	"POST /api/v1/webhooks/endpoints/:id/test":           tenants.ScopeWebhooksWrite,
	"GET /api/v1/webhooks/endpoints/:id/stats":           tenants.ScopeWebhooksRead,
}

// authorize refuses a request whose credential lacks the route's scope: 403 naming it.
// Unrouted paths (the groups' catch-alls under /api/v1, which answer 404, or 405 with Allow for a
// wrong method on a known path) pass on to answer as they do.
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		route := c.Path()
		if route == "/api/v1" || strings.HasSuffix(route, "/*") {
			return next(c)
		}
		need, ok := routeScopes[c.Request().Method+" "+route]
		p := principal(c)
		switch {
		case !ok:
			return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "this operation has no scope assigned"}
		case need == scopeInternal && !p.Internal:
			return &Error{Status: http.StatusForbidden, Code: "forbidden",
				Message: "only the internal API key manages tenants"}
		case need != scopeInternal && !p.Has(need):
			return &Error{Status: http.StatusForbidden, Code: "insufficient_scope",
				Message: fmt.Sprintf("this operation requires the scope %q", need),
				Details: map[string]any{"required_scope": need}}
		}
		return next(c)
	}
}

// routeQuotas are the tenant quotas the routes that create what they bound check first.
var routeQuotas = map[string]string{
	"POST /api/v1/webhooks/endpoints":    tenants.QuotaEndpoints,
	"POST /api/v1/automation/rules":      tenants.QuotaRules,
	"POST /api/v1/workflows/:id/execute": tenants.QuotaExecutionsPerDay,
	"POST /api/v1/notifications/email":   tenants.QuotaMessagesPerDay,
	"POST /api/v1/notifications/sms":     tenants.QuotaMessagesPerDay,
}

// quotaRefusal is the 403 quota_exceeded of a quota the store found reached as it counted the
// create (nil for any other error): the route's check let it through, a concurrent create took
// the last unit.
func quotaRefusal(err error) *Error {
	var qe *store.QuotaError
	if !errors.As(err, &qe) {
		return nil
	}
	return &Error{Status: http.StatusForbidden, Code: "quota_exceeded", Message: qe.Error(),
		Details: map[string]any{"quota": qe.Quota, "limit": qe.Limit}}
}

// quota refuses a create that would pass one of the tenant's quotas: 403 quota_exceeded naming
// it.
func (s *Server) quota(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		q, ok := routeQuotas[c.Request().Method+" "+c.Path()]
		t, has := c.Get(tenantKey).(tenants.Tenant)
		if !ok || !has {
			return next(c)
		}
		err := s.tenants.CheckQuota(c.Request().Context(), t, q)
		var qe *tenants.QuotaError
		if errors.As(err, &qe) {
			return &Error{Status: http.StatusForbidden, Code: "quota_exceeded", Message: qe.Error(),
				Details: map[string]any{"quota": qe.Quota, "limit": qe.Limit}}
		}
		if err != nil {
			return err
		}
		return next(c)
	}
}

// auditSkipped are POST operations that change nothing (dry runs, renders, pings).
var auditSkipped = map[string]bool{
	"POST /api/v1/diagnostics/ping":                   true,
	"POST /api/v1/notifications/templates/:id/render": true,
	"POST /api/v1/automation/rules/:id/test":          true,
	"POST /api/v1/automation/test":                    true,
}

// audit records every successful change (POST, PUT, PATCH, DELETE) in the audit log of the
// request's tenant: principal, action (method and route), resource and id, status. A failure to
// record is logged; it does not undo the change that was made.
func (s *Server) audit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions {
			return next(c)
		}
		// A create names its new resource only in its response: the id is taken from there.
		var created *auditCapture
		if req.Method == http.MethodPost {
			created = &auditCapture{ResponseWriter: c.Response().Writer}
			c.Response().Writer = created
			defer func() { c.Response().Writer = created.ResponseWriter }()
		}
		err := next(c)
		route := c.Path()
		action := req.Method + " " + route
		if _, routed := routeScopes[action]; !routed || auditSkipped[action] {
			return err
		}
		status := c.Response().Status
		if err != nil {
			var apiErr *Error
			if !errors.As(err, &apiErr) {
				return err
			}
			status = apiErr.Status
		}
		if status >= 400 || status == 0 {
			return err
		}
		resource := strings.TrimPrefix(route, "/api/v1/")
		if i := strings.Index(resource, "/:"); i >= 0 {
			resource = resource[:i]
		}
		id := c.Param("id")
		if id == "" {
			id = c.Param("source")
		}
		if id == "" && created != nil {
			id = created.resourceID()
		}
		p := principal(c)
		if rerr := s.tenants.Record(req.Context(), store.AuditEntry{
			Principal: p.Label(), Action: action, Resource: resource, ResourceID: id, Status: status,
			RequestID: c.Response().Header().Get(headerRequestID),
		}); rerr != nil {
			s.log.ErrorContext(req.Context(), "audit log entry not written", "action", action, "error", rerr)
		}
		return err
	}
}

// auditCapture keeps the start of a POST's response for the audit log: the id of what it created.
type auditCapture struct {
	http.ResponseWriter
	buf []byte
}

// auditCaptureMax bounds what is kept: the id comes first in every created resource's body.
const auditCaptureMax = 64 << 10

func (w *auditCapture) Write(b []byte) (int, error) {
	if room := auditCaptureMax - len(w.buf); room > 0 {
		w.buf = append(w.buf, b[:min(room, len(b))]...)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer (flushes, deadlines).
func (w *auditCapture) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// resourceID is the id a create answered with: its body's "id", or the id of what it started
// (an execution, a message, an event); "" when the body names none.
func (w *auditCapture) resourceID() string {
	var body map[string]json.RawMessage
	if json.Unmarshal(w.buf, &body) != nil {
		return ""
	}
	for _, k := range []string{"id", "execution_id", "message_id", "event_id", "notification_id"} {
		var id string
		if json.Unmarshal(body[k], &id) == nil && id != "" {
			return id
		}
	}
	return ""
}

func (s *Server) tenantRoutes(v1 *echo.Group) {
	v1.POST("/tenants", s.createTenant)
	v1.GET("/tenants", s.listTenants)
	v1.GET("/tenants/:id", s.getTenant)
	v1.PATCH("/tenants/:id", s.updateTenant)
	v1.DELETE("/tenants/:id", s.deleteTenant)
	v1.POST("/api-keys", s.createAPIKey)
	v1.GET("/api-keys", s.listAPIKeys)
	v1.GET("/api-keys/:id", s.getAPIKey)
	v1.DELETE("/api-keys/:id", s.revokeAPIKey)
	v1.GET("/audit-log", s.listAudit)
}

// createTenant: POST /api/v1/tenants {id, name, limits, enabled} → 201 (internal key only).
func (s *Server) createTenant(c echo.Context) error {
	in := struct {
		ID      string         `json:"id"`
		Name    string         `json:"name"`
		Limits  tenants.Limits `json:"limits"`
		Enabled *bool          `json:"enabled"`
	}{}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	t := tenants.Tenant{ID: in.ID, Name: in.Name, Limits: in.Limits, Enabled: in.Enabled == nil || *in.Enabled}
	out, err := s.tenants.Create(c.Request().Context(), t)
	if errors.Is(err, store.ErrConflict) {
		return Conflict("tenant %q exists", in.ID)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) listTenants(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	items, next, err := s.tenants.List(c.Request().Context(), page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

func (s *Server) getTenant(c echo.Context) error {
	t, err := s.tenants.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "tenant", c.Param("id"))
	}
	return c.JSON(http.StatusOK, t)
}

func (s *Server) updateTenant(c echo.Context) error {
	var patch tenants.Patch
	if err := decodeJSON(c, &patch); err != nil {
		return err
	}
	t, err := s.tenants.Update(c.Request().Context(), c.Param("id"), patch)
	if err != nil {
		return notFoundAs(err, "tenant", c.Param("id"))
	}
	return c.JSON(http.StatusOK, t)
}

func (s *Server) deleteTenant(c echo.Context) error {
	err := s.tenants.Delete(c.Request().Context(), c.Param("id"))
	if errors.Is(err, store.ErrConflict) {
		return Conflict("tenant %q still owns resources, or is the default tenant", c.Param("id"))
	}
	if err != nil {
		return notFoundAs(err, "tenant", c.Param("id"))
	}
	return c.NoContent(http.StatusNoContent)
}

// createAPIKey: POST /api/v1/api-keys {name, scopes, expires_at} → 201 with the key's text in
// "key", shown this once.
func (s *Server) createAPIKey(c echo.Context) error {
	var in tenants.NewKey
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	k, text, err := s.tenants.CreateKey(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, struct {
		tenants.Key
		Secret string `json:"key"`
	}{k, text})
}

func (s *Server) listAPIKeys(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	items, next, err := s.tenants.ListKeys(c.Request().Context(), page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

func (s *Server) getAPIKey(c echo.Context) error {
	k, err := s.tenants.GetKey(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "API key", c.Param("id"))
	}
	return c.JSON(http.StatusOK, k)
}

// revokeAPIKey: DELETE /api/v1/api-keys/{id} → 200 with the revoked key; the next request with
// it is refused by every API process.
func (s *Server) revokeAPIKey(c echo.Context) error {
	k, err := s.tenants.RevokeKey(c.Request().Context(), c.Param("id"))
	if err != nil {
		return notFoundAs(err, "API key", c.Param("id"))
	}
	return c.JSON(http.StatusOK, k)
}

// listAudit: GET /api/v1/audit-log, the request's tenant's entries; the internal key without
// X-Tenant-ID sees every tenant's.
func (s *Server) listAudit(c echo.Context) error {
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if p := principal(c); p.Internal && c.Request().Header.Get(headerTenantID) == "" {
		ctx = tenant.System(ctx)
	}
	items, next, err := s.tenants.Audit(ctx, page)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newPage(items, next))
}

// documentScopes sets, on every /api/v1 operation of the OpenAPI document, the scope routeScopes
// requires (x-required-scopes; the internal key's own operations say so) and the 403 it answers
// without it.
func documentScopes(doc map[string]any) {
	paths, _ := doc["paths"].(map[string]any)
	param := strings.NewReplacer("{", ":", "}", "")
	for path, item := range paths {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		ops, _ := item.(map[string]any)
		for method, op := range ops {
			o, ok := op.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			need, ok := routeScopes[strings.ToUpper(method)+" "+param.Replace(path)]
			if !ok {
				continue
			}
			if need == scopeInternal {
				o["x-required-scopes"] = []any{}
				o["x-internal-key-only"] = true
			} else {
				o["x-required-scopes"] = []any{need}
			}
			if rs, ok := o["responses"].(map[string]any); ok {
				if _, has := rs["403"]; !has {
					rs["403"] = map[string]any{"$ref": "#/components/responses/Forbidden"}
				}
			}
		}
	}
}
