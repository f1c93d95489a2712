// Package tracing holds what the domains share to take part in the service's OpenTelemetry
// traces: the service's tracer (the global provider, which package app installs when OTEL_*
// turns tracing on; a no-op otherwise) and the W3C trace context kept beside work that outlives
// the request that asked for it (an event handed to a rule evaluator, a webhook message waiting
// for its sender session), so that the later work continues the request's trace and links the
// long-running span it runs under.
package tracing

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of the service's own spans.
const Name = "github.com/pyairtable/automation-domain"

var enabled atomic.Bool

// SetEnabled records whether a tracer provider that exports is installed (package app).
func SetEnabled(on bool) { enabled.Store(on) }

// Enabled says whether spans are exported: callers skip the work of building span attributes
// when they are not.
func Enabled() bool { return enabled.Load() }

// Tracer is the service's tracer.
func Tracer() trace.Tracer { return otel.Tracer(Name) }

// Start starts a span of the service's tracer.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return Tracer().Start(ctx, name, opts...)
}

var w3c = propagation.TraceContext{}

// TraceParent is the W3C traceparent of ctx's span ("" without a valid one).
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	w3c.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	return carrier.Get("traceparent")
}

// SpanContext parses a traceparent (an invalid span context when it is not one).
func SpanContext(traceparent string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	ctx := w3c.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	return trace.SpanContextFromContext(ctx)
}

// StartFor starts a span for work asked for by the holder of traceparent: the span continues
// that trace (its parent is the remote span) and links the span ctx is in (the long-running
// workflow or activity doing the work), so that each piece of work is found from the request
// that caused it instead of joining one endless trace. Without a valid traceparent the span is
// a child of ctx's.
func StartFor(ctx context.Context, traceparent, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	sender := SpanContext(traceparent)
	if !sender.IsValid() {
		return Tracer().Start(ctx, name, opts...)
	}
	current := trace.SpanContextFromContext(ctx)
	if current.IsValid() && current.TraceID() != sender.TraceID() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: current}))
	}
	return Tracer().Start(trace.ContextWithRemoteSpanContext(ctx, sender), name, opts...)
}

// End ends span, recording err (when not nil) as its error status.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// IDs are the trace and span id of ctx's span, hex ("" without a valid one).
func IDs(ctx context.Context) (traceID, spanID string) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", ""
	}
	return sc.TraceID().String(), sc.SpanID().String()
}
