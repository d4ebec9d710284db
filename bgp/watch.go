package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// PathUpdate is a change of the best path(s) of one prefix. NextHops empty =
// withdrawn (no path left). With use-multiple-paths, NextHops holds every
// next hop of the multipath set (deduplicated, sorted); otherwise one.
// Peer is the neighbor the best path came from (with multipath, the one
// of the lowest next hop).
//
// With Options.Backup, Backup is the next hop of the backup path: the best
// path, in GoBGP's decision order, after the primary (the best path or the
// multipath set) whose next hop is not one of NextHops; empty = none.
// BackupPeer is the neighbor it came from. An update is then emitted
// whenever the primary or the backup of a prefix may have changed. Without
// Options.Backup both are always empty.
//
// Blackhole marks a remotely triggered blackhole route (RFC 7999): the
// best path (with multipath, a member of the set) came from a neighbor
// with accept-blackhole and carries one of [bgp] blackhole-communities.
// Traffic to the prefix is to be dropped; NextHops still holds the next
// hops as learned (not empty: not a withdrawal), not to be used.
//
// Table is the kernel table of the path's routing instance: a [[vrf]]'s
// table for paths of its neighbors (GoBGP holds them as l3vpn paths with
// the VRF's route distinguisher), 0 for the global RIB.
type PathUpdate struct {
	Table      int
	Prefix     netip.Prefix
	NextHops   []netip.Addr
	Peer       netip.Addr
	Backup     []netip.Addr
	BackupPeer netip.Addr
	Blackhole  bool
}

// pathKey identifies one path of a prefix: who sent it, with which path id.
type pathKey struct {
	peer netip.Addr
	id   uint32
}

// bestTracker turns GoBGP best-path events into PathUpdates.
//
// GoBGP's native watcher callback hands over a flat path list whose meaning
// depends on the mode: without multipath it is the new best path of each
// changed prefix (a withdrawal when nothing is left), so no state is needed;
// with multipath it is a delta of the multipath set (withdrawn members, then
// new or changed ones), or, for the initial replay, every member of every
// set, so the tracker keeps the members of each prefix (a short slice: a
// full table must not cost a map per prefix). Repeats are passed on: the
// sync layer's diff makes them free.
//
// rule decides which paths are blackhole routes; it may change (Reload),
// then rewalk re-emits the prefixes it may decide differently for.
type bestTracker struct {
	multipath bool
	vrfs      vrfTables
	rule      *atomic.Pointer[blackholeRule]
	log       *slog.Logger

	// emit is held while a batch is turned into updates and handed on,
	// so that a rewalk's updates and the events' are emitted in order.
	emit sync.Mutex

	mu      sync.Mutex
	members map[tablePrefix][]member // multipath only
}

// tablePrefix is a prefix of one routing instance (table 0: global).
type tablePrefix struct {
	table  int
	prefix netip.Prefix
}

type member struct {
	key       pathKey
	nh        netip.Addr
	blackhole bool
}

func newBestTracker(multipath bool, rule *atomic.Pointer[blackholeRule], log *slog.Logger) *bestTracker {
	if rule == nil {
		rule = new(atomic.Pointer[blackholeRule])
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &bestTracker{multipath: multipath, rule: rule, log: log, members: make(map[tablePrefix][]member)}
}

// isBlackhole applies the current rule to a best path, logging a
// blackhole community it ignores.
func isBlackhole(r *blackholeRule, p *apiutil.Path, pfx netip.Prefix, log *slog.Logger) bool {
	if r.blackhole(p) {
		return true
	}
	if log.Enabled(context.Background(), slog.LevelDebug) && r.ignored(p) {
		log.Debug("blackhole community ignored: neighbor has no accept-blackhole; a normal route", "prefix", pfx, "peer", p.PeerAddress)
	}
	return false
}

// deliver turns a batch of best paths into updates and hands them to fn,
// in order with every other delivery.
func (t *bestTracker) deliver(paths []*apiutil.Path, fn func([]PathUpdate)) {
	t.emit.Lock()
	defer t.emit.Unlock()
	if ups := t.apply(paths); len(ups) > 0 {
		fn(ups)
	}
}

// pathPrefix returns the unicast prefix of a path, or false for anything else.
func pathPrefix(p *apiutil.Path) (netip.Prefix, bool) {
	if p == nil || (p.Family != bgp.RF_IPv4_UC && p.Family != bgp.RF_IPv6_UC) {
		return netip.Prefix{}, false
	}
	n, ok := p.Nlri.(*bgp.IPAddrPrefix)
	if !ok || !n.Prefix.IsValid() {
		return netip.Prefix{}, false
	}
	return n.Prefix.Masked(), true
}

// vrfTables maps the route distinguishers of the [[vrf]]s (bgp's String
// form) to their kernel tables.
type vrfTables map[string]int

// instancePrefix returns the routing instance (kernel table, 0: global)
// and prefix of a unicast path, or of an l3vpn path of one of our VRFs
// (a VRF neighbor's path as GoBGP keeps it: the VRF's RD, its route
// targets); false for anything else, l3vpn paths of unknown RDs included.
func (v vrfTables) instancePrefix(p *apiutil.Path) (tablePrefix, bool) {
	if p == nil {
		return tablePrefix{}, false
	}
	switch p.Family {
	case bgp.RF_IPv4_UC, bgp.RF_IPv6_UC:
		pfx, ok := pathPrefix(p)
		return tablePrefix{prefix: pfx}, ok
	case bgp.RF_IPv4_VPN, bgp.RF_IPv6_VPN:
		n, ok := p.Nlri.(*bgp.LabeledVPNIPAddrPrefix)
		if !ok || !n.Prefix.IsValid() || n.RD == nil {
			return tablePrefix{}, false
		}
		t, ok := v[n.RD.String()]
		if !ok {
			return tablePrefix{}, false
		}
		return tablePrefix{table: t, prefix: n.Prefix.Masked()}, true
	}
	return tablePrefix{}, false
}

// pathNextHop returns the (global) next hop of a path.
func pathNextHop(p *apiutil.Path) netip.Addr {
	var nh netip.Addr
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			nh = a.Value
		case *bgp.PathAttributeMpReachNLRI:
			return a.Nexthop.WithZone("")
		}
	}
	return nh.WithZone("")
}

// isLocal reports whether a path was originated by this speaker.
func isLocal(p *apiutil.Path) bool { return !p.PeerAddress.IsValid() }

// usableNextHop returns the next hop to install for a path, or false for
// withdrawals, our own originations and paths without a usable next hop.
func usableNextHop(p *apiutil.Path) (netip.Addr, bool) {
	if p.Withdrawal || isLocal(p) {
		return netip.Addr{}, false
	}
	nh := pathNextHop(p)
	if ll := linkLocalNextHop(p); (!nh.IsValid() || nh.IsUnspecified()) && ll.IsValid() {
		nh = ll // RFC 2545: "::" and the link-local one
	}
	if nh.IsLinkLocalUnicast() && p.PeerAddress.Zone() != "" {
		// A link-local next hop means something on the session's link
		// only (unnumbered neighbors, RFC 8950; sessions on link-local
		// addresses): sync resolves it there.
		nh = nh.WithZone(p.PeerAddress.Zone())
	}
	return nh, nh.IsValid() && !nh.IsUnspecified()
}

// linkLocalNextHop returns the link-local next hop of an MP_REACH_NLRI
// with two (RFC 2545), if any.
func linkLocalNextHop(p *apiutil.Path) netip.Addr {
	for _, a := range p.Attrs {
		if mp, ok := a.(*bgp.PathAttributeMpReachNLRI); ok {
			return mp.LinkLocalNexthop.WithZone("")
		}
	}
	return netip.Addr{}
}

// apply processes one event batch and returns the changed prefixes.
func (t *bestTracker) apply(paths []*apiutil.Path) []PathUpdate {
	out := make([]PathUpdate, 0, len(paths))
	rule := t.rule.Load()
	if !t.multipath {
		for _, p := range paths {
			tp, ok := t.vrfs.instancePrefix(p)
			if !ok {
				continue
			}
			pfx := tp.prefix
			u := PathUpdate{Table: tp.table, Prefix: pfx}
			if nh, ok := usableNextHop(p); ok {
				u.NextHops, u.Peer = []netip.Addr{nh}, p.PeerAddress
				u.Blackhole = isBlackhole(rule, p, pfx, t.log)
			}
			out = append(out, u)
		}
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var touched []tablePrefix
	for _, p := range paths {
		tp, ok := t.vrfs.instancePrefix(p)
		if !ok {
			continue
		}
		if !slices.Contains(touched, tp) {
			touched = append(touched, tp)
		}
		key := pathKey{peer: p.PeerAddress, id: p.RemoteID}
		m := slices.DeleteFunc(t.members[tp], func(x member) bool { return x.key == key })
		if nh, ok := usableNextHop(p); ok {
			m = append(m, member{key, nh, isBlackhole(rule, p, tp.prefix, t.log)})
		}
		if len(m) == 0 {
			delete(t.members, tp)
		} else {
			t.members[tp] = m
		}
	}
	for _, tp := range touched {
		u := PathUpdate{Table: tp.table, Prefix: tp.prefix}
		for _, x := range t.members[tp] {
			u.NextHops = append(u.NextHops, x.nh)
			if !u.Peer.IsValid() || x.nh == slices.MinFunc(u.NextHops, netip.Addr.Compare) {
				u.Peer = x.key.peer
			}
			u.Blackhole = u.Blackhole || x.blackhole
		}
		slices.SortFunc(u.NextHops, netip.Addr.Compare)
		u.NextHops = slices.Compact(u.NextHops)
		out = append(out, u)
	}
	return out
}

// rewalk re-emits the best paths of every prefix in GoBGP's global RIB
// that has a path tagged (old or new blackhole communities): after the
// blackhole rule changed, these may be decided differently, and GoBGP
// reports no event for a path whose attributes stayed the same. Held
// against deliver, so that an event queued meanwhile is emitted after the
// walk's (older) view: the last update of a prefix is always the newest.
func (t *bestTracker) rewalk(srv ribReader, tagged func(*apiutil.Path) bool, fn func([]PathUpdate)) error {
	t.emit.Lock()
	defer t.emit.Unlock()
	fams := []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC}
	if len(t.vrfs) > 0 {
		fams = append(fams, bgp.RF_IPv4_VPN, bgp.RF_IPv6_VPN)
	}
	for _, fam := range fams {
		var paths []*apiutil.Path
		err := srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam},
			func(_ bgp.NLRI, ps []*apiutil.Path) {
				if !slices.ContainsFunc(ps, tagged) {
					return
				}
				for _, p := range ps {
					if !p.Best {
						break // the best path, or the multipath set, comes first
					}
					paths = append(paths, p)
					if !t.multipath {
						break
					}
				}
			})
		if err != nil {
			return err
		}
		if ups := t.apply(paths); len(ups) > 0 {
			fn(ups)
		}
	}
	return nil
}
