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
type PathUpdate struct {
	Prefix   netip.Prefix
	NextHops []netip.Addr
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
// changed prefix (a withdrawal when nothing is left); with multipath it is a
// delta of the multipath set (withdrawn members, then new or changed ones),
// or, for the initial replay, every member of every set. The tracker keeps
// the learned members per prefix so both modes yield the full next-hop set,
// and reports a prefix only when its next-hop set actually changed.
type bestTracker struct {
	multipath bool

	mu      sync.Mutex
	members map[netip.Prefix]map[pathKey]netip.Addr
	emitted map[netip.Prefix][]netip.Addr
}

func newBestTracker(multipath bool) *bestTracker {
	return &bestTracker{
		multipath: multipath,
		members:   make(map[netip.Prefix]map[pathKey]netip.Addr),
		emitted:   make(map[netip.Prefix][]netip.Addr),
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

// apply processes one event batch and returns the changed prefixes.
func (t *bestTracker) apply(paths []*apiutil.Path) []PathUpdate {
	t.mu.Lock()
	defer t.mu.Unlock()
	var touched []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, p := range paths {
		pfx, ok := pathPrefix(p)
		if !ok {
			continue
		}
		if !seen[pfx] {
			seen[pfx] = true
			touched = append(touched, pfx)
		}
		m := t.members[pfx]
		if !t.multipath {
			// The path is the prefix's new best: it replaces whatever we had.
			clear(m)
		}
		key := pathKey{peer: p.PeerAddress, id: p.RemoteID}
		switch {
		case p.Withdrawal:
			delete(m, key)
		case isLocal(p):
			// Our own origination is best: nothing learned to install. With
			// multipath, learned members leave the set through the delta.
		default:
			nh := pathNextHop(p)
			if !nh.IsValid() || nh.IsUnspecified() {
				delete(m, key)
				continue
			}
			if m == nil {
				m = make(map[pathKey]netip.Addr)
				t.members[pfx] = m
			}
			m[key] = nh
		}
	}
	var out []PathUpdate
	for _, pfx := range touched {
		m := t.members[pfx]
		var nhs []netip.Addr
		for _, nh := range m {
			nhs = append(nhs, nh)
		}
		slices.SortFunc(nhs, netip.Addr.Compare)
		nhs = slices.Compact(nhs)
		if len(m) == 0 {
			delete(t.members, pfx)
		}
		old, had := t.emitted[pfx]
		if slices.Equal(old, nhs) && (had || len(nhs) == 0) {
			continue
		}
		if len(nhs) == 0 {
			delete(t.emitted, pfx)
		} else {
			t.emitted[pfx] = nhs
		}
		out = append(out, PathUpdate{Prefix: pfx, NextHops: slices.Clone(nhs)})
	}
	return out
}
