package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/pyairtable/automation-domain/config"
)

// jwtVerifier verifies a token's signature: HS256 with JWT_SECRET_KEY, RS256 and ES256 against
// the keys of JWT_JWKS_URL (github.com/MicahParks/jwkset: cached, refreshed on a timer and when
// a token names a key id it does not know, at most once a minute). Issuer and audience are
// checked when configured.
type jwtVerifier struct {
	secret []byte
	jwks   jwkset.Storage
	parser *jwt.Parser
}

func newJWTVerifier(cfg *config.Config, log *slog.Logger) (*jwtVerifier, error) {
	v := &jwtVerifier{secret: []byte(cfg.JWTSecretKey)}
	methods := []string{jwt.SigningMethodHS256.Alg()}
	if cfg.JWTJWKSURL != "" {
		refresh := cfg.JWTJWKSRefresh
		if refresh <= 0 {
			refresh = time.Hour
		}
		store, err := jwkset.NewStorageFromHTTP(cfg.JWTJWKSURL, jwkset.HTTPClientStorageOptions{
			Client:                    &http.Client{Timeout: 10 * time.Second},
			HTTPTimeout:               10 * time.Second,
			NoErrorReturnFirstHTTPReq: true,
			RefreshInterval:           refresh,
			RefreshErrorHandler: func(ctx context.Context, err error) {
				log.WarnContext(ctx, "JWKS refresh failed; the keys fetched before stay in use", "error", err)
			},
		})
		if err != nil {
			return nil, fmt.Errorf("api: JWT_JWKS_URL: %w", err)
		}
		v.jwks, err = jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
			HTTPURLs: map[string]jwkset.Storage{cfg.JWTJWKSURL: store},
			// An unknown kid refreshes the set at most once a minute, without waiting for it.
			RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
			RateLimitWaitMax:  time.Millisecond,
		})
		if err != nil {
			return nil, fmt.Errorf("api: JWT_JWKS_URL: %w", err)
		}
		methods = append(methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(30 * time.Second),
	}
	if cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.JWTIssuer))
	}
	if cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(cfg.JWTAudience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// errUnknownKey: the token's kid is not in the JWK Set.
var errUnknownKey = errors.New("unknown signing key")

// key is the jwt.Keyfunc: the secret for HS256, the JWK Set key named by kid (of the token's
// algorithm's type) for RS256 and ES256.
func (v *jwtVerifier) key(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodHMAC); ok {
			return v.secret, nil
		}
		if v.jwks == nil {
			return nil, jwt.ErrTokenUnverifiable
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, fmt.Errorf("%w: no kid", errUnknownKey)
		}
		k, err := v.jwks.KeyRead(ctx, kid)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errUnknownKey, err)
		}
		switch pub := k.Key().(type) {
		case *rsa.PublicKey:
			if _, ok := t.Method.(*jwt.SigningMethodRSA); ok {
				return pub, nil
			}
		case *ecdsa.PublicKey:
			if _, ok := t.Method.(*jwt.SigningMethodECDSA); ok {
				return pub, nil
			}
		}
		return nil, fmt.Errorf("%w: key %s does not fit %s", errUnknownKey, kid, t.Method.Alg())
	}
}

// parse verifies token and returns its claims.
func (v *jwtVerifier) parse(ctx context.Context, token string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, &claims, v.key(ctx))
	return claims, err
}
