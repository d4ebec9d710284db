package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"

	"github.com/xdprouter/xdprouter/route"
)

// MaxTables is how many kernel routing tables XDP holds at once
// (MAX_TABLES in fwd.h): the main table and those the policy rules name or
// that have routes.
const MaxTables = 16

// ErrTooManyTables means a route or rule names a table beyond the
// MaxTables XDP holds; such a route is not in XDP, and packets a rule
// sends to such a table are passed to the kernel.
var ErrTooManyTables = errors.New("more routing tables than XDP holds")

// tables maps kernel table ids to XDP's table slots. Slot 0 is always the
// main table. The mapping is kept in table_ids too, so that a restarted
// daemon reads the routes of the pinned trie back with their tables.
type tables struct {
	mu    sync.Mutex
	m     *ebpf.Map
	id    [MaxTables]int // kernel table of each slot; 0: free
	slots map[int]uint32
	// refused are tables denied a slot once: they never get one later
	// (their routes were not written), until the daemon restarts.
	refused map[int]bool
	// held are the routes of refused tables, as taken (see UpdateRoutes).
	held map[route.TablePrefix]route.Entry
}

func newTables(m *ebpf.Map) (*tables, error) {
	t := &tables{m: m, slots: map[int]uint32{}, refused: map[int]bool{}, held: map[route.TablePrefix]route.Entry{}}
	var ids [MaxTables]uint32
	for i := range ids {
		if err := m.Lookup(uint32(i), &ids[i]); err != nil {
			return nil, fmt.Errorf("map %s: %w", m, err)
		}
	}
	ids[0] = route.TableMain
	for i, id := range ids {
		if id == 0 {
			continue
		}
		if _, dup := t.slots[int(id)]; dup {
			continue
		}
		t.id[i], t.slots[int(id)] = int(id), uint32(i)
	}
	return t, t.write(0)
}

func (t *tables) write(slot uint32) error {
	if err := t.m.Put(slot, uint32(t.id[slot])); err != nil {
		return fmt.Errorf("map %s: slot %d: %w", t.m, slot, err)
	}
	return nil
}

// slot returns table's slot, taking a free one if create is set.
func (t *tables) slot(table int, create bool) (uint32, error) {
	table = route.NormTable(table)
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.slots[table]; ok {
		return s, nil
	}
	if !create || t.refused[table] {
		return 0, fmt.Errorf("table %d: %w", table, ErrTooManyTables)
	}
	for s := range uint32(MaxTables) {
		if t.id[s] == 0 {
			t.id[s], t.slots[table] = table, s
			if err := t.write(s); err != nil {
				t.id[s] = 0
				delete(t.slots, table)
				return 0, err
			}
			return s, nil
		}
	}
	t.refused[table] = true
	return 0, fmt.Errorf("table %d: %w (%d)", table, ErrTooManyTables, MaxTables)
}

// free releases a slot (never the main table's).
func (t *tables) free(s uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s == 0 || t.id[s] == 0 {
		return
	}
	delete(t.slots, t.id[s])
	t.id[s] = 0
	_ = t.write(s) // best effort: a stale id names an empty slot
}

// ids returns the kernel table of each slot.
func (t *tables) ids() [MaxTables]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.id
}

// routesWritten follows route writes that took effect: the compiled
// structure and, when the default table gains its first route or loses its
// last, the rules (with an empty default table, the default rules compile
// to the main table alone).
func (d *Datapath) routesWritten(set []route.Entry, setSlots []uint32, setHeld []bool, del []route.TablePrefix, delKnown []bool) {
	var delSlots []uint32
	var dels []route.TablePrefix
	d.tables.mu.Lock()
	for i, e := range set {
		tp := route.TablePrefix{Table: route.NormTable(e.Table), Prefix: e.Prefix.Masked()}
		if setHeld[i] {
			e.Table, e.Prefix = tp.Table, tp.Prefix
			d.tables.held[tp] = e
		}
	}
	for _, tp := range del {
		delete(d.tables.held, route.TablePrefix{Table: route.NormTable(tp.Table), Prefix: tp.Prefix.Masked()})
	}
	d.tables.mu.Unlock()
	if slices.Contains(setHeld, true) {
		var s []route.Entry
		var ss []uint32
		for i := range set {
			if !setHeld[i] {
				s, ss = append(s, set[i]), append(ss, setSlots[i])
			}
		}
		set, setSlots = s, ss
	}
	for i, tp := range del {
		if !delKnown[i] {
			continue
		}
		s, err := d.tables.slot(tp.Table, false)
		if err != nil {
			continue
		}
		dels, delSlots = append(dels, tp), append(delSlots, s)
	}
	dflt, hadDflt := d.defaultEmpty()
	d.applyCompiled(set, setSlots, dels, delSlots)
	d.followLocals(set, dels)
	if now, _ := d.defaultEmpty(); hadDflt && now != dflt {
		d.refreshRules()
	}
}

// The router's addresses are the host routes of kind Local (sync's, in
// main); the rules' "lookup local" tests local_bloom before walking main.

// bloomBit is local_maybe's hash in fwd.c.
func bloomBit(a netip.Addr) uint32 {
	var x uint32
	if a.Is4() {
		b := a.As4()
		x = binary.BigEndian.Uint32(b[:])
	} else {
		b := a.As16()
		x = binary.BigEndian.Uint32(b[0:]) ^ binary.BigEndian.Uint32(b[4:]) ^ binary.BigEndian.Uint32(b[8:]) ^ binary.BigEndian.Uint32(b[12:])
	}
	return x * 0x9E3779B1 >> 20
}

// markLocals sets the bits of the local routes among rs before they are
// written (a packet must never find a local route its bit denies).
func (d *Datapath) markLocals(rs []route.Entry) {
	for _, e := range rs {
		if e.Kind == route.Local && e.Prefix.IsSingleIP() {
			h := bloomBit(e.Prefix.Addr())
			w := &d.compiled.bloom[h>>6&63]
			atomic.OrUint64(w, 1<<(h&63))
		}
	}
}

// followLocals keeps the set of local routes and, when one goes, rebuilds
// the filter's words from those left.
func (d *Datapath) followLocals(set []route.Entry, del []route.TablePrefix) {
	d.localMu.Lock()
	defer d.localMu.Unlock()
	gone := false
	for _, e := range set {
		tp := route.TablePrefix{Table: route.NormTable(e.Table), Prefix: e.Prefix.Masked()}
		if e.Kind == route.Local && e.Prefix.IsSingleIP() {
			d.locals[tp] = struct{}{}
		} else if _, ok := d.locals[tp]; ok {
			delete(d.locals, tp)
			gone = true
		}
	}
	for _, tp := range del {
		tp = route.TablePrefix{Table: route.NormTable(tp.Table), Prefix: tp.Prefix.Masked()}
		if _, ok := d.locals[tp]; ok {
			delete(d.locals, tp)
			gone = true
		}
	}
	if !gone {
		return
	}
	var w [len(fwdLocalBits{}.W)]uint64
	for tp := range d.locals {
		h := bloomBit(tp.Prefix.Addr())
		w[h>>6&63] |= 1 << (h & 63)
	}
	for i := range w {
		atomic.StoreUint64(&d.compiled.bloom[i], w[i])
	}
}

// heldRoutes lists the routes of tables XDP holds no slot for.
func (d *Datapath) heldRoutes() []route.Entry {
	d.tables.mu.Lock()
	defer d.tables.mu.Unlock()
	out := make([]route.Entry, 0, len(d.tables.held))
	for _, e := range d.tables.held {
		out = append(out, e)
	}
	return out
}

// defaultEmpty reports whether the default table has no route (and
// whether it has a slot at all).
func (d *Datapath) defaultEmpty() (empty, ok bool) {
	s, err := d.tables.slot(route.TableDefault, false)
	if err != nil {
		return true, true
	}
	return d.compiled.empty(s), true
}
