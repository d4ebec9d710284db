package sync

import (
	"net/netip"
	"slices"
	"strconv"

	"github.com/gaissmai/bart"

	"github.com/xdprouter/xdprouter/route"
)

// getSet is getSetIn for the global instance's table.
func (st *state) getSet(addrs, backup []netip.Addr, peer netip.Addr) uint32 {
	return st.getSetIn(st.table, addrs, backup, peer)
}

// getSetIn returns the interned set of next hops addrs with backup (both
// may come unsorted, with repeats; backup members that are also primary
// are dropped) of BGP routes in table: they resolve through its routes,
// so a set belongs to one table.
func (st *state) getSetIn(table int, addrs, backup []netip.Addr, peer netip.Addr) uint32 {
	addrs = sortedAddrs(addrs)
	backup = slices.DeleteFunc(sortedAddrs(backup), func(a netip.Addr) bool {
		_, found := slices.BinarySearchFunc(addrs, a, netip.Addr.Compare)
		return found
	})
	var key []byte
	if table != st.table {
		key = append(key, 't')
		key = strconv.AppendInt(key, int64(table), 10)
		key = append(key, '|')
	}
	for _, a := range addrs {
		key = appendAddrKey(key, a)
	}
	if len(backup) > 0 {
		key = append(key, '/')
		for _, a := range backup {
			key = appendAddrKey(key, a)
		}
	}
	s := st.sets[string(key)]
	if s == nil {
		s = &bgpSet{id: st.setIDs.get(), key: string(key), table: table, addrs: addrs, backup: backup, peer: peer}
		s.resolved, s.why = st.resolveIn(table, addrs)
		if len(backup) > 0 {
			s.resolvedBackup, _ = st.resolveIn(table, backup)
		}
		st.sets[s.key] = s
		st.setsByID[s.id] = s
		st.admitSet(s)
	}
	s.refs++
	return s.id
}

// appendAddrKey appends a next hop to a set key: its bytes, and the zone
// of a link-local one (one address on two links is two next hops).
func appendAddrKey(key []byte, a netip.Addr) []byte {
	key = append(key, a.AsSlice()...)
	if z := a.Zone(); z != "" {
		key = append(key, '%')
		key = append(key, z...)
	}
	return append(key, '|')
}

// blackholeSetKey is the key of the blackhole set: every other set has
// at least one address, so a key that is not empty.
const blackholeSetKey = ""

// getBlackholeSet returns the set of BGP blackhole routes (RTBH): their
// next hops are not used, so all of them share one set.
func (st *state) getBlackholeSet(peer netip.Addr) uint32 {
	s := st.sets[blackholeSetKey]
	if s == nil {
		s = &bgpSet{id: st.setIDs.get(), key: blackholeSetKey, peer: peer, blackhole: true}
		st.sets[s.key] = s
		st.setsByID[s.id] = s
		st.admitSet(s)
	}
	s.refs++
	return s.id
}

func sortedAddrs(addrs []netip.Addr) []netip.Addr {
	if len(addrs) == 0 {
		return nil
	}
	addrs = slices.Clone(addrs)
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs)
}

// active is what the set's routes are installed with in the kernel: the
// primary next hops, or the backup while the primary does not resolve.
func (s *bgpSet) active() []route.NextHop {
	if len(s.resolved) > 0 {
		return s.resolved
	}
	return s.resolvedBackup
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
	if !s.overLimit {
		if st.peerSets[s.peer]--; st.peerSets[s.peer] <= 0 {
			delete(st.peerSets, s.peer)
		}
	}
}

// admitSet counts s against its peer's bound, or marks it over the limit:
// its routes are then installed in the kernel but passed to it in XDP.
// Called for new sets and, on retry, for sets over the limit.
func (st *state) admitSet(s *bgpSet) {
	limit := st.opt.MaxGroupsPerPeer
	if limit > 0 && st.peerSets[s.peer] >= limit {
		s.overLimit = true
		if !st.peerOver[s.peer] {
			st.peerOver[s.peer] = true
			st.log.Error("BGP peer's routes use more next-hop groups than allowed per peer: the rest are passed to the kernel in XDP",
				"peer", s.peer, "max", limit)
		}
		return
	}
	s.overLimit = false
	st.peerSets[s.peer]++
}

// readmitSets gives sets over their peer's limit a group where the peer
// has room again, and re-examines their routes.
func (st *state) readmitSets() {
	over := map[netip.Addr]bool{}
	var admitted map[uint32]bool
	for _, s := range st.setsByID {
		if !s.overLimit {
			continue
		}
		if st.admitSet(s); s.overLimit {
			over[s.peer] = true
			continue
		}
		if admitted == nil {
			admitted = map[uint32]bool{}
		}
		admitted[s.id] = true
	}
	for peer := range st.peerOver {
		if !over[peer] {
			delete(st.peerOver, peer)
			st.log.Info("BGP peer is within its next-hop group limit again", "peer", peer)
		}
	}
	if admitted == nil {
		return
	}
	for p, e := range st.entries.all() {
		if admitted[e.bgpSet] {
			st.markDirty(p)
		}
	}
}

// resolve is resolveIn for the global instance's table.
func (st *state) resolve(addrs []netip.Addr) (out []route.NextHop, why string) {
	return st.resolveIn(st.table, addrs)
}

// resolveIn finds, for each BGP next hop, the route of table that reaches
// it (longest match, lowest metric, unicast with live next hops): a
// connected route makes the address itself the gateway; a route via
// gateways lends them. BGP routes never resolve through BGP routes, nor
// through a default route unless Options.ResolveViaDefault. In a VRF
// table the connected routes of ours (its ports' subnets) count as the
// kernel's. A next hop that is an address of this router, or the network
// or broadcast address of a connected subnet, is never used (RFC 4271
// 9.1.2): why says so.
func (st *state) resolveIn(table int, addrs []netip.Addr) (out []route.NextHop, why string) {
	idx := st.kernelRoutes[table]
	if idx == nil {
		return nil, ""
	}
	conn := st.connIndex[table]
	minBits := 1
	if st.opt.ResolveViaDefault {
		minBits = 0
	}
	for _, a := range addrs {
		if a.Zone() != "" {
			// A link-local next hop with its link (BGP unnumbered, RFC
			// 8950): on that link while it is up, whatever the table.
			if ifx := st.linkIndex(a.Zone()); ifx != 0 && st.linkUp(ifx) {
				out = append(out, route.NextHop{Gateway: a.WithZone(""), Ifindex: ifx})
			}
			continue
		}
		if w := st.unusableNextHop(a); w != "" {
			if why == "" {
				why = w
			}
			continue
		}
		host, err := a.Prefix(a.BitLen())
		if err != nil {
			continue
		}
		// A connected route of ours (VRF) wins over kernel routes no
		// longer than it.
		cp, cidx, cok := netip.Prefix{}, 0, false
		if conn != nil {
			for p, ifx := range conn.Supernets(host) {
				if st.linkUp(ifx) {
					cp, cidx, cok = p, ifx, true
					break
				}
			}
		}
		connNH := func() {
			out = append(out, route.NextHop{Gateway: a, Ifindex: cidx})
		}
		found := false
		// Supernets yields the covering prefixes longest first.
		for p, e := range idx.Supernets(host) {
			if p.Bits() < minBits || (cok && p.Bits() <= cp.Bits()) {
				break
			}
			r := bestKernel(e)
			if r == nil || (r.Kind == route.Unicast && len(r.NextHops) == 0) {
				continue // all its next hops dead: shorter match
			}
			if r.Kind != route.Unicast {
				found = true // no next hop from it
				break        // blackhole, unreachable, kernel-only: unresolvable, as in the kernel
			}
			for _, nh := range r.NextHops {
				if nh.Connected() {
					nh.Gateway = a
				}
				out = append(out, nh)
			}
			found = true
			break
		}
		if !found && cok && cp.Bits() >= minBits {
			connNH()
		}
	}
	return route.SortNextHops(out), why
}

// linkIndex returns the index of the link named name, 0 if none.
func (st *state) linkIndex(name string) int {
	for i, l := range st.links {
		if l.Name == name {
			return i
		}
	}
	return 0
}

// hasZonedSets reports whether a BGP set has a link-local next hop with
// its link: those resolve by the link's name and state, not by routes.
func (st *state) hasZonedSets() bool {
	for _, s := range st.setsByID {
		if slices.ContainsFunc(s.addrs, isZoned) || slices.ContainsFunc(s.backup, isZoned) {
			return true
		}
	}
	return false
}

func isZoned(a netip.Addr) bool { return a.Zone() != "" }

// unusableNextHop says why a the router must not forward to a as a
// gateway, or "".
func (st *state) unusableNextHop(a netip.Addr) string {
	for ad := range st.addrs {
		p := ad.Prefix
		if p.Addr() == a {
			return "next hop " + a.String() + " is an address of this router"
		}
		if !a.Is4() || !p.Addr().Is4() || p.Bits() >= 31 || !p.Contains(a) {
			continue
		}
		net := p.Masked().Addr()
		if a == net {
			return "next hop " + a.String() + " is the network address of " + p.Masked().String()
		}
		if a == broadcast(p) {
			return "next hop " + a.String() + " is the broadcast address of " + p.Masked().String()
		}
	}
	return ""
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// bestKernel is the kernel's route of e that wins (lowest metric; of
// several with that metric, the first).
func bestKernel(e *entry) *route.Route {
	var best *route.Route
	ks := e.kernelRoutes()
	for i := range ks {
		if best == nil || ks[i].Metric < best.Metric {
			best = &ks[i]
		}
	}
	return best
}

// ambiguous reports whether several of the kernel's routes of e share the
// winning metric with different next hops: which one the kernel uses for
// a packet is not known here.
func ambiguous(e *entry, best *route.Route) bool {
	ks := e.kernelRoutes()
	for i := range ks {
		k := &ks[i]
		if k != best && k.Metric == best.Metric && (k.Kind != best.Kind || !slices.Equal(k.NextHops, best.NextHops)) {
			return true
		}
	}
	return false
}

// reresolve recomputes the BGP next-hop sets that may resolve differently
// since the last call (a next hop inside a prefix whose kernel routes
// changed; all of them after an address change); routes of a set whose
// resolution changed are re-examined (their XDP group is rewritten in
// place, their kernel routes replaced).
func (st *state) reresolve() {
	all, touched := st.resolveAll, st.kernelChanged
	st.resolveAll, st.kernelChanged, st.kernelChangedN = false, new(bart.Lite), 0
	changed := map[uint32]bool{}
	for _, s := range st.setsByID {
		if s.blackhole || s.connected || s.policy {
			continue // nothing to resolve
		}
		if !all && !slices.ContainsFunc(s.addrs, touched.Lookup) && !slices.ContainsFunc(s.backup, touched.Lookup) {
			continue // no route that could reach one of its next hops changed
		}
		r, why := st.resolveIn(s.table, s.addrs)
		s.why = why
		var rb []route.NextHop
		if len(s.backup) > 0 {
			rb, _ = st.resolveIn(s.table, s.backup)
		}
		if slices.Equal(r, s.resolved) && slices.Equal(rb, s.resolvedBackup) {
			continue
		}
		s.resolved, s.resolvedBackup = r, rb
		changed[s.id] = true
		if g := st.kgroups[s.key]; g != nil {
			st.kgroupWant(g, s.active()) // replaced in place: its routes follow
		}
		if g := st.groups[setGroupKey(s)]; g != nil && len(r)+len(rb) > 0 {
			st.setMembers(g, r, rb)
		}
	}
	if len(changed) == 0 {
		return
	}
	for p, e := range st.entries.all() {
		if changed[e.bgpSet] {
			st.markDirty(p)
		}
	}
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
	slices.SortFunc(out, comparePrefix)
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
