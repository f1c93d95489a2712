package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyairtable/automation-domain/catalog"
	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

func forEachDialect(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	open := func(t *testing.T, o store.Options) *store.Store {
		s, err := store.Open(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrate(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("sqlite", func(t *testing.T) { fn(t, open(t, store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")})) })
	t.Run("postgres", func(t *testing.T) { fn(t, open(t, store.Options{URL: testenv.PostgresURL(t)})) })
}

const schema = `{"type":"object","required":["id"],"properties":{"id":{"type":"string"},
	"tags":{"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"integer"}},
	"child":{"$ref":"#/$defs/child"}},"$defs":{"child":{"type":"object","required":["n"]}}}`

func fields(err error) []string {
	var p validation.Problems
	if !errors.As(err, &p) {
		return nil
	}
	var out []string
	for _, q := range p {
		out = append(out, q.Field)
	}
	return out
}

func TestCatalogChecksPayloadsPerTenant(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		cat := catalog.New(st)
		ctx := tenant.With(context.Background(), "default")
		other := tenant.With(context.Background(), "other-"+testenv.RandomHex(4))
		et, err := cat.Create(ctx, catalog.Input{Name: "thing.made", Schema: json.RawMessage(schema), Example: json.RawMessage(`{"id":"a"}`)})
		if err != nil || et.Version != 1 {
			t.Fatalf("create: %+v %v", et, err)
		}
		// Draft 2020-12 (prefixItems) and a local $ref, each violation with its path.
		err = cat.Check(ctx, "event_type", "thing.made", "payload", json.RawMessage(`{"id":1,"tags":[3,"x"],"child":{}}`))
		got := strings.Join(fields(err), ",")
		for _, want := range []string{"payload.id", "payload.tags[0]", "payload.tags[1]", "payload.child"} {
			if !strings.Contains(got+",", want+",") {
				t.Errorf("violations %q miss %s (%v)", got, want, err)
			}
		}
		if err := cat.Check(ctx, "event_type", "thing.made", "payload", json.RawMessage(`{"id":"x","tags":["a",1]}`)); err != nil {
			t.Errorf("valid payload: %v", err)
		}
		// Another tenant has no such type: anything goes, until it refuses unknown types.
		if err := cat.Check(other, "event_type", "thing.made", "payload", json.RawMessage(`{"id":1}`)); err != nil {
			t.Errorf("other tenant: %v", err)
		}
		yes := true
		if _, err := cat.UpdateSettings(other, catalog.SettingsPatch{RejectUnknownTypes: &yes}); err != nil {
			t.Fatal(err)
		}
		if f := fields(cat.Check(other, "type", "thing.made", "data", json.RawMessage(`{}`))); len(f) != 1 || f[0] != "type" {
			t.Errorf("unknown type refused on %v", f)
		}
		if err := cat.Check(ctx, "type", "unknown.one", "data", json.RawMessage(`{}`)); err != nil {
			t.Errorf("the default tenant still takes unknown types: %v", err)
		}
		if _, err := cat.Get(other, "thing.made"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("another tenant's type: %v", err)
		}
		// A new schema is a new version; removing it lets anything through.
		et, err = cat.Update(ctx, "thing.made", catalog.Patch{Schema: json.RawMessage(`null`)})
		if err != nil || et.Version != 2 || et.Schema != nil || len(et.Versions) != 2 {
			t.Fatalf("update: %+v %v", et, err)
		}
		if err := cat.Check(ctx, "event_type", "thing.made", "payload", json.RawMessage(`{"id":1}`)); err != nil {
			t.Errorf("without a schema: %v", err)
		}
		doc, err := cat.Document(ctx, "1.2.3")
		if err != nil || doc["asyncapi"] != "3.0.0" {
			t.Fatalf("document: %v %v", doc, err)
		}
	})
}

func TestCatalogRefusesBadSchemas(t *testing.T) {
	forEachDialect(t, func(t *testing.T, st *store.Store) {
		cat := catalog.New(st)
		ctx := tenant.With(context.Background(), "default")
		for _, c := range []struct {
			in    catalog.Input
			field string
		}{
			{catalog.Input{Name: "a..b"}, "name"},
			{catalog.Input{Name: "a.b", Schema: json.RawMessage(`{"type":12}`)}, "schema"},
			{catalog.Input{Name: "a.b", Schema: json.RawMessage(`{"$ref":"file:///etc/passwd"}`)}, "schema"},
			{catalog.Input{Name: "a.b", Schema: json.RawMessage(`{"type":"string"}`), Example: json.RawMessage(`3`)}, "example"},
		} {
			_, err := cat.Create(ctx, c.in)
			if f := fields(err); len(f) == 0 || f[0] != c.field {
				t.Errorf("%+v: %v, want a problem on %s", c.in, err, c.field)
			}
		}
	})
}

func TestPath(t *testing.T) {
	if got := catalog.Path("payload", []string{"items", "0", "sku"}); got != "payload.items[0].sku" {
		t.Errorf("Path: %s", got)
	}
}
