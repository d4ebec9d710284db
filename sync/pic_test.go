package sync

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/route"
)

// TestPICBackupSwitch: routes with a backup path keep one group per set;
// when the primary's link goes down or its neighbor fails, that group is
// rewritten to the backup at once, without writing any route to XDP; the
// kernel then follows the resolution (flushed routes re-installed via the
// backup), still without XDP route writes.
func TestPICBackupSwitch(t *testing.T) {
	r := newRig(t)
	const n = 200
	prefix := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24)
	}
	for i := range n {
		r.st.setBGP(prefix(i), []netip.Addr{ip("10.0.1.2")}, []netip.Addr{ip("10.0.2.2")}, peerA, false)
	}
	r.st.apply(0)
	viaA, viaB := []string{"2:" + mac1.String()}, []string{"3:" + mac2.String()}
	eq(t, "primary in XDP", r.dp.egress(t, "198.18.7.0/24"), viaA)
	eq(t, "primary in the kernel", r.fib.via("198.18.7.0/24"), "[10.0.1.2@2]")
	eq(t, "groups", len(r.st.groups), 3) // the set's, and the connected routes'

	// A's neighbor fails: the set's group moves to B; no route is written.
	writes := r.dp.writes
	r.ev(route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: ip("10.0.1.2")}, Deleted: true})
	for i := range n {
		eq(t, "backup after neighbor failure", r.dp.egress(t, prefix(i).String()), viaB)
	}
	eq(t, "XDP route writes", r.dp.writes-writes, 0)
	eq(t, "failovers (one group)", r.st.counts.Failovers, uint64(1))
	r.ev(route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: ip("10.0.1.2"), MAC: mac1, Valid: true}})
	eq(t, "primary again", r.dp.egress(t, "198.18.7.0/24"), viaA)
	eq(t, "failovers after the return", r.st.counts.Failovers, uint64(1))

	// eth1 down: the group moves with the link event alone.
	writes = r.dp.writes
	r.ev(route.LinkEvent{Link: route.Link{Index: eth1, Name: "eth1", MTU: 1500, MAC: mac3}})
	eq(t, "backup after link down", r.dp.egress(t, "198.18.7.0/24"), viaB)
	eq(t, "failovers", r.st.counts.Failovers, uint64(2))
	eq(t, "XDP route writes", r.dp.writes-writes, 0)

	// The kernel flushed the connected route and ours via eth1: they are
	// re-installed via B, and XDP keeps every route on the same group.
	for i := range n {
		delete(r.fib.routes, prefix(i))
	}
	r.ev(route.RouteResync{Routes: []route.Route{connected("10.0.2.0/24", eth2)}})
	for i := range n {
		p := prefix(i).String()
		eq(t, "kernel via backup "+p, r.fib.via(p), "[10.0.2.2@3]")
		eq(t, "XDP via backup "+p, r.dp.egress(t, p), viaB)
	}
	eq(t, "eth1's connected route gone from XDP", r.dp.egress(t, "10.0.1.0/24"), []string(nil))
	eq(t, "XDP route writes after the resync (that delete)", r.dp.writes-writes, 1)
	eq(t, "bgp routes in the kernel", r.st.counts.FIB4, n)

	// BGP converges: B becomes the primary, without backup. The routes
	// move to B's own set (one write each, same forwarding).
	for i := range n {
		r.st.setBGP(prefix(i), []netip.Addr{ip("10.0.2.2")}, nil, peerA, false)
	}
	r.st.apply(0)
	eq(t, "after convergence", r.dp.egress(t, "198.18.7.0/24"), viaB)
	eq(t, "kernel after convergence", r.fib.via("198.18.7.0/24"), "[10.0.2.2@3]")
}

// TestPICSetKeys: the backup is part of a set's identity, and a backup
// next hop that is also a primary one is no backup.
func TestPICSetKeys(t *testing.T) {
	r := newRig(t)
	a, b := ip("10.0.1.2"), ip("10.0.2.2")
	s1 := r.st.getSet([]netip.Addr{a}, []netip.Addr{b}, peerA)
	s2 := r.st.getSet([]netip.Addr{a}, nil, peerA)
	s3 := r.st.getSet([]netip.Addr{a}, []netip.Addr{a}, peerA)
	if s1 == s2 {
		t.Errorf("set with backup %d = set without %d", s1, s2)
	}
	if s3 != s2 {
		t.Errorf("backup equal to the primary made another set: %d, want %d", s3, s2)
	}
	eq(t, "backup resolved", fmt.Sprint(r.st.setsByID[s1].resolvedBackup), "[10.0.2.2@3]")
}

// TestPICPeerDropped: BGP dropping the primary's neighbor switches its
// groups to the backup at once (its withdrawals come later); the mark
// goes when the neighbor sends paths again, not for paths queued before
// the drop.
func TestPICPeerDropped(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRigWith(t, Options{now: func() time.Time { return now }})
	a, b := ip("10.0.1.2"), ip("10.0.2.2")
	r.st.setBGP(pfx("198.18.0.0/24"), []netip.Addr{a}, []netip.Addr{b}, a, false)
	r.st.setBGP(pfx("198.18.1.0/24"), []netip.Addr{b}, []netip.Addr{a}, b, false)
	r.st.apply(0)
	viaA, viaB := []string{"2:" + mac1.String()}, []string{"3:" + mac2.String()}
	eq(t, "primary A", r.dp.egress(t, "198.18.0.0/24"), viaA)

	writes := r.dp.writes
	r.ev(peerDropped{a})
	eq(t, "backup B after A dropped", r.dp.egress(t, "198.18.0.0/24"), viaB)
	eq(t, "primary B unchanged", r.dp.egress(t, "198.18.1.0/24"), viaB)
	eq(t, "XDP route writes", r.dp.writes-writes, 0)

	r.st.peerSeen(a) // a path of A queued before the drop
	r.st.apply(0)
	eq(t, "still on the backup", r.dp.egress(t, "198.18.0.0/24"), viaB)
	now = now.Add(dropSettle)
	r.st.peerSeen(a) // A is back
	r.st.apply(0)
	eq(t, "primary A again", r.dp.egress(t, "198.18.0.0/24"), viaA)
}
