package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// JSON value semantics of field checks: path lookup, emptiness, equality, containment, order.

// lookup follows a dotted path through maps (by key) and lists (by index).
func lookup(data any, segments []string) (any, bool) {
	cur := data
	for _, s := range segments {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[s]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			cur = x[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// number reads v as a float64 when it is a JSON number in any of its Go forms.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	}
	return 0, false
}

// equal compares JSON values; numbers compare by value whatever their Go type.
func equal(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// contains: a substring of a string, an element of a list, or a key of an object.
func contains(actual, want any) bool {
	switch x := actual.(type) {
	case string:
		s, ok := want.(string)
		return ok && strings.Contains(x, s)
	case []any:
		for _, v := range x {
			if equal(v, want) {
				return true
			}
		}
	case map[string]any:
		s, ok := want.(string)
		if ok {
			_, has := x[s]
			return has
		}
	}
	return false
}

// compare orders two numbers, two RFC 3339 times, or two strings.
func compare(a, b any) (int, error) {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		if !ok {
			return 0, fmt.Errorf("cannot compare the number %v with %v", a, b)
		}
		switch {
		case fa < fb:
			return -1, nil
		case fa > fb:
			return 1, nil
		case math.IsNaN(fa) || math.IsNaN(fb):
			return 0, fmt.Errorf("cannot compare NaN")
		}
		return 0, nil
	}
	sa, ok1 := a.(string)
	sb, ok2 := b.(string)
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("cannot compare %s with %s", kindOf(a), kindOf(b))
	}
	ta, err1 := time.Parse(time.RFC3339Nano, sa)
	tb, err2 := time.Parse(time.RFC3339Nano, sb)
	if err1 == nil && err2 == nil {
		return ta.Compare(tb), nil
	}
	return strings.Compare(sa, sb), nil
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	if _, ok := number(v); ok {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
