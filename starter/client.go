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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pyairtable/automation-domain/config"
)

// apiClient calls the REST API and prints what it answers.
type apiClient struct {
	baseURL, key, token, output string
	out, errOut                 io.Writer
	http                        *http.Client
	// ran is set once a command's own code runs: an error before it is a usage error.
	ran bool
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

// listFlags are the paging flags of every list command.
type listFlags struct {
	limit  int
	cursor string
	all    bool
}

func (l *listFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&l.limit, "limit", 50, "page size (1-200)")
	cmd.Flags().StringVar(&l.cursor, "cursor", "", "start after this cursor (the next_cursor of a previous page)")
	cmd.Flags().BoolVar(&l.all, "all", false, "follow next_cursor through every page")
}

// list fetches path (with its filters as query) page by page: one page from --cursor, or with
// --all every page after it. It returns the items as the API sent them and the cursor of the
// page after the last one fetched ("" at the end).
func (c *apiClient) list(path string, l *listFlags) ([]json.RawMessage, string, error) {
	var items []json.RawMessage
	cursor := l.cursor
	for {
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor string            `json:"next_cursor"`
			HasMore    bool              `json:"has_more"`
		}
		q := url.Values{}
		q.Set("limit", strconv.Itoa(l.limit))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		if _, _, err := c.call("GET", path+sep+q.Encode(), nil, &page); err != nil {
			return nil, "", err
		}
		items = append(items, page.Items...)
		next := page.NextCursor
		if !page.HasMore {
			next = ""
		}
		if !l.all || next == "" {
			return items, next, nil
		}
		cursor = next
	}
}

// printList writes a list in the API's page shape when --output json was asked for and reports
// whether it did; in text it only tells, on stderr, how to get the next page.
func (c *apiClient) printList(items []json.RawMessage, next string) bool {
	if c.output != "json" {
		if next != "" {
			fmt.Fprintf(c.errOut, "more: --cursor %s (or --all)\n", next)
		}
		return false
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	raw, _ := json.Marshal(map[string]any{"items": items, "next_cursor": next, "has_more": next != ""})
	c.printJSON(raw)
	return true
}

// decodeItems decodes listed items into the rows a table shows.
func decodeItems[T any](items []json.RawMessage) ([]T, error) {
	rows := make([]T, len(items))
	for i, raw := range items {
		if err := json.Unmarshal(raw, &rows[i]); err != nil {
			return nil, fmt.Errorf("decode item %d: %w", i, err)
		}
	}
	return rows, nil
}

// readJSONFile reads a JSON document from a file, or standard input for "-".
func readJSONFile(cmd *cobra.Command, path string) (json.RawMessage, error) {
	if path == "" {
		return nil, usagef("-f FILE is required (- reads standard input)")
	}
	var (
		b   []byte
		err error
	)
	if path == "-" {
		b, err = io.ReadAll(cmd.InOrStdin())
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !json.Valid(b) {
		name := path
		if path == "-" {
			name = "standard input"
		}
		return nil, fmt.Errorf("%s is not valid JSON", name)
	}
	return b, nil
}
