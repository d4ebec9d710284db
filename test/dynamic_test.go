package test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/lab"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// server is a host of a rack announcing its own prefix over a session it
// opens to r (a dynamic neighbor): 10.0.<port>.2, AS 65100+port,
// 172.16.<port>.0/24.
type server struct {
	up     upstream
	bird   lab.BGPPeer
	prefix string
}

func (r *router) addServer(port int) server {
	r.t.Helper()
	u := upstream{fmt.Sprintf("s%d", port), port}
	if err := r.AddHost(u.role, u.port); err != nil {
		r.t.Fatal(err)
	}
	r.ports = append(r.ports, fmt.Sprintf("eth%d", port))
	pfx := netip.MustParsePrefix(fmt.Sprintf("172.16.%d.0/24", port))
	return server{up: u, prefix: pfx.String(), bird: lab.BGPPeer{
		Role: u.role, ASN: uint32(65100 + port), RouterID: u.v4(), Dir: r.t.TempDir(),
		Prefixes: []netip.Prefix{pfx},
		Peers: []lab.Peer{{Local: netip.MustParseAddr(u.v4()),
			Remote: netip.MustParseAddr(fmt.Sprintf("10.0.%d.1", port)), RemoteASN: lab.RouterASN}},
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

// TestDynamicNeighbors: servers in a [[dynamic-neighbor]] range with limit
// 2 open sessions to r (any AS, settings from a peer group) and announce
// their prefixes, which reach the kernel and XDP. A third server is
// refused and its route is never installed; when one of the first two
// leaves, it takes its place. A static neighbor takes its peer-asn and
// import policy from another peer group.
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
`, lab.RouterASN, lab.UpstreamASN, up1.v4()))

	// Both servers and the upstream: 10 + 2 routes in the kernel and XDP.
	r.waitRoutes("upstream and two servers", 12, 0)
	for _, s := range []server{s4, s5} {
		if in, err := r.routeIn(s.prefix); err != nil || !in {
			t.Errorf("%s of %s: installed %v, %v", s.prefix, s.up.role, in, err)
		}
		if out, err := r.Output("r", "ip", "route", "get", strings.TrimSuffix(s.prefix, "0/24")+"1"); err != nil || !strings.Contains(out, "via "+s.up.v4()) {
			t.Errorf("ip route get in %s: %v %s", s.prefix, err, out)
		}
	}
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
	refused := func() int {
		n := 0
		for _, l := range strings.Split(r.daemon.Out.String(), "\n") {
			if strings.Contains(l, `msg="dynamic neighbor refused`) && strings.Contains(l, "peer="+s6.up.v4()+" ") {
				n++
			}
		}
		return n
	}
	r.poll(20*time.Second, func() error {
		if n := refused(); n < 2 {
			return fmt.Errorf("%s refused %d times, want 2 (it retries)", s6.up.v4(), n)
		}
		return nil
	})
	if in, err := r.routeIn(s6.prefix); err != nil || in {
		t.Errorf("%s of the refused server: installed %v, %v", s6.prefix, in, err)
	}
	m := r.metrics()
	if !strings.Contains(m, `xdprouter_bgp_dynamic_sessions{range="10.0.4.0/22"} 2`+"\n") {
		t.Errorf("metrics: want 2 dynamic sessions:\n%s", grepLines(m, "xdprouter_bgp_dynamic"))
	}
	if !strings.Contains(m, `xdprouter_bgp_dynamic_refused_total{range="10.0.4.0/22"} `) {
		t.Errorf("metrics: want refusals counted:\n%s", grepLines(m, "xdprouter_bgp_dynamic"))
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
	r.waitRoutes("upstream and two servers after a swap", 12, 0)
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
