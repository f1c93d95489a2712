package e2e

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// onlyWhileItHolds are series that exist only while what they measure is happening (a backlog,
// a circuit open); the scrape of a healthy stack cannot show them. Each is registered by the
// service (webhooks.BacklogCollector, webhooks.Metrics).
var onlyWhileItHolds = map[string]bool{
	"webhook_backlog_oldest_due_seconds": true,
	"webhook_circuit_opened_total":       true,
}

// promQLWords are the functions, operators and keywords of PromQL that look like names.
var promQLWords = map[string]bool{
	"sum": true, "rate": true, "increase": true, "by": true, "without": true, "max": true, "min": true,
	"avg": true, "count": true, "histogram_quantile": true, "and": true, "or": true, "unless": true,
	"on": true, "ignoring": true, "group_left": true, "group_right": true, "bool": true, "offset": true,
	"irate": true, "delta": true, "topk": true, "bottomk": true, "abs": true, "clamp_min": true,
}

var (
	selectorRe = regexp.MustCompile(`\{[^}]*\}`)
	groupingRe = regexp.MustCompile(`\b(by|without|on|ignoring)\s*\([^)]*\)`)
	rangeRe    = regexp.MustCompile(`\[[^\]]*\]`)
	stringRe   = regexp.MustCompile(`"[^"]*"`)
	identRe    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
)

// metricNames are the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	e := stringRe.ReplaceAllString(expr, "")
	e = selectorRe.ReplaceAllString(e, " ")
	e = groupingRe.ReplaceAllString(e, " ")
	e = rangeRe.ReplaceAllString(e, " ")
	var names []string
	for _, m := range identRe.FindAllString(e, -1) {
		if strings.HasSuffix(m, "(") {
			continue // a function
		}
		m = strings.TrimSpace(m)
		if !promQLWords[m] && m != "le" && m != "Inf" {
			names = append(names, m)
		}
	}
	return names
}

// dashboardQueries are the PromQL expressions of deploy/grafana's dashboards and
// deploy/prometheus' alert rules, by where they are.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	files, _ := filepath.Glob("../deploy/grafana/dashboards/*.json")
	if len(files) == 0 {
		t.Fatal("no dashboards in deploy/grafana/dashboards")
	}
	for _, f := range files {
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
			Templating struct {
				List []struct {
					Definition string `json:"definition"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal([]byte(readFile(t, f)), &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range d.Panels {
			for i, tg := range p.Targets {
				out[filepath.Base(f)+": "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
			}
		}
		for _, v := range d.Templating.List {
			// label_values(metric, label)
			if m := regexp.MustCompile(`label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)`).FindStringSubmatch(v.Definition); m != nil {
				out[filepath.Base(f)+": variable "+v.Definition] = m[1]
			}
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alerts.yml: "+r.Alert] = r.Expr
		}
	}
	return out
}

// checkDashboardMetrics scrapes url and fails for every dashboard or alert query that reads a
// metric the scrape does not have.
func checkDashboardMetrics(t *testing.T, url string) {
	t.Helper()
	res, err := contractGet(t, url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	scraped := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		scraped[name] = true
	}
	queries := dashboardQueries(t)
	used := 0
	for where, expr := range queries {
		for _, name := range metricNames(expr) {
			used++
			if !scraped[name] && !onlyWhileItHolds[name] {
				t.Errorf("%s reads %s, which %s does not expose", where, name, url)
			}
		}
	}
	if used < 20 {
		var names []string
		for n := range scraped {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Errorf("only %d metric reads found in %d queries", used, len(queries))
	}
}

func TestMetricNamesOfAQuery(t *testing.T) {
	got := metricNames(`histogram_quantile(0.95, sum by (le, endpoint_id) (rate(webhook_end_to_end_seconds_bucket{endpoint_id=~"$endpoint",outcome="succeeded"}[5m]))) / sum(up)`)
	if strings.Join(got, ",") != "webhook_end_to_end_seconds_bucket,up" {
		t.Errorf("names %v", got)
	}
}
