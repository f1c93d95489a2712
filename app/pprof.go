package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
)

// pprofHost is where PPROF_PORT listens: the loopback interface only, whatever HOST says (a
// profile shows the process's internals; reach it with an SSH tunnel or kubectl port-forward).
const pprofHost = "127.0.0.1"

// pprofHandler serves the runtime profiles under /debug/pprof/ (CPU: /debug/pprof/profile?seconds=30).
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// servePprof serves the profiles on 127.0.0.1:port (PPROF_PORT) until ctx ends; port 0 serves
// nothing (the default).
func servePprof(ctx context.Context, g *errgroup.Group, port int, log *slog.Logger) error {
	if port == 0 {
		return nil
	}
	addr := net.JoinHostPort(pprofHost, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof: listen on %s (PPROF_PORT): %w", addr, err)
	}
	srv := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("pprof: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		return srv.Close()
	})
	log.Info("profiles served (PPROF_PORT)", "url", fmt.Sprintf("http://%s/debug/pprof/", addr))
	return nil
}
