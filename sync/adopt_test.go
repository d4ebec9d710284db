package sync

import (
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// xdpState is what the fake maps hold, as bpf.Datapath reads it back.
func (f *fakeDP) xdpState() *route.XDPState {
	st := &route.XDPState{Groups: map[uint32][]uint32{}, NextHops: maps.Clone(f.nhs)}
	for _, r := range f.routes {
		st.Routes = append(st.Routes, r)
		if r.Group != 0 {
			st.Groups[r.Group] = slices.Clone(f.groups[r.Group])
		}
	}
	return st
}

func (f *fakeDP) clone() *fakeDP {
	c := newFakeDP()
	c.routes, c.nhs, c.neighs, c.ifaces = maps.Clone(f.routes), maps.Clone(f.nhs), maps.Clone(f.neighs), maps.Clone(f.ifaces)
	for id, g := range f.groups {
		c.groups[id] = slices.Clone(g)
	}
	return c
}

// TestAdoptTouchesNothingRight: a restarted sync that takes over the XDP
// maps a previous instance left (hitless restart) and learns the same
// routes writes no route, group or next hop; routes the previous
// instance had and BGP did not re-learn stay as they were in XDP and in
// the kernel until the sweep, and then go.
func TestAdoptTouchesNothingRight(t *testing.T) {
	r := newRig(t)
	set := func(r *rig) {
		for i := range 50 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24)
			nhs := []netip.Addr{ip("10.0.1.2")}
			switch i % 3 {
			case 1:
				nhs = []netip.Addr{ip("10.0.2.2")}
			case 2:
				nhs = []netip.Addr{ip("10.0.1.2"), ip("10.0.2.2")}
			}
			r.st.setBGP(p, nhs, nil, peerA, false)
		}
		r.st.apply(0)
	}
	set(r)
	r.bgp("203.0.113.0/24", "10.0.2.2") // not re-learned after the restart
	// Freed and re-used ids leave holes and stale next-hop entries.
	r.bgp("192.0.2.0/24", "10.0.1.99")
	r.bgp("192.0.2.0/24")

	var ours []route.Route
	for _, rt := range r.fib.routes { // all ours
		rt.Protocol = protoOurs
		ours = append(ours, rt)
	}
	left := r.dp.clone()
	before := left.clone()

	f2 := &fakeFIB{routes: maps.Clone(r.fib.routes)}
	r2 := newRigDP(t, Options{Adopt: left.xdpState()}, left, f2, ours...)
	eq(t, "XDP route writes at the restart", r2.dp.writes, 0)
	set(r2)
	eq(t, "XDP route writes after BGP re-learned", r2.dp.writes, 0)
	eq(t, "kernel writes", r2.fib.writes, 0)
	if !reflect.DeepEqual(r2.dp.xdpState().Groups, before.xdpState().Groups) || !reflect.DeepEqual(r2.dp.nhs, before.nhs) || !reflect.DeepEqual(r2.dp.routes, before.routes) {
		t.Errorf("maps changed across the restart:\ngroups %v\nwas    %v\nnhs %v\nwas %v", r2.dp.groups, before.groups, r2.dp.nhs, before.nhs)
	}
	eq(t, "not re-learned: XDP as it was", r2.dp.egress(t, "203.0.113.0/24"), r.dp.egress(t, "203.0.113.0/24"))
	eq(t, "not re-learned: kernel as it was", r2.fib.via("203.0.113.0/24"), "[10.0.2.2@3]")

	r2.st.sweepStale()
	r2.st.apply(0)
	eq(t, "swept from XDP", r2.dp.egress(t, "203.0.113.0/24"), []string(nil))
	eq(t, "swept from the kernel", r2.fib.via("203.0.113.0/24"), "")
	eq(t, "the rest", r2.dp.egress(t, "198.18.2.0/24"), r.dp.egress(t, "198.18.2.0/24"))
	eq(t, "adopted groups left", len(r2.st.adopted), 0)

	// New work after the restart gets ids that collide with nothing.
	r2.bgp("192.0.2.0/24", "10.0.1.2", "10.0.2.2")
	r2.bgp("192.0.3.0/24", "10.0.1.3")
	eq(t, "new route", r2.dp.egress(t, "192.0.2.0/24"), r.dp.egress(t, "198.18.2.0/24"))
	seen := map[uint32]string{}
	for k, g := range r2.st.groups {
		if o, dup := seen[g.id]; dup {
			t.Errorf("group id %d used by %s and %s", g.id, o, k)
		}
		seen[g.id] = k
	}
	nhSeen := map[uint32]route.NextHop{}
	for nh, x := range r2.st.nhs {
		if o, dup := nhSeen[x.id]; dup {
			t.Errorf("next-hop id %d used by %v and %v", x.id, o, nh)
		}
		nhSeen[x.id] = nh
	}
}
