package sync

import (
	"net/netip"
	"slices"
	"time"

	"github.com/gaissmai/bart"

	"github.com/xdprouter/xdprouter/route"
)

// kernelEvent folds one kernel event (see fib.Watcher) into the inputs.
func (st *state) kernelEvent(ev any) {
	switch ev := ev.(type) {
	case *route.Snapshot:
		if st.opt.MirrorTables != nil {
			s := *ev
			s.Routes, s.Ours = st.mirroredOnly(s.Routes), st.mirroredOnly(s.Ours)
			ev = &s
		}
		st.snapshot(ev)
	case route.RouteResync:
		if st.haveSnapshot {
			st.replaceRoutes(st.mirroredOnly(ev.Routes), st.mirroredOnly(ev.Ours))
		}
	case route.RouteEvent:
		if !st.mirrored(ev.Route.Key().Table) {
			return // the kernel's alone (fib.mirror-tables)
		}
		if ev.Ours && st.isBGPTable(ev.Route.Key().Table) {
			st.ourRouteEvent(ev)
			return
		}
		if ev.Ours {
			st.foreignOurs(ev.Route)
		}
		st.kernelRoute(ev.Route, ev.Deleted, ev.Replace)
	case route.RuleSet:
		st.setRules(ev.Rules)
	case *route.RuleSet:
		st.setRules(ev.Rules)
	case route.NeighEvent:
		st.neighbor(ev.Neighbor, ev.Deleted)
	case route.LinkEvent:
		st.link(ev.Link, ev.Deleted)
	case route.AddrEvent:
		st.addr(ev.Addr, ev.Deleted)
	case peerDropped:
		st.peerDown[ev.addr] = st.clock()
		st.groupsDirty = true
	case sweepRequest:
		st.sweepRequested()
	case policyNextHops:
		st.setPolicyNextHops(ev.nhs)
	}
	if st.connDirty {
		st.syncConnected()
		st.policyDirty = st.policyDirty || len(st.policyNH) > 0
	}
	if st.policyDirty && st.haveSnapshot {
		st.syncPolicy()
	}
}

// peerSeen clears the dropped mark of neighbors that send paths again.
// Paths from before the drop may still be queued: the mark holds for
// dropSettle first (until then the backups forward, which is safe).
func (st *state) peerSeen(peers ...netip.Addr) {
	if len(st.peerDown) == 0 {
		return
	}
	now := st.clock()
	for _, p := range peers {
		if at, ok := st.peerDown[p]; ok && now.Sub(at) >= dropSettle {
			delete(st.peerDown, p)
			st.groupsDirty = true
		}
	}
}

const dropSettle = time.Second

// snapshot replaces all kernel-derived inputs. On the first one, the routes
// of ours already in the kernel become the applied state (nothing is
// rewritten that is already right) and are marked stale until confirmed.
func (st *state) snapshot(s *route.Snapshot) {
	first := !st.haveSnapshot
	st.haveSnapshot = true
	if first && st.opt.Adopt != nil {
		st.adoptXDP(st.opt.Adopt)
		st.opt.Adopt = nil
		defer st.adoptedNextHopsCheck()
	}
	st.setRules(s.Rules)
	if first {
		st.rulesDirty, st.rulesChanged = true, true // XDP gets the rules once, whatever they are
	}
	for p, e := range st.entries.all() {
		if e.localRefs() > 0 {
			e.addLocalRef(-int(e.localRefs()))
			st.markDirty(p)
		}
	}
	st.addrs = map[route.Addr]struct{}{}
	oldLinks := st.links
	st.links = map[int]route.Link{}
	for _, l := range s.Links {
		st.link(l, false)
	}
	for idx := range oldLinks {
		if _, ok := st.links[idx]; !ok {
			st.groupsDirty = true
		}
	}
	for _, a := range s.Addrs {
		st.addr(a, false)
	}
	// Neighbors as a diff: entries still there keep forwarding throughout.
	seen := make(map[neighKey]bool, len(s.Neighbors))
	for _, n := range s.Neighbors {
		seen[neighKey{n.Ifindex, n.Addr}] = true
		st.neighbor(n, false)
	}
	for k := range st.neighs {
		if !seen[k] {
			st.neighbor(route.Neighbor{Ifindex: k.ifindex, Addr: k.addr}, true)
		}
	}
	if !first {
		st.replaceRoutes(s.Routes, s.Ours)
		return
	}
	for _, r := range s.Routes {
		st.kernelRoute(r, false, false)
	}
	if st.opt.NexthopObjects {
		st.adoptLeftoverNexthops()
	}
	for _, r := range s.Ours {
		if !st.isBGPTable(r.Key().Table) {
			st.foreignOurs(r)
			st.kernelRoute(r, false, false)
			continue
		}
		if r.Metric != st.opt.Metric {
			// Ours, from a run with another fib.metric: removed with the
			// other leftovers.
			st.leftovers = append(st.leftovers, r)
			continue
		}
		e := st.entry(r.Key())
		if e.ours != 0 {
			continue // two of ours with one metric cannot be: keep the first
		}
		switch {
		case r.Kind == route.Blackhole:
			e.ours = st.ourLists.getKey(blackholeListKey, nil)
		case r.NHID != 0:
			e.ours = st.ourLists.getKey(objListKey(r.NHID), r.NextHops)
		default:
			e.ours = st.ourLists.get(r.NextHops)
		}
		st.setStale(e, true)
		st.countFIB(r.Prefix, 1)
		st.markDirty(r.Key()) // mirrored into XDP as it is until confirmed
	}
	if st.opt.StaleAfter == 0 || st.sweepWanted {
		st.sweepWanted = false
		st.sweepStale()
	}
}

// replaceRoutes makes routes (the kernel's own) and ours the complete route
// state of every table, as a diff: only keys whose routes changed are
// re-examined. Our routes the kernel no longer has are forgotten, so the
// diff reinstalls them where still wanted. Ours in other tables than ours
// count as the kernel's own (see foreignOurs).
func (st *state) replaceRoutes(routes, ours []route.Route) {
	byPrefix := make(map[route.TablePrefix][]route.Route, len(routes))
	for _, r := range routes {
		byPrefix[r.Key()] = append(byPrefix[r.Key()], r)
	}
	have := make(map[route.TablePrefix]bool, len(ours))
	for _, r := range ours {
		switch {
		case !st.isBGPTable(r.Key().Table):
			st.foreignOurs(r)
			byPrefix[r.Key()] = append(byPrefix[r.Key()], r)
		case r.Metric == st.opt.Metric:
			have[r.Key()] = true
		}
	}
	for p, e := range st.entries.all() {
		if _, ok := byPrefix[p]; !ok && len(e.kernelRoutes()) > 0 {
			st.setKernelRoutes(p, e, nil)
		}
	}
	for p, rs := range byPrefix {
		e := st.entry(p)
		if !slices.EqualFunc(e.kernelRoutes(), rs, sameRoute) {
			st.setKernelRoutes(p, e, rs)
		}
	}
	for p, e := range st.entries.all() {
		if e.ours != 0 && !have[p] {
			st.forgetOurs(p, e)
		}
	}
}

// foreignOurs notes a route of our protocol in a table that is not a BGP
// table (fib.table or a VRF's): left by an instance configured with
// another fib.table or [[vrf]]s. It is not removed here: it is mirrored
// like the kernel's own routes of its table (the kernel forwards by it),
// and logged once per table.
func (st *state) foreignOurs(r route.Route) {
	t := r.Key().Table
	if st.foreignTables[t] {
		return
	}
	st.foreignTables[t] = true
	st.log.Warn("routes of xdprouterd's protocol in another kernel table (left by an instance with another fib.table?): "+
		"mirrored as kernel routes, not removed", "table", t, "fib_table", st.table, "prefix", r.Prefix)
}

func (st *state) setKernelRoutes(p route.TablePrefix, e *entry, rs []route.Route) {
	if slices.ContainsFunc(e.kernelRoutes(), isConnected) || slices.ContainsFunc(rs, isConnected) {
		st.connectedChanged = true
	}
	e.setKernelRoutes(rs)
	st.kernelRoutesSet(p, e)
}

func sameRoute(a, b route.Route) bool {
	return a.Kind == b.Kind && a.Metric == b.Metric && a.Protocol == b.Protocol && slices.Equal(a.NextHops, b.NextHops)
}

// sweepStale lets the diff delete what a previous instance installed and
// nobody wants any more.
func (st *state) sweepStale() {
	for p, e := range st.entries.all() {
		if e.isStale() {
			st.setStale(e, false)
			st.markDirty(p)
		}
	}
	if st.opt.NexthopObjects {
		st.sweepLeftoverNexthops()
	}
	st.sweepAdopted()
	if len(st.leftovers) > 0 {
		ops := make([]route.Change, len(st.leftovers))
		for i, r := range st.leftovers {
			ops[i] = route.Change{Delete: true, Route: r}
		}
		for i, err := range st.opt.FIB.Apply(ops) {
			if err != nil {
				st.log.Error("remove leftover route", "prefix", st.leftovers[i].Prefix, "metric", st.leftovers[i].Metric, "err", err)
			}
		}
		st.leftovers = nil
	}
}

func (st *state) ourRouteEvent(ev route.RouteEvent) {
	if !ev.Deleted || ev.Route.Metric != st.opt.Metric {
		return // our own write echoed back
	}
	// The kernel removed one of our routes (e.g. its interface went down):
	// forget it so the diff reinstalls it if it is still wanted.
	if e := st.entries.get(ev.Route.Key()); e != nil {
		st.forgetOurs(ev.Route.Key(), e)
	}
}

// kernelRoute adds, replaces or deletes one of the kernel's routes of a
// prefix in its table. A prefix may have several: one per metric, and in
// IPv6 several of one metric through different next hops (fe80::/64 on
// every port, a reject route and a unicast one added with `ip -6 route
// append`). A route is replaced by one of the same metric whose next hops
// are equal or, for IPv6, overlap (a multipath route changing: the kernel
// announces a new sibling with the whole route); IPv4 has one route per
// metric. An IPv6 replace (the kernel's NLM_F_REPLACE: replace) takes the
// place of the route the kernel replaced, whatever its next hops (see
// replacedIPv6). A delete removes the route with the same metric and next
// hops, or, in IPv6, those next hops from the route holding them.
func (st *state) kernelRoute(r route.Route, deleted, replace bool) {
	key := r.Key()
	e := st.entry(key)
	v4 := r.Prefix.Addr().Is4()
	ks := e.kernelRoutes()
	var i int
	if replace && !deleted && !v4 {
		i = replacedIPv6(ks, r)
	} else {
		i = slices.IndexFunc(ks, func(k route.Route) bool {
			return k.Metric == r.Metric && (v4 || slices.Equal(k.NextHops, r.NextHops) || overlap(k.NextHops, r.NextHops))
		})
	}
	switch {
	case deleted && i < 0:
		st.gc(key, e)
		return
	case deleted && !v4 && len(r.NextHops) > 0 && !slices.Equal(ks[i].NextHops, r.NextHops):
		// One path of a multipath route went. The next-hop list is
		// copied: a group may hold it as its members.
		k := &ks[i]
		k.NextHops = slices.DeleteFunc(slices.Clone(k.NextHops), func(nh route.NextHop) bool { return slices.Contains(r.NextHops, nh) })
		if len(k.NextHops) == 0 {
			ks = slices.Delete(ks, i, i+1)
		}
	case deleted:
		ks = slices.Delete(ks, i, i+1)
	case i >= 0:
		ks[i] = r
	default:
		ks = append(ks, r)
	}
	e.setKernelRoutes(ks)
	st.kernelRoutesSet(key, e)
	if r.Protocol == protoKernel {
		st.connectedChanged = true
	}
}

// replacedIPv6 is the index in ks of the route an IPv6 replace by r
// replaced, chosen as the kernel does (fib6_add_rt2node): the first of r's
// metric that can be a multipath sibling (see ecmpCapable) if r can, or
// cannot if r cannot; failing that, the first of r's metric. The replaced
// route goes with all its siblings: here, the one multipath route. -1 if
// none (the replace added r).
func replacedIPv6(ks []route.Route, r route.Route) int {
	first := -1
	for i := range ks {
		if ks[i].Metric != r.Metric {
			continue
		}
		if ecmpCapable(ks[i]) == ecmpCapable(r) {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return first
}

// ecmpCapable approximates the kernel's rt6_qualify_for_ecmp: a unicast
// route through a gateway, not learned from router advertisements (nor by
// a nexthop object, which kernel routes do not show). Kernel-only routes
// do not show their next hops: they count as not capable.
func ecmpCapable(r route.Route) bool {
	return r.Kind == route.Unicast && r.NHID == 0 && r.Protocol != protoRA &&
		len(r.NextHops) > 0 && !r.NextHops[0].Connected()
}

func overlap(a, b []route.NextHop) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// protoKernel is RTPROT_KERNEL: routes the kernel made for an address.
const protoKernel = 2

// protoRA is RTPROT_RA: routes learned from router advertisements.
const protoRA = 9

func isConnected(r route.Route) bool { return r.Protocol == protoKernel }

func (st *state) link(l route.Link, deleted bool) {
	old, had := st.links[l.Index]
	if deleted || !had || old.Up != l.Up || old.Name != l.Name {
		st.connDirty = true
	}
	if (deleted && had) || (!deleted && (!had || old.Name != l.Name)) {
		st.rulesDirty = true // rules name interfaces: their indexes may differ
	}
	if deleted {
		delete(st.links, l.Index)
		st.groupsDirty = true
		if had && st.hasZonedSets() {
			st.resolveDirty, st.resolveAll = true, true // link-local next hops by link name
		}
		st.kernelLinkDown(l.Index)
		if had && st.ports[old.Name] {
			if err := st.opt.Datapath.DeleteInterface(l.Index); err != nil {
				st.log.Error("delete interface", "ifname", old.Name, "err", err)
			}
			if st.opt.OnPort != nil {
				st.opt.OnPort(old.Name, l.Index, false)
			}
		}
		return
	}
	st.links[l.Index] = l
	if st.ports[l.Name] && (!had || old.Name != l.Name) && st.opt.OnPort != nil {
		st.opt.OnPort(l.Name, l.Index, true) // a port (re)appeared: XDP goes on it
	}
	if !had || old.Up != l.Up {
		st.groupsDirty = true
	}
	if (!had || old.Up != l.Up || old.Name != l.Name) && st.hasZonedSets() {
		st.resolveDirty, st.resolveAll = true, true // link-local next hops by link name
	}
	if had && old.Up && !l.Up {
		st.kernelLinkDown(l.Index) // the kernel deleted our nexthops on it
	}
	if l.Up && (!had || !old.Up) {
		// Link events and route events arrive on different sockets: a
		// gateway added while the link looked down is resolved now.
		for _, x := range st.nhs {
			if x.nh.Ifindex == l.Index && !x.nh.Connected() && x.mac == "" {
				st.resolveNeighbor(x.nh.Ifindex, x.nh.Gateway)
			}
		}
	}
	if st.ports[l.Name] && (!had || old.MTU != l.MTU || string(old.MAC) != string(l.MAC) || old.Name != l.Name) {
		if err := st.opt.Datapath.SetInterface(l.Index, l.MAC, l.MTU); err != nil {
			st.log.Error("set interface", "ifname", l.Name, "err", err)
		}
	}
}

// addr adds or removes an address of the router: a local entry of its
// host prefix in the main table (XDP applies local entries to every
// table).
func (st *state) addr(a route.Addr, deleted bool) {
	host := mainKey(netip.PrefixFrom(a.Prefix.Addr(), a.Prefix.Addr().BitLen()))
	_, had := st.addrs[a]
	switch {
	case deleted && had:
		delete(st.addrs, a)
		if e := st.entries.get(host); e != nil {
			e.addLocalRef(-1)
		}
	case !deleted && !had:
		st.addrs[a] = struct{}{}
		st.entry(host).addLocalRef(1)
	default:
		return
	}
	st.markDirty(host)
	st.connectedChanged = true
	st.connDirty = true
	// A next hop anywhere may now be (or no longer be) one of ours.
	st.resolveDirty, st.resolveAll = true, true
}

func (st *state) neighbor(n route.Neighbor, deleted bool) {
	k := neighKey{n.Ifindex, n.Addr}
	old, had := st.neighs[k]
	if deleted || !n.Valid {
		if !had {
			return
		}
		delete(st.neighs, k)
		if err := st.opt.Datapath.DeleteNeighbor(n.Ifindex, n.Addr); err != nil {
			st.log.Error("delete neighbor", "addr", n.Addr, "err", err)
		}
	} else {
		st.neighs[k] = n
		if had && string(old.MAC) == string(n.MAC) {
			return // a state change only (e.g. reachable → stale)
		}
		if err := st.opt.Datapath.SetNeighbor(n.Ifindex, n.Addr, n.MAC); err != nil {
			st.log.Error("set neighbor", "addr", n.Addr, "err", err)
		}
	}
	if st.policyAddrs[n.Addr] {
		st.policyDirty = true
	}
	// A gateway next hop using this neighbor gets the new MAC; its groups
	// may gain or lose it.
	if x := st.nhs[route.NextHop{Gateway: n.Addr, Ifindex: n.Ifindex}]; x != nil {
		st.writeNextHop(x)
		st.groupsDirty = true
	}
}

// setBGP is setBGPIn for the global instance's table.
func (st *state) setBGP(pfx netip.Prefix, nhs, backup []netip.Addr, peer netip.Addr, blackhole bool) {
	st.setBGPIn(st.ourKey(pfx), nhs, backup, peer, blackhole)
}

// setBGPIn records the best path(s) of p (in its BGP table), learned from
// peer, and the backup next hops; empty nhs withdraws. A blackhole route
// (RTBH) is installed as a blackhole: its next hops are not used.
func (st *state) setBGPIn(p route.TablePrefix, nhs, backup []netip.Addr, peer netip.Addr, blackhole bool) {
	if !st.isBGPTable(p.Table) {
		// A routing instance sync was not told about (Options.Tables):
		// its routes are ours from now on.
		st.log.Warn("BGP routes for a table not configured as a BGP table: installed there", "table", p.Table)
		st.bgpTables[p.Table] = true
		st.kernelRoutes[p.Table] = new(bart.Table[*entry])
		for q, e := range st.entries.all() {
			if q.Table == p.Table && len(e.kernelRoutes()) > 0 {
				st.kernelRoutesSet(q, e)
			}
		}
	}
	e := st.entry(p)
	var id uint32
	switch {
	case len(nhs) > 0 && blackhole:
		id = st.getBlackholeSet(peer)
	case len(nhs) > 0:
		id = st.getSetIn(p.Table, nhs, backup, peer)
	}
	if _, conn := st.connected[p]; conn {
		// The connected route of ours wins: the BGP set waits aside.
		if old := st.connBGP[p]; old != 0 {
			st.putSet(old)
		}
		if id != 0 {
			st.connBGP[p] = id
		} else {
			delete(st.connBGP, p)
		}
		return
	}
	if e.bgpSet != 0 {
		st.putSet(e.bgpSet)
	}
	e.bgpSet = id
	st.markDirty(p)
}
