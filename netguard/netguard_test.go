package netguard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
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
	} {
		err := p.CheckURL(ctx, raw)
		if !errors.Is(err, ErrBlocked) {
			t.Errorf("%s: %v, want blocked", raw, err)
		}
	}
	for _, raw := range []string{"http://93.184.216.34/", "https://[2606:4700::1111]/"} {
		if err := p.CheckURL(ctx, raw); err != nil {
			t.Errorf("%s: %v, want allowed", raw, err)
		}
	}
	https := &Policy{HTTPSOnly: true}
	if err := https.CheckURL(ctx, "http://93.184.216.34/"); !errors.Is(err, ErrBlocked) {
		t.Errorf("http under HTTPSOnly: %v", err)
	}
}

func TestAllowedCIDRs(t *testing.T) {
	prefixes, err := ParsePrefixes([]string{"127.0.0.1", " 10.0.0.0/8 "})
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{Allowed: prefixes}
	for raw, blocked := range map[string]bool{
		"http://127.0.0.1:9/": false, "http://10.1.2.3/": false, "http://127.0.0.2/": true, "http://192.168.0.1/": true,
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

// A hostname that resolves to loopback is refused at dial time, not only by CheckURL.
func TestHostnameResolvingToLoopbackIsRefusedOnDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// A resolver whose DNS answers every name with 127.0.0.1 (as a rebinding attacker's would).
	p := &Policy{Resolver: loopbackResolver(t)}
	_, err := p.Client(2 * time.Second).Get("http://rebind.example.test:" + port + "/")
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("dial to a name resolving to 127.0.0.1: %v", err)
	}
	allowed := &Policy{Resolver: loopbackResolver(t), Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	res, err := allowed.Client(2 * time.Second).Get("http://rebind.example.test:" + port + "/")
	if err != nil {
		t.Fatalf("allowed by CIDR: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Errorf("status %d", res.StatusCode)
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

// loopbackResolver is a real net.Resolver whose DNS server (on loopback) answers every A query
// with 127.0.0.1.
func loopbackResolver(t *testing.T) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			q := buf[:n]
			end := 12 // the question: QNAME labels up to a zero byte, then QTYPE and QCLASS
			for end < n && q[end] != 0 {
				end += int(q[end]) + 1
			}
			if end+5 > n {
				continue
			}
			question := q[12 : end+5]
			isA := q[end+1] == 0 && q[end+2] == 1
			resp := append([]byte{}, q[:2]...) // id
			resp = append(resp, 0x81, 0x80)    // response, recursion available, no error
			resp = append(resp, 0, 1)          // one question
			if isA {
				resp = append(resp, 0, 1, 0, 0, 0, 0) // one answer
			} else {
				resp = append(resp, 0, 0, 0, 0, 0, 0)
			}
			resp = append(resp, question...)
			if isA {
				resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
			}
			_, _ = pc.WriteTo(resp, addr)
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}
