package api

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/bpf"
)

func TestParseFlow(t *testing.T) {
	ifx := func(name string) (int, bool) {
		if name == "eth1" {
			return 7, true
		}
		return 0, false
	}
	a := netip.MustParseAddr
	for _, c := range []struct {
		q    string
		want bpf.Flow
		err  string
	}{
		{q: "addr=10.0.0.1", want: bpf.Flow{Dst: a("10.0.0.1")}},
		{q: "addr=10.0.0.1&from=192.0.2.1&in=eth1&proto=udp&sport=53&dport=1024&tos=0x10",
			want: bpf.Flow{Dst: a("10.0.0.1"), Src: a("192.0.2.1"), Iif: 7, Proto: 17, Sport: 53, Dport: 1024, Tos: 0x10}},
		{q: "addr=2001:db8::1&in=3&proto=58&tos=184", want: bpf.Flow{Dst: a("2001:db8::1"), Iif: 3, Proto: 58, Tos: 184}},
		{q: "addr=10.0.0.1&from=2001:db8::1", err: "different families"},
		{q: "addr=10.0.0.1&in=eth9", err: `in: no interface "eth9"`},
		{q: "addr=10.0.0.1&proto=gre", err: "proto:"},
		{q: "addr=10.0.0.1&dport=70000", err: "dport:"},
		{q: "addr=10.0.0.1&tos=256", err: "tos:"},
		{q: "addr=nope", err: "addr:"},
	} {
		q, err := url.ParseQuery(c.q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseFlow(q, ifx)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.q, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.q, got, err, c.want)
		}
	}
}
