package api

import (
	"strings"
	"testing"
)

// The definition routes need no Temporal for manual triggers: these run against the real store.
func TestWorkflowDefinitionRoutes(t *testing.T) {
	s := newTestServer(t, nil)
	auth := []string{"X-API-Key", testKey, "Content-Type", "application/json"}
	body := `{"name": "nightly", "trigger_type": "manual", "steps": [
		{"id": "fetch", "type": "http_request", "config": {"url": "https://example.com/{{ input.id }}"}},
		{"id": "shape", "type": "data_transform", "config": {"jq": ".steps.fetch.output.body"}}]}`
	r := s.do(t, "POST", "/api/v1/workflows", strings.NewReader(body), auth...)
	if r.StatusCode != 201 || r.Header.Get("Location") == "" {
		t.Fatalf("create: %d %s", r.StatusCode, r.body)
	}
	created := r.json(t)
	id := created["id"].(string)
	if created["version"] != 1.0 || created["enabled"] != true || len(created["steps"].([]any)) != 2 {
		t.Errorf("created %v", created)
	}
	upd := strings.Replace(body, `"nightly"`, `"nightly v2"`, 1)
	if r := s.do(t, "PUT", "/api/v1/workflows/"+id, strings.NewReader(upd), auth...); r.StatusCode != 200 || r.json(t)["version"] != 2.0 {
		t.Fatalf("update: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows/"+id+"/versions", nil, auth...); r.StatusCode != 200 || len(r.json(t)["items"].([]any)) != 2 {
		t.Errorf("versions: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows/"+id+"/versions/1", nil, auth...); r.json(t)["name"] != "nightly" {
		t.Errorf("version 1: %s", r.body)
	}
	if r := s.do(t, "GET", "/api/v1/workflows/"+id+"/versions/x", nil, auth...); r.StatusCode != 422 {
		t.Errorf("version x: %d", r.StatusCode)
	}
	if r := s.do(t, "GET", "/api/v1/workflows?name=nightly+v2", nil, auth...); len(r.json(t)["items"].([]any)) != 1 {
		t.Errorf("filter by name: %s", r.body)
	}
	if r := s.do(t, "POST", "/api/v1/workflows/"+id+"/pause", nil, auth...); r.StatusCode != 409 || r.errorCode(t) != "conflict" {
		t.Errorf("pause a manual workflow: %d %s", r.StatusCode, r.body)
	}

	// Every problem with its path, 422; malformed JSON 400; wrong types 422.
	r = s.do(t, "POST", "/api/v1/workflows", strings.NewReader(`{"name": "x", "trigger_type": "manual", "steps": [
		{"id": "a", "type": "webhook", "config": {"event_type": "x.y"}},
		{"id": "b", "type": "sub_workflow", "config": {"workflow_id": "missing"}}]}`), auth...)
	if r.StatusCode != 422 || !strings.Contains(string(r.body), `"steps[0].type"`) ||
		!strings.Contains(string(r.body), "not available") || !strings.Contains(string(r.body), `workflow \"missing\" does not exist`) {
		t.Errorf("invalid definition: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "POST", "/api/v1/workflows", strings.NewReader(`{"name": `), auth...); r.StatusCode != 400 {
		t.Errorf("malformed: %d", r.StatusCode)
	}
	if r := s.do(t, "POST", "/api/v1/workflows", strings.NewReader(`{"name": "x", "steps": "all"}`), auth...); r.StatusCode != 422 {
		t.Errorf("steps of the wrong type: %d %s", r.StatusCode, r.body)
	}
	if r := s.do(t, "POST", "/api/v1/workflows/"+id+"/execute", strings.NewReader(`{"priority": "urgent"}`), auth...); r.StatusCode != 422 ||
		!strings.Contains(string(r.body), `"priority"`) {
		t.Errorf("bad priority: %d %s", r.StatusCode, r.body)
	}

	// Executions: filters are checked; unknown ids are 404.
	if r := s.do(t, "GET", "/api/v1/executions?status=sleeping&created_after=yesterday", nil, auth...); r.StatusCode != 422 ||
		!strings.Contains(string(r.body), "created_after") || !strings.Contains(string(r.body), `"status"`) {
		t.Errorf("bad filters: %d %s", r.StatusCode, r.body)
	}
	for _, path := range []string{"/api/v1/executions/nope", "/api/v1/workflows/nope"} {
		if r := s.do(t, "GET", path, nil, auth...); r.StatusCode != 404 || r.errorCode(t) != "not_found" {
			t.Errorf("%s: %d", path, r.StatusCode)
		}
	}
	if r := s.do(t, "POST", "/api/v1/executions/nope/signal/go", nil, auth...); r.StatusCode != 404 {
		t.Errorf("signal an unknown execution: %d", r.StatusCode)
	}

	if r := s.do(t, "DELETE", "/api/v1/workflows/"+id, nil, auth...); r.StatusCode != 204 {
		t.Errorf("delete: %d", r.StatusCode)
	}
	if r := s.do(t, "POST", "/api/v1/workflows/"+id+"/execute", nil, auth...); r.StatusCode != 404 {
		t.Errorf("execute a deleted workflow: %d", r.StatusCode)
	}
	if r := s.do(t, "GET", "/api/v1/workflows/"+id+"/versions/2", nil, auth...); r.StatusCode != 200 {
		t.Errorf("a deleted workflow's version: %d", r.StatusCode)
	}
}
