package sandbox

import (
	"reflect"
)

// Size is what Measure found of a value: its size in bytes as the engines count it and how
// deeply it nests.
type Size struct {
	Bytes int64
	Depth int
}

// Measure sizes a JSON-like value: a string counts its length, a number, boolean or null 8
// bytes, a list or map 16 bytes per element plus its keys and elements. A value reached twice
// (lists may share elements) counts twice: that is what printing or serialising it costs.
// Measuring stops once the size passes maxBytes, so it costs at most O(maxBytes). unwrap, when
// set, turns an engine's wrapper types into what they hold (ok false: not a wrapper).
func Measure(v any, maxBytes int64, unwrap func(any) (any, bool)) Size {
	type item struct {
		v     any
		depth int
	}
	var size Size
	stack := []item{{v, 1}}
	for len(stack) > 0 && size.Bytes <= maxBytes {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if it.depth > size.Depth {
			size.Depth = it.depth
		}
		v := it.v
		if unwrap != nil {
			if u, ok := unwrap(v); ok {
				stack = append(stack, item{u, it.depth})
				continue
			}
		}
		switch x := v.(type) {
		case nil, bool, int, int64, float64:
			size.Bytes += 8
		case string:
			size.Bytes += int64(len(x)) + 8
		case []any:
			size.Bytes += 16 * int64(len(x))
			for _, e := range x {
				stack = append(stack, item{e, it.depth + 1})
			}
		case map[string]any:
			for k, e := range x {
				size.Bytes += 16 + int64(len(k))
				stack = append(stack, item{e, it.depth + 1})
			}
		default:
			rv := reflect.ValueOf(v)
			switch rv.Kind() {
			case reflect.String:
				size.Bytes += int64(rv.Len()) + 8
			case reflect.Slice, reflect.Array:
				size.Bytes += 16 * int64(rv.Len())
				for i := 0; i < rv.Len() && size.Bytes <= maxBytes; i++ {
					stack = append(stack, item{rv.Index(i).Interface(), it.depth + 1})
				}
			case reflect.Map:
				iter := rv.MapRange()
				for iter.Next() && size.Bytes <= maxBytes {
					size.Bytes += 16
					stack = append(stack, item{iter.Key().Interface(), it.depth + 1}, item{iter.Value().Interface(), it.depth + 1})
				}
			case reflect.Pointer, reflect.Interface:
				if !rv.IsNil() && rv.Elem().CanInterface() {
					stack = append(stack, item{rv.Elem().Interface(), it.depth})
				} else {
					size.Bytes += 8
				}
			case reflect.Struct:
				size.Bytes += 8
				for i := 0; i < rv.NumField(); i++ {
					if f := rv.Field(i); f.CanInterface() {
						stack = append(stack, item{f.Interface(), it.depth + 1})
					}
				}
			default:
				size.Bytes += 8
			}
		}
	}
	return size
}

// CheckValue accounts for a value the engine just built (see Budget.Value) after measuring it,
// and refuses one nested deeper than the nesting limit.
func (b *Budget) CheckValue(v any, unwrap func(any) (any, bool)) error {
	if b.err != nil {
		return b.err
	}
	s := Measure(v, b.limits.MaxValueBytes, unwrap)
	if s.Depth > b.limits.MaxNesting {
		return b.fail(&LimitError{Limit: LimitNesting, Max: int64(b.limits.MaxNesting)})
	}
	return b.Value(s.Bytes)
}
