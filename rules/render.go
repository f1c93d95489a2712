package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"github.com/pyairtable/automation-domain/templating"
	"github.com/pyairtable/automation-domain/validation"
)

// RenderedAction is an action with every template rendered against one event: exactly what is
// handed to the module that carries it out (and what a dry run shows).
type RenderedAction struct {
	Index int    `json:"index"`
	Type  string `json:"type"`

	WorkflowID string         `json:"workflow_id,omitempty"`
	InputData  map[string]any `json:"input_data,omitempty"`
	Priority   string         `json:"priority,omitempty"`

	NotificationType string         `json:"notification_type,omitempty"`
	To               []string       `json:"to,omitempty"`
	Subject          string         `json:"subject,omitempty"`
	Body             string         `json:"body,omitempty"`
	Message          string         `json:"message,omitempty"`
	TemplateID       string         `json:"template_id,omitempty"`
	TemplateData     map[string]any `json:"template_data,omitempty"`

	EventType string `json:"event_type,omitempty"`
	// Payload is the webhook payload or the emitted event's data.
	Payload map[string]any `json:"payload,omitempty"`

	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// FieldError is a template of a rule that failed to render, with the JSON path of its field
// ("actions[0].body", "dedup_key").
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// renderError is a rendering failure of the template at path: permanent when the template is
// at fault (an undefined variable, a limit of the evaluation budget), transient otherwise (no
// evaluation helper could start, the caller gave up).
func renderError(path string, err error) error {
	fe := &FieldError{Path: path, Err: err}
	var te *templating.Error
	if errors.As(err, &te) {
		return Permanent(fe)
	}
	return fe
}

// RenderAction renders action i of the rule for the event in scope. Errors (an undefined
// variable, a recipient that is not an address, a limit of the evaluation budget) are
// permanent and name the action's field.
func (c *Compiled) RenderAction(ctx context.Context, eng *templating.Engine, i int, scope Scope) (RenderedAction, error) {
	if i < 0 || i >= len(c.Def.Actions) {
		return RenderedAction{}, Permanentf("%s has no action %d", c, i)
	}
	a := c.Def.Actions[i]
	path := fmt.Sprintf("actions[%d]", i)
	r := RenderedAction{Index: i, Type: a.Type, IdempotencyKey: IdempotencyKey(scope.Event.ID, c.ID, i)}
	var err error
	text := func(field, src string) string {
		if err != nil || src == "" {
			return ""
		}
		out, rerr := eng.Render(ctx, src, scope.Vars)
		if rerr != nil {
			err = renderError(path+"."+field, rerr)
		}
		return out
	}
	object := func(field string, v any) map[string]any {
		if err != nil {
			return nil
		}
		if v == nil {
			return copyMap(scope.Data)
		}
		out, rerr := eng.RenderValue(ctx, v, scope.Vars)
		if rerr != nil {
			err = renderError(path+"."+field, rerr)
			return nil
		}
		m, ok := out.(map[string]any)
		if !ok {
			err = Permanentf("%s.%s: must render to an object, got %s", path, field, kindOf(out))
		}
		return m
	}
	switch a.Type {
	case ActionWorkflow:
		r.WorkflowID = strings.TrimSpace(text("workflow_id", a.WorkflowID))
		r.InputData = object("input_data", a.InputData)
		r.Priority = a.Priority
		if r.Priority == "" {
			r.Priority = "normal"
		}
		if err == nil && r.WorkflowID == "" {
			err = Permanentf("%s.workflow_id: renders to an empty string", path)
		}
	case ActionNotification:
		r.NotificationType = a.NotificationType
		if r.NotificationType == "" {
			r.NotificationType = "email"
		}
		r.TemplateID = strings.TrimSpace(text("template", a.Template))
		r.Subject = text("subject", a.Subject)
		r.Body = text("body", a.Body)
		r.Message = text("message", a.Message)
		if r.TemplateID != "" || a.TemplateData != nil {
			r.TemplateData = object("template_data", a.TemplateData)
		}
		if err == nil {
			r.To, err = c.renderRecipients(ctx, eng, path+".to", a.To, r.NotificationType, scope)
		}
	case ActionWebhook, ActionEmitEvent:
		r.EventType = strings.TrimSpace(text("event_type", a.EventType))
		body, field := a.Payload, "payload"
		if a.Type == ActionEmitEvent {
			body, field = a.Data, "data"
		}
		r.Payload = object(field, body)
		if err == nil && !validation.IsEventType(r.EventType) {
			err = Permanentf("%s.event_type: %q is not an event type", path, r.EventType)
		}
	default:
		err = Permanentf("%s.type: unknown action type %q", path, a.Type)
	}
	if err != nil {
		return RenderedAction{}, err
	}
	return r, nil
}

// renderRecipients renders `to` (a string, possibly a comma-separated list, or a list; a single
// {{ expression }} may give a list) and checks each recipient's form.
func (c *Compiled) renderRecipients(ctx context.Context, eng *templating.Engine, path string, to any, kind string, scope Scope) ([]string, error) {
	v, err := eng.RenderValue(ctx, to, scope.Vars)
	if err != nil {
		return nil, renderError(path, err)
	}
	var raw []string
	switch x := v.(type) {
	case string:
		raw = strings.Split(x, ",")
	case []any:
		for i, item := range x {
			s, ok := item.(string)
			if !ok {
				return nil, Permanentf("%s[%d]: renders to %s, not an address", path, i, kindOf(item))
			}
			raw = append(raw, s)
		}
	default:
		return nil, Permanentf("%s: renders to %s, not an address", path, kindOf(v))
	}
	var out []string
	for _, s := range raw {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		switch kind {
		case "sms":
			if !validation.IsE164(s) {
				return nil, Permanentf("%s: %q is not a phone number in E.164 form (+15551234567)", path, s)
			}
		default:
			if addr, perr := mail.ParseAddress(s); perr != nil || addr.Address != s {
				return nil, Permanentf("%s: %q is not an email address", path, s)
			}
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, Permanentf("%s: renders to no recipient", path)
	}
	return out, nil
}

// RenderDedupKey renders the rule's dedup_key for the event ("" when the rule has none).
func (c *Compiled) RenderDedupKey(ctx context.Context, eng *templating.Engine, scope Scope) (string, error) {
	if c.Def.DedupKey == "" {
		return "", nil
	}
	out, err := eng.Render(ctx, c.Def.DedupKey, scope.Vars)
	if err != nil {
		return "", renderError("dedup_key", err)
	}
	out = strings.TrimSpace(out)
	if len(out) > 500 {
		return "", Permanentf("dedup_key: renders to more than 500 characters")
	}
	return out, nil
}

// PayloadJSON is the rendered payload as JSON (an empty object when there is none).
func (r RenderedAction) PayloadJSON() json.RawMessage {
	if r.Payload == nil {
		return json.RawMessage("{}")
	}
	b, err := json.Marshal(r.Payload)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
