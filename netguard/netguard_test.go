package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pyairtable/automation-domain/netguard/netguardtest"
)

func TestRefusedDestinations(t *testing.T) {
	p := &Policy{}
	ctx := context.Background()
	for _, raw := range []string{
		"http://127.0.0.1/", "http://127.1.2.3:8080/x", "http://[::1]/", "http://10.0.0.1/",
		"http://172.16.5.4/", "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/",
		"http://100.64.0.1/", "http://0.0.0.0/", "http://[::]/", "http://[fd00::1]/", "http://[fe80::1]/",
		"http://224.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:10.0.0.1]/", "http://localhost/",
		"http://api.localhost/", "http://255.255.255.255/", "http://198.18.0.1/", "http://[64:ff9b::7f00:1]/",
		"ftp://example.com/", "file:///etc/passwd", "http://user:pw@93.184.216.34/", "http:///nohost",
		"http://192.88.99.1/", "http://[3fff::1]/", "http://[5f00::1]/", "http://[2001:2::1]/", "http://[100::1]/",
		"http://[ff02::1]/", "http://[4000::1]/",
	} {
		if err := p.CheckURL(ctx, raw); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s: %v, want blocked", raw, err)
		}
	}
	for _, raw := range []string{"http://93.184.216.34/", "https://[2606:4700::1111]/", "http://8.8.8.8:8080/x"} {
		if err := p.CheckURL(ctx, raw); err != nil {
			t.Errorf("%s: %v, want allowed", raw, err)
		}
	}
	https := &Policy{HTTPSOnly: true}
	if err := https.CheckURL(ctx, "http://93.184.216.34/"); !errors.Is(err, ErrBlocked) {
		t.Errorf("http under HTTPSOnly: %v", err)
	}
}

// An IPv6 address that carries a non-public IPv4 address is refused, whichever way it carries it,
// and the reason names the IPv4 address.
func TestIPv6EmbeddingANonPublicIPv4AddressIsRefused(t *testing.T) {
	p := &Policy{}
	for raw, want := range map[string]string{
		"http://[::127.0.0.1]/":              "IPv4-compatible address embedding 127.0.0.1 (loopback address)",
		"http://[::7f00:1]:8080/":            "IPv4-compatible address embedding 127.0.0.1 (loopback address)",
		"http://[::a9fe:a9fe]/":              "IPv4-compatible address embedding 169.254.169.254 (link-local",
		"http://[0:0:0:0:0:ffff:127.0.0.1]/": "loopback address", // IPv4-mapped: the IPv4 address itself
		"http://[::ffff:0:10.1.2.3]/":        "IPv4-translated address embedding 10.1.2.3 (private address)",
		"http://[64:ff9b::169.254.169.254]/": "NAT64 address embedding 169.254.169.254",
		"http://[64:ff9b::c0a8:101]/":        "NAT64 address embedding 192.168.1.1 (private address)",
		"http://[64:ff9b:1::a00:1]/":         "local-use NAT64 address",
		"http://[2002:7f00:1::1]/":           "6to4 address embedding 127.0.0.1 (loopback address)",
		"http://[2002:a00:1:1::1]/":          "6to4 address embedding 10.0.0.1 (private address)",
		// Teredo: server 65.54.227.120, client 127.0.0.1 stored inverted (80ff:fffe)
		"http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/": "Teredo address embedding 127.0.0.1 (loopback address)",
		"http://[2001:0:a00:1::1]/":                      "Teredo address embedding 10.0.0.1 (private address)",
		"http://[2606:4700:1::5efe:a00:1]/":              "ISATAP address embedding 10.0.0.1 (private address)",
		"http://[2606:4700:1::200:5efe:c0a8:1]/":         "ISATAP address embedding 192.168.0.1 (private address)",
	} {
		err := p.CheckURL(context.Background(), raw)
		if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want blocked: %s", raw, err, want)
		}
	}
	// The ranges themselves are refused even around a public IPv4 address (deprecated or
	// gateway-dependent), and IPv4-compatible addresses are deprecated.
	for _, raw := range []string{"http://[::8.8.8.8]/", "http://[2002:808:808::1]/", "http://[64:ff9b::808:808]/",
		"http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/"} {
		if err := p.CheckURL(context.Background(), raw); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s: %v, want blocked", raw, err)
		}
	}
}

// Go's url.Parse accepts hosts that browsers, curl and C resolvers (inet_aton) read as IPv4
// addresses while net.ParseIP and netip refuse them (Go's resolver then asks DNS for a name
// "2130706433"). The guard refuses every such spelling rather than guess which reading the
// receiving side of a redirect, a proxy or a cgo resolver would make.
func TestUnusualIPv4SpellingsAreRefused(t *testing.T) {
	allowLoopback := &Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	for raw, want := range map[string]string{
		"http://2130706433/":          "unusual spelling of the IPv4 address 127.0.0.1 (loopback address)",
		"http://0177.0.0.1/":          "unusual spelling of the IPv4 address 127.0.0.1 (loopback address)",
		"http://0x7f.0.0.1/":          "unusual spelling of the IPv4 address 127.0.0.1 (loopback address)",
		"http://0x7f000001/":          "unusual spelling of the IPv4 address 127.0.0.1 (loopback address)",
		"http://127.1/":               "unusual spelling of the IPv4 address 127.0.0.1 (loopback address)",
		"http://017700000001/":        "unusual spelling of the IPv4 address 127.0.0.1 (loopback address)",
		"http://0/":                   "unusual spelling of the IPv4 address 0.0.0.0 (unspecified address)",
		"http://0251.0376.0251.0376/": "unusual spelling of the IPv4 address 169.254.169.254 (link-local",
		"http://1572395042/":          "unusual spelling of the IPv4 address 93.184.216.34 (write addresses as four decimal numbers)",
		"http://1.2.3.4.5/":           "a host ending in a number must be an IPv4 address",
		"http://256.1.1.1/":           "a host ending in a number must be an IPv4 address",
		"http://example.123/":         "a host ending in a number must be an IPv4 address",
		"http://0x/":                  "unusual spelling of the IPv4 address 0.0.0.0",
		"http://[fe80::1%25eth0]/":    "an IPv6 zone is not allowed",
	} {
		err := (&Policy{}).CheckURL(context.Background(), raw)
		if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want blocked: %s", raw, err, want)
		}
		// Refused even where the address it spells is allowed.
		if err := allowLoopback.CheckURL(context.Background(), raw); !errors.Is(err, ErrBlocked) {
			t.Errorf("%s with 127.0.0.0/8 allowed: %v, want blocked", raw, err)
		}
	}
	// net/http maps a non-ASCII host through IDNA before it dials ("１２７.０.０.１" → 127.0.0.1);
	// the guard judges the host the same way, and a trailing dot changes nothing.
	for _, raw := range []string{"http://１２７.０.０.１/", "http://127。0。0。1/", "http://127.0.0.1./", "http://LOCALHOST./"} {
		err := (&Policy{}).CheckURL(context.Background(), raw)
		if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "loopback address") {
			t.Errorf("%s: %v, want blocked as loopback", raw, err)
		}
		if err := allowLoopback.CheckURL(context.Background(), raw); err != nil {
			t.Errorf("%s with 127.0.0.0/8 allowed: %v", raw, err)
		}
	}
}

func TestAllowedCIDRs(t *testing.T) {
	prefixes, err := ParsePrefixes([]string{"127.0.0.1", " 10.0.0.0/8 ", "64:ff9b::/96"})
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{Allowed: prefixes}
	for raw, blocked := range map[string]bool{
		"http://127.0.0.1:9/": false, "http://10.1.2.3/": false, "http://127.0.0.2/": true, "http://192.168.0.1/": true,
		"http://[::ffff:127.0.0.1]/": false, // the IPv4 address itself
		"http://[64:ff9b::808:808]/": false, // NAT64 of a public address, the range allowed (DNS64 networks)
		"http://[64:ff9b::a01:203]/": false, // NAT64 of 10.1.2.3, both allowed
		"http://[64:ff9b::7f00:2]/":  true,  // the embedded 127.0.0.2 is not allowed
		"http://[::127.0.0.1]/":      true,  // IPv4-compatible: deprecated whatever it embeds
		"http://2130706433/":         true,  // 127.0.0.1, but in a spelling that is never accepted
	} {
		err := p.CheckURL(context.Background(), raw)
		if got := errors.Is(err, ErrBlocked); got != blocked {
			t.Errorf("%s: blocked=%v (%v)", raw, got, err)
		}
	}
	if _, err := ParsePrefixes([]string{"not-a-cidr"}); err == nil {
		t.Error("bad CIDR accepted")
	}
}

// CheckHost and CheckURLStatic judge what needs no DNS: a name passes (it is checked when the
// request is made), a refused address in any spelling does not.
func TestStaticChecks(t *testing.T) {
	p := &Policy{HTTPSOnly: true}
	for host, blocked := range map[string]bool{
		"hooks.example.com": false, "93.184.216.34": false, "[2606:4700::1111]": false, "no-such-host.invalid": false,
		"10.0.0.1": true, "[::127.0.0.1]": true, "2130706433": true, "localhost": true, "[64:ff9b::a9fe:a9fe]": true,
	} {
		err := p.CheckHost(host)
		if got := errors.Is(err, ErrBlocked); got != blocked {
			t.Errorf("CheckHost(%s): blocked=%v (%v)", host, got, err)
		}
	}
	for raw, blocked := range map[string]bool{
		"https://hooks.example.com/x": false, "http://hooks.example.com/x": true, "https://u:p@hooks.example.com/": true,
		"https://0x7f000001/": true, "https:///x": true,
	} {
		err := p.CheckURLStatic(raw)
		if got := errors.Is(err, ErrBlocked); got != blocked {
			t.Errorf("CheckURLStatic(%s): blocked=%v (%v)", raw, got, err)
		}
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	for in, want := range map[string]string{
		"2130706433": "127.0.0.1", "0177.0.0.1": "127.0.0.1", "0x7f.1": "127.0.0.1", "127.1": "127.0.0.1",
		"127.0.1": "127.0.0.1", "0x7F000001": "127.0.0.1", "0": "0.0.0.0", "0x": "0.0.0.0", "4294967295": "255.255.255.255",
		"1.2.3.4": "1.2.3.4",
	} {
		a, ok := parseLegacyIPv4(in)
		if !ok || a.String() != want {
			t.Errorf("%s: %v %v, want %s", in, a, ok, want)
		}
	}
	for _, in := range []string{"4294967296", "256.1", "1.2.3.4.5", "08", "0x1g", "1..2", "", "-1", "+1", "1_0"} {
		if a, ok := parseLegacyIPv4(in); ok {
			t.Errorf("%s: parsed as %s", in, a)
		}
	}
}

// The client checks at dial time what it connects to: a name whose DNS answers a refused
// address (A or AAAA, including an IPv6 address embedding one), or a host in an unusual IPv4
// spelling, never gets a connection — even when the range the name resolves to is allowed.
func TestDialChecksEveryDestination(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	get := func(p *Policy, url string) error {
		res, err := p.Client(2 * time.Second).Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode != 204 {
				return errors.New(res.Status)
			}
		}
		return err
	}
	// A resolver whose DNS answers every name with 127.0.0.1 (as a rebinding attacker's would).
	rebinding := netguardtest.Resolver(t, netip.MustParseAddr("127.0.0.1"))
	if err := get(&Policy{Resolver: rebinding}, "http://rebind.example.test:"+port+"/"); !errors.Is(err, ErrBlocked) {
		t.Errorf("a name resolving to 127.0.0.1: %v", err)
	}
	if err := get(&Policy{Resolver: rebinding, Allowed: loopback}, "http://rebind.example.test:"+port+"/"); err != nil {
		t.Errorf("allowed by CIDR: %v", err)
	}
	for _, host := range []string{"2130706433", "0177.0.0.1", "0x7f.1", "127.1"} {
		err := get(&Policy{Resolver: rebinding, Allowed: loopback}, "http://"+host+":"+port+"/")
		if !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), "unusual spelling") {
			t.Errorf("%s at dial time: %v", host, err)
		}
	}
	// Only AAAA records, carrying 127.0.0.1: refused although 127.0.0.0/8 is allowed (the
	// IPv4-compatible form is deprecated whatever it carries).
	compat := netguardtest.Resolver(t, netip.MustParseAddr("::127.0.0.1"))
	if err := get(&Policy{Resolver: compat, Allowed: loopback}, "http://v6.example.test:"+port+"/"); !errors.Is(err, ErrBlocked) ||
		!strings.Contains(err.Error(), "IPv4-compatible address (deprecated)") {
		t.Errorf("a name resolving to ::127.0.0.1: %v", err)
	}
	// A name with a public and a refused address is refused as a whole.
	mixed := netguardtest.Resolver(t, netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("64:ff9b::a9fe:a9fe"))
	if err := get(&Policy{Resolver: mixed}, "http://mixed.example.test:"+port+"/"); !errors.Is(err, ErrBlocked) {
		t.Errorf("a name with a NAT64 metadata address among its answers: %v", err)
	}
	// net/http dials "１２７.０.０.１" as 127.0.0.1 (IDNA): reachable only when loopback is allowed.
	// (The resolver answers 10.9.9.9 for names: a dial of the unmapped name would be refused.)
	elsewhere := netguardtest.Resolver(t, netip.MustParseAddr("10.9.9.9"))
	if err := get(&Policy{Resolver: elsewhere, Allowed: loopback}, "http://１２７.０.０.１:"+port+"/"); err != nil {
		t.Errorf("full-width digits with loopback allowed: %v", err)
	}
	if err := get(&Policy{Resolver: elsewhere}, "http://１２７.０.０.１:"+port+"/"); !errors.Is(err, ErrBlocked) {
		t.Errorf("full-width digits: %v", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	target := "http://10.0.0.1/secret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}))
	defer srv.Close()
	p := &Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	res, err := p.Client(2 * time.Second).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != target {
		t.Errorf("redirect followed or lost: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

// A refused address names the setting that admits it; a refused spelling (no address: nothing to
// admit) does not.
func TestRefusalNamesTheAllowList(t *testing.T) {
	p := &Policy{}
	ctx := context.Background()
	err := p.CheckURL(ctx, "http://127.0.0.1:9999/done")
	if err == nil || !strings.Contains(err.Error(), "loopback address") || !strings.Contains(err.Error(), "WEBHOOK_ALLOWED_CIDRS") {
		t.Errorf("loopback: %v, want the reason and WEBHOOK_ALLOWED_CIDRS", err)
	}
	if err := p.CheckURL(ctx, "http://2130706433/"); err == nil || strings.Contains(err.Error(), "WEBHOOK_ALLOWED_CIDRS") {
		t.Errorf("a disguised spelling: %v, want refused without the allow-list hint", err)
	}
}
