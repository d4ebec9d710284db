package sync

import (
	"net/netip"
	"slices"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/route"
)

// apply writes the difference between desired and applied state for every
// dirty prefix. Order keeps forwarding correct at every instant: next hops
// and groups before the routes that use them; the kernel before XDP on add,
// XDP before the kernel on delete; groups freed last.
func (st *state) apply() {
	if st.resolveDirty {
		st.resolveDirty = false
		st.reresolve()
	}
	if st.groupsDirty {
		st.groupsDirty = false
		for _, g := range st.groups {
			st.writeGroup(g)
		}
	}

	type xdpChange struct {
		p   netip.Prefix
		e   *entry
		new xdpApplied
	}
	type fibChange struct {
		p  netip.Prefix
		e  *entry
		id uint32 // interned next-hop list being installed; 0 for deletes
	}
	var (
		xdpUpd, xdpDel []xdpChange
		updates        []bpf.Route
		deletes        []netip.Prefix
		fibAdd, fibDel []fibChange
		addOps, delOps []route.Change
		errs           int
		firstErr       error
		failed         = func(p netip.Prefix, err error) {
			st.failed[p] = struct{}{}
			if errs++; firstErr == nil {
				firstErr = err
			}
		}
	)
	for p := range st.dirty {
		e := st.entries[p]
		if e == nil {
			continue
		}
		d := st.desire(p, e)
		if !d.fibOn && !d.xdpOn && e.fib == 0 && !e.xdp.on {
			st.gc(p, e) // e.g. a withdrawal of a prefix never installed
			continue
		}

		// Kernel sink: installs go first, deletes last.
		if d.fibOn {
			id := st.lists.get(d.fibNHs)
			if id == e.fib {
				st.lists.put(id)
				e.stale = false
			} else {
				fibAdd = append(fibAdd, fibChange{p, e, id})
				addOps = append(addOps, route.Change{Route: route.Route{Prefix: p, Kind: route.Unicast, NextHops: d.fibNHs, Metric: st.opt.Metric}})
			}
		} else if e.fib != 0 && !e.stale {
			fibDel = append(fibDel, fibChange{p: p, e: e})
			delOps = append(delOps, route.Change{Delete: true, Route: route.Route{Prefix: p, Metric: e.fibM}})
		}

		// XDP sink.
		if d.xdpOn {
			n := xdpApplied{on: true, typ: d.typ}
			if d.typ == bpf.RouteUnicast {
				n.group = st.acquireGroup(d.groupKey, d.members)
			}
			if e.xdp == n {
				st.releaseGroup(n.group)
				continue
			}
			var gid uint32
			if n.group != nil {
				gid = n.group.id
			}
			xdpUpd = append(xdpUpd, xdpChange{p, e, n})
			updates = append(updates, bpf.Route{Prefix: p, Type: n.typ, Group: gid})
		} else if e.xdp.on {
			xdpDel = append(xdpDel, xdpChange{p: p, e: e})
			deletes = append(deletes, p)
		}
	}
	clear(st.dirty)

	if len(addOps) > 0 {
		for i, err := range st.opt.FIB.Apply(addOps) {
			c := fibAdd[i]
			if err != nil {
				st.lists.put(c.id)
				failed(c.p, err)
				continue
			}
			st.counts.FIBInstalls++
			if c.e.fib != 0 {
				st.lists.put(c.e.fib)
			} else {
				st.countFIB(c.p, 1)
			}
			c.e.fib, c.e.fibM, c.e.stale = c.id, st.opt.Metric, false
		}
	}
	if len(updates) > 0 {
		if err := st.opt.Datapath.UpdateRoutes(updates); err != nil {
			for _, c := range xdpUpd {
				st.releaseGroup(c.new.group)
				failed(c.p, err)
			}
		} else {
			st.counts.XDPWrites += uint64(len(updates))
			for _, c := range xdpUpd {
				if !c.e.xdp.on {
					st.countXDP(c.p, 1)
				}
				st.releaseGroup(c.e.xdp.group)
				c.e.xdp = c.new
			}
		}
	}
	if len(deletes) > 0 {
		if err := st.opt.Datapath.DeleteRoutes(deletes); err != nil {
			for _, c := range xdpDel {
				failed(c.p, err)
			}
		} else {
			st.counts.XDPWrites += uint64(len(deletes))
			for _, c := range xdpDel {
				st.countXDP(c.p, -1)
				st.releaseGroup(c.e.xdp.group)
				c.e.xdp = xdpApplied{}
				st.gc(c.p, c.e)
			}
		}
	}
	if len(delOps) > 0 {
		for i, err := range st.opt.FIB.Apply(delOps) {
			c := fibDel[i]
			if err != nil {
				failed(c.p, err)
				continue
			}
			st.counts.FIBDeletes++
			st.lists.put(c.e.fib)
			c.e.fib = 0
			st.countFIB(c.p, -1)
			st.gc(c.p, c.e)
		}
	}
	if errs > 0 {
		st.log.Error("sync: changes failed, retrying", "count", errs, "first", firstErr)
	}
}

func (st *state) gc(p netip.Prefix, e *entry) {
	if e != nil && len(e.kernel) == 0 && e.local == 0 && e.bgp == 0 && !e.xdp.on && e.fib == 0 {
		delete(st.entries, p)
	}
}

// reresolve recomputes every BGP next-hop set against the current kernel
// routes; routes of a set whose resolution changed are re-examined (their
// XDP group is rewritten in place, their kernel routes replaced).
func (st *state) reresolve() {
	changed := map[uint32]bool{}
	for _, s := range st.setsByID {
		r := st.resolve(s.addrs)
		if slices.Equal(r, s.resolved) {
			continue
		}
		s.resolved = r
		changed[s.id] = true
		if g := st.groups[setGroupKey(s)]; g != nil && len(r) > 0 {
			st.setMembers(g, r)
		}
	}
	if len(changed) == 0 {
		return
	}
	for p, e := range st.entries {
		if changed[e.bgp] {
			st.markDirty(p)
		}
	}
}

// setGroupKey names the group of a BGP next-hop set by its addresses, not
// its id: a freed id may be reused in the same batch while the old set's
// group is still referenced by routes not yet moved.
func setGroupKey(s *bgpSet) string { return "b" + s.key }

func (st *state) acquireGroup(key string, members []route.NextHop) *group {
	g := st.groups[key]
	if g == nil {
		g = &group{id: st.groupID.get(), key: key}
		st.groups[key] = g
		st.setMembers(g, members)
	}
	g.refs++
	return g
}

func (st *state) releaseGroup(g *group) {
	if g == nil {
		return
	}
	if g.refs--; g.refs > 0 {
		return
	}
	delete(st.groups, g.key)
	if err := st.opt.Datapath.SetGroup(g.id, nil); err != nil {
		st.log.Error("clear group", "group", g.id, "err", err)
	}
	for _, x := range g.nhs {
		st.releaseNextHop(x)
	}
	st.groupID.put(g.id)
}

// setMembers points g at members (acquiring their next-hop entries first)
// and writes it.
func (st *state) setMembers(g *group, members []route.NextHop) {
	old := g.nhs
	g.members = members
	g.nhs = make([]*nexthop, 0, len(members))
	for _, m := range members {
		g.nhs = append(g.nhs, st.acquireNextHop(m))
	}
	st.writeGroup(g)
	for _, x := range old {
		st.releaseNextHop(x)
	}
}

// writeGroup writes the usable members of g: link up and neighbor known (or
// connected). With none usable it keeps those on live links, so XDP reports
// "neighbor unresolved" while the kernel resolves them.
func (st *state) writeGroup(g *group) {
	var ids, fallback []uint32
	for _, x := range g.nhs {
		if !st.linkUp(x.nh.Ifindex) {
			continue
		}
		fallback = append(fallback, x.id)
		if x.nh.Connected() || x.mac != "" {
			ids = append(ids, x.id)
		}
	}
	if len(ids) == 0 {
		ids = fallback
	}
	if len(ids) > maxECMP {
		ids = ids[:maxECMP]
	}
	if g.written != nil && slices.Equal(ids, g.written) {
		return
	}
	if err := st.opt.Datapath.SetGroup(g.id, ids); err != nil {
		st.log.Error("set group", "group", g.id, "err", err)
		st.groupsDirty = true // retried with the next batch
		return
	}
	if ids == nil {
		ids = []uint32{}
	}
	g.written = ids
}

// maxECMP is the group width of the XDP program (struct nhg).
const maxECMP = 16

func (st *state) acquireNextHop(nh route.NextHop) *nexthop {
	x := st.nhs[nh]
	if x == nil {
		x = &nexthop{id: st.nhID.get(), nh: nh}
		st.nhs[nh] = x
		st.writeNextHop(x)
	}
	x.refs++
	return x
}

func (st *state) releaseNextHop(x *nexthop) {
	if x.refs--; x.refs > 0 {
		return
	}
	delete(st.nhs, x.nh)
	st.nhID.put(x.id)
}

// writeNextHop writes x with the neighbor's current MAC; a gateway without
// one is resolved now rather than on the first packet.
func (st *state) writeNextHop(x *nexthop) {
	bnh := bpf.NextHop{Ifindex: x.nh.Ifindex, Connected: x.nh.Connected()}
	if !x.nh.Connected() {
		if n, ok := st.neighs[neighKey{x.nh.Ifindex, x.nh.Gateway}]; ok {
			bnh.MAC = n.MAC
		} else {
			st.resolveNeighbor(x.nh.Ifindex, x.nh.Gateway)
		}
	}
	if err := st.opt.Datapath.SetNextHop(x.id, bnh); err != nil {
		st.log.Error("set next hop", "nexthop", x.nh.String(), "err", err)
		return
	}
	x.mac = string(bnh.MAC)
}
