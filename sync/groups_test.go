package sync

import (
	"net/netip"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// groupOf returns the group id the XDP route of p uses.
func (f *fakeDP) groupOf(t *testing.T, p string) uint32 {
	t.Helper()
	e, ok := f.routes[route.TablePrefix{Table: route.TableMain, Prefix: netip.MustParsePrefix(p)}]
	if !ok || e.Kind != route.Unicast {
		t.Fatalf("%s: no unicast XDP route (%+v)", p, e)
	}
	return e.Group
}

// TestGroupChangeDerivesBuckets: when a route's next-hop set changes and
// it moves to another group, the new group's hash buckets are derived
// from the group it used (so flows on the members both share stay put,
// bpf/resilient.go); rewrites of a group derive from itself.
func TestGroupChangeDerivesBuckets(t *testing.T) {
	const p = "198.51.100.0/24"
	t.Run("kernel multipath", func(t *testing.T) {
		r := newRig(t)
		r.ev(route.RouteEvent{Route: via(p, 0, gw("10.0.1.2", eth1), gw("10.0.1.3", eth1), gw("10.0.2.2", eth2))})
		old := r.dp.groupOf(t, p)
		eq(t, "first write", r.dp.from[old], old)
		r.ev(route.RouteEvent{Route: via(p, 0, gw("10.0.1.2", eth1), gw("10.0.2.2", eth2))})
		nw := r.dp.groupOf(t, p)
		if nw == old {
			t.Fatalf("the route kept group %d with another next-hop set", old)
		}
		eq(t, "new group derived from", r.dp.from[nw], old)
		eq(t, "members", len(r.dp.groups[nw]), 2)
	})
	t.Run("BGP multipath", func(t *testing.T) {
		r := newRig(t)
		r.bgp(p, "10.0.2.2", "10.0.1.2")
		old := r.dp.groupOf(t, p)
		r.bgp(p, "10.0.2.2")
		nw := r.dp.groupOf(t, p)
		if nw == old {
			t.Fatalf("the route kept group %d with another next-hop set", old)
		}
		eq(t, "new group derived from", r.dp.from[nw], old)
		// A member's link going down rewrites the group in place.
		r.bgp(p, "10.0.2.2", "10.0.1.2")
		g := r.dp.groupOf(t, p)
		r.ev(route.LinkEvent{Link: route.Link{Index: eth1, Name: "eth1", MTU: 1500, MAC: mac3, Up: false}})
		eq(t, "link down", r.dp.groupOf(t, p), g)
		eq(t, "rewrite derived from", r.dp.from[g], g)
		eq(t, "members left", len(r.dp.groups[g]), 1)
	})
}
