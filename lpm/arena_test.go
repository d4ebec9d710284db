package lpm

import (
	"errors"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// match is the naive longest match and its prefix.
func (n naive) match(a netip.Addr) (netip.Prefix, Leaf, bool) {
	for l := a.BitLen(); l >= 0; l-- {
		p, _ := a.Prefix(l)
		if v, ok := n[p]; ok {
			return p, v, true
		}
	}
	return netip.Prefix{}, 0, false
}

func TestLeafLayout(t *testing.T) {
	if got, want := NewLeaf(2, 24, 0x12345), Leaf(3<<28|24<<20|0x12345); got != want {
		t.Errorf("NewLeaf(2, 24, 0x12345) = %#x, want %#x", got, want)
	}
	for _, c := range []struct {
		kind, plen uint8
		group      uint32
	}{{0, 0, 0}, {MaxKind, 128, MaxGroup}, {1, 32, 1}, {5, 64, 77}, {0, 18, 1 << 19}} {
		l := NewLeaf(c.kind, c.plen, c.group)
		if l == 0 || l&LeafFlag != 0 {
			t.Errorf("NewLeaf(%d, %d, %d) = %#x", c.kind, c.plen, c.group, l)
		}
		k, p, g, ok := l.Decode()
		if !ok || k != c.kind || p != c.plen || g != c.group {
			t.Errorf("NewLeaf(%d, %d, %d).Decode() = %d, %d, %d, %v", c.kind, c.plen, c.group, k, p, g, ok)
		}
	}
	if _, _, _, ok := Leaf(0).Decode(); ok {
		t.Error("leaf 0 decodes as a route")
	}
	tb, _ := New(32, newMem(16, 16))
	if err := tb.Set(netip.MustParsePrefix("10.0.0.0/8"), LeafFlag|1); err == nil {
		t.Error("a leaf with bit 31 set accepted")
	}
}

// reachable adds the records and leaves the published state of tb reaches
// (as a reader starting now walks them).
func reachable(tb *Table, recs, leaves map[uint32]bool) {
	var walk func(e uint32)
	walk = func(e uint32) {
		recs[e] = true
		r := tb.a.records[e]
		for i := range bits.OnesCount64(r.Vector) {
			walk(r.ChildBase + uint32(i))
		}
		for i := range bits.OnesCount64(r.Leafvec) {
			leaves[r.LeafBase+uint32(i)] = true
		}
	}
	for _, e := range tb.top {
		if e&LeafFlag == 0 && e != 0 {
			walk(e)
		}
	}
}

// readerView is what readers that started since the last grace period may
// hold: the contents of every block published since.
type readerView struct {
	recs   map[uint32]Record
	leaves map[uint32]uint32
}

func (v *readerView) add(a *Arena, tbs []*Table) {
	recs, leaves := map[uint32]bool{}, map[uint32]bool{}
	for _, tb := range tbs {
		reachable(tb, recs, leaves)
	}
	for i := range recs {
		v.recs[i] = a.records[i]
	}
	for i := range leaves {
		v.leaves[i] = a.leaves[i]
	}
}

func (v *readerView) check(t *testing.T, a *Arena, when string) {
	t.Helper()
	for i, r := range v.recs {
		if a.records[i] != r {
			t.Fatalf("%s: record %d rewritten while a reader may hold it", when, i)
		}
	}
	for i, l := range v.leaves {
		if a.leaves[i] != l {
			t.Fatalf("%s: leaf %d rewritten while a reader may hold it", when, i)
		}
	}
}

// checkArena: the tables' published blocks are disjoint, allocated and not
// in a free list.
func checkArena(t *testing.T, a *Arena, tbs []*Table, when string) {
	t.Helper()
	ownerR, ownerL := map[uint32]int{}, map[uint32]int{}
	for k, tb := range tbs {
		recs, leaves := map[uint32]bool{}, map[uint32]bool{}
		reachable(tb, recs, leaves)
		for i := range recs {
			if o, ok := ownerR[i]; ok {
				t.Fatalf("%s: record %d reached by tables %d and %d", when, i, o, k)
			}
			if i == 0 || i >= a.recs.next {
				t.Fatalf("%s: table %d reaches unallocated record %d", when, k, i)
			}
			ownerR[i] = k
		}
		for i := range leaves {
			if o, ok := ownerL[i]; ok {
				t.Fatalf("%s: leaf %d reached by tables %d and %d", when, i, o, k)
			}
			if i == 0 || i >= a.lvs.next {
				t.Fatalf("%s: table %d reaches unallocated leaf %d", when, k, i)
			}
			ownerL[i] = k
		}
	}
	for size, l := range a.recs.freed {
		for _, f := range l {
			for i := f.start; i < f.start+uint32(size); i++ {
				if o, ok := ownerR[i]; ok {
					t.Fatalf("%s: record %d of table %d is free", when, i, o)
				}
			}
		}
	}
	for size, l := range a.lvs.freed {
		for _, f := range l {
			for i := f.start; i < f.start+uint32(size); i++ {
				if o, ok := ownerL[i]; ok {
					t.Fatalf("%s: leaf %d of table %d is free", when, i, o)
				}
			}
		}
	}
}

// TestTablesSharingArena: four tables (three IPv4, one IPv6) on one arena,
// random interleaved changes, commits, resets and grace periods: each
// table's lookups equal its own naive longest match, with the matched
// prefix length in the leaf; the tables never share a block, and no block
// a reader may hold is rewritten before a grace period.
func TestTablesSharingArena(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	fams := []int{32, 32, 128, 32}
	a := NewArena(make([]Record, 1<<17), make([]uint32, 1<<18))
	top := make([]uint32, len(fams)*TopEntries)
	tbs := make([]*Table, len(fams))
	refs := make([]naive, len(fams))
	pss := make([][]netip.Prefix, len(fams))
	for i, bits := range fams {
		var err error
		if tbs[i], err = NewIn(bits, a, top[i*TopEntries:(i+1)*TopEntries]); err != nil {
			t.Fatal(err)
		}
		refs[i] = naive{}
	}
	view := &readerView{map[uint32]Record{}, map[uint32]uint32{}}
	leaf := func(p netip.Prefix) Leaf {
		return NewLeaf(uint8(r.IntN(MaxKind+1)), uint8(p.Bits()), r.Uint32N(4)) // few groups: runs merge but for plen
	}
	check := func(round int) {
		t.Helper()
		for i, tb := range tbs {
			for range 2000 {
				ad := randAddr(r, fams[i], pss[i])
				p, want, _ := refs[i].match(ad)
				got := tb.Lookup(ad)
				if got != want {
					t.Fatalf("round %d, table %d: lookup %v = %#x, want %#x (%v)", round, i, ad, got, want, p)
				}
				if _, plen, _, ok := got.Decode(); ok && int(plen) != p.Bits() {
					t.Fatalf("round %d, table %d: lookup %v: plen %d, want %d", round, i, ad, plen, p.Bits())
				}
			}
		}
	}
	for round := range 30 {
		for range 600 {
			i := r.IntN(len(tbs))
			tb, ref, bits := tbs[i], refs[i], fams[i]
			switch x := r.IntN(100); {
			case x < 58 || len(pss[i]) == 0:
				p := randPrefix(r, bits)
				if r.IntN(1500) == 0 { // the default route, now and then
					p = netip.PrefixFrom(p.Addr(), 0).Masked()
				}
				v := leaf(p)
				if err := tb.Set(p, v); err != nil {
					t.Fatal(err)
				}
				ref[p] = v
				pss[i] = append(pss[i], p)
			case x < 94:
				k := r.IntN(len(pss[i]))
				if err := tb.Delete(pss[i][k]); err != nil {
					t.Fatal(err)
				}
				delete(ref, pss[i][k])
				pss[i] = append(pss[i][:k], pss[i][k+1:]...)
			case x < 98:
				if err := tb.Commit(); err != nil {
					t.Fatal(err)
				}
				view.check(t, a, "commit")
				view.add(a, []*Table{tb}) // the others are unchanged
			case x < 99:
				// A grace period (the same for every table).
				a.Reclaim(a.Epoch())
				view = &readerView{map[uint32]Record{}, map[uint32]uint32{}}
				view.add(a, tbs)
			default:
				if r.IntN(4) == 0 {
					tb.Reset()
					refs[i], pss[i] = naive{}, nil
					view.check(t, a, "reset")
				}
			}
		}
		for _, tb := range tbs {
			if err := tb.Commit(); err != nil {
				t.Fatal(err)
			}
			view.check(t, a, "commit")
			view.add(a, []*Table{tb})
		}
		checkArena(t, a, tbs, "round")
		check(round)
		for i, tb := range tbs {
			if tb.Len() != len(refs[i]) {
				t.Fatalf("table %d: Len %d, want %d", i, tb.Len(), len(refs[i]))
			}
		}
	}
	// Everything deleted: every block back.
	for i, tb := range tbs {
		for p := range refs[i] {
			tb.Delete(p)
		}
		if err := tb.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if recs, leaves := a.Usage(); recs != 0 || leaves != 0 {
		t.Errorf("%d records and %d leaves in use after deleting everything", recs, leaves)
	}
}

// fill sets n random routes in tb and ref and commits them.
func fill(t *testing.T, r *rand.Rand, tb *Table, ref naive, bits, n int) []netip.Prefix {
	t.Helper()
	var ps []netip.Prefix
	for range n {
		p := randPrefix(r, bits)
		v := NewLeaf(0, uint8(p.Bits()), r.Uint32N(3))
		tb.Set(p, v)
		ref[p] = v
		ps = append(ps, p)
	}
	if err := tb.Commit(); err != nil {
		t.Fatal(err)
	}
	return ps
}

func checkTable(t *testing.T, r *rand.Rand, tb *Table, ref naive, bits int, ps []netip.Prefix, what string) {
	t.Helper()
	for range 5000 {
		ad := randAddr(r, bits, ps)
		if got, want := tb.Lookup(ad), ref.lookup(ad); got != want {
			t.Fatalf("%s: lookup %v = %#x, want %#x", what, ad, got, want)
		}
	}
}

// TestReset: a reset table has no route at once, its blocks are freed but
// not rewritten before a grace period, and reused after it; the other
// tables of the arena are untouched.
func TestReset(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	a := NewArena(make([]Record, 1<<15), make([]uint32, 1<<16))
	top := make([]uint32, 3*TopEntries)
	var tbs [3]*Table
	refs := [3]naive{{}, {}, {}}
	var pss [3][]netip.Prefix
	fams := [3]int{32, 32, 128}
	for i := range tbs {
		tbs[i], _ = NewIn(fams[i], a, top[i*TopEntries:(i+1)*TopEntries])
	}
	pss[1] = fill(t, r, tbs[1], refs[1], 32, 2000)
	pss[2] = fill(t, r, tbs[2], refs[2], 128, 1000)
	a.Reclaim(a.Epoch())
	recsB, leavesB := a.Usage()
	pss[0] = fill(t, r, tbs[0], refs[0], 32, 3000)
	a.Reclaim(a.Epoch())
	nextR, nextL := a.recs.next, a.lvs.next
	view := &readerView{map[uint32]Record{}, map[uint32]uint32{}}
	view.add(a, tbs[:])

	tbs[0].Reset()
	for i, e := range tbs[0].top {
		if e != 0 {
			t.Fatalf("top %d = %#x after Reset", i, e)
		}
	}
	if tbs[0].Len() != 0 {
		t.Errorf("Len %d after Reset", tbs[0].Len())
	}
	checkTable(t, r, tbs[0], naive{}, 32, pss[0], "reset table")
	if recs, leaves := a.Usage(); recs != recsB || leaves != leavesB {
		t.Errorf("usage after Reset %d records, %d leaves; want %d, %d (the other tables')", recs, leaves, recsB, leavesB)
	}
	if !a.Pending() {
		t.Error("Reset freed nothing pending a grace period")
	}
	// Before the grace period, commits of the other tables take fresh
	// space: a packet still walking the reset table's blocks is safe.
	for i := 1; i < 3; i++ {
		for _, p := range pss[i][:200] {
			v := NewLeaf(1, uint8(p.Bits()), 9)
			tbs[i].Set(p, v)
			refs[i][p] = v
		}
		if err := tbs[i].Commit(); err != nil {
			t.Fatal(err)
		}
	}
	view.check(t, a, "commits after Reset")
	for i := 1; i < 3; i++ {
		checkTable(t, r, tbs[i], refs[i], fams[i], pss[i], "other table")
	}
	checkArena(t, a, tbs[:], "after Reset")
	// After it, the reset table's blocks are reused: refilling it as it
	// was takes no fresh space.
	a.Reclaim(a.Epoch())
	nextR, nextL = a.recs.next, a.lvs.next
	if a.Pending() {
		t.Error("blocks pending after a grace period")
	}
	for p, v := range refs[0] {
		tbs[0].Set(p, v)
	}
	if err := tbs[0].Commit(); err != nil {
		t.Fatal(err)
	}
	if a.recs.next > nextR || a.lvs.next > nextL {
		t.Errorf("refill took fresh space: records %d → %d, leaves %d → %d", nextR, a.recs.next, nextL, a.lvs.next)
	}
	checkTable(t, r, tbs[0], refs[0], 32, pss[0], "refilled table")
	for i := 1; i < 3; i++ {
		checkTable(t, r, tbs[i], refs[i], fams[i], pss[i], "other table")
	}
	checkArena(t, a, tbs[:], "after refill")
	// Reset all: nothing in use.
	for _, tb := range tbs {
		tb.Reset()
	}
	if recs, leaves := a.Usage(); recs != 0 || leaves != 0 {
		t.Errorf("%d records and %d leaves in use after resetting every table", recs, leaves)
	}
}

// TestFullSharedArena: when the shared arena is full, the table whose
// commit did not fit reports ErrFull and keeps its published state; the
// other tables are untouched and commit on.
func TestFullSharedArena(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	a := NewArena(make([]Record, 600), make([]uint32, 2000))
	top := make([]uint32, 2*TopEntries)
	ta, _ := NewIn(32, a, top[:TopEntries])
	tb, _ := NewIn(32, a, top[TopEntries:])
	refA, refB := naive{}, naive{}
	psA := fill(t, r, ta, refA, 32, 150)
	psB := fill(t, r, tb, refB, 32, 150)
	a.Reclaim(a.Epoch())
	usedR, usedL := a.Usage()
	if usedR > 500 {
		t.Fatalf("test set-up: %d records used already", usedR)
	}
	// All in one /18 of A: it is published whole or not at all.
	var added []netip.Prefix
	for i := range 400 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i / 13), byte(i % 13 * 19)}), 32)
		ta.Set(p, NewLeaf(0, 32, 1))
		added = append(added, p)
	}
	err := ta.Commit()
	if !errors.Is(err, ErrFull) {
		t.Fatalf("commit of a table that does not fit: %v", err)
	}
	checkTable(t, r, ta, refA, 32, append(psA, added...), "failed table")
	checkTable(t, r, tb, refB, 32, psB, "other table")
	if err := tb.Commit(); err != nil {
		t.Errorf("commit of the other table, unchanged: %v", err)
	}
	// B changes what fits in its own blocks' space (replacing a leaf
	// value needs a fresh block only briefly).
	a.Reclaim(a.Epoch())
	checkArena(t, a, []*Table{ta, tb}, "after ErrFull")
	// A withdraws the routes that did not fit: back to its state.
	for _, p := range added {
		ta.Delete(p)
	}
	if err := ta.Commit(); err != nil {
		t.Fatal(err)
	}
	checkTable(t, r, ta, refA, 32, psA, "recovered table")
	checkTable(t, r, tb, refB, 32, psB, "other table")
	checkArena(t, a, []*Table{ta, tb}, "recovered")
	a.Reclaim(a.Epoch())
	if recs, leaves := a.Usage(); recs != usedR || leaves != usedL {
		t.Errorf("usage %d records, %d leaves after recovering; want %d, %d", recs, leaves, usedR, usedL)
	}
	// B grows into the room A freed.
	for _, p := range psB[:50] {
		v := NewLeaf(2, uint8(p.Bits()), 2)
		tb.Set(p, v)
		refB[p] = v
	}
	if err := tb.Commit(); err != nil {
		t.Fatal(err)
	}
	checkTable(t, r, tb, refB, 32, psB, "other table changed")
	checkTable(t, r, ta, refA, 32, psA, "recovered table")
}
