package sync

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/route"
)

// TestLinkDownFlush: an IPv4 link going down makes the kernel drop every
// route through it without a message per route; the watcher then sends the
// table as it is. Routes gone from the kernel leave XDP, our BGP routes
// are forgotten and come back in both sinks when the link does.
func TestLinkDownFlush(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))}) // static
	r.bgp("203.0.113.0/24", "10.0.2.2")
	eq(t, "bgp in kernel", r.fib.via("203.0.113.0/24"), "[10.0.2.2@3]")

	// eth2 down: the kernel flushed its connected route, the static route
	// and ours, and said so only through the link.
	delete(r.fib.routes, pfx("203.0.113.0/24"))
	r.ev(route.LinkEvent{Link: route.Link{Index: eth2, Name: "eth2", MTU: 9000, MAC: mac3}},
		route.RouteResync{Routes: []route.Route{connected("10.0.1.0/24", eth1)}})
	eq(t, "static gone from XDP", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	eq(t, "connected gone from XDP", r.dp.egress(t, "10.0.2.0/24"), []string(nil))
	eq(t, "bgp gone from XDP (unresolved)", r.dp.egress(t, "203.0.113.0/24"), []string(nil))
	eq(t, "bgp routes recorded in the kernel", r.st.counts.FIB4, 0)

	// eth2 up: the kernel re-adds the connected route (with a message);
	// the BGP route is reinstalled in both; the static route stays gone,
	// as in the kernel.
	r.ev(route.LinkEvent{Link: route.Link{Index: eth2, Name: "eth2", MTU: 9000, MAC: mac3, Up: true}},
		route.RouteEvent{Route: connected("10.0.2.0/24", eth2)})
	eq(t, "bgp back in the kernel", r.fib.via("203.0.113.0/24"), "[10.0.2.2@3]")
	eq(t, "bgp back in XDP", r.dp.egress(t, "203.0.113.0/24"), []string{"3:" + mac2.String()})
	eq(t, "static still gone", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
}

// TestPartialXDPBatch: a route batch that stops part-way commits what was
// written: those entries keep their groups (never freed and reused while
// referenced), the rest is retried.
func TestPartialXDPBatch(t *testing.T) {
	r := newRig(t)
	r.dp.failAfter = 1
	r.st.kernelEvent(route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))})
	r.st.kernelEvent(route.RouteEvent{Route: via("198.51.101.0/24", 0, gw("10.0.1.2", eth1))})
	r.st.kernelEvent(route.RouteEvent{Route: via("198.51.102.0/24", 0, gw("10.0.1.2", eth1), gw("10.0.2.2", eth2))})
	r.st.apply(0)
	written := 0
	for _, p := range []string{"198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24"} {
		if e := r.st.entries.get(mk(p)); e.xdp.on {
			written++
			// What XDP forwards with is the route's own group.
			if len(r.dp.egress(t, p)) == 0 {
				t.Errorf("%s written but its group is gone", p)
			}
		}
	}
	eq(t, "committed of the partial batch", written, 1)
	eq(t, "failed", len(r.st.failed), 2)
	// Freed groups of the failed ones are not handed to new routes at once.
	r.ev(route.RouteEvent{Route: via("198.51.103.0/24", 0, gw("10.0.1.7", eth1))})
	r.st.retryFailed()
	r.st.apply(0)
	eq(t, "after retry", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	eq(t, "after retry", r.dp.egress(t, "198.51.101.0/24"), []string{"2:" + mac1.String()})
	eq(t, "after retry", r.dp.egress(t, "198.51.102.0/24"), []string{"2:" + mac1.String(), "3:" + mac2.String()})
	eq(t, "new route", r.dp.egress(t, "198.51.103.0/24"), []string{"2:"})
	// Withdrawn: gone from XDP.
	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2)), Deleted: true})
	eq(t, "withdrawn", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
}

// TestAuditRepairs: entries changed behind sync's back are found and
// rewritten, and counted.
func TestAuditRepairs(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))},
		route.RouteEvent{Route: via("198.51.101.0/24", 0, gw("10.0.1.2", eth1))})
	eq(t, "clean audit", r.st.audit(), 0)
	delete(r.dp.routes, mk("198.51.100.0/24"))                                                               // lost
	r.dp.routes[mk("198.51.101.0/24")] = route.Entry{Table: route.TableMain, Prefix: pfx("198.51.101.0/24")} // wrong group
	r.dp.routes[mk("192.0.2.0/24")] = route.Entry{Table: route.TableMain, Prefix: pfx("192.0.2.0/24")}       // unknown
	g := r.st.entries.get(mk("198.51.100.0/24")).xdp.group
	r.dp.groups[g] = nil // a group emptied
	eq(t, "repairs", r.st.audit(), 4)
	eq(t, "repaired", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	eq(t, "repaired", r.dp.egress(t, "198.51.101.0/24"), []string{"2:" + mac1.String()})
	eq(t, "unknown removed", r.dp.egress(t, "192.0.2.0/24"), []string(nil))
	eq(t, "counted", r.st.counts.Repairs, uint64(4))
	eq(t, "clean again", r.st.audit(), 0)

	// A route written while the maps were read (outside the lock) is not
	// taken for damage.
	r.st.beginAudit()
	read, _ := r.dp.Routes()
	r.ev(route.RouteEvent{Route: via("198.51.102.0/24", 0, gw("10.0.2.2", eth2))},
		route.RouteEvent{Route: via("198.51.101.0/24", 0, gw("10.0.1.2", eth1)), Deleted: true})
	eq(t, "changes during the read", r.st.finishAudit(read, nil), 0)
	eq(t, "still counted", r.st.counts.Repairs, uint64(4))
}

// TestStaleRoutesMirrored: routes a previous instance left in the kernel
// are forwarded by XDP as the kernel does (not by a covering route) until
// BGP re-learns them or the sweep removes them from both.
func TestStaleRoutesMirrored(t *testing.T) {
	left := route.Route{Prefix: pfx("198.51.200.0/24"), Kind: route.Unicast, Metric: 20, Protocol: protoOurs,
		NextHops: []route.NextHop{gw("10.0.2.2", eth2)}}
	r := newRig(t, left)
	r.ev(route.RouteEvent{Route: via("0.0.0.0/0", 0, gw("10.0.1.2", eth1))})
	eq(t, "stale route in XDP as in the kernel", r.dp.egress(t, "198.51.200.0/24"), []string{"3:" + mac2.String()})
	eq(t, "kernel untouched", r.fib.writes, 0)
	// BGP re-learns it through another next hop: both follow.
	r.bgp("198.51.200.0/24", "10.0.1.2")
	eq(t, "relearned", r.dp.egress(t, "198.51.200.0/24"), []string{"2:" + mac1.String()})
	eq(t, "relearned in the kernel", r.fib.via("198.51.200.0/24"), "[10.0.1.2@2]")

	// Not re-learned: removed from both by the sweep.
	r2 := newRig(t, left)
	r2.st.sweepStale()
	r2.st.apply(0)
	eq(t, "swept from XDP", r2.dp.egress(t, "198.51.200.0/24"), []string(nil))
	eq(t, "swept from the kernel", r2.fib.via("198.51.200.0/24"), "")
}

// TestResolveViaDefault: a BGP next hop covered only by a default route is
// unresolved unless the operator allows resolving through it.
func TestResolveViaDefault(t *testing.T) {
	for _, viaDefault := range []bool{false, true} {
		r := newRigWith(t, Options{ResolveViaDefault: viaDefault})
		r.ev(route.RouteEvent{Route: via("0.0.0.0/0", 0, gw("10.0.1.2", eth1))})
		r.bgp("198.51.100.0/24", "192.0.2.9")
		want, wantFIB := []string(nil), ""
		if viaDefault {
			want, wantFIB = []string{"2:" + mac1.String()}, "[10.0.1.2@2]"
		}
		eq(t, "xdp", r.dp.egress(t, "198.51.100.0/24"), want)
		eq(t, "fib", r.fib.via("198.51.100.0/24"), wantFIB)
	}
}

// TestSeveralRoutesPerMetric: IPv6 keeps one route per (metric, next
// hops): fe80::/64 on every port; deleting one leaves the others, and
// one path of a multipath route can go alone.
func TestSeveralRoutesPerMetric(t *testing.T) {
	r := newRig(t)
	ll1 := route.Route{Prefix: pfx("fe80::/64"), Kind: route.Unicast, Metric: 256, NextHops: []route.NextHop{{Ifindex: eth1}}}
	ll2 := route.Route{Prefix: pfx("fe80::/64"), Kind: route.Unicast, Metric: 256, NextHops: []route.NextHop{{Ifindex: eth2}}}
	r.ev(route.RouteEvent{Route: ll1}, route.RouteEvent{Route: ll2})
	eq(t, "both kept", len(r.st.entries.get(mk("fe80::/64")).kernelRoutes()), 2)
	// XDP cannot know which the kernel picks: the kernel decides.
	eq(t, "ambiguous", r.dp.egress(t, "fe80::/64"), []string{"kernel-only"})
	r.ev(route.RouteEvent{Route: ll1, Deleted: true})
	eq(t, "the other stays", r.st.entries.get(mk("fe80::/64")).kernelRoutes(), []route.Route{ll2})
	eq(t, "unambiguous again", r.dp.egress(t, "fe80::/64"), []string{"3:direct"})

	mp := via("2001:db8:1::/48", 1024, gw("fe80::1", eth1), gw("fe80::2", eth2))
	r.ev(route.RouteEvent{Route: mp})
	r.ev(route.RouteEvent{Route: via("2001:db8:1::/48", 1024, gw("fe80::1", eth1)), Deleted: true})
	eq(t, "one path removed", r.st.entries.get(mk("2001:db8:1::/48")).kernelRoutes()[0].NextHops, []route.NextHop{gw("fe80::2", eth2)})
	// IPv4: one route per metric, replaced by the next of that metric.
	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 5, gw("10.0.1.2", eth1))},
		route.RouteEvent{Route: via("198.51.100.0/24", 5, gw("10.0.2.2", eth2))})
	eq(t, "v4 replaced", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})
}

// TestGroupIDsCool: a freed group or next-hop id is not reused until it
// has cooled: a packet that read the old route may still follow it.
func TestGroupIDsCool(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRigWith(t, Options{now: func() time.Time { return now }})
	r.bgp("198.51.100.0/24", "10.0.1.2")
	old := r.st.groupByID[r.st.entries.get(mk("198.51.100.0/24")).xdp.group]
	oldNH := old.nhs[0].id
	r.bgp("198.51.100.0/24") // withdrawn: group and next hop freed
	r.bgp("198.51.101.0/24", "10.0.2.2")
	g := r.st.groupByID[r.st.entries.get(mk("198.51.101.0/24")).xdp.group]
	if g.id == old.id || g.nhs[0].id == oldNH {
		t.Errorf("freed ids reused at once: group %d (old %d), next hop %d (old %d)", g.id, old.id, g.nhs[0].id, oldNH)
	}
	eq(t, "old group kept as it was", r.dp.groups[old.id], []uint32{oldNH})
	now = now.Add(idCooldown)
	r.bgp("198.51.102.0/24", "10.0.2.3")
	if g := r.st.entries.get(mk("198.51.102.0/24")).xdp.group; g != old.id {
		t.Errorf("cooled group id not reused: got %d, want %d", g, old.id)
	}
}

// TestCountsDoNotWait: Counts answers while the worker holds the state
// (a long batch), and a large change set is applied in chunks.
func TestCountsDoNotWait(t *testing.T) {
	dp, f := newFakeDP(), &fakeFIB{routes: map[netip.Prefix]route.Route{}}
	s := New(Options{Datapath: dp, FIB: f, Metric: 20, Log: slog.New(slog.DiscardHandler)})
	s.mu.Lock()
	done := make(chan Counts)
	go func() { done <- s.Counts() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Counts waited for the worker")
	}
	s.mu.Unlock()

	r := newRig(t)
	for i := range 100 {
		r.st.setBGP(netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), 32), []netip.Addr{ip("10.0.1.2")}, nil, peerA, false)
	}
	eq(t, "more after a chunk", r.st.apply(30), true)
	eq(t, "left", r.st.dirty.Len(), 70)
}

// TestKernelRefusalFollowed: a route the kernel refuses is not forwarded
// by XDP either (XDP keeps what the kernel has), is reported once and not
// retried until it changes.
func TestKernelRefusalFollowed(t *testing.T) {
	var logs bytes.Buffer
	r := newRigWith(t, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	r.fib.refuse = ip("10.0.2.77")
	r.bgp("198.51.100.0/24", "10.0.2.77")
	eq(t, "not in XDP", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	eq(t, "rejected", r.st.counts.Rejected, 1)
	writes := r.fib.writes
	for range 3 {
		r.st.retryFailed()
		r.st.apply(0)
	}
	eq(t, "not retried", r.fib.writes, writes)
	eq(t, "reported once", strings.Count(logs.String(), "kernel refused"), 1)
	info := r.st.routeInfos(-1, pfx("198.51.100.0/24"))
	if len(info) != 1 || !strings.Contains(info[0].Error, "rejected") {
		t.Errorf("routes do not show the refusal: %+v", info)
	}

	// The path changes: installed; back to a refused one: the kernel keeps
	// the old route, and so does XDP.
	r.bgp("198.51.100.0/24", "10.0.2.2")
	eq(t, "installed", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")
	eq(t, "rejection cleared", r.st.counts.Rejected, 0)
	r.bgp("198.51.100.0/24", "10.0.2.77")
	eq(t, "kernel kept", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")
	eq(t, "XDP follows the kernel", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})

	// A transient failure is retried.
	r.fib.failNext = 1
	r.bgp("198.51.101.0/24", "10.0.2.2")
	eq(t, "failed, not in XDP", r.dp.egress(t, "198.51.101.0/24"), []string(nil))
	r.st.retryFailed()
	r.st.apply(0)
	eq(t, "retried", r.dp.egress(t, "198.51.101.0/24"), []string{"3:" + mac2.String()})
}

// TestOwnAddressNextHop: a BGP next hop that is an address of the router,
// or the network or broadcast address of a connected subnet, is never
// used (RFC 4271 9.1.2) nor ARPed for.
func TestOwnAddressNextHop(t *testing.T) {
	r := newRig(t)
	for _, nh := range []string{"10.0.2.1", "10.0.2.0", "10.0.2.255"} {
		r.fib.resolved = nil
		r.bgp("198.51.100.0/24", nh)
		eq(t, nh+": xdp", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
		eq(t, nh+": fib", r.fib.via("198.51.100.0/24"), "")
		eq(t, nh+": resolved", r.fib.resolved, []string(nil))
		info := r.st.routeInfos(-1, pfx("198.51.100.0/24"))
		if len(info) != 1 || !strings.Contains(info[0].Error, nh) {
			t.Errorf("%s: no reason shown: %+v", nh, info)
		}
	}
	// An ECMP set keeps its usable members.
	r.bgp("198.51.100.0/24", "10.0.2.1", "10.0.2.2")
	eq(t, "usable member", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")
}

// TestGroupExhaustion: with the group map full, routes that need a new
// group are passed to the kernel in XDP (never an id past the map),
// counted, logged once; they are forwarded in XDP once room returns.
func TestGroupExhaustion(t *testing.T) {
	var logs bytes.Buffer
	now := time.Unix(1000, 0)
	// Ids 1..7: 2 for the connected routes, 5 for BGP.
	r := newRigWith(t, Options{MaxGroups: 8, MaxGroupsPerPeer: 100, Log: slog.New(slog.NewTextHandler(&logs, nil)), now: func() time.Time { return now }})
	for i := range 10 {
		r.st.setBGP(netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), 32), []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 1, byte(10 + i)})}, nil, peerA, false)
	}
	r.st.apply(0)
	for _, e := range r.dp.routes {
		if e.Kind == route.Unicast && e.Group >= 8 {
			t.Errorf("route %v points past the group map: %d", e.Prefix, e.Group)
		}
	}
	eq(t, "refused", r.st.counts.Refused, 5)
	for range 3 {
		r.st.retryFailed()
		r.st.apply(0)
	}
	eq(t, "logged once", strings.Count(logs.String(), "XDP map full"), 1)
	// Five withdrawn: after the cool-down the others get groups.
	for i := range 5 {
		r.st.setBGP(netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), 32), nil, nil, peerA, false)
	}
	r.st.apply(0)
	now = now.Add(idCooldown)
	r.st.retryFailed()
	r.st.apply(0)
	eq(t, "refused after room returned", r.st.counts.Refused, 0)
	eq(t, "recovery logged", strings.Count(logs.String(), "room again"), 1)
	for i := 5; i < 10; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), 32)
		if e := r.dp.routes[mainKey(p)]; e.Kind != route.Unicast {
			t.Errorf("%v still not forwarded in XDP: %v", p, e.Kind)
		}
	}
}

// TestGroupsPerPeer: one peer's routes cannot use more than its share of
// next-hop groups; the rest are installed in the kernel and passed to it
// in XDP, others' routes are unaffected, and they get groups once the
// peer has room again.
func TestGroupsPerPeer(t *testing.T) {
	var logs bytes.Buffer
	r := newRigWith(t, Options{MaxGroupsPerPeer: 2, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	peerB := ip("10.0.1.2")
	for i := range 4 {
		r.st.setBGP(pfx(fmt.Sprintf("198.18.%d.0/24", i)), []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 2, byte(10 + i)})}, nil, peerA, false)
	}
	r.st.setBGP(pfx("198.19.0.0/24"), []netip.Addr{ip("10.0.1.2")}, nil, peerB, false)
	r.st.apply(0)
	eq(t, "refused", r.st.counts.Refused, 2)
	eq(t, "other peer unaffected", r.dp.egress(t, "198.19.0.0/24"), []string{"2:" + mac1.String()})
	eq(t, "refused still in the kernel", r.fib.via("198.18.3.0/24"), "[10.0.2.13@3]")
	eq(t, "in XDP as kernel-only", r.dp.egress(t, "198.18.3.0/24"), []string{"kernel-only"})
	eq(t, "logged once", strings.Count(logs.String(), "per peer"), 1)
	r.st.setBGP(pfx("198.18.0.0/24"), nil, nil, peerA, false)
	r.st.setBGP(pfx("198.18.1.0/24"), nil, nil, peerA, false)
	r.st.apply(0)
	r.st.retryFailed()
	r.st.apply(0)
	eq(t, "refused after withdrawals", r.st.counts.Refused, 0)
	eq(t, "readmitted", r.dp.egress(t, "198.18.3.0/24"), []string{"3:"})
	eq(t, "recovery logged", strings.Count(logs.String(), "within its next-hop group limit"), 1)
}
