package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/internal/testenv"
	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/validation"
)

// newInboundService is the webhook module over a fresh SQLite store, with a clock the test sets
// (its Temporal client points where nothing listens: inbound webhooks do not need it).
func newInboundService(t *testing.T, settings Settings) (*Service, *store.Store, *time.Time) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(t.TempDir(), "app.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := New(Options{Settings: settings, Store: st, Temporal: tc, Events: events.NewBus(st, log),
		Egress: &netguard.Policy{}, ServiceSecret: "test", Registry: prometheus.NewRegistry(), Log: log, TaskQueue: "automation"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	svc.now = func() time.Time { return now }
	return svc, st, &now
}

func githubHeaders(secret, body, delivery, event string) http.Header {
	h := http.Header{}
	h.Set("X-Hub-Signature-256", SignHexHMAC([]byte(secret), []byte(body)))
	if delivery != "" {
		h.Set("X-GitHub-Delivery", delivery)
	}
	if event != "" {
		h.Set("X-GitHub-Event", event)
	}
	return h
}

// An hmac_sha256 source refuses the same signed body again whatever delivery id it comes with
// (the id header is not signed), and the same delivery id again whatever body.
func TestHMACSourceRefusesReplays(t *testing.T) {
	svc, st, _ := newInboundService(t, Settings{})
	ctx := context.Background()
	const secret = "gh-webhook-secret-0123"
	if _, err := svc.CreateSource(ctx, SourceInput{Name: "github", Scheme: SchemeHMAC, Secret: secret,
		EventTypeHeader: "X-GitHub-Event"}); err != nil {
		t.Fatal(err)
	}
	push := `{"ref":"refs/heads/main","after":"a1"}`
	first, err := svc.Receive(ctx, "github", githubHeaders(secret, push, "d-1", "push"), []byte(push))
	if err != nil || first.EventType != "push" || first.WebhookID != "d-1" {
		t.Fatalf("first delivery: %+v %v", first, err)
	}
	for name, h := range map[string]http.Header{
		"same request":                      githubHeaders(secret, push, "d-1", "push"),
		"a new delivery id":                 githubHeaders(secret, push, "d-2", "push"),
		"a new id and a swapped event type": githubHeaders(secret, push, "d-3", "release"),
		"no delivery id":                    githubHeaders(secret, push, "", "push"),
	} {
		if got, err := svc.Receive(ctx, "github", h, []byte(push)); !errors.Is(err, ErrReplay) {
			t.Errorf("%s: %+v %v, want a replay", name, got, err)
		}
	}
	other := `{"ref":"refs/heads/main","after":"b2"}`
	if got, err := svc.Receive(ctx, "github", githubHeaders(secret, other, "d-1", "push"), []byte(other)); !errors.Is(err, ErrReplay) {
		t.Errorf("a delivery id seen before, with another body: %+v %v", got, err)
	}
	// A new body is new, with or without an id; then it is a replay too.
	if _, err := svc.Receive(ctx, "github", githubHeaders(secret, other, "d-4", "push"), []byte(other)); err != nil {
		t.Errorf("a new body: %v", err)
	}
	third := `{"ref":"refs/heads/main","after":"c3"}`
	if _, err := svc.Receive(ctx, "github", githubHeaders(secret, third, "", "push"), []byte(third)); err != nil {
		t.Errorf("a new body without an id: %v", err)
	}
	if _, err := svc.Receive(ctx, "github", githubHeaders(secret, third, "", "push"), []byte(third)); !errors.Is(err, ErrReplay) {
		t.Errorf("that body again without an id: %v", err)
	}
	var n int64
	if err := st.DB().Model(&store.Event{}).Where("source = ?", "webhook/github").Count(&n).Error; err != nil || n != 3 {
		t.Errorf("events recorded: %d %v, want 3", n, err)
	}
}

// Replay keys are remembered for the replay window (EVENT_RETENTION), then forgotten by the sweep.
func TestReplayWindow(t *testing.T) {
	svc, _, now := newInboundService(t, Settings{ReplayWindow: 48 * time.Hour})
	ctx := context.Background()
	const secret = "gh-webhook-secret-0123"
	if _, err := svc.CreateSource(ctx, SourceInput{Name: "github", Scheme: SchemeHMAC, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	body := `{"zen":"Keep it logically awesome."}`
	receive := func() error {
		_, err := svc.Receive(ctx, "github", githubHeaders(secret, body, "", ""), []byte(body))
		return err
	}
	if err := receive(); err != nil {
		t.Fatal(err)
	}
	*now = now.Add(47 * time.Hour)
	if _, err := svc.Sweep(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := receive(); !errors.Is(err, ErrReplay) {
		t.Errorf("within the window: %v, want a replay", err)
	}
	*now = now.Add(2 * time.Hour)
	if _, err := svc.Sweep(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := receive(); err != nil {
		t.Errorf("after the window: %v, want accepted", err)
	}
	if svc2, _, _ := newInboundService(t, Settings{}); svc2.Settings().ReplayWindow != DefaultReplayWindow {
		t.Errorf("default window %v", svc2.Settings().ReplayWindow)
	}
}

// A source may take the event type from a path of the signed body; the path wins over a header,
// which anyone relaying the request could change; the header is the fallback when the body has
// no value there.
func TestEventTypeFromTheSignedBody(t *testing.T) {
	svc, _, _ := newInboundService(t, Settings{})
	ctx := context.Background()
	const secret = "gh-webhook-secret-0123"
	src, err := svc.CreateSource(ctx, SourceInput{Name: "github", Scheme: SchemeHMAC, Secret: secret,
		EventTypePath: "action", EventTypeHeader: "X-GitHub-Event"})
	if err != nil {
		t.Fatal(err)
	}
	if src.EventTypePath != "action" {
		t.Errorf("source %+v", src.Source)
	}
	opened := `{"action":"opened","number":7}`
	got, err := svc.Receive(ctx, "github", githubHeaders(secret, opened, "d-1", "release"), []byte(opened))
	if err != nil || got.EventType != "opened" {
		t.Errorf("type from the body: %+v %v, want opened (the header said release)", got, err)
	}
	ping := `{"zen":"Design for failure.","hook_id":1}`
	got, err = svc.Receive(ctx, "github", githubHeaders(secret, ping, "d-2", "ping"), []byte(ping))
	if err != nil || got.EventType != "ping" {
		t.Errorf("no action in the body: %+v %v, want the header's ping", got, err)
	}
	bad := `{"action":"no spaces allowed"}`
	if _, err := svc.Receive(ctx, "github", githubHeaders(secret, bad, "d-3", ""), []byte(bad)); err == nil {
		t.Error("an invalid event type from the body was accepted")
	}
}

// Custom header values are sealed per endpoint and name: a stored value cannot be moved to
// another header or endpoint, and the names stay readable.
func TestHeaderSealing(t *testing.T) {
	box, err := NewSecretBox("service-secret")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.SealHeaders("ep-1", map[string]string{"Authorization": "Bearer t0k", "X-Api-Key": "k3y"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != 2 || strings.Contains(sealed["Authorization"], "t0k") || strings.Contains(sealed["X-Api-Key"], "k3y") {
		t.Fatalf("sealed %v", sealed)
	}
	got, err := box.OpenHeaders("ep-1", sealed)
	if err != nil || got["Authorization"] != "Bearer t0k" || got["X-Api-Key"] != "k3y" {
		t.Fatalf("opened %v %v", got, err)
	}
	if _, err := box.OpenHeaders("ep-2", sealed); err == nil {
		t.Error("headers opened for another endpoint")
	}
	swapped := map[string]string{"X-Api-Key": sealed["Authorization"]}
	if _, err := box.OpenHeaders("ep-1", swapped); err == nil {
		t.Error("a value opened under another header name")
	}
}

// Endpoints are shown with their header names and redacted values; the store holds sealed
// values; a PATCH that sends a header back redacted keeps its value, a new value replaces it,
// and a redacted value for a header the endpoint lacks is a 422.
func TestEndpointHeadersAreRedactedAndKept(t *testing.T) {
	svc, st, _ := newInboundService(t, Settings{})
	ctx := context.Background()
	e, err := svc.CreateEndpoint(ctx, EndpointInput{Name: "crm", URL: "https://93.184.216.34/hook",
		Headers: map[string]string{"Authorization": "Bearer t0k-1", "X-Tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Headers["Authorization"] != RedactedHeaderValue || e.Headers["X-Tenant"] != RedactedHeaderValue || len(e.Headers) != 2 {
		t.Errorf("created endpoint shows headers %v", e.Headers)
	}
	row, err := st.GetWebhookEndpoint(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(row.Headers), "t0k-1") || strings.Contains(string(row.Headers), "acme") {
		t.Errorf("stored in plain text: %s", row.Headers)
	}
	var stored map[string]string
	if err := json.Unmarshal(row.Headers, &stored); err != nil {
		t.Fatal(err)
	}
	patched, err := svc.patchHeaders(e.ID, map[string]string{"Authorization": RedactedHeaderValue, "X-Tenant": "globex", "X-New": "1"}, stored)
	if err != nil {
		t.Fatal(err)
	}
	if patched["Authorization"] != stored["Authorization"] {
		t.Error("a redacted value did not keep the stored one")
	}
	opened, err := svc.secrets.OpenHeaders(e.ID, patched)
	if err != nil || opened["Authorization"] != "Bearer t0k-1" || opened["X-Tenant"] != "globex" || opened["X-New"] != "1" {
		t.Errorf("patched headers %v %v", opened, err)
	}
	var p validation.Problems
	checkHeaders(&p, map[string]string{"X-Unknown": RedactedHeaderValue}, stored)
	if len(p) != 1 || p[0].Field != "headers.X-Unknown" {
		t.Errorf("a redacted value for a header the endpoint lacks: %v", p)
	}
}
