package bgp

import (
	"net/netip"
	"slices"
	"sync"

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
type PathUpdate struct {
	Prefix     netip.Prefix
	NextHops   []netip.Addr
	Peer       netip.Addr
	Backup     []netip.Addr
	BackupPeer netip.Addr
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
type bestTracker struct {
	multipath bool

	mu      sync.Mutex
	members map[netip.Prefix][]member // multipath only
}

type member struct {
	key pathKey
	nh  netip.Addr
}

func newBestTracker(multipath bool) *bestTracker {
	return &bestTracker{multipath: multipath, members: make(map[netip.Prefix][]member)}
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
	return nh, nh.IsValid() && !nh.IsUnspecified()
}

// apply processes one event batch and returns the changed prefixes.
func (t *bestTracker) apply(paths []*apiutil.Path) []PathUpdate {
	out := make([]PathUpdate, 0, len(paths))
	if !t.multipath {
		for _, p := range paths {
			pfx, ok := pathPrefix(p)
			if !ok {
				continue
			}
			u := PathUpdate{Prefix: pfx}
			if nh, ok := usableNextHop(p); ok {
				u.NextHops, u.Peer = []netip.Addr{nh}, p.PeerAddress
			}
			out = append(out, u)
		}
		return out
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var touched []netip.Prefix
	for _, p := range paths {
		pfx, ok := pathPrefix(p)
		if !ok {
			continue
		}
		if !slices.Contains(touched, pfx) {
			touched = append(touched, pfx)
		}
		key := pathKey{peer: p.PeerAddress, id: p.RemoteID}
		m := slices.DeleteFunc(t.members[pfx], func(x member) bool { return x.key == key })
		if nh, ok := usableNextHop(p); ok {
			m = append(m, member{key, nh})
		}
		if len(m) == 0 {
			delete(t.members, pfx)
		} else {
			t.members[pfx] = m
		}
	}
	for _, pfx := range touched {
		u := PathUpdate{Prefix: pfx}
		for _, x := range t.members[pfx] {
			u.NextHops = append(u.NextHops, x.nh)
			if !u.Peer.IsValid() || x.nh == slices.MinFunc(u.NextHops, netip.Addr.Compare) {
				u.Peer = x.key.peer
			}
		}
		slices.SortFunc(u.NextHops, netip.Addr.Compare)
		u.NextHops = slices.Compact(u.NextHops)
		out = append(out, u)
	}
	return out
}
