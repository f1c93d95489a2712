// Package validation collects every problem found in a request body, each with the JSON path of
// the field it concerns, so that the API can answer 422 with all of them at once.
package validation

import (
	"fmt"
	"strings"
)

// Problem is one failed check.
type Problem struct {
	// Field is a JSON path into the request body, e.g. "steps[2].config.url"; "" for the body.
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problems is a list of failed checks; a non-empty list is an error.
type Problems []Problem

// Add records a problem at field.
func (p *Problems) Add(field, format string, args ...any) {
	*p = append(*p, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Extend records every problem of other under the prefix path.
func (p *Problems) Extend(prefix string, other Problems) {
	for _, q := range other {
		*p = append(*p, Problem{Field: Join(prefix, q.Field), Message: q.Message})
	}
}

// Err returns p as an error, or nil when there is no problem.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// Error lists the problems on one line.
func (p Problems) Error() string {
	parts := make([]string, len(p))
	for i, q := range p {
		if q.Field == "" {
			parts[i] = q.Message
		} else {
			parts[i] = q.Field + ": " + q.Message
		}
	}
	return "validation failed: " + strings.Join(parts, "; ")
}

// Join appends a field name or an index ("[3]") to a path.
func Join(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	}
	return prefix + "." + field
}

// Index is the path of element i of the array at prefix.
func Index(prefix string, i int) string { return fmt.Sprintf("%s[%d]", prefix, i) }
