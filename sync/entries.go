package sync

import (
	"encoding/binary"
	"iter"
	"net/netip"

	"github.com/xdprouter/xdprouter/route"
)

// A full table is mostly BGP prefixes with nothing but a next-hop set and
// what was applied: entries are kept compact (see docs/BENCHMARKS.md for
// the bytes per route). They live in fixed-size chunks, so that pointers
// to them stay valid while the table grows, indexed by a compact key per
// family that holds the kernel table too (see key4, key6); the kernel's
// own routes and local-address references, which few prefixes have, hang
// off a side record.

// entry is everything known about one prefix of one kernel table: its
// inputs and what is applied in each sink.
type entry struct {
	side   *entrySide // nil: no kernel routes, no local address
	bgpSet uint32     // interned BGP next-hop set; 0: none

	// Our route in the kernel (metric Options.Metric): its interned
	// next-hop list (0: none).
	ours uint32

	xdp xdpApplied
}

// entrySide is what few prefixes have.
type entrySide struct {
	kernel    []route.Route // the kernel's own routes (not ours), in arrival order
	localRefs uint8         // interfaces holding this host address
	stale     bool          // ours was left by a previous instance (not yet confirmed)
	rejected  bool          // see state.rejected
}

func (e *entry) isStale() bool    { return e.side != nil && e.side.stale }
func (e *entry) isRejected() bool { return e.side != nil && e.side.rejected }

func (e *entry) setStale(b bool) {
	if e.side == nil && !b {
		return
	}
	e.sideRecord().stale = b
	e.trimSide()
}

func (e *entry) setRejected(b bool) {
	if e.side == nil && !b {
		return
	}
	e.sideRecord().rejected = b
	e.trimSide()
}

func (e *entry) sideRecord() *entrySide {
	if e.side == nil {
		e.side = &entrySide{}
	}
	return e.side
}

func (e *entry) kernelRoutes() []route.Route {
	if e.side == nil {
		return nil
	}
	return e.side.kernel
}

func (e *entry) setKernelRoutes(rs []route.Route) {
	if len(rs) == 0 {
		rs = nil
	}
	if e.side == nil {
		if rs == nil {
			return
		}
		e.side = &entrySide{}
	}
	e.side.kernel = rs
	e.trimSide()
}

func (e *entry) localRefs() uint8 {
	if e.side == nil {
		return 0
	}
	return e.side.localRefs
}

func (e *entry) addLocalRef(d int) {
	if e.side == nil {
		if d <= 0 {
			return
		}
		e.side = &entrySide{}
	}
	e.side.localRefs = uint8(max(int(e.side.localRefs)+d, 0))
	e.trimSide()
}

func (e *entry) trimSide() {
	if s := e.side; s.kernel == nil && s.localRefs == 0 && !s.stale && !s.rejected {
		e.side = nil
	}
}

// chunkSize is how many entries one allocation holds.
const chunkSize = 4096

// tableIndex numbers the kernel tables seen (few: main first, index 0),
// so that a key holds a small index instead of the 32-bit table id: an
// IPv4 key packs it above the address and prefix length.
type tableIndex struct {
	ids   []int          // index → table id (normalised)
	index map[int]uint32 // table id → index
}

// maxTables bounds the tables an IPv4 key can tell apart (24 bits).
const maxTables = 1 << 24

func newTableIndex() *tableIndex {
	return &tableIndex{ids: []int{route.TableMain}, index: map[int]uint32{route.TableMain: 0}}
}

// lookup returns the index of table t (normalised), if it has one.
func (ti *tableIndex) lookup(t int) (uint32, bool) {
	i, ok := ti.index[route.NormTable(t)]
	return i, ok
}

// intern returns the index of table t, numbering it if new.
func (ti *tableIndex) intern(t int) uint32 {
	t = route.NormTable(t)
	if i, ok := ti.index[t]; ok {
		return i
	}
	if len(ti.ids) >= maxTables {
		panic("sync: more than 2^24 kernel tables")
	}
	i := uint32(len(ti.ids))
	ti.ids = append(ti.ids, t)
	ti.index[t] = i
	return i
}

func (ti *tableIndex) table(i uint32) int { return ti.ids[i] }

// v6key is an IPv6 prefix of one table as a map key (netip.Prefix
// carries a zone handle and padding: 32 bytes; the table index fits in
// this key's padding: 24 bytes).
type v6key struct {
	hi, lo uint64
	table  uint32 // tableIndex
	bits   uint8
}

// key4 is an IPv4 prefix of the table of index ti: index << 40 | address
// << 8 | bits.
func key4(ti uint32, p netip.Prefix) uint64 {
	a := p.Addr().As4()
	return uint64(ti)<<40 | uint64(binary.BigEndian.Uint32(a[:]))<<8 | uint64(p.Bits())
}

func key6(ti uint32, p netip.Prefix) v6key {
	a := p.Addr().As16()
	return v6key{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:]), ti, uint8(p.Bits())}
}

func (ti *tableIndex) prefix4(k uint64) route.TablePrefix {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], uint32(k>>8))
	return route.TablePrefix{Table: ti.table(uint32(k >> 40)), Prefix: netip.PrefixFrom(netip.AddrFrom4(a), int(k&0xff))}
}

func (ti *tableIndex) prefix6(k v6key) route.TablePrefix {
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], k.hi)
	binary.BigEndian.PutUint64(a[8:], k.lo)
	return route.TablePrefix{Table: ti.table(k.table), Prefix: netip.PrefixFrom(netip.AddrFrom16(a), int(k.bits))}
}

// entryTable maps (table, prefix) keys to entries.
type entryTable struct {
	tables *tableIndex
	v4     map[uint64]uint32 // key4 → slot
	v6     map[v6key]uint32
	chunks [][]entry
	free   []uint32
	// peak is the largest count since the maps were last rebuilt: Go maps
	// never shrink, so after a table is withdrawn they are rebuilt.
	peak int
}

func newEntryTable(tables *tableIndex) *entryTable {
	return &entryTable{tables: tables, v4: map[uint64]uint32{}, v6: map[v6key]uint32{}}
}

func (t *entryTable) at(slot uint32) *entry { return &t.chunks[slot/chunkSize][slot%chunkSize] }

func (t *entryTable) Len() int { return len(t.v4) + len(t.v6) }

// get returns the entry of tp, or nil.
func (t *entryTable) get(tp route.TablePrefix) *entry {
	ti, ok := t.tables.lookup(tp.Table)
	if !ok {
		return nil
	}
	var slot uint32
	if tp.Prefix.Addr().Is4() {
		slot, ok = t.v4[key4(ti, tp.Prefix)]
	} else {
		slot, ok = t.v6[key6(ti, tp.Prefix)]
	}
	if !ok {
		return nil
	}
	return t.at(slot)
}

// add returns the entry of tp, created empty if new.
func (t *entryTable) add(tp route.TablePrefix) *entry {
	if e := t.get(tp); e != nil {
		return e
	}
	if len(t.free) == 0 {
		base := uint32(len(t.chunks) * chunkSize)
		t.chunks = append(t.chunks, make([]entry, chunkSize))
		for i := uint32(chunkSize); i > 0; i-- {
			t.free = append(t.free, base+i-1)
		}
	}
	slot := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	ti := t.tables.intern(tp.Table)
	if tp.Prefix.Addr().Is4() {
		t.v4[key4(ti, tp.Prefix)] = slot
	} else {
		t.v6[key6(ti, tp.Prefix)] = slot
	}
	t.peak = max(t.peak, t.Len())
	return t.at(slot)
}

// remove forgets tp; pointers to its entry must not be used after.
func (t *entryTable) remove(tp route.TablePrefix) {
	ti, ok := t.tables.lookup(tp.Table)
	if !ok {
		return
	}
	var slot uint32
	if tp.Prefix.Addr().Is4() {
		k := key4(ti, tp.Prefix)
		if slot, ok = t.v4[k]; ok {
			delete(t.v4, k)
		}
	} else {
		k := key6(ti, tp.Prefix)
		if slot, ok = t.v6[k]; ok {
			delete(t.v6, k)
		}
	}
	if !ok {
		return
	}
	*t.at(slot) = entry{}
	t.free = append(t.free, slot)
}

// shrink rebuilds the maps at their current size once they hold far fewer
// entries than they grew to (the chunks stay: their entries are in use or
// on the free list). Not while iterating.
func (t *entryTable) shrink() {
	if t.peak <= 1<<16 || t.Len() >= t.peak/4 {
		return
	}
	v4 := make(map[uint64]uint32, len(t.v4))
	for k, s := range t.v4 {
		v4[k] = s
	}
	v6 := make(map[v6key]uint32, len(t.v6))
	for k, s := range t.v6 {
		v6[k] = s
	}
	t.v4, t.v6, t.peak = v4, v6, t.Len()
}

// all yields every key and its entry; entries may be removed meanwhile.
func (t *entryTable) all() iter.Seq2[route.TablePrefix, *entry] {
	return func(yield func(route.TablePrefix, *entry) bool) {
		for k, s := range t.v4 {
			if !yield(t.tables.prefix4(k), t.at(s)) {
				return
			}
		}
		for k, s := range t.v6 {
			if !yield(t.tables.prefix6(k), t.at(s)) {
				return
			}
		}
	}
}

// prefixSet is a set of (table, prefix) keys with compact keys. Once
// drained after holding many (a full table's load), its maps are dropped:
// Go maps never shrink.
type prefixSet struct {
	tables *tableIndex
	v4     map[uint64]struct{}
	v6     map[v6key]struct{}
	peak   int
}

func newPrefixSet(tables *tableIndex) *prefixSet {
	return &prefixSet{tables: tables, v4: map[uint64]struct{}{}, v6: map[v6key]struct{}{}}
}

func (s *prefixSet) add(tp route.TablePrefix) {
	ti := s.tables.intern(tp.Table)
	if tp.Prefix.Addr().Is4() {
		s.v4[key4(ti, tp.Prefix)] = struct{}{}
	} else {
		s.v6[key6(ti, tp.Prefix)] = struct{}{}
	}
}

func (s *prefixSet) Len() int { return len(s.v4) + len(s.v6) }

// take removes and returns up to limit keys (all with limit 0), and
// reports whether any remain.
func (s *prefixSet) take(limit int) (out []route.TablePrefix, more bool) {
	n := s.Len()
	s.peak = max(s.peak, n)
	defer func() {
		if s.Len() == 0 && s.peak > 1024 {
			*s = *newPrefixSet(s.tables)
		}
	}()
	if limit > 0 && n > limit {
		n, more = limit, true
	}
	out = make([]route.TablePrefix, 0, n)
	for k := range s.v4 {
		if len(out) == n {
			return out, more
		}
		out = append(out, s.tables.prefix4(k))
		delete(s.v4, k)
	}
	for k := range s.v6 {
		if len(out) == n {
			return out, more
		}
		out = append(out, s.tables.prefix6(k))
		delete(s.v6, k)
	}
	return out, more
}
