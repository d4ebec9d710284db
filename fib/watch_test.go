package fib

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdprouter/xdprouter/route"
)

// TestWatcherResync overflows the route subscription (a tiny socket buffer
// while the consumer is not reading) and checks the watcher recovers with a
// fresh Snapshot that holds the complete table.
func TestWatcherResync(t *testing.T) {
	inNetns(t, func(ifindex int) {
		tbl, err := Open(254)
		if err != nil {
			t.Error(err)
			return
		}
		defer tbl.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := make(chan any) // unbuffered: the watcher blocks while we do not read
		w := &Watcher{Table: 254, Log: slog.New(slog.DiscardHandler), RcvBuf: 1}
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
		if _, ok := next().(*Snapshot); !ok {
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
		const n = 20000
		var cs []route.Change
		for i := range n {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 0}), 24)
			cs = append(cs, route.Change{Route: route.Route{Prefix: p, Kind: route.Unicast, Metric: 20,
				NextHops: []route.NextHop{{Gateway: netip.MustParseAddr("10.99.0.2"), Ifindex: ifindex}}}})
		}
		for _, err := range tbl.Apply(cs) {
			if err != nil {
				t.Error(err)
				return
			}
		}
		// Whatever came before, a resync Snapshot with the whole table must.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			ev := next()
			if ev == nil {
				break
			}
			if s, ok := ev.(*Snapshot); ok {
				if len(s.Ours) != n {
					t.Errorf("resync snapshot has %d of our routes, want %d", len(s.Ours), n)
				}
				return
			}
		}
		t.Error("no resync snapshot after the subscription overflowed")
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
