package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	// A port nothing listens on: commands that reach the API fail clearly.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"--api", dead, "lookup"}, 2, "wrong number of arguments"},
		{[]string{"--api", dead, "lookup", "not-an-ip"}, 1, `"not-an-ip" is not an IP address`},
		{[]string{"--api", dead, "routes", "10.0.0.0/33"}, 1, "neither a prefix nor an address"},
		{[]string{"--api", dead, "stats"}, 1, "is xdprouterd running?"},
		{[]string{"--config", "/nonexistent/xdprouter.toml", "stats"}, 2, "--config FILE or --api ADDR"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, code, tc.code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, stderr.String(), tc.want)
		}
	}
}
