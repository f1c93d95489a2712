package api

import (
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"
)

// docs serves a readable reference rendered on the server from the OpenAPI document, so it works
// without JavaScript or a CDN. Development only, as in the seed.
func (s *Server) docs(c echo.Context) error {
	var b strings.Builder
	if err := docsPage.Execute(&b, s.spec.docView()); err != nil {
		return fmt.Errorf("render docs: %w", err)
	}
	return c.HTML(http.StatusOK, b.String())
}

type docOperation struct {
	Method, Path, Summary, Description, Anchor string
	Public                                     bool
	Params                                     []docParam
	Body                                       string
	Responses                                  []docResponse
}

type docParam struct{ Name, In, Type, Description string }

type docResponse struct{ Status, Description, Schema string }

type docTag struct {
	Name, Description string
	Operations        []docOperation
}

type docView struct {
	Title, Version string
	Description    string
	Tags           []docTag
}

func (s *openAPISpec) docView() docView {
	info, _ := s.doc["info"].(map[string]any)
	v := docView{Title: str(info["title"]), Version: str(info["version"]), Description: str(info["description"])}
	byTag := map[string]*docTag{}
	var order []string
	for _, t := range list(s.doc["tags"]) {
		tm, _ := t.(map[string]any)
		name := str(tm["name"])
		byTag[name] = &docTag{Name: name, Description: str(tm["description"])}
		order = append(order, name)
	}
	paths, _ := s.doc["paths"].(map[string]any)
	pathNames := make([]string, 0, len(paths))
	for p := range paths {
		pathNames = append(pathNames, p)
	}
	sort.Strings(pathNames)
	for _, p := range pathNames {
		ops, _ := paths[p].(map[string]any)
		for _, method := range []string{"get", "post", "put", "patch", "delete"} {
			op, ok := ops[method].(map[string]any)
			if !ok {
				continue
			}
			d := docOperation{
				Method: strings.ToUpper(method), Path: p, Summary: str(op["summary"]),
				Description: str(op["description"]),
				Anchor:      strings.NewReplacer("/", "-", "{", "", "}", "").Replace(method + p),
			}
			if sec, ok := op["security"].([]any); ok && len(sec) == 0 {
				d.Public = true
			}
			for _, prm := range list(op["parameters"]) {
				pm := s.resolve(prm)
				d.Params = append(d.Params, docParam{
					Name: str(pm["name"]), In: str(pm["in"]), Description: str(pm["description"]),
					Type: s.schemaText(pm["schema"], 0),
				})
			}
			if rb := s.resolve(op["requestBody"]); rb != nil {
				if content, ok := rb["content"].(map[string]any); ok {
					if js, ok := content["application/json"].(map[string]any); ok {
						d.Body = s.schemaText(js["schema"], 0)
					}
				}
			}
			responses, _ := op["responses"].(map[string]any)
			codes := make([]string, 0, len(responses))
			for code := range responses {
				codes = append(codes, code)
			}
			sort.Strings(codes)
			for _, code := range codes {
				r := s.resolve(responses[code])
				dr := docResponse{Status: code, Description: str(r["description"])}
				if content, ok := r["content"].(map[string]any); ok {
					if js, ok := content["application/json"].(map[string]any); ok && code < "300" {
						dr.Schema = s.schemaText(js["schema"], 0)
					}
				}
				d.Responses = append(d.Responses, dr)
			}
			tag := "other"
			if tags := list(op["tags"]); len(tags) > 0 {
				tag = str(tags[0])
			}
			if byTag[tag] == nil {
				byTag[tag] = &docTag{Name: tag}
				order = append(order, tag)
			}
			byTag[tag].Operations = append(byTag[tag].Operations, d)
		}
	}
	for _, name := range order {
		if len(byTag[name].Operations) > 0 {
			v.Tags = append(v.Tags, *byTag[name])
		}
	}
	return v
}

// resolve follows a local $ref ("#/components/…").
func (s *openAPISpec) resolve(v any) map[string]any {
	m, _ := v.(map[string]any)
	for depth := 0; m != nil && depth < 10; depth++ {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var cur any = s.doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cm, _ := cur.(map[string]any)
			cur = cm[part]
		}
		m, _ = cur.(map[string]any)
	}
	return m
}

// schemaText renders a schema as indented pseudo-JSON for reading.
func (s *openAPISpec) schemaText(v any, indent int) string {
	m := s.resolve(v)
	if m == nil {
		return "any"
	}
	pad := strings.Repeat("  ", indent)
	if indent > 6 {
		return "{…}"
	}
	switch str(m["type"]) {
	case "object", "":
		props, _ := m["properties"].(map[string]any)
		if len(props) == 0 {
			if ap, ok := m["additionalProperties"]; ok {
				if _, isBool := ap.(bool); !isBool {
					return "{ <key>: " + s.schemaText(ap, indent+1) + " }"
				}
			}
			if str(m["type"]) == "" && m["oneOf"] == nil {
				return "any"
			}
			return "object"
		}
		required := map[string]bool{}
		for _, r := range list(m["required"]) {
			required[str(r)] = true
		}
		names := make([]string, 0, len(props))
		for n := range props {
			names = append(names, n)
		}
		sort.Strings(names)
		var b strings.Builder
		b.WriteString("{\n")
		for _, n := range names {
			mark := ""
			if required[n] {
				mark = " (required)"
			}
			fmt.Fprintf(&b, "%s  %s: %s%s\n", pad, n, s.schemaText(props[n], indent+1), mark)
		}
		b.WriteString(pad + "}")
		return b.String()
	case "array":
		return "[ " + s.schemaText(m["items"], indent) + " ]"
	}
	t := str(m["type"])
	if f := str(m["format"]); f != "" {
		t += " (" + f + ")"
	}
	if enum := list(m["enum"]); len(enum) > 0 {
		parts := make([]string, len(enum))
		for i, e := range enum {
			parts[i] = fmt.Sprint(e)
		}
		t += ": " + strings.Join(parts, " | ")
	}
	return t
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}} — API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#f7f8fa}
nav{position:fixed;top:0;bottom:0;width:270px;overflow:auto;background:#1d2330;color:#cfd6e4;padding:16px;box-sizing:border-box}
nav a{color:#cfd6e4;text-decoration:none;display:block;font-size:13px;padding:2px 0}
nav h3{color:#fff;font-size:13px;text-transform:uppercase;margin:16px 0 4px}
main{margin-left:270px;padding:24px 40px;max-width:1000px}
.op{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:14px 18px;margin:14px 0}
.m{display:inline-block;min-width:58px;font-weight:700;font-size:12px;color:#fff;border-radius:4px;padding:2px 6px;text-align:center;margin-right:8px}
.GET{background:#2f7ad1}.POST{background:#2e9d5b}.PUT{background:#c58a1b}.PATCH{background:#8a5cc7}.DELETE{background:#c8423d}
code,pre{font:13px/1.45 ui-monospace,monospace}pre{background:#f1f3f6;padding:10px;border-radius:4px;overflow:auto}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #e6e9ee;padding:4px 10px 4px 0;text-align:left;vertical-align:top}
.pub{font-size:11px;color:#666;border:1px solid #ccc;border-radius:3px;padding:0 4px;margin-left:6px}
</style></head><body>
<nav><strong>{{.Title}}</strong><br><small>version {{.Version}} · <a style="display:inline" href="/openapi.json">openapi.json</a></small>
{{range .Tags}}<h3>{{.Name}}</h3>{{range .Operations}}<a href="#{{.Anchor}}">{{.Method}} {{.Path}}</a>{{end}}{{end}}</nav>
<main><h1>{{.Title}}</h1><pre style="white-space:pre-wrap;background:none;padding:0;font:inherit">{{.Description}}</pre>
{{range .Tags}}<h2 id="tag-{{.Name}}">{{.Name}}</h2><p>{{.Description}}</p>
{{range .Operations}}<div class="op" id="{{.Anchor}}"><div><span class="m {{.Method}}">{{.Method}}</span><code>{{.Path}}</code>{{if .Public}}<span class="pub">no auth</span>{{end}}</div>
<p><strong>{{.Summary}}</strong></p>{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Params}}<h4>Parameters</h4><table>{{range .Params}}<tr><td><code>{{.Name}}</code></td><td>{{.In}}</td><td><code>{{.Type}}</code></td><td>{{.Description}}</td></tr>{{end}}</table>{{end}}
{{if .Body}}<h4>Request body</h4><pre>{{.Body}}</pre>{{end}}
<h4>Responses</h4><table>{{range .Responses}}<tr><td><strong>{{.Status}}</strong></td><td>{{.Description}}{{if .Schema}}<pre>{{.Schema}}</pre>{{end}}</td></tr>{{end}}</table>
</div>{{end}}{{end}}</main></body></html>`))
