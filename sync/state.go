package sync

import (
	"log/slog"
	"net/netip"
	"slices"
	"strconv"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/route"
)

// entry is everything known about one prefix: its inputs and what is
// applied in each sink.
type entry struct {
	kernel []route.Route // the kernel's routes (not ours), one per metric
	local  uint8         // number of interfaces holding this host address
	bgp    uint32        // interned BGP next-hop set; 0: none

	xdp   xdpApplied
	fib   uint32 // interned next-hop list installed in the kernel; 0: none
	fibM  int    // metric of the installed kernel route
	stale bool   // installed by a previous instance, not yet confirmed
}

type xdpApplied struct {
	on    bool
	typ   bpf.RouteType
	group *group
}

// group is a next-hop group shared by routes. Kernel routes' groups hold a
// fixed next-hop list; a BGP set's group holds the set's current resolution,
// so re-resolution rewrites one group, not its routes.
type group struct {
	id      uint32
	key     string
	members []route.NextHop
	refs    int
	nhs     []*nexthop // acquired members
	written []uint32   // what the XDP map holds
}

type nexthop struct {
	id   uint32
	nh   route.NextHop
	refs int
	mac  string // written MAC ("" = unresolved)
}

// bgpSet is an interned set of BGP next hops with its resolution.
type bgpSet struct {
	id       uint32
	key      string // the addresses: identity that outlives the id
	addrs    []netip.Addr
	refs     int
	resolved []route.NextHop
}

type state struct {
	opt Options
	log *slog.Logger

	haveSnapshot bool
	entries      map[netip.Prefix]*entry
	dirty        map[netip.Prefix]struct{}
	failed       map[netip.Prefix]struct{}

	links  map[int]route.Link
	ports  map[string]bool
	addrs  map[route.Addr]struct{}
	neighs map[neighKey]route.Neighbor

	sets     map[string]*bgpSet
	setsByID map[uint32]*bgpSet
	setIDs   ids

	lists   intern // next-hop lists installed in the kernel
	groups  map[string]*group
	groupID ids
	nhs     map[route.NextHop]*nexthop
	nhID    ids

	foreign []route.Route // ours with another metric, left by an earlier run

	resolveDirty     bool // kernel routes changed: re-resolve BGP sets
	groupsDirty      bool // links or neighbors changed: recompute group members
	connectedChanged bool

	counts Counts
}

type neighKey struct {
	ifindex int
	addr    netip.Addr
}

func newState(opt Options, log *slog.Logger) *state {
	st := &state{
		opt: opt, log: log,
		entries:  map[netip.Prefix]*entry{},
		dirty:    map[netip.Prefix]struct{}{},
		failed:   map[netip.Prefix]struct{}{},
		links:    map[int]route.Link{},
		ports:    map[string]bool{},
		addrs:    map[route.Addr]struct{}{},
		neighs:   map[neighKey]route.Neighbor{},
		sets:     map[string]*bgpSet{},
		setsByID: map[uint32]*bgpSet{},
		groups:   map[string]*group{},
		nhs:      map[route.NextHop]*nexthop{},
		lists:    newIntern(),
	}
	for _, p := range opt.Ports {
		st.ports[p] = true
	}
	return st
}

func (st *state) entry(p netip.Prefix) *entry {
	e := st.entries[p]
	if e == nil {
		e = &entry{}
		st.entries[p] = e
	}
	return e
}

func (st *state) markDirty(p netip.Prefix) { st.dirty[p] = struct{}{} }

// kernelEvent folds one fib.Watcher event into the inputs.
func (st *state) kernelEvent(ev any) {
	switch ev := ev.(type) {
	case *fib.Snapshot:
		st.snapshot(ev)
	case fib.RouteEvent:
		if ev.Ours {
			st.ourRouteEvent(ev)
			return
		}
		st.kernelRoute(ev.Route, ev.Deleted)
	case fib.NeighEvent:
		st.neighbor(ev.Neighbor, ev.Deleted)
	case fib.LinkEvent:
		st.link(ev.Link, ev.Deleted)
	case fib.AddrEvent:
		st.addr(ev.Addr, ev.Deleted)
	}
}

// snapshot replaces all kernel-derived inputs. On the first one, the routes
// of ours already in the kernel become the applied state (nothing is
// rewritten that is already right) and are marked stale until confirmed.
func (st *state) snapshot(s *fib.Snapshot) {
	first := !st.haveSnapshot
	st.haveSnapshot = true
	for p, e := range st.entries {
		if len(e.kernel) > 0 || e.local > 0 {
			e.kernel, e.local = nil, 0
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
	for _, r := range s.Routes {
		st.kernelRoute(r, false)
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
	ours := map[netip.Prefix]route.Route{}
	for _, r := range s.Ours {
		ours[r.Prefix] = r
	}
	if first {
		for p, r := range ours {
			if r.Metric != st.opt.Metric {
				// Ours, from a run with another fib.metric: removed with
				// the other leftovers.
				st.foreign = append(st.foreign, r)
				continue
			}
			e := st.entry(p)
			e.fib, e.fibM, e.stale = st.lists.get(r.NextHops), r.Metric, true
			st.countFIB(p, 1)
		}
		if st.opt.StaleAfter == 0 {
			st.sweepStale()
		}
		return
	}
	// Resync: forget installs the kernel no longer has.
	for p, e := range st.entries {
		if r, ok := ours[p]; e.fib != 0 && (!ok || r.Metric != e.fibM) {
			st.lists.put(e.fib)
			e.fib = 0
			st.countFIB(p, -1)
			st.markDirty(p)
		}
	}
}

// sweepStale lets the diff delete what a previous instance installed and
// nobody wants any more.
func (st *state) sweepStale() {
	for p, e := range st.entries {
		if e.stale {
			e.stale = false
			st.markDirty(p)
		}
	}
	if len(st.foreign) > 0 {
		ops := make([]route.Change, len(st.foreign))
		for i, r := range st.foreign {
			ops[i] = route.Change{Delete: true, Route: r}
		}
		for i, err := range st.opt.FIB.Apply(ops) {
			if err != nil {
				st.log.Error("remove leftover route", "prefix", st.foreign[i].Prefix, "metric", st.foreign[i].Metric, "err", err)
			}
		}
		st.foreign = nil
	}
}

func (st *state) ourRouteEvent(ev fib.RouteEvent) {
	if !ev.Deleted || ev.Route.Metric != st.opt.Metric {
		return // our own write echoed back
	}
	// The kernel removed one of our routes (e.g. its interface went down):
	// forget it so the diff reinstalls it if it is still wanted.
	if e := st.entries[ev.Route.Prefix]; e != nil && e.fib != 0 {
		st.lists.put(e.fib)
		e.fib = 0
		st.countFIB(ev.Route.Prefix, -1)
		st.markDirty(ev.Route.Prefix)
	}
}

func (st *state) kernelRoute(r route.Route, deleted bool) {
	e := st.entry(r.Prefix)
	i := slices.IndexFunc(e.kernel, func(k route.Route) bool { return k.Metric == r.Metric })
	switch {
	case deleted && i >= 0:
		e.kernel = slices.Delete(e.kernel, i, i+1)
	case deleted:
		return
	case i >= 0:
		e.kernel[i] = r
	default:
		e.kernel = append(e.kernel, r)
	}
	st.markDirty(r.Prefix)
	st.resolveDirty = true
	if r.Protocol == protoKernel {
		st.connectedChanged = true
	}
}

// protoKernel is RTPROT_KERNEL: routes the kernel made for an address.
const protoKernel = 2

func (st *state) link(l route.Link, deleted bool) {
	old, had := st.links[l.Index]
	if deleted {
		delete(st.links, l.Index)
		st.groupsDirty = true
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

func (st *state) addr(a route.Addr, deleted bool) {
	host := netip.PrefixFrom(a.Prefix.Addr(), a.Prefix.Addr().BitLen())
	_, had := st.addrs[a]
	switch {
	case deleted && had:
		delete(st.addrs, a)
		if e := st.entries[host]; e != nil && e.local > 0 {
			e.local--
		}
	case !deleted && !had:
		st.addrs[a] = struct{}{}
		st.entry(host).local++
	default:
		return
	}
	st.markDirty(host)
	st.connectedChanged = true
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
	// A gateway next hop using this neighbor gets the new MAC; its groups
	// may gain or lose it.
	if x := st.nhs[route.NextHop{Gateway: n.Addr, Ifindex: n.Ifindex}]; x != nil {
		st.writeNextHop(x)
		st.groupsDirty = true
	}
}

// setBGP records the best path(s) of p; empty nhs withdraws.
func (st *state) setBGP(p netip.Prefix, nhs []netip.Addr) {
	e := st.entry(p)
	var id uint32
	if len(nhs) > 0 {
		id = st.getSet(nhs)
	}
	if e.bgp != 0 {
		st.putSet(e.bgp)
	}
	e.bgp = id
	st.markDirty(p)
}

func (st *state) getSet(addrs []netip.Addr) uint32 {
	addrs = slices.Clone(addrs)
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	var key []byte
	for _, a := range addrs {
		key = append(key, a.AsSlice()...)
		key = append(key, '|')
	}
	s := st.sets[string(key)]
	if s == nil {
		s = &bgpSet{id: st.setIDs.get(), key: string(key), addrs: addrs}
		s.resolved = st.resolve(addrs)
		st.sets[s.key] = s
		st.setsByID[s.id] = s
	}
	s.refs++
	return s.id
}

func (st *state) putSet(id uint32) {
	s := st.setsByID[id]
	if s == nil {
		return
	}
	if s.refs--; s.refs > 0 {
		return
	}
	delete(st.sets, s.key)
	delete(st.setsByID, id)
	st.setIDs.put(id)
}

// resolve finds, for each BGP next hop, the kernel route that reaches it
// (longest match, lowest metric, unicast with live next hops): a connected
// route makes the address itself the gateway; a route via gateways lends
// them. BGP routes never resolve through BGP routes.
func (st *state) resolve(addrs []netip.Addr) []route.NextHop {
	var out []route.NextHop
	for _, a := range addrs {
		for bits := a.BitLen(); bits >= 0; bits-- {
			p, _ := a.Prefix(bits)
			e := st.entries[p]
			if e == nil {
				continue
			}
			r := bestKernel(e)
			if r == nil || (r.Kind == route.Unicast && len(r.NextHops) == 0) {
				continue // no route, or all its next hops dead: shorter match
			}
			if r.Kind != route.Unicast {
				break // blackhole, unreachable, kernel-only: unresolvable, as in the kernel
			}
			for _, nh := range r.NextHops {
				if nh.Connected() {
					nh.Gateway = a
				}
				out = append(out, nh)
			}
			break
		}
	}
	return route.SortNextHops(out)
}

func bestKernel(e *entry) *route.Route {
	var best *route.Route
	for i := range e.kernel {
		if best == nil || e.kernel[i].Metric < best.Metric {
			best = &e.kernel[i]
		}
	}
	return best
}

// desired is what one prefix should look like in both sinks.
type desired struct {
	xdpOn    bool
	typ      bpf.RouteType
	groupKey string
	members  []route.NextHop
	fibNHs   []route.NextHop // BGP route to install in the kernel; nil: none
	fibOn    bool
	source   string
	metric   int
	shadowed string
}

func (st *state) desire(p netip.Prefix, e *entry) desired {
	var d desired
	k := bestKernel(e)
	var set *bgpSet
	if e.bgp != 0 {
		set = st.setsByID[e.bgp]
	}
	bgpUsable := set != nil && len(set.resolved) > 0
	if bgpUsable {
		// Never replace an operator's route of the same metric.
		clash := slices.ContainsFunc(e.kernel, func(r route.Route) bool { return r.Metric == st.opt.Metric })
		if clash {
			d.shadowed = "kernel route with metric " + strconv.Itoa(st.opt.Metric)
		} else {
			d.fibOn, d.fibNHs = true, set.resolved
		}
	}
	switch {
	case e.local > 0:
		d.xdpOn, d.typ, d.source = true, bpf.RouteLocal, "local"
	case k != nil && (!bgpUsable || k.Metric <= st.opt.Metric):
		d.xdpOn, d.source, d.metric = true, "kernel", k.Metric
		switch k.Kind {
		case route.Blackhole:
			d.typ = bpf.RouteBlackhole
		case route.Unreachable:
			d.typ = bpf.RouteUnreachable
		case route.KernelOnly:
			d.typ = bpf.RouteKernel
		default:
			d.typ = bpf.RouteUnicast
			d.members = k.NextHops
			d.groupKey = "k" + route.Key(k.NextHops)
		}
	case bgpUsable:
		d.xdpOn, d.typ, d.source, d.metric = true, bpf.RouteUnicast, "bgp", st.opt.Metric
		d.members = set.resolved
		d.groupKey = setGroupKey(set)
	}
	return d
}

func (st *state) countXDP(p netip.Prefix, n int) {
	if p.Addr().Is4() {
		st.counts.XDP4 += n
	} else {
		st.counts.XDP6 += n
	}
}

func (st *state) countFIB(p netip.Prefix, n int) {
	if p.Addr().Is4() {
		st.counts.FIB4 += n
	} else {
		st.counts.FIB6 += n
	}
}

func (st *state) retryFailed() {
	for p := range st.failed {
		st.markDirty(p)
	}
	clear(st.failed)
}

// refreshNeighbors asks the kernel to resolve every gateway in use that has
// no usable entry, and to re-confirm the stale entries XDP forwards with
// (its traffic never confirms them). Reachable entries need nothing, and
// static ones (permanent, noarp) must not be touched: a resolve request
// would turn them into incomplete ones.
func (st *state) refreshNeighbors() {
	for _, x := range st.nhs {
		if x.nh.Connected() || !st.linkUp(x.nh.Ifindex) {
			continue
		}
		if _, ok := st.neighs[neighKey{x.nh.Ifindex, x.nh.Gateway}]; !ok {
			st.resolveNeighbor(x.nh.Ifindex, x.nh.Gateway)
		}
	}
	for k, n := range st.neighs {
		if n.Stale && st.isPort(k.ifindex) && st.linkUp(k.ifindex) {
			st.resolveNeighbor(k.ifindex, k.addr)
		}
	}
}

func (st *state) resolveNeighbor(ifindex int, a netip.Addr) {
	if err := st.opt.FIB.Resolve(ifindex, a); err != nil {
		st.log.Debug("resolve neighbor", "addr", a, "ifindex", ifindex, "err", err)
	}
}

func (st *state) linkUp(ifindex int) bool { return st.links[ifindex].Up }

func (st *state) isPort(ifindex int) bool {
	l, ok := st.links[ifindex]
	return ok && st.ports[l.Name]
}

// connectedPrefixes are the subnets of the router's addresses (not
// loopback or link-local), for BGP redistribution.
func (st *state) connectedPrefixes() []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for a := range st.addrs {
		ad := a.Prefix.Addr()
		if ad.IsLoopback() || ad.IsLinkLocalUnicast() {
			continue
		}
		p := a.Prefix.Masked()
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}

func (st *state) routeInfos(filter netip.Prefix) []RouteInfo {
	var out []RouteInfo
	for p, e := range st.entries {
		if filter.IsValid() && !filter.Overlaps(p) {
			continue
		}
		d := st.desire(p, e)
		if !d.xdpOn && e.bgp == 0 && !e.xdp.on && e.fib == 0 {
			continue
		}
		ri := RouteInfo{Prefix: p, Source: d.source, Metric: d.metric, InXDP: e.xdp.on, InKernel: e.fib != 0, Shadowed: d.shadowed}
		ri.Kind = kindName(d.typ)
		if e.xdp.group != nil {
			ri.Group = e.xdp.group.id
		}
		for _, nh := range d.members {
			ri.NextHops = append(ri.NextHops, st.nhString(nh))
		}
		if set := st.setsByID[e.bgp]; set != nil {
			ri.BGPNextHops = set.addrs
			ri.Unresolved = len(set.resolved) == 0
			if ri.Source == "" {
				ri.Source, ri.Kind = "bgp", "unresolved"
			}
		}
		out = append(out, ri)
	}
	slices.SortFunc(out, func(a, b RouteInfo) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	return out
}

func kindName(t bpf.RouteType) string {
	switch t {
	case bpf.RouteBlackhole:
		return "blackhole"
	case bpf.RouteUnreachable:
		return "unreachable"
	case bpf.RouteLocal:
		return "local"
	case bpf.RouteKernel:
		return "kernel-only"
	}
	return "unicast"
}

func (st *state) nhString(nh route.NextHop) string {
	dev := strconv.Itoa(nh.Ifindex)
	if l, ok := st.links[nh.Ifindex]; ok {
		dev = l.Name
	}
	if nh.Connected() {
		return "dev " + dev
	}
	return "via " + nh.Gateway.String() + " dev " + dev
}

// ids hands out small integer ids (map indexes), reusing freed ones.
// Id 0 is never used, so zero values mean "none".
type ids struct {
	next uint32
	free []uint32
}

func (i *ids) get() uint32 {
	if n := len(i.free); n > 0 {
		id := i.free[n-1]
		i.free = i.free[:n-1]
		return id
	}
	i.next++
	return i.next
}

func (i *ids) put(id uint32) { i.free = append(i.free, id) }

// intern shares identical next-hop lists (the kernel-applied state of many
// routes) by id, refcounted.
type intern struct {
	byKey map[string]uint32
	lists map[uint32]internList
	ids   ids
}

type internList struct {
	key  string
	refs int
}

func newIntern() intern {
	return intern{byKey: map[string]uint32{}, lists: map[uint32]internList{}}
}

func (in *intern) get(nhs []route.NextHop) uint32 {
	k := route.Key(nhs)
	id, ok := in.byKey[k]
	if !ok {
		id = in.ids.get()
		in.byKey[k] = id
		in.lists[id] = internList{key: k}
	}
	l := in.lists[id]
	l.refs++
	in.lists[id] = l
	return id
}

func (in *intern) put(id uint32) {
	l, ok := in.lists[id]
	if !ok {
		return
	}
	if l.refs--; l.refs > 0 {
		in.lists[id] = l
		return
	}
	delete(in.lists, id)
	delete(in.byKey, l.key)
	in.ids.put(id)
}
