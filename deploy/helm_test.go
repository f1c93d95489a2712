package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const chart = "helm/automation"

// helmBinary is the helm that .ci/run builds from the Go module proxy (HELM), or one on PATH.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	if h, err := exec.LookPath("helm"); err == nil {
		return h
	}
	if os.Getenv("REQUIRE_SERVICES") == "1" {
		t.Fatal("helm not found: set HELM or put it on PATH (.ci/run builds it)")
	}
	t.Skip("helm not found: set HELM or put it on PATH (.ci/run builds it)")
	return ""
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out.String(), err
}

// required are the values without which the chart refuses to render.
var required = []string{
	"temporal.address=temporal-frontend.temporal:7233",
	"secrets.internalApiKey=k", "secrets.jwtSecretKey=j", "secrets.webhookSecretKey=w",
	"secrets.databaseUrl=postgres://automation:pw@postgres:5432/automation",
}

func render(t *testing.T, sets ...string) ([]object, error) {
	t.Helper()
	args := []string{"template", "rel", chart, "--namespace", "prod", "--kube-version", "1.31.0"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		return nil, err
	}
	return decodeAll(t, out), nil
}

type object struct {
	Kind, Name string
	Value      any
}

// decodeAll splits the rendered manifests and decodes each into its Kubernetes API type; an
// unknown kind or an unknown field (a typo, a field at the wrong level) fails the test.
func decodeAll(t *testing.T, manifests string) []object {
	t.Helper()
	var objs []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		var v any
		switch meta.APIVersion + " " + meta.Kind {
		case "apps/v1 Deployment":
			v = &appsv1.Deployment{}
		case "v1 Service":
			v = &corev1.Service{}
		case "v1 Secret":
			v = &corev1.Secret{}
		case "v1 ServiceAccount":
			v = &corev1.ServiceAccount{}
		case "batch/v1 Job":
			v = &batchv1.Job{}
		case "autoscaling/v2 HorizontalPodAutoscaler":
			v = &autoscalingv2.HorizontalPodAutoscaler{}
		case "policy/v1 PodDisruptionBudget":
			v = &policyv1.PodDisruptionBudget{}
		case "networking.k8s.io/v1 Ingress":
			v = &networkingv1.Ingress{}
		case "networking.k8s.io/v1 NetworkPolicy":
			v = &networkingv1.NetworkPolicy{}
		case "monitoring.coreos.com/v1 ServiceMonitor":
			v = &monitoringv1.ServiceMonitor{}
		default:
			t.Fatalf("the chart renders a kind this test does not know: %s %s", meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, v); err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", meta.Kind, err, doc)
		}
		name := v.(metav1.Object).GetName()
		objs = append(objs, object{Kind: meta.Kind, Name: name, Value: v})
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func find[T any](t *testing.T, objs []object, kind, name string) *T {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			return o.Value.(*T)
		}
	}
	t.Fatalf("no %s %s among %v", kind, name, objs)
	return nil
}

func TestHelmLint(t *testing.T) {
	if out, err := helm(t, append([]string{"lint", chart, "--strict", "--kube-version", "1.31.0"}, setArgs(required)...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func setArgs(sets []string) []string {
	var args []string
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

func TestHelmChartRendersValidObjects(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		objs, err := render(t, required...)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.Kind]++
		}
		want := map[string]int{"Deployment": 2, "Service": 2, "Secret": 1, "ServiceAccount": 1, "Job": 1}
		if fmt.Sprint(kinds) != fmt.Sprint(want) {
			t.Errorf("objects by kind %v, want %v (optional ones off by default)", kinds, want)
		}
		api := find[appsv1.Deployment](t, objs, "Deployment", "rel-automation-api")
		worker := find[appsv1.Deployment](t, objs, "Deployment", "rel-automation-worker")
		checkPod(t, "api", api.Spec.Template.Spec, "http", 8090)
		checkPod(t, "worker", worker.Spec.Template.Spec, "metrics", 9090)
		if env := envOf(worker.Spec.Template.Spec.Containers[0]); env["METRICS_PORT"] != "9090" ||
			env["TEMPORAL_ADDRESS"] != "temporal-frontend.temporal:7233" || env["ENV"] != "production" {
			t.Errorf("worker env %v", env)
		}
		job := find[batchv1.Job](t, objs, "Job", "rel-automation-migrate")
		if job.Annotations["helm.sh/hook"] != "post-install,pre-upgrade" ||
			job.Spec.Template.Spec.Containers[0].Command[0] != "/usr/local/bin/migrate" {
			t.Errorf("migration job %v %v", job.Annotations, job.Spec.Template.Spec.Containers[0].Command)
		}
		secret := find[corev1.Secret](t, objs, "Secret", "rel-automation-secrets")
		if secret.StringData["DATABASE_URL"] == "" || secret.StringData["WEBHOOK_SECRET_KEY"] != "w" {
			t.Errorf("secret %v", secret.StringData)
		}
		if _, ok := secret.StringData["REDIS_URL"]; ok {
			t.Error("an unset optional credential is in the Secret")
		}
	})

	t.Run("every option on", func(t *testing.T) {
		objs, err := render(t, append(required, "api.autoscaling.enabled=true", "worker.autoscaling.enabled=true",
			"api.podDisruptionBudget.enabled=true", "worker.podDisruptionBudget.enabled=true",
			"ingress.enabled=true", "serviceMonitor.enabled=true", "networkPolicy.enabled=true",
			"secrets.redisUrl=redis://redis:6379/0")...)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"rel-automation-api", "rel-automation-worker"} {
			hpa := find[autoscalingv2.HorizontalPodAutoscaler](t, objs, "HorizontalPodAutoscaler", name)
			if hpa.Spec.ScaleTargetRef.Name != name || hpa.Spec.MaxReplicas != 10 {
				t.Errorf("HPA %s: %+v", name, hpa.Spec)
			}
			if d := find[appsv1.Deployment](t, objs, "Deployment", name); d.Spec.Replicas != nil {
				t.Errorf("%s sets replicas under an HPA", name)
			}
			find[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", name)
			find[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", name)
		}
		ing := find[networkingv1.Ingress](t, objs, "Ingress", "rel-automation")
		if b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service; b.Name != "rel-automation-api" || b.Port.Name != "http" {
			t.Errorf("ingress backend %+v", b)
		}
		sm := find[monitoringv1.ServiceMonitor](t, objs, "ServiceMonitor", "rel-automation")
		if len(sm.Spec.Endpoints) != 2 {
			t.Errorf("service monitor endpoints %+v", sm.Spec.Endpoints)
		}
	})

	t.Run("existing secret", func(t *testing.T) {
		objs, err := render(t, "temporal.address=t:7233", "secrets.existingSecret=automation-prod", "migrations.enabled=false")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.Kind == "Secret" || o.Kind == "Job" {
				t.Errorf("rendered %s %s", o.Kind, o.Name)
			}
		}
		api := find[appsv1.Deployment](t, objs, "Deployment", "rel-automation-api")
		for _, e := range api.Spec.Template.Spec.Containers[0].Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef.Name != "automation-prod" {
				t.Errorf("%s from secret %s", e.Name, e.ValueFrom.SecretKeyRef.Name)
			}
		}
	})

	t.Run("refuses without the required values", func(t *testing.T) {
		if _, err := render(t, "secrets.existingSecret=s"); err == nil || !strings.Contains(err.Error(), "temporal.address is required") {
			t.Errorf("without temporal.address: %v", err)
		}
		if _, err := render(t, "temporal.address=t:7233"); err == nil || !strings.Contains(err.Error(), "secrets.internalApiKey is required") {
			t.Errorf("without secrets: %v", err)
		}
	})
}

// checkPod: probes on /live and /ready on the named port, non-root, read-only root, resources.
func checkPod(t *testing.T, name string, spec corev1.PodSpec, port string, number int32) {
	t.Helper()
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", name, len(spec.Containers))
	}
	c := spec.Containers[0]
	if len(c.Ports) != 1 || c.Ports[0].Name != port || c.Ports[0].ContainerPort != number {
		t.Errorf("%s ports %+v", name, c.Ports)
	}
	for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/live", c.ReadinessProbe: "/ready", c.StartupProbe: "/live"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.StrVal != port {
			t.Errorf("%s: a probe is not on %s:%s: %+v", name, port, want, probe)
		}
	}
	sc := spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s pod security context %+v", name, sc)
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("%s container security context %+v", name, c.SecurityContext)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s resources %+v", name, c.Resources)
	}
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}
