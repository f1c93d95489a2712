package store

import (
	"context"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// A domain's migration merged after a later-numbered one (webhooks' 00004 after the rules'
// 00005) is applied, not refused.
func TestMigrationsMergedOutOfOrderAreApplied(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	file := func(table string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE " + table + " (id TEXT);\n-- +goose Down\nDROP TABLE " + table + ";\n")}
	}
	before := fstest.MapFS{"00001_a.sql": file("a"), "00003_c.sql": file("c")}
	after := fstest.MapFS{"00001_a.sql": file("a"), "00002_b.sql": file("b"), "00003_c.sql": file("c")}
	for i, files := range []fstest.MapFS{before, after} {
		p, err := s.provider(files)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Up(ctx); err != nil {
			t.Fatalf("migration round %d: %v", i+1, err)
		}
	}
	if err := s.db.Exec("INSERT INTO b (id) VALUES ('x')").Error; err != nil {
		t.Errorf("the late migration did not run: %v", err)
	}
}
