package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/internal/tracing"
	"github.com/pyairtable/automation-domain/netguard"
)

// dataTransform checks the step's assertions, then runs its jq program or expression mapping.
func (a *WorkflowEngine) dataTransform(ctx context.Context, s definition.Step, sc map[string]any) (any, error) {
	var c definition.DataTransformConfig
	if err := s.Decode(&c); err != nil {
		return nil, permanent("config: %v", err)
	}
	for i, as := range c.Assert {
		ok, err := a.evaluator().EvalCondition(ctx, as.That, sc)
		if err != nil {
			return nil, evalFailed(err, fmt.Sprintf("assert[%d]", i))
		}
		if !ok {
			msg := as.Message
			if msg == "" {
				msg = "assertion failed: " + as.That
			}
			return nil, permanent("%s", msg)
		}
	}
	switch {
	case c.JQ != "":
		var data any = sc
		if c.Data != nil {
			rendered, err := a.Templates.RenderValue(ctx, c.Data, sc)
			if err != nil {
				return nil, evalFailed(err, "data")
			}
			data = rendered
		}
		plain, err := plainJSON(data)
		if err != nil {
			return nil, permanent("data: %v", err)
		}
		out, err := a.evaluator().RunJQ(ctx, c.JQ, plain)
		if err != nil {
			return nil, evalFailed(err, "")
		}
		return out, nil
	case len(c.Mapping) > 0:
		out, err := a.evaluator().EvalMapping(ctx, c.Mapping, sc)
		if err != nil {
			return nil, evalFailed(err, "")
		}
		return out, nil
	}
	return map[string]any{"valid": true}, nil
}

// plainJSON turns any JSON-like value (json.Number, typed slices) into what encoding/json
// decodes to, which is what gojq accepts.
func plainJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

// MaxResponseBody bounds the part of an http_request response kept as the step's output.
const MaxResponseBody = 128 << 10

func (a *WorkflowEngine) httpClient() *http.Client {
	a.clientOnce.Do(func() {
		// One client (one connection pool) for every step; each request is bounded by the
		// activity's deadline through its context.
		a.client = a.Egress.Client(0)
		if tracing.Enabled() {
			// Each request is a client span of the step's activity and carries its traceparent.
			c := *a.client
			base := c.Transport
			if base == nil {
				base = http.DefaultTransport
			}
			c.Transport = otelhttp.NewTransport(base, otelhttp.WithPropagators(propagation.TraceContext{}))
			a.client = &c
		}
	})
	return a.client
}

// httpRequest sends the request of an http_request step. 5xx, 408, 429 and network errors are
// retried per the step's policy; other unexpected statuses and refused destinations are not.
func (a *WorkflowEngine) httpRequest(ctx context.Context, s definition.Step, c definition.HTTPRequestConfig) (any, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, permanent("url %q is not an absolute http or https URL", c.URL)
	}
	if len(c.Query) > 0 {
		q := u.Query()
		for k, v := range c.Query {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	if err := a.Egress.CheckURL(ctx, u.String()); err != nil {
		if errors.Is(err, netguard.ErrBlocked) {
			return nil, permanent("%v", err)
		}
		return nil, fmt.Errorf("http_request: %w", err)
	}
	method := strings.ToUpper(c.Method)
	var body io.Reader
	contentType := ""
	switch b := c.Body.(type) {
	case nil:
	case string:
		body, contentType = strings.NewReader(b), "text/plain; charset=utf-8"
	default:
		js, err := json.Marshal(b)
		if err != nil {
			return nil, permanent("body: %v", err)
		}
		body, contentType = bytes.NewReader(js), "application/json"
	}
	if method == "" {
		method = http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, permanent("request: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", "automation-domain-workflows/1")
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	res, err := a.httpClient().Do(req)
	if err != nil {
		if errors.Is(err, netguard.ErrBlocked) {
			return nil, permanent("%v", err)
		}
		return nil, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, u.Redacted(), err)
	}
	truncated := len(raw) > MaxResponseBody
	if truncated {
		raw = raw[:MaxResponseBody]
	}
	ok := res.StatusCode >= 200 && res.StatusCode < 300
	if len(c.ExpectStatus) > 0 {
		ok = slices.Contains(c.ExpectStatus, res.StatusCode)
	}
	if !ok {
		msg := fmt.Sprintf("%s %s answered %d: %s", method, u.Redacted(), res.StatusCode, excerpt(raw))
		if res.StatusCode >= 500 || res.StatusCode == http.StatusRequestTimeout || res.StatusCode == http.StatusTooManyRequests {
			return nil, errors.New(msg)
		}
		return nil, permanent("%s", msg)
	}
	headers := make(map[string]string, len(res.Header))
	for k := range res.Header {
		headers[strings.ToLower(k)] = res.Header.Get(k)
	}
	var parsed any = string(raw)
	if strings.Contains(res.Header.Get("Content-Type"), "json") && !truncated {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			parsed = v
		}
	}
	out := map[string]any{
		"status": res.StatusCode, "headers": headers, "body": parsed,
		"duration_ms": time.Since(start).Milliseconds(),
	}
	if truncated {
		out["truncated"] = true
	}
	return out, nil
}

func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}
