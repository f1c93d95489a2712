package api

import (
	"embed"
	"mime"
	"net/http"
	"path"

	"github.com/labstack/echo/v4"
)

// The API reference at /docs is Swagger UI (vendored from npm swagger-ui-dist, see
// docs/README.md) over /openapi.json. Everything it loads is embedded and served from this
// origin, so the page works offline and its Content-Security-Policy names no other origin.
//
//go:embed docs/index.html docs/init.js docs/docs.css docs/swagger-ui-bundle.js docs/swagger-ui.css
//go:embed docs/favicon-32x32.png
var docsFiles embed.FS

// docsCSP allows the page's own scripts, style sheets and calls only: no inline script or
// style, no eval, no other origin. data: images are the icons inside swagger-ui.css.
// TestDocsInBrowser fails on any violation the browser reports.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsRoutes registers /docs and its assets, outside production as in the seed.
func (s *Server) docsRoutes(e *echo.Echo) {
	if s.cfg.Production() {
		return
	}
	e.GET("/docs", s.docs)
	e.GET("/docs/:asset", s.docsAsset)
}

// docs serves the reference page.
func (s *Server) docs(c echo.Context) error {
	return serveDocsFile(c, "index.html", "no-cache")
}

// docsAsset serves one embedded script or style sheet of the reference page.
func (s *Server) docsAsset(c echo.Context) error {
	name := c.Param("asset")
	if name == "" {
		return c.Redirect(http.StatusMovedPermanently, "/docs")
	}
	if name == "index.html" || path.Base(name) != name {
		return NotFound("API reference file", name)
	}
	return serveDocsFile(c, name, "public, max-age=86400")
}

func serveDocsFile(c echo.Context, name, cacheControl string) error {
	b, err := docsFiles.ReadFile("docs/" + name)
	if err != nil {
		return NotFound("API reference file", name)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", docsCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", cacheControl)
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = echo.MIMEOctetStream
	}
	return c.Blob(http.StatusOK, ct, b)
}
