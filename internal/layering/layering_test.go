package layering

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/pyairtable/automation-domain/"

// layers lists the module's packages from the bottom up. A package may import packages of
// lower layers only: never one of its own layer (the domain services reach each other through
// ports, wired in app), never one above.
var layers = [][]string{
	// The service's tracer and trace context, which every layer may use.
	{"internal/tracing"},
	// Leaves: formats, budgets, guards and the wire values both sides of Temporal share.
	{"wire", "ports", "validation", "sandbox", "netguard", "logging", "ratelimit", "schema",
		"notify/email", "notify/sms", "internal/buildinfo", "internal/groupcommit",
		"internal/testenv", "internal/smtptest", "internal/twiliotest", "netguard/netguardtest",
		"internal/layering", "internal/tenant"},
	{"expression", "templating", "config"},
	{"definition", "store", "devserver"},
	{"events", "diagnostics", "tenants", "internal/teststack", "catalog"},
	// The domain services: what handlers, other domains (through ports) and the worker call.
	{"engine", "notify", "webhooks", "rules"},
	// Side effects of the workflows, one struct per domain.
	{"activities"},
	// Deterministic workflow code.
	{"workflows"},
	{"api"},
	// The composition root.
	{"app"},
	{"cmd/api", "cmd/automation", "cmd/migrate", "cmd/loadgen", "worker", "starter"},
}

// banned are imports a package may not have whatever its layer: workflow code does no I/O.
var banned = map[string][]string{
	"workflows": {module + "store", module + "netguard", "net/http", "database/sql", "os",
		"gorm.io/gorm", "github.com/redis/go-redis/v9", "go.temporal.io/sdk/client"},
}

func TestImportsRunDownward(t *testing.T) {
	layerOf := map[string]int{}
	for i, names := range layers {
		for _, n := range names {
			layerOf[n] = i
		}
	}
	pkgs := packages(t)
	if len(pkgs) < 20 {
		t.Fatalf("found only %d packages: is the test run from internal/layering?", len(pkgs))
	}
	for pkg, imports := range pkgs {
		layer, ok := layerOf[pkg]
		if !ok {
			t.Errorf("package %s is in no layer: add it to layers", pkg)
			continue
		}
		for _, imp := range imports {
			if slices.Contains(banned[pkg], imp) {
				t.Errorf("%s imports %s: workflow code does no I/O", pkg, imp)
			}
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if l, known := layerOf[dep]; known && l >= layer && !strings.HasPrefix(dep, pkg+"/") {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports run downward only", pkg, layer, dep, l)
			}
		}
	}
}

// packages maps each package of the module (relative path; tests, e2e and the separate deploy
// module excluded) to its imports.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		switch name := d.Name(); {
		case rel == "e2e" || rel == "deploy" || name == "testdata" || name == "node_modules" ||
			(strings.HasPrefix(name, ".") && rel != ".") || name == "bin" || name == "data":
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, 0)
		if err != nil {
			if _, none := err.(*build.NoGoError); none {
				return nil
			}
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		out[filepath.ToSlash(rel)] = p.Imports
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
