package fib

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// TestWatcherBackoff: a watch that fails at once is restarted after 100 ms,
// doubling to 30 s, and a run that lasted starts over at 100 ms.
func TestWatcherBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := time.Unix(0, 0)
	var waits []time.Duration
	calls := 0
	w := &Watcher{Log: slog.New(slog.DiscardHandler),
		attempt: func(context.Context, chan<- any, int) error {
			calls++
			if calls == 13 {
				clock = clock.Add(healthyRun) // a long healthy run, then a failure
			}
			return errors.New("netlink says no")
		},
		sleep: func(_ context.Context, d time.Duration) bool {
			waits = append(waits, d)
			clock = clock.Add(d)
			if len(waits) == 15 {
				cancel()
				return false
			}
			return true
		},
		now: func() time.Time { return clock },
	}
	if err := w.Run(ctx, make(chan any)); err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms,
		12800 * ms, 25600 * ms, 30 * time.Second, 30 * time.Second, 30 * time.Second, // capped
		100 * ms, 200 * ms, 400 * ms} // reset after the healthy run
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

// TestWatcherNoSpin runs a watch that always fails with the real clock: it
// is retried a handful of times, not thousands, and cancelling ends the
// wait.
func TestWatcherNoSpin(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	third := make(chan struct{})
	w := &Watcher{Log: slog.New(slog.DiscardHandler),
		attempt: func(context.Context, chan<- any, int) error {
			if calls.Add(1) == 3 {
				close(third)
			}
			return errors.New("netlink says no")
		}}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, make(chan any)) }()
	// Retries at 0, 100, 300, 700 ms: cancel during the wait after the
	// third.
	select {
	case <-third:
	case <-time.After(10 * time.Second):
		t.Fatal("no third attempt")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n := calls.Load(); n > 4 {
		t.Errorf("%d attempts, want at most 4 (backoff, not a spin)", n)
	}
}

// watch runs w in the namespace of the calling thread and returns a
// function that yields its next event (nil after 5 s without one).
func watch(t *testing.T, w *Watcher) func() any {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan any, 1024)
	ns, err := netns.Get() // this thread's: the test namespace
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	t.Cleanup(func() { cancel(); <-stopped; ns.Close() })
	go func() {
		defer close(stopped)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(ns); err != nil {
			t.Error(err)
			return
		}
		_ = w.Run(ctx, out)
	}()
	return func() any {
		select {
		case ev := <-out:
			return ev
		case <-time.After(5 * time.Second):
			return nil
		}
	}
}

func has(rs []route.Route, p string) bool {
	for _, r := range rs {
		if r.Prefix == netip.MustParsePrefix(p) {
			return true
		}
	}
	return false
}

// TestWatcherProtocol: routes of our protocol (200 by default) are Ours,
// every other protocol, proto bgp (186, FRR's) included, is a kernel
// route; Table writes and deletes only routes of its protocol.
func TestWatcherProtocol(t *testing.T) {
	inNetns(t, func(ifindex int) {
		gw := net.ParseIP("10.99.0.2")
		foreign := &netlink.Route{Dst: mustIPNet("198.51.100.0/24"), Gw: gw, LinkIndex: ifindex,
			Protocol: unix.RTPROT_BGP, Priority: 20}
		if err := netlink.RouteAdd(foreign); err != nil {
			t.Fatal(err)
		}
		tbl, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Close()
		mine := route.Route{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Kind: route.Unicast, Metric: 20,
			NextHops: []route.NextHop{{Gateway: netip.MustParseAddr("10.99.0.2"), Ifindex: ifindex}}}
		if errs := tbl.Apply([]route.Change{{Route: mine}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		next := watch(t, &Watcher{Log: slog.New(slog.DiscardHandler)})
		snap, ok := next().(*route.Snapshot)
		if !ok {
			t.Fatal("no initial snapshot")
		}
		if !has(snap.Routes, "198.51.100.0/24") || has(snap.Ours, "198.51.100.0/24") {
			t.Errorf("proto bgp route not a kernel route: routes %v ours %v", snap.Routes, snap.Ours)
		}
		if !has(snap.Ours, "203.0.113.0/24") || snap.Ours[0].Protocol != DefaultProtocol {
			t.Errorf("our route not ours (protocol %d): ours %v", DefaultProtocol, snap.Ours)
		}
		// Our delete of the same prefix and metric leaves the other
		// daemon's route alone.
		same := mine
		same.Prefix = netip.MustParsePrefix("198.51.100.0/24")
		if errs := tbl.Apply([]route.Change{{Delete: true, Route: same}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		// A new proto bgp route is an event for the mirror, not an echo.
		foreign2 := *foreign
		foreign2.Dst = mustIPNet("198.51.101.0/24")
		if err := netlink.RouteAdd(&foreign2); err != nil {
			t.Fatal(err)
		}
		for {
			ev := next()
			if ev == nil {
				t.Fatal("no event for the added proto bgp route")
			}
			if e, ok := ev.(route.RouteEvent); ok && e.Route.Prefix == netip.MustParsePrefix("198.51.101.0/24") {
				if e.Ours || e.Deleted {
					t.Errorf("proto bgp route event %+v, want a kernel route added", e)
				}
				break
			}
		}
		left, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: 254, Protocol: unix.RTPROT_BGP},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 2 {
			t.Errorf("proto bgp routes left: %v, want both", left)
		}
	})
}

// TestWatcherRouteResync: setting a link down, removing an IPv4 address and
// deleting a link flush IPv4 routes with no RTM_DELROUTE for them; the
// watcher follows each with a RouteResync that no longer has them.
func TestWatcherRouteResync(t *testing.T) {
	inNetns(t, func(ifindex int) {
		link, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			t.Fatal(err)
		}
		addRoute := func(dst string, l netlink.Link, gw string) {
			t.Helper()
			if err := netlink.RouteAdd(&netlink.Route{Dst: mustIPNet(dst), Gw: net.ParseIP(gw),
				LinkIndex: l.Attrs().Index, Protocol: unix.RTPROT_STATIC}); err != nil {
				t.Fatalf("add route %s: %v", dst, err)
			}
		}
		addRoute("198.51.100.0/24", link, "10.99.0.2")
		next := watch(t, &Watcher{Log: slog.New(slog.DiscardHandler)})
		snap, ok := next().(*route.Snapshot)
		if !ok || !has(snap.Routes, "198.51.100.0/24") {
			t.Fatalf("initial snapshot without the static route: %+v", snap)
		}
		// awaitResync returns the first RouteResync without gone and fails
		// if a route event deleted gone before it (then there would be no
		// need). A RouteResync may come first that a step before caused
		// (the carrier back after link up), with gone still in place.
		awaitResync := func(what, gone string) route.RouteResync {
			t.Helper()
			var last []route.Route
			for {
				switch ev := next().(type) {
				case nil:
					t.Fatalf("%s: no RouteResync without %s; the last one: %v", what, gone, last)
				case route.RouteEvent:
					if ev.Deleted && ev.Route.Prefix == netip.MustParsePrefix(gone) {
						t.Errorf("%s: the kernel sent a delete for %s: no resync needed?", what, gone)
					}
				case route.RouteResync:
					if !has(ev.Routes, gone) {
						return ev
					}
					last = ev.Routes
				}
			}
		}

		// Admin-down: the route is flushed without a delete.
		if err := netlink.LinkSetDown(link); err != nil {
			t.Fatal(err)
		}
		rs := awaitResync("link down", "198.51.100.0/24")
		if has(rs.Routes, "10.99.0.0/24") {
			t.Errorf("link down: connected route still in the RouteResync: %v", rs.Routes)
		}
		if err := netlink.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}

		// IPv4 address removed: routes through its subnet go.
		addRoute("198.51.101.0/24", link, "10.99.0.2")
		if err := netlink.AddrDel(link, &netlink.Addr{IPNet: mustIPNet("10.99.0.1/24")}); err != nil {
			t.Fatal(err)
		}
		awaitResync("address removed", "198.51.101.0/24")

		// Link deleted.
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v2"}, PeerName: "v3"}
		if err := netlink.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		v2, err := netlink.LinkByName("v2")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(v2); err != nil {
			t.Fatal(err)
		}
		if err := netlink.AddrAdd(v2, &netlink.Addr{IPNet: mustIPNet("10.98.0.1/24")}); err != nil {
			t.Fatal(err)
		}
		addRoute("198.51.102.0/24", v2, "10.98.0.2")
		if err := netlink.LinkDel(v2); err != nil {
			t.Fatal(err)
		}
		awaitResync("link deleted", "198.51.102.0/24")
	})
}

// TestConfiguredProtocol: a Table and a Watcher set to another protocol
// write, delete and recognise routes of that protocol only; a protocol
// that does not fit rtm_protocol is refused.
func TestConfiguredProtocol(t *testing.T) {
	inNetns(t, func(ifindex int) {
		mk := func(p string) route.Route {
			return route.Route{Prefix: netip.MustParsePrefix(p), Kind: route.Unicast, Metric: 20,
				NextHops: []route.NextHop{{Gateway: netip.MustParseAddr("10.99.0.2"), Ifindex: ifindex}}}
		}
		def, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer def.Close()
		custom, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer custom.Close()
		custom.Protocol = 201
		if errs := def.Apply([]route.Change{{Route: mk("198.51.100.0/24")}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		if errs := custom.Apply([]route.Change{{Route: mk("198.51.101.0/24")}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		// custom's delete of a prefix it does not own leaves it.
		if errs := custom.Apply([]route.Change{{Delete: true, Route: mk("198.51.100.0/24")}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		next := watch(t, &Watcher{Protocol: 201, Log: slog.New(slog.DiscardHandler)})
		snap, ok := next().(*route.Snapshot)
		if !ok {
			t.Fatal("no initial snapshot")
		}
		if !has(snap.Ours, "198.51.101.0/24") || has(snap.Ours, "198.51.100.0/24") || !has(snap.Routes, "198.51.100.0/24") {
			t.Errorf("protocol 201: ours %v, routes %v", snap.Ours, snap.Routes)
		}
		custom.Protocol = 300
		if errs := custom.Apply([]route.Change{{Route: mk("198.51.102.0/24")}}); errs[0] == nil {
			t.Error("protocol 300 accepted")
		}
		if err := (&Watcher{Protocol: -1, Log: slog.New(slog.DiscardHandler)}).Run(context.Background(), nil); err == nil {
			t.Error("watcher with protocol -1 ran")
		}
	})
}
