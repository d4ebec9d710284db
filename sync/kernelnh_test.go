package sync

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

func nhRig(t *testing.T, ours ...route.Route) *rig {
	return newRigWith(t, Options{NexthopObjects: true}, ours...)
}

// TestNexthopObjectsFollowResolution: BGP routes name their set's kernel
// group; the IGP path moving replaces the group (and adds a single), with
// no route written to either sink; withdrawing everything deletes the
// objects after the routes.
func TestNexthopObjectsFollowResolution(t *testing.T) {
	r := nhRig(t)
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0, gw("10.0.1.2", eth1))})
	const n = 50
	prefix := func(i int) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24) }
	for i := range n {
		r.st.setBGP(prefix(i), []netip.Addr{ip("172.16.0.1")}, nil, peerA, false)
	}
	r.st.apply(0)
	id := r.fib.routes[prefix(0)].NHID
	if id < kernelNexthopBase {
		t.Fatalf("route by nexthop %d, want a group of ours (>= %d)", id, kernelNexthopBase)
	}
	for i := range n {
		if got := r.fib.routes[prefix(i)].NHID; got != id {
			t.Errorf("%s by nexthop %d, want the set's group %d", prefix(i), got, id)
		}
	}
	eq(t, "kernel objects", fmt.Sprint(len(r.fib.singles), len(r.fib.nhGroups)), "1 1")
	eq(t, "kernel via", r.fib.via("198.18.7.0/24"), "[10.0.1.2@2]")

	// The IGP path moves: one new single and a group replace, no route
	// written in the kernel; XDP rewrites the set's group only.
	fibWrites, xdpWrites, nhWrites := r.fib.writes, r.dp.writes, r.fib.nhWrites
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0, gw("10.0.2.2", eth2))})
	eq(t, "kernel route writes", r.fib.writes-fibWrites, 0)
	eq(t, "XDP route writes (the static route itself)", r.dp.writes-xdpWrites, 1)
	eq(t, "nexthop writes (single, group, old single deleted)", r.fib.nhWrites-nhWrites, 3)
	for i := range n {
		p := prefix(i).String()
		eq(t, "kernel follows "+p, r.fib.via(p), "[10.0.2.2@3]")
		eq(t, "XDP follows "+p, r.dp.egress(t, p), []string{"3:" + mac2.String()})
	}
	eq(t, "kernel objects", fmt.Sprint(len(r.fib.singles), len(r.fib.nhGroups)), "1 1")

	// Withdrawn: routes gone, then the objects.
	for i := range n {
		r.st.setBGP(prefix(i), nil, nil, peerA, false)
	}
	r.st.apply(0)
	eq(t, "bgp routes left", r.st.counts.FIB4, 0)
	eq(t, "kernel objects left", fmt.Sprint(len(r.fib.singles), len(r.fib.nhGroups)), "0 0")
}

// TestNexthopObjectsLinkDown: the kernel deletes our nexthops on a link
// that goes down, with the groups it empties and their routes, silently;
// once the link is back the group is made again and the route installed
// by it.
func TestNexthopObjectsLinkDown(t *testing.T) {
	r := nhRig(t)
	r.st.setBGP(pfx("198.18.0.0/24"), []netip.Addr{ip("10.0.1.2")}, nil, peerA, false)
	r.st.apply(0)
	eq(t, "kernel via A", r.fib.via("198.18.0.0/24"), "[10.0.1.2@2]")
	gid := r.fib.routes[pfx("198.18.0.0/24")].NHID

	// eth1 down, as the kernel does it: its single, the emptied group and
	// the route go; the watcher resyncs.
	for id, s := range r.fib.singles {
		if s.Ifindex == eth1 {
			delete(r.fib.singles, id)
		}
	}
	delete(r.fib.nhGroups, gid)
	delete(r.fib.routes, pfx("198.18.0.0/24"))
	r.ev(route.LinkEvent{Link: route.Link{Index: eth1, Name: "eth1", MTU: 1500, MAC: mac3}},
		route.RouteResync{Routes: []route.Route{connected("10.0.2.0/24", eth2)}})
	eq(t, "bgp routes in the kernel", r.st.counts.FIB4, 0)
	eq(t, "XDP", r.dp.egress(t, "198.18.0.0/24"), []string(nil))

	// eth1 back: the single and the group are made anew, then the route.
	r.ev(route.LinkEvent{Link: route.Link{Index: eth1, Name: "eth1", MTU: 1500, MAC: mac3, Up: true}},
		route.RouteEvent{Route: connected("10.0.1.0/24", eth1)})
	eq(t, "kernel via A again", r.fib.via("198.18.0.0/24"), "[10.0.1.2@2]")
	if got := r.fib.routes[pfx("198.18.0.0/24")].NHID; got == 0 {
		t.Error("route re-installed without a nexthop group")
	}
	eq(t, "XDP via A again", r.dp.egress(t, "198.18.0.0/24"), []string{"2:" + mac1.String()})
}

// TestNexthopObjectsNotWithBackup: routes with a backup (PIC) carry their
// next hops (they must survive a carrier loss); gaining the backup
// rewrites nothing in the kernel.
func TestNexthopObjectsNotWithBackup(t *testing.T) {
	r := nhRig(t)
	r.st.setBGP(pfx("198.18.0.0/24"), []netip.Addr{ip("10.0.1.2")}, nil, peerA, false)
	r.st.apply(0)
	if r.fib.routes[pfx("198.18.0.0/24")].NHID == 0 {
		t.Fatal("without a backup: no nexthop group")
	}
	r.st.setBGP(pfx("198.18.0.0/24"), []netip.Addr{ip("10.0.1.2")}, []netip.Addr{ip("10.0.2.2")}, peerA, false)
	r.st.apply(0)
	if got := r.fib.routes[pfx("198.18.0.0/24")].NHID; got != 0 {
		t.Errorf("with a backup: by nexthop %d, want its next hops", got)
	}
	eq(t, "kernel via A", r.fib.via("198.18.0.0/24"), "[10.0.1.2@2]")
	eq(t, "kernel objects left", fmt.Sprint(len(r.fib.singles), len(r.fib.nhGroups)), "0 0")
	r.st.setBGP(pfx("198.18.1.0/24"), []netip.Addr{ip("10.0.1.2")}, []netip.Addr{ip("10.0.2.2")}, peerA, false)
	writes := r.fib.writes
	r.st.apply(0)
	eq(t, "one install for a new prefix of the set", r.fib.writes-writes, 1)
}

// TestNexthopObjectsLeftovers: routes a previous instance left by its
// groups are kept until BGP re-learns them; a re-learned set with the same
// next hops takes the old group over (no route or object written); one
// with others gets a new group (id above the old ones) and the old
// objects are deleted once unused.
func TestNexthopObjectsLeftovers(t *testing.T) {
	old := uint32(kernelNexthopBase + 7)
	f := &fakeFIB{routes: map[netip.Prefix]route.Route{}}
	f.ApplyNexthops([]route.NexthopChange{
		{Nexthop: route.Nexthop{ID: old - 1, Gateway: ip("10.0.1.2"), Ifindex: eth1}},
		{Group: route.NexthopGroup{ID: old, Members: []uint32{old - 1}}},
	})
	left := route.Route{Prefix: pfx("198.18.0.0/24"), Kind: route.Unicast, Metric: 20, Protocol: protoOurs,
		NextHops: []route.NextHop{gw("10.0.1.2", eth1)}, NHID: old}
	r := newRigFIB(t, Options{NexthopObjects: true}, f, left)
	eq(t, "kept in the kernel", r.fib.routes[pfx("198.18.0.0/24")].NHID, old)
	eq(t, "mirrored in XDP", r.dp.egress(t, "198.18.0.0/24"), []string{"2:" + mac1.String()})

	left2 := route.Route{Prefix: pfx("198.18.1.0/24"), Kind: route.Unicast, Metric: 20, Protocol: protoOurs,
		NextHops: []route.NextHop{gw("10.0.1.2", eth1)}, NHID: old}
	r = newRigFIB(t, Options{NexthopObjects: true}, f, left, left2)
	writes, nhWrites := r.fib.writes, r.fib.nhWrites
	r.bgp("198.18.1.0/24", "10.0.1.2")
	eq(t, "same next hops: the old group taken over", r.fib.routes[pfx("198.18.1.0/24")].NHID, old)
	eq(t, "route writes", r.fib.writes-writes, 0)
	eq(t, "nexthop writes", r.fib.nhWrites-nhWrites, 0)
	r.st.sweepStale()
	r.st.apply(0)
	if _, ok := r.fib.nhGroups[old]; !ok {
		t.Errorf("group %d taken over deleted by the sweep", old)
	}
	if _, ok := r.fib.singles[old-1]; !ok {
		t.Errorf("single %d taken over deleted by the sweep", old-1)
	}

	// Other next hops: a new group; the old one goes once unused.
	r.bgp("198.18.1.0/24", "10.0.2.2")
	id := r.fib.routes[pfx("198.18.1.0/24")].NHID
	if id <= old {
		t.Errorf("re-learnt route by nexthop %d, want a new group above %d", id, old)
	}
	if _, ok := r.fib.nhGroups[old]; ok {
		t.Errorf("old group %d still there", old)
	}
	if _, ok := r.fib.singles[old-1]; ok {
		t.Errorf("old single %d still there", old-1)
	}
	eq(t, "kernel via", r.fib.via("198.18.1.0/24"), "[10.0.2.2@3]")
}

// TestNexthopObjectsRemovedOnExit: a clean stop removes our routes, then
// our nexthop objects, and nothing else.
func TestNexthopObjectsRemovedOnExit(t *testing.T) {
	r := nhRig(t)
	r.st.setBGP(pfx("198.18.0.0/24"), []netip.Addr{ip("10.0.1.2")}, nil, peerA, false)
	r.st.setBGP(pfx("198.18.1.0/24"), []netip.Addr{ip("10.0.1.2"), ip("10.0.2.2")}, nil, peerA, false)
	r.st.apply(0)
	eq(t, "kernel objects", fmt.Sprint(len(r.fib.singles), len(r.fib.nhGroups)), "2 2")
	s := &Syncer{opt: r.st.opt, st: r.st, log: r.st.log}
	if err := s.RemoveKernelRoutes(); err != nil {
		t.Fatal(err)
	}
	eq(t, "bgp routes left", r.st.counts.FIB4, 0)
	eq(t, "kernel objects left", fmt.Sprint(len(r.fib.singles), len(r.fib.nhGroups)), "0 0")
	eq(t, "connected routes left", len(r.fib.routes), 0) // the fake holds only ours
}

// TestNexthopObjectsGroupGone: a group the kernel deleted without telling
// (an install by it fails) is written again and the route retried, not
// given up as rejected.
func TestNexthopObjectsGroupGone(t *testing.T) {
	r := nhRig(t)
	r.st.setBGP(pfx("198.18.0.0/24"), []netip.Addr{ip("10.0.1.2")}, nil, peerA, false)
	r.st.apply(0)
	gid := r.fib.routes[pfx("198.18.0.0/24")].NHID
	// The kernel lost the group; a second prefix of the set is installed
	// by it.
	delete(r.fib.nhGroups, gid)
	r.st.setBGP(pfx("198.18.1.0/24"), []netip.Addr{ip("10.0.1.2")}, nil, peerA, false)
	r.st.apply(0)
	eq(t, "not rejected", r.st.counts.Rejected, 0)
	r.st.retryFailed()
	r.st.apply(0)
	eq(t, "installed after the retry", r.fib.via("198.18.1.0/24"), "[10.0.1.2@2]")
	if _, ok := r.fib.nhGroups[gid]; !ok {
		t.Errorf("group %d not written again", gid)
	}
}
