// Package version tells which xdprouter this binary is: the version and
// commit stamped by the Makefile (-ldflags -X, since the build uses
// -buildvcs=false), else what the Go toolchain recorded (module version,
// vcs.revision), else "devel".
package version

import (
	"runtime"
	"runtime/debug"
)

// Set by the linker: go build -ldflags "-X
// github.com/xdprouter/xdprouter/version.version=v1.2.3 -X ...commit=abc".
var (
	version string
	commit  string
)

// Info is a build's identity.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// String is "VERSION (commit COMMIT, GOVERSION)".
func (i Info) String() string {
	return i.Version + " (commit " + i.Commit + ", " + i.GoVersion + ")"
}

// Get returns this binary's identity.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, bi)
}

// resolve prefers the stamped values, then the build info, then "devel"
// and "unknown".
func resolve(ver, rev string, bi *debug.BuildInfo) Info {
	i := Info{Version: ver, Commit: rev, GoVersion: runtime.Version()}
	if bi != nil {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		if i.Commit == "" {
			var modified bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					i.Commit = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if i.Commit != "" && modified {
				i.Commit += "-dirty"
			}
		}
		if bi.GoVersion != "" {
			i.GoVersion = bi.GoVersion
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}
