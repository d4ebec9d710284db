package bgp

// Translation of xdprouter's configuration into GoBGP v4 API objects. Pure
// functions: nothing here talks to a server, so every rule is unit-tested.
//
// The configuration is trusted: config.Load (config.Validate) is the one
// place that checks it and names file, line and key. Translation parses
// with config's own parsers and does not check again.
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
// assignment lists these derived policies, then (import only) a policy
// accepting locally originated paths ([[network]], connected, and what root
// adds with `gobgp global rib add`). Both global defaults are reject: a
// neighbor that is not in the configuration (added at run time through the
// gRPC API) matches none of the derived policies, and RFC 8212 applies to
// it too: nothing it sends is accepted, nothing is sent to it.

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"google.golang.org/protobuf/proto"

	"github.com/xdprouter/xdprouter/config"
)

// localImportPolicy accepts locally originated paths on import.
const localImportPolicy = "xdprouter-import-local"

// plan is everything Start hands to GoBGP, in order.
type plan struct {
	global      *api.Global
	definedSets []*api.DefinedSet
	policies    []*api.Policy
	importAssignment,
	exportAssignment *api.PolicyAssignment
	peers    []*api.Peer
	networks []netip.Prefix
	// vrfs are the [[vrf]] instances (added before the peers in them),
	// vrfTables their route distinguishers → kernel tables.
	vrfs      []*api.Vrf
	vrfTables vrfTables
	// unresolved are the interfaces of unnumbered neighbors left out of
	// peers: their peer is not known yet (set by the speaker).
	unresolved []string
	// rpki are the RTR caches, bmp the BMP stations.
	rpki []*api.AddRpkiRequest
	bmp  []*api.AddBmpRequest
	// peerGroups are the [[peer-group]]s [[dynamic-neighbor]]s use (the
	// static members' settings are resolved by config), ranges the
	// [[dynamic-neighbor]]s (see dynamic.go).
	peerGroups []*api.PeerGroup
	ranges     []dynRange
}

// translate turns a validated configuration into GoBGP objects.
func translate(cfg *config.Config) (*plan, error) {
	if cfg == nil {
		return nil, errors.New("bgp: no config")
	}
	p := &plan{global: translateGlobal(cfg), definedSets: translateDefinedSets(cfg)}
	var err error
	if p.vrfs, p.vrfTables, err = translateVRFs(cfg); err != nil {
		return nil, err
	}
	for i := range cfg.Neighbors {
		p.peers = append(p.peers, translateNeighbor(cfg, &cfg.Neighbors[i]))
	}
	p.peerGroups, p.ranges = translateDynamic(cfg)
	pols, nsets, imp, exp := translatePolicies(cfg)
	p.definedSets = append(p.definedSets, bogonDefinedSets(cfg)...)
	p.definedSets = append(p.definedSets, nsets...)
	p.policies = pols
	p.importAssignment = imp
	p.exportAssignment = exp
	for _, pfx := range cfg.NetworkPrefixes() {
		p.networks = append(p.networks, pfx.Masked())
	}
	p.rpki, p.bmp = translateRPKI(cfg), translateBMP(cfg)
	return p, nil
}

func translateGlobal(cfg *config.Config) *api.Global {
	g := &api.Global{
		Asn:              cfg.Router.ASN,
		RouterId:         cfg.Router.RouterID,
		ListenPort:       cfg.BGP.ListenPort,
		UseMultiplePaths: cfg.BGP.UseMultiplePaths,
	}
	if g.ListenPort == 0 {
		g.ListenPort = config.DefaultBGPPort
	}
	for _, a := range cfg.BGP.ListenAddresses {
		if addr, err := netip.ParseAddr(a); err == nil {
			g.ListenAddresses = append(g.ListenAddresses, addr.String())
		}
	}
	return g
}

// family maps a config family name (validated) to GoBGP's.
func family(name string) *api.Family {
	switch name {
	case config.FamilyIPv6Unicast:
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	case config.FamilyIPv4Flowspec:
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_FLOW_SPEC_UNICAST}
	case config.FamilyIPv6Flowspec:
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_FLOW_SPEC_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

func isIBGP(cfg *config.Config, n *config.Neighbor) bool { return n.PeerASN == cfg.Router.ASN }

// importPolicy and exportPolicy return the neighbor's policy names with the
// defaults applied (config.Load fills them in already; a Config built in
// code may leave them empty).
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
		return config.PolicyAcceptAll
	}
	return config.PolicyRejectAll
}

func translateNeighbor(cfg *config.Config, n *config.Neighbor) *api.Peer {
	addr := n.Addr()
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: addr.String(),
			PeerAsn:         n.PeerASN,
			Description:     n.Description,
			AuthPassword:    n.Password,
			Vrf:             n.VRF,
		},
		Transport: &api.Transport{
			PassiveMode: n.Passive,
			RemotePort:  n.Port,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          n.HoldTime,
			KeepaliveInterval: n.KeepaliveInterval,
			ConnectRetry:      n.ConnectRetry,
			// After a Cease/administrative reset (BFD down, our reset)
			// GoBGP idles this long, refusing connections too; 0 means
			// its default, 30 s.
			IdleHoldTimeAfterReset: cmp.Or(n.IdleHoldAfterReset, config.DefaultIdleHoldAfterReset),
		}},
	}
	if la, err := netip.ParseAddr(n.LocalAddress); err == nil {
		peer.Transport.LocalAddress = la.String()
	}
	if n.Multihop > 0 {
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: n.Multihop}
	}
	families := n.Families
	if len(families) == 0 {
		families = []string{config.FamilyIPv4Unicast}
		if addr.Is6() {
			families = []string{config.FamilyIPv6Unicast}
		}
	}
	families = neighborFamilies(n, families)
	gr := translateGracefulRestart(n)
	peer.GracefulRestart = gr
	peer.Bfd = translateBFD(n)
	for _, name := range families {
		f := family(name)
		as := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}}
		if gr != nil {
			as.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
			if gr.LonglivedEnabled {
				as.LongLivedGracefulRestart = &api.LongLivedGracefulRestart{Config: &api.LongLivedGracefulRestartConfig{
					Enabled: true, RestartTime: uint32(n.LongLivedStaleTime)}}
			}
		}
		if n.MaxPrefixes > 0 {
			// Exceeding the limit sends a Cease/max-prefixes NOTIFICATION and
			// leaves the session administratively down (GoBGP's PFX_CT state)
			// until the peer is reset. GoBGP is handed the limit only once
			// it is exceeded (see prefixlimit.go).
			as.PrefixLimits = &api.PrefixLimit{Family: f, MaxPrefixes: n.MaxPrefixes}
		}
		peer.AfiSafis = append(peer.AfiSafis, as)
	}
	return peer
}

// translateGracefulRestart returns the neighbor's graceful-restart
// settings (RFC 4724, RFC 9494), nil when off. GoBGP advertises the
// capability with every configured family (not helper-only: both roles).
// It sets the restart-state and forwarding-state bits together, from
// LocalRestarting, which Start sets only when the data plane survived
// (see restarting); without it both bits are clear, and a neighbor drops
// our stale routes as soon as the session is back (RFC 4724 4.2).
//
// The selection deferral time (how long a restarting speaker waits for
// its neighbors' End-of-RIB before it announces) is the restart time:
// the neighbors keep our stale routes at least that long.
//
// NotificationEnabled (RFC 8538) stays off: a neighbor that ends the
// session with a NOTIFICATION (an operator's shutdown, a deconfiguration)
// is flushed at once, as without graceful restart; only a session that
// dies (TCP reset or close without NOTIFICATION, hold timer) is helped.
func translateGracefulRestart(n *config.Neighbor) *api.GracefulRestart {
	if !n.GracefulRestart {
		return nil
	}
	rt := n.RestartTime
	if rt == 0 {
		rt = config.DefaultRestartTime
	}
	return &api.GracefulRestart{
		Enabled:          true,
		RestartTime:      uint32(rt),
		DeferralTime:     uint32(rt),
		LonglivedEnabled: n.LongLivedStaleTime > 0,
	}
}

// translateBFD returns the neighbor's BFD settings (GoBGP takes the
// intervals in microseconds), nil when off. GoBGP resets the BGP session
// (a hard reset: Cease, no graceful restart) when the BFD session expires
// or the neighbor signals it down.
func translateBFD(n *config.Neighbor) *api.BfdPeerConfig {
	if !n.BFD {
		return nil
	}
	or := func(v, def uint64) uint32 {
		if v == 0 {
			v = def
		}
		return uint32(v)
	}
	return &api.BfdPeerConfig{
		Enabled:                  true,
		DesiredMinimumTxInterval: or(n.BFDMinTx, config.DefaultBFDInterval) * 1000,
		RequiredMinimumReceive:   or(n.BFDMinRx, config.DefaultBFDInterval) * 1000,
		DetectionMultiplier:      or(n.BFDMultiplier, config.DefaultBFDMultiplier),
	}
}

// restarting returns peer as added by a speaker whose data plane
// survived a restart: with graceful restart negotiated, GoBGP then
// advertises the restart-state and forwarding-state bits, so the neighbor
// keeps forwarding to us on our stale routes until our End-of-RIB.
// GoBGP holds our announcements back until every neighbor has sent its
// End-of-RIB (or the deferral time passed), and clears the state itself.
func restarting(peer *api.Peer) *api.Peer {
	if !peer.GetGracefulRestart().GetEnabled() {
		return peer
	}
	c := proto.Clone(peer).(*api.Peer)
	c.GracefulRestart.LocalRestarting = true
	return c
}

func translateDefinedSets(cfg *config.Config) []*api.DefinedSet {
	var out []*api.DefinedSet
	for _, ps := range cfg.PrefixSets {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: ps.Name}
		for _, e := range ps.Prefixes {
			if pfx, lo, hi, err := config.ParsePrefixSetEntry(e); err == nil {
				ds.Prefixes = append(ds.Prefixes, &api.Prefix{IpPrefix: pfx.String(), MaskLengthMin: uint32(lo), MaskLengthMax: uint32(hi)})
			}
		}
		out = append(out, ds)
	}
	for _, ns := range cfg.NeighborSets {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: ns.Name}
		for _, e := range ns.Addresses {
			if p, err := config.ParseNeighborSetEntry(e); err == nil {
				ds.List = append(ds.List, p.String())
			}
		}
		out = append(out, ds)
	}
	for _, cs := range cfg.CommunitySets {
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_COMMUNITY, Name: cs.Name}
		ds.List = append(ds.List, cs.Communities...)
		out = append(out, ds)
	}
	return out
}

// neighborSetName is the one-address neighbor set that scopes derived
// policies to one neighbor.
func neighborSetName(addr netip.Addr) string { return "xdprouter-nbr-" + addr.String() }

// derivedPolicyName names the policy evaluated for one neighbor and direction.
// who is a neighbor's address or a [[dynamic-neighbor]] range.
func derivedPolicyName(dir string, who fmt.Stringer, policy string) string {
	return fmt.Sprintf("xdprouter-%s-%s-%s", dir, who, policy)
}

func matchType(opt string) api.MatchSet_Type {
	if opt == config.MatchInvert {
		return api.MatchSet_TYPE_INVERT
	}
	return api.MatchSet_TYPE_ANY
}

func routeAction(a string) api.RouteAction {
	switch a {
	case config.ActionAccept:
		return api.RouteAction_ROUTE_ACTION_ACCEPT
	case config.ActionReject:
		return api.RouteAction_ROUTE_ACTION_REJECT
	}
	// next: no route disposition; GoBGP applies the statement's set actions
	// and continues with the next statement.
	return api.RouteAction_ROUTE_ACTION_UNSPECIFIED
}

// translatePolicies derives the per-neighbor policies and the global
// assignments (see the package comment at the top of this file).
func translatePolicies(cfg *config.Config) (pols []*api.Policy, nsets []*api.DefinedSet, imp, exp *api.PolicyAssignment) {
	byName := make(map[string]*config.Policy, len(cfg.Policies))
	for i := range cfg.Policies {
		byName[cfg.Policies[i].Name] = &cfg.Policies[i]
	}
	neighborSets := map[string][]netip.Prefix{}
	for _, s := range cfg.NeighborSets {
		var l []netip.Prefix
		for _, a := range s.Addresses {
			if p, err := config.ParseNeighborSetEntry(a); err == nil {
				l = append(l, p)
			}
		}
		neighborSets[s.Name] = l
	}
	// Both defaults reject: reached only by paths of neighbors that are
	// not configured (added at run time over gRPC): RFC 8212.
	imp = &api.PolicyAssignment{
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}
	exp = &api.PolicyAssignment{
		Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}
	for i := range cfg.Neighbors {
		n := &cfg.Neighbors[i]
		addr := n.Addr()
		nsets = append(nsets, &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
			Name:        neighborSetName(addr),
			List:        []string{netip.PrefixFrom(addr.WithZone(""), addr.BitLen()).String()},
		})
		for _, d := range []struct {
			dir    string
			name   string
			assign *api.PolicyAssignment
			pre    prelude
		}{
			{"import", importPolicy(cfg, n), imp, func(pname string, scope func() *api.MatchSet) []*api.Statement {
				return append(bogonImportStatements(cfg, n, pname, scope), rpkiImportStatements(cfg, pname, scope)...)
			}},
			{"export", exportPolicy(cfg, n), exp, func(pname string, scope func() *api.MatchSet) []*api.Statement {
				return blackholeExportStatements(cfg, pname, scope)
			}},
		} {
			pol := derivePolicy(d.dir, addr, neighborSetName(addr), d.name, byName, neighborSets, covers(addr), d.pre)
			pols = append(pols, pol)
			d.assign.Policies = append(d.assign.Policies, &api.Policy{Name: pol.Name})
		}
	}
	// Dynamic neighbors' policies come after every configured neighbor's
	// (whose own decide for a neighbor inside a range), one pair per range.
	rpols, rsets := rangePolicies(cfg, byName, neighborSets, imp, exp)
	pols, nsets = append(pols, rpols...), append(nsets, rsets...)
	// Our own paths come from no neighbor: accepted after every neighbor's
	// policy (which cannot match them), before the default.
	local := &api.Policy{Name: localImportPolicy, Statements: []*api.Statement{{
		Name:       localImportPolicy + "-accept",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	}}}
	pols = append(pols, local)
	imp.Policies = append(imp.Policies, &api.Policy{Name: local.Name})
	return pols, nsets, imp, exp
}

// prelude returns the statements that start a derived policy (named
// pname, scoped by scope) before the configured ones: the bogon filter on
// import, the blackhole export filter (see bogon.go).
type prelude func(pname string, scope func() *api.MatchSet) []*api.Statement

// derivePolicy builds the policy evaluated for paths from (import) or to
// (export) the neighbor addr: pre's statements (not for reject-all), the
// configured policy's, then the neighbor's default.
// who names it; scopeSet is the neighbor set its statements are
// conditioned on; in tells whether the neighbors in scope are in a
// user's neighbor set (of prefixes).
func derivePolicy(dir string, who fmt.Stringer, scopeSet, name string, byName map[string]*config.Policy, neighborSets map[string][]netip.Prefix, in func([]netip.Prefix) bool, pre prelude) *api.Policy {
	pname := derivedPolicyName(dir, who, name)
	scope := func() *api.MatchSet {
		return &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: scopeSet}
	}
	final := func(a api.RouteAction) *api.Statement {
		return &api.Statement{
			Name:       pname + "-default",
			Conditions: &api.Conditions{NeighborSet: scope()},
			Actions:    &api.Actions{RouteAction: a},
		}
	}
	p, ok := byName[name]
	if !ok && name != config.PolicyAcceptAll { // reject-all (validation leaves no other unknown name)
		return &api.Policy{Name: pname, Statements: []*api.Statement{final(api.RouteAction_ROUTE_ACTION_REJECT)}}
	}
	pol := &api.Policy{Name: pname}
	if pre != nil {
		pol.Statements = pre(pname, scope)
	}
	if name == config.PolicyAcceptAll {
		pol.Statements = append(pol.Statements, final(api.RouteAction_ROUTE_ACTION_ACCEPT))
		return pol
	}
	for i, st := range p.Statements {
		mt, ra := matchType(st.MatchSetOptions), routeAction(st.Action)
		if st.MatchNeighborSet != "" {
			// A statement holds one neighbor-set condition, which the scope
			// takes. The user's neighbor set is resolved here against this
			// one, known neighbor: the statement either always or never
			// passes that condition for paths of this neighbor.
			if in(neighborSets[st.MatchNeighborSet]) == (mt == api.MatchSet_TYPE_INVERT) {
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
	return pol
}

// covers tells whether a neighbor set holds addr.
func covers(addr netip.Addr) func([]netip.Prefix) bool {
	return func(l []netip.Prefix) bool {
		for _, p := range l {
			if p.Contains(addr) {
				return true
			}
		}
		return false
	}
}

// familyOf returns the unicast family of a prefix.
func familyOf(p netip.Prefix) bgp.Family {
	if p.Addr().Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// staleMargin is added to the longest restart time for StaleBound.
const staleMargin = 30 * time.Second

// StaleBound is how long, at most, the routes a previous instance left in
// the kernel and XDP should wait for BGP to re-learn them before they are
// swept, when Options.OnInitialSync does not come first (a neighbor is
// down or sends no End-of-RIB): the longest restart-time of a neighbor
// with graceful restart, plus staleMargin for the table to arrive after
// the session is back; staleMargin alone without graceful restart.
// Neighbors keep our routes that long (their restart timer), and GoBGP
// waits as long for End-of-RIBs before it announces (deferral time).
func StaleBound(cfg *config.Config) time.Duration {
	var longest uint64
	nbrs := slices.Clone(cfg.Neighbors)
	for _, d := range cfg.DynamicNeighbors { // their sessions keep our routes as long
		if g := cfg.PeerGroupOf(d.PeerGroup); g != nil {
			nbrs = append(nbrs, g.Neighbor)
		}
	}
	for i := range nbrs {
		n := &nbrs[i]
		if !n.GracefulRestart {
			continue
		}
		rt := n.RestartTime
		if rt == 0 {
			rt = config.DefaultRestartTime
		}
		longest = max(longest, rt)
	}
	return time.Duration(longest)*time.Second + staleMargin
}

// translateVRFs turns the [[vrf]]s into GoBGP VRFs. A neighbor in a VRF
// (PeerConf.Vrf) has its ipv4/ipv6-unicast paths turned by GoBGP into
// l3vpn paths with the VRF's route distinguisher and export route
// targets, kept in the global RIB (and shown by `gobgp vrf NAME rib`);
// it is sent the l3vpn paths its VRF imports. Import and export route
// targets are the RD's value: each instance imports exactly its own
// paths, so nothing leaks between instances or into the global table
// (whose unicast families never see l3vpn paths). VRFs without a route
// distinguisher (BGP off) are left out.
func translateVRFs(cfg *config.Config) ([]*api.Vrf, vrfTables, error) {
	var out []*api.Vrf
	tables := vrfTables{}
	for _, v := range cfg.VRFs {
		if v.RouteDistinguisher == "" {
			continue
		}
		rd, err := bgp.ParseRouteDistinguisher(v.RouteDistinguisher)
		if err != nil {
			return nil, nil, fmt.Errorf("vrf %s: route-distinguisher %q: %w", v.Name, v.RouteDistinguisher, err)
		}
		rt, err := bgp.ParseRouteTarget(v.RouteDistinguisher)
		if err != nil {
			return nil, nil, fmt.Errorf("vrf %s: route target %q: %w", v.Name, v.RouteDistinguisher, err)
		}
		ard, err := apiutil.MarshalRD(rd)
		if err != nil {
			return nil, nil, fmt.Errorf("vrf %s: %w", v.Name, err)
		}
		rts, err := apiutil.MarshalRTs([]bgp.ExtendedCommunityInterface{rt})
		if err != nil {
			return nil, nil, fmt.Errorf("vrf %s: %w", v.Name, err)
		}
		out = append(out, &api.Vrf{Name: v.Name, Rd: ard, ImportRt: rts, ExportRt: rts, Id: uint32(v.Table)})
		tables[rd.String()] = v.Table
	}
	return out, tables, nil
}
