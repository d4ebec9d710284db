package sync

import (
	"slices"
	"strconv"
	"strings"

	"github.com/xdprouter/xdprouter/route"
)

// Kernel nexthop objects (Options.NexthopObjects). Each BGP next-hop set
// whose routes are in the kernel has a kernel nexthop group (ip nexthop)
// of single nexthops, one per resolved next hop; its routes name the group
// (RTA_NH_ID). When the set resolves differently, the group is replaced in
// place and the kernel moves every route with it: one write, not one per
// route. The XDP side is unchanged: the set's XDP group is rewritten as
// before.
//
// The kernel deletes nexthops of a link that goes down (admin or carrier),
// shrinks their groups and deletes the emptied ones with their routes,
// without telling: a link going down marks what it held unwritten, and the
// watcher's resync brings the removed routes back to sync.
//
// Our routes' applied state (entry.ours) is then a list keyed by the group
// ("o" + id) whose next hops follow the group's members.
//
// With bgp.pic the daemon does not use nexthop objects, and sets with a
// backup are installed with their next hops in any case, not by a group: on carrier loss the kernel deletes the nexthops and every route
// by them before it announces the link down (measured: the PIC switch
// came 0.5-0.9 s late with 565k routes, against under 1.5 ms with plain
// routes, which survive carrier loss marked linkdown), and the table
// would have to be installed again; and a set gaining its backup would
// rewrite each route in the kernel for the same next hops.

// kernelNexthopBase is where our kernel nexthop ids start. Ids are one
// space per network namespace, shared with every daemon, and the kernel
// lets anyone replace or delete any id: FRR's zebra uses ids below
// 250,000,000.
const kernelNexthopBase = 1 << 30

// kgroup is the kernel nexthop group of a BGP set (by the set's key, so a
// set re-created with the same next hops finds it).
type kgroup struct {
	id      uint32
	key     string
	members []route.NextHop // wanted: the set's active next hops
	singles []*ksingle      // as written
	written bool            // the kernel has members as singles
	listed  bool            // a list of ours names it: routes use it
}

type ksingle struct {
	id      uint32
	nh      route.NextHop
	refs    int // groups holding it
	written bool
}

func objListKey(id uint32) string { return "o" + strconv.FormatUint(uint64(id), 10) }

func objListID(key string) (uint32, bool) {
	s, ok := strings.CutPrefix(key, "o")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(s, 10, 32)
	return uint32(id), err == nil
}

// kgroupFor returns the kernel group of s, wanting s's active next hops.
// prefer is the kernel group the route being installed uses now: a
// previous instance's group with the same members is taken over, so that
// its routes need no rewrite.
func (st *state) kgroupFor(s *bgpSet, prefer uint32) *kgroup {
	g := st.kgroups[s.key]
	if g == nil && prefer != 0 {
		g = st.takeLeftoverGroup(s, prefer)
	}
	if g == nil {
		id := st.knhIDs.get()
		if id == 0 {
			return nil
		}
		g = &kgroup{id: kernelNexthopBase + id, key: s.key}
		st.kgroups[s.key] = g
		st.kgroupByID[g.id] = g
	}
	st.kgroupWant(g, s.active())
	return g
}

// takeLeftoverGroup makes the previous instance's group id s's if it holds
// s's active next hops (nil if not).
func (st *state) takeLeftoverGroup(s *bgpSet, id uint32) *kgroup {
	if !st.leftoverNH[id] {
		return nil
	}
	var nhs []route.NextHop
	for _, m := range st.leftoverMembers[id] {
		nh, ok := st.leftoverSingle[m]
		if !ok || !st.linkUp(nh.Ifindex) {
			return nil
		}
		if x := st.ksingles[nh]; x != nil && x.id != m {
			return nil // that next hop is another single of ours now
		}
		nhs = append(nhs, nh)
	}
	if !slices.Equal(nhs, s.active()) {
		return nil
	}
	g := &kgroup{id: id, key: s.key, members: nhs, written: true}
	for i, m := range st.leftoverMembers[id] {
		x := st.ksingles[nhs[i]]
		if x == nil {
			x = &ksingle{id: m, nh: nhs[i], written: true}
			st.ksingles[nhs[i]] = x
			st.leftoverSingles = slices.DeleteFunc(st.leftoverSingles, func(v uint32) bool { return v == m })
		}
		x.refs++
		g.singles = append(g.singles, x)
	}
	delete(st.leftoverNH, id)
	st.kgroups[s.key] = g
	st.kgroupByID[id] = g
	return g
}

func (st *state) kgroupWant(g *kgroup, members []route.NextHop) {
	if len(members) > 0 && !slices.Equal(members, g.members) {
		g.members, g.written = members, false
	}
}

// writeKernelGroups writes the kernel groups that are not as wanted:
// singles first, then the groups naming them. Members on links that are
// down are left out (the kernel refuses them and would delete them); a
// group with none left stays unwritten, and routes needing it are
// installed without it.
func (st *state) writeKernelGroups() {
	var ops []route.NexthopChange
	var groups []*kgroup
	var newSingles []*ksingle
	for _, g := range st.kgroups {
		if g.written || len(g.members) == 0 {
			continue
		}
		var singles []*ksingle
		for _, m := range g.members {
			if !st.linkUp(m.Ifindex) {
				continue
			}
			x := st.ksingles[m]
			if x == nil {
				id := st.knhIDs.get()
				if id == 0 {
					continue
				}
				x = &ksingle{id: kernelNexthopBase + id, nh: m}
				st.ksingles[m] = x
			}
			if !x.written && !slices.Contains(newSingles, x) {
				newSingles = append(newSingles, x)
				ops = append(ops, route.NexthopChange{Nexthop: route.Nexthop{ID: x.id, Gateway: x.nh.Gateway, Ifindex: x.nh.Ifindex}})
			}
			x.refs++
			singles = append(singles, x)
		}
		if len(singles) == 0 {
			continue
		}
		old := g.singles
		g.singles = singles
		for _, x := range old {
			st.releaseSingle(x)
		}
		groups = append(groups, g)
	}
	if len(ops) == 0 && len(groups) == 0 {
		return
	}
	nSingles := len(ops)
	for _, g := range groups {
		members := make([]uint32, len(g.singles))
		for i, x := range g.singles {
			members[i] = x.id
		}
		ops = append(ops, route.NexthopChange{Group: route.NexthopGroup{ID: g.id, Members: members}})
	}
	errs := st.opt.FIB.ApplyNexthops(ops)
	for i, x := range newSingles {
		if errs[i] != nil {
			st.log.Error("kernel nexthop", "nexthop", x.nh.String(), "err", errs[i])
			continue
		}
		x.written = true
	}
	for i, g := range groups {
		if err := errs[nSingles+i]; err != nil {
			st.log.Error("kernel nexthop group", "id", g.id, "err", err)
			continue
		}
		g.written = true
		st.ourLists.setNHs(objListKey(g.id), g.writtenNHs())
	}
	st.counts.NexthopWrites += uint64(len(ops))
}

func (st *state) releaseSingle(x *ksingle) {
	if x.refs--; x.refs > 0 {
		return
	}
	delete(st.ksingles, x.nh)
	st.freeKernelID(x.id, x.written)
}

// freeKernelID returns id to the pool; one still in the kernel only once
// deleteKernelNexthops has deleted it: handed out earlier, in the same
// apply, to a new object, the queued delete would take that object (and
// the routes by it) with it.
func (st *state) freeKernelID(id uint32, written bool) {
	if written {
		st.kdelete = append(st.kdelete, id)
		return
	}
	st.knhIDs.put(id - kernelNexthopBase)
}

// releaseUnlisted frees kernel groups no route of ours names (created for
// routes whose install failed, or whose last route moved off).
func (st *state) releaseUnlisted() {
	for key, g := range st.kgroups {
		if g.listed {
			continue
		}
		delete(st.kgroups, key)
		delete(st.kgroupByID, g.id)
		st.freeKernelID(g.id, g.written)
		for _, x := range g.singles {
			st.releaseSingle(x)
		}
	}
}

// listFreed is called when no route of ours uses list key any more.
func (st *state) listFreed(key string) {
	id, ok := objListID(key)
	if !ok {
		return
	}
	if g := st.kgroupByID[id]; g != nil {
		g.listed = false
		return
	}
	if st.leftoverNH[id] {
		delete(st.leftoverNH, id) // a previous instance's group: now unused
		st.kdelete = append(st.kdelete, id)
		if len(st.leftoverNH) == 0 {
			st.kdelete = append(st.kdelete, st.leftoverSingles...)
			st.leftoverSingles = nil
		}
	}
}

// deleteKernelNexthops removes the objects queued for deletion: groups
// before the singles they held (routes have moved off them already).
func (st *state) deleteKernelNexthops() {
	st.releaseUnlisted()
	if len(st.kdelete) == 0 {
		return
	}
	ops := make([]route.NexthopChange, 0, len(st.kdelete))
	// Groups were queued before their singles.
	for _, id := range st.kdelete {
		ops = append(ops, route.NexthopChange{Delete: true, Nexthop: route.Nexthop{ID: id}})
	}
	for i, err := range st.opt.FIB.ApplyNexthops(ops) {
		if err != nil {
			st.log.Error("delete kernel nexthop", "id", ops[i].ID(), "err", err)
		}
	}
	st.counts.NexthopWrites += uint64(len(ops))
	for _, id := range st.kdelete {
		// Ours (a previous instance's too: new ids start above those);
		// free now that the kernel has deleted them (or never had them).
		if id > kernelNexthopBase {
			st.knhIDs.put(id - kernelNexthopBase)
		}
	}
	st.kdelete = st.kdelete[:0]
}

// kernelLinkDown records that the kernel deleted our nexthops on ifindex
// and shrank or deleted their groups.
func (st *state) kernelLinkDown(ifindex int) {
	for _, x := range st.ksingles {
		if x.nh.Ifindex == ifindex {
			x.written = false
		}
	}
	for _, g := range st.kgroups {
		if slices.ContainsFunc(g.singles, func(x *ksingle) bool { return x.nh.Ifindex == ifindex }) {
			g.written = false
		}
	}
}

// adoptLeftoverNexthops takes the ids of nexthop objects a previous
// instance left: new ids start above them, and they are deleted once no
// route uses them (at the latest when the stale routes are swept).
func (st *state) adoptLeftoverNexthops() {
	singles, groups, err := st.opt.FIB.Nexthops()
	if err != nil {
		st.log.Error("read kernel nexthops", "err", err)
		return
	}
	st.leftoverMembers, st.leftoverSingle = map[uint32][]uint32{}, map[uint32]route.NextHop{}
	for _, g := range groups {
		st.leftoverNH[g.ID] = true
		st.leftoverMembers[g.ID] = g.Members
	}
	for _, s := range singles {
		st.leftoverSingles = append(st.leftoverSingles, s.ID)
		st.leftoverSingle[s.ID] = route.NextHop{Gateway: s.Gateway, Ifindex: s.Ifindex}
	}
	for id := range st.leftoverNH {
		if id >= kernelNexthopBase {
			st.knhIDs.next = max(st.knhIDs.next, id-kernelNexthopBase)
		}
	}
	for _, id := range st.leftoverSingles {
		if id >= kernelNexthopBase {
			st.knhIDs.next = max(st.knhIDs.next, id-kernelNexthopBase)
		}
	}
}

// sweepLeftoverNexthops deletes the previous instance's objects no route
// uses: its groups, then its singles.
func (st *state) sweepLeftoverNexthops() {
	used := map[uint32]bool{}
	for _, l := range st.ourLists.byID {
		if id, ok := objListID(l.key); ok {
			used[id] = true
		}
	}
	for id := range st.leftoverNH {
		if !used[id] {
			st.kdelete = append(st.kdelete, id)
			delete(st.leftoverNH, id)
		}
	}
	if len(st.leftoverNH) == 0 {
		st.kdelete = append(st.kdelete, st.leftoverSingles...)
		st.leftoverSingles = nil
	}
	st.deleteKernelNexthops()
}

// routeNHID returns the kernel group to install s's routes with when
// they go via nhs, or 0 to install them plainly (no group, or one that
// could not be written as wanted).
func (st *state) routeNHID(s *bgpSet, nhs []route.NextHop) uint32 {
	if !usesKernelGroup(s) {
		return 0
	}
	g := st.kgroups[s.key]
	if g == nil || !g.written || !slices.Equal(g.writtenNHs(), nhs) {
		return 0
	}
	return g.id
}

// usesKernelGroup reports whether s's routes go by a kernel group: not
// with a backup (see above), nor blackholes (no next hops).
func usesKernelGroup(s *bgpSet) bool {
	return s != nil && len(s.backup) == 0 && !s.blackhole && !s.connected && !s.policy
}

func (g *kgroup) writtenNHs() []route.NextHop {
	out := make([]route.NextHop, len(g.singles))
	for i, x := range g.singles {
		out[i] = x.nh
	}
	return out
}

// oursNHID is the kernel group a list of ours names (0: none).
func oursNHID(l *nhList) uint32 {
	if l == nil {
		return 0
	}
	id, _ := objListID(l.key)
	return id
}
