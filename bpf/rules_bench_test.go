package bpf

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// BenchmarkRules: the per-packet cost (BPF_PROG_TEST_RUN, kernel-measured
// ns/pkt, hot caches: 64 frames each run 2,000 times) of the whole
// program with 0 (the defaults), 1, 10 and 100 policy rules "from P
// lookup T" over three tables and main, side by side in one run, with the
// ratio to the defaults. Half the frames come from the last rule's
// source (the kernel walks every rule for them), half from other rules'.
func BenchmarkRules(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	tables := []int{route.TableMain, 100, 101, 102}
	var base float64
	for _, n := range []int{0, 1, 10, 100} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			d := loadTest(b)
			p := setupPorts(b, d)
			if err := d.SetNextHop(1, route.Egress{Ifindex: p.b, MAC: macGwB}); err != nil {
				b.Fatal(err)
			}
			if err := d.SetGroup(1, []uint32{1}); err != nil {
				b.Fatal(err)
			}
			var es []route.Entry
			for _, t := range tables {
				for i := range 256 {
					es = append(es, route.Entry{Table: t, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16), Group: 1})
				}
			}
			if _, err := d.UpdateRoutes(es); err != nil {
				b.Fatal(err)
			}
			rules := route.DefaultRules()
			srcs := []netip.Addr{src4}
			for i := range n {
				src := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(i), 0}), 24)
				if i == n-1 {
					src = netip.PrefixFrom(src4, 32)
				} else {
					srcs = append(srcs, src.Addr().Next())
				}
				rules = append(rules, route.Rule{Family: 4, Priority: uint32(1000 + i), Src: src, Action: route.RuleLookup,
					Table: tables[1+i%3], SuppressPrefixlen: -1, SuppressIfgroup: -1})
			}
			if err := p.ns.Do(func() error { return d.SetRules(rules, func(string) int { return 0 }) }); err != nil {
				b.Fatal(err)
			}
			frames := make([][]byte, 64)
			for i := range frames {
				src := srcs[0]
				if i%2 == 1 {
					src = srcs[rng.IntN(len(srcs))]
				}
				k := pkt{src: src, dst: netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), byte(rng.IntN(256)), 1}), sport: 1000, dport: 53}
				frames[i] = k.build()
				copy(frames[i], macB)
				if ret, _ := runIn(b, d, p, p.b, frames[i]); ret != xdpRedirect {
					b.Fatalf("frame from %v: %s, want XDP_REDIRECT (%v)", src, xdpNames[ret], statsMap(b, d))
				}
			}
			const repeat = 2000
			var total float64
			var pkts int
			b.ResetTimer()
			for b.Loop() {
				// Kernel-measured; no ingress port in the context (the
				// rules here name none), so no per-call device setup.
				err := p.ns.Do(func() error {
					for _, f := range frames {
						_, dur, err := d.Program().Benchmark(f, repeat, nil)
						if err != nil {
							return err
						}
						total += float64(dur.Nanoseconds())
						pkts++
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			per := total / float64(pkts)
			b.ReportMetric(per, "ns/pkt")
			if n == 0 {
				base = per
			} else if base > 0 {
				b.ReportMetric(per/base, "x_defaults")
			}
		})
	}
}
