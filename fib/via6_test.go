package fib

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

// TestIPv4ViaIPv6 installs IPv4 routes through IPv6 link-local gateways
// (RFC 8950) with their next hops, multipath, and by a nexthop object;
// reads them back as unicast routes with IPv6 gateways (not kernel-only);
// and checks that RouteGet reports the IPv6 gateway.
func TestIPv4ViaIPv6(t *testing.T) {
	inLab(t, func(l *lab.Lab, ifindex int) {
		tbl, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Close()
		ll1, ll2 := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2")
		noErrs(t, "nexthop", tbl.ApplyNexthops([]route.NexthopChange{single(21, "fe80::2", ifindex)}))
		uni := func(p string, nhs ...route.NextHop) route.Route {
			return route.Route{Prefix: netip.MustParsePrefix(p), Kind: route.Unicast, Metric: 20, NextHops: nhs}
		}
		noErrs(t, "route", tbl.Apply([]route.Change{
			{Route: uni("198.51.100.0/24", route.NextHop{Gateway: ll1, Ifindex: ifindex})},
			{Route: uni("198.51.101.0/24", route.NextHop{Gateway: netip.MustParseAddr("10.99.0.2"), Ifindex: ifindex},
				route.NextHop{Gateway: ll2, Ifindex: ifindex})},
			{Route: byNHID("198.51.102.0/24", 21)},
		}))
		out, err := l.Output("r", "ip", "route", "show", "198.51.100.0/24")
		if err != nil || !strings.Contains(out, "via inet6 fe80::1 dev v0") {
			t.Errorf("ip route: %q %v, want via inet6 fe80::1", out, err)
		}
		got := ours(t)
		for p, w := range map[string]string{
			"198.51.100.0/24": fmt.Sprintf("unicast 0 [fe80::1@%d]", ifindex),
			"198.51.101.0/24": fmt.Sprintf("unicast 0 [10.99.0.2@%[1]d fe80::2@%[1]d]", ifindex),
			"198.51.102.0/24": fmt.Sprintf("unicast 21 [fe80::2@%d]", ifindex),
		} {
			r := got[p]
			if g := fmt.Sprintf("%s %d %v", r.Kind, r.NHID, r.NextHops); g != w {
				t.Errorf("%s read back as %s, want %s", p, g, w)
			}
		}
		if err := l.Do("r", func() error {
			for dst, gw := range map[string]netip.Addr{"198.51.100.9": ll1, "198.51.102.9": ll2} {
				k, err := RouteGet(RouteQuery{Dst: netip.MustParseAddr(dst)})
				if err != nil {
					return err
				}
				if k.Gateway != gw || k.Ifindex != ifindex || len(k.Hops) != 1 || k.Hops[0].Gateway != gw {
					t.Errorf("route get %s = %+v, want gateway %s on %d", dst, k, gw, ifindex)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}
