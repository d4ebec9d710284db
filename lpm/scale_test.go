package lpm

import (
	"testing"
	"time"
)

// TestScale builds full-size tables and logs build time, update rate and
// memory (figures for docs/lpm.md; no timing is asserted).
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("full-size tables: not with -short")
	}
	for _, c := range []struct{ bits, n int }{{32, 1_000_000}, {128, 200_000}} {
		ps := SyntheticTable(c.n, c.bits, 1)
		mem := newMem(4<<20, 4<<20)
		tb, err := New(c.bits, mem)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for i, p := range ps {
			tb.Set(p, Leaf(1+i%1000))
		}
		if err := tb.Commit(); err != nil {
			t.Fatal(err)
		}
		build := time.Since(start)
		recs, leaves := tb.Usage()
		// Updates: withdraw and re-announce 100k routes, 1,000 per commit.
		start = time.Now()
		const changes = 100_000
		for i := 0; i < changes; i += 1000 {
			for j := i; j < i+1000; j++ {
				p := ps[(j*7919)%len(ps)]
				if j%2 == 0 {
					tb.Delete(p)
				} else {
					tb.Set(p, Leaf(2000+j%7))
				}
			}
			if err := tb.Commit(); err != nil {
				t.Fatal(err)
			}
			tb.Reclaim(tb.Epoch()) // as if a grace period passed per commit
		}
		upd := time.Since(start)
		mib := float64(recs*24+leaves*4+TopEntries*4) / (1 << 20)
		t.Logf("%d-bit, %d routes: build %v; %d records + %d leaves = %.1f MiB; %.0f changes/s (1,000 per commit)",
			c.bits, c.n, build.Round(time.Millisecond), recs, leaves, mib, changes/upd.Seconds())
	}
}
