package sync

import (
	"net/netip"
	"slices"
	"strconv"

	"github.com/xdprouter/xdprouter/route"
)

// group is a next-hop group shared by routes. Kernel routes' groups hold a
// fixed next-hop list; a BGP set's group holds the set's current resolution,
// so re-resolution rewrites one group, not its routes.
//
// A BGP set's group may have backups (PIC): written instead of the members
// while none of those is usable, so that a failure moves every route of
// the set in one group write.
type group struct {
	id       uint32
	key      string
	members  []route.NextHop
	backups  []route.NextHop
	refs     int
	nhs      []*nexthop // acquired members, then backups
	nPrimary int        // of nhs, the members
	written  []uint32   // what the XDP map holds
	// from is the group the first write derives its hash buckets from
	// (the one its first route used before): flows on the members the
	// two share stay there (bpf/resilient.go). 0: the group itself.
	from uint32
	// A BGP set's next-hop addresses, primary and backup: members of a
	// neighbor BGP dropped are not used (PeerDropped).
	addrs, backupAddrs []netip.Addr
}

type nexthop struct {
	id   uint32
	nh   route.NextHop
	refs int
	mac  string // written MAC ("" = unresolved)
}

// setGroupKey names the group of a BGP next-hop set by its addresses, not
// its id: a freed id may be reused in the same batch while the old set's
// group is still referenced by routes not yet moved.
func setGroupKey(s *bgpSet) string { return "b" + s.key }

// acquireGroup returns the group of key (created with members and backups
// if new), or nil when the group or next-hop maps are full.
//
// prefer is the adopted group (adopt.go) the route points at now, 0 for
// none: a new group takes over its id if it has the same members in use.
// from is the group the route uses now (0: none): a new group starts
// from its hash buckets.
func (st *state) acquireGroup(key string, members, backups []route.NextHop, set *bgpSet, prefer, from uint32) *group {
	g := st.groups[key]
	if g == nil {
		g = &group{key: key}
		if set != nil {
			g.addrs, g.backupAddrs = set.addrs, set.backup
		}
		if !st.acquireMembers(g, members, backups) {
			return nil
		}
		if prefer == 0 || !st.claimAdopted(g, prefer) {
			if g.id = st.groupIDs.get(); g.id == 0 {
				st.noteExhausted("next-hop groups", st.opt.MaxGroups)
				st.releaseMembers(g)
				return nil
			}
			g.from = from
		}
		st.writeGroup(g)
		st.groups[key] = g
		st.groupByID[g.id] = g
	}
	g.refs++
	return g
}

// acquireMembers acquires the next-hop entries of members and backups for
// g (not written yet); false, with nothing held, if the map is full.
func (st *state) acquireMembers(g *group, members, backups []route.NextHop) bool {
	g.members, g.backups, g.nPrimary = members, backups, len(members)
	g.nhs = make([]*nexthop, 0, len(members)+len(backups))
	for _, m := range slices.Concat(members, backups) {
		x := st.acquireNextHop(m)
		if x == nil {
			st.releaseMembers(g)
			return false
		}
		g.nhs = append(g.nhs, x)
	}
	return true
}

func (st *state) releaseMembers(g *group) {
	for _, x := range g.nhs {
		st.releaseNextHop(x)
	}
	g.nhs, g.nPrimary = nil, 0
}

// releaseGroup drops a reference; the last one frees the group. Its map
// entry is left as it is: its id cools before reuse, so a packet that read
// the old route still finds the old members.
func (st *state) releaseGroup(g *group) {
	if g == nil {
		return
	}
	if g.refs--; g.refs > 0 {
		return
	}
	delete(st.groups, g.key)
	delete(st.groupByID, g.id)
	for _, x := range g.nhs {
		st.releaseNextHop(x)
	}
	st.groupIDs.put(g.id)
}

// dropped reports whether addrs are all addresses of neighbors BGP
// dropped: a path via them is about to be withdrawn.
func (st *state) dropped(addrs []netip.Addr) bool {
	if len(st.peerDown) == 0 || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if _, ok := st.peerDown[a]; !ok {
			return false
		}
	}
	return true
}

func (st *state) releaseGroupID(id uint32) {
	if id == 0 {
		return
	}
	if g := st.groupByID[id]; g != nil {
		st.releaseGroup(g)
		return
	}
	st.releaseAdopted(id)
}

// setMembers points g at members and backups (acquiring their next-hop
// entries first) and writes it. If the next-hop map is full, g keeps no
// members (XDP passes its packets to the kernel) and setMembers returns
// false.
func (st *state) setMembers(g *group, members, backups []route.NextHop) bool {
	old := g.nhs
	ok := st.acquireMembers(g, members, backups)
	st.writeGroup(g)
	for _, x := range old {
		st.releaseNextHop(x)
	}
	return ok
}

// writeGroup writes the usable members of g: link up and neighbor known (or
// connected); with none, its usable backups. With none usable it keeps
// those on live links, so XDP reports "neighbor unresolved" while the
// kernel resolves them.
func (st *state) writeGroup(g *group) {
	ids := st.usable(g)
	if g.written != nil && slices.Equal(ids, g.written) {
		return
	}
	from := g.id
	if g.written == nil && g.from != 0 {
		from = g.from
	}
	if err := st.opt.Datapath.SetGroupFrom(g.id, from, ids); err != nil {
		st.log.Error("set group", "group", g.id, "err", err)
		st.groupsDirty = true // retried with the next batch
		return
	}
	g.from = 0
	if g.written != nil && !st.onBackup(g, g.written) && st.onBackup(g, ids) {
		st.counts.Failovers++
	}
	g.written = ids
}

// onBackup reports whether ids (as written for g) are backups only.
func (st *state) onBackup(g *group, ids []uint32) bool {
	if len(ids) == 0 || g.nPrimary == len(g.nhs) {
		return false
	}
	for _, x := range g.nhs[:g.nPrimary] {
		if slices.Contains(ids, x.id) {
			return false
		}
	}
	return true
}

// usable is what writeGroup writes for g.
func (st *state) usable(g *group) []uint32 {
	var ids, backups, fallback []uint32
	primaryDown, backupDown := st.dropped(g.addrs), st.dropped(g.backupAddrs)
	for i, x := range g.nhs {
		if !st.linkUp(x.nh.Ifindex) {
			continue
		}
		fallback = append(fallback, x.id)
		switch {
		case !x.nh.Connected() && x.mac == "":
		case i < g.nPrimary && primaryDown, i >= g.nPrimary && backupDown:
		case i < g.nPrimary:
			ids = append(ids, x.id)
		default:
			backups = append(backups, x.id)
		}
	}
	if len(ids) == 0 {
		ids = backups
	}
	if len(ids) == 0 {
		ids = fallback
	}
	if len(ids) > route.MaxECMP {
		ids = ids[:route.MaxECMP]
	}
	if ids == nil {
		ids = []uint32{}
	}
	return ids
}

// acquireNextHop returns the next-hop entry of nh, or nil when the map is
// full.
func (st *state) acquireNextHop(nh route.NextHop) *nexthop {
	x := st.nhs[nh]
	if x == nil {
		id := st.nhIDs.get()
		if id == 0 {
			st.noteExhausted("next hops", st.opt.MaxNextHops)
			return nil
		}
		x = &nexthop{id: id, nh: nh}
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
	st.nhIDs.put(x.id)
}

// egress is the XDP entry of x with the neighbor's current MAC.
func (st *state) egress(x *nexthop) route.Egress {
	eg := route.Egress{Ifindex: x.nh.Ifindex, Connected: x.nh.Connected(), Gateway: x.nh.Gateway}
	if !x.nh.Connected() {
		if n, ok := st.neighs[neighKey{x.nh.Ifindex, x.nh.Gateway}]; ok {
			eg.MAC = n.MAC
		}
	}
	return eg
}

// writeNextHop writes x with the neighbor's current MAC; a gateway without
// one is resolved now rather than on the first packet.
func (st *state) writeNextHop(x *nexthop) {
	eg := st.egress(x)
	if !x.nh.Connected() && eg.MAC == nil {
		st.resolveNeighbor(x.nh.Ifindex, x.nh.Gateway)
	}
	if err := st.opt.Datapath.SetNextHop(x.id, eg); err != nil {
		st.log.Error("set next hop", "nexthop", x.nh.String(), "err", err)
		return
	}
	x.mac = string(eg.MAC)
}

// noteExhausted records that a map ran out in this batch (apply logs it).
func (st *state) noteExhausted(what string, max uint32) {
	st.exhausted = what + " (max " + strconv.FormatUint(uint64(max), 10) + ")"
}
