package fib

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"

	"golang.org/x/sys/unix"
)

// TestWatcherResync overflows the route subscription (a tiny socket buffer
// while the consumer is not reading) and checks the watcher recovers with a
// fresh Snapshot that holds the complete table.
func TestWatcherResync(t *testing.T) {
	inNetns(t, func(ifindex int) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := make(chan any) // unbuffered: the watcher blocks while we do not read
		w := &Watcher{Log: slog.New(slog.DiscardHandler), RcvBuf: 1}
		ns, err := netns.Get() // this thread's: the test namespace
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			if err := netns.Set(ns); err != nil {
				t.Error(err)
				return
			}
			_ = w.Run(ctx, out)
		}()
		next := func() any {
			select {
			case ev := <-out:
				return ev
			case <-time.After(10 * time.Second):
				return nil
			}
		}
		if _, ok := next().(*route.Snapshot); !ok {
			t.Error("no initial snapshot")
			return
		}
		// An event the watcher must hand over (and cannot, yet), then a
		// flood it cannot buffer.
		link, _ := netlink.LinkByIndex(ifindex)
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: mustIPNet("10.99.1.1/24")}); err != nil {
			t.Error(err)
			return
		}
		// Routes of another protocol: their events are forwarded (echoes of
		// our own writes are not), so the consumer can rebuild the table
		// from the last snapshot and the events after it.
		const n = 20000
		for i := range n {
			dst := &net.IPNet{IP: net.IPv4(byte(1+i>>16), byte(i>>8), byte(i), 0), Mask: net.CIDRMask(24, 32)}
			if err := netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP("10.99.0.2"), LinkIndex: ifindex,
				Protocol: unix.RTPROT_STATIC}); err != nil {
				t.Error(err)
				return
			}
		}
		model := map[netip.Prefix]bool{}
		resyncs := 0
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && !(resyncs > 0 && len(model) == n) {
			switch ev := next().(type) {
			case nil:
				deadline = time.Time{}
			case *route.Snapshot:
				resyncs++
				clear(model)
				for _, r := range ev.Routes {
					if r.Protocol == unix.RTPROT_STATIC {
						model[r.Prefix] = true
					}
				}
			case route.RouteEvent:
				if ev.Route.Protocol != unix.RTPROT_STATIC {
					continue
				}
				if ev.Deleted {
					delete(model, ev.Route.Prefix)
				} else {
					model[ev.Route.Prefix] = true
				}
			}
		}
		if resyncs == 0 {
			t.Error("no resync snapshot after the subscription overflowed")
		}
		if len(model) != n {
			t.Errorf("snapshot + events rebuild %d routes, want %d", len(model), n)
		}
	})
}

func mustIPNet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// TestWatcherReplaceFlag: a route the kernel replaced (NLM_F_REPLACE) is an
// event with Replace set, in both families, whatever it replaced; adds,
// appends (an IPv6 ECMP sibling: the whole route) and deletes are not.
// Without it, sync cannot tell an IPv6 replace from a route added next to
// the others of its metric.
func TestWatcherReplaceFlag(t *testing.T) {
	inLab(t, func(l *lab.Lab, _ int) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := make(chan any, 64)
		ns, err := netns.Get() // this thread's: the test namespace
		if err != nil {
			t.Error(err)
			return
		}
		defer ns.Close()
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			if err := netns.Set(ns); err != nil {
				t.Error(err)
				return
			}
			_ = (&Watcher{Log: slog.New(slog.DiscardHandler)}).Run(ctx, out)
		}()
		next := func() any {
			select {
			case ev := <-out:
				return ev
			case <-time.After(10 * time.Second):
				return nil
			}
		}
		if _, ok := next().(*route.Snapshot); !ok {
			t.Error("no initial snapshot")
			return
		}
		type step struct {
			cmd              string
			replace, deleted bool
			kind             route.Kind
			nhs              int
		}
		for _, fam := range []string{"4", "6"} {
			p, g := "198.51.100.0/24", "10.99.0."
			if fam == "6" {
				p, g = "2001:db8:98::/48", "fd99::"
			}
			steps := []step{
				{cmd: "add prohibit " + p, kind: route.Unreachable},
				{cmd: "replace " + p + " via " + g + "2 dev v0", replace: true, kind: route.Unicast, nhs: 1},
				{cmd: "replace " + p + " via " + g + "3 dev v0", replace: true, kind: route.Unicast, nhs: 1},
				{cmd: "replace prohibit " + p, replace: true, kind: route.Unreachable},
				{cmd: "del prohibit " + p, deleted: true, kind: route.Unreachable},
			}
			if fam == "6" {
				steps = append(steps,
					step{cmd: "add " + p + " via " + g + "2 dev v0", kind: route.Unicast, nhs: 1},
					step{cmd: "append " + p + " via " + g + "3 dev v0", kind: route.Unicast, nhs: 2},
					step{cmd: "del " + p + " via " + g + "2 dev v0", deleted: true, kind: route.Unicast, nhs: 1},
					step{cmd: "replace " + p + " nexthop via " + g + "2 dev v0 nexthop via " + g + "4 dev v0", replace: true, kind: route.Unicast, nhs: 2},
					step{cmd: "del " + p, deleted: true, kind: route.Unicast, nhs: 2})
			}
			for _, s := range steps {
				if err := l.Run("r", append([]string{"ip", "-" + fam, "route"}, strings.Fields(s.cmd)...)...); err != nil {
					t.Error(err)
					return
				}
				var ev route.RouteEvent
				for {
					x := next()
					if x == nil {
						t.Errorf("ip -%s route %s: no event", fam, s.cmd)
						return
					}
					if re, ok := x.(route.RouteEvent); ok && re.Route.Prefix.String() == p {
						ev = re
						break
					}
				}
				if ev.Replace != s.replace || ev.Deleted != s.deleted || ev.Route.Kind != s.kind || len(ev.Route.NextHops) != s.nhs {
					t.Errorf("ip -%s route %s: event %+v, want replace %v deleted %v kind %v with %d next hops",
						fam, s.cmd, ev, s.replace, s.deleted, s.kind, s.nhs)
				}
			}
		}
	})
}
