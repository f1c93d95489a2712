package api

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracedService is the server name of the request spans.
const tracedService = "automation-api"

// untraced are the probes and the scrape: a span each would bury the requests that matter.
var untraced = map[string]bool{"/health": true, "/live": true, "/ready": true, "/metrics": true}

// traceRequests makes each request a server span (OpenTelemetry's Echo middleware): a child
// of the caller's span when the request carries a W3C traceparent.
func (s *Server) traceRequests(tp trace.TracerProvider, prop propagation.TextMapPropagator) echo.MiddlewareFunc {
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	var skip middleware.Skipper = func(c echo.Context) bool { return untraced[c.Request().URL.Path] }
	return otelecho.Middleware(tracedService, otelecho.WithTracerProvider(tp), otelecho.WithPropagators(prop),
		otelecho.WithSkipper(skip))
}
