package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretPrefix marks a Standard Webhooks secret: "whsec_" + base64 of the key bytes.
const SecretPrefix = "whsec_"

// Secret sizes: Standard Webhooks keys are 24 to 64 random bytes; other secrets (e.g. the seed's
// "webhook_secret_key") are used as their raw bytes and must be at least minRawSecret long.
const (
	secretBytes   = 32
	minKeyBytes   = 24
	maxKeyBytes   = 64
	minRawSecret  = 16
	maxRawSecret  = 256
	sealedVersion = "v1:"
)

// GenerateSecret returns a new Standard Webhooks secret (whsec_ + base64 of 32 random bytes).
func GenerateSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// SigningKey returns the HMAC key of a secret: the decoded bytes of a whsec_ secret, the raw
// bytes of any other (receivers then use NewWebhookRaw / the string itself as the key).
func SigningKey(secret string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(secret, SecretPrefix); ok {
		key, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, errors.New("a whsec_ secret must be followed by standard base64")
		}
		if len(key) < minKeyBytes || len(key) > maxKeyBytes {
			return nil, fmt.Errorf("a whsec_ secret must encode %d to %d bytes, this one has %d", minKeyBytes, maxKeyBytes, len(key))
		}
		return key, nil
	}
	if len(secret) < minRawSecret || len(secret) > maxRawSecret {
		return nil, fmt.Errorf("must be whsec_<base64> or %d to %d characters", minRawSecret, maxRawSecret)
	}
	return []byte(secret), nil
}

// SecretBox encrypts stored secrets (endpoint signing secrets and custom header values, inbound
// source secrets) with a key derived from WEBHOOK_SECRET_KEY, so that a copy of the database alone does not let anyone
// sign as us. Each sealed value is bound to the row it belongs to.
type SecretBox struct {
	aead cipher.AEAD
}

// NewSecretBox derives the encryption key from the service secret.
func NewSecretBox(serviceSecret string) (*SecretBox, error) {
	if serviceSecret == "" {
		return nil, errors.New("secret box: WEBHOOK_SECRET_KEY is empty")
	}
	key, err := hkdf.Key(sha256.New, []byte(serviceSecret), nil, "automation-domain webhook secrets v1", 32)
	if err != nil {
		return nil, fmt.Errorf("secret box: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret box: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret box: %w", err)
	}
	return &SecretBox{aead: aead}, nil
}

// Seal encrypts plaintext for the row named by owner.
func (b *SecretBox) Seal(plaintext, owner string) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal secret: %w", err)
	}
	sealed := b.aead.Seal(nonce, nonce, []byte(plaintext), []byte(owner))
	return sealedVersion + base64.RawStdEncoding.EncodeToString(sealed), nil
}

// Open decrypts a value sealed for owner. It fails when WEBHOOK_SECRET_KEY changed since.
func (b *SecretBox) Open(sealed, owner string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealedVersion)
	if !ok {
		return "", errors.New("open secret: unknown format")
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", errors.New("open secret: malformed")
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(owner))
	if err != nil {
		return "", errors.New("open secret: cannot decrypt (was WEBHOOK_SECRET_KEY changed?)")
	}
	return string(plain), nil
}

// SealHeaders encrypts the values of an endpoint's custom headers, each bound to the endpoint
// and its header name (a value cannot be moved to another header or endpoint). Names stay
// readable.
func (b *SecretBox) SealHeaders(endpointID string, headers map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(headers))
	for name, v := range headers {
		sealed, err := b.Seal(v, headerOwner(endpointID, name))
		if err != nil {
			return nil, err
		}
		out[name] = sealed
	}
	return out, nil
}

// OpenHeaders decrypts header values sealed by SealHeaders.
func (b *SecretBox) OpenHeaders(endpointID string, sealed map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(sealed))
	for name, v := range sealed {
		plain, err := b.Open(v, headerOwner(endpointID, name))
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		out[name] = plain
	}
	return out, nil
}

func headerOwner(endpointID, name string) string { return endpointID + "/headers/" + name }
