package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks v1 headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Verification failures. Every one of them is answered 401 and nothing is recorded.
var (
	ErrMissingHeaders = errors.New("missing signature headers")
	ErrBadSignature   = errors.New("no matching signature")
	ErrStaleTimestamp = errors.New("timestamp outside the tolerance")
)

// Sign returns the webhook-signature header for a message: "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>" for each key, space-separated (several keys while a rotated secret is
// still honoured).
func Sign(msgID string, timestamp time.Time, body []byte, keys ...[]byte) string {
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac(k, msgID, timestamp.Unix(), body)))
	}
	return strings.Join(sigs, " ")
}

func mac(key []byte, msgID string, ts int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, ts, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// VerifyStandard checks a Standard Webhooks request: the timestamp within tolerance of now and
// one v1 signature made with one of keys.
func VerifyStandard(keys [][]byte, msgID, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if msgID == "" || timestamp == "" || signature == "" {
		return ErrMissingHeaders
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not Unix seconds", ErrStaleTimestamp, HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s off by %s", ErrStaleTimestamp, HeaderTimestamp, d.Round(time.Second))
	}
	for _, k := range keys {
		want := mac(k, msgID, ts, body)
		for _, versioned := range strings.Fields(signature) {
			version, sig, ok := strings.Cut(versioned, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(sig)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return ErrBadSignature
}

// VerifyHexHMAC checks a GitHub-style signature header: "sha256=" + hex HMAC-SHA256 of the body.
// It returns the signature (the HMAC of the body).
func VerifyHexHMAC(key []byte, header string, body []byte) ([]byte, error) {
	if header == "" {
		return nil, ErrMissingHeaders
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return nil, fmt.Errorf("%w: the signature must start with sha256=", ErrBadSignature)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return nil, fmt.Errorf("%w: the signature is not hex", ErrBadSignature)
	}
	h := hmac.New(sha256.New, key)
	h.Write(body)
	want := h.Sum(nil)
	if !hmac.Equal(got, want) {
		return nil, ErrBadSignature
	}
	return want, nil
}

// SignHexHMAC makes a GitHub-style signature header value (for senders and tests).
func SignHexHMAC(key []byte, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return "sha256=" + hex.EncodeToString(h.Sum(nil))
}
