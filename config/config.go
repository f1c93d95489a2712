// Package config loads the service configuration from environment variables.
//
// The variable names are the seed's (ENV, PORT, DATABASE_URL, REDIS_URL, SMTP_*, …) plus the
// Temporal ones. A part whose address is unset runs embedded: no TEMPORAL_ADDRESS starts an
// in-process Temporal server, no DATABASE_URL keeps the app's tables in SQLite under DATA_DIR,
// and no REDIS_URL limits rates in process.
package config

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/pyairtable/automation-domain/netguard"
)

// Environments the service knows.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
	EnvTest        = "test"
)

// Config is the whole service configuration. Field tags name the environment variable.
type Config struct {
	Env     string `env:"ENV" envDefault:"development"`
	Host    string `env:"HOST" envDefault:"0.0.0.0"`
	Port    int    `env:"PORT" envDefault:"8090"`
	Workers int    `env:"WORKERS" envDefault:"1"`
	// PublicURL is how the outside world reaches the API (provider callbacks, links in
	// responses). Defaults to http://localhost:PORT.
	PublicURL string `env:"PUBLIC_URL"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
	DataDir   string `env:"DATA_DIR" envDefault:"./data"`

	DatabaseURL         string `env:"DATABASE_URL"`
	DatabasePoolSize    int    `env:"DATABASE_POOL_SIZE" envDefault:"10"`
	DatabaseMaxOverflow int    `env:"DATABASE_MAX_OVERFLOW" envDefault:"20"`

	RedisURL            string `env:"REDIS_URL"`
	RedisPassword       string `env:"REDIS_PASSWORD"`
	RedisMaxConnections int    `env:"REDIS_MAX_CONNECTIONS" envDefault:"20"`
	// RedisTimeout bounds dialling, reading and writing one Redis call: a Redis that is down
	// costs a request at most this long (and nothing once its circuit is open).
	RedisTimeout time.Duration `env:"REDIS_TIMEOUT" envDefault:"250ms"`

	TemporalAddress   string `env:"TEMPORAL_ADDRESS"`
	TemporalNamespace string `env:"TEMPORAL_NAMESPACE" envDefault:"automation"`
	TemporalPort      int    `env:"TEMPORAL_PORT" envDefault:"7233"`
	TemporalUIPort    int    `env:"TEMPORAL_UI_PORT" envDefault:"8233"`
	// TemporalUIURL is the Web UI's base URL used for links; derived in embedded mode.
	TemporalUIURL string `env:"TEMPORAL_UI_URL"`
	// TemporalRPCTimeout bounds each call that starts, signals, cancels or queries a workflow:
	// with Temporal down a request that needs it answers 503 after this long.
	TemporalRPCTimeout time.Duration `env:"TEMPORAL_RPC_TIMEOUT" envDefault:"1s"`
	// TemporalWaitTimeout bounds how long the API and the worker wait at start-up for the
	// frontend to answer and the namespace to exist (0: as long as it takes).
	TemporalWaitTimeout time.Duration `env:"TEMPORAL_WAIT_TIMEOUT" envDefault:"10m"`

	InternalAPIKey   string `env:"INTERNAL_API_KEY"`
	JWTSecretKey     string `env:"JWT_SECRET_KEY"`
	WebhookSecretKey string `env:"WEBHOOK_SECRET_KEY"`
	// JWTTenantClaim names the JWT claim that carries the caller's tenant (a token without it is
	// refused).
	JWTTenantClaim string `env:"JWT_TENANT_CLAIM" envDefault:"tenant_id"`
	// JWTJWKSURL is an identity provider's JWK Set: RS256 and ES256 tokens are verified against
	// its keys (cached, refreshed every JWTJWKSRefresh and when a token names an unknown kid, at
	// most once a minute).
	JWTJWKSURL     string        `env:"JWT_JWKS_URL"`
	JWTJWKSRefresh time.Duration `env:"JWT_JWKS_REFRESH" envDefault:"1h"`
	// JWTIssuer and JWTAudience, when set, must match every token's iss and aud.
	JWTIssuer   string `env:"JWT_ISSUER"`
	JWTAudience string `env:"JWT_AUDIENCE"`

	SMTPHost     string `env:"SMTP_HOST"`
	SMTPPort     int    `env:"SMTP_PORT" envDefault:"587"`
	SMTPUsername string `env:"SMTP_USERNAME"`
	SMTPPassword string `env:"SMTP_PASSWORD"`
	SMTPUseTLS   bool   `env:"SMTP_USE_TLS" envDefault:"true"`
	SMTPFrom     string `env:"SMTP_FROM" envDefault:"automation@localhost"`
	// SMTPTimeout bounds connecting to and talking with the SMTP server, per message.
	SMTPTimeout time.Duration `env:"SMTP_TIMEOUT" envDefault:"30s"`
	// SMTPRatePerSecond caps emails handed to the SMTP server per second across every worker
	// (a Temporal task-queue activity rate limit); SMTPMaxConnections caps the messages one
	// worker process sends at once.
	SMTPRatePerSecond  float64 `env:"SMTP_RATE_PER_SECOND" envDefault:"10"`
	SMTPMaxConnections int     `env:"SMTP_MAX_CONNECTIONS" envDefault:"10"`

	// Twilio sends SMS. Either TWILIO_FROM_NUMBER (E.164) or TWILIO_MESSAGING_SERVICE_SID names
	// the sender; the service SID wins when both are set.
	TwilioAccountSID          string  `env:"TWILIO_ACCOUNT_SID"`
	TwilioAuthToken           string  `env:"TWILIO_AUTH_TOKEN"`
	TwilioFromNumber          string  `env:"TWILIO_FROM_NUMBER"`
	TwilioMessagingServiceSID string  `env:"TWILIO_MESSAGING_SERVICE_SID"`
	TwilioRatePerSecond       float64 `env:"TWILIO_RATE_PER_SECOND" envDefault:"10"`
	// TwilioAPIURL replaces https://api.twilio.com (a local mock in development and tests).
	TwilioAPIURL string `env:"TWILIO_API_URL"`

	// NotificationRecipientLimit sends at most this many notifications of one channel to one
	// recipient per NotificationRecipientWindow; more wait their turn (0 turns it off).
	NotificationRecipientLimit  int           `env:"NOTIFICATION_RECIPIENT_LIMIT" envDefault:"10"`
	NotificationRecipientWindow time.Duration `env:"NOTIFICATION_RECIPIENT_WINDOW" envDefault:"1m"`
	// Retries of a transient delivery failure: exponential backoff from the initial interval,
	// doubling up to the maximum interval, for at most NotificationRetryMaxAttempts attempts.
	NotificationRetryInitialInterval time.Duration `env:"NOTIFICATION_RETRY_INITIAL_INTERVAL" envDefault:"10s"`
	NotificationRetryMaxInterval     time.Duration `env:"NOTIFICATION_RETRY_MAX_INTERVAL" envDefault:"30m"`
	NotificationRetryMaxAttempts     int           `env:"NOTIFICATION_RETRY_MAX_ATTEMPTS" envDefault:"10"`

	// WebhookAllowedCIDRs are private ranges that outbound HTTP (webhooks, http_request steps)
	// may reach anyway; everything non-public is refused otherwise (SSRF guard).
	WebhookAllowedCIDRs []string `env:"WEBHOOK_ALLOWED_CIDRS" envSeparator:","`
	// WebhookHTTPSOnly refuses http:// destinations for outbound HTTP.
	WebhookHTTPSOnly bool `env:"WEBHOOK_HTTPS_ONLY" envDefault:"false"`
	// Webhook delivery defaults; an endpoint may override the schedule, attempts, timeout and
	// failure count. The schedule is the delays before each retry (Standard Webhooks').
	WebhookRetrySchedule        []time.Duration `env:"WEBHOOK_RETRY_SCHEDULE" envSeparator:"," envDefault:"5s,5m,30m,2h,5h,10h,10h"`
	WebhookTimeout              time.Duration   `env:"WEBHOOK_TIMEOUT" envDefault:"15s"`
	WebhookDisableAfter         time.Duration   `env:"WEBHOOK_DISABLE_AFTER" envDefault:"120h"`
	WebhookDisableAfterFailures int             `env:"WEBHOOK_DISABLE_AFTER_FAILURES" envDefault:"0"`
	WebhookCircuitThreshold     int             `env:"WEBHOOK_CIRCUIT_THRESHOLD" envDefault:"10"`
	WebhookCircuitCooldown      time.Duration   `env:"WEBHOOK_CIRCUIT_COOLDOWN" envDefault:"30s"`
	WebhookSecretRotationGrace  time.Duration   `env:"WEBHOOK_SECRET_ROTATION_GRACE" envDefault:"24h"`

	// MaxBodyBytes caps every request body (413 above it).
	MaxBodyBytes int64 `env:"MAX_BODY_BYTES" envDefault:"1048576"`
	// RateLimitPerSecond and RateLimitBurst bound each client on each route. The defaults suit
	// the primary callers, other services sharing the internal key or a tenant key: above what
	// one 2-core instance accepts on one route (about 2,000 messages/s), so a platform posting
	// through the shared key is not throttled by its own service, while a tenant's own
	// requests_per_second bounds a tenant (Convoy's default API limit is 1,000/s).
	RateLimitPerSecond int `env:"RATE_LIMIT_PER_SECOND" envDefault:"2500"`
	RateLimitBurst     int `env:"RATE_LIMIT_BURST" envDefault:"5000"`
	// RateLimitUserPerSecond and RateLimitUserBurst, when set, bound callers with a bearer token
	// (per JWT subject) and unauthenticated requests (per IP) instead (0: the limits above).
	RateLimitUserPerSecond int `env:"RATE_LIMIT_USER_PER_SECOND" envDefault:"0"`
	RateLimitUserBurst     int `env:"RATE_LIMIT_USER_BURST" envDefault:"0"`
	// AuthFailureLimit failed authentications per AuthFailureWindow are allowed from one client
	// address (an IPv6 /64); past them every authentication from it is answered 429 until the
	// window frees one (0 turns it off).
	AuthFailureLimit  int           `env:"AUTH_FAILURE_LIMIT" envDefault:"10"`
	AuthFailureWindow time.Duration `env:"AUTH_FAILURE_WINDOW" envDefault:"1m"`
	// MetricsPort, when set, serves /metrics, /live and /ready on a port of its own in a process
	// without the API (the worker), so its Temporal SDK and activity metrics can be scraped.
	MetricsPort int `env:"METRICS_PORT" envDefault:"0"`
	// PprofPort, when set, serves the Go runtime profiles (net/http/pprof) on 127.0.0.1 at this
	// port (0: off).
	PprofPort int `env:"PPROF_PORT" envDefault:"0"`
	// ShutdownTimeout bounds graceful shutdown of the API and the worker.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	// DrainPeriod is how long the API goes on serving after SIGTERM while /ready answers 503,
	// so that load balancers stop sending it requests before it stops accepting them
	// (DRAIN_PERIOD; 5s in production and 0 otherwise unless set).
	DrainPeriod    time.Duration  `env:"-"`
	DrainPeriodEnv *time.Duration `env:"DRAIN_PERIOD"`

	// RulesPartitions is how many long-running evaluator workflows share the events (by a hash
	// of the event type).
	RulesPartitions int `env:"RULES_PARTITIONS" envDefault:"8"`
	// RulesMaxDepth: an event deeper in a causation chain is recorded, not evaluated (loop
	// prevention).
	RulesMaxDepth int `env:"RULES_MAX_DEPTH" envDefault:"5"`
	// EventRetention is how long events and their rule executions are kept; at least 24h, the
	// window in which a repeated event id is recognised.
	EventRetention time.Duration `env:"EVENT_RETENTION" envDefault:"720h"`

	// The evaluation budget of every template, jq program and expression (see EvalLimits).
	EvalTimeout       time.Duration `env:"EVAL_TIMEOUT" envDefault:"1s"`
	EvalMaxSteps      int64         `env:"EVAL_MAX_STEPS" envDefault:"1000000"`
	EvalMaxDepth      int           `env:"EVAL_MAX_DEPTH" envDefault:"200"`
	EvalMaxNesting    int           `env:"EVAL_MAX_NESTING" envDefault:"64"`
	EvalMaxValueBytes int64         `env:"EVAL_MAX_VALUE_BYTES" envDefault:"1048576"`
	EvalMaxAllocBytes int64         `env:"EVAL_MAX_ALLOC_BYTES" envDefault:"67108864"`
	// EvalIsolation: "process" evaluates in helper processes (EVAL_HELPERS of them, each capped
	// at EVAL_HELPER_MEMORY_BYTES and EVAL_HELPER_STACK_BYTES, ended after EVAL_HELPER_IDLE
	// without work); "inprocess" in the service's own process.
	EvalIsolation    string        `env:"EVAL_ISOLATION" envDefault:"process"`
	EvalHelpers      int           `env:"EVAL_HELPERS" envDefault:"2"`
	EvalHelperMemory int64         `env:"EVAL_HELPER_MEMORY_BYTES" envDefault:"201326592"`
	EvalHelperStack  int64         `env:"EVAL_HELPER_STACK_BYTES" envDefault:"67108864"`
	EvalHelperIdle   time.Duration `env:"EVAL_HELPER_IDLE" envDefault:"1m"`

	// GeneratedSecrets names the secrets that were generated for development, not configured.
	GeneratedSecrets []string `env:"-"`
}

// Load reads the configuration from the process environment.
func Load() (*Config, error) {
	return LoadFrom(envMap(os.Environ()))
}

// LoadFrom reads the configuration from the given environment (tests pass their own).
func LoadFrom(environ map[string]string) (*Config, error) {
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Environment: environ}); err != nil {
		return nil, describeParseError(err)
	}
	if err := c.normalize(); err != nil {
		return nil, err
	}
	return &c, nil
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// describeParseError turns the library's aggregate error into one message per variable, named
// by its environment variable rather than its Go field.
func describeParseError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := reflect.TypeOf(Config{}).FieldByName(pe.Name); ok {
				name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
				msgs = append(msgs, fmt.Sprintf("%s: %v", name, pe.Err))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("configuration: %s", strings.Join(msgs, "; "))
}

func (c *Config) normalize() error {
	var problems []string
	bad := func(name, format string, args ...any) {
		problems = append(problems, name+": "+fmt.Sprintf(format, args...))
	}
	switch c.Env {
	case EnvDevelopment, EnvProduction, EnvTest:
	default:
		bad("ENV", "must be development, production or test, got %q", c.Env)
	}
	checkPort := func(name string, p int, zeroOK bool) {
		if (p == 0 && !zeroOK) || p < 0 || p > 65535 {
			bad(name, "must be a TCP port, got %d", p)
		}
	}
	checkPort("PORT", c.Port, true)
	checkPort("TEMPORAL_PORT", c.TemporalPort, false)
	checkPort("TEMPORAL_UI_PORT", c.TemporalUIPort, true)
	checkPort("SMTP_PORT", c.SMTPPort, false)
	checkPort("METRICS_PORT", c.MetricsPort, true)
	checkPort("PPROF_PORT", c.PprofPort, true)
	if c.TemporalWaitTimeout < 0 {
		bad("TEMPORAL_WAIT_TIMEOUT", "must be 0 (no limit) or more, got %s", c.TemporalWaitTimeout)
	}
	if c.Workers < 1 || c.Workers > 64 {
		bad("WORKERS", "must be between 1 and 64, got %d", c.Workers)
	}
	if c.DatabasePoolSize < 1 {
		bad("DATABASE_POOL_SIZE", "must be at least 1, got %d", c.DatabasePoolSize)
	}
	if c.DatabaseMaxOverflow < 0 {
		bad("DATABASE_MAX_OVERFLOW", "must not be negative, got %d", c.DatabaseMaxOverflow)
	}
	if c.RedisMaxConnections < 1 {
		bad("REDIS_MAX_CONNECTIONS", "must be at least 1, got %d", c.RedisMaxConnections)
	}
	if c.RedisTimeout <= 0 {
		bad("REDIS_TIMEOUT", "must be positive, got %v", c.RedisTimeout)
	}
	if c.TemporalRPCTimeout <= 0 {
		bad("TEMPORAL_RPC_TIMEOUT", "must be positive, got %v", c.TemporalRPCTimeout)
	}
	switch {
	case c.DrainPeriodEnv != nil && *c.DrainPeriodEnv < 0:
		bad("DRAIN_PERIOD", "must not be negative, got %v", *c.DrainPeriodEnv)
	case c.DrainPeriodEnv != nil:
		c.DrainPeriod = *c.DrainPeriodEnv
	case c.Env == EnvProduction:
		c.DrainPeriod = 5 * time.Second
	}
	c.checkNotifications(bad)
	if c.MaxBodyBytes < 1024 {
		bad("MAX_BODY_BYTES", "must be at least 1024, got %d", c.MaxBodyBytes)
	}
	if c.RateLimitPerSecond < 1 || c.RateLimitBurst < 1 {
		bad("RATE_LIMIT_PER_SECOND", "rate and RATE_LIMIT_BURST must be at least 1")
	}
	if c.RateLimitUserPerSecond < 0 || c.RateLimitUserBurst < 0 {
		bad("RATE_LIMIT_USER_PER_SECOND", "rate and RATE_LIMIT_USER_BURST must not be negative")
	}
	if c.AuthFailureLimit < 0 {
		bad("AUTH_FAILURE_LIMIT", "must be 0 (off) or more, got %d", c.AuthFailureLimit)
	}
	if c.AuthFailureLimit > 0 && c.AuthFailureWindow < time.Second {
		bad("AUTH_FAILURE_WINDOW", "must be at least 1s, got %s", c.AuthFailureWindow)
	}
	if c.RulesPartitions < 1 || c.RulesPartitions > 256 {
		bad("RULES_PARTITIONS", "must be between 1 and 256, got %d", c.RulesPartitions)
	}
	if c.RulesMaxDepth < 1 || c.RulesMaxDepth > 100 {
		bad("RULES_MAX_DEPTH", "must be between 1 and 100, got %d", c.RulesMaxDepth)
	}
	if c.EventRetention < 24*time.Hour {
		bad("EVENT_RETENTION", "must be at least 24h (the window in which a repeated event id is recognised), got %s", c.EventRetention)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
		c.LogLevel = strings.ToLower(c.LogLevel)
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.DatabaseURL != "" {
		u, err := normalizeDatabaseURL(c.DatabaseURL)
		if err != nil {
			bad("DATABASE_URL", "%v", err)
		}
		c.DatabaseURL = u
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("REDIS_URL", "must be a redis:// or rediss:// URL")
		}
	}
	if _, err := netguard.ParsePrefixes(c.WebhookAllowedCIDRs); err != nil {
		bad("WEBHOOK_ALLOWED_CIDRS", "%v", err)
	}
	c.checkWebhooks(bad)
	c.checkEval(bad)
	if c.PublicURL == "" {
		c.PublicURL = fmt.Sprintf("http://localhost:%d", c.Port)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" {
		bad("PUBLIC_URL", "must be an absolute URL, got %q", c.PublicURL)
	}
	if c.Env == EnvProduction {
		for name, v := range map[string]string{
			"INTERNAL_API_KEY": c.InternalAPIKey, "JWT_SECRET_KEY": c.JWTSecretKey,
			"WEBHOOK_SECRET_KEY": c.WebhookSecretKey,
		} {
			if v == "" {
				bad(name, "is required when ENV=production")
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}

// checkNotifications validates the SMTP, Twilio and notification settings.
func (c *Config) checkNotifications(bad func(name, format string, args ...any)) {
	if c.SMTPTimeout <= 0 {
		bad("SMTP_TIMEOUT", "must be positive, got %v", c.SMTPTimeout)
	}
	if c.SMTPRatePerSecond <= 0 {
		bad("SMTP_RATE_PER_SECOND", "must be positive, got %v", c.SMTPRatePerSecond)
	}
	if c.SMTPMaxConnections < 1 {
		bad("SMTP_MAX_CONNECTIONS", "must be at least 1, got %d", c.SMTPMaxConnections)
	}
	if c.SMTPHost != "" {
		if _, err := mail.ParseAddress(c.SMTPFrom); err != nil {
			bad("SMTP_FROM", "must be an email address, got %q", c.SMTPFrom)
		}
	}
	if c.TwilioRatePerSecond <= 0 {
		bad("TWILIO_RATE_PER_SECOND", "must be positive, got %v", c.TwilioRatePerSecond)
	}
	if c.TwilioAccountSID != "" || c.TwilioAuthToken != "" {
		if c.TwilioAccountSID == "" || c.TwilioAuthToken == "" {
			bad("TWILIO_ACCOUNT_SID", "and TWILIO_AUTH_TOKEN must be set together")
		}
		if c.TwilioFromNumber == "" && c.TwilioMessagingServiceSID == "" {
			bad("TWILIO_FROM_NUMBER", "or TWILIO_MESSAGING_SERVICE_SID is required with TWILIO_ACCOUNT_SID")
		}
	}
	if c.TwilioAPIURL != "" {
		if u, err := url.Parse(c.TwilioAPIURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			bad("TWILIO_API_URL", "must be an absolute http(s) URL, got %q", c.TwilioAPIURL)
		}
	}
	if c.NotificationRecipientLimit < 0 {
		bad("NOTIFICATION_RECIPIENT_LIMIT", "must not be negative, got %d", c.NotificationRecipientLimit)
	}
	if c.NotificationRecipientWindow <= 0 {
		bad("NOTIFICATION_RECIPIENT_WINDOW", "must be positive, got %v", c.NotificationRecipientWindow)
	}
	if c.NotificationRetryInitialInterval <= 0 || c.NotificationRetryMaxInterval < c.NotificationRetryInitialInterval {
		bad("NOTIFICATION_RETRY_INITIAL_INTERVAL", "must be positive and at most NOTIFICATION_RETRY_MAX_INTERVAL")
	}
	if c.NotificationRetryMaxAttempts < 1 {
		bad("NOTIFICATION_RETRY_MAX_ATTEMPTS", "must be at least 1, got %d", c.NotificationRetryMaxAttempts)
	}
}

// EmailConfigured reports whether an SMTP server is configured (SMTP_HOST).
func (c *Config) EmailConfigured() bool { return c.SMTPHost != "" }

// SMSConfigured reports whether Twilio credentials and a sender are configured.
func (c *Config) SMSConfigured() bool {
	return c.TwilioAccountSID != "" && c.TwilioAuthToken != "" &&
		(c.TwilioFromNumber != "" || c.TwilioMessagingServiceSID != "")
}

// normalizeDatabaseURL accepts the seed's SQLAlchemy forms (postgresql+asyncpg://…) and plain
// postgres:// URLs, and returns a URL the pgx driver understands.
func normalizeDatabaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL: %v", err)
	}
	scheme, _, _ := strings.Cut(u.Scheme, "+")
	switch scheme {
	case "postgres", "postgresql":
		u.Scheme = "postgres"
	default:
		return "", fmt.Errorf("must be a postgres:// URL (leave it unset for embedded SQLite), got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("has no host")
	}
	return u.String(), nil
}

// EmbeddedTemporal reports whether this process must start its own Temporal server.
func (c *Config) EmbeddedTemporal() bool { return c.TemporalAddress == "" }

// EmbeddedDatabase reports whether the app's tables live in SQLite under DataDir.
func (c *Config) EmbeddedDatabase() bool { return c.DatabaseURL == "" }

// EmbeddedRedis reports whether rate limits are kept in process instead of Redis.
func (c *Config) EmbeddedRedis() bool { return c.RedisURL == "" }

// SQLitePath is the app database file used when DATABASE_URL is unset.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "automation.db") }

// TemporalSQLitePath is the embedded Temporal server's database file.
func (c *Config) TemporalSQLitePath() string { return filepath.Join(c.DataDir, "temporal.db") }

// Production reports whether ENV=production.
func (c *Config) Production() bool { return c.Env == EnvProduction }

// devSecrets is the file that keeps generated development secrets stable across restarts.
type devSecrets struct {
	InternalAPIKey   string `json:"internal_api_key"`
	JWTSecretKey     string `json:"jwt_secret_key"`
	WebhookSecretKey string `json:"webhook_secret_key"`
}

// DevSecretsPath is where generated development secrets are kept.
func (c *Config) DevSecretsPath() string { return filepath.Join(c.DataDir, "dev-secrets.json") }

// EnsureSecrets fills missing secrets outside production. Generated values are written to
// DevSecretsPath (mode 0600) so that every process sharing DATA_DIR, and every restart, uses the
// same ones; GeneratedSecrets lists the names that were created by this call, so the caller can
// print them once.
func (c *Config) EnsureSecrets() error {
	if c.InternalAPIKey != "" && c.JWTSecretKey != "" && c.WebhookSecretKey != "" {
		return nil
	}
	if c.Production() {
		return errors.New("configuration: INTERNAL_API_KEY, JWT_SECRET_KEY and WEBHOOK_SECRET_KEY are required when ENV=production")
	}
	var stored devSecrets
	path := c.DevSecretsPath()
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &stored); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	changed := false
	fill := func(name string, field *string, kept *string, bytes int) error {
		if *field != "" {
			return nil
		}
		if *kept == "" {
			v, err := randomToken(bytes)
			if err != nil {
				return err
			}
			*kept = v
			changed = true
			c.GeneratedSecrets = append(c.GeneratedSecrets, name)
		}
		*field = *kept
		return nil
	}
	if err := fill("INTERNAL_API_KEY", &c.InternalAPIKey, &stored.InternalAPIKey, 24); err != nil {
		return err
	}
	if err := fill("JWT_SECRET_KEY", &c.JWTSecretKey, &stored.JWTSecretKey, 32); err != nil {
		return err
	}
	if err := fill("WEBHOOK_SECRET_KEY", &c.WebhookSecretKey, &stored.WebhookSecretKey, 32); err != nil {
		return err
	}
	if !changed {
		return nil
	}
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", c.DataDir, err)
	}
	b, _ := json.MarshalIndent(stored, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadDevAPIKey returns the development API key kept in dataDir, if any (the starter CLI uses it
// when no key is given).
func ReadDevAPIKey(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, "dev-secrets.json"))
	if err != nil {
		return ""
	}
	var s devSecrets
	if json.Unmarshal(b, &s) != nil {
		return ""
	}
	return s.InternalAPIKey
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// EgressPolicy is the SSRF guard for outbound HTTP built from WEBHOOK_ALLOWED_CIDRS and
// WEBHOOK_HTTPS_ONLY.
func (c *Config) EgressPolicy() *netguard.Policy {
	allowed, _ := netguard.ParsePrefixes(c.WebhookAllowedCIDRs) // checked by LoadFrom
	return &netguard.Policy{Allowed: allowed, HTTPSOnly: c.WebhookHTTPSOnly}
}

// Bounds of the webhook delivery settings.
const (
	MaxWebhookRetrySteps = 50
	MaxWebhookRetryDelay = 7 * 24 * time.Hour
	MaxWebhookTimeout    = 60 * time.Second
)

func (c *Config) checkWebhooks(bad func(name, format string, args ...any)) {
	if len(c.WebhookRetrySchedule) == 0 || len(c.WebhookRetrySchedule) > MaxWebhookRetrySteps {
		bad("WEBHOOK_RETRY_SCHEDULE", "must list 1 to %d delays, e.g. 5s,5m,30m", MaxWebhookRetrySteps)
	}
	for _, d := range c.WebhookRetrySchedule {
		if d < 0 || d > MaxWebhookRetryDelay {
			bad("WEBHOOK_RETRY_SCHEDULE", "delays must be from 0 to %s, got %s", MaxWebhookRetryDelay, d)
			break
		}
	}
	if c.WebhookTimeout < time.Second || c.WebhookTimeout > MaxWebhookTimeout {
		bad("WEBHOOK_TIMEOUT", "must be from 1s to %s, got %s", MaxWebhookTimeout, c.WebhookTimeout)
	}
	if c.WebhookDisableAfter < time.Minute {
		bad("WEBHOOK_DISABLE_AFTER", "must be at least 1m, got %s", c.WebhookDisableAfter)
	}
	if c.WebhookDisableAfterFailures < 0 {
		bad("WEBHOOK_DISABLE_AFTER_FAILURES", "must not be negative (0 turns it off)")
	}
	if c.WebhookCircuitThreshold < 0 {
		bad("WEBHOOK_CIRCUIT_THRESHOLD", "must not be negative (0 turns the circuit breaker off)")
	}
	if c.WebhookCircuitCooldown < time.Second {
		bad("WEBHOOK_CIRCUIT_COOLDOWN", "must be at least 1s, got %s", c.WebhookCircuitCooldown)
	}
	if c.WebhookSecretRotationGrace < 0 || c.WebhookSecretRotationGrace > 30*24*time.Hour {
		bad("WEBHOOK_SECRET_ROTATION_GRACE", "must be from 0 to 720h, got %s", c.WebhookSecretRotationGrace)
	}
}
