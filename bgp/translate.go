package bgp

// Translation of xdprouter's configuration into GoBGP v4 API objects. Pure
// functions: nothing here talks to a server, so every rule is unit-tested.
//
// Per-neighbor policies. GoBGP (v3 and v4 alike) keeps per-peer import/export
// assignments only for route-server clients: AddPolicyAssignment with a
// neighbor address fails for any other peer ("non-rs-client peer ... doesn't
// have per peer policy"), and paths from route-server clients go to a separate
// RIB that never reaches the best-path watcher, so they are no option for a
// router. Every normal peer is evaluated against the *global* import and
// export assignments, and GoBGP's neighbor-set condition matches the source
// neighbor on import and the target neighbor on export. So each (neighbor,
// direction) gets a derived policy whose statements are the configured
// policy's statements, each additionally conditioned on a one-address
// neighbor set for that neighbor, followed by a catch-all statement carrying
// the neighbor's default (reject for named policies, RFC 8212). The global
// assignment lists these derived policies. Only paths that come from no
// neighbor (our own [[network]] and connected prefixes) can reach the global
// default: accept on import; export is always decided by the target
// neighbor's catch-all (global default reject as a safety net).

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/config"
)

// Built-in policy names.
const (
	PolicyAcceptAll = "accept-all"
	PolicyRejectAll = "reject-all"
)

// plan is everything Start hands to GoBGP, in order.
type plan struct {
	global      *api.Global
	definedSets []*api.DefinedSet
	policies    []*api.Policy
	importAssignment,
	exportAssignment *api.PolicyAssignment
	peers    []*api.Peer
	networks []netip.Prefix
}

func translate(cfg *config.Config) (*plan, error) {
	if cfg == nil {
		return nil, errors.New("bgp: no config")
	}
	var errs []error
	p := &plan{}

	g, err := translateGlobal(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	p.global = g

	sets, err := translateDefinedSets(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	p.definedSets = sets

	for i := range cfg.Neighbors {
		n := &cfg.Neighbors[i]
		peer, err := translateNeighbor(cfg, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.peers = append(p.peers, peer)
	}

	pols, nsets, imp, exp, err := translatePolicies(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	p.definedSets = append(p.definedSets, nsets...)
	p.policies = pols
	p.importAssignment = imp
	p.exportAssignment = exp

	for _, nw := range cfg.Networks {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(nw.Prefix))
		if err != nil {
			errs = append(errs, fmt.Errorf("network %q: %w", nw.Prefix, err))
			continue
		}
		p.networks = append(p.networks, pfx.Masked())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func translateGlobal(cfg *config.Config) (*api.Global, error) {
	var errs []error
	if cfg.Router.ASN == 0 {
		errs = append(errs, errors.New("router.asn: must be set"))
	}
	rid, err := netip.ParseAddr(cfg.Router.RouterID)
	if err != nil || !rid.Is4() {
		errs = append(errs, fmt.Errorf("router.router-id %q: must be an IPv4 address", cfg.Router.RouterID))
	}
	g := &api.Global{
		Asn:              cfg.Router.ASN,
		RouterId:         cfg.Router.RouterID,
		ListenPort:       cfg.BGP.ListenPort,
		UseMultiplePaths: cfg.BGP.UseMultiplePaths,
	}
	if g.ListenPort == 0 {
		g.ListenPort = 179
	}
	for _, a := range cfg.BGP.ListenAddresses {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			// GoBGP's StartBgp would panic (netip.MustParseAddr) on this.
			errs = append(errs, fmt.Errorf("bgp.listen-addresses %q: %w", a, err))
			continue
		}
		g.ListenAddresses = append(g.ListenAddresses, addr.String())
	}
	return g, errors.Join(errs...)
}

// family parses a config family name.
func family(name string) (*api.Family, error) {
	switch name {
	case "ipv4-unicast":
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, nil
	case "ipv6-unicast":
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, nil
	}
	return nil, fmt.Errorf("unknown family %q (want ipv4-unicast or ipv6-unicast)", name)
}

func isIBGP(cfg *config.Config, n *config.Neighbor) bool { return n.PeerASN == cfg.Router.ASN }

// importPolicy and exportPolicy return the neighbor's policy names with the
// defaults applied (the config package normally fills them in already).
func importPolicy(cfg *config.Config, n *config.Neighbor) string {
	return defaultPolicy(cfg, n, n.Import)
}

func exportPolicy(cfg *config.Config, n *config.Neighbor) string {
	return defaultPolicy(cfg, n, n.Export)
}

func defaultPolicy(cfg *config.Config, n *config.Neighbor, name string) string {
	if name != "" {
		return name
	}
	if isIBGP(cfg, n) {
		return PolicyAcceptAll
	}
	return PolicyRejectAll
}

func translateNeighbor(cfg *config.Config, n *config.Neighbor) (*api.Peer, error) {
	var errs []error
	addr, err := netip.ParseAddr(n.Address)
	if err != nil {
		return nil, fmt.Errorf("neighbor %q: address: %w", n.Address, err)
	}
	if n.PeerASN == 0 {
		errs = append(errs, errors.New("peer-asn: must be set"))
	}
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: addr.String(),
			PeerAsn:         n.PeerASN,
			Description:     n.Description,
			AuthPassword:    n.Password,
		},
		Transport: &api.Transport{
			PassiveMode: n.Passive,
			RemotePort:  n.Port,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          n.HoldTime,
			KeepaliveInterval: n.KeepaliveInterval,
			ConnectRetry:      n.ConnectRetry,
		}},
	}
	if n.LocalAddress != "" {
		la, err := netip.ParseAddr(n.LocalAddress)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("local-address: %w", err))
		case la.Is4() != addr.Is4():
			errs = append(errs, fmt.Errorf("local-address %s: address family differs from %s", la, addr))
		default:
			peer.Transport.LocalAddress = la.String()
		}
	}
	if n.Multihop > 0 {
		if n.Multihop > 255 {
			errs = append(errs, fmt.Errorf("multihop %d: TTL must be 1..255", n.Multihop))
		}
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: n.Multihop}
	}
	families := n.Families
	if len(families) == 0 {
		families = []string{"ipv4-unicast"}
		if addr.Is6() {
			families = []string{"ipv6-unicast"}
		}
	}
	for _, name := range families {
		f, err := family(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("families: %w", err))
			continue
		}
		as := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}}
		if n.MaxPrefixes > 0 {
			// Exceeding the limit sends a Cease/max-prefixes NOTIFICATION and
			// leaves the session administratively down (GoBGP's PFX_CT state)
			// until the peer is reset.
			as.PrefixLimits = &api.PrefixLimit{Family: f, MaxPrefixes: n.MaxPrefixes}
		}
		peer.AfiSafis = append(peer.AfiSafis, as)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("neighbor %s: %w", addr, err)
	}
	return peer, nil
}

// parsePrefixSetEntry parses "10.0.0.0/8" or "10.0.0.0/8 16..24". Without a
// range the entry matches exactly that prefix length.
func parsePrefixSetEntry(s string) (*api.Prefix, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 {
		return nil, fmt.Errorf("%q: want PREFIX or PREFIX MIN..MAX", s)
	}
	pfx, err := netip.ParsePrefix(fields[0])
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	pfx = pfx.Masked()
	lo, hi := uint32(pfx.Bits()), uint32(pfx.Bits())
	if len(fields) == 2 {
		a, b, ok := strings.Cut(fields[1], "..")
		if !ok {
			return nil, fmt.Errorf("%q: mask length range must look like 16..24", s)
		}
		x, err1 := strconv.ParseUint(a, 10, 8)
		y, err2 := strconv.ParseUint(b, 10, 8)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q: mask length range must look like 16..24", s)
		}
		lo, hi = uint32(x), uint32(y)
		if lo > hi || lo < uint32(pfx.Bits()) || int(hi) > pfx.Addr().BitLen() {
			return nil, fmt.Errorf("%q: mask length range must satisfy %d <= min <= max <= %d", s, pfx.Bits(), pfx.Addr().BitLen())
		}
	}
	return &api.Prefix{IpPrefix: pfx.String(), MaskLengthMin: lo, MaskLengthMax: hi}, nil
}

// parseNeighborSetEntry accepts an address or a prefix and returns a prefix.
func parseNeighborSetEntry(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func translateDefinedSets(cfg *config.Config) ([]*api.DefinedSet, error) {
	var errs []error
	var out []*api.DefinedSet
	for _, ps := range cfg.PrefixSets {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: ps.Name}
		for _, e := range ps.Prefixes {
			p, err := parsePrefixSetEntry(e)
			if err != nil {
				errs = append(errs, fmt.Errorf("prefix-set %q: %w", ps.Name, err))
				continue
			}
			ds.Prefixes = append(ds.Prefixes, p)
		}
		out = append(out, ds)
	}
	for _, ns := range cfg.NeighborSets {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: ns.Name}
		for _, e := range ns.Addresses {
			p, err := parseNeighborSetEntry(e)
			if err != nil {
				errs = append(errs, fmt.Errorf("neighbor-set %q: %q: %w", ns.Name, e, err))
				continue
			}
			ds.List = append(ds.List, p.String())
		}
		out = append(out, ds)
	}
	for _, cs := range cfg.CommunitySets {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_COMMUNITY, Name: cs.Name}
		ds.List = append(ds.List, cs.Communities...)
		for _, c := range cs.Communities {
			if c == "" {
				errs = append(errs, fmt.Errorf("community-set %q: empty community", cs.Name))
			}
		}
		out = append(out, ds)
	}
	return out, errors.Join(errs...)
}

// neighborSetName is the one-address neighbor set that scopes derived
// policies to one neighbor.
func neighborSetName(addr netip.Addr) string { return "xdprouter-nbr-" + addr.String() }

// derivedPolicyName names the policy evaluated for one neighbor and direction.
func derivedPolicyName(dir string, addr netip.Addr, policy string) string {
	return fmt.Sprintf("xdprouter-%s-%s-%s", dir, addr, policy)
}

func matchType(opt string) (api.MatchSet_Type, error) {
	switch opt {
	case "", "any":
		return api.MatchSet_TYPE_ANY, nil
	case "invert":
		return api.MatchSet_TYPE_INVERT, nil
	}
	return 0, fmt.Errorf("match-set-options %q: want any or invert", opt)
}

func routeAction(a string) (api.RouteAction, error) {
	switch a {
	case "accept":
		return api.RouteAction_ROUTE_ACTION_ACCEPT, nil
	case "reject":
		return api.RouteAction_ROUTE_ACTION_REJECT, nil
	case "next", "":
		// No route disposition: GoBGP applies the statement's set actions and
		// continues with the next statement.
		return api.RouteAction_ROUTE_ACTION_UNSPECIFIED, nil
	}
	return 0, fmt.Errorf("action %q: want accept, reject or next", a)
}

// translatePolicies derives the per-neighbor policies and the global
// assignments (see the package comment at the top of this file).
func translatePolicies(cfg *config.Config) (pols []*api.Policy, nsets []*api.DefinedSet, imp, exp *api.PolicyAssignment, err error) {
	var errs []error
	byName := make(map[string]*config.Policy, len(cfg.Policies))
	for i := range cfg.Policies {
		p := &cfg.Policies[i]
		if p.Name == PolicyAcceptAll || p.Name == PolicyRejectAll {
			errs = append(errs, fmt.Errorf("policy %q: name is built in", p.Name))
			continue
		}
		if _, dup := byName[p.Name]; dup {
			errs = append(errs, fmt.Errorf("policy %q: defined twice", p.Name))
			continue
		}
		byName[p.Name] = p
	}
	// Check every statement once, independent of whether a neighbor uses it.
	prefixSets, neighborSets, communitySets := map[string]bool{}, map[string][]netip.Prefix{}, map[string]bool{}
	for _, s := range cfg.PrefixSets {
		prefixSets[s.Name] = true
	}
	for _, s := range cfg.NeighborSets {
		var l []netip.Prefix
		for _, a := range s.Addresses {
			if p, err := parseNeighborSetEntry(a); err == nil {
				l = append(l, p)
			}
		}
		neighborSets[s.Name] = l
	}
	for _, s := range cfg.CommunitySets {
		communitySets[s.Name] = true
	}
	for _, p := range byName {
		for i, st := range p.Statements {
			where := fmt.Sprintf("policy %q statement %d", p.Name, i+1)
			if st.Name != "" {
				where = fmt.Sprintf("policy %q statement %q", p.Name, st.Name)
			}
			if _, err := matchType(st.MatchSetOptions); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
			if _, err := routeAction(st.Action); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
			if st.MatchPrefixSet != "" && !prefixSets[st.MatchPrefixSet] {
				errs = append(errs, fmt.Errorf("%s: unknown prefix-set %q", where, st.MatchPrefixSet))
			}
			if _, ok := neighborSets[st.MatchNeighborSet]; st.MatchNeighborSet != "" && !ok {
				errs = append(errs, fmt.Errorf("%s: unknown neighbor-set %q", where, st.MatchNeighborSet))
			}
			if st.MatchCommunitySet != "" && !communitySets[st.MatchCommunitySet] {
				errs = append(errs, fmt.Errorf("%s: unknown community-set %q", where, st.MatchCommunitySet))
			}
		}
	}

	imp = &api.PolicyAssignment{
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT, // reached only by locally originated paths
	}
	exp = &api.PolicyAssignment{
		Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT, // never reached: every neighbor has a catch-all
	}
	seenNbr := map[netip.Addr]bool{}
	for i := range cfg.Neighbors {
		n := &cfg.Neighbors[i]
		addr, perr := netip.ParseAddr(n.Address)
		if perr != nil {
			continue // reported by translateNeighbor
		}
		if seenNbr[addr] {
			errs = append(errs, fmt.Errorf("neighbor %s: configured twice", addr))
			continue
		}
		seenNbr[addr] = true
		nsets = append(nsets, &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
			Name:        neighborSetName(addr),
			List:        []string{netip.PrefixFrom(addr, addr.BitLen()).String()},
		})
		for _, d := range []struct {
			dir    string
			name   string
			assign *api.PolicyAssignment
		}{
			{"import", importPolicy(cfg, n), imp},
			{"export", exportPolicy(cfg, n), exp},
		} {
			pol, err := derivePolicy(d.dir, addr, d.name, byName, neighborSets)
			if err != nil {
				errs = append(errs, fmt.Errorf("neighbor %s: %s policy: %w", addr, d.dir, err))
				continue
			}
			pols = append(pols, pol)
			d.assign.Policies = append(d.assign.Policies, &api.Policy{Name: pol.Name})
		}
	}
	return pols, nsets, imp, exp, errors.Join(errs...)
}

// derivePolicy builds the policy evaluated for paths from (import) or to
// (export) the neighbor addr.
func derivePolicy(dir string, addr netip.Addr, name string, byName map[string]*config.Policy, neighborSets map[string][]netip.Prefix) (*api.Policy, error) {
	pname := derivedPolicyName(dir, addr, name)
	scope := func() *api.MatchSet {
		return &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: neighborSetName(addr)}
	}
	final := func(a api.RouteAction) *api.Statement {
		return &api.Statement{
			Name:       pname + "-default",
			Conditions: &api.Conditions{NeighborSet: scope()},
			Actions:    &api.Actions{RouteAction: a},
		}
	}
	switch name {
	case PolicyAcceptAll:
		return &api.Policy{Name: pname, Statements: []*api.Statement{final(api.RouteAction_ROUTE_ACTION_ACCEPT)}}, nil
	case PolicyRejectAll:
		return &api.Policy{Name: pname, Statements: []*api.Statement{final(api.RouteAction_ROUTE_ACTION_REJECT)}}, nil
	}
	p, ok := byName[name]
	if !ok {
		return nil, fmt.Errorf("unknown policy %q (define it with [[policy]], or use accept-all / reject-all)", name)
	}
	pol := &api.Policy{Name: pname}
	for i, st := range p.Statements {
		mt, err := matchType(st.MatchSetOptions)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", name, err)
		}
		ra, err := routeAction(st.Action)
		if err != nil {
			return nil, fmt.Errorf("policy %q: %w", name, err)
		}
		if st.MatchNeighborSet != "" {
			// A statement holds one neighbor-set condition, which the scope
			// takes. The user's neighbor set is resolved here against this
			// one, known neighbor: the statement either always or never
			// passes that condition for paths of this neighbor.
			in := false
			for _, p := range neighborSets[st.MatchNeighborSet] {
				if p.Contains(addr) {
					in = true
					break
				}
			}
			if in == (mt == api.MatchSet_TYPE_INVERT) {
				continue // can never match for this neighbor
			}
		}
		sname := st.Name
		if sname == "" {
			sname = strconv.Itoa(i + 1)
		}
		conds := &api.Conditions{NeighborSet: scope()}
		if st.MatchPrefixSet != "" {
			conds.PrefixSet = &api.MatchSet{Type: mt, Name: st.MatchPrefixSet}
		}
		if st.MatchCommunitySet != "" {
			conds.CommunitySet = &api.MatchSet{Type: mt, Name: st.MatchCommunitySet}
		}
		acts := &api.Actions{RouteAction: ra}
		if st.SetLocalPref != 0 {
			acts.LocalPref = &api.LocalPrefAction{Value: st.SetLocalPref}
		}
		if st.SetMED != 0 {
			acts.Med = &api.MedAction{Type: api.MedAction_TYPE_REPLACE, Value: st.SetMED}
		}
		if len(st.AddCommunity) > 0 {
			acts.Community = &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: append([]string(nil), st.AddCommunity...)}
		}
		pol.Statements = append(pol.Statements, &api.Statement{
			Name:       pname + "-" + sname,
			Conditions: conds,
			Actions:    acts,
		})
	}
	// RFC 8212: a named policy that does not accept a path rejects it.
	pol.Statements = append(pol.Statements, final(api.RouteAction_ROUTE_ACTION_REJECT))
	return pol, nil
}

// familyOf returns the unicast family of a prefix.
func familyOf(p netip.Prefix) bgp.Family {
	if p.Addr().Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}
