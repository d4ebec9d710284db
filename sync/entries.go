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
// family; the kernel's own routes and local-address references, which few
// prefixes have, hang off a side record.

// entry is everything known about one prefix: its inputs and what is
// applied in each sink.
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

// v6key is an IPv6 prefix as a map key (netip.Prefix carries a zone
// handle and padding: 32 bytes).
type v6key struct {
	hi, lo uint64
	bits   uint8
}

// entryTable maps prefixes to entries.
type entryTable struct {
	v4     map[uint64]uint32 // address << 8 | bits → slot
	v6     map[v6key]uint32
	chunks [][]entry
	free   []uint32
	// peak is the largest count since the maps were last rebuilt: Go maps
	// never shrink, so after a table is withdrawn they are rebuilt.
	peak int
}

func newEntryTable() *entryTable {
	return &entryTable{v4: map[uint64]uint32{}, v6: map[v6key]uint32{}}
}

func key4(p netip.Prefix) uint64 {
	a := p.Addr().As4()
	return uint64(binary.BigEndian.Uint32(a[:]))<<8 | uint64(p.Bits())
}

func key6(p netip.Prefix) v6key {
	a := p.Addr().As16()
	return v6key{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:]), uint8(p.Bits())}
}

func prefix4(k uint64) netip.Prefix {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], uint32(k>>8))
	return netip.PrefixFrom(netip.AddrFrom4(a), int(k&0xff))
}

func prefix6(k v6key) netip.Prefix {
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], k.hi)
	binary.BigEndian.PutUint64(a[8:], k.lo)
	return netip.PrefixFrom(netip.AddrFrom16(a), int(k.bits))
}

func (t *entryTable) at(slot uint32) *entry { return &t.chunks[slot/chunkSize][slot%chunkSize] }

func (t *entryTable) Len() int { return len(t.v4) + len(t.v6) }

// get returns the entry of p, or nil.
func (t *entryTable) get(p netip.Prefix) *entry {
	var slot uint32
	var ok bool
	if p.Addr().Is4() {
		slot, ok = t.v4[key4(p)]
	} else {
		slot, ok = t.v6[key6(p)]
	}
	if !ok {
		return nil
	}
	return t.at(slot)
}

// add returns the entry of p, created empty if new.
func (t *entryTable) add(p netip.Prefix) *entry {
	if e := t.get(p); e != nil {
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
	if p.Addr().Is4() {
		t.v4[key4(p)] = slot
	} else {
		t.v6[key6(p)] = slot
	}
	t.peak = max(t.peak, t.Len())
	return t.at(slot)
}

// remove forgets p; pointers to its entry must not be used after.
func (t *entryTable) remove(p netip.Prefix) {
	var slot uint32
	var ok bool
	if p.Addr().Is4() {
		k := key4(p)
		if slot, ok = t.v4[k]; ok {
			delete(t.v4, k)
		}
	} else {
		k := key6(p)
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

// all yields every prefix and its entry; entries may be removed meanwhile.
func (t *entryTable) all() iter.Seq2[netip.Prefix, *entry] {
	return func(yield func(netip.Prefix, *entry) bool) {
		for k, s := range t.v4 {
			if !yield(prefix4(k), t.at(s)) {
				return
			}
		}
		for k, s := range t.v6 {
			if !yield(prefix6(k), t.at(s)) {
				return
			}
		}
	}
}

// prefixSet is a set of prefixes with compact keys. Once drained after
// holding many (a full table's load), its maps are dropped: Go maps never
// shrink.
type prefixSet struct {
	v4   map[uint64]struct{}
	v6   map[v6key]struct{}
	peak int
}

func newPrefixSet() *prefixSet {
	return &prefixSet{v4: map[uint64]struct{}{}, v6: map[v6key]struct{}{}}
}

func (s *prefixSet) add(p netip.Prefix) {
	if p.Addr().Is4() {
		s.v4[key4(p)] = struct{}{}
	} else {
		s.v6[key6(p)] = struct{}{}
	}
}

func (s *prefixSet) Len() int { return len(s.v4) + len(s.v6) }

// take removes and returns up to limit prefixes (all with limit 0), and
// reports whether any remain.
func (s *prefixSet) take(limit int) (out []netip.Prefix, more bool) {
	n := s.Len()
	s.peak = max(s.peak, n)
	defer func() {
		if s.Len() == 0 && s.peak > 1024 {
			*s = *newPrefixSet()
		}
	}()
	if limit > 0 && n > limit {
		n, more = limit, true
	}
	out = make([]netip.Prefix, 0, n)
	for k := range s.v4 {
		if len(out) == n {
			return out, more
		}
		out = append(out, prefix4(k))
		delete(s.v4, k)
	}
	for k := range s.v6 {
		if len(out) == n {
			return out, more
		}
		out = append(out, prefix6(k))
		delete(s.v6, k)
	}
	return out, more
}
