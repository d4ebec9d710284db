package fib

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

func single(id uint32, gw string, ifindex int) route.NexthopChange {
	c := route.NexthopChange{Nexthop: route.Nexthop{ID: id, Ifindex: ifindex}}
	if gw != "" {
		c.Nexthop.Gateway = netip.MustParseAddr(gw)
	}
	return c
}

func group(id uint32, members ...uint32) route.NexthopChange {
	return route.NexthopChange{Group: route.NexthopGroup{ID: id, Members: members}}
}

func delNH(id uint32) route.NexthopChange {
	return route.NexthopChange{Delete: true, Nexthop: route.Nexthop{ID: id}}
}

func byNHID(p string, nhid uint32) route.Route {
	return route.Route{Prefix: netip.MustParsePrefix(p), Kind: route.Unicast, Metric: 20, NHID: nhid}
}

func noErrs(t *testing.T, what string, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s %d: %v", what, i, err)
		}
	}
}

// ours returns our routes of the main table by prefix.
func ours(t *testing.T) map[string]route.Route {
	t.Helper()
	snap, err := Dump()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]route.Route{}
	for _, r := range snap.Ours {
		got[r.Prefix.String()] = r
	}
	return got
}

// TestNexthops installs nexthop objects and routes using them, replaces
// objects under the routes, reads both back and deletes them.
func TestNexthops(t *testing.T) {
	inLab(t, func(l *lab.Lab, ifindex int) {
		tbl, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Close()
		if !tbl.NexthopsSupported() {
			t.Fatal("kernel has no nexthop objects")
		}
		noErrs(t, "nexthop", tbl.ApplyNexthops([]route.NexthopChange{
			single(1, "10.99.0.2", ifindex), single(2, "10.99.0.3", ifindex),
			single(3, "", ifindex), single(6, "fd99::2", ifindex),
			group(10, 1, 2), group(11, 2), // singles first; one member is fine
		}))
		rs := []route.Route{byNHID("198.51.100.0/24", 10), byNHID("198.51.101.0/24", 1),
			byNHID("192.0.2.0/24", 3), byNHID("2001:db8::/32", 6), byNHID("203.0.113.0/24", 11)}
		var cs []route.Change
		for _, r := range rs {
			cs = append(cs, route.Change{Route: r})
		}
		noErrs(t, "route", tbl.Apply(cs))

		out, err := l.Output("r", "ip", "route", "show", "198.51.100.0/24")
		if err != nil || !strings.Contains(out, "nhid 10") {
			t.Errorf("ip route: %q %v, want nhid 10", out, err)
		}
		want := map[string]string{ // the kernel's expansion, and the id
			"198.51.100.0/24": fmt.Sprintf("10 [10.99.0.2@%d 10.99.0.3@%d]", ifindex, ifindex),
			"198.51.101.0/24": fmt.Sprintf("1 [10.99.0.2@%d]", ifindex),
			"192.0.2.0/24":    fmt.Sprintf("3 [dev#%d]", ifindex),
			"2001:db8::/32":   fmt.Sprintf("6 [fd99::2@%d]", ifindex),
			"203.0.113.0/24":  fmt.Sprintf("11 [10.99.0.3@%d]", ifindex),
		}
		check := func(when string) {
			t.Helper()
			got := ours(t)
			for p, w := range want {
				r := got[p]
				if g := fmt.Sprintf("%d %v", r.NHID, r.NextHops); g != w || r.Kind != route.Unicast {
					t.Errorf("%s: %s is %s %s, want %s", when, p, r.Kind, g, w)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%s: %d routes of ours, want %d", when, len(got), len(want))
			}
		}
		check("installed")

		// Routes follow their objects; no route is written.
		noErrs(t, "replace", tbl.ApplyNexthops([]route.NexthopChange{
			single(4, "10.99.0.4", ifindex), group(10, 2, 4), single(1, "10.99.0.5", ifindex)}))
		want["198.51.100.0/24"] = fmt.Sprintf("10 [10.99.0.3@%d 10.99.0.4@%d]", ifindex, ifindex)
		want["198.51.101.0/24"] = fmt.Sprintf("1 [10.99.0.5@%d]", ifindex)
		check("replaced")

		// A nexthop of another daemon is not ours.
		if err := l.Run("r", "ip", "nexthop", "add", "id", "50", "via", "10.99.0.2", "dev", "v0", "proto", "static"); err != nil {
			t.Fatal(err)
		}
		singles, groups, err := tbl.Nexthops()
		if err != nil {
			t.Fatal(err)
		}
		if g, w := fmt.Sprint(singles, groups), fmt.Sprintf("[{1 10.99.0.5 %[1]d} {2 10.99.0.3 %[1]d} {3 invalid IP %[1]d} {4 10.99.0.4 %[1]d} {6 fd99::2 %[1]d}] [{10 [2 4]} {11 [2]}]", ifindex); g != w {
			t.Errorf("Nexthops() = %s, want %s", g, w)
		}

		// Refusals for good are ErrRejected; an off-link gateway is not
		// (like a route's: the subnet may come).
		errs := tbl.ApplyNexthops([]route.NexthopChange{
			group(1, 2),                       // a single cannot become a group
			single(10, "10.99.0.2", ifindex),  // nor a group a single
			group(12, 99),                     // no such member
			single(7, "10.99.0.255", ifindex), // broadcast gateway
			single(8, "172.31.0.1", ifindex),  // not on link
		})
		for i, err := range errs[:4] {
			if !errors.Is(err, route.ErrRejected) {
				t.Errorf("refusal %d: %v, want ErrRejected", i, err)
			}
		}
		if err := errs[4]; err == nil || errors.Is(err, route.ErrRejected) {
			t.Errorf("off-link gateway: %v, want an error that is not ErrRejected", err)
		}

		// So is a route by an id that does not exist, and an IPv6 route by
		// a group with an IPv4 member.
		for i, err := range tbl.Apply([]route.Change{{Route: byNHID("198.51.105.0/24", 99)}, {Route: byNHID("2001:db8:1::/48", 10)}}) {
			if !errors.Is(err, route.ErrRejected) {
				t.Errorf("route refusal %d: %v, want ErrRejected", i, err)
			}
		}

		// Routes off the objects, then the objects: groups before their
		// members, and twice: gone is fine.
		var dels []route.Change
		for _, r := range rs {
			dels = append(dels, route.Change{Delete: true, Route: r})
		}
		noErrs(t, "route delete", tbl.Apply(dels))
		var nhDels []route.NexthopChange
		for range 2 {
			nhDels = append(nhDels, delNH(10), delNH(11), delNH(1), delNH(2), delNH(3), delNH(4), delNH(6))
		}
		noErrs(t, "nexthop delete", tbl.ApplyNexthops(nhDels))
		if s, g, err := tbl.Nexthops(); len(s)+len(g) != 0 || err != nil {
			t.Errorf("left after delete: %v %v %v", s, g, err)
		}
		if out, _ := l.Output("r", "ip", "nexthop", "show", "id", "50"); !strings.Contains(out, "id 50") {
			t.Errorf("the other daemon's nexthop is gone: %q", out)
		}
	})
}

// TestNexthopCarrierLoss pins what the kernel does to nexthop objects when
// their link loses carrier: unlike plain routes (kept, marked linkdown) the
// nexthops are deleted, groups shrink, and routes left without a nexthop
// are removed; none of it comes back with the carrier.
func TestNexthopCarrierLoss(t *testing.T) {
	inLab(t, func(l *lab.Lab, ifindex int) {
		tbl, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Close()
		for _, args := range [][]string{
			{"ip", "link", "add", "w0", "type", "veth", "peer", "name", "w1"},
			{"ip", "link", "set", "w0", "up"}, {"ip", "link", "set", "w1", "up"},
			{"ip", "addr", "add", "10.98.0.1/24", "dev", "w0"},
		} {
			if err := l.Run("r", args...); err != nil {
				t.Fatal(err)
			}
		}
		out, err := l.Output("r", "cat", "/sys/class/net/w0/ifindex")
		if err != nil {
			t.Fatal(err)
		}
		var w0 int
		fmt.Sscan(out, &w0)
		noErrs(t, "nexthop", tbl.ApplyNexthops([]route.NexthopChange{
			single(1, "10.99.0.2", ifindex), single(2, "10.98.0.2", w0), group(10, 1, 2), group(11, 1)}))
		noErrs(t, "route", tbl.Apply([]route.Change{{Route: byNHID("198.51.100.0/24", 10)},
			{Route: byNHID("198.51.101.0/24", 1)}, {Route: byNHID("198.51.102.0/24", 11)}}))
		if err := l.Run("r", "ip", "link", "set", "v1", "down"); err != nil { // v0 loses carrier
			t.Fatal(err)
		}
		const want = "[{2 10.98.0.2 %d}] [{10 [2]}]"
		var got string
		err = lab.PollEvery(context.Background(), 5*time.Second, 10*time.Millisecond, func() error {
			s, g, err := tbl.Nexthops()
			if err != nil {
				return err
			}
			if got = fmt.Sprint(s, g); got != fmt.Sprintf(want, w0) {
				return fmt.Errorf("after carrier loss: %s, want %s", got, fmt.Sprintf(want, w0))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		rs := ours(t)
		if r, ok := rs["198.51.100.0/24"]; !ok || r.NHID != 10 || fmt.Sprint(r.NextHops) != fmt.Sprintf("[10.98.0.2@%d]", w0) {
			t.Errorf("route by the group: %+v, want via the member left", r)
		}
		if len(rs) != 1 {
			t.Errorf("routes of ours: %v, want only the one by the group", rs)
		}
	})
}

// TestWatcherCarrierLossResync: the kernel deletes routes by nexthop
// objects when their link loses its carrier, silently (IPv4): the watcher
// sends a RouteResync without them.
func TestWatcherCarrierLossResync(t *testing.T) {
	inLab(t, func(l *lab.Lab, ifindex int) {
		tbl, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Close()
		// v1 into a namespace of its own: its going down is then only a
		// carrier loss here.
		if err := l.AddNS("peer"); err != nil {
			t.Fatal(err)
		}
		for _, c := range [][]string{{"r", "ip", "link", "set", "v1", "netns", l.NS("peer")}, {"peer", "ip", "link", "set", "v1", "up"}} {
			if err := l.Run(c[0], c[1:]...); err != nil {
				t.Fatal(err)
			}
		}
		noErrs(t, "nexthop", tbl.ApplyNexthops([]route.NexthopChange{single(1, "10.99.0.2", ifindex), group(10, 1)}))
		noErrs(t, "route", tbl.Apply([]route.Change{{Route: byNHID("198.51.100.0/24", 10)}}))
		next := watch(t, &Watcher{Log: slog.New(slog.DiscardHandler)})
		snap, ok := next().(*route.Snapshot)
		if !ok || !has(snap.Ours, "198.51.100.0/24") {
			t.Fatalf("initial snapshot without our route: %+v", snap)
		}
		if err := l.Run("peer", "ip", "link", "set", "v1", "down"); err != nil { // v0 loses carrier
			t.Fatal(err)
		}
		for {
			switch ev := next().(type) {
			case nil:
				t.Fatal("no RouteResync without the route by the deleted nexthop after carrier loss")
			case route.RouteResync:
				if !has(ev.Ours, "198.51.100.0/24") {
					return
				}
			}
		}
	})
}
