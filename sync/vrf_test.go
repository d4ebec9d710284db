package sync

import (
	"net/netip"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// vrfOptions: eth1 in instance 100, eth2 in instance 200 (VRF-lite).
func vrfOptions() Options {
	return Options{Tables: []int{100, 200}, PortTables: map[string]int{"eth1": 100, "eth2": 200}}
}

func (r *rig) bgpIn(table int, p string, nhs ...string) {
	var as []netip.Addr
	for _, n := range nhs {
		as = append(as, ip(n))
	}
	r.st.setBGPIn(bgpKey(r.st.table, table, pfx(p)), as, nil, peerA, false)
	r.st.apply(0)
}

// TestVRFSamePrefixTwoTables: the same BGP prefix in two instances via
// different next hops is two routes of ours, each in its table (kernel
// and XDP) and resolved through that table only; the ports' connected
// routes are installed in their instance's table.
func TestVRFSamePrefixTwoTables(t *testing.T) {
	r := newRigWith(t, vrfOptions())
	// Connected routes of the ports, ours, in their tables.
	eq(t, "connected in 100", r.fib.viaIn(100, "10.0.1.0/24"), "[dev#2]")
	eq(t, "connected in 200", r.fib.viaIn(200, "10.0.2.0/24"), "[dev#3]")
	eq(t, "no cross connected", r.fib.viaIn(100, "10.0.2.0/24"), "")
	eq(t, "scope link (a connected next hop)", r.fib.byTable[tk(100, "10.0.1.0/24")].NextHops[0].Connected(), true)
	eq(t, "XDP connected in 100", r.dp.egressIn(t, 100, "10.0.1.0/24"), []string{"2:direct"})
	eq(t, "XDP connected in 200", r.dp.egressIn(t, 200, "10.0.2.0/24"), []string{"3:direct"})

	r.bgpIn(100, "198.51.100.0/24", "10.0.1.2")
	r.bgpIn(200, "198.51.100.0/24", "10.0.2.2")
	eq(t, "kernel table 100", r.fib.viaIn(100, "198.51.100.0/24"), "[10.0.1.2@2]")
	eq(t, "kernel table 200", r.fib.viaIn(200, "198.51.100.0/24"), "[10.0.2.2@3]")
	eq(t, "not in the global table", r.fib.viaIn(route.TableMain, "198.51.100.0/24"), "")
	eq(t, "XDP table 100", r.dp.egressIn(t, 100, "198.51.100.0/24"), []string{"2:" + mac1.String()})
	eq(t, "XDP table 200", r.dp.egressIn(t, 200, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	eq(t, "XDP main", r.dp.egress(t, "198.51.100.0/24"), []string(nil))

	// Isolation: a next hop reachable only in the other instance does not
	// resolve (nor through main's connected routes).
	r.bgpIn(100, "198.51.101.0/24", "10.0.2.2")
	eq(t, "other instance's next hop", r.fib.viaIn(100, "198.51.101.0/24"), "")
	if in := r.st.routeInfos(100, pfx("198.51.101.0/24")); len(in) != 1 || !in[0].Unresolved {
		t.Errorf("route info %+v, want unresolved in table 100", in)
	}
	// The global instance (Options.Table: main) resolves through main.
	r.bgpIn(0, "198.51.102.0/24", "10.0.2.2")
	eq(t, "global", r.fib.viaIn(route.TableMain, "198.51.102.0/24"), "[10.0.2.2@3]")

	// A withdrawal in one table leaves the other.
	r.bgpIn(100, "198.51.100.0/24")
	eq(t, "withdrawn from 100", r.fib.viaIn(100, "198.51.100.0/24"), "")
	eq(t, "XDP withdrawn from 100", r.dp.egressIn(t, 100, "198.51.100.0/24"), []string(nil))
	eq(t, "200 kept", r.fib.viaIn(200, "198.51.100.0/24"), "[10.0.2.2@3]")
	eq(t, "XDP 200 kept", r.dp.egressIn(t, 200, "198.51.100.0/24"), []string{"3:" + mac2.String()})

	// The port's address goes: its connected route goes, and the BGP
	// route through it no longer resolves in table 200.
	r.ev(route.AddrEvent{Addr: route.Addr{Ifindex: eth2, Prefix: pfx("10.0.2.1/24")}, Deleted: true})
	eq(t, "connected gone", r.fib.viaIn(200, "10.0.2.0/24"), "")
	eq(t, "BGP unresolved", r.fib.viaIn(200, "198.51.100.0/24"), "")
	r.ev(route.AddrEvent{Addr: route.Addr{Ifindex: eth2, Prefix: pfx("10.0.2.1/24")}})
	eq(t, "connected back", r.fib.viaIn(200, "10.0.2.0/24"), "[dev#3]")
	eq(t, "BGP back", r.fib.viaIn(200, "198.51.100.0/24"), "[10.0.2.2@3]")

	// A BGP path for a connected prefix waits behind it.
	r.bgpIn(200, "10.0.2.0/24", "10.0.2.2")
	eq(t, "connected wins", r.fib.viaIn(200, "10.0.2.0/24"), "[dev#3]")
	r.ev(route.LinkEvent{Link: route.Link{Index: eth2, Name: "eth2", MTU: 9000, Up: false, MAC: mac3}})
	eq(t, "link down: connected gone", r.fib.viaIn(200, "10.0.2.0/24"), "")
}

// TestVRFAdoptedAtRestart: routes of ours in VRF tables are a previous
// instance's: adopted (not rewritten, not deleted) while BGP re-learns
// them, and swept when stale.
func TestVRFAdoptedAtRestart(t *testing.T) {
	left := func(table int, p string, nh route.NextHop) route.Route {
		return route.Route{Table: table, Prefix: pfx(p), Kind: route.Unicast, Metric: 20, Protocol: protoOurs, NextHops: []route.NextHop{nh}}
	}
	ours := []route.Route{
		left(100, "10.0.1.0/24", route.NextHop{Ifindex: eth1}),
		left(100, "198.51.100.0/24", gw("10.0.1.2", eth1)),
		left(200, "198.51.100.0/24", gw("10.0.2.2", eth2)),
		left(200, "198.51.109.0/24", gw("10.0.2.2", eth2)), // not re-learned
	}
	f := &fakeFIB{routes: map[netip.Prefix]route.Route{}}
	opt := vrfOptions()
	opt.StaleAfter = 0
	r := newRigFIB(t, opt, f, ours...)
	f.byTable = map[route.TablePrefix]route.Route{}
	for _, o := range ours {
		f.byTable[o.Key()] = o
	}
	writes := f.writes
	eq(t, "stale", r.st.counts.Stale, 3) // the connected route is confirmed at once
	eq(t, "kept in XDP", r.dp.egressIn(t, 200, "198.51.109.0/24"), []string{"3:" + mac2.String()})
	r.bgpIn(100, "198.51.100.0/24", "10.0.1.2")
	r.bgpIn(200, "198.51.100.0/24", "10.0.2.2")
	eq(t, "nothing rewritten", f.writes-writes, 0)
	eq(t, "stale left", r.st.counts.Stale, 1)
	r.ev(sweepRequest{})
	eq(t, "swept", r.fib.viaIn(200, "198.51.109.0/24"), "")
	eq(t, "kept 100", r.fib.viaIn(100, "198.51.100.0/24"), "[10.0.1.2@2]")
	eq(t, "kept 200", r.fib.viaIn(200, "198.51.100.0/24"), "[10.0.2.2@3]")
	eq(t, "connected kept", r.fib.viaIn(100, "10.0.1.0/24"), "[dev#2]")
}
