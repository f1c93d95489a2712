package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestVersionPrefersTheStampedOne(t *testing.T) {
	if got := Version("v1.2.3"); got != "v1.2.3" {
		t.Errorf("Version(v1.2.3) = %q", got)
	}
	// A test binary carries no version; the checkout it runs in is a git work tree.
	if got := Version("dev"); got == "dev" || got == "" {
		t.Errorf("Version(dev) in a checkout = %q, want a commit", got)
	}
}

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"tagged module", debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{"commit, clean", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "9106483c0ffee1234567"}, {Key: "vcs.modified", Value: "false"}}}, "9106483c0ffe"},
		{"commit, modified", debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "9106483"}, {Key: "vcs.modified", Value: "true"}}}, "9106483-dirty"},
		{"nothing recorded", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromBuildInfo(&tc.bi); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
