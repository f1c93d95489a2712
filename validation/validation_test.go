package validation_test

import (
	"strings"
	"testing"

	"github.com/pyairtable/automation-domain/validation"
)

func TestE164(t *testing.T) {
	for s, ok := range map[string]bool{"+14155550100": true, "+1234567890": true, "+15550001": true,
		"+6831234": true, "14155550100": false, "+0123": false, "+1 415 555": false,
		"+1234567890123456": false, "+12345": false} {
		if validation.IsE164(s) != ok {
			t.Errorf("IsE164(%q) = %v", s, !ok)
		}
	}
}

func TestSignalName(t *testing.T) {
	for s, ok := range map[string]bool{"approved": true, "order.paid-v2_1": true, "": false,
		"has space": false, "a/b": false, string(make([]byte, 65)): false} {
		if validation.IsSignalName(s) != ok {
			t.Errorf("IsSignalName(%q) = %v", s, !ok)
		}
	}
}

func TestEventType(t *testing.T) {
	long := "a" + strings.Repeat("b", 199)
	for s, ok := range map[string]bool{"user.created": true, "webhook/github:push": true, "order-paid_v2": true,
		long: true, long + "c": false, "": false, ".user": false, "user.*": false, "has space": false} {
		if validation.IsEventType(s) != ok {
			t.Errorf("IsEventType(%q) = %v", s, !ok)
		}
	}
	for s, ok := range map[string]bool{"user.*": true, "*": true, "*.failed": true, "user.created": true,
		"": false, "user created": false, ".*": false} {
		if validation.IsEventTypePattern(s) != ok {
			t.Errorf("IsEventTypePattern(%q) = %v", s, !ok)
		}
	}
}

func TestJSONTypeName(t *testing.T) {
	for kind, want := range map[string]string{"int64": "a number", "float64": "a number", "string": "a string",
		"bool": "a boolean", "slice": "an array", "map": "an object", "struct": "an object", "chan": "chan"} {
		if got := validation.JSONTypeName(kind); got != want {
			t.Errorf("JSONTypeName(%q) = %q, want %q", kind, got, want)
		}
	}
}
