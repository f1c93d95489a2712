package webhooks

import (
	"fmt"
	"strings"
)

// MaxEventTypeLength bounds event type names and filters.
const MaxEventTypeLength = 128

// ValidEventType reports why an event type is not a dot-separated name of letters, digits, '_'
// and '-' ("" when it is valid).
func ValidEventType(t string) string {
	return validName(t, false)
}

// ValidFilter is ValidEventType for filters, which may also use "*" as a whole segment.
func ValidFilter(f string) string {
	return validName(f, true)
}

func validName(s string, wildcards bool) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > MaxEventTypeLength {
		return fmt.Sprintf("must be at most %d characters", MaxEventTypeLength)
	}
	for _, seg := range strings.Split(s, ".") {
		if seg == "" {
			return "must be dot-separated names without empty parts"
		}
		if wildcards && seg == "*" {
			continue
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				if r == '*' {
					return "may use * only as a whole part (\"workflow.*\", \"*\")"
				}
				return fmt.Sprintf("may contain only letters, digits, '_', '-' and '.', not %q", r)
			}
		}
	}
	return ""
}

// Matches reports whether an event type passes any of the filters. A filter is an exact type or
// uses "*" for one part ("*.failed" matches workflow.failed); a "*" at the end matches one or
// more parts ("workflow.*" matches workflow.completed and workflow.step.failed; "*" matches all).
func Matches(filters []string, eventType string) bool {
	parts := strings.Split(eventType, ".")
	for _, f := range filters {
		if matchFilter(strings.Split(f, "."), parts) {
			return true
		}
	}
	return false
}

func matchFilter(filter, parts []string) bool {
	for i, seg := range filter {
		last := i == len(filter)-1
		if last && seg == "*" {
			return len(parts) > i
		}
		if i >= len(parts) || (seg != "*" && seg != parts[i]) {
			return false
		}
	}
	return len(parts) == len(filter)
}
