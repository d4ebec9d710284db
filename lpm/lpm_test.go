package lpm

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// naive is the reference: the longest prefix in a map.
type naive map[netip.Prefix]Leaf

func (n naive) lookup(a netip.Addr) Leaf {
	for l := a.BitLen(); l >= 0; l-- {
		p, _ := a.Prefix(l)
		if v, ok := n[p]; ok {
			return v
		}
	}
	return 0
}

func newMem(records, leaves int) Memory {
	return Memory{Top: make([]uint32, TopEntries), Records: make([]Record, records), Leaves: make([]uint32, leaves)}
}

// randPrefix draws an Internet-like prefix length mix around a few dense
// regions, so that routes nest and collide.
func randPrefix(r *rand.Rand, bits int) netip.Prefix {
	var l int
	if bits == 32 {
		l = []int{8, 12, 16, 16, 18, 20, 22, 23, 24, 24, 24, 24, 24, 25, 28, 32}[r.IntN(16)]
	} else {
		l = []int{16, 20, 29, 32, 32, 36, 40, 44, 48, 48, 48, 48, 56, 64, 96, 128}[r.IntN(16)]
	}
	var b [16]byte
	b[0] = byte(r.IntN(4)) // a few dense /8s (and ::/6 for IPv6)
	for i := 1; i < 16; i++ {
		b[i] = byte(r.IntN(256))
	}
	if r.IntN(4) == 0 {
		b[1], b[2] = 7, byte(r.IntN(4)) // very dense region
	}
	var a netip.Addr
	if bits == 32 {
		a = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		a = netip.AddrFrom16(b)
	}
	p, _ := a.Prefix(l)
	return p
}

func randAddr(r *rand.Rand, bits int, near []netip.Prefix) netip.Addr {
	var b [16]byte
	if len(near) > 0 && r.IntN(2) == 0 {
		p := near[r.IntN(len(near))]
		if bits == 32 {
			v := p.Addr().As4()
			copy(b[:], v[:])
		} else {
			b = p.Addr().As16()
		}
		// Inside the prefix, at its edges, or just past it.
		for i := p.Bits(); i < bits; i++ {
			if r.IntN(3) == 0 {
				b[i/8] |= 0x80 >> (i % 8)
			}
		}
		if r.IntN(4) == 0 && p.Bits() > 0 {
			i := p.Bits() - 1
			b[i/8] ^= 0x80 >> (i % 8)
		}
	} else {
		b[0] = byte(r.IntN(4))
		for i := 1; i < 16; i++ {
			b[i] = byte(r.IntN(256))
		}
	}
	if bits == 32 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// TestRandomAgainstNaive: after random sequences of adds, replaces and
// deletes (nested, covering, covered, default), every lookup of the
// compiled structure equals the naive longest match.
func TestRandomAgainstNaive(t *testing.T) {
	for _, bits := range []int{32, 128} {
		r := rand.New(rand.NewPCG(1, uint64(bits)))
		tb, err := New(bits, newMem(1<<16, 1<<17))
		if err != nil {
			t.Fatal(err)
		}
		ref := naive{}
		var ps []netip.Prefix
		def, _ := netip.IPv4Unspecified().Prefix(0)
		if bits == 128 {
			def, _ = netip.IPv6Unspecified().Prefix(0)
		}
		for round := range 30 {
			for range 300 {
				switch x := r.IntN(10); {
				case x == 9 && r.IntN(60) != 0:
					continue // the default route toggles about once in 3 rounds
				case x < 6 || len(ps) == 0:
					p := randPrefix(r, bits)
					v := Leaf(1 + r.Uint32N(1000))
					if err := tb.Set(p, v); err != nil {
						t.Fatal(err)
					}
					ref[p] = v
					ps = append(ps, p)
				case x < 9:
					i := r.IntN(len(ps))
					if err := tb.Delete(ps[i]); err != nil {
						t.Fatal(err)
					}
					delete(ref, ps[i])
					ps = append(ps[:i], ps[i+1:]...)
				default: // the default route comes and goes
					if _, ok := ref[def]; ok {
						tb.Delete(def)
						delete(ref, def)
					} else {
						tb.Set(def, 7)
						ref[def] = 7
					}
				}
			}
			if err := tb.Commit(); err != nil {
				t.Fatal(err)
			}
			if r.IntN(2) == 0 { // a grace period: freed blocks are reused
				tb.Reclaim(tb.Epoch())
			}
			for range 5000 {
				a := randAddr(r, bits, ps)
				if got, want := tb.Lookup(a), ref.lookup(a); got != want {
					t.Fatalf("%d-bit, round %d: lookup %v = %d, want %d (%d routes)", bits, round, a, got, want, len(ref))
				}
			}
		}
		if tb.Len() != len(ref) {
			t.Errorf("%d-bit: Len %d, want %d", bits, tb.Len(), len(ref))
		}
		// Everything deleted: the structure is empty and its blocks free.
		for p := range ref {
			tb.Delete(p)
		}
		if err := tb.Commit(); err != nil {
			t.Fatal(err)
		}
		for i, e := range tb.top {
			if e != LeafFlag {
				t.Fatalf("%d-bit: top %d = %#x after deleting everything", bits, i, e)
			}
		}
		if recs, leaves := tb.Usage(); recs != 0 || leaves != 0 {
			t.Errorf("%d-bit: %d records and %d leaves still in use after deleting everything", bits, recs, leaves)
		}
	}
}

// TestReplacedBlocksWaitForGracePeriod: until a grace period, a commit
// never writes a block that an earlier published structure (as a reader
// holding the previous top entry sees it) uses; after it, they are reused.
func TestReplacedBlocksWaitForGracePeriod(t *testing.T) {
	tb, _ := New(32, newMem(1024, 1024))
	p := netip.MustParsePrefix("10.1.2.0/24")
	tb.Set(p, 1)
	tb.Commit()
	before := append([]Record(nil), tb.a.records...)
	beforeLeaves := append([]uint32(nil), tb.a.leaves...)
	e := tb.Epoch() // a grace period begins, but has not ended
	for i := range 10 {
		tb.Set(p, Leaf(2+i))
		tb.Set(netip.MustParsePrefix("10.1.3.0/24"), Leaf(20+i))
		tb.Commit()
	}
	// The blocks the first commit published are untouched.
	for i, r := range before {
		if r != (Record{}) && tb.a.records[i] != r {
			t.Errorf("record %d rewritten before the grace period ended", i)
		}
	}
	for i, v := range beforeLeaves {
		if v != 0 && tb.a.leaves[i] != v {
			t.Errorf("leaf %d rewritten before the grace period ended", i)
		}
	}
	if got := tb.Lookup(netip.MustParseAddr("10.1.2.9")); got != 11 {
		t.Errorf("lookup = %d, want 11", got)
	}
	if !tb.Pending() {
		t.Error("no blocks pending a grace period")
	}
	// After it (and a new epoch for the last frees), space is reused.
	tb.Reclaim(e)
	tb.Reclaim(tb.Epoch())
	used := tb.a.recs.next
	for i := range 10 {
		tb.Set(p, Leaf(30+i))
		tb.Commit()
		tb.Reclaim(tb.Epoch())
	}
	if tb.a.recs.next != used {
		t.Errorf("fresh records taken (%d → %d) although freed ones were reclaimed", used, tb.a.recs.next)
	}
}

func TestFull(t *testing.T) {
	tb, _ := New(32, newMem(4, 4))
	for i := range 10 {
		tb.Set(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 1, 0}), 24), 1)
	}
	if err := tb.Commit(); err == nil {
		t.Fatal("overfilled structure committed")
	}
	// What fitted is published and consistent; the rest has no route.
	for i := range 10 {
		a := netip.AddrFrom4([4]byte{10, byte(i), 1, 1})
		if got := tb.Lookup(a); got != 0 && got != 1 {
			t.Errorf("lookup %v = %d", a, got)
		}
	}
}

// TestCommitAfterFull: a commit that runs out of room part-way leaves the
// published structure as it was, and once room is back the retry publishes
// every change, including those of nodes serialized before the failure.
func TestCommitAfterFull(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for trial := range 50 {
		tb, _ := New(32, newMem(64+r.IntN(64), 4096))
		ref := naive{}
		var ps []netip.Prefix
		for range 40 {
			p := randPrefix(r, 32)
			v := Leaf(1 + r.Uint32N(100))
			tb.Set(p, v)
			ref[p] = v
			ps = append(ps, p)
			if r.IntN(4) == 0 {
				tb.Commit() // may fail: too few records
			}
			if r.IntN(4) == 0 {
				i := r.IntN(len(ps))
				tb.Delete(ps[i])
				delete(ref, ps[i])
			}
		}
		tb.Commit()
		// Room again: grow the arrays (the allocator's cap) and retry.
		tb.a.records = append(tb.a.records, make([]Record, 4096)...)
		tb.a.recs.cap = uint32(len(tb.a.records))
		if err := tb.Commit(); err != nil {
			t.Fatal(err)
		}
		for range 2000 {
			a := randAddr(r, 32, ps)
			if got, want := tb.Lookup(a), ref.lookup(a); got != want {
				t.Fatalf("trial %d: lookup %v = %d, want %d", trial, a, got, want)
			}
		}
		// No block lost to the failed commits.
		for p := range ref {
			tb.Delete(p)
		}
		if err := tb.Commit(); err != nil {
			t.Fatal(err)
		}
		if recs, leaves := tb.Usage(); recs != 0 || leaves != 0 {
			t.Fatalf("trial %d: %d records and %d leaves in use after deleting everything", trial, recs, leaves)
		}
	}
}

// TestIPv4MappedInIPv6: ::ffff:0:0/96 routes are IPv6 routes like any other
// (the trie takes them; refusing one here would switch XDP to the trie).
func TestIPv4MappedInIPv6(t *testing.T) {
	tb, _ := New(128, newMem(64, 64))
	p := netip.MustParsePrefix("::ffff:10.0.0.0/104")
	if err := tb.Set(p, 9); err != nil {
		t.Fatal(err)
	}
	if err := tb.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := tb.Lookup(netip.MustParseAddr("::ffff:10.1.2.3")); got != 9 {
		t.Errorf("lookup = %d, want 9", got)
	}
	if err := tb.Set(netip.MustParsePrefix("10.0.0.0/8"), 1); err == nil {
		t.Error("an IPv4 prefix accepted by the IPv6 table")
	}
}

// TestFullAtRootRecord: a commit whose nodes fit but whose new root record
// does not keeps what it replaced (still published) and frees it once the
// entry is published: no block is lost.
func TestFullAtRootRecord(t *testing.T) {
	tb, _ := New(32, newMem(2, 64)) // room for one record
	p := netip.MustParsePrefix("10.1.2.0/24")
	tb.Set(p, 1)
	if err := tb.Commit(); err != nil {
		t.Fatal(err)
	}
	tb.Set(p, 2) // a new leaf block, then a new root record
	if err := tb.Commit(); !errors.Is(err, ErrFull) {
		t.Fatalf("commit = %v, want ErrFull", err)
	}
	if got := tb.Lookup(netip.MustParseAddr("10.1.2.3")); got != 1 {
		t.Errorf("lookup = %d after a failed commit, want 1", got)
	}
	tb.a.records = append(tb.a.records, make([]Record, 8)...)
	tb.a.recs.cap = uint32(len(tb.a.records))
	if err := tb.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := tb.Lookup(netip.MustParseAddr("10.1.2.3")); got != 2 {
		t.Errorf("lookup = %d, want 2", got)
	}
	tb.Delete(p)
	if err := tb.Commit(); err != nil {
		t.Fatal(err)
	}
	if recs, leaves := tb.Usage(); recs != 0 || leaves != 0 {
		t.Errorf("%d records and %d leaves in use after deleting everything", recs, leaves)
	}
}
