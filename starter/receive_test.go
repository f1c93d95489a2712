package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe for the receiver's goroutines and the test's.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	put chan struct{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.put <- struct{}{}:
	default:
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startReceiver runs `starter receive` with args on a free port and returns its base URL, its
// output and its exit code (delivered once it stops).
func startReceiver(t *testing.T, args ...string) (string, *lockedBuffer, chan int) {
	t.Helper()
	out := &lockedBuffer{put: make(chan struct{}, 1)}
	errOut := &lockedBuffer{put: make(chan struct{}, 1)}
	code := make(chan int, 1)
	go func() { code <- run(append([]string{"receive", "--port", "0"}, args...), nil, out, errOut) }()
	addr := regexp.MustCompile(`listening on (http://\S+)`)
	for {
		if m := addr.FindStringSubmatch(errOut.String()); m != nil {
			return m[1], out, code
		}
		select {
		case <-errOut.put:
		case c := <-code:
			t.Fatalf("receive exited %d before listening: %s", c, errOut.String())
		}
	}
}

// The receiver prints each request (method, path, headers, body), answers --status, and stops
// after --count requests with exit 0.
func TestReceivePrintsRequestsAndStopsAfterCount(t *testing.T) {
	base, out, code := startReceiver(t, "--count", "2", "--status", "202")
	for _, body := range []string{`{"text": "1 rows, total 3"}`, `second`} {
		req, _ := http.NewRequest("POST", base+"/done?x=1", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Webhook-Id", "msg_1")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 202 || !strings.Contains(string(got), `"received": true`) {
			t.Errorf("answer %d %s", res.StatusCode, got)
		}
	}
	if c := <-code; c != 0 {
		t.Fatalf("exit %d: %s", c, out.String())
	}
	for _, want := range []string{
		"POST /done?x=1\n", "  Content-Type: application/json\n", "  Webhook-Id: msg_1\n",
		"{\"text\": \"1 rows, total 3\"}\n", "second\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// With -o json each request is one JSON line; a JSON body stays JSON.
func TestReceiveJSONLines(t *testing.T) {
	out := &lockedBuffer{put: make(chan struct{}, 1)}
	if c := run([]string{"receive", "--status", "42"}, nil, out, io.Discard); c != exitUsage {
		t.Errorf("--status 42: exit %d, want %d", c, exitUsage)
	}
	base, out, code := startReceiver(t, "-o", "json", "--count", "1")
	res, err := http.Post(base+"/hook", "application/json", strings.NewReader(`{"a": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d", c)
	}
	var line struct {
		Method, Path string
		Headers      map[string]string
		Body         map[string]any
	}
	if err := json.Unmarshal([]byte(out.String()), &line); err != nil || line.Method != "POST" || line.Path != "/hook" ||
		line.Headers["Content-Type"] != "application/json" || line.Body["a"] != float64(1) {
		t.Errorf("output %q (%v), want one JSON line with the request", out.String(), err)
	}
}
