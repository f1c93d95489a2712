package api

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// allowProbe lists the methods the API serves, in the order Echo writes them in Allow.
var allowProbe = [...]string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodPatch,
	http.MethodPost, http.MethodPut}

// methodRoutes indexes the registered routes by "METHOD path pattern", so that a path can be
// tried against every method.
func methodRoutes(e *echo.Echo) map[string]bool {
	out := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method != echo.RouteNotFound {
			out[r.Method+" "+r.Path] = true
		}
	}
	return out
}

// allowedMethods returns the methods that have a route for path, as an Allow header
// ("OPTIONS, GET, POST"), or "" when no method has one.
func (s *Server) allowedMethods(path string) string {
	var allow []string
	for _, m := range allowProbe {
		c := s.echo.NewContext(&http.Request{Method: m, URL: &url.URL{Path: path}, Header: http.Header{}}, nil)
		s.echo.Router().Find(m, path, c)
		if s.routesByMethod[m+" "+c.Path()] {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		return ""
	}
	return http.MethodOptions + ", " + strings.Join(allow, ", ")
}

// methodNotAllowed turns the router's 404 for a path that has routes for other methods into a
// 405 with Allow (or, for OPTIONS, a 204 with Allow, as Echo answers at the top level). Echo's
// own 405 cannot see the paths under a group with middleware: the group's catch-all route (which
// runs the group's authentication first) answers them with a 404. It returns false when the
// path has no route at all.
func (s *Server) methodNotAllowed(c echo.Context) bool {
	allow := s.allowedMethods(echo.GetPath(c.Request()))
	if allow == "" {
		return false
	}
	c.Response().Header().Set(echo.HeaderAllow, allow)
	return true
}
