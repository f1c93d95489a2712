package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// receiveCmd is a local HTTP receiver to try webhooks and http_request steps against: it prints
// every request it gets and answers with --status.
func receiveCmd(c *apiClient) *cobra.Command {
	var (
		host                string
		port, status, count int
	)
	cmd := &cobra.Command{
		Use:   "receive [--port 9999]",
		Short: "Run a local HTTP receiver that prints every request it gets (to try webhooks and http_request steps)",
		Long: "Listens on --host:--port and prints each request (method, path, headers, body; with -o json one JSON object a line),\n" +
			"answering --status with {\"received\": true}. It stops after --count requests (0: never) or on Ctrl-C.\n" +
			"The service refuses loopback destinations unless WEBHOOK_ALLOWED_CIDRS admits them (127.0.0.0/8).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if status < 100 || status > 599 {
				return usagef("--status must be an HTTP status (100–599), got %d", status)
			}
			l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("receive: %w", err)
			}
			r := &receiver{out: c.out, asJSON: c.output == "json", status: status, count: count,
				maxBody: 1 << 20, done: make(chan struct{})}
			// On stderr, so that -o json's standard output is JSON lines only.
			fmt.Fprintf(c.errOut, "listening on http://%s (Ctrl-C stops)\n", l.Addr())
			return r.serve(cmd.Context(), l)
		},
	}
	cmd.Flags().StringVar(&host, "host", "127.0.0.1", "address to listen on")
	cmd.Flags().IntVar(&port, "port", 9999, "port to listen on (0: any free port, printed)")
	cmd.Flags().IntVar(&status, "status", http.StatusOK, "status to answer every request with")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many requests (0: run until stopped)")
	return cmd
}

// receiver prints the requests it serves.
type receiver struct {
	out     io.Writer
	asJSON  bool
	status  int
	count   int
	maxBody int64

	mu   sync.Mutex
	seen int
	done chan struct{} // closed after count requests
}

func (r *receiver) serve(ctx context.Context, l net.Listener) error {
	if ctx == nil {
		ctx = context.Background()
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("receive: %w", err)
	case <-ctx.Done():
	case <-r.done:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("receive: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// ServeHTTP prints the request and answers it.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.maxBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	r.mu.Lock()
	if r.count > 0 && r.seen >= r.count {
		r.mu.Unlock()
		http.Error(w, "the receiver is stopping", http.StatusServiceUnavailable)
		return
	}
	r.seen++
	r.print(req, body)
	last := r.count > 0 && r.seen == r.count
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	_, _ = io.WriteString(w, `{"received": true}`+"\n")
	if last {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		close(r.done)
	}
}

func (r *receiver) print(req *http.Request, body []byte) {
	path := req.URL.RequestURI()
	if r.asJSON {
		headers := map[string]string{}
		for k, v := range req.Header {
			headers[k] = strings.Join(v, ", ")
		}
		line := map[string]any{"method": req.Method, "path": path, "headers": headers, "body": string(body)}
		if json.Valid(body) && len(body) > 0 {
			line["body"] = json.RawMessage(body)
		}
		b, _ := json.Marshal(line)
		fmt.Fprintln(r.out, string(b))
		return
	}
	fmt.Fprintf(r.out, "%s %s\n", req.Method, path)
	names := make([]string, 0, len(req.Header))
	for k := range req.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(r.out, "  %s: %s\n", k, strings.Join(req.Header[k], ", "))
	}
	if len(body) > 0 {
		fmt.Fprintf(r.out, "%s\n", body)
	}
	fmt.Fprintln(r.out)
}
