package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/pyairtable/automation-domain/internal/testenv"
)

func TestPprofPort(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	if err := servePprof(gctx, g, 0, log); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	if err := servePprof(gctx, g, port, log); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Errorf("/debug/pprof/: %d %s", res.StatusCode, body)
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", port)); err == nil {
		t.Error("still served after the context ended")
	}
}
