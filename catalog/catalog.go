// Package catalog is the event catalog: the event types a tenant declares, each with a
// description, a JSON Schema (draft 2020-12) its payloads must follow, an example, a deprecated
// flag and the versions its schema went through. The events bus (POST /events) and the webhook
// module (POST /webhooks/deliver) check payloads with Check; Document publishes the catalog as
// an AsyncAPI 3 document.
package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// Limits of catalog entries.
const (
	MaxNameLength     = 128
	MaxDescription    = 2000
	MaxSchemaBytes    = 64 << 10
	MaxExampleBytes   = 64 << 10
	MaxVersions       = 100
	maxViolations     = 50
	compiledCacheSize = 1024
)

// EventType is a catalog entry as the API shows it.
type EventType struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Schema is the current JSON Schema (absent: any payload); Version its number.
	Schema     json.RawMessage `json:"schema,omitempty"`
	Example    json.RawMessage `json:"example,omitempty"`
	Deprecated bool            `json:"deprecated"`
	Version    int             `json:"version"`
	Versions   []Version       `json:"versions"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// Version is one schema a type had.
type Version struct {
	Version   int             `json:"version"`
	Schema    json.RawMessage `json:"schema,omitempty"`
	Example   json.RawMessage `json:"example,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// Input declares a type.
type Input struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
	Deprecated  bool            `json:"deprecated"`
}

// Patch changes the fields that are set. A new schema (or example) makes a new version; a schema
// of null removes it (a new version without one).
type Patch struct {
	Description *string         `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
	Deprecated  *bool           `json:"deprecated"`
}

// Settings are a tenant's catalog settings.
type Settings struct {
	// RejectUnknownTypes refuses (422) events and messages whose type is not in the catalog.
	RejectUnknownTypes bool `json:"reject_unknown_types"`
}

// SettingsPatch changes the settings that are set.
type SettingsPatch struct {
	RejectUnknownTypes *bool `json:"reject_unknown_types"`
}

// Service is the catalog.
type Service struct {
	store    *store.Store
	compiled *lru.Cache[[32]byte, *jsonschema.Schema]
	now      func() time.Time
}

// New returns the catalog over st.
func New(st *store.Store) *Service {
	c, _ := lru.New[[32]byte, *jsonschema.Schema](compiledCacheSize)
	return &Service{store: st, compiled: c, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
}

// ValidName reports why name is not an event type name ("" when it is): dot-separated parts of
// letters, digits, '_' and '-'.
func ValidName(name string) string {
	if name == "" {
		return "is required"
	}
	if len(name) > MaxNameLength {
		return fmt.Sprintf("must be at most %d characters", MaxNameLength)
	}
	for _, seg := range strings.Split(name, ".") {
		if seg == "" {
			return "must be dot-separated names without empty parts"
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return fmt.Sprintf("may contain only letters, digits, '_', '-' and '.', not %q", r)
			}
		}
	}
	return ""
}

// Create declares a type (store.ErrConflict when the name is taken).
func (s *Service) Create(ctx context.Context, in Input) (EventType, error) {
	var p validation.Problems
	in.Name = strings.TrimSpace(in.Name)
	if msg := ValidName(in.Name); msg != "" {
		p.Add("name", "%s", msg)
	}
	if len(in.Description) > MaxDescription {
		p.Add("description", "must be at most %d characters", MaxDescription)
	}
	schema, example := s.checkSchema(&p, present(in.Schema), present(in.Example))
	if err := p.Err(); err != nil {
		return EventType{}, err
	}
	now := s.now()
	versions := []Version{{Version: 1, Schema: schema, Example: example, CreatedAt: now}}
	row := store.EventType{ID: store.NewID(), Name: in.Name, Description: in.Description, Schema: string(schema),
		Example: string(example), Deprecated: in.Deprecated, Versions: string(mustJSON(versions)), CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateEventType(ctx, &row); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return EventType{}, fmt.Errorf("%w: event type %q exists", store.ErrConflict, in.Name)
		}
		return EventType{}, fmt.Errorf("create event type: %w", err)
	}
	return view(row), nil
}

// Get returns a type (store.ErrNotFound when the tenant has none of that name).
func (s *Service) Get(ctx context.Context, name string) (EventType, error) {
	row, err := s.store.GetEventType(ctx, name)
	if err != nil {
		return EventType{}, err
	}
	return view(row), nil
}

// List returns a page of types, newest first.
func (s *Service) List(ctx context.Context, p store.Page) ([]EventType, string, error) {
	rows, next, err := s.store.ListEventTypes(ctx, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]EventType, len(rows))
	for i, r := range rows {
		out[i] = view(r)
	}
	return out, next, nil
}

// All returns every type, by name.
func (s *Service) All(ctx context.Context) ([]EventType, error) {
	rows, err := s.store.AllEventTypes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]EventType, len(rows))
	for i, r := range rows {
		out[i] = view(r)
	}
	return out, nil
}

// Update applies a patch; a changed schema or example adds a version.
func (s *Service) Update(ctx context.Context, name string, in Patch) (EventType, error) {
	row, err := s.store.GetEventType(ctx, name)
	if err != nil {
		return EventType{}, err
	}
	var p validation.Problems
	cols := map[string]any{}
	if in.Description != nil {
		if len(*in.Description) > MaxDescription {
			p.Add("description", "must be at most %d characters", MaxDescription)
		}
		cols["description"] = *in.Description
	}
	if in.Deprecated != nil {
		cols["deprecated"] = *in.Deprecated
	}
	if in.Schema != nil || in.Example != nil {
		schema, example := json.RawMessage(row.Schema), json.RawMessage(row.Example)
		if in.Schema != nil {
			schema = present(in.Schema)
		}
		if in.Example != nil {
			example = present(in.Example)
		}
		schema, example = s.checkSchema(&p, schema, example)
		var versions []Version
		_ = json.Unmarshal([]byte(row.Versions), &versions)
		if len(versions) >= MaxVersions {
			p.Add("schema", "the type has %d versions, the most it may have", MaxVersions)
		}
		versions = append(versions, Version{Version: len(versions) + 1, Schema: schema, Example: example, CreatedAt: s.now()})
		cols["schema"], cols["example"], cols["versions"] = string(schema), string(example), string(mustJSON(versions))
	}
	if err := p.Err(); err != nil {
		return EventType{}, err
	}
	cols["updated_at"] = s.now()
	if err := s.store.UpdateEventType(ctx, name, cols); err != nil {
		return EventType{}, err
	}
	return s.Get(ctx, name)
}

// Delete removes a type: its payloads are no longer checked.
func (s *Service) Delete(ctx context.Context, name string) error {
	return s.store.DeleteEventType(ctx, name)
}

// GetSettings returns the tenant's settings.
func (s *Service) GetSettings(ctx context.Context) (Settings, error) {
	row, err := s.store.GetEventCatalogSettings(ctx)
	if err != nil {
		return Settings{}, err
	}
	return Settings{RejectUnknownTypes: row.RejectUnknownTypes}, nil
}

// UpdateSettings applies a settings patch.
func (s *Service) UpdateSettings(ctx context.Context, in SettingsPatch) (Settings, error) {
	cur, err := s.GetSettings(ctx)
	if err != nil {
		return Settings{}, err
	}
	if in.RejectUnknownTypes != nil {
		cur.RejectUnknownTypes = *in.RejectUnknownTypes
	}
	err = s.store.PutEventCatalogSettings(ctx, store.EventCatalogSettings{RejectUnknownTypes: cur.RejectUnknownTypes, UpdatedAt: s.now()})
	return cur, err
}

// Check validates a payload of eventType against the type's schema: validation.Problems naming
// each violation's JSON path under field ("payload.items[0].sku"), or under typeField when the
// type is unknown and the tenant refuses unknown types. A type without a schema takes any payload.
func (s *Service) Check(ctx context.Context, typeField, eventType, field string, payload json.RawMessage) error {
	row, err := s.store.GetEventType(ctx, eventType)
	if errors.Is(err, store.ErrNotFound) {
		set, err := s.GetSettings(ctx)
		if err != nil {
			return fmt.Errorf("event catalog: %w", err)
		}
		if set.RejectUnknownTypes {
			var p validation.Problems
			p.Add(typeField, "%q is not in the event catalog (the tenant refuses unknown event types)", eventType)
			return p
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("event catalog: %w", err)
	}
	if row.Schema == "" {
		return nil
	}
	sch, err := s.compile([]byte(row.Schema))
	if err != nil {
		return fmt.Errorf("event type %s: stored schema: %w", eventType, err)
	}
	return violations(sch, field, payload)
}

// checkSchema validates a schema and the example against it; both are returned compacted.
func (s *Service) checkSchema(p *validation.Problems, schema, example json.RawMessage) (json.RawMessage, json.RawMessage) {
	if len(schema) > MaxSchemaBytes {
		p.Add("schema", "must be at most %d bytes", MaxSchemaBytes)
		return nil, nil
	}
	if len(example) > MaxExampleBytes {
		p.Add("example", "must be at most %d bytes", MaxExampleBytes)
		return nil, nil
	}
	schema, example = compact(schema), compact(example)
	if len(schema) == 0 {
		return nil, example
	}
	sch, err := s.compile(schema)
	if err != nil {
		p.Add("schema", "is not a valid JSON Schema (draft 2020-12): %v", err)
		return nil, nil
	}
	if len(example) > 0 {
		if err := violations(sch, "example", example); err != nil {
			var vp validation.Problems
			if errors.As(err, &vp) {
				*p = append(*p, vp...)
			} else {
				p.Add("example", "%v", err)
			}
		}
	}
	return schema, example
}

// compile compiles a schema (cached by its text). Only the schema itself and the standard
// metaschemas are known: a $ref to anything else fails to load.
func (s *Service) compile(schema []byte) (*jsonschema.Schema, error) {
	key := sha256.Sum256(schema)
	if sch, ok := s.compiled.Get(key); ok {
		return sch, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	const loc = "urn:automation-domain:event-type"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, err
	}
	s.compiled.Add(key, sch)
	return sch, nil
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schemas may refer to themselves only, not to %s", url)
}

var printer = message.NewPrinter(language.English)

// violations validates payload against sch: nil, or validation.Problems with each violation's
// path under field.
func violations(sch *jsonschema.Schema, field string, payload json.RawMessage) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		var p validation.Problems
		p.Add(field, "must be valid JSON")
		return p
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var p validation.Problems
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(p) >= maxViolations {
			return
		}
		if len(e.Causes) == 0 {
			p.Add(Path(field, e.InstanceLocation), "%s", e.ErrorKind.LocalizedString(printer))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return p
}

// Path renders a JSON instance location under field: "payload", ["items", "0", "sku"] →
// "payload.items[0].sku".
func Path(field string, tokens []string) string {
	var b strings.Builder
	b.WriteString(field)
	for _, t := range tokens {
		if _, err := strconv.Atoi(t); err == nil {
			b.WriteString("[" + t + "]")
			continue
		}
		b.WriteString("." + t)
	}
	return b.String()
}

// present turns an absent or null JSON value into nil.
func present(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	return raw
}

func compact(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

func view(r store.EventType) EventType {
	out := EventType{Name: r.Name, Description: r.Description, Schema: raw(r.Schema), Example: raw(r.Example),
		Deprecated: r.Deprecated, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	_ = json.Unmarshal([]byte(r.Versions), &out.Versions)
	if out.Versions == nil {
		out.Versions = []Version{}
	}
	out.Version = len(out.Versions)
	return out
}

func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// CheckEvent implements events.Checker: an event posted to the bus is checked as its type's
// payload under "data".
func (s *Service) CheckEvent(ctx context.Context, e store.Event) error {
	data := json.RawMessage(e.Data)
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	return s.Check(ctx, "type", e.Type, "data", data)
}
