package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestDockerignore reads .dockerignore with Docker's own matcher: built binaries, local data,
// secrets and the git history stay out of the build context, and every file `go build` needs for
// the image's binaries (their packages' Go and embedded files, go.mod, go.sum) goes in.
func TestDockerignore(t *testing.T) {
	f, err := os.Open("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(path string) bool {
		ok, err := pm.MatchesOrParentMatches(filepath.ToSlash(path))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, path := range []string{
		"bin/api", "bin/automation", "data/automation.db", "data/temporal.db-wal", "data/dev-secrets.json",
		".git/HEAD", ".git", "coverage.out", "coverage.html", "api.test", "cpu.prof", ".env", "config/.env.local",
		"certs/tls.key", "certs/ca.pem", "deploy/helm/automation/values.yaml", "e2e/harness_test.go",
		"store/store_test.go", "workflows/testdata/interpreter_history.json", "tmp/x",
	} {
		if !excluded(path) {
			t.Errorf("%s would be sent to the image build", path)
		}
	}

	// What building the image's commands reads.
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if not .Standard}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}`, "./cmd/api", "./worker", "./cmd/migrate", "./starter")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if rel, err := filepath.Rel(root, line); err == nil && !strings.HasPrefix(rel, "..") {
			needed = append(needed, rel)
		}
	}
	if len(needed) < 50 {
		t.Fatalf("only %d files of the module are needed? %v", len(needed), needed)
	}
	for _, path := range needed {
		if excluded(path) {
			t.Errorf("%s is needed by the image build but excluded", path)
		}
	}
}
