package api

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"
	"gopkg.in/yaml.v3"
)

// The OpenAPI document is kept as one YAML file per domain under openapi/ (so each domain's
// routes and schemas sit together) and merged at start-up. TestOpenAPIMatchesRoutes fails when a
// route is missing from it or it names a route that does not exist.
//
//go:embed openapi/*.yaml
var openAPIFiles embed.FS

type openAPISpec struct {
	doc  map[string]any
	json []byte
}

func loadOpenAPISpec(version string) (*openAPISpec, error) {
	names, err := fs.Glob(openAPIFiles, "openapi/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names) // 00-base.yaml first
	doc := map[string]any{}
	for _, name := range names {
		b, err := openAPIFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var part map[string]any
		if err := yaml.Unmarshal(b, &part); err != nil {
			return nil, fmt.Errorf("api: %s: %w", name, err)
		}
		if err := mergeSpec(doc, part, name); err != nil {
			return nil, err
		}
	}
	documentScopes(doc)
	if info, ok := doc["info"].(map[string]any); ok && version != "" {
		info["version"] = version
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("api: openapi: %w", err)
	}
	return &openAPISpec{doc: doc, json: b}, nil
}

// mergeSpec merges maps key by key; two files defining the same leaf is an error.
func mergeSpec(dst, src map[string]any, file string) error {
	for k, v := range src {
		existing, ok := dst[k]
		if !ok {
			dst[k] = v
			continue
		}
		em, ok1 := existing.(map[string]any)
		vm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("api: openapi: %s redefines %q", file, k)
		}
		if err := mergeSpec(em, vm, file); err != nil {
			return err
		}
	}
	return nil
}

// operations lists "METHOD /path" of every documented operation.
func (s *openAPISpec) operations() []string {
	var out []string
	paths, _ := s.doc["paths"].(map[string]any)
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		for method := range ops {
			switch method {
			case "get", "post", "put", "patch", "delete", "head", "options":
				out = append(out, fmt.Sprintf("%s %s", strings.ToUpper(method), p))
			}
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) openAPI(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, s.spec.json)
}
