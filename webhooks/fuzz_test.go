package webhooks

import (
	"bytes"
	"strconv"
	"testing"
	"time"
)

// FuzzVerifySignature feeds the inbound signature checks arbitrary headers and bodies: they
// never panic, accept what was signed with the key, and refuse it once the body changes.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte("whsec-key"), "msg_1", "1700000000", "v1,AAAA", []byte(`{"a":1}`))
	f.Add([]byte(""), "", "", "", []byte(""))
	f.Add([]byte("k"), "id", "-99999999999999999999", "v1,!!! v2,x v1,", []byte("x"))
	f.Add([]byte("k"), "id", "1700000000", "sha256=zz", []byte("\x00\xff"))
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, key []byte, msgID, timestamp, signature string, body []byte) {
		_ = VerifyStandard([][]byte{key}, msgID, timestamp, signature, body, now, 5*time.Minute)
		_, _ = VerifyHexHMAC(key, signature, body)
		if msgID == "" {
			return
		}
		signed := Sign(msgID, now, body, key)
		ts := strconv.FormatInt(now.Unix(), 10)
		if err := VerifyStandard([][]byte{key}, msgID, ts, signed, body, now, time.Minute); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
		if _, err := VerifyHexHMAC(key, SignHexHMAC(key, body), body); err != nil {
			t.Fatalf("own hex signature refused: %v", err)
		}
		tampered := append(bytes.Clone(body), '!')
		if VerifyStandard([][]byte{key}, msgID, ts, signed, tampered, now, time.Minute) == nil ||
			func() error { _, err := VerifyHexHMAC(key, SignHexHMAC(key, body), tampered); return err }() == nil {
			t.Fatal("a changed body passed")
		}
	})
}
