package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pyairtable/automation-domain/config"
)

// apiClient calls the REST API and prints what it answers.
type apiClient struct {
	baseURL, key, token, output string
	out                         io.Writer
	http                        *http.Client
}

func (c *apiClient) init() error {
	if c.output != "text" && c.output != "json" {
		return fmt.Errorf("--output must be text or json, got %q", c.output)
	}
	u, err := url.Parse(c.baseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("--api must be an absolute URL, got %q", c.baseURL)
	}
	c.baseURL = strings.TrimRight(c.baseURL, "/")
	if c.key == "" {
		c.key = os.Getenv("AUTOMATION_API_KEY")
	}
	if c.key == "" {
		c.key = os.Getenv("INTERNAL_API_KEY")
	}
	if c.key == "" && c.token == "" {
		c.key = config.ReadDevAPIKey(envOr("DATA_DIR", "./data"))
	}
	c.http = &http.Client{Timeout: 90 * time.Second}
	return nil
}

// apiError is the service's error body.
type apiError struct {
	Status int
	Body   struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			Details   []struct{ Field, Message string }
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.Status, e.Body.Error.Code, e.Body.Error.Message)
	for _, d := range e.Body.Error.Details {
		fmt.Fprintf(&b, "\n  %s: %s", d.Field, d.Message)
	}
	if e.Body.Error.RequestID != "" {
		fmt.Fprintf(&b, "\n  (request id %s)", e.Body.Error.RequestID)
	}
	return b.String()
}

// call sends a request and decodes a 2xx JSON answer into out (when out is not nil). It returns
// the raw body too, for --output json.
func (c *apiClient) call(method, path string, body, out any, headers ...string) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.baseURL+path, rd)
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	} else if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, res.StatusCode, err
	}
	if res.StatusCode >= 300 && !(path == "/health/detailed" && res.StatusCode == 503) {
		e := &apiError{Status: res.StatusCode}
		if json.Unmarshal(raw, &e.Body) != nil || e.Body.Error.Code == "" {
			return raw, res.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, strings.TrimSpace(string(raw)))
		}
		return raw, res.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, res.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return raw, res.StatusCode, nil
}

// printJSON writes raw indented when --output json was asked for and reports whether it did.
func (c *apiClient) printJSON(raw []byte) bool {
	if c.output != "json" {
		return false
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		b.Reset()
		b.Write(raw)
	}
	b.WriteByte('\n')
	_, _ = c.out.Write(b.Bytes())
	return true
}

func (c *apiClient) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
}

var errUnhealthy = errors.New("the service reports a dependency down")

// showJSON prints the resource at path as indented JSON (the show commands).
func (c *apiClient) showJSON(path string) error {
	raw, _, err := c.call("GET", path, nil, nil)
	if err != nil {
		return err
	}
	c.output = "json"
	c.printJSON(raw)
	return nil
}

// listPages fetches path (whose query ends without a cursor) page by page: one page, or every
// page when all is set, following next_cursor.
func listPages[T any](c *apiClient, path string, all bool) ([]T, error) {
	var items []T
	cursor := ""
	for {
		var page struct {
			Items      []T    `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		p := path
		if cursor != "" {
			sep := "?"
			if strings.Contains(p, "?") {
				sep = "&"
			}
			p += sep + "cursor=" + url.QueryEscape(cursor)
		}
		if _, _, err := c.call("GET", p, nil, &page); err != nil {
			return nil, err
		}
		items = append(items, page.Items...)
		if !all || page.NextCursor == "" {
			return items, nil
		}
		cursor = page.NextCursor
	}
}
