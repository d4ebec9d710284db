package sync

import (
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// resolved is the resolution of a BGP next hop, as a string.
func (r *rig) resolved(a string) string {
	out, why := r.st.resolve([]netip.Addr{ip(a)})
	if why != "" {
		return fmt.Sprint(out, " ", why)
	}
	return fmt.Sprint(out)
}

// TestResolveLongestMatch: the most specific covering kernel route wins,
// at any depth, and its removal falls back to the next shorter one.
func TestResolveLongestMatch(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: via("172.16.0.0/12", 0, gw("10.0.1.2", eth1))})
	eq(t, "/12", r.resolved("172.16.5.9"), "[10.0.1.2@2]")
	r.ev(route.RouteEvent{Route: via("172.16.5.0/24", 0, gw("10.0.2.2", eth2))})
	eq(t, "/24", r.resolved("172.16.5.9"), "[10.0.2.2@3]")
	eq(t, "outside the /24", r.resolved("172.16.6.9"), "[10.0.1.2@2]")
	r.ev(route.RouteEvent{Route: connected("172.16.5.9/32", eth1)})
	eq(t, "/32, connected: the address is the gateway", r.resolved("172.16.5.9"), "[172.16.5.9@2]")
	r.ev(route.RouteEvent{Route: connected("172.16.5.9/32", eth1), Deleted: true})
	eq(t, "/32 gone", r.resolved("172.16.5.9"), "[10.0.2.2@3]")
	eq(t, "unresolvable", r.resolved("192.0.2.1"), "[]")

	// IPv6, across the byte strides of the table.
	r.ev(route.RouteEvent{Route: via("2001:db8::/32", 0, gw("10.0.1.2", eth1))},
		route.RouteEvent{Route: via("2001:db8:1:2::/63", 0, gw("10.0.2.2", eth2))})
	eq(t, "v6 /63", r.resolved("2001:db8:1:3::1"), "[10.0.2.2@3]")
	eq(t, "v6 /32", r.resolved("2001:db8:1:4::1"), "[10.0.1.2@2]")
}

// TestResolveSkipsDeadAndStopsAtBlackhole: a best route without live next
// hops passes to the shorter match; a blackhole, unreachable or
// kernel-only best route makes the next hop unresolvable even with a
// shorter match; the lowest metric of a prefix decides.
func TestResolveSkipsDeadAndStopsAtBlackhole(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0, gw("10.0.1.2", eth1))},
		route.RouteEvent{Route: route.Route{Prefix: pfx("172.16.1.0/24"), Kind: route.Unicast}},
		route.RouteEvent{Route: route.Route{Prefix: pfx("172.16.1.0/25"), Kind: route.Unicast, Metric: 5}})
	eq(t, "two dead levels: the /16", r.resolved("172.16.1.1"), "[10.0.1.2@2]")
	for _, k := range []route.Kind{route.Blackhole, route.Unreachable, route.KernelOnly} {
		r.ev(route.RouteEvent{Route: route.Route{Prefix: pfx("172.16.1.0/24"), Kind: k}})
		eq(t, k.String()+" stops", r.resolved("172.16.1.1"), "[]")
		eq(t, k.String()+" elsewhere", r.resolved("172.16.2.1"), "[10.0.1.2@2]")
	}
	// A live route of higher metric loses to it, and wins once it goes.
	r.ev(route.RouteEvent{Route: via("172.16.1.0/24", 1, gw("10.0.2.2", eth2))})
	eq(t, "higher metric live", r.resolved("172.16.1.1"), "[]")
	r.ev(route.RouteEvent{Route: route.Route{Prefix: pfx("172.16.1.0/24"), Kind: route.KernelOnly}, Deleted: true})
	eq(t, "blackhole gone", r.resolved("172.16.1.1"), "[10.0.2.2@3]")
}

// TestResolveDefaultOnlyWhenAllowed: the default route resolves only with
// ResolveViaDefault, in both families; a more specific route always does.
func TestResolveDefaultOnlyWhenAllowed(t *testing.T) {
	for _, viaDefault := range []bool{false, true} {
		r := newRigWith(t, Options{ResolveViaDefault: viaDefault})
		r.ev(route.RouteEvent{Route: via("0.0.0.0/0", 0, gw("10.0.1.2", eth1))},
			route.RouteEvent{Route: via("::/0", 0, gw("10.0.2.2", eth2))},
			route.RouteEvent{Route: via("128.0.0.0/1", 0, gw("10.0.2.2", eth2))})
		want4, want6 := "[]", "[]"
		if viaDefault {
			want4, want6 = "[10.0.1.2@2]", "[10.0.2.2@3]"
		}
		eq(t, fmt.Sprint("v4 default, allowed=", viaDefault), r.resolved("1.2.3.4"), want4)
		eq(t, fmt.Sprint("v6 default, allowed=", viaDefault), r.resolved("2001:db8::1"), want6)
		eq(t, "/1", r.resolved("192.0.2.1"), "[10.0.2.2@3]")
	}
}

// TestResolveFollowsRouteChanges: adding and removing the covering kernel
// routes re-resolves the BGP routes through them, by event and by resync;
// routes through other next hops are left alone.
func TestResolveFollowsRouteChanges(t *testing.T) {
	r := newRig(t)
	base := []route.Route{connected("10.0.1.0/24", eth1), connected("10.0.2.0/24", eth2), via("172.16.0.0/16", 0, gw("10.0.1.2", eth1))}
	r.ev(route.RouteEvent{Route: base[2]})
	r.bgp("198.51.100.0/24", "172.16.1.1")
	r.bgp("198.51.101.0/24", "172.16.200.1")
	eq(t, "via the /16", r.fib.via("198.51.100.0/24"), "[10.0.1.2@2]")
	r.ev(route.RouteEvent{Route: via("172.16.1.0/24", 0, gw("10.0.2.2", eth2))})
	eq(t, "via the /24", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")
	r.ev(route.RouteEvent{Route: via("172.16.1.0/24", 0, gw("10.0.2.2", eth2)), Deleted: true})
	eq(t, "/24 removed: the /16", r.fib.via("198.51.100.0/24"), "[10.0.1.2@2]")

	// A resync that drops the /16 and adds a blackhole re-resolves too.
	ours := func() []route.Route { return slices.Collect(maps.Values(r.fib.routes)) }
	r.ev(route.RouteResync{Routes: append(base[:2:2], route.Route{Prefix: pfx("172.16.1.0/24"), Kind: route.Blackhole}), Ours: ours()})
	eq(t, "resync: unresolvable", r.fib.via("198.51.100.0/24"), "")
	eq(t, "not in XDP", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	r.ev(route.RouteResync{Routes: base, Ours: ours()})
	eq(t, "resync: back", r.fib.via("198.51.100.0/24"), "[10.0.1.2@2]")
	eq(t, "index: the kernel's prefixes", slices.Collect(func(yield func(netip.Prefix) bool) {
		for p := range r.st.kernelRoutes[r.st.table].AllSorted() {
			if !yield(p) {
				return
			}
		}
	}), []netip.Prefix{pfx("10.0.1.0/24"), pfx("10.0.2.0/24"), pfx("172.16.0.0/16")})

	// Only sets with a next hop under a changed prefix are re-resolved:
	// a wrong resolution planted in the other set stays.
	other := r.st.setsByID[r.st.entries.get(mk("198.51.101.0/24")).bgpSet]
	other.resolved = nil
	r.ev(route.RouteEvent{Route: via("172.16.1.0/24", 0, gw("10.0.2.2", eth2))})
	eq(t, "other set not re-resolved", other.resolved, []route.NextHop(nil))
	eq(t, "changed one is", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")
	// An address change can make any next hop unusable: all are redone.
	r.ev(route.AddrEvent{Addr: route.Addr{Ifindex: eth1, Prefix: pfx("10.0.1.7/24")}})
	eq(t, "all re-resolved", other.resolved, []route.NextHop{gw("10.0.1.2", eth1)})
	// So are they after more changes than are tracked, none covering it.
	other.resolved = nil
	for i := range maxTrackedChanges + 1 {
		r.st.kernelEvent(route.RouteEvent{Route: via(fmt.Sprintf("192.168.%d.%d/32", i>>8, i&255), 0, gw("10.0.1.2", eth1))})
	}
	r.st.apply(0)
	eq(t, "all re-resolved past the bound", other.resolved, []route.NextHop{gw("10.0.1.2", eth1)})
}

// TestResolveMatchesProbe: the table walk gives what probing every prefix
// length in st.entries gives, over random route tables and changes; routes
// of other kernel tables than ours (100) never enter the index.
func TestResolveMatchesProbe(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	st := newState(Options{Table: 100}, slog.New(slog.DiscardHandler))
	addr := func() netip.Addr {
		if rnd.IntN(2) == 0 {
			return netip.AddrFrom4([4]byte{10, 9, byte(rnd.IntN(4)), byte(rnd.IntN(256))})
		}
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 15: byte(rnd.IntN(4)), 7: byte(rnd.IntN(2))})
	}
	randRoute := func() route.Route {
		a := addr()
		p, _ := a.Prefix(rnd.IntN(a.BitLen() + 1))
		r := route.Route{Table: []int{100, 100, 0, 7}[rnd.IntN(4)], Prefix: p, Kind: route.Unicast, Metric: 10 * rnd.IntN(3), Protocol: 4}
		if rnd.IntN(4) == 0 {
			r.Kind = []route.Kind{route.Blackhole, route.Unreachable, route.KernelOnly, route.Throw}[rnd.IntN(4)]
		} else {
			for range rnd.IntN(3) {
				r.NextHops = append(r.NextHops, route.NextHop{Gateway: addr(), Ifindex: 1 + rnd.IntN(2)})
			}
			r.NextHops = route.SortNextHops(r.NextHops)
		}
		return r
	}
	for step := range 2000 {
		switch n := rnd.IntN(100); {
		case n < 2: // resync with part of the routes, and new ones
			var rs []route.Route
			for _, e := range st.entries.all() {
				for _, k := range e.kernelRoutes() {
					if rnd.IntN(2) == 0 {
						rs = append(rs, k)
					}
				}
			}
			for range 5 {
				rs = append(rs, randRoute())
			}
			st.replaceRoutes(rs, nil)
		case n < 40: // delete one
			for _, e := range st.entries.all() {
				if len(e.kernelRoutes()) > 0 {
					st.kernelRoute(e.kernelRoutes()[rnd.IntN(len(e.kernelRoutes()))], true, false)
					break
				}
			}
		default:
			st.kernelRoute(randRoute(), false, false)
		}
		for p, e := range st.entries.all() {
			ie, ok := st.kernelRoutes[st.table].Get(p.Prefix)
			if p.Table != 100 {
				if ok && ie == e {
					t.Fatalf("step %d: index has %v of table %d", step, p.Prefix, p.Table)
				}
				continue
			}
			if (len(e.kernelRoutes()) > 0) != ok || (ok && ie != e) {
				t.Fatalf("step %d: index has %v: %v, entry has %d routes", step, p, ok, len(e.kernelRoutes()))
			}
		}
		if n := st.kernelRoutes[st.table].Size(); n > st.entries.Len() {
			t.Fatalf("step %d: index has %d prefixes, entries %d", step, n, st.entries.Len())
		}
		for range 20 {
			as := []netip.Addr{addr()}
			st.opt.ResolveViaDefault = rnd.IntN(2) == 0
			got, _ := st.resolve(as)
			want, _ := st.resolveProbe(as)
			if !slices.Equal(got, want) {
				t.Fatalf("step %d: %v (via default %v): table %v, probe %v", step, as[0], st.opt.ResolveViaDefault, got, want)
			}
		}
	}
}

// resolveProbe is resolve as it was before the table: every prefix
// length probed in st.entries. The test baseline.
func (st *state) resolveProbe(addrs []netip.Addr) (out []route.NextHop, why string) {
	minBits := 1
	if st.opt.ResolveViaDefault {
		minBits = 0
	}
	for _, a := range addrs {
		if w := st.unusableNextHop(a); w != "" {
			if why == "" {
				why = w
			}
			continue
		}
		for bits := a.BitLen(); bits >= minBits; bits-- {
			p, _ := a.Prefix(bits)
			e := st.entries.get(st.ourKey(p))
			if e == nil {
				continue
			}
			r := bestKernel(e)
			if r == nil || (r.Kind == route.Unicast && len(r.NextHops) == 0) {
				continue
			}
			if r.Kind != route.Unicast {
				break
			}
			for _, nh := range r.NextHops {
				if nh.Connected() {
					nh.Gateway = a
				}
				out = append(out, nh)
			}
			break
		}
	}
	return route.SortNextHops(out), why
}

// reresolveProbe is reresolve as it was: every set, by resolveProbe.
func (st *state) reresolveProbe() {
	changed := map[uint32]bool{}
	for _, s := range st.setsByID {
		r, why := st.resolveProbe(s.addrs)
		s.why = why
		if slices.Equal(r, s.resolved) {
			continue
		}
		s.resolved = r
		changed[s.id] = true
		if g := st.groups[setGroupKey(s)]; g != nil && len(r) > 0 {
			st.setMembers(g, r, nil)
		}
	}
	if len(changed) == 0 {
		return
	}
	for p, e := range st.entries.all() {
		if changed[e.bgpSet] {
			st.markDirty(p)
		}
	}
}

// BenchmarkReresolve: 10k kernel routes, 100k BGP prefixes over 1,000
// next-hop sets (two next hops each), one kernel route changing per
// iteration: one covering no next hop, or a /32 for a next hop of one set.
// probe-all is the code before the table; table-all resolves every set
// through the table; table-changed only the sets under the changed prefix.
func BenchmarkReresolve(b *testing.B) {
	const kernel, sets, prefixes = 10_000, 1_000, 100_000
	st := newState(Options{Datapath: newFakeDP(), FIB: &fakeFIB{routes: map[netip.Prefix]route.Route{}}, Metric: 20},
		slog.New(slog.DiscardHandler))
	routes := []route.Route{connected("10.0.1.0/24", eth1), connected("10.0.2.0/24", eth2)}
	nth := func(i int) netip.Addr { // 100.64.0.0/10, a /24 each
		return netip.AddrFrom4([4]byte{100, byte(64 + i>>8), byte(i), 0})
	}
	for i := range kernel {
		p := netip.PrefixFrom(nth(i), 24)
		routes = append(routes, route.Route{Prefix: p, Kind: route.Unicast, Protocol: 4,
			NextHops: []route.NextHop{gw("10.0.1.2", eth1)}})
	}
	st.kernelEvent(&route.Snapshot{Routes: routes})
	hop := func(j int) netip.Addr { return nth(j).Next() }
	for k := range prefixes {
		j := k % sets
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{11 + byte(k>>16), byte(k >> 8), byte(k), 0}), 24)
		st.setBGP(p, []netip.Addr{hop(2 * j), hop(2*j + 1)}, nil, peerA, false)
	}
	st.reresolve()
	changes := map[string]route.Route{
		"unrelated": via("203.0.113.0/24", 0, gw("10.0.2.2", eth2)),
		"covering":  {Prefix: netip.PrefixFrom(hop(0), 32), Kind: route.Unicast, Protocol: 4, NextHops: []route.NextHop{gw("10.0.2.2", eth2)}},
	}
	paths := map[string]func(){
		"probe-all":     st.reresolveProbe,
		"table-all":     func() { st.resolveAll = true; st.reresolve() },
		"table-changed": st.reresolve,
	}
	for _, change := range []string{"unrelated", "covering"} {
		for _, path := range []string{"probe-all", "table-all", "table-changed"} {
			b.Run(change+"/"+path, func(b *testing.B) {
				r, del := changes[change], false
				for b.Loop() {
					st.kernelRoute(r, del, false)
					del = !del
					paths[path]()
				}
				if del { // leave the table as it was
					st.kernelRoute(r, true, false)
					st.reresolve()
				}
			})
		}
	}
}
