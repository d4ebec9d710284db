package main

import (
	"context"
	"fmt"
	"io"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/version"
)

// versionReport is the answer of `xdprouterctl version`: this CLI's build
// and the running daemon's (from its status), or why it is unknown.
type versionReport struct {
	CLI         version.Info  `json:"xdprouterctl"`
	Daemon      *version.Info `json:"xdprouterd,omitempty"`
	DaemonError string        `json:"xdprouterd_error,omitempty"`
}

func init() {
	commands["version"] = command{0, 0, runVersion}
}

// runVersion never fails: without a daemon (or a config naming it) it
// still prints the CLI's version.
func runVersion(ctx context.Context, addr string, _ []string) (any, error) {
	r := &versionReport{CLI: version.Get()}
	if addr == "" {
		r.DaemonError = "no daemon address (use --config FILE or --api ADDR)"
		return r, nil
	}
	var s api.Status
	switch err := api.Get(ctx, addr, "/api/v1/status", nil, &s); {
	case err != nil:
		r.DaemonError = err.Error()
	case s.Version.Version == "":
		r.DaemonError = "the daemon does not report its version (older than the version command)"
	default:
		r.Daemon = &s.Version
	}
	return r, nil
}

func (r *versionReport) printText(w io.Writer) {
	fmt.Fprintf(w, "xdprouterctl\t%s\n", r.CLI)
	if r.Daemon != nil {
		fmt.Fprintf(w, "xdprouterd\t%s\n", *r.Daemon)
	} else {
		fmt.Fprintf(w, "xdprouterd\tunknown: %s\n", r.DaemonError)
	}
}
