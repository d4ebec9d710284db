package bgp

// The bogon import filter ([bgp] bogon-filter) and remotely triggered
// blackholing (RFC 7999: [bgp] blackhole-communities, [[neighbor]]
// accept-blackhole), built on GoBGP's policy engine like every other
// policy (see translate.go).
//
// Import: every neighbor's derived import policy starts with the bogon
// statements (when the filter is on): reject a route inside a bogon range
// (any length), then reject a route longer than the length bound, except,
// for a neighbor with accept-blackhole, a route carrying a blackhole
// community. Being in the neighbor's own derived policy, a change of the
// filter or of accept-blackhole changes that policy, and Reload re-runs it
// on the routes already received with a soft reset in (no session reset).
//
// Blackholes: whether a best path is a blackhole route is decided where
// best paths are turned into PathUpdates (the watchers), by blackholeRule:
// the path came from a neighbor with accept-blackhole and carries one of
// the blackhole communities. A blackhole community from any other neighbor
// is ignored (logged at debug).
//
// Export: RFC 7999 3.2 asks that blackhole routes not be propagated. GoBGP
// does not act on NO_EXPORT or NO_ADVERTISE itself, so every neighbor's
// derived export policy starts with statements rejecting learned routes
// (eBGP or iBGP, whichever neighbor they came from) that carry a blackhole
// community. Routes we originate are not affected: an operator may still
// signal a blackhole to an upstream (`gobgp global rib add ... community
// 65535:666` with an export policy allowing it).

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/config"
)

// Bogons are the ranges bogon-filter rejects, with everything inside them:
// RFC 6890 special-purpose ranges not meant for the Internet, multicast,
// reserved and deprecated ranges. Default routes are not bogons (a transit
// sends them), nor is 2002::/16 (6to4: deprecated as a relay anycast,
// RFC 7526, but 6to4 addresses are still in use).
var Bogons = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network" (RFC 791)
	netip.MustParsePrefix("10.0.0.0/8"),      // private (RFC 1918)
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space, CGN (RFC 6598)
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("169.254.0.0/16"),  // link local (RFC 3927)
	netip.MustParsePrefix("172.16.0.0/12"),   // private (RFC 1918)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1 (RFC 5737)
	netip.MustParsePrefix("192.88.99.0/24"),  // deprecated 6to4 relay anycast (RFC 7526)
	netip.MustParsePrefix("192.168.0.0/16"),  // private (RFC 1918)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking (RFC 2544)
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2 (RFC 5737)
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3 (RFC 5737)
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and 255.255.255.255/32
	netip.MustParsePrefix("::/8"),            // loopback, unspecified, IPv4-mapped and -compatible
	netip.MustParsePrefix("100::/64"),        // discard only (RFC 6666)
	netip.MustParsePrefix("2001:2::/48"),     // benchmarking (RFC 5180)
	netip.MustParsePrefix("2001:10::/28"),    // ORCHID (RFC 4843)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation (RFC 3849)
	netip.MustParsePrefix("3ffe::/16"),       // 6bone, returned (RFC 3701)
	netip.MustParsePrefix("fc00::/7"),        // unique local (RFC 4193)
	netip.MustParsePrefix("fe80::/10"),       // link local
	netip.MustParsePrefix("fec0::/10"),       // site local, deprecated (RFC 3879)
	netip.MustParsePrefix("ff00::/8"),        // multicast
}

// Names of the defined sets of the bogon filter and of RTBH.
const (
	bogonSetV4     = "xdprouter-bogons-v4"
	bogonSetV6     = "xdprouter-bogons-v6"
	tooLongSetV4   = "xdprouter-too-long-v4"
	tooLongSetV6   = "xdprouter-too-long-v6"
	blackholeComms = "xdprouter-blackhole"
)

// maxLengths returns the bogon filter's length bounds (0: the default,
// for a Config built in code without ApplyDefaults).
func maxLengths(b config.BGP) (v4, v6 int) {
	v4, v6 = b.BogonMaxLengthV4, b.BogonMaxLengthV6
	if v4 == 0 {
		v4 = config.DefaultBogonMaxLengthV4
	}
	if v6 == 0 {
		v6 = config.DefaultBogonMaxLengthV6
	}
	return v4, v6
}

// bogonDefinedSets returns the prefix sets of the bogon filter (when on)
// and the community set of the blackhole communities (when there are any).
// GoBGP's prefix sets hold one family each.
func bogonDefinedSets(cfg *config.Config) []*api.DefinedSet {
	var out []*api.DefinedSet
	if cfg.BGP.BogonFilter {
		v4 := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: bogonSetV4}
		v6 := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: bogonSetV6}
		for _, p := range Bogons {
			ds := v4
			if p.Addr().Is6() {
				ds = v6
			}
			ds.Prefixes = append(ds.Prefixes, &api.Prefix{IpPrefix: p.String(),
				MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Addr().BitLen())})
		}
		out = append(out, v4, v6)
		l4, l6 := maxLengths(cfg.BGP)
		for _, t := range []struct {
			name string
			all  netip.Prefix
			max  int
		}{
			{tooLongSetV4, netip.MustParsePrefix("0.0.0.0/0"), l4},
			{tooLongSetV6, netip.MustParsePrefix("::/0"), l6},
		} {
			if t.max >= t.all.Addr().BitLen() {
				continue // no length is too long
			}
			out = append(out, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: t.name,
				Prefixes: []*api.Prefix{{IpPrefix: t.all.String(), MaskLengthMin: uint32(t.max + 1), MaskLengthMax: uint32(t.all.Addr().BitLen())}}})
		}
	}
	if len(cfg.BGP.BlackholeCommunities) > 0 {
		out = append(out, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_COMMUNITY, Name: blackholeComms,
			List: slices.Clone(cfg.BGP.BlackholeCommunities)})
	}
	return out
}

// bogonImportStatements are the statements that start the derived import
// policy pname of neighbor n (scope: its one-address neighbor set); none
// with the filter off.
func bogonImportStatements(cfg *config.Config, n *config.Neighbor, pname string, scope func() *api.MatchSet) []*api.Statement {
	if !cfg.BGP.BogonFilter {
		return nil
	}
	reject := func() *api.Actions { return &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT} }
	var out []*api.Statement
	for _, set := range []string{bogonSetV4, bogonSetV6} {
		out = append(out, &api.Statement{
			Name:       pname + "-" + set,
			Conditions: &api.Conditions{NeighborSet: scope(), PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set}},
			Actions:    reject(),
		})
	}
	l4, l6 := maxLengths(cfg.BGP)
	for _, t := range []struct {
		set  string
		skip bool
	}{{tooLongSetV4, l4 >= 32}, {tooLongSetV6, l6 >= 128}} {
		if t.skip {
			continue
		}
		c := &api.Conditions{NeighborSet: scope(), PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: t.set}}
		if acceptsBlackhole(cfg, n) {
			// Its blackhole routes may be of any length.
			c.CommunitySet = &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: blackholeComms}
		}
		out = append(out, &api.Statement{Name: pname + "-" + t.set, Conditions: c, Actions: reject()})
	}
	return out
}

// blackholeExportStatements start every derived export policy (but
// reject-all): learned routes carrying a blackhole community are not
// propagated (RFC 7999 3.2). One statement per route type (a condition
// holds one).
func blackholeExportStatements(cfg *config.Config, pname string, scope func() *api.MatchSet) []*api.Statement {
	if len(cfg.BGP.BlackholeCommunities) == 0 {
		return nil
	}
	var out []*api.Statement
	for _, rt := range []struct {
		name string
		typ  api.Conditions_RouteType
	}{{"external", api.Conditions_ROUTE_TYPE_EXTERNAL}, {"internal", api.Conditions_ROUTE_TYPE_INTERNAL}} {
		out = append(out, &api.Statement{
			Name: pname + "-no-blackhole-" + rt.name,
			Conditions: &api.Conditions{NeighborSet: scope(), RouteType: rt.typ,
				CommunitySet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: blackholeComms}},
			Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		})
	}
	return out
}

func acceptsBlackhole(cfg *config.Config, n *config.Neighbor) bool {
	return n.AcceptBlackhole && len(cfg.BGP.BlackholeCommunities) > 0
}

// blackholeRule decides which best paths are blackhole routes: from a
// neighbor with accept-blackhole, carrying a blackhole community. A nil
// rule finds none. Immutable once built.
type blackholeRule struct {
	peers       map[netip.Addr]bool
	communities []uint32 // sorted
}

func newBlackholeRule(cfg *config.Config) *blackholeRule {
	r := &blackholeRule{peers: map[netip.Addr]bool{}}
	for i := range cfg.Neighbors {
		if n := &cfg.Neighbors[i]; acceptsBlackhole(cfg, n) {
			r.peers[n.Addr()] = true
		}
	}
	for _, s := range cfg.BGP.BlackholeCommunities {
		if c, ok := parseCommunity(s); ok {
			r.communities = append(r.communities, c)
		}
	}
	slices.Sort(r.communities)
	r.communities = slices.Compact(r.communities)
	return r
}

// equal reports whether two rules decide alike.
func (r *blackholeRule) equal(o *blackholeRule) bool {
	if r == nil || o == nil {
		return r == o
	}
	if len(r.peers) != len(o.peers) || !slices.Equal(r.communities, o.communities) {
		return false
	}
	for a := range r.peers {
		if !o.peers[a] {
			return false
		}
	}
	return true
}

// tagged reports whether p carries one of the rule's communities.
func (r *blackholeRule) tagged(p *apiutil.Path) bool {
	if r == nil || len(r.communities) == 0 {
		return false
	}
	for _, a := range p.Attrs {
		if c, ok := a.(*bgp.PathAttributeCommunities); ok {
			for _, v := range c.Value {
				if _, found := slices.BinarySearch(r.communities, v); found {
					return true
				}
			}
		}
	}
	return false
}

// blackhole reports whether p is a blackhole route.
func (r *blackholeRule) blackhole(p *apiutil.Path) bool {
	return r != nil && r.peers[p.PeerAddress] && r.tagged(p)
}

// ignored reports whether p carries a blackhole community from a
// neighbor that may not send blackholes (the community is ignored).
func (r *blackholeRule) ignored(p *apiutil.Path) bool {
	return r != nil && !r.peers[p.PeerAddress] && !isLocal(p) && r.tagged(p)
}

// parseCommunity parses a standard community "ASN:VALUE" or a well-known
// name (config validation checked it).
func parseCommunity(s string) (uint32, bool) {
	for v, name := range bgp.WellKnownCommunityNameMap {
		if s == name {
			return uint32(v), true
		}
	}
	m := communityRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	hi, err1 := strconv.ParseUint(m[1], 10, 16)
	lo, err2 := strconv.ParseUint(m[2], 10, 16)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return uint32(hi<<16 | lo), true
}

var communityRE = regexp.MustCompile(`^([0-9]+):([0-9]+)$`)
