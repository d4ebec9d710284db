package bpf

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdprouter/xdprouter/filter"
	"github.com/xdprouter/xdprouter/route"
)

// BenchmarkFilters: the per-packet cost (BPF_PROG_TEST_RUN, kernel-measured
// ns/pkt) with 0, 1, 100 and 1,000 filter rules of an operator's ACL kind
// (destination /24 or /32, protocol, destination port range, some with a
// source prefix), side by side in one run, with the ratio to 1 rule. The
// frames (64 of them, each run 2,000 times) half fall in a rule's
// destination without matching its port, so most fields are consulted;
// none is dropped: the whole forwarding path runs after the filters.
func BenchmarkFilters(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	ruleSet := func(n int) []filter.Rule {
		rs := make([]filter.Rule, n)
		for i := range rs {
			dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), 0}), 24)
			if i%4 == 0 {
				dst = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}), 32)
			}
			lo := uint16(1024 + rng.IntN(60000))
			rs[i] = filter.Rule{Name: fmt.Sprint(i), Dst: dst, Protocols: []filter.Range{{Lo: 6, Hi: 6}, {Lo: 17, Hi: 17}},
				DstPorts: []filter.Range{{Lo: lo, Hi: lo + uint16(rng.IntN(100))}}, Action: filter.Action{Kind: filter.Drop}}
			if i%3 == 0 {
				rs[i].Src = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + rng.IntN(200)), byte(rng.IntN(256)), 0, 0}), 16)
			}
		}
		return rs
	}
	var base float64
	for _, n := range []int{1, 0, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			d := loadTest(b)
			if err := d.SetNextHop(1, route.Egress{Ifindex: 1}); err != nil {
				b.Fatal(err)
			}
			if err := d.SetGroup(1, []uint32{1}); err != nil {
				b.Fatal(err)
			}
			if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.0.0.0/8"), Group: 1}}); err != nil {
				b.Fatal(err)
			}
			rules := ruleSet(n)
			c, err := filter.Compile(rules)
			if err != nil {
				b.Fatal(err)
			}
			if err := d.SetFilters(c); err != nil {
				b.Fatal(err)
			}
			frames := make([][]byte, 64)
			for i := range frames {
				dst := netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
				if i%2 == 0 && n > 0 {
					r := rules[rng.IntN(n)]
					a := r.Dst.Addr().As4()
					if r.Dst.Bits() == 24 {
						a[3] = byte(rng.IntN(256))
					}
					dst = netip.AddrFrom4(a)
				}
				frames[i] = pkt{src: src4, dst: dst, sport: 1000, dport: 80}.build()
				if ret, _ := run(b, d, frames[i]); ret != xdpPass {
					b.Fatalf("frame to %s: verdict %s, want XDP_PASS (unresolved next hop)", dst, xdpNames[ret])
				}
			}
			const repeat = 2000
			var total float64
			var pkts int
			b.ResetTimer()
			for b.Loop() {
				for _, f := range frames {
					_, dur, err := d.Program().Benchmark(f, repeat, nil)
					if err != nil {
						b.Fatal(err)
					}
					total += float64(dur.Nanoseconds())
					pkts++
				}
			}
			per := total / float64(pkts)
			b.ReportMetric(per, "ns/pkt")
			if n == 1 {
				base = per
			} else if base > 0 {
				b.ReportMetric(per/base, "x_1rule")
			}
		})
	}
}
