package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/version"
)

func TestVersion(t *testing.T) {
	daemon := version.Info{Version: "v9.9.9", Commit: "feedbeef", GoVersion: "go1.26.8"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(api.Status{Version: daemon})
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	cli := version.Get().String()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"both", []string{"--api", strings.TrimPrefix(srv.URL, "http://"), "version"}, []string{"xdprouterctl  " + cli, "xdprouterd    " + daemon.String()}},
		{"daemon down", []string{"--api", dead, "version"}, []string{"xdprouterctl  " + cli, "xdprouterd    unknown: is xdprouterd running?"}},
		{"no config", []string{"--config", "/nonexistent/xdprouter.toml", "version"}, []string{"xdprouterctl  " + cli, "unknown: no daemon address"}},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != 0 {
			t.Errorf("%s: exit %d: %s", tc.name, code, stderr.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, stdout.String())
			}
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--json", "--api", strings.TrimPrefix(srv.URL, "http://"), "version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, stderr.String())
	}
	var r versionReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || r.Daemon == nil || *r.Daemon != daemon || r.CLI.Version == "" {
		t.Errorf("--json: %+v, %v:\n%s", r, err, stdout.String())
	}
}
