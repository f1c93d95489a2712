package api

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/labstack/echo/v4"
)

// The API reference at /docs is Swagger UI (vendored from npm swagger-ui-dist, see
// docs/README.md) over /openapi.json. Everything it loads is embedded and served from this
// origin, so the page works offline and its Content-Security-Policy names no other origin;
// Swagger UI's licence and notice are served beside it.
//
//go:embed docs/index.html docs/init.js docs/docs.css docs/swagger-ui-bundle.js docs/swagger-ui.css
//go:embed docs/favicon-32x32.png docs/LICENSE docs/NOTICE docs/swagger-ui-bundle.js.LICENSE.txt
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
	d := &docsAssets{etags: map[string]string{}}
	names, _ := fs.Glob(docsFiles, "docs/*")
	for _, name := range names {
		b, _ := docsFiles.ReadFile(name)
		sum := sha256.Sum256(b)
		d.etags[path.Base(name)] = `"` + hex.EncodeToString(sum[:12]) + `"`
	}
	e.GET("/docs", d.page)
	e.GET("/docs/:asset", d.asset)
}

// docsAssets serves the embedded files with an ETag each, so that browsers revalidate them
// (304) instead of keeping an old Swagger UI after an upgrade.
type docsAssets struct {
	etags map[string]string // file name → ETag
}

// page serves the reference page.
func (d *docsAssets) page(c echo.Context) error { return d.serve(c, "index.html") }

// asset serves one embedded script, style sheet or icon of the reference page.
func (d *docsAssets) asset(c echo.Context) error {
	name := c.Param("asset")
	if name == "" {
		return c.Redirect(http.StatusMovedPermanently, "/docs")
	}
	if name == "index.html" {
		return NotFound("API reference file", name)
	}
	return d.serve(c, name)
}

func (d *docsAssets) serve(c echo.Context, name string) error {
	etag, ok := d.etags[name]
	if !ok {
		return NotFound("API reference file", name)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", docsCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	if c.Request().Header.Get("If-None-Match") == etag {
		return c.NoContent(http.StatusNotModified)
	}
	b, err := docsFiles.ReadFile("docs/" + name)
	if err != nil {
		return fmt.Errorf("api: docs: %w", err)
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = echo.MIMETextPlainCharsetUTF8 // LICENSE, NOTICE
	}
	return c.Blob(http.StatusOK, ct, b)
}
