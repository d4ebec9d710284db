package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.modified", Value: "true"}}}
	tagged := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}}
	tests := []struct {
		name     string
		ver, rev string
		bi       *debug.BuildInfo
		want     Info
	}{
		{"stamped by the Makefile", "v1.2.3-4-gabcdef", "abcdef0", vcs, Info{"v1.2.3-4-gabcdef", "abcdef0", "go1.26.8"}},
		{"VCS info of the toolchain", "", "", vcs, Info{"devel", "0123abc-dirty", "go1.26.8"}},
		{"go install module@version", "", "", tagged, Info{"v1.4.0", "unknown", "go1.26.8"}},
	}
	for _, tc := range tests {
		if got := resolve(tc.ver, tc.rev, tc.bi); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got := resolve("", "", nil); got.Version != "devel" || got.Commit != "unknown" || got.GoVersion == "" {
		t.Errorf("no build info: %+v", got)
	}
	if got := Get(); got.Version == "" || got.Commit == "" {
		t.Errorf("Get() = %+v", got)
	}
}
