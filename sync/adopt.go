package sync

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/xdprouter/xdprouter/route"
)

// Hitless restart: the XDP maps a previous instance left (Options.Adopt)
// become the applied state, so that the first apply writes only what is
// wrong. Next hops are taken over by (ifindex, gateway) with their ids;
// a group is taken over by the first group sync builds for one of its
// routes with the same next hops in use (acquireGroup), so routes keep
// their group ids; routes a previous instance installed stay as they are
// in XDP until BGP re-learns them or the stale sweep (like the kernel's).

// adoptedGroup is a group a previous instance wrote that no group of ours
// has taken over yet.
type adoptedGroup struct {
	members []uint32 // next-hop ids, as in the map
	refs    int      // adopted routes still pointing at it
	nhs     []*nexthop
}

// adoptXDP takes over a previous instance's XDP state; call it at the
// first snapshot, before the kernel's state is applied.
func (st *state) adoptXDP(a *route.XDPState) {
	// Next hops: one per (ifindex, gateway); where a previous instance left
	// several (freed ones keep their content), the one groups use.
	used := map[uint32]bool{}
	for _, g := range a.Groups {
		for _, id := range g {
			used[id] = true
		}
	}
	byID := map[uint32]*nexthop{}
	ids := slices.Sorted(func(yield func(uint32) bool) {
		for id := range a.NextHops {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		eg := a.NextHops[id]
		nh := route.NextHop{Ifindex: eg.Ifindex, Gateway: eg.Gateway}
		if eg.Connected {
			nh.Gateway = netip.Addr{}
		}
		if x := st.nhs[nh]; x != nil {
			if used[x.id] || !used[id] {
				continue
			}
			delete(byID, x.id)
		}
		x := &nexthop{id: id, nh: nh, mac: string(eg.MAC)}
		st.nhs[nh] = x
		byID[id] = x
	}
	st.nhIDs.reserve(slices.Collect(maps.Keys(byID)))

	// Groups the routes name; each holds its members until taken over.
	refs := map[uint32]int{}
	for _, r := range a.Routes {
		if r.Kind == route.Unicast && r.Group != 0 {
			refs[r.Group]++
		}
	}
	st.adopted = map[uint32]*adoptedGroup{}
	for id, members := range a.Groups {
		if refs[id] == 0 {
			continue
		}
		ag := &adoptedGroup{members: members, refs: refs[id]}
		for _, m := range members {
			if x := byID[m]; x != nil && !slices.Contains(ag.nhs, x) {
				x.refs++
				ag.nhs = append(ag.nhs, x)
			}
		}
		st.adopted[id] = ag
	}
	st.groupIDs.reserve(slices.Collect(maps.Keys(st.adopted)))

	for _, r := range a.Routes {
		k := route.TablePrefix{Table: route.NormTable(r.Table), Prefix: r.Prefix}
		e := st.entry(k)
		e.xdp = xdpApplied{on: true, kind: r.Kind, adopted: true}
		if st.adopted[r.Group] != nil {
			e.xdp.group = r.Group
		}
		st.countXDP(r.Prefix, 1)
		st.markDirty(k)
	}
	for _, n := range a.Neighbors {
		// The snapshot's neighbors are diffed against these: entries the
		// kernel no longer has are deleted, others rewritten only if
		// their MAC changed.
		st.neighs[neighKey{n.Ifindex, n.Addr}] = n
	}
	st.log.Info("took over the XDP state of a previous instance", "routes", len(a.Routes),
		"groups", len(st.adopted), "nexthops", len(byID), "neighbors", len(a.Neighbors))
}

// adoptedNextHopsCheck rewrites the adopted next hops whose MAC is not the
// kernel's neighbor's (call after the first snapshot's neighbors).
func (st *state) adoptedNextHopsCheck() {
	for _, x := range st.nhs {
		if !x.nh.Connected() && string(st.egress(x).MAC) != x.mac {
			st.writeNextHop(x)
			st.groupsDirty = true
		}
	}
}

// claimAdopted gives g, being created for a route that points at the
// adopted group prefer, that group's id if its members in use are the
// same: the group's routes then need no write.
func (st *state) claimAdopted(g *group, prefer uint32) bool {
	ag := st.adopted[prefer]
	if ag == nil || !slices.Equal(st.usable(g), ag.members) {
		return false
	}
	delete(st.adopted, prefer)
	g.id, g.refs, g.written = prefer, ag.refs, ag.members
	for _, x := range ag.nhs {
		st.releaseNextHop(x) // g holds its own references
	}
	return true
}

// releaseAdopted drops an adopted route's reference to its group.
func (st *state) releaseAdopted(id uint32) {
	ag := st.adopted[id]
	if ag == nil {
		return
	}
	if ag.refs--; ag.refs > 0 {
		return
	}
	delete(st.adopted, id)
	for _, x := range ag.nhs {
		st.releaseNextHop(x)
	}
	st.groupIDs.put(id)
}

// sweepAdopted frees the adopted next hops nothing uses (after the stale
// sweep: every adopted route has been decided by then).
func (st *state) sweepAdopted() {
	for _, x := range st.nhs {
		if x.refs == 0 {
			delete(st.nhs, x.nh)
			st.nhIDs.put(x.id)
		}
	}
}

// adoptedGroupOf is the adopted group e's XDP entry points at (0: none).
func (st *state) adoptedGroupOf(e *entry) uint32 {
	if !e.xdp.adopted || st.adopted[e.xdp.group] == nil {
		return 0
	}
	return e.xdp.group
}
