package sync

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// policyOptions: policy tables 20000 up; 10.0.2.2 (eth2's neighbor) is
// the next hop of table 20000, 10.0.2.9 (no neighbor entry yet) that of
// 20001.
func policyOptions() Options {
	return Options{PolicyTableBase: 20000, PolicyTableCount: 256, PolicyNextHops: []PolicyNextHop{
		{Table: 20000, Addr: ip("10.0.2.2")}, {Table: 20001, Addr: ip("10.0.2.9")},
	}}
}

// TestPolicyNextHopRoute: a policy next hop's table holds a default route
// of ours via it (kernel and XDP) exactly while it is usable: link up, a
// connected subnet covering it, a valid neighbor entry; a candidate
// without one is probed; the list changes live.
func TestPolicyNextHopRoute(t *testing.T) {
	r := newRigWith(t, policyOptions())
	eq(t, "kernel 20000", r.fib.viaIn(20000, "0.0.0.0/0"), "[10.0.2.2@3]")
	eq(t, "XDP 20000", r.dp.egressIn(t, 20000, "0.0.0.0/0"), []string{"3:" + mac2.String()})
	eq(t, "no neighbor: no route", r.fib.viaIn(20001, "0.0.0.0/0"), "")
	if !slices.Contains(r.fib.resolved, "3 10.0.2.9") {
		t.Errorf("10.0.2.9 not probed: %v", r.fib.resolved)
	}
	if in := r.st.routeInfos(20000, pfx("0.0.0.0/0")); len(in) != 1 || in[0].Source != "policy" {
		t.Errorf("route info %+v", in)
	}

	// Its neighbor resolves: the route comes; it fails: the route goes.
	r.ev(route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth2, Addr: ip("10.0.2.9"), MAC: mac1, Valid: true}})
	eq(t, "resolved", r.fib.viaIn(20001, "0.0.0.0/0"), "[10.0.2.9@3]")
	eq(t, "XDP resolved", r.dp.egressIn(t, 20001, "0.0.0.0/0"), []string{"3:" + mac1.String()})
	r.ev(route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth2, Addr: ip("10.0.2.9")}}) // FAILED: not valid
	eq(t, "failed", r.fib.viaIn(20001, "0.0.0.0/0"), "")
	eq(t, "XDP failed", r.dp.egressIn(t, 20001, "0.0.0.0/0"), []string(nil))
	n := len(r.fib.resolved)
	r.st.probePolicy()
	if len(r.fib.resolved) != n+1 || r.fib.resolved[n] != "3 10.0.2.9" {
		t.Errorf("not probed again: %v", r.fib.resolved)
	}

	// The link goes down: no route in either table; up again: back.
	down := route.Link{Index: eth2, Name: "eth2", MTU: 9000, Up: false, MAC: mac3}
	r.ev(route.LinkEvent{Link: down})
	eq(t, "link down", r.fib.viaIn(20000, "0.0.0.0/0"), "")
	eq(t, "XDP link down", r.dp.egressIn(t, 20000, "0.0.0.0/0"), []string(nil))
	down.Up = true
	r.ev(route.LinkEvent{Link: down})
	eq(t, "link up", r.fib.viaIn(20000, "0.0.0.0/0"), "[10.0.2.2@3]")

	// No connected subnet covers it: no route.
	r.ev(route.AddrEvent{Addr: route.Addr{Ifindex: eth2, Prefix: pfx("10.0.2.1/24")}, Deleted: true})
	eq(t, "no subnet", r.fib.viaIn(20000, "0.0.0.0/0"), "")
	r.ev(route.AddrEvent{Addr: route.Addr{Ifindex: eth2, Prefix: pfx("10.0.2.1/24")}})
	eq(t, "subnet back", r.fib.viaIn(20000, "0.0.0.0/0"), "[10.0.2.2@3]")

	// Live change: 20000 now goes via eth1's neighbor, 20001 is dropped.
	r.ev(policyNextHops{[]PolicyNextHop{{Table: 20000, Addr: ip("10.0.1.2")}}})
	eq(t, "moved", r.fib.viaIn(20000, "0.0.0.0/0"), "[10.0.1.2@2]")
	eq(t, "XDP moved", r.dp.egressIn(t, 20000, "0.0.0.0/0"), []string{"2:" + mac1.String()})
	r.ev(policyNextHops{nil})
	eq(t, "removed", r.fib.viaIn(20000, "0.0.0.0/0"), "")
	eq(t, "XDP removed", r.dp.egressIn(t, 20000, "0.0.0.0/0"), []string(nil))

	// IPv6: the default route ::/0.
	r.ev(route.AddrEvent{Addr: route.Addr{Ifindex: eth1, Prefix: pfx("fd00:1::1/64")}},
		route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: ip("fd00:1::2"), MAC: mac2, Valid: true}},
		policyNextHops{[]PolicyNextHop{{Table: 20005, Addr: ip("fd00:1::2")}}})
	eq(t, "IPv6", r.fib.viaIn(20005, "::/0"), "[fd00:1::2@2]")
}

// TestPolicyAdoptedAtRestart: a policy table's route of ours left by a
// previous instance is adopted (not rewritten) when still wanted, and
// swept when not; a route of ours in a table outside the range is not
// ours to sweep.
func TestPolicyAdoptedAtRestart(t *testing.T) {
	left := func(table int, p string, nh route.NextHop) route.Route {
		return route.Route{Table: table, Prefix: pfx(p), Kind: route.Unicast, Metric: 20, Protocol: protoOurs, NextHops: []route.NextHop{nh}}
	}
	ours := []route.Route{
		left(20000, "0.0.0.0/0", gw("10.0.2.2", eth2)),
		left(20007, "0.0.0.0/0", gw("10.0.1.2", eth1)), // no longer configured
	}
	f := &fakeFIB{routes: map[netip.Prefix]route.Route{}, byTable: map[route.TablePrefix]route.Route{}}
	for _, o := range ours {
		f.byTable[o.Key()] = o
	}
	r := newRigFIB(t, policyOptions(), f, ours...)
	eq(t, "adopted, nothing rewritten", f.writes, 0)
	eq(t, "kept", r.fib.viaIn(20000, "0.0.0.0/0"), "[10.0.2.2@3]")
	eq(t, "stale one", r.st.counts.Stale, 1)
	r.ev(sweepRequest{})
	eq(t, "swept", r.fib.viaIn(20007, "0.0.0.0/0"), "")
	eq(t, "kept after the sweep", r.fib.viaIn(20000, "0.0.0.0/0"), "[10.0.2.2@3]")
}
