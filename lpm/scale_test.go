package lpm

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkScale builds full-size tables and reports build time, memory
// and update rate (the figures of docs/lpm.md; make bench runs it).
func BenchmarkScale(b *testing.B) {
	for _, c := range []struct{ bits, n int }{{32, 1_000_000}, {128, 200_000}} {
		b.Run(fmt.Sprintf("ipv%d/routes=%d", map[int]int{32: 4, 128: 6}[c.bits], c.n), func(b *testing.B) {
			ps := SyntheticTable(c.n, c.bits, 1)
			for range b.N {
				tb, err := New(c.bits, newMem(4<<20, 4<<20))
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for i, p := range ps {
					tb.Set(p, NewLeaf(0, uint8(p.Bits()), uint32(1+i%1000)))
				}
				if err := tb.Commit(); err != nil {
					b.Fatal(err)
				}
				build := time.Since(start)
				recs, leaves := tb.Usage()
				// Withdraw and re-announce 100k routes, 1,000 per commit,
				// a grace period after each.
				start = time.Now()
				const changes = 100_000
				for i := 0; i < changes; i += 1000 {
					for j := i; j < i+1000; j++ {
						p := ps[(j*7919)%len(ps)]
						if j%2 == 0 {
							tb.Delete(p)
						} else {
							tb.Set(p, NewLeaf(0, uint8(p.Bits()), uint32(2000+j%7)))
						}
					}
					if err := tb.Commit(); err != nil {
						b.Fatal(err)
					}
					tb.Reclaim(tb.Epoch())
				}
				upd := time.Since(start)
				b.ReportMetric(build.Seconds(), "build-s")
				b.ReportMetric(float64(recs*24+leaves*4+TopEntries*4)/(1<<20), "MiB")
				b.ReportMetric(float64(recs), "records")
				b.ReportMetric(float64(leaves), "leaves")
				b.ReportMetric(changes/upd.Seconds(), "changes/s")
			}
		})
	}
}
