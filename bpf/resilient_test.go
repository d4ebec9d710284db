package bpf

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// table renders a bucket table as the next hop of each bucket.
func table(members []uint32, b [NHGBuckets]uint8) *[NHGBuckets]uint32 {
	var out [NHGBuckets]uint32
	for i, s := range b {
		out[i] = members[s]
	}
	return &out
}

func ids(from, n int) []uint32 {
	var out []uint32
	for i := range n {
		out = append(out, uint32(from+i))
	}
	return out
}

// checkBalanced: every member has NHGBuckets/n buckets or one more.
func checkBalanced(t *testing.T, members []uint32, tab *[NHGBuckets]uint32) {
	t.Helper()
	per := map[uint32]int{}
	for _, id := range tab {
		per[id]++
	}
	lo := NHGBuckets / len(members)
	for _, id := range members {
		if n := per[id]; n < lo || n > lo+1 {
			t.Errorf("member %d has %d buckets, want %d or %d (%v)", id, n, lo, lo+1, per)
		}
	}
	if len(per) != len(members) {
		t.Errorf("buckets name %d next hops, want the %d members", len(per), len(members))
	}
}

func moved(a, b *[NHGBuckets]uint32) (n int) {
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

func TestResilientBalanced(t *testing.T) {
	for n := 1; n <= MaxECMP; n++ {
		m := ids(100, n)
		tab := table(m, resilientBuckets(nil, m))
		checkBalanced(t, m, tab)
		// The same members again (a rewrite, a restart): nothing moves.
		if again := table(m, resilientBuckets(tab, m)); moved(tab, again) != 0 {
			t.Errorf("%d members rewritten: %d buckets moved", n, moved(tab, again))
		}
		// Another order of the same members: nothing moves either.
		rev := make([]uint32, n)
		for i := range m {
			rev[n-1-i] = m[i]
		}
		if again := table(rev, resilientBuckets(tab, rev)); moved(tab, again) != 0 {
			t.Errorf("%d members reordered: %d buckets moved", n, moved(tab, again))
		}
	}
}

// TestResilientLeaveJoin: a member leaving moves only its own buckets,
// spread over the others; one joining takes only its share.
func TestResilientLeaveJoin(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 2; n <= MaxECMP; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m := ids(1, n)
			tab := table(m, resilientBuckets(nil, m))
			gone := m[rng.IntN(n)]
			var left []uint32
			for _, id := range m {
				if id != gone {
					left = append(left, id)
				}
			}
			after := table(left, resilientBuckets(tab, left))
			checkBalanced(t, left, after)
			for b := range tab {
				if tab[b] != gone && after[b] != tab[b] {
					t.Fatalf("bucket %d of member %d moved to %d when %d left", b, tab[b], after[b], gone)
				}
			}
			// Back again: only its share moves, all of it to the joiner.
			back := append(append([]uint32(nil), left...), gone)
			again := table(back, resilientBuckets(after, back))
			checkBalanced(t, back, again)
			for b := range after {
				if again[b] != after[b] && again[b] != gone {
					t.Fatalf("bucket %d moved from %d to %d, not to the joining member %d", b, after[b], again[b], gone)
				}
			}
			if mv, share := moved(after, again), NHGBuckets/n+1; mv > share {
				t.Errorf("join moved %d buckets, more than the joiner's share %d", mv, share)
			}
		})
	}
}

// TestResilientChurn: random joins and leaves stay balanced and move at
// most what the change has to.
func TestResilientChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := ids(1, 8)
	tab := table(m, resilientBuckets(nil, m))
	next := uint32(100)
	for range 2000 {
		var nm []uint32
		if len(m) > 1 && (len(m) == MaxECMP || rng.IntN(2) == 0) {
			i := rng.IntN(len(m))
			nm = append(append(nm, m[:i]...), m[i+1:]...)
		} else {
			nm = append(append(nm, m...), next)
			next++
		}
		rng.Shuffle(len(nm), func(i, j int) { nm[i], nm[j] = nm[j], nm[i] })
		after := table(nm, resilientBuckets(tab, nm))
		checkBalanced(t, nm, after)
		// Leave: the leaver's buckets (≤ share+1); join: the joiner's share.
		if mv, bound := moved(tab, after), NHGBuckets/min(len(m), len(nm))+1; mv > bound {
			t.Fatalf("%d → %d members moved %d buckets, want ≤ %d", len(m), len(nm), mv, bound)
		}
		m, tab = nm, after
		if t.Failed() {
			return
		}
	}
}
