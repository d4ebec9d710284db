package sync

import (
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// TestLinkLocalNextHops: BGP next hops that are link-local addresses with
// their link (unnumbered sessions, RFC 8950: IPv4 routes via IPv6 next
// hops) resolve on that link whatever the routes, are installed in the
// kernel with the IPv6 gateway, and XDP forwards with the MAC of the IPv6
// neighbor; a link going down and up takes them away and back. The same
// address on two links is two next hops.
func TestLinkLocalNextHops(t *testing.T) {
	for _, objs := range []bool{false, true} {
		r := newRigWith(t, Options{NexthopObjects: objs})
		r.bgp("198.51.100.0/24", "fe80::1%eth1")
		r.bgp("2001:db8:1::/48", "fe80::1%eth1")
		r.bgp("198.51.101.0/24", "fe80::1%eth2")
		eq(t, "kernel, IPv4 via IPv6", r.fib.via("198.51.100.0/24"), "[fe80::1@2]")
		eq(t, "kernel, IPv6", r.fib.via("2001:db8:1::/48"), "[fe80::1@2]")
		eq(t, "kernel, other link", r.fib.via("198.51.101.0/24"), "[fe80::1@3]")
		eq(t, "XDP before the neighbor is known: no MAC (passed)", r.dp.egress(t, "198.51.100.0/24"), []string{"2:"})
		r.ev(route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: ip("fe80::1"), MAC: mac1, Valid: true}})
		eq(t, "XDP by the IPv6 neighbor's MAC", r.dp.egress(t, "198.51.100.0/24"), []string{"2:" + mac1.String()})
		eq(t, "XDP, IPv6 route", r.dp.egress(t, "2001:db8:1::/48"), []string{"2:" + mac1.String()})

		r.ev(route.LinkEvent{Link: route.Link{Index: eth1, Name: "eth1", MTU: 1500, MAC: mac3}})
		eq(t, "link down: unresolved", r.fib.via("198.51.100.0/24"), "")
		eq(t, "link down: other link kept", r.fib.via("198.51.101.0/24"), "[fe80::1@3]")
		r.ev(route.LinkEvent{Link: route.Link{Index: eth1, Name: "eth1", MTU: 1500, MAC: mac3, Up: true}})
		eq(t, "link up again", r.fib.via("198.51.100.0/24"), "[fe80::1@2]")
		eq(t, "XDP again", r.dp.egress(t, "198.51.100.0/24"), []string{"2:" + mac1.String()})

		r.bgp("198.51.100.0/24", "fe80::1%nosuchlink")
		eq(t, "unknown link: unresolved", r.fib.via("198.51.100.0/24"), "")
	}
}
