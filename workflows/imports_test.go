package workflows_test

import (
	"go/build"
	"slices"
	"strings"
	"testing"
)

// TestImportsOnlyDownward fails on an import edge that runs back up: workflow code imports no
// store or I/O package; the domain packages the API and the worker call import neither the
// workflow code nor the activities to get a type; the leaf packages import nothing of this module.
func TestImportsOnlyDownward(t *testing.T) {
	const module = "github.com/pyairtable/automation-domain/"
	forbidden := map[string][]string{
		"workflows": {"store", "netguard", "notify/email", "notify/sms", "net/http", "database/sql", "os"},
		"notify":    {"activities", "workflows"},
		"engine":    {"activities", "workflows"},
		"webhooks":  {"activities", "workflows"},
		"rules":     {"activities", "workflows"},
		"events":    {"activities", "workflows"},
	}
	for pkg, banned := range forbidden {
		for _, imp := range imports(t, pkg) {
			if slices.Contains(banned, strings.TrimPrefix(imp, module)) {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
	for _, leaf := range []string{"wire", "ports"} {
		for _, imp := range imports(t, leaf) {
			if strings.HasPrefix(imp, module) {
				t.Errorf("leaf package %s imports %s", leaf, imp)
			}
		}
	}
}

// imports lists the imports of the package in directory pkg of the module (tests excluded).
func imports(t *testing.T, pkg string) []string {
	t.Helper()
	p, err := build.ImportDir("../"+pkg, 0)
	if err != nil {
		t.Fatalf("%s: %v", pkg, err)
	}
	return p.Imports
}
