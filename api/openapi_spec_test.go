package api

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/pyairtable/automation-domain/config"
)

// servedSpec loads /openapi.json exactly as the server's handler serves it.
func servedSpec(t *testing.T, s *testServer) *openapi3.T {
	t.Helper()
	r := s.do(t, "GET", "/openapi.json", nil)
	if r.StatusCode != 200 {
		t.Fatalf("/openapi.json: %d", r.StatusCode)
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatalf("load /openapi.json: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	s := newTestServer(t, nil)
	doc := servedSpec(t, s)
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("/openapi.json is not valid OpenAPI 3: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: %q", doc.OpenAPI)
	}
}

func TestOpenAPIOperationsAreComplete(t *testing.T) {
	doc := servedSpec(t, newTestServer(t, nil))
	declared := map[string]bool{}
	for _, tag := range doc.Tags {
		if strings.TrimSpace(tag.Description) == "" {
			t.Errorf("tag %q has no description", tag.Name)
		}
		declared[tag.Name] = true
	}
	camel := regexp.MustCompile(`^[a-z]+[A-Za-z0-9]*$`)
	ids := map[string]string{}
	used := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			switch {
			case op.OperationID == "":
				t.Errorf("%s has no operationId", name)
			case !camel.MatchString(op.OperationID):
				t.Errorf("%s: operationId %q is not camelCase", name, op.OperationID)
			case ids[op.OperationID] != "":
				t.Errorf("%s: operationId %q is also used by %s", name, op.OperationID, ids[op.OperationID])
			}
			ids[op.OperationID] = name
			if op.Summary == "" {
				t.Errorf("%s has no summary", name)
			}
			if len(op.Tags) == 0 {
				t.Errorf("%s has no tag", name)
			}
			for _, tag := range op.Tags {
				used[tag] = true
				if !declared[tag] {
					t.Errorf("%s: tag %q is not declared at the top level", name, tag)
				}
			}
			has4xx := false
			for code := range op.Responses.Map() {
				if len(code) == 3 && code[0] == '4' || code == "4XX" {
					has4xx = true
				}
			}
			if !has4xx {
				t.Errorf("%s documents no 4xx response", name)
			}
			// Every /api/v1 route is rate limited, and every one that needs credentials answers
			// 401 without them.
			if strings.HasPrefix(path, "/api/v1/") {
				if op.Responses.Value("429") == nil {
					t.Errorf("%s does not document 429", name)
				}
				public := op.Security != nil && len(*op.Security) == 0
				if !public && op.Responses.Value("401") == nil {
					t.Errorf("%s does not document 401", name)
				}
			}
		}
	}
	for tag := range declared {
		if !used[tag] {
			t.Errorf("tag %q is declared but no operation uses it", tag)
		}
	}
}

// The served document and the Echo route table name the same operations.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	s := newTestServer(t, nil)
	doc := servedSpec(t, s)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	param := regexp.MustCompile(`:([a-zA-Z_]+)`)
	served := map[string]bool{}
	for _, r := range s.echo.Routes() {
		if r.Method == echo.RouteNotFound || strings.HasSuffix(r.Path, "*") {
			continue
		}
		served[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	var missing, extra []string
	for op := range served {
		if !documented[op] {
			missing = append(missing, op)
		}
	}
	for op := range documented {
		if !served[op] {
			extra = append(extra, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes missing from /openapi.json: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("/openapi.json documents routes that are not served: %v", extra)
	}
}

// A partial update is valid for a generated client: PATCH's body requires nothing.
func TestOpenAPIWebhookPatchBodyIsPartial(t *testing.T) {
	doc := servedSpec(t, newTestServer(t, nil))
	item := doc.Paths.Find("/api/v1/webhooks/endpoints/{id}")
	if item == nil || item.Patch == nil || item.Patch.RequestBody == nil {
		t.Fatal("PATCH /api/v1/webhooks/endpoints/{id} has no request body")
	}
	schema := item.Patch.RequestBody.Value.Content.Get("application/json").Schema.Value
	if err := schema.VisitJSON(map[string]any{"enabled": true}); err != nil {
		t.Errorf(`{"enabled": true} does not validate: %v`, err)
	}
	if err := schema.VisitJSON(map[string]any{"enabled": "yes"}); err == nil {
		t.Error(`{"enabled": "yes"} validates`)
	}
}

func TestDocsAssets(t *testing.T) {
	s := newTestServer(t, nil)
	page := s.do(t, "GET", "/docs", nil)
	if page.StatusCode != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %s", page.StatusCode, page.Header.Get("Content-Type"))
	}
	csp := page.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "http") || strings.Contains(csp, "unsafe-") {
		t.Errorf("/docs CSP: %q", csp)
	}
	// Every script and style sheet the page names is served from here.
	ref := regexp.MustCompile(`(?:src|href)="(docs/[^"]+)"`)
	refs := ref.FindAllStringSubmatch(string(page.body), -1)
	if len(refs) < 3 {
		t.Fatalf("the page names %d assets: %s", len(refs), page.body)
	}
	for _, m := range refs {
		r := s.do(t, "GET", "/"+m[1], nil)
		if r.StatusCode != 200 || len(r.body) == 0 || r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("/%s: %d (%d bytes)", m[1], r.StatusCode, len(r.body))
		}
		if strings.HasSuffix(m[1], ".js") && !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("/%s: Content-Type %q", m[1], r.Header.Get("Content-Type"))
		}
		if etag := r.Header.Get("ETag"); etag == "" {
			t.Errorf("/%s has no ETag", m[1])
		} else if again := s.do(t, "GET", "/"+m[1], nil, "If-None-Match", etag); again.StatusCode != 304 {
			t.Errorf("/%s with its ETag: %d, want 304", m[1], again.StatusCode)
		}
	}
	if r := s.do(t, "GET", "/docs/LICENSE", nil); r.StatusCode != 200 || !strings.Contains(string(r.body), "Apache License") {
		t.Errorf("/docs/LICENSE: %d", r.StatusCode)
	}
	for _, p := range []string{"/docs/nope.js", "/docs/index.html", "/docs/README.md", "/docs/..%2fopenapi.go"} {
		if r := s.do(t, "GET", p, nil); r.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, r.StatusCode)
		}
	}
	prod := newTestServer(t, func(c *config.Config) { c.Env = config.EnvProduction })
	for _, p := range []string{"/docs", "/docs/swagger-ui-bundle.js"} {
		if r := prod.do(t, "GET", p, nil); r.StatusCode != 404 {
			t.Errorf("%s in production: %d", p, r.StatusCode)
		}
	}
}

// The request examples of the document are bodies the server accepts: no 400 or 422 for any
// of them (Temporal is down in these tests, so a call that needs it may answer 503).
func TestOpenAPIRequestExamplesAreAccepted(t *testing.T) {
	s := newTestServer(t, nil)
	doc := servedSpec(t, s)
	tried := 0
	for path, item := range doc.Paths.Map() {
		if strings.Contains(path, "{") || !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		for method, op := range item.Operations() {
			if op.RequestBody == nil || op.RequestBody.Value == nil {
				continue
			}
			media := op.RequestBody.Value.Content.Get("application/json")
			if media == nil || media.Example == nil {
				continue
			}
			body, err := json.Marshal(media.Example)
			if err != nil {
				t.Fatal(err)
			}
			tried++
			r := s.do(t, method, path, bytes.NewReader(body), "X-API-Key", testKey, "Content-Type", "application/json")
			if r.StatusCode == 400 || r.StatusCode == 422 && !onlyUnavailableActions(t, r) {
				t.Errorf("%s %s refuses its own example (%d): %s", method, path, r.StatusCode, r.body)
			}
		}
	}
	if tried < 4 {
		t.Errorf("only %d request examples tried", tried)
	}
}

// onlyUnavailableActions reports whether every problem of a 422 is an action type that the test
// server does not wire (it has no notification module): the example itself is valid.
func onlyUnavailableActions(t *testing.T, r response) bool {
	t.Helper()
	var body struct {
		Error struct {
			Details []struct{ Field, Message string }
		}
	}
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Error.Details) == 0 {
		return false
	}
	for _, d := range body.Error.Details {
		if !strings.Contains(d.Message, "actions are not available") {
			return false
		}
	}
	return true
}
