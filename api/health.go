package api

import (
	"context"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Check is one dependency reported by /health/detailed.
type Check struct {
	// Name is the dependency: database, redis, temporal, smtp, ….
	Name string
	// Mode says how it runs: postgres, sqlite, in-process, embedded, external, not_configured.
	Mode string
	// Probe returns nil when the dependency answers. A nil Probe has nothing to ask (in-process
	// parts) and is reported up.
	Probe func(ctx context.Context) error
	// Optional dependencies are reported but do not make /ready fail.
	Optional bool
	// NotConfigured, when set, says why a feature's dependency is not configured (an email
	// channel without SMTP_HOST): it is reported as status not_configured with this reason, not
	// probed, and makes nothing degraded or unready.
	NotConfigured string
}

// CheckResult is a Check's outcome.
type CheckResult struct {
	Status    string  `json:"status"` // up, down or not_configured
	Mode      string  `json:"mode"`
	LatencyMS float64 `json:"latency_ms"`
	Optional  bool    `json:"optional,omitempty"`
	Error     string  `json:"error,omitempty"`
}

const probeTimeout = 2 * time.Second

// runChecks probes every dependency in parallel.
func (s *Server) runChecks(ctx context.Context) map[string]CheckResult {
	results := make(map[string]CheckResult, len(s.opts.Checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, chk := range s.opts.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := CheckResult{Status: "up", Mode: chk.Mode, Optional: chk.Optional}
			if chk.NotConfigured != "" {
				r.Status, r.Error = "not_configured", chk.NotConfigured
			} else if chk.Probe != nil {
				pctx, cancel := context.WithTimeout(ctx, probeTimeout)
				start := time.Now()
				err := chk.Probe(pctx)
				cancel()
				r.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
				if err != nil {
					r.Status, r.Error = "down", err.Error()
				}
			}
			mu.Lock()
			results[chk.Name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return results
}

// failing lists the required dependencies that are down, sorted.
func failing(results map[string]CheckResult) []string {
	var out []string
	for name, r := range results {
		if r.Status == "down" && !r.Optional {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{
		"status":    "healthy",
		"service":   "automation-domain",
		"version":   s.opts.Version,
		"timestamp": time.Now().UTC(),
	})
}

// publicCheck is what an unauthenticated caller sees of a dependency: errors name hosts,
// ports and resolvers, and modes tell how the deployment is built.
type publicCheck struct {
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
}

// healthDetailed reports every dependency. An unauthenticated caller sees each one's status and
// latency only; a caller with the internal API key or a JWT also sees modes and errors.
func (s *Server) healthDetailed(c echo.Context) error {
	p, err := s.identify(c, false)
	if err != nil {
		return err
	}
	results := s.runChecks(c.Request().Context())
	down := failing(results)
	status, code := "healthy", http.StatusOK
	if len(down) > 0 {
		status, code = "unhealthy", http.StatusServiceUnavailable
	} else {
		for _, r := range results {
			if r.Status == "down" {
				status = "degraded"
			}
		}
	}
	var deps any = results
	if p.Kind == "" {
		public := make(map[string]publicCheck, len(results))
		for name, r := range results {
			public[name] = publicCheck{Status: r.Status, LatencyMS: r.LatencyMS}
		}
		deps = public
	}
	return c.JSON(code, map[string]any{
		"status":       status,
		"service":      "automation-domain",
		"version":      s.opts.Version,
		"timestamp":    time.Now().UTC(),
		"dependencies": deps,
	})
}

func (s *Server) ready(c echo.Context) error {
	if s.draining.Load() {
		c.Response().Header().Set("Retry-After", "5")
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "draining"})
	}
	results := s.runChecks(c.Request().Context())
	if s.starting.Load() {
		for name, r := range results {
			r.Optional = false
			results[name] = r
		}
	}
	down := failing(results)
	if len(down) > 0 {
		c.Response().Header().Set("Retry-After", "2")
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "not_ready", "failing": down})
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready"})
}

func (s *Server) live(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"status": "alive"})
}

func (s *Server) info(c echo.Context) error {
	base := s.cfg.PublicURL
	urls := map[string]string{
		"api":     base + "/api/v1",
		"openapi": base + "/openapi.json",
		"metrics": base + "/metrics",
	}
	if !s.cfg.Production() {
		urls["docs"] = base + "/docs"
	}
	if s.cfg.TemporalUIURL != "" {
		urls["temporal_ui"] = s.cfg.TemporalUIURL
	}
	return c.JSON(http.StatusOK, map[string]any{
		"service":        "automation-domain",
		"version":        s.opts.Version,
		"env":            s.cfg.Env,
		"go_version":     runtime.Version(),
		"started_at":     s.started.UTC(),
		"uptime_seconds": int(time.Since(s.started).Seconds()),
		"modes":          s.opts.Modes,
		"temporal": map[string]string{
			"address":   s.cfg.TemporalAddress,
			"namespace": s.cfg.TemporalNamespace,
			"ui_url":    s.cfg.TemporalUIURL,
		},
		"urls": urls,
	})
}
