package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtool finds promtool; without it the test fails when REQUIRE_SERVICES is set (CI installs
// Debian's prometheus package) and is skipped otherwise.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("REQUIRE_SERVICES") != "" {
			t.Fatal("promtool is not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("promtool is not installed: apt-get install prometheus")
	}
	return path
}

func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	t.Run("promtool check rules", func(t *testing.T) {
		out, err := exec.Command(bin, "check", "rules", "prometheus/alerts.yml").CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("promtool test rules", func(t *testing.T) {
		cmd := exec.Command(bin, "test", "rules", "alerts_test.yml")
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("promtool check config", func(t *testing.T) {
		// The compose file mounts the rules where this config looks for them.
		dir := t.TempDir()
		cfg, err := os.ReadFile("prometheus/prometheus.yml")
		if err != nil {
			t.Fatal(err)
		}
		rules, err := os.ReadFile("prometheus/alerts.yml")
		if err != nil {
			t.Fatal(err)
		}
		local := []byte(strings.ReplaceAll(string(cfg), "/etc/prometheus/alerts.yml", filepath.Join(dir, "alerts.yml")))
		if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), local, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	})
}

func TestDashboardsAreValid(t *testing.T) {
	files, err := filepath.Glob("grafana/dashboards/*.json")
	if err != nil || len(files) < 6 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	uids := map[string]string{}
	for _, f := range files {
		var d struct {
			UID    string `json:"uid"`
			Title  string `json:"title"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("%s is not valid JSON: %v", f, err)
			continue
		}
		if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
			t.Errorf("%s: uid %q title %q, %d panels", f, d.UID, d.Title, len(d.Panels))
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %s", f, other, d.UID)
		}
		uids[d.UID] = f
		for _, p := range d.Panels {
			if len(p.Targets) == 0 || p.Targets[0].Expr == "" {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
		}
	}
}
