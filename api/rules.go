package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/rules"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// ruleRequest is the body of POST and PUT /api/v1/automation/rules: the seed's rule body
// (rules.Definition) and whether the rule is enabled (default true on create, unchanged on
// replace).
type ruleRequest struct {
	rules.Definition
	Enabled *bool `json:"enabled"`
}

// ruleView is a rule as the API shows it.
type ruleView struct {
	ID string `json:"id"`
	rules.Definition
	Enabled    bool      `json:"enabled"`
	Version    int       `json:"version"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
	ScheduleID string    `json:"schedule_id,omitempty"`
}

func viewRule(r store.Rule) (ruleView, error) {
	v := ruleView{ID: r.ID, Enabled: r.Enabled, Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal(r.Definition, &v.Definition); err != nil {
		return v, err
	}
	if v.Conditions == nil {
		v.Conditions = []rules.Condition{}
	}
	if v.Trigger.Type == rules.TriggerSchedule {
		v.ScheduleID = rules.ScheduleID(r.ID)
	}
	return v, nil
}

// ruleFields are the keys a rule body may have, by object; read-only fields of a rule as GET
// returns it are accepted (and ignored) so that a fetched rule can be sent back with PUT.
var ruleFields = map[string][]string{
	"":           {"name", "description", "trigger", "conditions", "actions", "priority", "enabled", "stop_processing", "cooldown", "rate_limit", "dedup_key", "dedup_window", "id", "version", "created_at", "updated_at", "schedule_id"},
	"trigger":    {"type", "event_type", "cron", "timezone", "source"},
	"rate_limit": {"max_runs", "window"},
	"condition":  {"type", "field", "operator", "value", "expression", "all", "any", "not"},
	"action":     {"type", "workflow_id", "input_data", "priority", "notification_type", "template", "to", "subject", "body", "message", "template_data", "event_type", "payload", "data", "continue_on_error"},
}

// checkRuleShape reports unknown fields (a typo must not be silently ignored) and malformed
// durations, each with its path.
func checkRuleShape(body map[string]any) validation.Problems {
	var p validation.Problems
	known := func(path, kind string, obj map[string]any) {
		allowed := map[string]bool{}
		for _, f := range ruleFields[kind] {
			allowed[f] = true
		}
		for k := range obj {
			if !allowed[k] {
				p.Add(validation.Join(path, k), "is not a field of a rule %s", map[string]string{
					"": "", "trigger": "trigger", "rate_limit": "rate limit", "condition": "condition", "action": "action",
				}[kind])
			}
		}
	}
	duration := func(path string, v any) {
		switch x := v.(type) {
		case nil:
		case json.Number:
			if f, err := x.Float64(); err != nil || f < 0 {
				p.Add(path, "must be a non-negative number of seconds or a duration such as \"5m\"")
			}
		case string:
			if _, err := rules.ParseDuration(x); err != nil {
				p.Add(path, "%v", err)
			}
		default:
			p.Add(path, "must be a number of seconds or a duration such as \"5m\"")
		}
	}
	var condition func(path string, v any)
	condition = func(path string, v any) {
		c, ok := v.(map[string]any)
		if !ok {
			if v != nil {
				p.Add(path, "must be an object")
			}
			return
		}
		known(path, "condition", c)
		for _, group := range []string{"all", "any"} {
			if list, ok := c[group].([]any); ok {
				for i, child := range list {
					condition(validation.Index(validation.Join(path, group), i), child)
				}
			}
		}
		if not, ok := c["not"]; ok {
			condition(validation.Join(path, "not"), not)
		}
	}
	known("", "", body)
	if t, ok := body["trigger"].(map[string]any); ok {
		known("trigger", "trigger", t)
	} else if body["trigger"] != nil {
		p.Add("trigger", "must be an object")
	}
	if rl, ok := body["rate_limit"].(map[string]any); ok {
		known("rate_limit", "rate_limit", rl)
		duration("rate_limit.window", rl["window"])
	}
	duration("cooldown", body["cooldown"])
	duration("dedup_window", body["dedup_window"])
	if list, ok := body["conditions"].([]any); ok {
		for i, c := range list {
			condition(validation.Index("conditions", i), c)
		}
	}
	if list, ok := body["actions"].([]any); ok {
		for i, a := range list {
			if obj, ok := a.(map[string]any); ok {
				known(validation.Index("actions", i), "action", obj)
			} else {
				p.Add(validation.Index("actions", i), "must be an object")
			}
		}
	}
	return p
}

// decodeRuleJSON turns a rule body into a definition: 400 for malformed JSON, 422 listing every
// unknown field, wrong type and failed check.
func decodeRuleJSON(raw json.RawMessage, prefix string) (ruleRequest, validation.Problems, error) {
	var req ruleRequest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil || body == nil {
		return req, nil, Unprocessable(prefix, "must be a JSON object (a rule)")
	}
	var problems validation.Problems
	problems.Extend(prefix, checkRuleShape(body))
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typ):
			// The rule's fields are those of the embedded Definition.
			field := strings.TrimPrefix(typ.Field, "Definition.")
			problems.Add(validation.Join(prefix, field), "must be %s, got %s", jsonTypeName(typ.Type.Kind().String()), typ.Value)
		case len(problems) == 0: // a malformed duration is reported by checkRuleShape already
			problems.Add(prefix, "%v", err)
		}
		return req, problems, errDecode
	}
	return req, problems, nil
}

// errDecode says that the rule body did not decode: its problems are all there is to report.
var errDecode = errors.New("rule body does not decode")

// readRule decodes and validates the rule body of a request.
func (s *Server) readRule(c echo.Context) (ruleRequest, error) {
	var raw json.RawMessage
	if err := decodeJSON(c, &raw); err != nil {
		return ruleRequest{}, err
	}
	req, problems, err := decodeRuleJSON(raw, "")
	if err != nil && !errors.Is(err, errDecode) {
		return req, err
	}
	if err == nil {
		_, more := rules.Compile("", 0, req.Definition, rules.CompileOptions{
			Templates: s.templates, Targets: s.opts.RuleTargets, CheckTargets: true,
		})
		problems = append(problems, more...)
	}
	return req, problems.Err()
}

func fillRule(r *store.Rule, def rules.Definition) {
	if def.Conditions == nil {
		def.Conditions = []rules.Condition{}
	}
	r.Name, r.Description, r.Priority = def.Name, def.Description, def.Priority
	r.TriggerType, r.EventType, r.Source = def.Trigger.Type, def.Trigger.EventType, def.Trigger.Source
	r.Definition = store.MustJSON(def)
}

// syncSchedule brings the Temporal Schedule of r in line (only rules that have or had a
// schedule trigger touch Temporal). A schedule Temporal refuses is a 422 on the trigger.
func (s *Server) syncSchedule(ctx context.Context, r store.Rule, def rules.Definition, hadSchedule bool) error {
	if def.Trigger.Type != rules.TriggerSchedule && !hadSchedule {
		return nil
	}
	err := s.schedules.Sync(ctx, r, def.Trigger)
	if err != nil && rules.IsPermanent(err) {
		return Unprocessable("trigger.cron", "%v", err)
	}
	return err
}

// createRule: POST /api/v1/automation/rules → 201 with the rule (version 1).
func (s *Server) createRule(c echo.Context) error {
	req, err := s.readRule(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	now := time.Now().UTC()
	r := store.Rule{ID: newID(), Enabled: req.Enabled == nil || *req.Enabled, CreatedAt: now, UpdatedAt: now}
	fillRule(&r, req.Definition)
	// The Schedule is created inside the transaction: if Temporal refuses it, no rule is stored.
	err = s.store.Tx(ctx, func(tx *store.Store) error {
		if err := tx.CreateRule(ctx, &r); err != nil {
			return err
		}
		return s.syncSchedule(ctx, r, req.Definition, false)
	})
	if err != nil {
		return err
	}
	v, err := viewRule(r)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/api/v1/automation/rules/"+r.ID)
	return c.JSON(http.StatusCreated, v)
}

// listRules: GET /api/v1/automation/rules?enabled=&trigger_type=&name=&limit=&cursor=
func (s *Server) listRules(c echo.Context) error {
	var problems validation.Problems
	page, err := pageParams(c)
	if err != nil {
		return err
	}
	f := store.RuleFilter{Name: c.QueryParam("name"), TriggerType: c.QueryParam("trigger_type"),
		Enabled: boolParam(c, "enabled", &problems)}
	oneOf(&problems, "trigger_type", f.TriggerType, rules.TriggerEvent, rules.TriggerSchedule, rules.TriggerWebhook)
	if err := problems.Err(); err != nil {
		return err
	}
	items, next, err := s.store.ListRules(c.Request().Context(), f, page)
	if err != nil {
		return err
	}
	out := make([]ruleView, 0, len(items))
	for _, r := range items {
		v, err := viewRule(r)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	return c.JSON(http.StatusOK, newPage(out, next))
}

func (s *Server) loadRule(c echo.Context) (store.Rule, error) {
	id := c.Param("id")
	r, err := s.store.GetRule(c.Request().Context(), id)
	if isNotFound(err) {
		return r, NotFound("rule", id)
	}
	return r, err
}

// getRule: GET /api/v1/automation/rules/{id}
func (s *Server) getRule(c echo.Context) error {
	r, err := s.loadRule(c)
	if err != nil {
		return err
	}
	v, err := viewRule(r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// replaceRule: PUT /api/v1/automation/rules/{id} replaces the definition; a changed definition
// is a new version, used from the next event on.
func (s *Server) replaceRule(c echo.Context) error {
	if _, err := s.loadRule(c); err != nil {
		return err
	}
	req, err := s.readRule(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var out store.Rule
	err = s.store.Tx(ctx, func(tx *store.Store) error {
		var hadSchedule bool
		r, err := tx.UpdateRule(ctx, c.Param("id"), func(r *store.Rule) (bool, error) {
			hadSchedule = r.TriggerType == rules.TriggerSchedule
			before := r.Definition
			fillRule(r, req.Definition)
			if req.Enabled != nil {
				r.Enabled = *req.Enabled
			}
			r.UpdatedAt = time.Now().UTC()
			return !sameJSON(before, r.Definition), nil
		})
		if err != nil {
			return err
		}
		out = r
		return s.syncSchedule(ctx, r, req.Definition, hadSchedule)
	})
	if isNotFound(err) {
		return NotFound("rule", c.Param("id"))
	}
	if err != nil {
		return err
	}
	v, err := viewRule(out)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func sameJSON(a, b store.JSON) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// deleteRule: DELETE /api/v1/automation/rules/{id} → 204. The rule stops at once; its history
// stays readable.
func (s *Server) deleteRule(c echo.Context) error {
	ctx := c.Request().Context()
	err := s.store.Tx(ctx, func(tx *store.Store) error {
		r, err := tx.UpdateRule(ctx, c.Param("id"), func(r *store.Rule) (bool, error) {
			now := time.Now().UTC()
			r.DeletedAt, r.UpdatedAt, r.Enabled = &now, now, false
			return false, nil
		})
		if err != nil {
			return err
		}
		if r.TriggerType == rules.TriggerSchedule {
			return s.schedules.Delete(ctx, r.ID)
		}
		return nil
	})
	if isNotFound(err) {
		return NotFound("rule", c.Param("id"))
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) enableRule(c echo.Context) error  { return s.setEnabled(c, true) }
func (s *Server) disableRule(c echo.Context) error { return s.setEnabled(c, false) }

// setEnabled: POST /api/v1/automation/rules/{id}/enable and /disable (a schedule trigger's
// Schedule is paused while the rule is disabled).
func (s *Server) setEnabled(c echo.Context, enabled bool) error {
	ctx := c.Request().Context()
	var out store.Rule
	err := s.store.Tx(ctx, func(tx *store.Store) error {
		r, err := tx.UpdateRule(ctx, c.Param("id"), func(r *store.Rule) (bool, error) {
			r.Enabled, r.UpdatedAt = enabled, time.Now().UTC()
			return false, nil
		})
		if err != nil {
			return err
		}
		out = r
		if r.TriggerType != rules.TriggerSchedule {
			return nil
		}
		var def rules.Definition
		if err := json.Unmarshal(r.Definition, &def); err != nil {
			return err
		}
		return s.syncSchedule(ctx, r, def, true)
	})
	if isNotFound(err) {
		return NotFound("rule", c.Param("id"))
	}
	if err != nil {
		return err
	}
	v, err := viewRule(out)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

type ruleVersionView struct {
	Version    int              `json:"version"`
	CreatedAt  time.Time        `json:"created_at"`
	Definition rules.Definition `json:"definition"`
}

// listRuleVersions: GET /api/v1/automation/rules/{id}/versions, newest first.
func (s *Server) listRuleVersions(c echo.Context) error {
	r, err := s.loadRule(c)
	if err != nil {
		return err
	}
	versions, err := s.store.RuleVersions(c.Request().Context(), r.ID)
	if err != nil {
		return err
	}
	out := make([]ruleVersionView, 0, len(versions))
	for _, rv := range versions {
		view := ruleVersionView{Version: rv.Version, CreatedAt: rv.CreatedAt}
		if err := json.Unmarshal(rv.Definition, &view.Definition); err != nil {
			return err
		}
		out = append(out, view)
	}
	return c.JSON(http.StatusOK, map[string]any{"items": out})
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
