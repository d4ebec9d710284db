package sync

import (
	"net/netip"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// TestNexthopObjectIDNotReusedBeforeDelete: a single freed by a group
// rewrite is deleted from the kernel at the end of the apply; its id must
// not be handed to a new object in the same apply (the delete would take
// the new object, and the routes by it, with it).
func TestNexthopObjectIDNotReusedBeforeDelete(t *testing.T) {
	r := nhRig(t)
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0, gw("10.0.1.2", eth1))})
	r.st.setBGP(pfx("198.18.0.0/24"), []netip.Addr{ip("172.16.0.1")}, nil, peerA, false)
	r.st.apply(0)
	eq(t, "kernel via A", r.fib.via("198.18.0.0/24"), "[10.0.1.2@2]")

	// In one apply: the IGP path of set A moves (its old single is freed)
	// and a new set B needs a group.
	r.st.setBGP(pfx("198.19.0.0/24"), []netip.Addr{ip("10.0.2.2")}, nil, peerA, false)
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0, gw("10.0.2.2", eth2))})
	eq(t, "kernel via A moved", r.fib.via("198.18.0.0/24"), "[10.0.2.2@3]")
	eq(t, "kernel via B", r.fib.via("198.19.0.0/24"), "[10.0.2.2@3]")
	for _, p := range []string{"198.18.0.0/24", "198.19.0.0/24"} {
		rt, ok := r.fib.routes[pfx(p)]
		if !ok {
			continue
		}
		if _, ok := r.fib.nhGroups[rt.NHID]; rt.NHID != 0 && !ok {
			t.Errorf("%s by nexthop %d, which the kernel does not have", p, rt.NHID)
		}
	}
}
