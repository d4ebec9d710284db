// Package lpm compiles a route table into the lookup structure the XDP
// program walks: a poptrie-style multibit trie (Asai & Ohara, SIGCOMM 2015)
// held in three flat arrays.
//
//   - top: one 32-bit entry per value of the address's first 18 bits (1 MiB),
//     either a leaf (the route for the whole /18) or the index of a node
//     record.
//   - nodes: records of 64-way nodes, one per 6 address bits. A record holds
//     a 64-bit vector of the slots that are nodes, a 64-bit vector of the
//     slots where a run of equal leaves starts, and the bases of its child
//     block (records, contiguous) and leaf block (runs, contiguous): a slot's
//     child or leaf is found by counting the bits set below it (popcount).
//   - leaves: 32-bit route values (kind, matched prefix length and next-hop
//     group, see NewLeaf), leaf-pushed: a slot holds the leaf of the longest
//     prefix covering it, so a lookup ends at the first leaf with no
//     backtracking, and the prefix length in that leaf is the length of the
//     longest match (what the kernel's fib lookup reports, needed for
//     suppress_prefixlength).
//
// An IPv4 lookup reads 1 top entry, then for a /24 or shorter match 1
// record and 1 leaf (at most 3 records); a full table takes about 22 MiB,
// a working set this machine's caches hold far better than the BPF LPM
// trie's pointer chase (see docs/lpm.md).
//
// Updates are copy-on-write: Commit writes every changed node's blocks to
// free space, then publishes each changed /18 with one atomic store of its
// top entry. Blocks reachable by readers are never written; the blocks an
// update replaced are reused only after a grace period (see Arena.Epoch):
// XDP programs run inside an RCU read-side section, so once a grace period
// that began after the publish has ended, no packet can still hold a
// pointer into the old nodes.
//
// # Several tables
//
// Several routing tables (policy routing: one per kernel table id in use)
// share one node array and one leaf array, an Arena, each with its own
// TopEntries top entries (XDP: table slot s uses entries
// [s*TopEntries, (s+1)*TopEntries) of one big top array). A caller keeps
// one Arena per address family and one Table per (family, table slot):
//
//	a4 := lpm.NewArena(records4, leaves4)
//	main4, _ := lpm.NewIn(32, a4, top4[s*lpm.TopEntries:(s+1)*lpm.TopEntries])
//
// Set and Delete on each table, then Commit each changed table (a table's
// ErrFull is its own: the others' commits and its own published state are
// unaffected). Blocks freed by any table of an arena are reused after one
// grace period of the arena: e := a4.Epoch(); wait for a grace period;
// a4.Reclaim(e), with the same Pending test as for a single table. A
// table that goes away is Reset: its top entries become 0 (no route) and
// its blocks return to the arena through the same grace period. The tables
// of an arena are not safe for concurrent use: one lock covers the arena
// and all its tables. New makes a table with an arena of its own (one
// table per family, the tables' Epoch, Reclaim and Pending).
package lpm

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"sync/atomic"
)

// Leaf is a route's value in the structure: 0 means no route, else as
// NewLeaf encodes it.
type Leaf uint32

// LeafFlag marks a top entry that is a leaf (the other 31 bits) rather
// than a node index. A leaf never has it set.
const LeafFlag = 1 << 31

// The leaf layout (see NewLeaf).
const (
	LeafKindShift = 28        // kind+1 in bits 28-30
	LeafKindMask  = 0x7       // after the shift
	LeafPlenShift = 20        // prefix length in bits 20-27
	LeafPlenMask  = 0xff      // after the shift
	LeafGroupMask = 0xfffff   // next-hop group in bits 0-19
	MaxKind       = 6         // largest kind a leaf holds
	MaxGroup      = 1<<20 - 1 // largest next-hop group a leaf holds
)

// NewLeaf encodes a route kind (route.Kind, <= MaxKind), the route's own
// prefix length (0..128) and next-hop group (<= MaxGroup) into a leaf:
//
//	bit  31     0 (reserved: LeafFlag in top entries)
//	bits 28-30  kind+1 (1..7; 0 only in the leaf 0, "no route")
//	bits 20-27  prefix length (0..128)
//	bits 0-19   next-hop group
//
// that is leaf = (kind+1)<<LeafKindShift | plen<<LeafPlenShift | group,
// and decoding (leaf != 0): kind = (leaf>>28 & 7) - 1,
// plen = leaf>>20 & 0xff, group = leaf & 0xfffff. Fields out of range are
// truncated to their bits (the caller's error).
func NewLeaf(kind uint8, plen uint8, group uint32) Leaf {
	return Leaf((uint32(kind)+1)&LeafKindMask<<LeafKindShift | uint32(plen)<<LeafPlenShift | group&LeafGroupMask)
}

// Decode returns a leaf's fields (see NewLeaf); ok is false for "no
// route".
func (l Leaf) Decode() (kind uint8, plen uint8, group uint32, ok bool) {
	if l == 0 {
		return 0, 0, 0, false
	}
	return uint8(l>>LeafKindShift&LeafKindMask) - 1, uint8(l >> LeafPlenShift & LeafPlenMask), uint32(l) & LeafGroupMask, true
}

// Record is one node as XDP reads it (struct lpm_node in bpf/fwd.h).
type Record struct {
	Vector    uint64 // slots that are nodes
	Leafvec   uint64 // slots where a run of equal leaves starts
	LeafBase  uint32 // index of the node's first leaf
	ChildBase uint32 // index of the record of the node's first child
}

// Memory is where a Table writes: the arrays XDP reads (memory-mapped BPF
// arrays in the daemon, plain slices in tests). Top must have TopEntries
// entries; index 0 of Records and Leaves is never used (and kept zero: a
// top entry 0, no route, reads record 0 in XDP).
type Memory struct {
	Top     []uint32
	Records []Record
	Leaves  []uint32
}

// ErrFull means the node or leaf array has no room for a commit.
var ErrFull = errors.New("lpm: structure full")

const (
	topBits = 18
	stride  = 6
)

// TopEntries is the length of Memory.Top: the top entries of one table.
const TopEntries = 1 << topBits

// Arena is the node and leaf memory of one or more tables, with its
// allocators and grace-period epochs. It is not safe for concurrent use
// (nor are its tables: one lock covers them all).
type Arena struct {
	records   []Record
	leaves    []uint32
	recs, lvs alloc
	epochs    epochs
}

// NewArena returns an arena allocating from records and leaves (the
// arrays XDP reads; index 0 of each is never used, and zeroed here).
func NewArena(records []Record, leaves []uint32) *Arena {
	a := &Arena{records: records, leaves: leaves}
	a.epochs.current = 1
	a.recs = alloc{cap: uint32(len(records)), next: 1, epoch: &a.epochs}
	a.lvs = alloc{cap: uint32(len(leaves)), next: 1, epoch: &a.epochs}
	if len(records) > 0 {
		records[0] = Record{}
	}
	if len(leaves) > 0 {
		leaves[0] = 0
	}
	return a
}

// Epoch ends the current epoch and returns it: call it, wait for a grace
// period of the readers (for XDP: an RCU grace period, e.g.
// membarrier(MEMBARRIER_CMD_GLOBAL)), then Reclaim it. Blocks freed up to
// that epoch, by any table of the arena, are then reused; until then,
// commits take fresh space.
func (a *Arena) Epoch() uint64 {
	e := a.epochs.current
	a.epochs.current++
	return e
}

// Reclaim makes the blocks freed up to epoch e reusable (e from Epoch,
// after a grace period).
func (a *Arena) Reclaim(e uint64) { a.epochs.safe = max(a.epochs.safe, e) }

// Pending reports whether freed blocks wait for a grace period.
func (a *Arena) Pending() bool { return a.epochs.lastFree > a.epochs.safe }

// Usage reports the records and leaves in use by the arena's tables
// (freed blocks, reusable or still waiting for a grace period, do not
// count), of the arrays' capacity.
func (a *Arena) Usage() (records, leaves uint32) {
	return a.recs.next - 1 - a.recs.freeLen, a.lvs.next - 1 - a.lvs.freeLen
}

// Table is the route table of one address family and its compiled form.
// It is not safe for concurrent use.
type Table struct {
	bits  int // 32 or 128
	top   []uint32
	a     *Arena
	short map[netip.Prefix]Leaf // prefixes of length <= 18
	// shortLens counts the short prefixes per length (the lookup of a
	// /18's inherited value probes only lengths in use).
	shortLens [topBits + 1]int
	roots     *[TopEntries]*node // nil until a longer prefix comes
	dirty     map[uint32]bool    // top entries to re-examine
	// Blocks still reachable from a top entry's published state but not
	// from its next one (nodes pruned, blocks replaced by a commit that
	// failed): freed once the entry is published.
	pending map[uint32]*replaced
	// Blocks a commit of one top entry replaced (scratch).
	scratch replaced
	count   int
}

// node is a 64-way node; level 0 sits right under the top entry.
type node struct {
	childMask uint64
	children  []*node // in slot order (popcount of childMask below the slot)
	pfx       []nodePfx
	dirty     bool

	// As last committed.
	inh       Leaf // the value inherited from above
	rec       Record
	recBlk    block // only for a root: the one-record block holding rec
	childBlk  block
	leafBlk   block
	committed bool
}

// nodePfx is a prefix ending inside a node: it covers the slots whose top
// l bits are bits.
type nodePfx struct {
	bits, l uint8
	leaf    Leaf
}

// New returns an empty table of IPv4 (bits 32) or IPv6 (128) routes
// writing to mem, with an arena of its own, whose top entries it clears
// to "no route".
func New(bits int, mem Memory) (*Table, error) {
	return NewIn(bits, NewArena(mem.Records, mem.Leaves), mem.Top)
}

// NewIn returns an empty table of IPv4 (bits 32) or IPv6 (128) routes
// whose top entries are top (TopEntries of them, cleared here to "no
// route") and whose nodes and leaves come from arena a, shared with other
// tables. Tables of one arena are independent: what one does never
// changes what a lookup in another returns.
func NewIn(bits int, a *Arena, top []uint32) (*Table, error) {
	if bits != 32 && bits != 128 {
		return nil, fmt.Errorf("lpm: %d-bit addresses", bits)
	}
	if len(top) != TopEntries || len(a.records) < 2 || len(a.leaves) < 2 {
		return nil, fmt.Errorf("lpm: memory too small (top %d, records %d, leaves %d)", len(top), len(a.records), len(a.leaves))
	}
	t := &Table{bits: bits, top: top, a: a}
	t.init()
	for i := range top {
		atomic.StoreUint32(&top[i], LeafFlag)
	}
	return t, nil
}

func (t *Table) init() {
	t.short, t.shortLens, t.roots = map[netip.Prefix]Leaf{}, [topBits + 1]int{}, nil
	t.dirty, t.pending, t.scratch, t.count = map[uint32]bool{}, map[uint32]*replaced{}, replaced{}, 0
}

// Arena returns the arena the table allocates from.
func (t *Table) Arena() *Arena { return t.a }

// Epoch, Reclaim, Pending and Usage are those of the table's arena
// (shared with the arena's other tables).
func (t *Table) Epoch() uint64 { return t.a.Epoch() }

// Reclaim: see Arena.Reclaim.
func (t *Table) Reclaim(e uint64) { t.a.Reclaim(e) }

// Pending: see Arena.Pending.
func (t *Table) Pending() bool { return t.a.Pending() }

// Usage: see Arena.Usage.
func (t *Table) Usage() (records, leaves uint32) { return t.a.Usage() }

// Len is the number of routes in the table.
func (t *Table) Len() int { return t.count }

// Reset empties the table and unpublishes it: every top entry becomes 0
// (no route) at once, and all the table's blocks are freed, reusable after
// a grace period that begins after Reset (see Arena.Epoch) like any block
// a commit replaced. The table stays usable (empty, nothing to commit).
func (t *Table) Reset() {
	for i := range t.top {
		atomic.StoreUint32(&t.top[i], 0)
	}
	if t.roots != nil {
		for _, n := range t.roots {
			if n != nil {
				t.freeTree(n)
			}
		}
	}
	for _, p := range t.pending {
		p.free(t.a)
	}
	t.init()
}

// freeTree frees the blocks of n and its descendants.
func (t *Table) freeTree(n *node) {
	t.a.recs.free(n.recBlk)
	t.a.recs.free(n.childBlk)
	t.a.lvs.free(n.leafBlk)
	for _, c := range n.children {
		t.freeTree(c)
	}
}

// chunk returns the 6 bits of a starting at bit off (zero past the end).
func chunk(a [16]byte, off int) uint8 {
	var v uint32
	for i := range stride {
		b := off + i
		v <<= 1
		if b < 128 && a[b/8]&(0x80>>(b%8)) != 0 {
			v |= 1
		}
	}
	return uint8(v)
}

func (t *Table) addr(p netip.Prefix) [16]byte {
	if t.bits == 32 {
		var a [16]byte
		b := p.Addr().As4()
		copy(a[:], b[:])
		return a
	}
	return p.Addr().As16()
}

func (t *Table) check(p netip.Prefix) error {
	if !p.IsValid() || p.Addr().Is4() != (t.bits == 32) {
		return fmt.Errorf("lpm: prefix %v is not a %d-bit prefix", p, t.bits)
	}
	return nil
}

// Set adds or replaces the route of p (leaf != 0) and Delete removes it;
// both take effect in memory at the next Commit.
func (t *Table) Set(p netip.Prefix, leaf Leaf) error {
	if leaf == 0 {
		return errors.New("lpm: zero leaf")
	}
	if leaf&LeafFlag != 0 {
		return fmt.Errorf("lpm: leaf %#x has bit 31 (LeafFlag) set", uint32(leaf))
	}
	return t.change(p, leaf)
}

// Delete removes the route of p; a missing one is not an error.
func (t *Table) Delete(p netip.Prefix) error { return t.change(p, 0) }

func (t *Table) change(p netip.Prefix, leaf Leaf) error {
	if err := t.check(p); err != nil {
		return err
	}
	p = p.Masked()
	a := t.addr(p)
	top := topIndex(a)
	if p.Bits() <= topBits {
		old, had := t.short[p]
		switch {
		case leaf == 0 && !had, leaf != 0 && old == leaf:
			return nil
		case leaf == 0:
			delete(t.short, p)
			t.shortLens[p.Bits()]--
			t.count--
		default:
			if !had {
				t.count++
				t.shortLens[p.Bits()]++
			}
			t.short[p] = leaf
		}
		for i := uint32(0); i < 1<<(topBits-p.Bits()); i++ {
			t.dirty[top+i] = true
		}
		return nil
	}
	// Walk down to the node the prefix ends in, creating nodes on the
	// way for an add.
	level := (p.Bits() - topBits - 1) / stride
	l := uint8(p.Bits() - topBits - level*stride)
	var n *node
	if t.roots != nil {
		n = t.roots[top]
	}
	if n == nil {
		if leaf == 0 {
			return nil
		}
		if t.roots == nil {
			t.roots = new([TopEntries]*node)
		}
		n = &node{}
		t.roots[top] = n
	}
	var pathBuf [20]*node
	path := append(pathBuf[:0], n)
	for k := 0; k < level; k++ {
		s := chunk(a, topBits+k*stride)
		c := n.child(s)
		if c == nil {
			if leaf == 0 {
				return nil
			}
			c = n.addChild(s)
		}
		n = c
		path = append(path, n)
	}
	bitsIn := chunk(a, topBits+level*stride) >> (stride - l)
	i := -1
	for j, x := range n.pfx {
		if x.bits == bitsIn && x.l == l {
			i = j
		}
	}
	switch {
	case leaf == 0 && i < 0, leaf != 0 && i >= 0 && n.pfx[i].leaf == leaf:
		return nil
	case leaf == 0:
		n.pfx = append(n.pfx[:i], n.pfx[i+1:]...)
		t.count--
	case i >= 0:
		n.pfx[i].leaf = leaf
	default:
		n.pfx = append(n.pfx, nodePfx{bitsIn, l, leaf})
		t.count++
	}
	for _, x := range path {
		x.dirty = true
	}
	t.dirty[top] = true
	if leaf == 0 {
		t.prune(top, a, path)
	}
	return nil
}

func (n *node) child(s uint8) *node {
	bit := uint64(1) << s
	if n.childMask&bit == 0 {
		return nil
	}
	return n.children[bits.OnesCount64(n.childMask&(bit-1))]
}

func (n *node) addChild(s uint8) *node {
	bit := uint64(1) << s
	i := bits.OnesCount64(n.childMask & (bit - 1))
	c := &node{}
	n.children = append(n.children, nil)
	copy(n.children[i+1:], n.children[i:])
	n.children[i] = c
	n.childMask |= bit
	return c
}

func (n *node) removeChild(s uint8) {
	bit := uint64(1) << s
	i := bits.OnesCount64(n.childMask & (bit - 1))
	n.children = append(n.children[:i], n.children[i+1:]...)
	n.childMask &^= bit
}

// prune removes nodes left empty by a delete, bottom up. Their blocks are
// freed when Commit replaces the parent's.
func (t *Table) prune(top uint32, a [16]byte, path []*node) {
	for k := len(path) - 1; k >= 0; k-- {
		n := path[k]
		if len(n.pfx) > 0 || n.childMask != 0 {
			return
		}
		t.pendingFor(top).add(n.recBlk, n.childBlk, n.leafBlk)
		if k == 0 {
			t.roots[top] = nil
			return
		}
		path[k-1].removeChild(chunk(a, topBits+(k-1)*stride))
	}
}

func topIndex(a [16]byte) uint32 {
	return uint32(a[0])<<10 | uint32(a[1])<<2 | uint32(a[2])>>6
}

// inherited is the value a /18 gets from the prefixes of length <= 18.
func (t *Table) inherited(top uint32) Leaf {
	var a [16]byte
	a[0], a[1], a[2] = byte(top>>10), byte(top>>2), byte(top<<6)
	var base netip.Addr
	if t.bits == 32 {
		base = netip.AddrFrom4([4]byte(a[:4]))
	} else {
		base = netip.AddrFrom16(a)
	}
	for l := topBits; l >= 0; l-- {
		if t.shortLens[l] == 0 {
			continue
		}
		p, _ := base.Prefix(l)
		if v, ok := t.short[p]; ok {
			return v
		}
	}
	return 0
}

// Commit writes every change since the last Commit to memory and publishes
// it. On ErrFull, the /18s that fit are published and the rest keep their
// previous state in memory (still consistent); they are retried by the
// next Commit.
func (t *Table) Commit() error {
	var firstErr error
	for top := range t.dirty {
		if err := t.commitTop(top); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		delete(t.dirty, top)
	}
	return firstErr
}

func (t *Table) commitTop(top uint32) error {
	inh := t.inherited(top)
	var n *node
	if t.roots != nil {
		n = t.roots[top]
	}
	if n == nil {
		atomic.StoreUint32(&t.top[top], LeafFlag|uint32(inh))
		t.freePending(top)
		return nil
	}
	t.scratch.recs, t.scratch.leaves = t.scratch.recs[:0], t.scratch.leaves[:0]
	rec, changed, err := t.serialize(n, inh)
	if err != nil {
		t.keepPending(top)
		return err
	}
	// Compared with what is in memory, not with the last serialization:
	// after a commit that failed part-way the two differ.
	if changed || !n.recBlk.valid() || t.a.records[n.recBlk.start] != rec {
		blk, ok := t.a.recs.get(1)
		if !ok {
			t.keepPending(top)
			return fmt.Errorf("%w: node records (%d)", ErrFull, t.a.recs.cap)
		}
		t.a.records[blk.start] = rec
		t.scratch.recs = append(t.scratch.recs, n.recBlk)
		n.recBlk = blk
		atomic.StoreUint32(&t.top[top], blk.start)
	}
	// Published: what it replaced waits for a grace period.
	t.scratch.free(t.a)
	t.freePending(top)
	return nil
}

// replaced lists blocks to free, in the records and leaves arrays.
type replaced struct {
	recs, leaves []block
}

// add records a node's record, child and leaf blocks.
func (r *replaced) add(rec, child, leaf block) {
	r.recs = append(r.recs, rec, child)
	r.leaves = append(r.leaves, leaf)
}

func (r *replaced) free(a *Arena) {
	for _, b := range r.recs {
		a.recs.free(b)
	}
	for _, b := range r.leaves {
		a.lvs.free(b)
	}
}

// keepPending keeps what a failed commit of top replaced: it is still
// published, and freed with the next publish of this entry.
func (t *Table) keepPending(top uint32) {
	p := t.pendingFor(top)
	p.recs = append(p.recs, t.scratch.recs...)
	p.leaves = append(p.leaves, t.scratch.leaves...)
}

func (t *Table) pendingFor(top uint32) *replaced {
	p := t.pending[top]
	if p == nil {
		p = &replaced{}
		t.pending[top] = p
	}
	return p
}

// freePending frees what top's published entry no longer reaches.
func (t *Table) freePending(top uint32) {
	if p := t.pending[top]; p != nil {
		p.free(t.a)
		delete(t.pending, top)
	}
}

// serialize writes the blocks of n (and of its changed descendants) for
// the inherited value inh and returns its record. The blocks it replaces
// are collected in scratch, freed after publishing.
func (t *Table) serialize(n *node, inh Leaf) (Record, bool, error) {
	if n.committed && !n.dirty && n.inh == inh {
		return n.rec, false, nil
	}
	var vals [64]Leaf
	for s := range vals {
		vals[s] = inh
	}
	for l := uint8(1); l <= stride; l++ { // shorter first: longer ones win
		for _, p := range n.pfx {
			if p.l != l {
				continue
			}
			lo := int(p.bits) << (stride - l)
			for s := lo; s < lo+1<<(stride-l); s++ {
				vals[s] = p.leaf
			}
		}
	}
	// Children first: their records go into this node's child block.
	var recBuf [64]Record
	recs := recBuf[:0]
	childChanged := !n.childBlk.valid() || int(n.childBlk.size) != len(n.children)
	for i, s := 0, 0; s < 64; s++ {
		if n.childMask&(1<<s) == 0 {
			continue
		}
		r, ch, err := t.serialize(n.children[i], vals[s])
		if err != nil {
			return Record{}, false, err
		}
		childChanged = childChanged || ch
		recs = append(recs, r)
		i++
	}
	var leafBuf [64]uint32
	leaves := leafBuf[:0]
	var leafvec uint64
	prev, first := Leaf(0), true
	for s := range 64 {
		if n.childMask&(1<<s) != 0 {
			continue
		}
		if first || vals[s] != prev {
			leaves = append(leaves, uint32(vals[s]))
			leafvec |= 1 << s
			prev, first = vals[s], false
		}
	}
	rec := Record{Vector: n.childMask, Leafvec: leafvec, LeafBase: n.rec.LeafBase, ChildBase: n.rec.ChildBase}
	// A child whose last serialization belongs to a commit that failed
	// above it reports no change, yet its record is not in this block:
	// compare with memory.
	childChanged = childChanged || !t.sameRecords(n.childBlk, recs)
	if childChanged && len(recs) > 0 {
		blk, ok := t.a.recs.get(uint32(len(recs)))
		if !ok {
			return Record{}, false, fmt.Errorf("%w: node records (%d)", ErrFull, t.a.recs.cap)
		}
		copy(t.a.records[blk.start:], recs)
		t.scratch.recs = append(t.scratch.recs, n.childBlk)
		n.childBlk, rec.ChildBase = blk, blk.start
	} else if len(recs) == 0 {
		t.scratch.recs = append(t.scratch.recs, n.childBlk)
		n.childBlk, rec.ChildBase = block{}, 0
	}
	if !n.committed || n.rec.Leafvec != leafvec || !t.sameLeaves(n.leafBlk, leaves) {
		blk := block{}
		if len(leaves) > 0 {
			var ok bool
			if blk, ok = t.a.lvs.get(uint32(len(leaves))); !ok {
				return Record{}, false, fmt.Errorf("%w: leaves (%d)", ErrFull, t.a.lvs.cap)
			}
			copy(t.a.leaves[blk.start:], leaves)
		}
		t.scratch.leaves = append(t.scratch.leaves, n.leafBlk)
		n.leafBlk, rec.LeafBase = blk, blk.start
	}
	changed := !n.committed || rec != n.rec
	n.rec, n.inh, n.dirty, n.committed = rec, inh, false, true
	return rec, changed, nil
}

func (t *Table) sameRecords(b block, recs []Record) bool {
	if int(b.size) != len(recs) {
		return false
	}
	for i, r := range recs {
		if t.a.records[b.start+uint32(i)] != r {
			return false
		}
	}
	return true
}

func (t *Table) sameLeaves(b block, leaves []uint32) bool {
	if int(b.size) != len(leaves) {
		return false
	}
	for i, v := range leaves {
		if t.a.leaves[b.start+uint32(i)] != v {
			return false
		}
	}
	return true
}

// Lookup walks memory as the XDP program does (for tests and inspection).
func (t *Table) Lookup(a netip.Addr) Leaf {
	return Lookup(Memory{Top: t.top, Records: t.a.records, Leaves: t.a.leaves}, t.bits, a)
}

// Lookup walks mem for address a of a bits-bit family.
func Lookup(mem Memory, bits int, a netip.Addr) Leaf {
	var b [16]byte
	if bits == 32 {
		v := a.As4()
		copy(b[:], v[:])
	} else {
		b = a.As16()
	}
	e := atomic.LoadUint32(&mem.Top[topIndex(b)])
	for level := 0; e&LeafFlag == 0; level++ {
		if e == 0 || int(e) >= len(mem.Records) || topBits+level*stride >= bits {
			return 0 // corrupt: no route
		}
		r := mem.Records[e]
		bit := uint64(1) << chunk(b, topBits+level*stride)
		if r.Vector&bit != 0 {
			e = r.ChildBase + uint32(popcount(r.Vector&(bit-1)))
			continue
		}
		i := r.LeafBase + uint32(popcount(r.Leafvec&(bit<<1-1))) - 1
		return Leaf(mem.Leaves[i])
	}
	return Leaf(e &^ LeafFlag)
}

// popcount is the branch-free count the XDP program uses (BPF has no
// popcount instruction).
func popcount(x uint64) uint64 {
	x -= (x >> 1) & 0x5555555555555555
	x = x&0x3333333333333333 + (x>>2)&0x3333333333333333
	x = (x + x>>4) & 0x0f0f0f0f0f0f0f0f
	return x * 0x0101010101010101 >> 56
}
