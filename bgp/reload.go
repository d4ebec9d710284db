package bgp

// Live reconfiguration. Reload diffs the running plan against the new one
// and applies only the difference through GoBGP's API, in an order that
// never leaves a neighbor without its policies:
//
//  1. Policies, step one: SetPolicies with the union of the old and the new
//     plan's defined sets and policies (the new definition wins on a name
//     clash). GoBGP builds and validates the whole routing policy before it
//     swaps it in, and re-applies the current assignments, which all still
//     name existing policies. A failure here changes nothing.
//  2. DeletePeer for removed neighbors and for changed neighbors whose
//     change GoBGP cannot apply in place (their routes are withdrawn, and
//     OnBest sees it).
//  3. SetPolicyAssignment: the global import and export lists of the new
//     plan (each call replaces one list).
//  4. Policies, step two: SetPolicies with exactly the new plan, dropping
//     what nothing refers to any more.
//     Then the [[rpki]] caches and [[bmp]] stations: removed, changed
//     (deleted and added again), added.
//  5. AddPeer for added and replaced neighbors (their derived policies are
//     in place before their session can bring routes), UpdatePeer for
//     neighbors whose change is live-updatable (timers, max-prefixes).
//  6. Soft reset in (import changed) and out (export changed) for the
//     neighbors kept: GoBGP keeps every neighbor's whole Adj-RIB-In before
//     import policy, so soft-in re-runs the import policy locally, without
//     a ROUTE-REFRESH; paths it now rejects become withdrawals, paths it
//     now accepts are installed, and OnBest sees both. Soft-out re-runs the
//     export policy and withdraws what it no longer allows.
//  7. [[network]]: originate the new prefixes, withdraw the removed ones;
//     connected prefixes are re-applied (redistribute-connected may change,
//     and a prefix leaving [[network]] may still be connected).
//  8. A changed blackhole rule (accept-blackhole, blackhole-communities):
//     the best paths carrying a blackhole community are emitted again, as
//     blackholes or not (see bogon.go).
//
// Why not SetPolicies alone: in GoBGP v4 it ignores the request's
// assignments and re-applies the current ones by name; a name the new
// policies lack is dropped with a log line, leaving the global list short
// and its default (accept) in charge until the assignment is set again.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
	"google.golang.org/protobuf/proto"

	"github.com/xdprouter/xdprouter/config"
)

// ErrNeedsRestart is wrapped by Reload's error when the new configuration
// changes a setting that cannot change while the speaker runs.
var ErrNeedsRestart = errors.New("changing it needs a restart")

// Reload brings a running speaker from its current configuration to cfg,
// applying only the difference: neighbors that did not change keep their
// sessions. Best-path changes it causes (withdrawals included) reach OnBest
// as usual.
//
// Refused, with nothing changed: a change of router.asn, router.router-id,
// bgp.listen-port, bgp.listen-addresses, bgp.use-multiple-paths or
// api.grpc-listen (the error names each key and wraps ErrNeedsRestart),
// and a configuration whose policies GoBGP rejects. cfg must have passed
// config validation (config.Load): Reload does not check it again.
//
// After success the speaker's configuration is cfg. A failure after
// validation (a neighbor GoBGP refuses to add, say) is best effort: the
// steps that can go on do, the error names every step that failed, the
// speaker keeps diffing against its previous configuration, and GoBGP holds
// a mix of both. Each step is idempotent against GoBGP's actual state
// (neighbors are compared with GoBGP's list, networks with what was
// originated), so a second Reload with the same or a corrected
// configuration converges; it may reset sessions of neighbors that changed
// in the failed attempt once more.
//
// On a stopped speaker Reload only validates cfg and keeps it for the next
// Start.
func (s *Speaker) Reload(ctx context.Context, cfg *config.Config) error {
	if cfg == nil {
		return errors.New("bgp: reload: no config")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Unnumbered neighbors: with the peers found now (the loop adds the
	// others).
	want := cfg
	if err := restartKeys(s.cfg, want); err != nil { // no neighbor key among them
		return fmt.Errorf("bgp: reload refused: %w", err)
	}
	found := foundNow(want, s.found)
	cfg, np, err := translateUnnumbered(want, found)
	if err != nil {
		return fmt.Errorf("bgp: reload refused: %w", err)
	}
	if s.srv == nil {
		s.rule.Store(newBlackholeRule(cfg))
		s.cfg, s.plan, s.want, s.found = cfg, np, want, found
		s.networks = make(map[netip.Prefix]bool, len(np.networks))
		for _, n := range np.networks {
			s.networks[n] = true
		}
		return nil
	}
	if err := s.reloadLocked(ctx, cfg, np); err != nil {
		return err
	}
	s.want, s.found = want, found
	return nil
}

// restartKeys reports the settings that differ between the running and the
// new configuration and cannot be changed live.
func restartKeys(old, cfg *config.Config) error {
	var errs []error
	check := func(key string, equal bool, was, is any) {
		if !equal {
			errs = append(errs, fmt.Errorf("%s: %w (running %v, new %v)", key, ErrNeedsRestart, was, is))
		}
	}
	check("router.asn", old.Router.ASN == cfg.Router.ASN, old.Router.ASN, cfg.Router.ASN)
	check("router.router-id", sameAddr(old.Router.RouterID, cfg.Router.RouterID), old.Router.RouterID, cfg.Router.RouterID)
	port := func(p int32) int32 {
		if p == 0 {
			return 179
		}
		return p
	}
	check("bgp.listen-port", port(old.BGP.ListenPort) == port(cfg.BGP.ListenPort), port(old.BGP.ListenPort), port(cfg.BGP.ListenPort))
	check("bgp.listen-addresses", slices.Equal(addrSet(old.BGP.ListenAddresses), addrSet(cfg.BGP.ListenAddresses)),
		old.BGP.ListenAddresses, cfg.BGP.ListenAddresses)
	check("bgp.use-multiple-paths", old.BGP.UseMultiplePaths == cfg.BGP.UseMultiplePaths, old.BGP.UseMultiplePaths, cfg.BGP.UseMultiplePaths)
	check("bgp.pic", old.BGP.PIC == cfg.BGP.PIC, old.BGP.PIC, cfg.BGP.PIC)
	check("vrf", reflect.DeepEqual(old.VRFs, cfg.VRFs), vrfNames(old), vrfNames(cfg))
	check("api.grpc-listen", old.API.GRPCListen == cfg.API.GRPCListen, fmt.Sprintf("%q", old.API.GRPCListen), fmt.Sprintf("%q", cfg.API.GRPCListen))
	return errors.Join(errs...)
}

func sameAddr(a, b string) bool {
	x, errX := netip.ParseAddr(strings.TrimSpace(a))
	y, errY := netip.ParseAddr(strings.TrimSpace(b))
	if errX != nil || errY != nil {
		return a == b
	}
	return x == y
}

// addrSet normalizes a list of addresses: parsed where possible, sorted,
// without duplicates.
func addrSet(l []string) []string {
	out := make([]string, 0, len(l))
	for _, a := range l {
		if x, err := netip.ParseAddr(strings.TrimSpace(a)); err == nil {
			a = x.String()
		}
		out = append(out, a)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// peerChange is what a neighbor present before and after needs.
type peerChange int

const (
	peerSame    peerChange = iota
	peerUpdate             // UpdatePeer: only settings GoBGP updates in place
	peerReplace            // DeletePeer + AddPeer
)

// classifyPeer compares two translated neighbors. GoBGP v4's UpdatePeer
// updates timers, prefix limits and BFD settings in place; any other change of its
// PeerConf or transport (peer-asn, password, transport, multihop, families)
// it applies by deleting and re-adding the neighbor internally, so that is
// done explicitly, in the order that keeps policies in place.
//
// The description is a label only, but GoBGP counts it as such a change
// too (Cease, routes withdrawn and learned again): a change of it alone is
// peerSame, and GoBGP keeps the old text (see liveDescription).
func classifyPeer(old, cur *api.Peer) peerChange {
	strip := func(p *api.Peer, timers bool) *api.Peer {
		c := proto.Clone(p).(*api.Peer)
		c.Conf.Description = ""
		if timers {
			c.Timers = nil
			c.Bfd = nil
			for _, as := range c.AfiSafis {
				as.PrefixLimits = nil
			}
		}
		return c
	}
	switch {
	case proto.Equal(strip(old, false), strip(cur, false)):
		return peerSame
	case proto.Equal(strip(old, true), strip(cur, true)):
		return peerUpdate
	}
	return peerReplace
}

// liveDescription returns peer as it may be handed to UpdatePeer: with the
// description GoBGP has, so that the update does not reset the session.
func liveDescription(peer *api.Peer, running string) *api.Peer {
	c := proto.Clone(peer).(*api.Peer)
	c.Conf.Description = running
	return c
}

func planPeers(p *plan) map[netip.Addr]*api.Peer {
	m := make(map[netip.Addr]*api.Peer, len(p.peers))
	for _, peer := range p.peers {
		if a, err := netip.ParseAddr(peer.Conf.NeighborAddress); err == nil {
			m[a] = peer
		}
	}
	return m
}

// neighborPolicyNames maps each neighbor of cfg to its derived import and
// export policy names.
func neighborPolicyNames(cfg *config.Config) map[netip.Addr][2]string {
	m := make(map[netip.Addr][2]string, len(cfg.Neighbors))
	for i := range cfg.Neighbors {
		n := &cfg.Neighbors[i]
		a, err := netip.ParseAddr(n.Address)
		if err != nil {
			continue
		}
		m[a] = [2]string{
			derivedPolicyName("import", a, importPolicy(cfg, n)),
			derivedPolicyName("export", a, exportPolicy(cfg, n)),
		}
	}
	return m
}

type setKey struct {
	typ  api.DefinedType
	name string
}

func (p *plan) policy(name string) *api.Policy {
	for _, pol := range p.policies {
		if pol.Name == name {
			return pol
		}
	}
	return nil
}

func (p *plan) set(k setKey) *api.DefinedSet {
	for _, ds := range p.definedSets {
		if ds.DefinedType == k.typ && ds.Name == k.name {
			return ds
		}
	}
	return nil
}

// setsOf lists the defined sets a policy's statements refer to.
func setsOf(pol *api.Policy) []setKey {
	var out []setKey
	for _, st := range pol.GetStatements() {
		c := st.GetConditions()
		if ms := c.GetPrefixSet(); ms != nil {
			out = append(out, setKey{api.DefinedType_DEFINED_TYPE_PREFIX, ms.Name})
		}
		if ms := c.GetNeighborSet(); ms != nil {
			out = append(out, setKey{api.DefinedType_DEFINED_TYPE_NEIGHBOR, ms.Name})
		}
		if ms := c.GetCommunitySet(); ms != nil {
			out = append(out, setKey{api.DefinedType_DEFINED_TYPE_COMMUNITY, ms.Name})
		}
	}
	return out
}

// samePolicy reports whether a neighbor's derived policy in the old plan
// (oldName) and in the new plan (newName) decide the same way: the policies
// and every set they refer to are identical.
func samePolicy(op, np *plan, oldName, newName string) bool {
	a, b := op.policy(oldName), np.policy(newName)
	if a == nil || b == nil || !proto.Equal(a, b) {
		return false
	}
	for _, k := range setsOf(b) {
		if !proto.Equal(op.set(k), np.set(k)) {
			return false
		}
	}
	return true
}

// samePolicyState reports whether two plans hand GoBGP the same sets,
// policies and assignments.
func samePolicyState(a, b *plan) bool {
	return slices.EqualFunc(a.definedSets, b.definedSets, func(x, y *api.DefinedSet) bool { return proto.Equal(x, y) }) &&
		slices.EqualFunc(a.policies, b.policies, func(x, y *api.Policy) bool { return proto.Equal(x, y) }) &&
		proto.Equal(a.importAssignment, b.importAssignment) &&
		proto.Equal(a.exportAssignment, b.exportAssignment)
}

// unionPolicies is the new plan's sets and policies plus the old plan's that
// the new one lacks (by name).
func unionPolicies(op, np *plan) *api.SetPoliciesRequest {
	req := &api.SetPoliciesRequest{
		DefinedSets: slices.Clone(np.definedSets),
		Policies:    slices.Clone(np.policies),
	}
	for _, ds := range op.definedSets {
		if np.set(setKey{ds.DefinedType, ds.Name}) == nil {
			req.DefinedSets = append(req.DefinedSets, ds)
		}
	}
	for _, pol := range op.policies {
		if np.policy(pol.Name) == nil {
			req.Policies = append(req.Policies, pol)
		}
	}
	return req
}

func (s *Speaker) reloadLocked(ctx context.Context, cfg *config.Config, np *plan) error {
	op, srv := s.plan, s.srv
	var errs []error
	// The new blackhole rule applies to every path from now on: paths the
	// policy changes below bring, and (step 8) those already installed.
	oldRule, newRule := s.rule.Load(), newBlackholeRule(cfg)
	s.rule.Store(newRule)
	fail := func(err error) error {
		errs = append(errs, err)
		return fmt.Errorf("bgp: reload: %w", errors.Join(errs...))
	}

	// What GoBGP actually has, not only what we remember.
	actual := map[netip.Addr]bool{}
	actualDesc := map[netip.Addr]string{}
	err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetConf().GetPeerGroup() != "" {
			return // a dynamic neighbor's session (dynamic.go)
		}
		if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil {
			actual[a] = true
			actualDesc[a] = p.GetConf().GetDescription()
		}
	})
	if err != nil {
		return fail(fmt.Errorf("list neighbors: %w", err))
	}
	oldPeers, newPeers := planPeers(op), planPeers(np)
	var removed, added, replaced, updated, kept []netip.Addr
	for a := range actual {
		if newPeers[a] == nil {
			removed = append(removed, a)
		}
	}
	for a, peer := range newPeers {
		switch {
		case !actual[a]:
			added = append(added, a)
		case oldPeers[a] == nil:
			replaced = append(replaced, a) // left over from a failed reload: state unknown
		default:
			switch classifyPeer(oldPeers[a], peer) {
			case peerSame:
				kept = append(kept, a)
			case peerUpdate:
				updated = append(updated, a)
				kept = append(kept, a)
			case peerReplace:
				replaced = append(replaced, a)
			}
		}
	}
	for _, l := range [][]netip.Addr{removed, added, replaced, updated, kept} {
		slices.SortFunc(l, netip.Addr.Compare)
	}

	// 1. Union of old and new policies: validates the new ones, changes no
	// decision yet except where a set or policy of the same name changed.
	policiesChanged := !samePolicyState(op, np)
	union := unionPolicies(op, np)
	leftovers := len(union.DefinedSets) > len(np.definedSets) || len(union.Policies) > len(np.policies)
	union.DefinedSets = s.withAdmitted(union.DefinedSets) // keep the admitted sessions
	if policiesChanged {
		if err := srv.SetPolicies(ctx, union); err != nil {
			return fmt.Errorf("bgp: reload refused: policies: %w", err)
		}
	}

	// 2. Neighbors going away, or coming back with a new configuration.
	for _, a := range slices.Concat(removed, replaced) {
		if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("delete neighbor %s: %w", a, err))
		}
	}
	dyn := diffDynamic(op, np)
	errs = append(errs, s.dropDynamic(ctx, dyn)...)

	// 3. and 4. The new assignments, then exactly the new policies.
	if policiesChanged {
		if err := setAssignments(ctx, srv, np); err != nil {
			// Adding neighbors now would let their routes meet the global
			// default (accept) instead of their policies: stop here.
			return fail(fmt.Errorf("policies: %w; added and replaced neighbors were not added, networks not changed", err))
		}
		if leftovers {
			if err := srv.SetPolicies(ctx, &api.SetPoliciesRequest{DefinedSets: s.withAdmitted(np.definedSets), Policies: np.policies}); err != nil {
				errs = append(errs, fmt.Errorf("policies: removing unused ones: %w", err))
			}
		}
	}

	// RTR caches and BMP stations (a VRP change they cause re-evaluates
	// paths through watchRPKI).
	errs = append(errs, reloadStations(ctx, srv, op, np)...)

	// 5. New and replaced neighbors, in-place updates.
	for _, a := range slices.Concat(added, replaced) {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: unarmed(newPeers[a])}); err != nil {
			errs = append(errs, fmt.Errorf("add neighbor %s: %w", a, err))
		}
	}
	if err := addDynamic(ctx, srv, dyn.addGroups, dyn.addRanges); err != nil {
		errs = append(errs, err)
	}
	softIn := map[netip.Addr]bool{}
	for _, a := range updated {
		rsp, err := srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: unarmed(liveDescription(newPeers[a], actualDesc[a]))})
		if err != nil {
			errs = append(errs, fmt.Errorf("update neighbor %s: %w", a, err))
			continue
		}
		if rsp.GetNeedsSoftResetIn() {
			softIn[a] = true
		}
	}

	// 6. Re-run changed policies on the routes of kept sessions.
	softOut := map[netip.Addr]bool{}
	if policiesChanged {
		oldNames, newNames := neighborPolicyNames(s.cfg), neighborPolicyNames(cfg)
		for _, a := range kept {
			o, n := oldNames[a], newNames[a]
			if !samePolicy(op, np, o[0], n[0]) {
				softIn[a] = true
			}
			if !samePolicy(op, np, o[1], n[1]) {
				softOut[a] = true
			}
		}
		// The sessions of ranges kept: their policies may have changed
		// (cheap: servers send a few routes).
		for a, r := range s.admitted {
			if slices.ContainsFunc(dyn.kept, func(k dynRange) bool { return k.prefix == r }) {
				softIn[a], softOut[a] = true, true
			}
		}
	}
	s.softMu.Lock()
	for _, a := range sortedAddrs(softIn) {
		if err := srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_IN}); err != nil {
			errs = append(errs, fmt.Errorf("soft reset in %s: %w", a, err))
		}
	}
	s.softMu.Unlock()
	if len(softIn) > 0 && s.backup != nil {
		s.backup.requestResync() // re-evaluated paths come with no UPDATE
	}
	for _, a := range sortedAddrs(softOut) {
		if err := srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil {
			errs = append(errs, fmt.Errorf("soft reset out %s: %w", a, err))
		}
	}

	// 7. Networks (add before withdrawing), then connected prefixes.
	want := make(map[netip.Prefix]bool, len(np.networks))
	for _, n := range np.networks {
		want[n] = true
	}
	var netAdded, netRemoved []netip.Prefix
	for _, n := range np.networks {
		if s.networks[n] {
			continue
		}
		// A connected announcement of the same prefix is replaced by this
		// origination (same path key); forget its UUID.
		delete(s.connected, n)
		if _, err := s.originate(n); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", n, err))
			continue
		}
		s.networks[n] = true
		netAdded = append(netAdded, n)
	}
	for n := range s.networks {
		if want[n] {
			continue
		}
		path, err := localPath(n)
		if err == nil {
			err = srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("withdraw network %s: %w", n, err))
			continue
		}
		delete(s.networks, n)
		netRemoved = append(netRemoved, n)
	}
	// 8. Blackhole routes: a changed rule (accept-blackhole, the
	// communities) re-decides the prefixes with tagged paths, which
	// GoBGP reports no event for if their attributes stayed the same.
	if !oldRule.equal(newRule) {
		if err := s.rewalkBlackholes(oldRule, newRule); err != nil {
			errs = append(errs, fmt.Errorf("re-evaluate blackhole routes: %w", err))
		}
	}

	oldCfg := s.cfg
	s.cfg = cfg // setConnectedLocked reads redistribute-connected
	if err := s.setConnectedLocked(); err != nil {
		errs = append(errs, err)
	}
	s.peers = nil // the Peers cache

	if len(errs) > 0 {
		s.cfg = oldCfg
		s.reloadFlowspec()
		return fmt.Errorf("bgp: reload: %w", errors.Join(errs...))
	}
	s.plan = np
	if s.admitWake != nil {
		s.admitWake() // limits and ranges may have changed
	}
	s.reloadFlowspec()
	if s.eor != nil {
		s.eor.setNeighbors(planAddrs(np))
	}
	s.log.Info("bgp configuration reloaded",
		"neighbors-added", added, "neighbors-removed", removed, "neighbors-replaced", replaced,
		"neighbors-updated", updated, "dynamic-ranges-added", len(dyn.addRanges), "dynamic-ranges-removed", len(dyn.dropRanges),
		"soft-reset-in", sortedAddrs(softIn),
		"soft-reset-out", sortedAddrs(softOut), "policies-changed", policiesChanged,
		"networks-added", netAdded, "networks-removed", netRemoved)
	return nil
}

// rewalkBlackholes re-emits the best paths of the prefixes that have a
// path tagged with a blackhole community of either rule. Callers hold s.mu.
func (s *Speaker) rewalkBlackholes(old, cur *blackholeRule) error {
	if s.backup != nil {
		s.backup.requestResync() // its worker walks the whole RIB, in order
		return nil
	}
	if s.best == nil {
		return nil
	}
	tagged := func(p *apiutil.Path) bool { return old.tagged(p) || cur.tagged(p) }
	return s.best.rewalk(s.guarded(s.srv), tagged, func(ups []PathUpdate) {
		if !s.stopping.Load() {
			s.onBest(ups)
		}
	})
}

// reloadFlowspec hands the neighbors' Flowspec settings to the tracker;
// callers hold s.mu.
func (s *Speaker) reloadFlowspec() {
	if s.flowspec != nil {
		s.flowspec.setNeighbors(flowspecNeighbors(s.cfg))
	}
}

func sortedAddrs(m map[netip.Addr]bool) []netip.Addr {
	return slices.SortedFunc(maps.Keys(m), netip.Addr.Compare)
}

// vrfNames lists the [[vrf]]s for a log line.
func vrfNames(c *config.Config) []string {
	var out []string
	for _, v := range c.VRFs {
		out = append(out, fmt.Sprintf("%s(table %d, rd %s)", v.Name, v.Table, v.RouteDistinguisher))
	}
	return out
}

// reloadStations brings GoBGP's RTR caches and BMP stations from what it
// has to the new plan's: removes those not wanted any more or changed
// from op (lifetime, route monitoring: GoBGP changes neither in place),
// adds those missing. Idempotent against GoBGP's actual lists.
func reloadStations(ctx context.Context, srv *server.BgpServer, op, np *plan) []error {
	var errs []error
	haveRPKI := map[string]bool{}
	err := srv.ListRpki(ctx, &api.ListRpkiRequest{}, func(r *api.Rpki) {
		haveRPKI[rpkiKey(&api.AddRpkiRequest{Address: r.GetConf().GetAddress(), Port: r.GetConf().GetRemotePort()})] = true
	})
	if err != nil {
		return []error{fmt.Errorf("list rpki caches: %w", err)}
	}
	oldRPKI := map[string]*api.AddRpkiRequest{}
	for _, r := range op.rpki {
		oldRPKI[rpkiKey(r)] = r
	}
	newRPKI := map[string]*api.AddRpkiRequest{}
	for _, r := range np.rpki {
		newRPKI[rpkiKey(r)] = r
	}
	for k := range haveRPKI {
		if n := newRPKI[k]; n == nil || oldRPKI[k] == nil || !proto.Equal(n, oldRPKI[k]) {
			port, _ := strconv.Atoi(k[strings.LastIndexByte(k, ':')+1:])
			if err := srv.DeleteRpki(ctx, &api.DeleteRpkiRequest{Address: k, Port: uint32(port)}); err != nil {
				errs = append(errs, fmt.Errorf("remove rpki %s: %w", k, err))
				continue
			}
			delete(haveRPKI, k)
		}
	}
	for _, r := range np.rpki {
		if !haveRPKI[rpkiKey(r)] {
			if err := srv.AddRpki(ctx, r); err != nil {
				errs = append(errs, fmt.Errorf("add rpki %s: %w", rpkiKey(r), err))
			}
		}
	}

	bmpKey := func(addr string, port uint32) string { return net.JoinHostPort(addr, strconv.Itoa(int(port))) }
	haveBMP := map[string]*api.DeleteBmpRequest{}
	err = srv.ListBmp(ctx, &api.ListBmpRequest{}, func(st *api.ListBmpResponse_BmpStation) {
		c := st.GetConf()
		haveBMP[bmpKey(c.GetAddress(), c.GetPort())] = &api.DeleteBmpRequest{Address: c.GetAddress(), Port: c.GetPort()}
	})
	if err != nil {
		return append(errs, fmt.Errorf("list bmp stations: %w", err))
	}
	oldBMP := map[string]*api.AddBmpRequest{}
	for _, b := range op.bmp {
		oldBMP[bmpKey(b.Address, b.Port)] = b
	}
	newBMP := map[string]*api.AddBmpRequest{}
	for _, b := range np.bmp {
		newBMP[bmpKey(b.Address, b.Port)] = b
	}
	for k, del := range haveBMP {
		if n := newBMP[k]; n == nil || oldBMP[k] == nil || !proto.Equal(n, oldBMP[k]) {
			if err := srv.DeleteBmp(ctx, del); err != nil {
				errs = append(errs, fmt.Errorf("remove bmp %s: %w", k, err))
				continue
			}
			delete(haveBMP, k)
		}
	}
	for _, b := range np.bmp {
		if haveBMP[bmpKey(b.Address, b.Port)] == nil {
			if err := srv.AddBmp(ctx, b); err != nil {
				errs = append(errs, fmt.Errorf("add bmp %s: %w", bmpKey(b.Address, b.Port), err))
			}
		}
	}
	return errs
}
