package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/logging"
	"github.com/pyairtable/automation-domain/ratelimit"
)

const (
	headerRequestID = "X-Request-ID"
	headerAPIKey    = "X-API-Key"
	// principalKey holds the authenticated caller in echo.Context.
	principalKey = "principal"
)

// requestID accepts a sane X-Request-ID or makes one, echoes it, and puts it in the request's
// context so every log line of the request carries it.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(headerRequestID)
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		c.Response().Header().Set(headerRequestID, id)
		req := c.Request()
		c.SetRequest(req.WithContext(logging.WithRequestID(req.Context(), id)))
		return next(c)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// routeOf is the matched route pattern, the label for metrics and logs.
func routeOf(c echo.Context) string {
	if p := c.Path(); p != "" && p != "/*" {
		return p
	}
	return "unmatched"
}

// observe writes the access log line and the HTTP metrics. It renders a handler's error itself so
// that the status it records is the one sent.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		s.metrics.inflight.Inc()
		defer s.metrics.inflight.Dec()
		if err := next(c); err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		elapsed := time.Since(start)
		route := routeOf(c)
		labels := []string{route, c.Request().Method, strconv.Itoa(status)}
		s.metrics.requests.WithLabelValues(labels...).Inc()
		s.metrics.duration.WithLabelValues(labels...).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		if route == "/health" || route == "/live" || route == "/ready" || route == "/metrics" {
			level = slog.LevelDebug // probes would drown the log
		}
		attrs := append(logAttrs(c, status),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.Int64("bytes_out", c.Response().Size),
			slog.String("remote_ip", c.RealIP()))
		s.log.LogAttrs(c.Request().Context(), level, "request", attrs...)
		return nil
	}
}

// recoverPanics turns a handler panic into a logged 500 with the standard body (no stack in the
// response).
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.ErrorContext(c.Request().Context(), "panic in handler",
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = &Error{Status: http.StatusInternalServerError, Code: "internal_error",
					Message: "an unexpected error occurred; it has been logged"}
			}
		}()
		return next(c)
	}
}

// limitBody refuses bodies over MAX_BODY_BYTES: at once when Content-Length says so, otherwise
// when reading passes the limit (decodeJSON turns that into 413).
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.cfg.MaxBodyBytes {
			return TooLarge(s.cfg.MaxBodyBytes)
		}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes)
		}
		return next(c)
	}
}

// Principal is the authenticated caller.
type Principal struct {
	// Kind is "api_key" or "jwt".
	Kind string
	// Subject is the JWT subject, or "internal" for the API key.
	Subject string
}

// principal returns the caller set by authenticate.
func principal(c echo.Context) Principal {
	p, _ := c.Get(principalKey).(Principal)
	return p
}

func unauthorized(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: msg}
}

// authenticate admits X-API-Key: INTERNAL_API_KEY (compared in constant time) or
// Authorization: Bearer <HS256 JWT signed with JWT_SECRET_KEY, with exp>.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	keyHash := sha256.Sum256([]byte(s.cfg.InternalAPIKey))
	jwtKey := []byte(s.cfg.JWTSecretKey)
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(30*time.Second),
	)
	return func(c echo.Context) error {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="automation", charset="UTF-8"`)
		if key := c.Request().Header.Get(headerAPIKey); key != "" {
			got := sha256.Sum256([]byte(key))
			if subtle.ConstantTimeCompare(got[:], keyHash[:]) != 1 {
				return unauthorized("invalid API key")
			}
			c.Set(principalKey, Principal{Kind: "api_key", Subject: "internal"})
			c.Response().Header().Del("WWW-Authenticate")
			return next(c)
		}
		authz := c.Request().Header.Get(echo.HeaderAuthorization)
		if authz == "" {
			return unauthorized("missing credentials: send X-API-Key or Authorization: Bearer <token>")
		}
		scheme, token, ok := strings.Cut(authz, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return unauthorized("the Authorization header must be 'Bearer <token>'")
		}
		claims := jwt.RegisteredClaims{}
		if _, err := parser.ParseWithClaims(strings.TrimSpace(token), &claims, func(*jwt.Token) (any, error) {
			return jwtKey, nil
		}); err != nil {
			return unauthorized(jwtProblem(err))
		}
		if claims.Subject == "" {
			return unauthorized("invalid token: no subject (sub)")
		}
		c.Set(principalKey, Principal{Kind: "jwt", Subject: claims.Subject})
		c.Response().Header().Del("WWW-Authenticate")
		return next(c)
	}
}

// jwtProblem says why a token was refused without echoing it.
func jwtProblem(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "invalid token: expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "invalid token: not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "invalid token: exp is required"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "invalid token: bad signature or algorithm (HS256 expected)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "invalid token: issued in the future (iat)"
	}
	return "invalid token: malformed"
}

// rateLimit bounds each client (API key, JWT subject, else IP) on each route. When the limiter
// itself fails (Redis down) the request is let through and the failure logged: the limiter
// protects the service, and an outage of it must not become an outage of the API.
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	limit := ratelimit.PerSecond(s.cfg.RateLimitPerSecond, s.cfg.RateLimitBurst)
	return func(c echo.Context) error {
		p := principal(c)
		client := "ip:" + c.RealIP()
		if p.Kind != "" {
			client = p.Kind + ":" + p.Subject
		}
		key := "api:" + client + ":" + c.Request().Method + " " + routeOf(c)
		res, err := s.limiter.Allow(c.Request().Context(), key, limit)
		if err != nil {
			s.log.WarnContext(c.Request().Context(), "rate limiter unavailable; request allowed", "error", err)
			return next(c)
		}
		h := c.Response().Header()
		h.Set("RateLimit-Limit", strconv.Itoa(limit.Burst))
		h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(res.ResetAfter)))
		h.Set("RateLimit-Policy", fmt.Sprintf("%d;w=1;burst=%d", limit.Rate, limit.Burst))
		if !res.Allowed {
			wait := max(ceilSeconds(res.RetryAfter), 1)
			return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Message:    fmt.Sprintf("rate limit of %d requests/s (burst %d) exceeded; retry in %d s", limit.Rate, limit.Burst, wait),
				RetryAfter: wait}
		}
		return next(c)
	}
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
