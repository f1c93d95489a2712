package api

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The TypeScript client that openapi-typescript generates from the served document compiles,
// and a program using it (testdata/tsclient/client.ts: workflows, executions, webhooks,
// notifications, events, rules) type-checks under tsc --strict, so a generated client's types
// are the contract's. openapi-typescript runs with --default-non-nullable false: its default
// turns every property with a default into a required one, in request bodies too, although
// the server fills the default in.
func TestOpenAPITypeScriptClientCompiles(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv("REQUIRE_SERVICES") != "" {
			t.Fatal("npm is required to check the generated TypeScript client (apt-get install -y npm)")
		}
		t.Skip("npm is not installed")
	}
	dir := t.TempDir()
	for _, name := range []string{"package.json", "client.ts"} {
		b, err := os.ReadFile(filepath.Join("testdata", "tsclient", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := newTestServer(t, nil).do(t, "GET", "/openapi.json", nil)
	if r.StatusCode != 200 {
		t.Fatalf("/openapi.json: %d", r.StatusCode)
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), r.body, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
		}
	}
	run(npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
	bin := filepath.Join(dir, "node_modules", ".bin")
	run(filepath.Join(bin, "openapi-typescript"), "openapi.json", "--default-non-nullable", "false", "-o", "schema.d.ts")
	run(filepath.Join(bin, "tsc"), "--noEmit", "--strict", "--target", "es2022", "--module", "nodenext",
		"--moduleResolution", "nodenext", "--skipLibCheck", "client.ts", "schema.d.ts")
}
