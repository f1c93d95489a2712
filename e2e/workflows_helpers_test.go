package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers for the workflow engine's end-to-end tests.

type stepDetail struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	Status     string     `json:"status"`
	Attempts   int        `json:"attempts"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Output     any        `json:"output"`
	Error      string     `json:"error"`
	WaitingFor string     `json:"waiting_for"`
}

type executionDetail struct {
	ID                 string         `json:"id"`
	WorkflowID         string         `json:"workflow_id"`
	Version            int            `json:"version"`
	Status             string         `json:"status"`
	Priority           string         `json:"priority"`
	TriggeredBy        string         `json:"triggered_by"`
	Error              string         `json:"error"`
	Output             map[string]any `json:"output"`
	RetryOf            string         `json:"retry_of"`
	TemporalWorkflowID string         `json:"temporal_workflow_id"`
	TemporalRunID      string         `json:"temporal_run_id"`
	TemporalURL        string         `json:"temporal_url"`
	StartedAt          *time.Time     `json:"started_at"`
	FinishedAt         *time.Time     `json:"finished_at"`
	Live               bool           `json:"live"`
	Steps              []stepDetail   `json:"steps"`
}

func (e executionDetail) step(t *testing.T, id string) stepDetail {
	t.Helper()
	for _, s := range e.Steps {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("execution %s has no step %s: %+v", e.ID, id, e.Steps)
	return stepDetail{}
}

// createWorkflow posts a definition and returns its id.
func createWorkflow(t *testing.T, c *call, body string) string {
	t.Helper()
	r := c.post("/api/v1/workflows", body)
	if r.Status != 201 {
		t.Fatalf("create workflow: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["id"].(string)
}

// execute starts an execution and returns its id.
func execute(t *testing.T, c *call, workflowID string, body any, headers ...string) string {
	t.Helper()
	r := c.post("/api/v1/workflows/"+workflowID+"/execute", body, headers...)
	if r.Status != 202 {
		t.Fatalf("execute %s: %d %s", workflowID, r.Status, r.Body)
	}
	return r.JSON(t)["id"].(string)
}

func getExecution(t *testing.T, c *call, id string) executionDetail {
	t.Helper()
	r := c.get("/api/v1/executions/" + id)
	if r.Status != 200 {
		t.Fatalf("get execution %s: %d %s", id, r.Status, r.Body)
	}
	var e executionDetail
	r.Decode(t, &e)
	return e
}

// waitFinished polls an execution until it has a final status.
func waitFinished(t *testing.T, c *call, id string, timeout time.Duration) executionDetail {
	t.Helper()
	var e executionDetail
	eventually(t, timeout, "execution "+id+" to finish", func() bool {
		e = getExecution(t, c, id)
		switch e.Status {
		case "completed", "failed", "cancelled", "terminated", "timed_out":
			return true
		}
		return false
	})
	return e
}

// recorder is an HTTP receiver that counts requests per path, answers with queued statuses and
// can hold each request for a while.
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	hits     map[string]int
	bodies   map[string][]string
	spans    map[string][2]time.Time
	statuses map[string][]int
	delay    map[string]time.Duration
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{hits: map[string]int{}, bodies: map[string][]string{}, spans: map[string][2]time.Time{},
		statuses: map[string][]int{}, delay: map[string]time.Duration{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		p := req.URL.Path
		r.hits[p]++
		n := r.hits[p]
		r.bodies[p] = append(r.bodies[p], string(b))
		status := 200
		if q := r.statuses[p]; len(q) > 0 {
			status, r.statuses[p] = q[0], q[1:]
		}
		d := r.delay[p]
		r.mu.Unlock()
		time.Sleep(d)
		r.mu.Lock()
		r.spans[p] = [2]time.Time{start, time.Now()}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"path": %q, "n": %d}`, p, n)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

func (r *recorder) body(path string, i int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.bodies[path]) {
		return ""
	}
	return r.bodies[path][i]
}

func (r *recorder) span(path string) [2]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spans[path]
}

func (r *recorder) answer(path string, statuses ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses[path] = statuses
}

func (r *recorder) hold(path string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay[path] = d
}

// problems returns the 422 details as field → message.
func problems(t *testing.T, r reply) map[string]string {
	t.Helper()
	if r.Status != 422 {
		t.Fatalf("want 422, got %d %s", r.Status, r.Body)
	}
	var body struct {
		Error struct {
			Details []struct{ Field, Message string } `json:"details"`
		} `json:"error"`
	}
	r.Decode(t, &body)
	out := map[string]string{}
	for _, d := range body.Error.Details {
		out[d.Field] += d.Message + "; "
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
