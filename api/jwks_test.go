package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pyairtable/automation-domain/config"
)

// RS256 and ES256 tokens from a JWK Set the test serves are accepted; a wrong issuer, audience,
// key or algorithm is refused.
func TestJWKSTokens(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := jwkset.NewMemoryStorage()
	for kid, k := range map[string]any{"rsa-1": rsaKey.Public(), "ec-1": ecKey.Public()} {
		alg := jwkset.AlgRS256
		if kid == "ec-1" {
			alg = jwkset.AlgES256
		}
		j, err := jwkset.NewJWKFromKey(k, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg}})
		if err != nil {
			t.Fatal(err)
		}
		if err := set.KeyWrite(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	body, err := set.JSONPublic(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(idp.Close)
	s := newTestServer(t, func(c *config.Config) {
		c.JWTJWKSURL, c.JWTIssuer, c.JWTAudience = idp.URL, "https://idp.example", "automation"
		c.AuthFailureLimit = 0
	})
	sign := func(m jwt.SigningMethod, kid string, key crypto.Signer, claims jwt.MapClaims) string {
		base := jwt.MapClaims{"sub": "u1", "tenant_id": "default", "scope": "workflows:read",
			"iss": "https://idp.example", "aud": "automation", "exp": time.Now().Add(time.Hour).Unix()}
		for k, v := range claims {
			base[k] = v
		}
		tok := jwt.NewWithClaims(m, base)
		tok.Header["kid"] = kid
		out, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		token   string
		status  int
		message string
	}{
		{"RS256", sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, nil), 200, ""},
		{"ES256", sign(jwt.SigningMethodES256, "ec-1", ecKey, nil), 200, ""},
		{"wrong issuer", sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, jwt.MapClaims{"iss": "https://evil.example"}), 401, "issuer"},
		{"wrong audience", sign(jwt.SigningMethodRS256, "rsa-1", rsaKey, jwt.MapClaims{"aud": "other"}), 401, "audience"},
		{"another key, known kid", sign(jwt.SigningMethodRS256, "rsa-1", otherRSA, nil), 401, "signature"},
		{"unknown kid", sign(jwt.SigningMethodRS256, "rsa-9", otherRSA, nil), 401, "JWK Set"},
		{"RSA key named for ES256", sign(jwt.SigningMethodES256, "rsa-1", ecKey, nil), 401, "JWK Set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "GET", "/api/v1/workflows", nil, "Authorization", "Bearer "+tc.token)
			if r.StatusCode != tc.status || !strings.Contains(string(r.body), tc.message) {
				t.Fatalf("%d %s, want %d %q", r.StatusCode, r.body, tc.status, tc.message)
			}
		})
	}
	// HS256 still works alongside, with the issuer and audience checked too.
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "svc", "tenant_id": "default", "scope": "admin",
		"iss": "https://idp.example", "aud": "automation", "exp": time.Now().Add(time.Hour).Unix()})
	tok, _ := hs.SignedString([]byte(testJWTSecret))
	if r := s.do(t, "GET", "/api/v1/workflows", nil, "Authorization", "Bearer "+tok); r.StatusCode != 200 {
		t.Fatalf("HS256: %d %s", r.StatusCode, r.body)
	}
}
