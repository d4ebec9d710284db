package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/bypass"
	xsync "github.com/xdprouter/xdprouter/sync"
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

func TestStatusBypass(t *testing.T) {
	var b bytes.Buffer
	printText(&b, &api.Status{})
	if strings.Contains(b.String(), "not honoured") {
		t.Errorf("section without findings:\n%s", b.String())
	}
	b.Reset()
	printText(&b, &api.Status{Bypass: []bypass.Finding{
		{Kind: bypass.KindNFTForward, Detail: "nftables chain inet t fw (hook forward, 1 rule)", Count: 1},
		{Kind: bypass.KindIPTForward, Detail: "iptables (nf_tables) table filter chain FORWARD (1 rule)", Count: 1},
		{Kind: bypass.KindRPFilter, Detail: "rp_filter=1 (strict) on eth1 (all=0, eth1=1)", Count: 1},
	}})
	out := b.String()
	for _, s := range []string{"not honoured by XDP", "nftables chain inet t fw", "rp_filter=1 (strict) on eth1", `[[filter]]`, `urpf = "strict"`} {
		if !strings.Contains(out, s) {
			t.Errorf("status lacks %q:\n%s", s, out)
		}
	}
	if n := strings.Count(out, "[[filter]] rules"); n != 1 {
		t.Errorf("the filter hint %d times, want once:\n%s", n, out)
	}
}

func TestStatusStationsAndRoutesRPKI(t *testing.T) {
	var b bytes.Buffer
	printText(&b, &api.Status{
		RPKI: []bgp.RPKIStatus{{Address: netip.MustParseAddr("192.0.2.10"), Port: 8282, Up: true, Serial: 7, VRPs4: 3, VRPs6: 2}},
		BMP:  []bgp.BMPStatus{{Address: netip.MustParseAddr("2001:db8::20"), Port: 11019}},
	})
	out := b.String()
	for _, s := range []string{"RPKI CACHE", "192.0.2.10:8282\tup\t7\t3\t2", "BMP STATION", "[2001:db8::20]:11019\tdown"} {
		if !strings.Contains(out, s) {
			t.Errorf("status lacks %q:\n%s", s, out)
		}
	}
	b.Reset()
	printText(&b, &api.Status{})
	if strings.Contains(b.String(), "RPKI") || strings.Contains(b.String(), "BMP") {
		t.Errorf("sections without caches or stations:\n%s", b.String())
	}

	routes := []xsync.RouteInfo{
		{Prefix: netip.MustParsePrefix("8.8.8.0/24"), Source: "bgp", Kind: "unicast", RPKI: "valid"},
		{Prefix: netip.MustParsePrefix("10.0.1.0/24"), Source: "kernel", Kind: "unicast"},
	}
	b.Reset()
	printText(&b, routes)
	out = b.String()
	if !strings.Contains(out, "\tKERNEL\tRPKI\tNOTE") || !strings.Contains(out, "\tvalid\t") || !strings.Contains(out, "(own)\t-\t") {
		t.Errorf("routes with RPKI states:\n%s", out)
	}
	b.Reset()
	routes[0].RPKI = ""
	printText(&b, routes)
	if strings.Contains(b.String(), "RPKI") {
		t.Errorf("an RPKI column without states:\n%s", b.String())
	}
}
