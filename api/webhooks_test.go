package api

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyairtable/automation-domain/events"
	"github.com/pyairtable/automation-domain/logging"
	"github.com/pyairtable/automation-domain/netguard"
	"github.com/pyairtable/automation-domain/netguard/netguardtest"
	"github.com/pyairtable/automation-domain/webhooks"
)

// withWebhooks gives a test server the webhook module with the given SSRF policy; its DNS
// answers every name with 127.0.0.1 (a hostname that resolves to loopback).
func withWebhooks(t *testing.T, ts *testServer, allowed []netip.Prefix, httpsOnly bool) {
	t.Helper()
	policy := &netguard.Policy{Allowed: allowed, HTTPSOnly: httpsOnly,
		Resolver: netguardtest.Resolver(t, netip.MustParseAddr("127.0.0.1"))}
	svc, err := webhooks.New(webhooks.Options{
		Settings: webhooks.Settings{Timeout: 15 * time.Second}, Store: ts.store, Temporal: ts.temporal,
		Events: events.NewBus(ts.store, logging.New(ts.logs, false, "debug")), Egress: policy, ServiceSecret: "w",
		Registry: prometheus.NewRegistry(), TaskQueue: "automation",
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.webhooks = svc
}

// The SSRF table: every one of these is refused at registration (422 on url) unless an
// operator allowed its range.
func TestWebhookEndpointSSRFTable(t *testing.T) {
	refused := map[string]string{ // URL → why
		"http://127.0.0.1:8080/hook":               "loopback",
		"http://[::1]/hook":                        "loopback",
		"http://10.0.0.1/hook":                     "private",
		"http://169.254.169.254/latest/meta-data/": "link-local",
		"http://100.64.0.1/hook":                   "carrier-grade NAT",
		"http://rebind.example.test:8080/hook":     "(127.0.0.1) is not allowed: loopback", // resolves to 127.0.0.1
		"http://localhost/hook":                    "loopback",
		"http://192.168.1.10/hook":                 "private",
		"http://[fd00::1]/hook":                    "private",
		"http://[fe80::1]/hook":                    "link-local",
		"http://0.0.0.0/hook":                      "unspecified",
		"file:///etc/passwd":                       "only http and https",
		// IPv6 that carries a non-public IPv4 address, and IPv4 in spellings Go reads as names
		"http://[::127.0.0.1]/hook":                      "IPv4-compatible address embedding 127.0.0.1",
		"http://[::ffff:0:a9fe:a9fe]/hook":               "IPv4-translated address embedding 169.254.169.254",
		"http://[64:ff9b::7f00:1]/hook":                  "NAT64 address embedding 127.0.0.1",
		"http://[2002:a9fe:a9fe::1]/hook":                "6to4 address embedding 169.254.169.254",
		"http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/": "Teredo address embedding 127.0.0.1",
		"http://2130706433/hook":                         "unusual spelling of the IPv4 address 127.0.0.1 (loopback",
		"http://0177.0.0.1/hook":                         "unusual spelling of the IPv4 address 127.0.0.1 (loopback",
		"http://0x7f.0.0.1/hook":                         "unusual spelling of the IPv4 address 127.0.0.1 (loopback",
		"http://0xa9fea9fe/latest/meta-data/":            "unusual spelling of the IPv4 address 169.254.169.254 (link-local",
	}
	ts := newTestServer(t, nil)
	withWebhooks(t, ts, nil, false)
	for u, why := range refused {
		r := sendJSON(t, ts, "POST", "/api/v1/webhooks/endpoints", map[string]any{"name": "x", "url": u})
		if r.StatusCode != 422 || !strings.Contains(string(r.body), `"field":"url"`) || !strings.Contains(string(r.body), why) {
			t.Errorf("%s: %d %s, want 422 on url (%s)", u, r.StatusCode, r.body, why)
		}
	}

	// WEBHOOK_ALLOWED_CIDRS=127.0.0.0/8 lets loopback (and the name resolving to it) through;
	// the rest stays refused.
	allowed := newTestServer(t, nil)
	withWebhooks(t, allowed, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, false)
	for u, want := range map[string]int{
		"http://127.0.0.1:8080/hook": 201, "http://rebind.example.test:8080/hook": 201,
		"http://10.0.0.1/hook": 422, "http://169.254.169.254/": 422, "http://[::1]/hook": 422,
		"http://[::ffff:127.0.0.1]:8080/hook": 201, // IPv4-mapped: the allowed address itself
		"http://[::127.0.0.1]:8080/hook":      422, // IPv4-compatible: deprecated, whatever it carries
		"http://2130706433:8080/hook":         422, // the allowed address, in a spelling never accepted
		"http://127.1:8080/hook":              422,
	} {
		r := sendJSON(t, allowed, "POST", "/api/v1/webhooks/endpoints", map[string]any{"name": "x", "url": u})
		if r.StatusCode != want {
			t.Errorf("allowed 127.0.0.0/8, %s: %d %s, want %d", u, r.StatusCode, r.body, want)
		}
	}

	// WEBHOOK_HTTPS_ONLY refuses http:// even to a public address.
	https := newTestServer(t, nil)
	withWebhooks(t, https, nil, true)
	r := sendJSON(t, https, "POST", "/api/v1/webhooks/endpoints", map[string]any{"name": "x", "url": "http://93.184.216.34/hook"})
	if r.StatusCode != 422 || !strings.Contains(string(r.body), "https is required") {
		t.Errorf("http under HTTPS only: %d %s", r.StatusCode, r.body)
	}
	// A PATCH to a refused URL is refused too.
	created := sendJSON(t, allowed, "POST", "/api/v1/webhooks/endpoints", map[string]any{"name": "x", "url": "http://127.0.0.1:9/"})
	id := created.json(t)["id"].(string)
	r = sendJSON(t, allowed, "PATCH", "/api/v1/webhooks/endpoints/"+id, map[string]any{"url": "http://10.1.2.3/"})
	if r.StatusCode != 422 {
		t.Errorf("PATCH to a private URL: %d %s", r.StatusCode, r.body)
	}
}

// sendJSON sends v as a JSON body with the test API key.
func sendJSON(t *testing.T, ts *testServer, method, path string, v any) response {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return ts.do(t, method, path, bytes.NewReader(b), "X-API-Key", testKey, "Content-Type", "application/json")
}
