package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/expression"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// An endpoint's filter is an expr-lang condition over the event, `event` = {"type", "data"}:
// only events it is true for are delivered (`event.type == "order.created" && event.data.total
// > 100`). Its transform is a jq program over {"id", "type", "timestamp", "data"} (the
// standard body with the message id) that produces what is sent: an object with "body" (any JSON value, the request body),
// optionally "headers" (an object of strings added to the request) and "event_type" (the type
// the message is sent as, in the Webhook-Event-Type header). Both run under the sandbox budget.
// The filter runs when a message is fanned out (an event it refuses makes no delivery; one it
// cannot evaluate, neither: the failure is logged); the transform when a delivery is sent (a
// failure fails that delivery with its message, the endpoint's other deliveries go on).

// Limits of filters and transforms.
const (
	MaxFilterLength    = 4000
	MaxTransformLength = definition.MaxJQSource
	maxFilterNodes     = 2000
	// HeaderEventType carries a transform's event type.
	HeaderEventType = "Webhook-Event-Type"
)

var filterOptions = expression.Options{Env: map[string]any{"event": map[string]any{}}, AsBool: true, MaxNodes: maxFilterNodes}

// Transformer runs endpoints' filters (in process, under a sandbox.Budget) and transforms
// (jq through the evaluator, in its helper processes when it has a pool).
type Transformer struct {
	eval    *definition.Evaluator
	limits  sandbox.Limits
	filters *lru.Cache[string, *expression.Program]
}

// NewTransformer returns a transformer over eval (nil: an in-process evaluator with the
// default limits).
func NewTransformer(eval *definition.Evaluator) *Transformer {
	if eval == nil {
		eval = definition.NewEvaluator(sandbox.Limits{}, nil)
	}
	c, _ := lru.New[string, *expression.Program](1024)
	return &Transformer{eval: eval, limits: eval.Limits().OrDefaults(), filters: c}
}

// EventView is what filters and transforms see of a message.
func EventView(messageID, eventType string, createdAt time.Time, payload json.RawMessage) (map[string]any, error) {
	var data any
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &data); err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
	}
	return map[string]any{"id": messageID, "type": eventType, "timestamp": createdAt.UTC().Format(time.RFC3339Nano), "data": data}, nil
}

// CheckFilter reports why src is not a valid filter ("" when it is).
func (t *Transformer) CheckFilter(src string) string {
	if len(src) > MaxFilterLength {
		return fmt.Sprintf("must be at most %d characters", MaxFilterLength)
	}
	if _, err := t.filter(src); err != nil {
		return "does not compile: " + firstLine(err)
	}
	return ""
}

// CheckTransform reports why src is not a valid transform ("" when it is).
func (t *Transformer) CheckTransform(src string) string {
	if len(src) > MaxTransformLength {
		return fmt.Sprintf("must be at most %d characters", MaxTransformLength)
	}
	if _, err := definition.CompileJQ(src, t.limits); err != nil {
		return "does not compile: " + firstLine(err)
	}
	return ""
}

func (t *Transformer) filter(src string) (*expression.Program, error) {
	if p, ok := t.filters.Get(src); ok {
		return p, nil
	}
	p, err := expression.Compile(src, filterOptions, t.limits)
	if err != nil {
		return nil, err
	}
	t.filters.Add(src, p)
	return p, nil
}

// Filter runs a filter over an event view ("" passes everything).
func (t *Transformer) Filter(ctx context.Context, src string, event map[string]any) (bool, error) {
	if src == "" {
		return true, nil
	}
	p, err := t.filter(src)
	if err != nil {
		return false, err
	}
	b := sandbox.NewBudget(ctx, t.limits)
	defer b.Close()
	out, err := p.Run(b, map[string]any{"event": event})
	if err != nil {
		return false, errors.New(firstLine(err))
	}
	ok, _ := out.(bool)
	return ok, nil
}

// Transformed is what a transform made of a message.
type Transformed struct {
	Body      json.RawMessage   `json:"body"`
	Headers   map[string]string `json:"headers"`
	EventType string            `json:"event_type,omitempty"`
}

// TransformError is a transform that failed on its input (not retried); other errors (the
// sandbox unavailable, the context ended) are worth another attempt.
type TransformError struct{ Msg string }

func (e *TransformError) Error() string { return "transform: " + e.Msg }

// Transform runs a transform over an event view.
func (t *Transformer) Transform(ctx context.Context, src string, event map[string]any) (Transformed, error) {
	out, err := t.eval.RunJQ(ctx, src, event)
	if err != nil {
		if errors.Is(err, sandbox.ErrUnavailable) || ctx.Err() != nil {
			return Transformed{}, fmt.Errorf("transform: %w", err)
		}
		return Transformed{}, &TransformError{Msg: firstLine(err)}
	}
	obj, ok := out.(map[string]any)
	if !ok {
		return Transformed{}, &TransformError{Msg: fmt.Sprintf(`must produce an object with "body" (and optionally "headers", "event_type"), got %s`, jsonKind(out))}
	}
	var p validation.Problems
	res := Transformed{Headers: map[string]string{}}
	for k := range obj {
		if k != "body" && k != "headers" && k != "event_type" {
			p.Add(k, `is not a field of a transform's result (body, headers, event_type)`)
		}
	}
	body, has := obj["body"]
	if !has {
		p.Add("body", "is required")
	} else if res.Body, err = json.Marshal(body); err != nil {
		p.Add("body", "cannot be sent as JSON: %v", err)
	} else if len(res.Body) > MaxPayloadBytes {
		p.Add("body", "is larger than %d bytes", MaxPayloadBytes)
	}
	if h, has := obj["headers"]; has && h != nil {
		hm, ok := h.(map[string]any)
		if !ok {
			p.Add("headers", "must be an object of strings")
		}
		for k, v := range hm {
			s, ok := v.(string)
			if !ok {
				p.Add("headers."+k, "must be a string")
				continue
			}
			res.Headers[k] = s
		}
		checkHeaders(&p, res.Headers, nil)
	}
	if et, has := obj["event_type"]; has && et != nil {
		s, ok := et.(string)
		if !ok {
			p.Add("event_type", "must be a string")
		} else if msg := ValidEventType(s); msg != "" {
			p.Add("event_type", "%s", msg)
		}
		res.EventType = s
	}
	if len(p) > 0 {
		return Transformed{}, &TransformError{Msg: "its result is invalid: " + p.Error()}
	}
	return res, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	}
	return "a number"
}

func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// passes runs e's filter over a message being fanned out: false when the filter refuses it or
// cannot be evaluated (logged: the endpoint's filter is at fault, not the message).
func (s *Service) passes(ctx context.Context, e store.WebhookEndpoint, eventType string, payload json.RawMessage) bool {
	if e.Filter == "" {
		return true
	}
	view, err := EventView("", eventType, time.Time{}, payload)
	if err == nil {
		var ok bool
		if ok, err = s.transformer.Filter(ctx, e.Filter, filterView(view)); err == nil {
			return ok
		}
	}
	s.metrics.FilterErrors.WithLabelValues(e.ID).Inc()
	s.log.WarnContext(ctx, "webhook endpoint filter failed; the message is not delivered to it",
		"endpoint_id", e.ID, "event_type", eventType, "error", err)
	return false
}

// filterView is what a filter sees: the event's type and data (its id and time are not known
// before it is stored).
func filterView(view map[string]any) map[string]any {
	return map[string]any{"type": view["type"], "data": view["data"]}
}

// checkPayload checks a message's payload against its event type in the catalog.
func (s *Service) checkPayload(ctx context.Context, req DeliverRequest) error {
	if s.catalog == nil {
		return nil
	}
	return s.catalog.Check(ctx, "event_type", req.EventType, "payload", req.Payload)
}

// TransformTest is a sample event for an endpoint's filter and transform (POST
// /webhooks/endpoints/{id}/transform/test). Filter and Transform, when set, are tried instead of
// the endpoint's own.
type TransformTest struct {
	EventType string          `json:"event_type"`
	Payload   json.RawMessage `json:"payload"`
	Filter    *string         `json:"filter"`
	Transform *string         `json:"transform"`
}

// TransformResult is what the endpoint would receive for the sample: nothing when the filter
// refuses it; the body (the standard one without a transform), headers and event type.
type TransformResult struct {
	Delivered bool              `json:"delivered"`
	Body      json.RawMessage   `json:"body,omitempty"`
	Headers   map[string]string `json:"headers"`
	EventType string            `json:"event_type"`
}

// TestTransform runs the endpoint's filter and transform over a sample event. A filter or
// transform that fails on it is a 422 naming the field.
func (s *Service) TestTransform(ctx context.Context, id string, in TransformTest) (TransformResult, error) {
	e, err := s.store.GetWebhookEndpoint(ctx, id)
	if err != nil {
		return TransformResult{}, err
	}
	var p validation.Problems
	if msg := ValidEventType(in.EventType); msg != "" {
		p.Add("event_type", "%s", msg)
	}
	if len(in.Payload) == 0 {
		in.Payload = json.RawMessage("{}")
	}
	if len(in.Payload) > MaxPayloadBytes {
		return TransformResult{}, ErrPayloadTooLarge
	}
	filter, transform := e.Filter, e.Transform
	if in.Filter != nil {
		filter = *in.Filter
		if msg := s.transformer.CheckFilter(filter); filter != "" && msg != "" {
			p.Add("filter", "%s", msg)
		}
	}
	if in.Transform != nil {
		transform = *in.Transform
		if msg := s.transformer.CheckTransform(transform); transform != "" && msg != "" {
			p.Add("transform", "%s", msg)
		}
	}
	if err := p.Err(); err != nil {
		return TransformResult{}, err
	}
	msgID, at := store.NewID(), s.now()
	view, err := EventView(msgID, in.EventType, at, in.Payload)
	if err != nil {
		p.Add("payload", "must be valid JSON")
		return TransformResult{}, p
	}
	out := TransformResult{Headers: map[string]string{}, EventType: in.EventType}
	ok, err := s.transformer.Filter(ctx, filter, filterView(view))
	if err != nil {
		p.Add("filter", "failed on the sample: %v", err)
		return TransformResult{}, p
	}
	if !ok {
		return out, nil
	}
	out.Delivered = true
	if transform == "" {
		out.Body, err = Body(in.EventType, at, in.Payload)
		return out, err
	}
	res, err := s.transformer.Transform(ctx, transform, view)
	var te *TransformError
	if errors.As(err, &te) {
		p.Add("transform", "failed on the sample: %s", te.Msg)
		return TransformResult{}, p
	} else if err != nil {
		return TransformResult{}, err
	}
	out.Body, out.Headers = res.Body, res.Headers
	if res.EventType != "" {
		out.EventType = res.EventType
	}
	return out, nil
}
