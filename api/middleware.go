package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyairtable/automation-domain/config"
	"github.com/pyairtable/automation-domain/internal/tenant"
	"github.com/pyairtable/automation-domain/internal/tracing"
	"github.com/pyairtable/automation-domain/logging"
	"github.com/pyairtable/automation-domain/ratelimit"
	"github.com/pyairtable/automation-domain/store"
	"github.com/pyairtable/automation-domain/tenants"
)

const (
	headerRequestID = "X-Request-ID"
	headerAPIKey    = "X-API-Key"
	// principalKey holds the authenticated caller in echo.Context.
	principalKey = "principal"
	// tenantKey holds the caller's tenants.Tenant in echo.Context.
	tenantKey = "tenant"
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
		observed := s.metrics.duration.WithLabelValues(labels...)
		traceID, _ := tracing.IDs(c.Request().Context())
		if eo, ok := observed.(prometheus.ExemplarObserver); ok && traceID != "" {
			// The bucket links to a trace of a request it counts (OpenMetrics exemplar).
			eo.ObserveWithExemplar(elapsed.Seconds(), prometheus.Labels{"trace_id": traceID})
		} else {
			observed.Observe(elapsed.Seconds())
		}
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
	// Kind is "api_key" (the internal key), "tenant_key" or "jwt".
	Kind string
	// Subject is the JWT subject, the tenant key's prefix, or "internal" for the internal key.
	Subject string
	// Tenant is the tenant the request acts for.
	Tenant string
	// Scopes are the credential's scopes; the internal key has every one.
	Scopes []string
	// Internal is set for the internal API key: it acts for any tenant and alone manages tenants.
	Internal bool
}

// Has reports whether the principal holds scope (admin and the internal key hold every scope).
func (p Principal) Has(scope string) bool {
	if p.Internal {
		return true
	}
	for _, s := range p.Scopes {
		if s == scope || s == tenants.ScopeAdmin {
			return true
		}
	}
	return false
}

// Label names the principal in the audit log: "internal", "key:<prefix>" or "jwt:<sub>".
func (p Principal) Label() string {
	switch p.Kind {
	case "api_key":
		return "internal"
	case "tenant_key":
		return "key:" + p.Subject
	case "jwt":
		return "jwt:" + p.Subject
	}
	return ""
}

// principal returns the caller set by authenticate.
func principal(c echo.Context) Principal {
	p, _ := c.Get(principalKey).(Principal)
	return p
}

func unauthorized(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: msg}
}

// headerTenantID chooses the tenant the internal API key acts for.
const headerTenantID = "X-Tenant-ID"

// authenticate admits a request with valid credentials (see identify) and refuses the rest: 401,
// or 429 while the client's address is over its limit of failed authentications. It then sets
// the tenant the request acts for (tenantOf) in the request's context: every store statement of
// the request is filtered by it.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := s.identify(c, true)
		if err != nil {
			return err
		}
		if err := s.tenantOf(c, &p); err != nil {
			return err
		}
		c.Set(principalKey, p)
		req := c.Request()
		c.SetRequest(req.WithContext(tenant.With(req.Context(), p.Tenant)))
		return next(c)
	}
}

// tenantOf settles p's tenant: X-Tenant-ID (default when absent) for the internal key, the
// credential's own otherwise (an X-Tenant-ID naming another is refused). The tenant must exist
// and be enabled.
func (s *Server) tenantOf(c echo.Context, p *Principal) error {
	asked := c.Request().Header.Get(headerTenantID)
	if p.Internal {
		p.Tenant = tenant.Default
		if asked != "" {
			if !tenant.ValidID(asked) {
				return BadRequest("%s must be a tenant id (lower-case letters, digits, '-', '_')", headerTenantID)
			}
			p.Tenant = asked
		}
	} else if asked != "" && asked != p.Tenant {
		return &Error{Status: http.StatusForbidden, Code: "forbidden",
			Message: fmt.Sprintf("this credential acts for its own tenant only; %s cannot choose another", headerTenantID)}
	}
	t, err := s.tenants.Active(c.Request().Context(), p.Tenant)
	switch {
	case err == nil:
		c.Set(tenantKey, t)
		return nil
	case errors.Is(err, tenants.ErrTenantDisabled):
		return &Error{Status: http.StatusForbidden, Code: "tenant_disabled", Message: fmt.Sprintf("tenant %q is disabled", p.Tenant)}
	case errors.Is(err, store.ErrNotFound) && p.Internal:
		return NotFound("tenant", p.Tenant)
	case errors.Is(err, store.ErrNotFound):
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="automation", charset="UTF-8"`)
		return unauthorized("the credential's tenant does not exist")
	}
	return err
}

// authenticator checks credentials: X-API-Key: INTERNAL_API_KEY (compared in constant time) or a
// tenant API key (looked up by hash on every request, so a revocation holds at once), or
// Authorization: Bearer <HS256 JWT signed with JWT_SECRET_KEY, with exp, sub and the tenant
// claim>.
type authenticator struct {
	keyHash     [sha256.Size]byte
	jwt         *jwtVerifier
	tenantClaim string
	keys        *tenants.Service
}

func newAuthenticator(cfg *config.Config, keys *tenants.Service, log *slog.Logger) (*authenticator, error) {
	v, err := newJWTVerifier(cfg, log)
	if err != nil {
		return nil, err
	}
	claim := cfg.JWTTenantClaim
	if claim == "" {
		claim = "tenant_id"
	}
	return &authenticator{keyHash: sha256.Sum256([]byte(cfg.InternalAPIKey)), jwt: v, tenantClaim: claim, keys: keys}, nil
}

// present reports whether the request carries credentials at all.
func (a *authenticator) present(r *http.Request) bool {
	return r.Header.Get(headerAPIKey) != "" || r.Header.Get(echo.HeaderAuthorization) != ""
}

// check returns the caller the request's credentials name, or why they do not.
func (a *authenticator) check(r *http.Request) (Principal, error) {
	if key := r.Header.Get(headerAPIKey); key != "" {
		got := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(got[:], a.keyHash[:]) == 1 {
			return Principal{Kind: "api_key", Subject: "internal", Internal: true}, nil
		}
		if tenants.LooksLikeKey(key) {
			k, err := a.keys.Authenticate(r.Context(), key)
			switch {
			case err == nil:
				return Principal{Kind: "tenant_key", Subject: k.Prefix, Tenant: k.TenantID, Scopes: k.Scopes}, nil
			case !errors.Is(err, tenants.ErrInvalidKey):
				return Principal{}, err
			}
		}
		return Principal{}, unauthorized("invalid API key")
	}
	authz := r.Header.Get(echo.HeaderAuthorization)
	if authz == "" {
		return Principal{}, unauthorized("missing credentials: send X-API-Key or Authorization: Bearer <token>")
	}
	scheme, token, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Principal{}, unauthorized("the Authorization header must be 'Bearer <token>'")
	}
	claims, err := a.jwt.parse(r.Context(), strings.TrimSpace(token))
	if err != nil {
		return Principal{}, unauthorized(jwtProblem(err))
	}
	return a.jwtPrincipal(claims)
}

// jwtPrincipal reads the subject, the tenant (the configured claim) and the scopes ("scope",
// space-separated, or "scp", a list or a string) of a verified token.
func (a *authenticator) jwtPrincipal(claims jwt.MapClaims) (Principal, error) {
	sub, _ := claims.GetSubject()
	if sub == "" {
		return Principal{}, unauthorized("invalid token: no subject (sub)")
	}
	tid, _ := claims[a.tenantClaim].(string)
	if tid == "" {
		return Principal{}, unauthorized(fmt.Sprintf("invalid token: no tenant (%s)", a.tenantClaim))
	}
	if !tenant.ValidID(tid) {
		return Principal{}, unauthorized(fmt.Sprintf("invalid token: %s is not a tenant id", a.tenantClaim))
	}
	var scopes []string
	if sc, ok := claims["scope"].(string); ok {
		scopes = strings.Fields(sc)
	}
	switch scp := claims["scp"].(type) {
	case string:
		scopes = append(scopes, strings.Fields(scp)...)
	case []any:
		for _, v := range scp {
			if s, ok := v.(string); ok {
				scopes = append(scopes, s)
			}
		}
	}
	return Principal{Kind: "jwt", Subject: sub, Tenant: tid, Scopes: scopes}, nil
}

// identify authenticates the request. Without credentials it returns the zero Principal when
// they are optional (required false). Failed authentications are counted per client address
// (authFailureKey) in the shared limiter; once AUTH_FAILURE_LIMIT of them fell within
// AUTH_FAILURE_WINDOW, every authentication from that address — a valid one too, or guessing
// would go on unhindered — is answered 429 with Retry-After until the window frees one. Other
// addresses are unaffected. A wrong guess is counted after it was checked (a valid key costs
// nothing, so clients sharing an address with a typo keep working until the limit); one that finds
// the limit reached meanwhile gets 429 too. When the limiter fails (Redis down), authentication
// goes on unthrottled and the failure is logged, as for the request rate limit.
func (s *Server) identify(c echo.Context, required bool) (Principal, error) {
	req := c.Request()
	if !required && !s.auth.present(req) {
		return Principal{}, nil
	}
	ctx := req.Context()
	limit := ratelimit.Limit{Rate: s.cfg.AuthFailureLimit, Burst: s.cfg.AuthFailureLimit, Period: s.cfg.AuthFailureWindow}
	limited := s.cfg.AuthFailureLimit > 0
	key := authFailureKey(c.RealIP())
	if limited {
		if res, err := s.limiter.Peek(ctx, key, limit); err != nil {
			s.log.WarnContext(ctx, "failed-authentication limiter unavailable; not throttled", "error", err)
		} else if !res.Allowed {
			return Principal{}, s.tooManyFailures(limit, res)
		}
	}
	p, authErr := s.auth.check(req)
	if authErr == nil {
		return p, nil
	}
	if _, ok := authErr.(*Error); !ok {
		return Principal{}, authErr // the key could not be looked up (database down): not the client's fault
	}
	if limited {
		res, err := s.limiter.Allow(ctx, key, limit)
		switch {
		case err != nil:
			s.log.WarnContext(ctx, "failed-authentication limiter unavailable; not counted", "error", err)
		case !res.Allowed:
			// Past the limit after all (concurrent failures raced this one past the Peek): the
			// guess gets no answer either.
			return Principal{}, s.tooManyFailures(limit, res)
		case res.Remaining == 0:
			s.log.WarnContext(ctx, "failed authentications from one address reached the limit; it is throttled",
				"client", key, "limit", limit.Rate, "window", limit.Period)
		}
	}
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="automation", charset="UTF-8"`)
	return Principal{}, authErr
}

func (s *Server) tooManyFailures(limit ratelimit.Limit, res ratelimit.Result) *Error {
	wait := max(ceilSeconds(res.RetryAfter), 1)
	return &Error{Status: http.StatusTooManyRequests, Code: "too_many_failed_authentications",
		Message: fmt.Sprintf("too many failed authentications from this address (%d per %s); retry in %d s",
			limit.Rate, limit.Period, wait), RetryAfter: wait}
}

// authFailureKey names the client address failed authentications are counted under: an IPv4
// address, or the /64 of an IPv6 address (one subscriber's share, which it can fill with
// addresses at will).
func authFailureKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "auth-failures:" + ip
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return "auth-failures:" + netip.PrefixFrom(a, 64).Masked().String()
	}
	return "auth-failures:" + a.String()
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
	case errors.Is(err, errUnknownKey):
		return "invalid token: signed with a key the JWK Set does not have"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "invalid token: wrong issuer (iss)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "invalid token: wrong audience (aud)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "invalid token: bad signature or algorithm (HS256 expected, or RS256/ES256 with JWT_JWKS_URL)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "invalid token: issued in the future (iat)"
	}
	return "invalid token: malformed"
}

// rateLimit bounds each client (credential within its tenant, else IP) on each route — service
// credentials (the internal key, tenant keys) by RATE_LIMIT_PER_SECOND, bearer tokens and
// unauthenticated requests by RATE_LIMIT_USER_PER_SECOND when that is set — and each
// tenant with limits of its own (requests_per_second, burst) across its credentials and routes:
// one tenant at its limit gets 429 while the others go on. When the limiter itself fails (Redis
// down) the request is let through and the failure logged: the limiter protects the service, and
// an outage of it must not become an outage of the API.
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	service := ratelimit.PerSecond(s.cfg.RateLimitPerSecond, s.cfg.RateLimitBurst)
	user := service
	if r := s.cfg.RateLimitUserPerSecond; r > 0 {
		user = ratelimit.PerSecond(r, max(s.cfg.RateLimitUserBurst, r))
	}
	return func(c echo.Context) error {
		p := principal(c)
		client, limit := "ip:"+c.RealIP(), user
		if p.Kind != "" {
			client = "tenant:" + p.Tenant + ":" + p.Kind + ":" + p.Subject
			if p.Kind != "jwt" {
				limit = service // the internal key and tenant keys: service-to-service traffic
			}
		}
		if t, ok := c.Get(tenantKey).(tenants.Tenant); ok && t.Limits.RequestsPerSecond > 0 {
			tl := ratelimit.PerSecond(t.Limits.RequestsPerSecond, max(t.Limits.Burst, t.Limits.RequestsPerSecond))
			if err := s.allow(c, "api-tenant:"+t.ID, tl, "tenant_rate_limited",
				fmt.Sprintf("tenant %q", t.ID)); err != nil {
				return err
			}
		}
		if err := s.allow(c, "api:"+client+":"+c.Request().Method+" "+routeOf(c), limit, "rate_limited", "rate limit"); err != nil {
			return err
		}
		return next(c)
	}
}

// allow counts one request against key's limit: the RateLimit-* headers, or 429 with
// Retry-After (code) once it is spent.
func (s *Server) allow(c echo.Context, key string, limit ratelimit.Limit, code, what string) error {
	res, err := s.limiter.Allow(c.Request().Context(), key, limit)
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "rate limiter unavailable; request allowed", "error", err)
		return nil
	}
	h := c.Response().Header()
	h.Set("RateLimit-Limit", strconv.Itoa(limit.Burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(res.ResetAfter)))
	h.Set("RateLimit-Policy", fmt.Sprintf("%d;w=1;burst=%d", limit.Rate, limit.Burst))
	if !res.Allowed {
		wait := max(ceilSeconds(res.RetryAfter), 1)
		msg := fmt.Sprintf("rate limit of %d requests/s (burst %d) exceeded; retry in %d s", limit.Rate, limit.Burst, wait)
		if what != "rate limit" {
			msg = fmt.Sprintf("%s: %s", what, msg)
		}
		return &Error{Status: http.StatusTooManyRequests, Code: code, Message: msg, RetryAfter: wait}
	}
	return nil
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
