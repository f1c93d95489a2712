package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestStartForContinuesTheSendersTraceAndLinksTheCurrentSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	senderCtx, sender := Start(context.Background(), "request")
	tp1 := TraceParent(senderCtx)
	sender.End()
	if sc := SpanContext(tp1); !sc.IsValid() || sc.TraceID() != sender.SpanContext().TraceID() {
		t.Fatalf("traceparent %q does not parse back", tp1)
	}
	longCtx, long := Start(context.Background(), "long-running")
	ctx, work := StartFor(longCtx, tp1, "work")
	work.End()
	long.End()

	ro := work.(sdktrace.ReadOnlySpan)
	if ro.SpanContext().TraceID() != sender.SpanContext().TraceID() || ro.Parent().SpanID() != sender.SpanContext().SpanID() {
		t.Errorf("work is not the sender's child: trace %s parent %s", ro.SpanContext().TraceID(), ro.Parent().SpanID())
	}
	if len(ro.Links()) != 1 || ro.Links()[0].SpanContext.SpanID() != long.SpanContext().SpanID() {
		t.Errorf("work links %v, want the long-running span", ro.Links())
	}
	if id, _ := IDs(ctx); id != sender.SpanContext().TraceID().String() {
		t.Errorf("IDs %s", id)
	}
	// Without a traceparent the span is the current one's child.
	_, child := StartFor(longCtx, "", "child")
	child.End()
	if c := child.(sdktrace.ReadOnlySpan); c.Parent().SpanID() != long.SpanContext().SpanID() || len(c.Links()) != 0 {
		t.Errorf("child of %s with links %v", c.Parent().SpanID(), c.Links())
	}
	if TraceParent(context.Background()) != "" || SpanContext("garbage").IsValid() {
		t.Error("no span: want no traceparent")
	}
}
