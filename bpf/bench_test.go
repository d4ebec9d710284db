package bpf

import (
	"fmt"
	"github.com/xdprouter/xdprouter/route"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// BenchmarkXDP compares the per-packet cost with 10 and 100k IPv4 routes
// (BPF_PROG_TEST_RUN, kernel-measured ns/pkt). The routes lead to an
// unresolved next hop, so the whole lookup path runs (parse, LPM, hash,
// group, next hop) but the frame is passed unmodified: a forwarded frame
// would have its TTL drained by the repeated runs over one buffer. With a
// single destination the trie path stays cache-hot; see KERNEL-NOTES for
// cold-cache numbers.
func BenchmarkXDP(b *testing.B) {
	for _, n := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			d := loadTest(b)
			if err := d.SetNextHop(1, route.Egress{Ifindex: 1}); err != nil {
				b.Fatal(err)
			}
			if err := d.SetGroup(1, []uint32{1}); err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			rs := make([]route.Entry, 0, n)
			for len(rs) < n-1 {
				a := [4]byte{byte(1 + rng.IntN(223)), byte(rng.Uint32()), byte(rng.Uint32()), 0}
				rs = append(rs, route.Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 24), Group: 1})
			}
			rs = append(rs, route.Entry{Prefix: pfx("10.77.1.0/24"), Group: 1})
			dst := ip("10.77.1.9")
			if _, err := d.UpdateRoutes(rs); err != nil {
				b.Fatal(err)
			}
			frame := pkt{src: src4, dst: dst, sport: 1, dport: 2}.build()
			if ret, _ := run(b, d, frame); ret != xdpPass {
				b.Fatalf("verdict %s", xdpNames[ret])
			}
			const repeat = 10000
			var total float64
			b.ResetTimer()
			for b.Loop() {
				_, dur, err := d.Program().Benchmark(frame, repeat, nil)
				if err != nil {
					b.Fatal(err)
				}
				total += float64(dur.Nanoseconds())
			}
			b.ReportMetric(total/float64(b.N), "ns/pkt")
		})
	}
}
