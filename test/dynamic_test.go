package test

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/lab"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// server is a host of a rack announcing its own prefixes over sessions it
// opens to r (dynamic neighbors): from 10.0.<port>.2 172.16.<port>.0/24,
// from fd00:<port>::2 2001:db8:<port>::/48; AS 65100+port.
type server struct {
	up              upstream
	bird            lab.BGPPeer
	prefix, prefix6 string
}

func (r *router) addServer(port int) server {
	r.t.Helper()
	u := upstream{fmt.Sprintf("s%d", port), port}
	if err := r.AddHost(u.role, u.port); err != nil {
		r.t.Fatal(err)
	}
	r.ports = append(r.ports, fmt.Sprintf("eth%d", port))
	pfx := netip.MustParsePrefix(fmt.Sprintf("172.16.%d.0/24", port))
	// The server owns the first address of its prefix (pings answered).
	if err := r.Run(u.role, "ip", "addr", "add", pfx.Addr().Next().String()+"/32", "dev", "lo"); err != nil {
		r.t.Fatal(err)
	}
	pfx6 := netip.MustParsePrefix(fmt.Sprintf("2001:db8:%d::/48", port))
	return server{up: u, prefix: pfx.String(), prefix6: pfx6.String(), bird: lab.BGPPeer{
		Role: u.role, ASN: uint32(65100 + port), RouterID: u.v4(), Dir: r.t.TempDir(),
		Prefixes: []netip.Prefix{pfx, pfx6},
		Peers: []lab.Peer{
			{Local: netip.MustParseAddr(u.v4()), Remote: netip.MustParseAddr(fmt.Sprintf("10.0.%d.1", port)), RemoteASN: lab.RouterASN},
			{Local: netip.MustParseAddr(u.v6()), Remote: netip.MustParseAddr(fmt.Sprintf("fd00:%d::1", port)), RemoteASN: lab.RouterASN},
		},
		// Retry fast after our Cease (BIRD waits a minute by default).
		BIRDBGP: "connect delay time 1; connect retry time 1; error wait time 1, 2;",
	}}
}

// routeIn reports whether prefix is installed in the kernel and XDP.
func (r *router) routeIn(prefix string) (bool, error) {
	var routes []xsync.RouteInfo
	if err := r.ctl(&routes, "routes", prefix); err != nil {
		return false, err
	}
	for _, rt := range routes {
		if rt.Prefix.String() == prefix {
			if rt.InKernel != rt.InXDP {
				return false, fmt.Errorf("%s: in the kernel %v, in XDP %v", prefix, rt.InKernel, rt.InXDP)
			}
			return rt.InKernel, nil
		}
	}
	return false, nil
}

// TestDynamicNeighbors: servers in an IPv4 [[dynamic-neighbor]] range with
// limit 2 and an IPv6 one with limit 10 open sessions to r (any AS,
// settings from a peer group) and announce their prefixes, which reach the
// kernel and XDP. A third server's IPv4 session is refused and its route
// is never installed (its IPv6 one, in the other range, is in); when one
// of the first two leaves, it takes its place. A static neighbor takes
// its peer-asn and import policy from another peer group.
func TestDynamicNeighbors(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	upstream := r.peer(up1, announced(10, 0))
	upstream.Peers = upstream.Peers[:1] // IPv4 only
	if _, err := r.StartBIRD(upstream); err != nil {
		t.Fatal(err)
	}
	s4, s5, s6 := r.addServer(4), r.addServer(5), r.addServer(6)
	bird := map[string]*lab.Proc{}
	for _, s := range []server{s4, s5} {
		p, err := r.StartBIRD(s.bird)
		if err != nil {
			t.Fatal(err)
		}
		bird[s.up.role] = p
	}
	r.start(fmt.Sprintf(`[router]
asn = %d
router-id = "10.0.1.1"

[[peer-group]]
name = "upstreams"
peer-asn = %d
import = "accept-all"

[[neighbor]]
address = %q
peer-group = "upstreams"
description = "h2"

[[peer-group]]
name = "servers"
description = "rack"
import = "accept-all"
hold-time = 9

[[dynamic-neighbor]]
prefix = "10.0.4.0/22"
peer-group = "servers"
limit = 2

[[dynamic-neighbor]]
prefix = "fd00:4::/30"
peer-group = "servers"
limit = 10
`, lab.RouterASN, lab.UpstreamASN, up1.v4()))

	// Both servers and the upstream: 10 + 2 routes in the kernel and XDP.
	r.waitRoutes("upstream and two servers", 12, 2)
	for _, s := range []server{s4, s5} {
		for _, p := range []string{s.prefix, s.prefix6} {
			if in, err := r.routeIn(p); err != nil || !in {
				t.Errorf("%s of %s: installed %v, %v", p, s.up.role, in, err)
			}
		}
		if out, err := r.Output("r", "ip", "route", "get", strings.TrimSuffix(s.prefix, "0/24")+"1"); err != nil || !strings.Contains(out, "via "+s.up.v4()) {
			t.Errorf("ip route get in %s: %v %s", s.prefix, err, out)
		}
	}
	// XDP forwards to a server over the route its session brought.
	r.pingXDP("172.16.5.1")
	// Status lists the dynamic sessions with the group's description and
	// the AS each server sent; the static member has the group's AS.
	// (Status is cached for a second or more: poll.)
	r.poll(15*time.Second, func() error {
		byAddr := map[string]bgp.PeerStatus{}
		for _, p := range r.status().Peers {
			byAddr[p.Address.String()] = p
		}
		if p := byAddr[s4.up.v4()]; !p.Up || p.ASN != s4.bird.ASN || p.Description != "rack" {
			return fmt.Errorf("status of %s: %+v", s4.up.v4(), p)
		}
		if p := byAddr[up1.v4()]; !p.Up || p.ASN != lab.UpstreamASN || p.Description != "h2" {
			return fmt.Errorf("status of the static member %s: %+v", up1.v4(), p)
		}
		return nil
	})

	// The third server is over the limit: refused, its route never in.
	p6, err := r.StartBIRD(s6.bird)
	if err != nil {
		t.Fatal(err)
	}
	bird[s6.up.role] = p6
	// It retries (every second), refused each time.
	refusedRE := regexp.MustCompile(`(?m)^xdprouter_bgp_dynamic_refused_total\{range="10\.0\.4\.0/22"\} ([0-9]+)$`)
	r.poll(20*time.Second, func() error {
		m := refusedRE.FindStringSubmatch(r.metrics())
		if m == nil || m[1] == "0" || m[1] == "1" {
			return fmt.Errorf("%s refused %v times, want 2 or more", s6.up.v4(), m)
		}
		return nil
	})
	if in, err := r.routeIn(s6.prefix); err != nil || in {
		t.Errorf("%s of the refused server: installed %v, %v", s6.prefix, in, err)
	}
	// Its IPv6 session is in the other range, which has room.
	r.waitRoutes("the third server's IPv6 session admitted", 12, 3)
	m := r.metrics()
	for _, want := range []string{`xdprouter_bgp_dynamic_sessions{range="10.0.4.0/22"} 2`, `xdprouter_bgp_dynamic_sessions{range="fd00:4::/30"} 3`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics: want %s:\n%s", want, grepLines(m, "xdprouter_bgp_dynamic"))
		}
	}

	// One leaves: the refused one gets its place.
	if err := bird[s4.up.role].Stop(5 * time.Second); err != nil {
		t.Logf("stop %s: %v", s4.up.role, err)
	}
	r.poll(30*time.Second, func() error {
		in6, err := r.routeIn(s6.prefix)
		if err != nil {
			return err
		}
		in4, err := r.routeIn(s4.prefix)
		if err != nil {
			return err
		}
		if !in6 || in4 {
			return fmt.Errorf("%s installed %v (want true), %s installed %v (want false)", s6.prefix, in6, s4.prefix, in4)
		}
		return nil
	})
	r.waitRoutes("upstream and two servers after a swap", 12, 2)
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDynamicNeighborsOnly: a top-of-rack configuration with no
// [[neighbor]] at all, only a range: xdprouterd starts (the initial sync
// has nothing to wait for) and installs what the server announces.
func TestDynamicNeighborsOnly(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	s4 := r.addServer(4)
	s4.bird.Peers = s4.bird.Peers[:1] // IPv4 only
	if _, err := r.StartBIRD(s4.bird); err != nil {
		t.Fatal(err)
	}
	r.start(fmt.Sprintf(`[router]
asn = %d
router-id = "10.0.1.1"

[[peer-group]]
name = "servers"
import = "accept-all"

[[dynamic-neighbor]]
prefix = "10.0.4.0/24"
peer-group = "servers"
`, lab.RouterASN))
	r.waitRoutes("the server's route", 1, 0)
	r.poll(10*time.Second, func() error {
		if !strings.Contains(r.daemon.Out.String(), "initial sync") {
			return fmt.Errorf("no initial sync logged")
		}
		return nil
	})
	r.pingXDP("172.16.4.1")
}
