// Package buildinfo names the version a binary reports (the start-up log, /info, /health,
// `starter version`, the metrics' service.version).
package buildinfo

import (
	"context"
	"os/exec"
	"runtime/debug"
	"strings"
	"time"
)

// Version returns stamped (set with -ldflags "-X main.version=…" by make and the Dockerfile) when
// it is set, else what the Go toolchain recorded: the module version (a tag, or a pseudo-version
// from the commit), else the commit itself. `go run` records neither, so from a checkout it asks
// git; "dev" only when nothing knows.
func Version(stamped string) string {
	if stamped != "" && stamped != "dev" {
		return stamped
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := fromBuildInfo(bi); v != "" {
			return v
		}
	}
	if v := fromGit(); v != "" {
		return v
	}
	return "dev"
}

func fromBuildInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision == "" {
		return ""
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if modified == "true" {
		revision += "-dirty"
	}
	return revision
}

// fromGit describes the checkout the process runs in, as `make build` stamps it.
func fromGit() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
