// Package netguard keeps the service's outbound HTTP (webhook deliveries, workflow http_request
// steps) away from internal networks (SSRF). A URL is refused when its host resolves to any
// non-public address — loopback, RFC 1918, link-local (cloud metadata at 169.254.169.254), CGNAT,
// multicast, unspecified, IPv6 ULA and link-local, documentation and reserved ranges — unless an
// operator allowed that range. The client dials the address it checked (no DNS rebinding between
// check and connect) and never follows redirects.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// ErrBlocked is matched (errors.Is) by every refusal.
var ErrBlocked = errors.New("destination not allowed")

// BlockedError says what was refused and why.
type BlockedError struct {
	Host   string
	Addr   netip.Addr // zero when the URL itself was refused
	Reason string
}

func (e *BlockedError) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("destination %s (%s) is not allowed: %s", e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("destination %q is not allowed: %s", e.Host, e.Reason)
}

func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// Policy decides which destinations are allowed.
type Policy struct {
	// Allowed ranges pass even though they are not public (e.g. 127.0.0.0/8 in tests, an
	// internal network an operator trusts).
	Allowed []netip.Prefix
	// HTTPSOnly refuses http:// URLs.
	HTTPSOnly bool
	// Resolver looks hosts up; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// nonPublic are the ranges refused besides what netip classifies (loopback, private, link-local,
// multicast, unspecified).
var nonPublic = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved address"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64 address"},
	{netip.MustParsePrefix("2002::/16"), "6to4 address"},
	{netip.MustParsePrefix("100::/64"), "discard-only address"},
}

// CheckAddr reports why addr is refused, or "" when it is allowed.
func (p *Policy) CheckAddr(addr netip.Addr) string {
	addr = addr.Unmap()
	for _, a := range p.Allowed {
		if a.Contains(addr) {
			return ""
		}
	}
	switch {
	case addr.IsLoopback():
		return "loopback address"
	case addr.IsPrivate():
		return "private address"
	case addr.IsLinkLocalUnicast():
		return "link-local address (cloud metadata lives here)"
	case addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast(), addr.IsMulticast():
		return "multicast address"
	case addr.IsUnspecified():
		return "unspecified address"
	case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast address"
	}
	for _, n := range nonPublic {
		if n.prefix.Contains(addr) {
			return n.reason
		}
	}
	return ""
}

// CheckURL refuses a URL whose scheme is not http(s) (or not https under HTTPSOnly), that carries
// credentials, or whose host resolves to any refused address.
func (p *Policy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return &BlockedError{Host: raw, Reason: "not a URL"}
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return &BlockedError{Host: raw, Reason: "only http and https URLs are allowed"}
	case p.HTTPSOnly && u.Scheme != "https":
		return &BlockedError{Host: u.Host, Reason: "https is required"}
	case u.Hostname() == "":
		return &BlockedError{Host: raw, Reason: "the URL has no host"}
	case u.User != nil:
		return &BlockedError{Host: u.Host, Reason: "credentials in the URL are not allowed"}
	}
	_, err = p.resolve(ctx, u.Hostname())
	return err
}

// resolve returns the host's addresses, refusing the host if any of them is refused: a name that
// resolves to both a public and a private address must not be usable to reach the private one.
func (p *Policy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
			// refused by name as well, whatever the resolver says
			if reason := p.CheckAddr(netip.MustParseAddr("127.0.0.1")); reason != "" {
				return nil, &BlockedError{Host: host, Reason: reason}
			}
		}
		r := p.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		ips, err := r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		addrs = ips
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	for _, a := range addrs {
		if reason := p.CheckAddr(a); reason != "" {
			return nil, &BlockedError{Host: host, Addr: a.Unmap(), Reason: reason}
		}
	}
	return addrs, nil
}

// DialContext resolves addr's host, checks every address, and connects to a checked one.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := p.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	var lastErr error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// Transport is an http.Transport that dials through the policy and ignores proxy settings (a
// proxy would connect on our behalf to an address we never checked).
func (p *Policy) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           p.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 0, // the caller's timeout bounds the whole exchange
	}
}

// Client returns an HTTP client that checks every destination, follows no redirect (a 3xx is
// returned as the response) and gives up after timeout.
func (p *Policy) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: p.Transport(),
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// ParsePrefixes parses a list of CIDRs or single addresses ("10.0.0.0/8", "127.0.0.1").
func ParsePrefixes(items []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range items {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if pr, err := netip.ParsePrefix(s); err == nil {
			out = append(out, pr.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR or an address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
