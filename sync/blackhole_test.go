package sync

import (
	"net/netip"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

func (r *rig) blackhole(p string, nh string) {
	r.st.setBGP(pfx(p), []netip.Addr{ip(nh)}, nil, peerA, true)
	r.st.apply(0)
}

// TestBGPBlackhole: a BGP blackhole route (RTBH) is a kernel blackhole
// route of ours and a blackhole in XDP, whatever its next hop resolves
// to (or not); it replaces a unicast route of the prefix and back, in
// both sinks, with and without kernel nexthop objects; withdrawn, it is
// gone from both.
func TestBGPBlackhole(t *testing.T) {
	for _, objs := range []bool{false, true} {
		t.Run(map[bool]string{false: "routes", true: "nexthop-objects"}[objs], func(t *testing.T) {
			r := newRigWith(t, Options{NexthopObjects: objs})
			check := func(what string, kind route.Kind, inFIB bool) {
				t.Helper()
				k, ok := r.fib.routes[pfx("198.51.100.7/32")]
				if ok != inFIB || (ok && (k.Kind != kind || k.Metric != 20 || (kind == route.Blackhole && (len(k.NextHops) != 0 || k.NHID != 0)))) {
					t.Errorf("%s: kernel route %+v (present %v), want kind %v present %v", what, k, ok, kind, inFIB)
				}
				x, ok := r.dp.routes[mk("198.51.100.7/32")]
				if ok != inFIB || (ok && (x.Kind != kind || (kind == route.Blackhole && x.Group != 0))) {
					t.Errorf("%s: XDP entry %+v (present %v), want kind %v present %v", what, x, ok, kind, inFIB)
				}
			}
			// The next hop need not resolve: it is not used.
			r.blackhole("198.51.100.7/32", "192.0.2.1")
			check("blackhole", route.Blackhole, true)
			infos := r.st.routeInfos(-1, pfx("198.51.100.7/32"))
			if len(infos) != 1 || infos[0].Kind != "blackhole" || infos[0].Source != "bgp" || infos[0].Unresolved || !infos[0].InXDP || !infos[0].InKernel {
				t.Errorf("route info %+v", infos)
			}
			eq(t, "counts", [2]int{r.st.counts.FIB4, r.st.counts.XDP4}, [2]int{1, 5}) // XDP: the rig's connected and local routes, and it

			// A second one shares the set; the next hop of a blackhole does
			// not matter.
			r.blackhole("198.51.100.8/32", "10.0.2.2")
			if len(r.st.sets) != 1 {
				t.Errorf("sets %d, want 1 (shared blackhole set)", len(r.st.sets))
			}

			// The same prefix becomes a normal route, and a blackhole again.
			r.bgp("198.51.100.7/32", "10.0.2.2")
			check("unicast", route.Unicast, true)
			eq(t, "egress", r.dp.egress(t, "198.51.100.7/32"), []string{"3:" + mac2.String()})
			r.blackhole("198.51.100.7/32", "10.0.2.2")
			check("blackhole again", route.Blackhole, true)

			// Withdrawn: gone from both sinks.
			r.bgp("198.51.100.7/32")
			check("withdrawn", route.Blackhole, false)
			r.bgp("198.51.100.8/32")
			if len(r.st.sets) != 0 {
				t.Errorf("sets %d after withdrawals, want 0", len(r.st.sets))
			}
			eq(t, "counts after withdrawals", [2]int{r.st.counts.FIB4, r.st.counts.XDP4}, [2]int{0, 4})
		})
	}
}

// TestBGPBlackholeRestart: a blackhole route of ours a previous instance
// left in the kernel is taken over as it is (no kernel write) when BGP
// re-learns it, and swept when it does not.
func TestBGPBlackholeRestart(t *testing.T) {
	left := route.Route{Prefix: pfx("198.51.100.7/32"), Kind: route.Blackhole, Metric: 20, Protocol: protoOurs}
	gone := route.Route{Prefix: pfx("198.51.100.9/32"), Kind: route.Blackhole, Metric: 20, Protocol: protoOurs}
	r := newRig(t, left, gone)
	if x := r.dp.routes[left.Key()]; x.Kind != route.Blackhole {
		t.Errorf("left blackhole in XDP as %+v before BGP re-learned it", x)
	}
	r.blackhole("198.51.100.7/32", "192.0.2.1")
	eq(t, "kernel writes for a blackhole already right", r.fib.writes, 0)
	r.st.sweepStale()
	r.st.apply(0)
	if _, ok := r.fib.routes[gone.Prefix]; ok {
		t.Error("a blackhole BGP did not re-learn survived the sweep")
	}
	if k := r.fib.routes[left.Prefix]; k.Kind != route.Blackhole {
		t.Errorf("re-learned blackhole is %+v after the sweep", k)
	}
}
