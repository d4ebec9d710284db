package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/lpm"
	"github.com/xdprouter/xdprouter/route"
)

// The Go view of struct lpm_node must be lpm.Record.
var _ = [1]struct{}{}[unsafe.Sizeof(fwdLpmNode{})-unsafe.Sizeof(lpm.Record{})]

// compiled is the compiled lookup structure of both families, one table
// per routing-table slot over shared node and leaf arrays, written through
// memory mappings of its BPF arrays. The LPM trie holds the same routes
// (the reference); XDP walks one or the other (lookup_compiled).
type compiled struct {
	mu     sync.Mutex
	a4, a6 *lpm.Arena
	top4   []uint32 // MaxTables * lpm.TopEntries
	top6   []uint32
	v4, v6 [MaxTables]*lpm.Table // nil: slot unused
	// The rules' source classes per bank and family (rule_top4/6).
	rtop4, rtop6 []uint32
	rsrc         [2][2]*lpm.Table
	bloom        []uint64   // local_bloom's words (tables.go)
	mem4         lpm.Memory // Top: slot 0's
	mem6         lpm.Memory
	mappings     [][]byte
	// fallback says why packets use the trie although compiled was asked
	// for ("" if they do not).
	fallback string
	stop     chan struct{}
	done     chan struct{}
}

// table returns the structure of a slot's family, made on first use.
func (c *compiled) table(slot uint32, v4 bool) (*lpm.Table, error) {
	slot %= MaxTables
	tp, a, top, bits := &c.v6[slot], c.a6, c.top6, 128
	if v4 {
		tp, a, top, bits = &c.v4[slot], c.a4, c.top4, 32
	}
	if *tp == nil {
		t, err := lpm.NewIn(bits, a, top[int(slot)*lpm.TopEntries:int(slot+1)*lpm.TopEntries])
		if err != nil {
			return nil, err
		}
		*tp = t
	}
	return *tp, nil
}

// setSources replaces the source classes of a bank and family (fi: 0
// IPv4, 1 IPv6) and publishes them; on an error the bank's classes are
// incomplete (the caller must not use them).
func (c *compiled) setSources(bank uint32, fi int, srcs []srcClass) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &c.rsrc[bank&1][fi]
	if *t == nil {
		top, a, bits := c.rtop4, c.a4, 32
		if fi == 1 {
			top, a, bits = c.rtop6, c.a6, 128
		}
		var err error
		if *t, err = lpm.NewIn(bits, a, top[int(bank&1)*lpm.TopEntries:int(bank&1+1)*lpm.TopEntries]); err != nil {
			return err
		}
	}
	(*t).Reset()
	var errs []error
	for _, s := range srcs {
		errs = append(errs, (*t).Set(s.prefix, lpm.NewLeaf(0, uint8(s.prefix.Bits()), s.class)))
	}
	err := (*t).Commit()
	if errors.Is(err, lpm.ErrFull) && (*t).Pending() {
		e := (*t).Epoch()
		if gerr := gracePeriod(); gerr == nil {
			(*t).Reclaim(e)
			err = (*t).Commit()
		}
	}
	return errors.Join(append(errs, err)...)
}

// empty reports whether a slot has no route in either family.
func (c *compiled) empty(slot uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	slot %= MaxTables
	return (c.v4[slot] == nil || c.v4[slot].Len() == 0) && (c.v6[slot] == nil || c.v6[slot].Len() == 0)
}

// reset empties a slot whose table went away.
func (c *compiled) reset(slot uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	slot %= MaxTables
	for _, t := range []*lpm.Table{c.v4[slot], c.v6[slot]} {
		if t != nil {
			t.Reset()
		}
	}
}

// lpmSizes sizes the compiled arrays for the route limits: with none, for
// fwd.h's defaults (1M IPv4 and 250k IPv6 routes in 56 MiB); with limits,
// for that many routes from what was measured (docs/lpm.md): per route
// IPv4 0.62 records and 1.9 leaves in use, IPv6 2.1 and 3.6, and up to
// 70% more records while a full table loads in chunks.
func lpmSizes(spec *ebpf.CollectionSpec, opts Options) {
	set := func(name string, n uint32) {
		if n != 0 {
			spec.Maps[name].MaxEntries = max(n, 1024)
		}
	}
	set(fwdMapLpmNodes4, opts.MaxRoutesV4*11/10)
	set(fwdMapLpmLeaves4, opts.MaxRoutesV4) // pairs: 2 leaves per route
	set(fwdMapLpmNodes6, opts.MaxRoutesV6*3)
	set(fwdMapLpmLeaves6, opts.MaxRoutesV6*2) // pairs
}

func mmapArray(m *ebpf.Map) ([]byte, error) {
	size := int(m.MaxEntries()) * int((m.ValueSize()+7)&^7)
	page := os.Getpagesize()
	size = (size + page - 1) &^ (page - 1)
	b, err := unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: mmap: %w", m, err)
	}
	return b, nil
}

func u32s(b []byte, n uint32) []uint32 { return unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), n) }

func records(b []byte, n uint32) []lpm.Record {
	return unsafe.Slice((*lpm.Record)(unsafe.Pointer(&b[0])), n)
}

// newCompiled maps the compiled arrays and sets the lookup XDP uses.
func newCompiled(m *fwdMaps, v *fwdVariables, mode LookupMode) (*compiled, error) {
	c := &compiled{}
	var maps [9][]byte
	for i, am := range []*ebpf.Map{m.LpmTop4, m.LpmNodes4, m.LpmLeaves4, m.LpmTop6, m.LpmNodes6, m.LpmLeaves6, m.RuleTop4, m.RuleTop6, m.LocalBloom} {
		b, err := mmapArray(am)
		if err != nil {
			c.close()
			return nil, err
		}
		maps[i] = b
		c.mappings = append(c.mappings, b)
	}
	if n := 2 * m.LpmTop4.MaxEntries(); n != MaxTables*lpm.TopEntries {
		c.close()
		return nil, fmt.Errorf("map %s: %d top entries, want %d (MAX_TABLES in fwd.h is MaxTables)", m.LpmTop4, n, MaxTables*lpm.TopEntries)
	}
	c.top4, c.top6 = u32s(maps[0], MaxTables*lpm.TopEntries), u32s(maps[3], MaxTables*lpm.TopEntries)
	rec4, rec6 := records(maps[1], m.LpmNodes4.MaxEntries()), records(maps[4], m.LpmNodes6.MaxEntries())
	lv4, lv6 := u32s(maps[2], 2*m.LpmLeaves4.MaxEntries()), u32s(maps[5], 2*m.LpmLeaves6.MaxEntries())
	c.mem4 = lpm.Memory{Top: c.top4[:lpm.TopEntries], Records: rec4, Leaves: lv4}
	c.mem6 = lpm.Memory{Top: c.top6[:lpm.TopEntries], Records: rec6, Leaves: lv6}
	c.a4, c.a6 = lpm.NewArena(rec4, lv4), lpm.NewArena(rec6, lv6)
	c.rtop4, c.rtop6 = u32s(maps[6], 2*lpm.TopEntries), u32s(maps[7], 2*lpm.TopEntries)
	c.bloom = unsafe.Slice((*uint64)(unsafe.Pointer(&maps[8][0])), len(fwdLocalBits{}.W))
	// Maps reused from a previous instance are rebuilt from the trie:
	// start from nothing.
	clear(c.top4)
	clear(c.top6)
	on := uint32(0)
	if mode == LookupCompiled {
		on = 1
	}
	if err := v.LookupCompiled.Set(on); err != nil {
		c.close()
		return nil, fmt.Errorf("set lookup_compiled: %w", err)
	}
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go c.reclaim()
	return c, nil
}

func (c *compiled) close() {
	if c == nil {
		return // Load failed before it was made
	}
	if c.stop != nil {
		close(c.stop)
		<-c.done
		c.stop = nil
	}
	for _, b := range c.mappings {
		_ = unix.Munmap(b)
	}
	c.mappings = nil
}

// reclaimEvery bounds how long replaced blocks wait beyond their grace
// period.
const reclaimEvery = 10 * time.Millisecond

// reclaim hands the blocks that updates replaced back to the allocator once
// no XDP program can still be reading them: XDP runs inside an RCU
// read-side section, and membarrier(MEMBARRIER_CMD_GLOBAL) returns only
// after an RCU grace period (synchronize_rcu), so every program run that
// began before the epoch ended has finished. Commits never wait for it:
// until then they take fresh space.
func (c *compiled) reclaim() {
	defer close(c.done)
	tick := time.NewTicker(reclaimEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		if !c.a4.Pending() && !c.a6.Pending() {
			c.mu.Unlock()
			continue
		}
		e4, e6 := c.a4.Epoch(), c.a6.Epoch()
		c.mu.Unlock()
		if err := gracePeriod(); err != nil {
			// No membarrier (nohz_full, old kernel): no XDP run
			// lasts anywhere near a second.
			select {
			case <-c.stop:
				return
			case <-time.After(time.Second):
			}
		}
		c.mu.Lock()
		c.a4.Reclaim(e4)
		c.a6.Reclaim(e6)
		c.mu.Unlock()
	}
}

// gracePeriod waits for an RCU grace period of the whole system.
func gracePeriod() error {
	const membarrierCmdGlobal = 1 // MEMBARRIER_CMD_GLOBAL: synchronize_rcu()
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0); errno != 0 {
		return fmt.Errorf("membarrier: %w", errno)
	}
	return nil
}

func leafOf(e route.Entry) lpm.Leaf {
	return lpm.NewLeaf(uint8(e.Kind), uint8(e.Prefix.Bits()), e.Group)
}

// applyCompiled mirrors trie writes (already made) into the compiled
// structure and publishes them. If it runs out of room, XDP falls back to
// the trie, which holds every route, until the daemon restarts.
func (d *Datapath) applyCompiled(set []route.Entry, setSlots []uint32, del []route.TablePrefix, delSlots []uint32) {
	c := d.compiled
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	touched := map[*lpm.Table]bool{}
	change := func(slot uint32, p netip.Prefix, leaf lpm.Leaf, isDel bool) {
		t, err := c.table(slot, p.Addr().Is4())
		if err != nil {
			errs = append(errs, err)
			return
		}
		touched[t] = true
		if isDel {
			errs = append(errs, t.Delete(p.Masked()))
		} else {
			errs = append(errs, t.Set(p.Masked(), leaf))
		}
	}
	for i, e := range set {
		change(setSlots[i], e.Prefix, leafOf(e), false)
	}
	for i, tp := range del {
		change(delSlots[i], tp.Prefix, 0, true)
	}
	for tb := range touched {
		err := tb.Commit()
		if errors.Is(err, lpm.ErrFull) && tb.Pending() {
			// Out of fresh space with blocks waiting: wait for their
			// grace period here and retry what did not fit.
			e := tb.Epoch()
			if gerr := gracePeriod(); gerr == nil {
				tb.Reclaim(e)
				err = tb.Commit()
			}
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil && c.fallback == "" {
		c.fallback = err.Error() + " (raise the route limits; the trie forwards meanwhile)"
		if serr := d.objs.LookupCompiled.Set(uint32(0)); serr != nil {
			c.fallback += "; switching to the trie failed: " + serr.Error()
		}
	}
}

// LookupState reports which structure XDP walks and, if the compiled one
// was asked for but XDP fell back to the trie, why.
func (d *Datapath) LookupState() (LookupMode, string) {
	d.compiled.mu.Lock()
	defer d.compiled.mu.Unlock()
	var on uint32
	if err := d.objs.LookupCompiled.Get(&on); err != nil || on == 0 {
		return LookupTrie, d.compiled.fallback
	}
	return LookupCompiled, ""
}

// compiledLookup walks slot's compiled structure for a as XDP does.
func (d *Datapath) compiledLookup(slot uint32, a netip.Addr) (kind route.Kind, plen int, group uint32, ok bool) {
	c := d.compiled
	c.mu.Lock()
	defer c.mu.Unlock()
	slot %= MaxTables
	mem, top, bits := c.mem6, c.top6, 128
	if a.Is4() {
		mem, top, bits = c.mem4, c.top4, 32
	}
	mem.Top = top[int(slot)*lpm.TopEntries : int(slot+1)*lpm.TopEntries]
	k, l, g, ok := lpm.Lookup(mem, bits, a).Decode()
	return route.Kind(k), int(l), g, ok
}
