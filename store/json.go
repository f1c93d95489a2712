package store

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
)

// JSON is a JSON document column: JSONB on Postgres, TEXT on SQLite.
type JSON json.RawMessage

// Value stores the document as text, which both engines accept for their column type.
func (j JSON) Value() (driver.Value, error) {
	if len(j) == 0 {
		return "null", nil
	}
	return string(j), nil
}

// Scan reads the document from either engine's representation. A stored JSON null (what Value
// writes for an empty document) reads back as empty, so that `omitempty` leaves it out.
func (j *JSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*j = nil
	case []byte:
		if string(v) == "null" {
			*j = nil
			return nil
		}
		*j = append((*j)[:0], v...)
	case string:
		if v == "null" {
			*j = nil
			return nil
		}
		*j = JSON(v)
	default:
		return fmt.Errorf("store.JSON: cannot scan %T", src)
	}
	return nil
}

// MarshalJSON returns the document itself.
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// UnmarshalJSON keeps a copy of the document.
func (j *JSON) UnmarshalJSON(b []byte) error {
	*j = append((*j)[:0], b...)
	return nil
}

// MustJSON marshals v, for values that cannot fail to marshal (maps and structs of plain data).
func MustJSON(v any) JSON {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store.MustJSON: %v", err))
	}
	return b
}
