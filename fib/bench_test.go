package fib

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

// inNetns runs fn on a thread inside a fresh lab namespace with one veth
// (10.99.0.1/24 and fd99::1/64, up); the namespace is removed when the test
// ends.
func inNetns(tb testing.TB, fn func(ifindex int)) {
	tb.Helper()
	inLab(tb, func(_ *lab.Lab, ifindex int) { fn(ifindex) })
}

// inLab is inNetns that also hands fn the lab, whose namespace "r" it is
// (to run ip there).
func inLab(tb testing.TB, fn func(l *lab.Lab, ifindex int)) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("skipping: needs a network namespace (not in -short mode)")
	}
	if err := lab.Root(); err != nil {
		tb.Skip(err)
	}
	l := lab.New("xfib")
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Error(err)
		}
	})
	if err := l.AddNS("r"); err != nil {
		tb.Fatal(err)
	}
	for _, args := range [][]string{
		{"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "link", "set", "v0", "up"}, {"ip", "link", "set", "v1", "up"},
		{"ip", "addr", "add", "10.99.0.1/24", "dev", "v0"},
		{"ip", "addr", "add", "fd99::1/64", "dev", "v0", "nodad"},
	} {
		if err := l.Run("r", args...); err != nil {
			tb.Fatal(err)
		}
	}
	if err := l.Do("r", func() error {
		link, err := netlink.LinkByName("v0")
		if err != nil {
			return err
		}
		fn(l, link.Attrs().Index)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
}

func routes(n, ifindex int) []route.Change {
	out := make([]route.Change, n)
	for i := range n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 0}), 24)
		out[i] = route.Change{Route: route.Route{Prefix: p, Kind: route.Unicast, Metric: 20,
			NextHops: []route.NextHop{{Gateway: netip.MustParseAddr("10.99.0.2"), Ifindex: ifindex}}}}
	}
	return out
}

// TestApply installs, replaces and deletes routes (v4, v6, multipath,
// connected) through the batch writer and reads them back from the kernel.
func TestApply(t *testing.T) {
	inNetns(t, func(ifindex int) {
		tbl, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Close()
		gw4 := route.NextHop{Gateway: netip.MustParseAddr("10.99.0.2"), Ifindex: ifindex}
		gw4b := route.NextHop{Gateway: netip.MustParseAddr("10.99.0.3"), Ifindex: ifindex}
		gw6 := route.NextHop{Gateway: netip.MustParseAddr("fd99::2"), Ifindex: ifindex}
		want := []route.Route{
			{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Kind: route.Unicast, Metric: 20, NextHops: []route.NextHop{gw4}},
			{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Kind: route.Unicast, Metric: 20, NextHops: []route.NextHop{gw4, gw4b}},
			{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Kind: route.Unicast, Metric: 20, NextHops: []route.NextHop{{Ifindex: ifindex}}},
			{Prefix: netip.MustParsePrefix("2001:db8::/32"), Kind: route.Unicast, Metric: 20, NextHops: []route.NextHop{gw6}},
			{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Kind: route.Unicast, Metric: 20, NextHops: []route.NextHop{gw4}},
		}
		var cs []route.Change
		for _, r := range want {
			cs = append(cs, route.Change{Route: r}, route.Change{Route: r}) // the second replaces the first
		}
		cs = append(cs, route.Change{Route: route.Route{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Kind: route.Unicast, Metric: 20,
			NextHops: []route.NextHop{{Gateway: netip.MustParseAddr("172.31.0.1"), Ifindex: ifindex}}}}) // not on link: fails
		errs := tbl.Apply(cs)
		for i, err := range errs[:len(errs)-1] {
			if err != nil {
				t.Errorf("change %d: %v", i, err)
			}
		}
		if errs[len(errs)-1] == nil {
			t.Error("a route via an unreachable gateway was accepted")
		}
		snap, err := Dump()
		if err != nil {
			t.Fatal(err)
		}
		got := map[netip.Prefix]route.Route{}
		for _, r := range snap.Ours {
			got[r.Prefix] = r
		}
		for _, w := range want {
			g := got[w.Prefix]
			if fmt.Sprint(g.NextHops) != fmt.Sprint(w.NextHops) || g.Metric != 20 || g.Protocol != DefaultProtocol {
				t.Errorf("kernel has %+v, want %+v", g, w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("kernel has %d routes of ours, want %d", len(got), len(want))
		}
		var dels []route.Change
		for _, w := range want {
			dels = append(dels, route.Change{Delete: true, Route: w}, route.Change{Delete: true, Route: w}) // twice: gone is fine
		}
		for i, err := range tbl.Apply(dels) {
			if err != nil {
				t.Errorf("delete %d: %v", i, err)
			}
		}
		if snap, _ := Dump(); len(snap.Ours) != 0 {
			t.Errorf("left after delete: %+v", snap.Ours)
		}
	})
}

// BenchmarkInstall compares the batch writer with one netlink request per
// route (the netlink library's RouteReplace), installing and deleting 100k
// routes, in the same run. It reports routes/s for both and the ratio.
func BenchmarkInstall(b *testing.B) {
	const n = 100000
	inNetns(b, func(ifindex int) {
		tbl, err := Open(254)
		if err != nil {
			b.Fatal(err)
		}
		defer tbl.Close()
		h, err := netlink.NewHandle()
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		cs := routes(n, ifindex)
		dels := make([]route.Change, n)
		for i, c := range cs {
			dels[i] = route.Change{Delete: true, Route: c.Route}
		}
		gw := net.ParseIP("10.99.0.2")
		var batchAdd, batchDel, oneAdd, oneDel time.Duration
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			for _, err := range tbl.Apply(cs) {
				if err != nil {
					b.Fatal(err)
				}
			}
			t1 := time.Now()
			for _, err := range tbl.Apply(dels) {
				if err != nil {
					b.Fatal(err)
				}
			}
			t2 := time.Now()
			for _, c := range cs {
				p := c.Route.Prefix
				if err := h.RouteReplace(&netlink.Route{LinkIndex: ifindex, Gw: gw, Priority: 20, Protocol: ProtoBGP, Table: 254,
					Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}); err != nil {
					b.Fatal(err)
				}
			}
			t3 := time.Now()
			for _, c := range cs {
				p := c.Route.Prefix
				if err := h.RouteDel(&netlink.Route{Priority: 20, Protocol: ProtoBGP, Table: 254,
					Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}); err != nil {
					b.Fatal(err)
				}
			}
			t4 := time.Now()
			batchAdd += t1.Sub(t0)
			batchDel += t2.Sub(t1)
			oneAdd += t3.Sub(t2)
			oneDel += t4.Sub(t3)
		}
		rate := func(d time.Duration) float64 { return float64(n*b.N) / d.Seconds() }
		b.ReportMetric(rate(batchAdd), "batch-adds/s")
		b.ReportMetric(rate(oneAdd), "single-adds/s")
		b.ReportMetric(rate(batchDel), "batch-dels/s")
		b.ReportMetric(rate(oneDel), "single-dels/s")
		b.ReportMetric(oneAdd.Seconds()/batchAdd.Seconds(), "add-speedup")
		b.ReportMetric(oneDel.Seconds()/batchDel.Seconds(), "del-speedup")
	})
}

// BenchmarkNexthopInstall compares, in one run, N routes (100k, or
// XDPROUTER_BENCH_FIB_ROUTES) with plain gateways and the same routes by one
// shared nexthop object: installing them, and re-pointing them all to
// another gateway (rewriting every route vs replacing the one object, with
// nexthop_compat_mode 1, the default, and 0).
func BenchmarkNexthopInstall(b *testing.B) {
	n := 100000
	if s := os.Getenv("XDPROUTER_BENCH_FIB_ROUTES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 || n > 1<<22 {
			b.Fatalf("XDPROUTER_BENCH_FIB_ROUTES=%q: want a count up to %d", s, 1<<22)
		}
	}
	inLab(b, func(l *lab.Lab, ifindex int) {
		tbl, err := Open(254)
		if err != nil {
			b.Fatal(err)
		}
		defer tbl.Close()
		must := func(errs []error) {
			b.Helper()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		plain, moved := routes(n, ifindex), routes(n, ifindex)
		byID := make([]route.Change, n)
		dels := make([]route.Change, n)
		for i := range plain {
			moved[i].Route.NextHops = []route.NextHop{{Gateway: netip.MustParseAddr("10.99.0.3"), Ifindex: ifindex}}
			byID[i] = route.Change{Route: plain[i].Route}
			byID[i].Route.NHID = 1
			dels[i] = route.Change{Delete: true, Route: plain[i].Route}
		}
		nh := func(gw string) []route.NexthopChange { return []route.NexthopChange{single(1, gw, ifindex)} }
		compat := func(v string) {
			if err := l.Sysctl("r", "net.ipv4.nexthop_compat_mode", v); err != nil {
				b.Fatal(err)
			}
		}
		var plainAdd, idAdd, plainMove, idMove, idMove0 time.Duration
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			must(tbl.Apply(plain))
			t1 := time.Now()
			must(tbl.Apply(moved))
			t2 := time.Now()
			must(tbl.Apply(dels))
			must(tbl.ApplyNexthops(nh("10.99.0.2")))
			t3 := time.Now()
			must(tbl.Apply(byID))
			t4 := time.Now()
			must(tbl.ApplyNexthops(nh("10.99.0.3")))
			t5 := time.Now()
			compat("0")
			t6 := time.Now()
			must(tbl.ApplyNexthops(nh("10.99.0.2")))
			t7 := time.Now()
			compat("1")
			must(tbl.Apply(dels))
			plainAdd += t1.Sub(t0)
			plainMove += t2.Sub(t1)
			idAdd += t4.Sub(t3)
			idMove += t5.Sub(t4)
			idMove0 += t7.Sub(t6)
		}
		b.StopTimer()
		must(tbl.ApplyNexthops([]route.NexthopChange{delNH(1)}))
		rate := func(d time.Duration) float64 { return float64(n*b.N) / d.Seconds() }
		per := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(b.N) }
		b.ReportMetric(float64(n), "routes")
		b.ReportMetric(rate(plainAdd), "plain-adds/s")
		b.ReportMetric(rate(idAdd), "nhid-adds/s")
		b.ReportMetric(plainAdd.Seconds()/idAdd.Seconds(), "add-ratio")
		b.ReportMetric(per(plainMove), "repoint-routes-ms")
		b.ReportMetric(per(idMove), "repoint-nexthop-ms")
		b.ReportMetric(per(idMove0), "repoint-nexthop-compat0-ms")
		b.ReportMetric(plainMove.Seconds()/idMove.Seconds(), "repoint-speedup")
	})
}
