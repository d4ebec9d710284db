package bpf

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/filter"
)

// The Go and C views of the filter layout must agree.
var (
	_ = [1]struct{}{}[filter.Words-len(fwdFilterBits{}.W)]
	_ = [1]struct{}{}[filter.NumFields-int(fwdFilterFieldFF__MAX)]
)

// tableOffset is where each filter.Table* starts in a bank of
// filter_class (enum filter_table).
var tableOffset = [filter.NumTables]uint32{
	filter.TableProto:    uint32(fwdFilterTableFT_PROTO),
	filter.TableDport:    uint32(fwdFilterTableFT_DPORT),
	filter.TableSport:    uint32(fwdFilterTableFT_SPORT),
	filter.TablePort:     uint32(fwdFilterTableFT_PORT),
	filter.TableICMPType: uint32(fwdFilterTableFT_ICMP_TYPE),
	filter.TableICMPCode: uint32(fwdFilterTableFT_ICMP_CODE),
	filter.TableTCPFlags: uint32(fwdFilterTableFT_TCP_FLAGS),
	filter.TableDSCP:     uint32(fwdFilterTableFT_DSCP),
	filter.TableFrag:     uint32(fwdFilterTableFT_FRAG),
	filter.TableLen:      uint32(fwdFilterTableFT_LEN),
}

// Burst tolerance of rate-limit rules: a source may send this much above
// the rate at once.
const filterBurstNs = 50e6

// filters writes compiled rule sets into the bank XDP does not use, then
// flips filter_state.bank, so packets see one whole set or the other.
type filters struct {
	mu       sync.Mutex
	m        *fwdMaps
	meta     *fwdFilterMeta
	class    []uint32 // both banks
	bitmaps  []fwdFilterBits
	rules    []fwdFilterRule
	mappings [][]byte
	cpus     int

	// slots: the counter (and token bucket) of each rule, by identity,
	// kept across sets; a set's new rules get slots the set in force does
	// not use, zeroed.
	slots  map[string]uint32
	active []FilterRule // the set in force
}

func newFilters(m *fwdMaps) (*filters, error) {
	f := &filters{m: m, slots: map[string]uint32{}}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("filters: %w", err)
	}
	f.cpus = cpus
	var maps [4][]byte
	for i, am := range []*ebpf.Map{m.FilterState, m.FilterClass, m.FilterBitmaps, m.FilterRules} {
		b, err := mmapArray(am)
		if err != nil {
			f.close()
			return nil, err
		}
		maps[i] = b
		f.mappings = append(f.mappings, b)
	}
	f.meta = (*fwdFilterMeta)(unsafe.Pointer(&maps[0][0]))
	f.class = u32s(maps[1], 2*m.FilterClass.MaxEntries())
	f.bitmaps = unsafe.Slice((*fwdFilterBits)(unsafe.Pointer(&maps[2][0])), m.FilterBitmaps.MaxEntries())
	f.rules = unsafe.Slice((*fwdFilterRule)(unsafe.Pointer(&maps[3][0])), m.FilterRules.MaxEntries())
	return f, nil
}

func (f *filters) close() {
	if f == nil {
		return
	}
	for _, b := range f.mappings {
		_ = unix.Munmap(b)
	}
	f.mappings = nil
}

// FilterRule is a rule in force, with its counters.
type FilterRule struct {
	filter.Rule
	Packets, Bytes uint64
	Dropped        uint64 // by its rate limit
}

func ruleKey(r *filter.Rule) string {
	return string(r.Origin) + "|" + r.Peer.String() + "|" + r.Name + "|" + r.String()
}

// SetFilters puts c in force in XDP, replacing the previous set at once
// (nil or empty: no filters). Counters follow rules with the same origin,
// peer, name and match.
func (d *Datapath) SetFilters(c *filter.Compiled) error {
	f := d.filters
	f.mu.Lock()
	defer f.mu.Unlock()
	if c == nil {
		c = &filter.Compiled{}
	}
	if len(c.Bitmaps) > int(f.m.FilterBitmaps.MaxEntries()/2) {
		return fmt.Errorf("filters: %d classes, room for %d", len(c.Bitmaps), f.m.FilterBitmaps.MaxEntries()/2)
	}
	cur := atomic.LoadUint32(&f.meta.Bank) & 1
	next := cur ^ 1

	// Slots: kept by identity; new ones from those the set in force (ours
	// or a previous instance's) does not use.
	used := map[uint32]bool{}
	for i := range min(f.meta.Rules[cur], filter.MaxRules) {
		used[f.rules[cur*filter.MaxRules+i].Slot] = true
	}
	slots := make([]uint32, len(c.Rules))
	taken := map[uint32]bool{}
	keys := make([]string, len(c.Rules))
	for i := range c.Rules {
		keys[i] = ruleKey(&c.Rules[i])
		if s, ok := f.slots[keys[i]]; ok && !taken[s] {
			slots[i], taken[s] = s, true
		} else {
			slots[i] = ^uint32(0)
		}
	}
	var fresh []uint32
	nextFree := uint32(0)
	for i := range slots {
		if slots[i] != ^uint32(0) {
			continue
		}
		for taken[nextFree] || used[nextFree] {
			nextFree++
		}
		if nextFree >= f.m.FilterCounters.MaxEntries() {
			return errors.New("filters: no free counter slot")
		}
		slots[i], taken[nextFree] = nextFree, true
		fresh = append(fresh, nextFree)
	}
	if err := f.zeroSlots(fresh); err != nil {
		return err
	}

	// The inactive bank: tables, bitmaps, rules, prefixes, ports.
	tabBase := next * uint32(fwdFilterTableFT__SIZE)
	for t := range filter.NumTables {
		if tab := c.Tables[t]; tab != nil {
			copy(f.class[tabBase+tableOffset[t]:], tab)
		}
	}
	bitBase := next * (f.m.FilterBitmaps.MaxEntries() / 2)
	for i, b := range c.Bitmaps {
		f.bitmaps[bitBase+uint32(i)] = fwdFilterBits{W: b}
	}
	for i := range c.Rules {
		v, err := ruleValue(&c.Rules[i], slots[i], f.cpus)
		if err != nil {
			return err
		}
		f.rules[next*filter.MaxRules+uint32(i)] = v
	}
	if err := f.writeKeyed(next, c); err != nil {
		return err
	}
	f.meta.Fields[next] = c.Fields
	// Up to 64 rules XDP ANDs one word per field (filter_match1).
	f.meta.Words[next] = uint32(filter.Words)
	if len(c.Rules) <= 64 {
		f.meta.Words[next] = 1
	}
	f.meta.Rules[next] = uint32(len(c.Rules))
	f.meta.Family[next] = c.Family
	// Packets read the bank once, then only that bank's entries.
	atomic.StoreUint32(&f.meta.Bank, next)

	f.slots = map[string]uint32{}
	f.active = make([]FilterRule, len(c.Rules))
	for i := range c.Rules {
		f.slots[keys[i]] = slots[i]
		f.active[i] = FilterRule{Rule: c.Rules[i]}
	}
	return nil
}

// zeroSlots resets the counters and token buckets of slots about to be
// given to new rules.
func (f *filters) zeroSlots(slots []uint32) error {
	if len(slots) == 0 {
		return nil
	}
	counters := make([]fwdFilterCounter, f.cpus)
	buckets := make([]fwdFilterBucket, f.cpus)
	for _, s := range slots {
		if err := f.m.FilterCounters.Put(s, counters); err != nil {
			return fmt.Errorf("filters: reset counters of slot %d: %w", s, err)
		}
		if err := f.m.FilterBuckets.Put(s, buckets); err != nil {
			return fmt.Errorf("filters: reset bucket of slot %d: %w", s, err)
		}
	}
	return nil
}

func ruleValue(r *filter.Rule, slot uint32, cpus int) (fwdFilterRule, error) {
	v := fwdFilterRule{Slot: slot, BurstNs: filterBurstNs}
	switch r.Action.Kind {
	case filter.Drop:
		v.Action = uint8(fwdFilterActionFA_DROP)
	case filter.Pass:
		v.Action = uint8(fwdFilterActionFA_PASS)
	case filter.Count:
		v.Action = uint8(fwdFilterActionFA_COUNT)
	case filter.Accept:
		v.Action = uint8(fwdFilterActionFA_ACCEPT)
	case filter.RateLimit:
		v.Action = uint8(fwdFilterActionFA_RATE_LIMIT)
		rate := r.Action.PPS
		if r.Action.BPS != 0 {
			rate = r.Action.BPS
			v.Flags |= uint8(fwdFilterFlagsFR_F_BYTES)
		}
		// Each CPU lets through its share of the rate.
		v.PsPerUnit = uint64(1e12 * float64(cpus) / float64(rate))
	default:
		return v, fmt.Errorf("filter %q: unknown action %v", r.Name, r.Action.Kind)
	}
	if r.Action.Continue {
		v.Flags |= uint8(fwdFilterFlagsFR_F_CONTINUE)
	}
	if r.Action.Remark {
		v.Flags |= uint8(fwdFilterFlagsFR_F_REMARK)
		v.Dscp = r.Action.DSCP
	}
	if a := r.Action.Redirect; a.IsValid() {
		v.Flags |= uint8(fwdFilterFlagsFR_F_REDIRECT)
		v.Redirect = a.As16() // IPv4-mapped for IPv4
	}
	return v, nil
}

// writeKeyed replaces the bank's entries of the prefix and port maps.
func (f *filters) writeKeyed(bank uint32, c *filter.Compiled) error {
	if err := deleteWhere(f.m.FilterPrefixes, func(k fwdFilterKey) bool { return k.Tag>>2 == bank }); err != nil {
		return fmt.Errorf("filters: prefixes: %w", err)
	}
	for _, e := range c.Prefixes {
		key := fwdFilterKey{Prefixlen: 32 + uint32(e.Prefix.Bits()), Tag: bank << 2}
		if e.Source {
			key.Tag |= 2
		}
		if e.Prefix.Addr().Is6() {
			key.Tag |= 1
			key.Addr = e.Prefix.Addr().As16()
		} else {
			a := e.Prefix.Addr().As4()
			copy(key.Addr[:], a[:])
		}
		if err := f.m.FilterPrefixes.Put(key, e.Class); err != nil {
			return fmt.Errorf("filters: prefix %s: %w", e.Prefix, err)
		}
	}

	if err := deleteWhere(f.m.FilterPorts, func(k fwdFilterPortKey) bool { return k.Bank == bank }); err != nil {
		return fmt.Errorf("filters: ports: %w", err)
	}
	for ifindex, class := range c.Ingress {
		if err := f.m.FilterPorts.Put(fwdFilterPortKey{Bank: bank, Ifindex: uint32(ifindex)}, class); err != nil {
			return fmt.Errorf("filters: port %d: %w", ifindex, err)
		}
	}
	return nil
}

// deleteWhere deletes the entries of m (uint32 values) whose key is of.
func deleteWhere[K any](m *ebpf.Map, of func(K) bool) error {
	var stale []K
	var k K
	var v uint32
	it := m.Iterate()
	for it.Next(&k, &v) {
		if of(k) {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete: %w", err)
		}
	}
	return nil
}

// Filters returns the rules in force, in order, with their counters
// summed over CPUs.
func (d *Datapath) Filters() ([]FilterRule, error) {
	f := d.filters
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FilterRule, len(f.active))
	var perCPU []fwdFilterCounter
	for i, r := range f.active {
		out[i] = r
		slot := f.slots[ruleKey(&r.Rule)]
		if err := f.m.FilterCounters.Lookup(slot, &perCPU); err != nil {
			return nil, fmt.Errorf("filters: counters of %q: %w", r.Name, err)
		}
		for _, c := range perCPU {
			out[i].Packets += c.Packets
			out[i].Bytes += c.Bytes
			out[i].Dropped += c.Dropped
		}
	}
	return out, nil
}
