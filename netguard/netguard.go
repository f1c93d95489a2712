// Package netguard keeps the service's outbound HTTP (webhook deliveries, workflow http_request
// steps) away from internal networks (SSRF). A URL is refused when its host resolves to any
// non-public address — loopback, RFC 1918, link-local (cloud metadata at 169.254.169.254), CGNAT,
// multicast, unspecified, IPv6 ULA and link-local, documentation and reserved ranges, IPv6 outside
// global unicast — or to an IPv6 address that embeds a refused IPv4 address (IPv4-compatible,
// -mapped and -translated, NAT64, 6to4, Teredo, ISATAP), unless an operator allowed that range.
// Hosts that other URL parsers read as IPv4 addresses although Go reads them as names (2130706433,
// 0177.0.0.1, 0x7f.1, 127.1) are refused as well. The client dials the address it checked (no DNS
// rebinding between check and connect) and never follows redirects.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// ErrBlocked is matched (errors.Is) by every refusal.
var ErrBlocked = errors.New("destination not allowed")

// BlockedError says what was refused and why.
type BlockedError struct {
	Host   string
	Addr   netip.Addr // zero when the URL itself was refused
	Reason string
	// Spelling is set when the host is refused for how it spells an address, which no
	// allowed range admits.
	Spelling bool
}

func (e *BlockedError) Error() string {
	hint := allowHint
	if e.Spelling {
		hint = ""
	}
	switch {
	case e.Addr.IsValid() && e.Addr.String() == strings.Trim(e.Host, "[]"):
		return fmt.Sprintf("destination %s is not allowed: %s%s", e.Host, e.Reason, hint)
	case e.Addr.IsValid():
		return fmt.Sprintf("destination %s (%s) is not allowed: %s%s", e.Host, e.Addr, e.Reason, hint)
	}
	return fmt.Sprintf("destination %q is not allowed: %s", e.Host, e.Reason)
}

// allowHint names the setting that admits a refused address (a refused spelling of a host has
// no such fix).
const allowHint = " (to reach it anyway, add its range to WEBHOOK_ALLOWED_CIDRS, e.g. 127.0.0.0/8 for a receiver on this machine)"

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
// multicast, unspecified). Specific ranges come before the wider ones that hold them.
var nonPublic = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast address (deprecated)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved address"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible address (deprecated)"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "discard-only address"},
	{netip.MustParsePrefix("2001::/32"), "Teredo address"},
	{netip.MustParsePrefix("2001:2::/48"), "benchmarking address"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation address"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignment"},
	{netip.MustParsePrefix("2002::/16"), "6to4 address"},
	{netip.MustParsePrefix("3fff::/20"), "documentation address"},
	{netip.MustParsePrefix("5f00::/16"), "segment routing (SRv6) address"},
}

// IPv6 ranges that carry an IPv4 address inside (RFC 6052, RFC 3056, RFC 4380).
var (
	globalUnicast = netip.MustParsePrefix("2000::/3")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour     = netip.MustParsePrefix("2002::/16")
	teredo        = netip.MustParsePrefix("2001::/32")
)

// CheckAddr reports why addr is refused, or "" when it is allowed. An IPv6 address that embeds
// an IPv4 address (IPv4-compatible, IPv4-mapped or -translated, NAT64, 6to4, Teredo, ISATAP) is
// refused when the IPv4 address is — even when the IPv6 range itself is allowed — because a
// gateway on the way may deliver it to that IPv4 address.
func (p *Policy) CheckAddr(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	if kind, inner := embeddedIPv4(addr); kind != "" {
		for _, v4 := range inner {
			if reason := p.CheckAddr(v4); reason != "" {
				return fmt.Sprintf("%s embedding %s (%s)", kind, v4, reason)
			}
		}
	}
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
	if addr.Is6() && !globalUnicast.Contains(addr) {
		return "not a global unicast IPv6 address"
	}
	return ""
}

// embeddedIPv4 returns the IPv4 addresses an IPv6 address carries and what kind of address it is
// ("" when it carries none). The local-use NAT64 range (64:ff9b:1::/48) places the IPv4 address
// where its operator chose; it is refused as a whole instead.
func embeddedIPv4(a netip.Addr) (kind string, v4 []netip.Addr) {
	if !a.Is6() {
		return "", nil
	}
	b := a.As16()
	at := func(i int) netip.Addr { return netip.AddrFrom4([4]byte(b[i : i+4])) }
	zero := func(bs []byte) bool {
		for _, x := range bs {
			if x != 0 {
				return false
			}
		}
		return true
	}
	switch {
	case zero(b[:12]) && !a.IsUnspecified() && !a.IsLoopback(): // ::a.b.c.d
		return "IPv4-compatible address", []netip.Addr{at(12)}
	case zero(b[:8]) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0: // ::ffff:0:a.b.c.d
		return "IPv4-translated address", []netip.Addr{at(12)}
	case nat64.Contains(a):
		return "NAT64 address", []netip.Addr{at(12)}
	case sixToFour.Contains(a): // 2002:AABB:CCDD::/48 is the site behind AA.BB.CC.DD
		return "6to4 address", []netip.Addr{at(2)}
	case teredo.Contains(a): // 2001:0:<server>:<flags>:<port>:<client XOR ffffffff>
		client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
		return "Teredo address", []netip.Addr{at(4), netip.AddrFrom4(client)}
	case b[8]|0x02 == 0x02 && b[9] == 0 && b[10] == 0x5e && b[11] == 0xfe: // ISATAP interface id
		return "ISATAP address", []netip.Addr{at(12)}
	}
	return "", nil
}

// CheckURL refuses a URL whose scheme is not http(s) (or not https under HTTPSOnly), that carries
// credentials, or whose host resolves to any refused address.
func (p *Policy) CheckURL(ctx context.Context, raw string) error {
	u, err := p.checkURL(raw)
	if err != nil {
		return err
	}
	_, err = p.resolve(ctx, u.Hostname())
	return err
}

// CheckURLStatic makes the checks of CheckURL that need no DNS: the scheme, credentials, and a
// host that is an address (in any spelling) or a localhost name. A host name that only DNS can
// judge passes; it is checked when the request is made.
func (p *Policy) CheckURLStatic(raw string) error {
	u, err := p.checkURL(raw)
	if err != nil {
		return err
	}
	return p.CheckHost(u.Hostname())
}

func (p *Policy) checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &BlockedError{Host: raw, Reason: "not a URL"}
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, &BlockedError{Host: raw, Reason: "only http and https URLs are allowed"}
	case p.HTTPSOnly && u.Scheme != "https":
		return nil, &BlockedError{Host: u.Host, Reason: "https is required"}
	case u.Hostname() == "":
		return nil, &BlockedError{Host: raw, Reason: "the URL has no host"}
	case u.User != nil:
		return nil, &BlockedError{Host: u.Host, Reason: "credentials in the URL are not allowed"}
	}
	return u, nil
}

// CheckHost judges a URL's host without DNS: it returns a *BlockedError when the host is a
// refused address, an address in an unusual spelling, an address with an IPv6 zone or a
// localhost name, and nil otherwise (an allowed address, or a name to resolve).
func (p *Policy) CheckHost(host string) error {
	addr, literal, err := p.literal(host)
	if err != nil || !literal {
		return err
	}
	if reason := p.CheckAddr(addr); reason != "" {
		return &BlockedError{Host: host, Addr: addr.Unmap(), Reason: reason}
	}
	return nil
}

// dialedHost is host the way net/http dials it: brackets and a trailing dot dropped, and a
// non-ASCII name mapped to ASCII with IDNA as http.Transport does (so "１２７.０.０.１" is 127.0.0.1).
func dialedHost(host string) string {
	h := strings.Trim(host, "[]")
	if !strings.Contains(h, ":") {
		if ascii, err := idna.Lookup.ToASCII(h); err == nil {
			h = ascii
		}
	}
	return strings.TrimSuffix(h, ".")
}

// literal returns the address host is, if it is one (see dialedHost). It refuses what other URL
// parsers (browsers, curl, inet_aton in C libraries) would read as an IPv4 address although Go
// reads it as a name — 2130706433, 0177.0.0.1, 0x7f.1, 127.1 —, IPv6 zones and localhost names.
func (p *Policy) literal(host string) (netip.Addr, bool, error) {
	h := dialedHost(host)
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, false, &BlockedError{Host: host, Reason: "an IPv6 zone is not allowed"}
		}
		return a, true, nil
	}
	if endsInNumber(h) {
		a, ok := parseLegacyIPv4(h)
		if !ok {
			return netip.Addr{}, false, &BlockedError{Host: host, Reason: "a host ending in a number must be an IPv4 address"}
		}
		reason := "write addresses as four decimal numbers"
		if why := p.CheckAddr(a); why != "" {
			reason = why
		}
		return netip.Addr{}, false, &BlockedError{Host: host, Addr: a, Spelling: true,
			Reason: fmt.Sprintf("an unusual spelling of the IPv4 address %s (%s)", a, reason)}
	}
	lower := strings.ToLower(h)
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		// refused by name as well, whatever a resolver says
		if reason := p.CheckAddr(netip.MustParseAddr("127.0.0.1")); reason != "" {
			return netip.Addr{}, false, &BlockedError{Host: host, Reason: reason}
		}
	}
	return netip.Addr{}, false, nil
}

// endsInNumber reports whether the last label of host is a number (decimal digits, or 0x and hex
// digits): the WHATWG URL standard then parses the host as an IPv4 address.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// parseLegacyIPv4 reads the IPv4 forms of inet_aton and the WHATWG URL standard: one to four
// parts, each decimal, octal (a leading 0) or hexadecimal (0x), the last filling the bytes left
// (127.1 is 127.0.0.1, 2130706433 is 127.0.0.1).
func parseLegacyIPv4(host string) (netip.Addr, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, part := range parts {
		base, digits := 10, part
		switch lower := strings.ToLower(part); {
		case strings.HasPrefix(lower, "0x"):
			base, digits = 16, part[2:]
			if digits == "" {
				digits = "0"
			}
		case len(part) > 1 && part[0] == '0':
			base, digits = 8, part[1:]
		}
		n, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	last := len(nums) - 1
	for _, n := range nums[:last] {
		if n > 255 {
			return netip.Addr{}, false
		}
	}
	if nums[last] >= 1<<(8*(4-last)) {
		return netip.Addr{}, false
	}
	v := nums[last]
	for i, n := range nums[:last] {
		v |= n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// resolve returns the host's addresses, refusing the host if any of them is refused: a name that
// resolves to both a public and a private address must not be usable to reach the private one.
func (p *Policy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	a, literal, err := p.literal(host)
	if err != nil {
		return nil, err
	}
	addrs := []netip.Addr{a}
	if !literal {
		name := dialedHost(host)
		r := p.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		if addrs, err = r.LookupNetIP(ctx, "ip", name); err != nil {
			return nil, fmt.Errorf("resolve %s: %w", name, err)
		}
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
