package sync

import (
	"strconv"

	"github.com/gaissmai/bart"

	"github.com/xdprouter/xdprouter/route"
)

// Connected routes of VRF-lite instances (Options.PortTables).
//
// Without VRF devices the kernel puts the subnet route of a port's address
// in the main table only: an instance's table would not reach its own
// subnets. Sync installs them there as routes of ours: for each address of
// a VRF port (not link-local, not a host prefix) whose link is up, the
// route "PREFIX dev PORT scope link" in the port's table, with our
// protocol and metric. It is the one place that sees addresses and links
// and writes routes of ours, so adoption at a restart, the stale sweep,
// XDP and inspection treat them like BGP's routes. A connected route wins
// over a BGP path of the same prefix in that table (kept aside in
// connBGP), as the kernel's connected route wins in the main table.
//
// Each is an entry whose set is a connected set (bgpSet.connected) of its
// port: resolved is [{Ifindex: port}], nothing to resolve. BGP next hops in
// the VRF table resolve through them (connIndex).

// connWanted computes the connected routes wanted from the addresses and
// links, and applies the difference.
func (st *state) syncConnected() {
	st.connDirty = false
	if len(st.portTable) == 0 {
		return
	}
	want := map[route.TablePrefix]int{}
	for a := range st.addrs {
		l, ok := st.links[a.Ifindex]
		if !ok || !l.Up {
			continue
		}
		t, ok := st.portTable[l.Name]
		if !ok {
			continue
		}
		ad := a.Prefix.Addr()
		if ad.IsLinkLocalUnicast() || ad.IsLoopback() || a.Prefix.Bits() >= ad.BitLen() {
			continue
		}
		k := route.TablePrefix{Table: t, Prefix: a.Prefix.Masked()}
		if cur, ok := want[k]; !ok || a.Ifindex < cur {
			want[k] = a.Ifindex // two ports of one subnet: the lower index, stable
		}
	}
	for k, id := range st.connected {
		ifx, ok := want[k]
		if !ok || st.setsByID[id] == nil || st.setsByID[id].resolved[0].Ifindex != ifx {
			st.setConnected(k, 0)
		}
	}
	for k, ifx := range want {
		if _, ok := st.connected[k]; !ok {
			st.setConnected(k, ifx)
		}
	}
}

// setConnected installs (ifindex > 0) or removes the connected route of
// ours of p.
func (st *state) setConnected(p route.TablePrefix, ifindex int) {
	e := st.entry(p)
	cur, had := st.connected[p]
	idx := st.connIndex[p.Table]
	if idx == nil {
		idx = new(bart.Table[int])
		st.connIndex[p.Table] = idx
	}
	switch {
	case ifindex > 0:
		id := st.getConnectedSet(p.Table, ifindex)
		if had {
			st.putSet(cur)
		} else if e.bgpSet != 0 {
			st.connBGP[p] = e.bgpSet // BGP's path waits aside
		}
		e.bgpSet = id
		st.connected[p] = id
		idx.Insert(p.Prefix, ifindex)
	case had:
		st.putSet(cur)
		delete(st.connected, p)
		e.bgpSet = st.connBGP[p]
		delete(st.connBGP, p)
		idx.Delete(p.Prefix)
	default:
		return
	}
	st.markDirty(p)
	// BGP next hops of the table may resolve differently now.
	st.resolveDirty, st.resolveAll = true, true
}

// getConnectedSet returns the connected set of port ifindex in table.
func (st *state) getConnectedSet(table, ifindex int) uint32 {
	key := "c" + strconv.Itoa(table) + "|" + strconv.Itoa(ifindex)
	s := st.sets[key]
	if s == nil {
		s = &bgpSet{id: st.setIDs.get(), key: key, table: table, connected: true,
			resolved: []route.NextHop{{Ifindex: ifindex}}}
		st.sets[key] = s
		st.setsByID[s.id] = s
		st.admitSet(s)
	}
	s.refs++
	return s.id
}

// connectedPrefix reports whether p is a connected route of ours.
func (st *state) isConnectedOurs(p route.TablePrefix) bool {
	_, ok := st.connected[p]
	return ok
}
