package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// decodeJSON reads the request body into v: 415 for a non-JSON content type, 400 for an empty or
// malformed body, 413 past the body limit, 422 (with the field) for a value of the wrong type.
func decodeJSON(c echo.Context, v any) error {
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
				Message: "send the body as application/json"}
		}
	}
	dec := json.NewDecoder(c.Request().Body)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return TooLarge(maxBytes.Limit)
		}
		return BadRequest("invalid JSON: unexpected data after the top-level value")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
		maxBytes *http.MaxBytesError
	)
	switch {
	case errors.As(err, &maxBytes):
		return TooLarge(maxBytes.Limit)
	case errors.Is(err, io.EOF):
		return BadRequest("the request body is empty; a JSON object is expected")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("invalid JSON: the body ends in the middle of a value")
	case errors.As(err, &syntax):
		return BadRequest("invalid JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return BadRequest("invalid JSON: expected %s, got %s", typ.Type, typ.Value)
		}
		return Unprocessable(field, "must be %s, got %s", validation.JSONTypeName(typ.Type.Kind().String()), typ.Value)
	}
	return BadRequest("invalid JSON: %s", err.Error())
}

// pageParams reads ?limit= and ?cursor=.
func pageParams(c echo.Context) (store.Page, error) {
	p := store.Page{Limit: store.DefaultPageLimit, Cursor: c.QueryParam("cursor")}
	if raw := c.QueryParam("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > store.MaxPageLimit {
			return p, Unprocessable("limit", "must be an integer from 1 to %d", store.MaxPageLimit)
		}
		p.Limit = n
	}
	if _, err := store.DecodeCursor(p.Cursor); err != nil {
		return p, Unprocessable("cursor", "is not a cursor this service issued")
	}
	return p, nil
}

// boolParam reads an optional boolean query parameter.
func boolParam(c echo.Context, name string, problems *validation.Problems) *bool {
	raw := c.QueryParam(name)
	if raw == "" {
		return nil
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		problems.Add(name, "must be true or false, got %q", raw)
		return nil
	}
	return &b
}

// timeParam reads an optional RFC 3339 query parameter (zero when absent).
func timeParam(c echo.Context, name string, problems *validation.Problems) time.Time {
	raw := c.QueryParam(name)
	if raw == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		problems.Add(name, "must be an RFC 3339 time such as 2025-01-02T15:04:05Z, got %q", raw)
	}
	return t
}

// Page is the envelope of every list response.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
	HasMore    bool   `json:"has_more"`
}

func newPage[T any](items []T, next string) Page[T] {
	if items == nil {
		items = []T{}
	}
	return Page[T]{Items: items, NextCursor: next, HasMore: next != ""}
}

// oneOf checks an enumerated string.
func oneOf(problems *validation.Problems, field, value string, allowed ...string) {
	if value == "" {
		return
	}
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	problems.Add(field, "must be one of %s, got %q", strings.Join(allowed, ", "), value)
}
