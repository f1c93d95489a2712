package deploy

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads the compose file the way `docker compose config` does (compose-go validates
// it against the Compose specification and interpolates variables) with env as the environment.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	var pairs []string
	for k, v := range env {
		pairs = append(pairs, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.temporal.yml"},
		cli.WithEnv(pairs), cli.WithWorkingDirectory(".."), cli.WithName("automation"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("the compose file does not load: %v", err)
	}
	return p
}

// goModVersion is the version of module in the service's go.mod.
func goModVersion(t *testing.T, module string) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+v(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s is not in go.mod", module)
	}
	return string(m[1])
}

func TestCompose(t *testing.T) {
	p := loadCompose(t, nil)

	t.Run("published ports listen on 127.0.0.1 unless PUBLISH_IP says otherwise", func(t *testing.T) {
		published := 0
		for name, s := range p.Services {
			for _, port := range s.Ports {
				published++
				if port.HostIP != "127.0.0.1" {
					t.Errorf("%s publishes %s on %q", name, port.Published, port.HostIP)
				}
			}
		}
		if published < 8 {
			t.Errorf("only %d published ports", published)
		}
		open := loadCompose(t, map[string]string{"PUBLISH_IP": "0.0.0.0"})
		for name, s := range open.Services {
			for _, port := range s.Ports {
				if port.HostIP != "0.0.0.0" {
					t.Errorf("PUBLISH_IP=0.0.0.0: %s publishes %s on %q", name, port.Published, port.HostIP)
				}
			}
		}
	})

	t.Run("Temporal images are the embedded server's versions", func(t *testing.T) {
		server, ui := goModVersion(t, "go.temporal.io/server"), goModVersion(t, "github.com/temporalio/ui-server/v2")
		want := map[string]string{
			"temporal":           "temporalio/server:" + server,
			"temporal-schema":    "temporalio/admin-tools:" + server,
			"temporal-namespace": "temporalio/admin-tools:" + server,
			"temporal-ui":        "temporalio/ui:" + ui,
		}
		for name, image := range want {
			if got := p.Services[name].Image; got != image {
				t.Errorf("%s runs %s, want %s", name, got, image)
			}
		}
		for name, s := range p.Services {
			if s.Image != "" && (!strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) {
				t.Errorf("%s image %q is not pinned", name, s.Image)
			}
			if strings.Contains(s.Image, "auto-setup") {
				t.Errorf("%s uses the discontinued auto-setup image", name)
			}
		}
	})

	t.Run("long-running services have health checks, and start in order", func(t *testing.T) {
		for _, name := range []string{"postgres", "redis", "temporal", "mailpit", "api"} {
			if hc := p.Services[name].HealthCheck; hc == nil || len(hc.Test) == 0 {
				t.Errorf("%s has no health check", name)
			}
		}
		for name, dep := range map[string]map[string]string{
			"temporal-schema":    {"postgres": "service_healthy"},
			"temporal":           {"temporal-schema": "service_completed_successfully"},
			"temporal-namespace": {"temporal": "service_healthy"},
			"api":                {"postgres": "service_healthy", "redis": "service_healthy", "temporal": "service_healthy"},
			"worker":             {"postgres": "service_healthy", "redis": "service_healthy", "temporal": "service_healthy"},
		} {
			for on, cond := range dep {
				if got := p.Services[name].DependsOn[on].Condition; got != cond {
					t.Errorf("%s depends on %s with %q, want %q", name, on, got, cond)
				}
			}
		}
		for _, name := range []string{"api", "worker"} {
			env := p.Services[name].Environment
			if v := env["TEMPORAL_NAMESPACE"]; v == nil || *v != "automation" {
				t.Errorf("%s TEMPORAL_NAMESPACE %v", name, v)
			}
			if !strings.Contains(strings.Join(p.Services["temporal-namespace"].Command, " "), "--namespace automation") {
				t.Errorf("the namespace job does not create automation: %v", p.Services["temporal-namespace"].Command)
			}
		}
	})
}

func TestComposeObservability(t *testing.T) {
	p := loadCompose(t, nil)
	for _, name := range []string{"jaeger", "prometheus", "grafana"} {
		if _, ok := p.Services[name]; !ok {
			t.Fatalf("no %s service", name)
		}
	}
	mounts := func(service string) map[string]string {
		m := map[string]string{}
		for _, v := range p.Services[service].Volumes {
			m[v.Target] = v.Source
		}
		return m
	}
	if src := mounts("prometheus")["/etc/prometheus/alerts.yml"]; !strings.HasSuffix(src, "deploy/prometheus/alerts.yml") {
		t.Errorf("prometheus does not load deploy/prometheus/alerts.yml: %q", src)
	}
	g := mounts("grafana")
	if !strings.HasSuffix(g["/var/lib/grafana/dashboards"], "deploy/grafana/dashboards") ||
		!strings.HasSuffix(g["/etc/grafana/provisioning"], "deploy/grafana/provisioning") {
		t.Errorf("grafana is not provisioned with deploy/grafana: %v", g)
	}
	prov, err := os.ReadFile("grafana/provisioning/dashboards/automation.yml")
	if err != nil || !strings.Contains(string(prov), "/var/lib/grafana/dashboards") {
		t.Errorf("the dashboard provider does not read the mounted dashboards: %v %s", err, prov)
	}
	for _, name := range []string{"api", "worker"} {
		env := p.Services[name].Environment
		if v := env["OTEL_EXPORTER_OTLP_ENDPOINT"]; v == nil || !strings.Contains(*v, "jaeger:4318") {
			t.Errorf("%s does not send traces to jaeger: %v", name, v)
		}
	}
	if v := p.Services["jaeger"].Environment["COLLECTOR_OTLP_ENABLED"]; v == nil || *v != "true" {
		t.Errorf("jaeger does not accept OTLP")
	}
}
