// Package netguardtest helps tests of code behind the SSRF guard: a resolver whose DNS server
// (on loopback) answers every name with chosen addresses, as a rebinding attacker's would.
package netguardtest

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

// Resolver returns a real net.Resolver whose DNS server answers every A query with the IPv4
// addresses among addrs and every AAAA query with the IPv6 ones (other queries get no answer).
// The server stops when the test ends.
func Resolver(t testing.TB, addrs ...netip.Addr) *net.Resolver {
	t.Helper()
	if len(addrs) == 0 {
		t.Fatal("netguardtest.Resolver: no addresses")
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := answer(buf[:n], addrs); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// DNS record types answered.
const (
	typeA    = 1
	typeAAAA = 28
)

// answer builds the DNS response to query q: a record per address of the asked family.
func answer(q []byte, addrs []netip.Addr) []byte {
	if len(q) < 12 {
		return nil
	}
	end := 12 // the question: QNAME labels up to a zero byte, then QTYPE and QCLASS
	for end < len(q) && q[end] != 0 {
		end += int(q[end]) + 1
	}
	if end+5 > len(q) {
		return nil
	}
	question := q[12 : end+5]
	qtype := int(q[end+1])<<8 | int(q[end+2])
	var records [][]byte
	for _, a := range addrs {
		switch {
		case qtype == typeA && a.Is4():
			ip := a.As4()
			records = append(records, ip[:])
		case qtype == typeAAAA && a.Is6():
			ip := a.As16()
			records = append(records, ip[:])
		}
	}
	resp := append([]byte{}, q[:2]...)                           // id
	resp = append(resp, 0x81, 0x80)                              // response, recursion available, no error
	resp = append(resp, 0, 1, 0, byte(len(records)), 0, 0, 0, 0) // one question, the answers
	resp = append(resp, question...)
	for _, r := range records {
		// a pointer to the question's name, type, class IN, TTL 60, the address
		resp = append(resp, 0xc0, 0x0c, byte(qtype>>8), byte(qtype), 0, 1, 0, 0, 0, 60, 0, byte(len(r)))
		resp = append(resp, r...)
	}
	return resp
}
