package definition_test

import (
	"strings"
	"testing"

	"github.com/pyairtable/automation-domain/definition"
	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/templating"
)

func validate(t *testing.T, body string, unavailable func(string) string) map[string]string {
	t.Helper()
	d, err := definition.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range definition.Validate(d, definition.Options{Templates: templating.New(templating.Options{}), Unavailable: unavailable}) {
		got[p.Field] += p.Message + "; "
	}
	return got
}

func TestValidDefinitionHasNoProblems(t *testing.T) {
	got := validate(t, `{"name": "ok", "trigger_type": "schedule",
		"schedule": {"interval": "10m", "timezone": "Europe/Berlin", "priority": "high"},
		"steps": [
			{"id": "load", "type": "http_request", "config": {"url": "https://example.com/{{ input.id }}"}, "retry": {"max_attempts": 5, "initial_interval": "2s", "max_interval": "1m"}, "timeout": "10s"},
			{"id": "shape", "type": "data_transform", "config": {"jq": ".steps.load.output.body"}},
			{"id": "a", "type": "delay", "depends_on": ["shape"], "config": {"duration": "{{ input.wait }}"}},
			{"id": "b", "type": "wait_for_signal", "depends_on": ["shape"], "config": {"signal": "approve", "timeout": "2d"}},
			{"id": "join", "type": "data_transform", "depends_on": ["a", "b"], "condition": "steps.b.output.ok == true",
			 "config": {"mapping": {"x": "steps.shape.output", "y": "steps.b.output"}}},
			{"id": "route", "type": "branch", "config": {"cases": [{"when": "input.n > 1", "steps": [
				{"id": "inner", "type": "data_transform", "config": {"jq": ".steps.join.output"}}]}]}},
			{"id": "after", "type": "data_transform", "config": {"mapping": {"i": "steps.inner?.output"}}}
		]}`, nil)
	if len(got) != 0 {
		t.Fatalf("problems: %v", got)
	}
}

func TestEveryProblemIsReportedWithItsPath(t *testing.T) {
	got := validate(t, `{"name": "", "trigger_type": "cron", "steps": [
		{"id": "a", "type": "data_transform", "config": {"jq": ".input | ]["}},
		{"id": "a", "type": "teleport"},
		{"id": "1bad", "type": "delay", "config": {"duration": "soon"}},
		{"id": "c", "type": "http_request", "config": {"url": "ftp://x", "method": "BREW", "headers": {"X": "{{ steps.later.output }}"}, "bogus": 1}},
		{"id": "d", "type": "http_request", "config": {"url": "https://x", "body": "{{ steps.later.output }}", "headers": {"Y": "{% if %}"}}},
		{"id": "e", "type": "data_transform", "condition": "input. >", "config": {"mapping": {"k": "steps.nowhere.output"}}, "on_error": "ignore", "retry": {"max_attempts": 0, "initial_interval": "5m", "max_interval": "1s"}},
		{"id": "later", "type": "delay", "config": {"duration": "1s"}, "timeout": "5s"},
		{"id": "x", "type": "data_transform", "depends_on": ["y"], "config": {"jq": "1"}},
		{"id": "y", "type": "data_transform", "depends_on": ["x"], "config": {"jq": "1"}},
		{"id": "n", "type": "notification", "config": {"channel": "pigeon", "to": "a"}},
		{"id": "p", "type": "parallel", "config": {"branches": [{"steps": [{"id": "a", "type": "delay", "config": {}}]}]}}
	]}`, func(typ string) string {
		if typ == "notification" {
			return "the notifications module is not enabled"
		}
		return ""
	})
	want := map[string]string{
		"name":                        "is required",
		"trigger_type":                "must be one of",
		"steps[0].config.jq":          "jq:",
		"steps[1].id":                 "already the id of steps[0]",
		"steps[1].type":               "must be one of",
		"steps[2].id":                 "must start with a letter",
		"steps[2].config.duration":    "must be a duration",
		"steps[3].config":             `unknown field "bogus"`,
		"steps[4].config.body":        "does not run before this step",
		"steps[4].config.headers.Y":   "does not compile",
		"steps[5].condition":          "",
		"steps[5].config.mapping.k":   `step "nowhere", which does not exist`,
		"steps[5].on_error":           "must be fail or continue",
		"steps[5].retry.max_interval": "must not be shorter",
		"steps[6].timeout":            "does not apply to delay steps",
		"steps":                       "cycle: x → y → x",
		"steps[9].type":               "notification steps are not available: the notifications module is not enabled",
		"steps[10].config.branches[0].steps[0].id": "already the id of steps[0]",
	}
	for field, msg := range want {
		if !strings.Contains(got[field], msg) || got[field] == "" {
			t.Errorf("%s: got %q, want it to say %q", field, got[field], msg)
		}
	}
	if t.Failed() {
		t.Logf("all problems: %v", got)
	}
}

func TestReferencesFollowDependencies(t *testing.T) {
	got := validate(t, `{"name": "w", "trigger_type": "manual", "steps": [
		{"id": "a", "type": "data_transform", "depends_on": [], "config": {"jq": "1"}},
		{"id": "b", "type": "data_transform", "depends_on": [], "config": {"mapping": {"x": "steps.a.output"}}},
		{"id": "c", "type": "data_transform", "depends_on": ["a", "b"], "config": {"mapping": {"x": "steps.a.output + steps.b.output"}}},
		{"id": "p", "type": "parallel", "depends_on": ["c"], "config": {"branches": [
			{"steps": [{"id": "p1", "type": "data_transform", "config": {"mapping": {"x": "steps.c.output"}}},
			           {"id": "p2", "type": "data_transform", "config": {"mapping": {"x": "steps.p1.output"}}}]},
			{"steps": [{"id": "q1", "type": "data_transform", "config": {"mapping": {"x": "steps.p1.output"}}}]}]}},
		{"id": "after", "type": "data_transform", "config": {"mapping": {"x": "steps.p2.output", "y": "steps.q1.output"}}}
	]}`, nil)
	if len(got) != 2 || !strings.Contains(got["steps[1].config.mapping.x"], `"a", which does not run before`) ||
		!strings.Contains(got["steps[3].config.branches[1].steps[0].config.mapping.x"], `"p1", which does not run before`) {
		t.Errorf("problems: %v", got)
	}
}

func TestScheduleRules(t *testing.T) {
	got := validate(t, `{"name": "w", "trigger_type": "schedule", "steps": [{"id": "a", "type": "delay", "config": {"duration": "1s"}}]}`, nil)
	if !strings.Contains(got["schedule"], "is required") {
		t.Errorf("missing schedule: %v", got)
	}
	got = validate(t, `{"name": "w", "trigger_type": "schedule", "schedule": {"cron": "* *", "interval": "1s", "timezone": "Mars/Base"},
		"steps": [{"id": "a", "type": "delay", "config": {"duration": "1s"}}]}`, nil)
	for _, f := range []string{"schedule", "schedule.cron", "schedule.timezone"} {
		if got[f] == "" {
			t.Errorf("%s: no problem in %v", f, got)
		}
	}
	got = validate(t, `{"name": "w", "trigger_type": "manual", "schedule": {"cron": "* * * * *"}, "steps": [{"id": "a", "type": "delay", "config": {"duration": "1s"}}]}`, nil)
	if !strings.Contains(got["schedule"], "only allowed") {
		t.Errorf("schedule on manual: %v", got)
	}
}

func TestDepsAndReferences(t *testing.T) {
	steps := []definition.Step{{ID: "a"}, {ID: "b"}, {ID: "c", DependsOn: []string{}}, {ID: "d", DependsOn: []string{"a", "c"}}}
	deps := definition.Deps(steps)
	if len(deps[0]) != 0 || deps[1][0] != "a" || len(deps[2]) != 0 || len(deps[3]) != 2 {
		t.Errorf("deps %v", deps)
	}
	refs := definition.References(`{{ steps.a.output }} and steps["b-c"].x and steps . d`)
	if strings.Join(refs, ",") != "a,b-c,d" {
		t.Errorf("refs %v", refs)
	}
	if d, err := definition.ParseDuration("2d"); err != nil || d.Hours() != 48 {
		t.Errorf("2d = %v, %v", d, err)
	}
}

// http_request destinations the SSRF guard refuses without DNS are refused at save time, with
// the step's path; hosts that are templates, and names, are left to the run.
func TestHTTPRequestDestinationsAreCheckedAtSaveTime(t *testing.T) {
	body := `{"name": "ssrf", "trigger_type": "manual", "steps": [
		{"id": "a", "type": "http_request", "config": {"url": "http://169.254.169.254/latest/meta-data/"}},
		{"id": "b", "type": "http_request", "config": {"url": "http://[::127.0.0.1]:8080/x"}},
		{"id": "c", "type": "http_request", "config": {"url": "http://2130706433/"}},
		{"id": "d", "type": "http_request", "config": {"url": "http://10.0.0.5:{{ input.port }}/{{ input.path }}"}},
		{"id": "e", "type": "http_request", "config": {"url": "http://{{ input.host }}/x"}},
		{"id": "f", "type": "http_request", "config": {"url": "https://hooks.example.com/{{ input.id }}"}},
		{"id": "g", "type": "http_request", "config": {"url": "https://hooks.example.com/done"}},
		{"id": "h", "type": "http_request", "config": {"url": "http://10.{{ input.net }}.0.1/"}},
		{"id": "i", "type": "http_request", "config": {"url": "http://user:pw@hooks.example.com/"}},
		{"id": "j", "type": "branch", "config": {"cases": [{"when": "true", "steps": [
			{"id": "k", "type": "http_request", "config": {"url": "http://[64:ff9b::a9fe:a9fe]/"}}]}]}},
		{"id": "l", "type": "http_request", "config": {"url": "{{ input.scheme }}://localhost/x"}},
		{"id": "m", "type": "http_request", "config": {"url": "http://127.0.0.1:9/ok"}}
	]}`
	check := func(allowed ...string) map[string]string {
		prefixes, err := netguard.ParsePrefixes(allowed)
		if err != nil {
			t.Fatal(err)
		}
		d, err := definition.Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, p := range definition.Validate(d, definition.Options{Templates: templating.New(templating.Options{}),
			Egress: &netguard.Policy{Allowed: prefixes}}) {
			got[p.Field] += p.Message + "; "
		}
		return got
	}
	got := check()
	want := map[string]string{
		"steps[0].config.url":                          "link-local address",
		"steps[1].config.url":                          "IPv4-compatible address embedding 127.0.0.1 (loopback address)",
		"steps[2].config.url":                          "unusual spelling of the IPv4 address 127.0.0.1",
		"steps[3].config.url":                          "destination 10.0.0.5 is not allowed: private address",
		"steps[8].config.url":                          "credentials in the URL are not allowed",
		"steps[9].config.cases[0].steps[0].config.url": "NAT64 address embedding 169.254.169.254",
		"steps[10].config.url":                         "loopback address",
		"steps[11].config.url":                         "loopback address",
	}
	for field, msg := range want {
		if !strings.Contains(got[field], msg) {
			t.Errorf("%s: %q, want %q", field, got[field], msg)
		}
	}
	if len(got) != len(want) {
		t.Errorf("problems %v, want exactly the fields %v", got, want)
	}
	// WEBHOOK_ALLOWED_CIDRS admits private ranges at save time as it does at run time; the
	// address in disguise and the embedded one stay refused.
	got = check("127.0.0.1", "10.0.0.0/8", "169.254.0.0/16")
	for _, field := range []string{"steps[0].config.url", "steps[3].config.url", "steps[11].config.url"} {
		if msg, ok := got[field]; ok {
			t.Errorf("%s refused although its range is allowed: %s", field, msg)
		}
	}
	for _, field := range []string{"steps[1].config.url", "steps[2].config.url", "steps[9].config.cases[0].steps[0].config.url"} {
		if _, ok := got[field]; !ok {
			t.Errorf("%s accepted once a range was allowed", field)
		}
	}
}
