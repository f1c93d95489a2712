// Package netguardtest helps tests of code behind the SSRF guard: a resolver whose DNS server
// (on loopback) answers every name with a chosen address, as a rebinding attacker's would.
package netguardtest

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

// Resolver returns a real net.Resolver whose DNS server answers every A query with addr (an
// IPv4 address) and every other query with no answer. The server stops when the test ends.
func Resolver(t testing.TB, addr netip.Addr) *net.Resolver {
	t.Helper()
	if !addr.Is4() {
		t.Fatalf("netguardtest.Resolver: %s is not IPv4", addr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ip := addr.As4()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := answer(buf[:n], ip); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// answer builds the DNS response to query q: one A record with ip for an A question.
func answer(q []byte, ip [4]byte) []byte {
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
		resp = append(resp, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ip[0], ip[1], ip[2], ip[3])
	}
	return resp
}
