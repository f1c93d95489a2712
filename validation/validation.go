// Package validation collects every problem found in a request body, each with the JSON path of
// the field it concerns, so that the API can answer 422 with all of them at once.
package validation

import (
	"fmt"
	"regexp"
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

// The one copy of each format rule the domains share.
var (
	// e164 is a phone number in E.164: a plus, a country code not starting with 0, then 7 to 15
	// digits in all (the shortest numbers in use have 7).
	e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	// signalName is the name of a signal a wait_for_signal step waits for and POST
	// /executions/{id}/signal sends.
	signalName = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,64}$`)
	// eventType is the type of an event on the bus (POST /events, emit_event actions, rule
	// triggers): user.created, webhook/github:push.
	eventType = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$`)
	// eventTypePattern is an event type in which * stands for any run of characters (rule
	// triggers: user.*).
	eventTypePattern = regexp.MustCompile(`^[A-Za-z0-9*][A-Za-z0-9._:/*-]{0,199}$`)
)

// IsE164 reports whether s is an E.164 phone number (+14155550100).
func IsE164(s string) bool { return e164.MatchString(s) }

// IsSignalName reports whether s may name a workflow signal: 1 to 64 letters, digits, '_', '.'
// and '-'.
func IsSignalName(s string) bool { return signalName.MatchString(s) }

// IsEventType reports whether s may be the type of an event on the bus: 1 to 200 letters,
// digits and . _ : / -, starting with a letter or digit. (Webhook event types, which consumers
// filter by dot-separated parts, follow the stricter webhooks.ValidEventType.)
func IsEventType(s string) bool { return eventType.MatchString(s) }

// IsEventTypePattern reports whether s is an event type or a pattern of one with * wildcards.
func IsEventTypePattern(s string) bool { return eventTypePattern.MatchString(s) }

// JSONTypeName names a Go kind (reflect.Kind's String) as JSON calls it, for messages about a
// value of the wrong type: "must be a number, got string".
func JSONTypeName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"), strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "a boolean"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "map", kind == "struct":
		return "an object"
	}
	return kind
}
