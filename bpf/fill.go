package bpf

// MapSizes is the capacity of the maps whose fill levels matter to an
// operator (max_entries as loaded), and how much of the compiled
// structure's node and leaf arrays is in use.
type MapSizes struct {
	RoutesV4, RoutesV6, Groups, NextHops, Neighbors uint32
	// Compiled structure (lpm.Arena.Usage): records and leaves in use and
	// their arrays' sizes, per family.
	Records4, Leaves4, RecordsCap4, LeavesCap4 uint32
	Records6, Leaves6, RecordsCap6, LeavesCap6 uint32
}

// Sizes returns the maps' capacities and the compiled structure's use.
// The entries of the hash and LPM maps are not counted here (that would
// walk them): sync knows how many it wrote.
func (d *Datapath) Sizes() MapSizes {
	m := MapSizes{
		RoutesV4: d.objs.RoutesV4.MaxEntries(), RoutesV6: d.objs.RoutesV6.MaxEntries(),
		Groups: d.objs.Nhgs.MaxEntries(), NextHops: d.objs.Nexthops.MaxEntries(),
		Neighbors:   d.objs.Neighbors.MaxEntries(),
		RecordsCap4: d.objs.LpmNodes4.MaxEntries(), LeavesCap4: 2 * d.objs.LpmLeaves4.MaxEntries(),
		RecordsCap6: d.objs.LpmNodes6.MaxEntries(), LeavesCap6: 2 * d.objs.LpmLeaves6.MaxEntries(),
	}
	c := d.compiled
	c.mu.Lock()
	m.Records4, m.Leaves4 = c.a4.Usage()
	m.Records6, m.Leaves6 = c.a6.Usage()
	c.mu.Unlock()
	return m
}
