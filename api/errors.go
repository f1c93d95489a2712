package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"

	"github.com/pyairtable/automation-domain/internal/tracing"
	"github.com/pyairtable/automation-domain/logging"
	"github.com/pyairtable/automation-domain/sandbox"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Error is an API error: the status and the body `{"error":{code,message,details,request_id}}`.
// Handlers return it (or a store/validation error, mapped by handleError).
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
	// Err is the cause, logged but never sent.
	Err error `json:"-"`
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// errorBody is the one error shape of the API.
type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Details   any    `json:"details,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// TraceID is the request's OpenTelemetry trace (while tracing is on).
	TraceID string `json:"trace_id,omitempty"`
}

// Constructors for the errors handlers return.

// BadRequest is a 400 (malformed input).
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf(format, args...)}
}

// NotFound is a 404 for a resource kind and id.
func NotFound(kind, id string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("%s %q not found", kind, id)}
}

// Conflict is a 409.
func Conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf(format, args...)}
}

// Unprocessable is a 422 with one problem.
func Unprocessable(field, format string, args ...any) error {
	var p validation.Problems
	p.Add(field, format, args...)
	return p
}

// TooLarge is a 413.
func TooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large",
		Message: fmt.Sprintf("request body exceeds %d bytes", limit)}
}

// Unavailable is a 503 for a dependency that does not answer.
func Unavailable(dependency string, err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "service_unavailable",
		Message: dependency + " is unavailable, try again later", RetryAfter: 5, Err: err}
}

// handleError is Echo's HTTPErrorHandler: every error leaves as the one JSON shape.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if errors.Is(err, echo.ErrNotFound) && s.methodNotAllowed(c) {
		if c.Request().Method == http.MethodOptions {
			if werr := c.NoContent(http.StatusNoContent); werr != nil {
				s.log.WarnContext(c.Request().Context(), "write OPTIONS response", "error", werr)
			}
			return
		}
		err = echo.ErrMethodNotAllowed
	}
	e := s.toAPIError(err)
	ctx := c.Request().Context()
	if e.Status >= 500 {
		s.log.ErrorContext(ctx, "request failed", "status", e.Status, "code", e.Code,
			"method", c.Request().Method, "path", c.Request().URL.Path, "error", err)
	}
	if e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	traceID, _ := tracing.IDs(ctx)
	body := errorBody{Error: errorPayload{
		Code: e.Code, Message: e.Message, Details: e.Details, RequestID: logging.RequestID(ctx), TraceID: traceID,
	}}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(e.Status)
	} else {
		werr = c.JSON(e.Status, body)
	}
	if werr != nil {
		s.log.WarnContext(ctx, "write error response", "error", werr)
	}
}

func (s *Server) toAPIError(err error) *Error {
	var (
		apiErr   *Error
		problems validation.Problems
		httpErr  *echo.HTTPError
		maxBytes *http.MaxBytesError
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case quotaRefusal(err) != nil:
		return quotaRefusal(err)
	case errors.As(err, &problems):
		return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
			Message: "the request failed validation", Details: []validation.Problem(problems)}
	case errors.As(err, &maxBytes):
		return TooLarge(maxBytes.Limit)
	case errors.Is(err, store.ErrBadCursor):
		return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
			Message: "the request failed validation",
			Details: []validation.Problem{{Field: "cursor", Message: "is not a cursor this service issued"}}}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: "resource not found"}
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: "resource already exists"}
	case errors.Is(err, store.ErrUnavailable):
		return Unavailable("the database", err)
	case errors.Is(err, sandbox.ErrUnavailable):
		return Unavailable("template and expression evaluation", err)
	case sandbox.IsBudgetError(err):
		// Handlers name the field; this is the net for an evaluation that reached here whole.
		return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
			Message: "the request failed validation", Details: []validation.Problem{{Message: err.Error()}}}
	case isTemporalUnavailable(err):
		return Unavailable("the workflow engine (Temporal)", err)
	case isNetworkFailure(err):
		return Unavailable("a dependency", err)
	case errors.As(err, &httpErr):
		return fromEchoError(httpErr)
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "an unexpected error occurred; it has been logged", Err: err}
}

// isTemporalUnavailable tells a Temporal cluster that cannot be reached or does not answer in
// time apart from a request Temporal refused. A namespace Temporal does not know (yet: a
// frontend learns of a new namespace within seconds of its creation) is the cluster not being
// ready for this service, not a fault of the request.
func isTemporalUnavailable(err error) bool {
	var (
		unavailable *serviceerror.Unavailable
		deadline    *serviceerror.DeadlineExceeded
		exhausted   *serviceerror.ResourceExhausted
		noNamespace *serviceerror.NamespaceNotFound
	)
	return errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.As(err, &exhausted) ||
		errors.As(err, &noNamespace)
}

// isNetworkFailure catches a dependency (Redis, an upstream) that refused or timed out.
func isNetworkFailure(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded)
}

func fromEchoError(he *echo.HTTPError) *Error {
	msg := http.StatusText(he.Code)
	if m, ok := he.Message.(string); ok && m != "" {
		msg = m
	}
	code := map[int]string{
		http.StatusNotFound:              "not_found",
		http.StatusMethodNotAllowed:      "method_not_allowed",
		http.StatusUnauthorized:          "unauthorized",
		http.StatusForbidden:             "forbidden",
		http.StatusRequestEntityTooLarge: "payload_too_large",
		http.StatusUnsupportedMediaType:  "unsupported_media_type",
		http.StatusTooManyRequests:       "rate_limited",
		http.StatusServiceUnavailable:    "service_unavailable",
	}[he.Code]
	if code == "" {
		if he.Code >= 500 {
			code = "internal_error"
		} else {
			code = "bad_request"
		}
	}
	if he.Code == http.StatusNotFound && msg == http.StatusText(http.StatusNotFound) {
		msg = "no such route"
	}
	return &Error{Status: he.Code, Code: code, Message: msg, Err: he.Internal}
}

// logAttrs is shared by the access log and the error log.
func logAttrs(c echo.Context, status int) []slog.Attr {
	return []slog.Attr{
		slog.String("method", c.Request().Method),
		slog.String("route", routeOf(c)),
		slog.String("path", c.Request().URL.Path),
		slog.Int("status", status),
	}
}
