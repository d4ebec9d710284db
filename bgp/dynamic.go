package bgp

// Dynamic neighbors ([[dynamic-neighbor]]): GoBGP accepts a connection from
// any address of a range into a new peer built from a peer group
// (AddPeerGroup, AddDynamicNeighbor), and deletes that peer when its
// session ends. Static members of a [[peer-group]] are resolved by config
// and are ordinary neighbors here.
//
// Policies. A range gets a pair of derived policies like a neighbor (see
// translate.go), scoped not by the range but by a neighbor set of the
// range's *admitted* sessions, "xdprouter-dyn-PREFIX". GoBGP has no hook
// at accept time, so the limit is enforced after the fact: a peer event
// wakes the admission worker, which lists GoBGP's peers and, per range,
// admits new sessions while there is room (adds the address to the set,
// then soft-resets the session both ways so that what it sent before is
// re-evaluated and it is sent our routes) and deletes the rest (Cease).
// Until admitted, a session's routes meet the global default, reject:
// a session over the limit never has a route installed, whatever the
// timing. A set never is empty: GoBGP's neighbor condition matches every
// neighbor with an empty set, so it holds an address no peer has (0.0.0.0
// or ::).

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
	"google.golang.org/protobuf/proto"

	"github.com/xdprouter/xdprouter/config"
)

// dynRange is one [[dynamic-neighbor]] range.
type dynRange struct {
	prefix netip.Prefix
	group  string
	limit  int
}

// dynamicSetName is the neighbor set of a range's admitted sessions.
func dynamicSetName(p netip.Prefix) string { return "xdprouter-dyn-" + p.String() }

// sentinel is the entry that keeps a range's set from being empty: an
// address no session comes from.
func sentinel(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "0.0.0.0/32"
	}
	return "::/128"
}

// hostPrefix is an address as a neighbor-set entry.
func hostPrefix(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }

// translateDynamic returns the peer groups the ranges use (in order of
// first use) and the ranges.
func translateDynamic(cfg *config.Config) ([]*api.PeerGroup, []dynRange) {
	var groups []*api.PeerGroup
	var ranges []dynRange
	for _, d := range cfg.DynamicNeighbors {
		p := d.Range().Masked()
		g := cfg.PeerGroupOf(d.PeerGroup)
		if !p.IsValid() || g == nil {
			continue
		}
		ranges = append(ranges, dynRange{prefix: p, group: g.Name, limit: int(d.Limit)})
		if !slices.ContainsFunc(groups, func(x *api.PeerGroup) bool { return x.Conf.PeerGroupName == g.Name }) {
			n := groupNeighbor(cfg, g)
			groups = append(groups, translatePeerGroup(cfg, g.Name, &n))
		}
	}
	return groups, ranges
}

// groupNeighbor is the neighbor a peer group's dynamic sessions are:
// its keys (defaults applied by config), families, when it has none, the
// unicast families of the ranges that use it.
func groupNeighbor(cfg *config.Config, g *config.PeerGroup) config.Neighbor {
	n := g.Neighbor
	if len(n.Families) == 0 {
		var v4, v6 bool
		for _, d := range cfg.DynamicNeighbors {
			if d.PeerGroup == g.Name {
				v4 = v4 || d.Range().Addr().Is4()
				v6 = v6 || d.Range().Addr().Is6()
			}
		}
		if v4 {
			n.Families = append(n.Families, config.FamilyIPv4Unicast)
		}
		if v6 {
			n.Families = append(n.Families, config.FamilyIPv6Unicast)
		}
	}
	return n
}

// translatePeerGroup is a neighbor's translation as a GoBGP peer group.
// Its sessions are passive. Unlike a configured neighbor's, the prefix
// limit is GoBGP's own from the start (see prefixlimit.go for why static
// neighbors' is not): a dynamic session over it is shut down and gone,
// and servers send a handful of prefixes, which GoBGP counts cheaply.
func translatePeerGroup(cfg *config.Config, name string, n *config.Neighbor) *api.PeerGroup {
	peer := translateNeighbor(cfg, n)
	peer.Transport.PassiveMode = true
	return &api.PeerGroup{
		Conf: &api.PeerGroupConf{
			PeerGroupName: name,
			PeerAsn:       n.PeerASN, // 0: any AS
			Description:   n.Description,
			AuthPassword:  n.Password,
		},
		Transport:       peer.Transport,
		Timers:          peer.Timers,
		EbgpMultihop:    peer.EbgpMultihop,
		GracefulRestart: peer.GracefulRestart,
		AfiSafis:        peer.AfiSafis,
		Bfd:             peer.Bfd,
	}
}

// rangePolicies derives each range's import and export policies and
// appends them to the assignments; it returns them with the ranges'
// admitted-session sets (holding only the sentinel).
func rangePolicies(cfg *config.Config, byName map[string]*config.Policy, neighborSets map[string][]netip.Prefix, imp, exp *api.PolicyAssignment) (pols []*api.Policy, nsets []*api.DefinedSet) {
	for _, d := range cfg.DynamicNeighbors {
		pfx := d.Range().Masked()
		g := cfg.PeerGroupOf(d.PeerGroup)
		if !pfx.IsValid() || g == nil {
			continue
		}
		n := groupNeighbor(cfg, g)
		set := dynamicSetName(pfx)
		nsets = append(nsets, &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
			Name:        set,
			List:        []string{sentinel(pfx)},
		})
		// A statement's match-neighbor-set holds for a range's sessions
		// when one of the set's prefixes covers the whole range.
		in := func(l []netip.Prefix) bool {
			return slices.ContainsFunc(l, func(p netip.Prefix) bool { return p.Bits() <= pfx.Bits() && p.Contains(pfx.Addr()) })
		}
		ip := derivePolicy("import", pfx, set, importPolicy(cfg, &n), byName, neighborSets, in,
			func(pname string, scope func() *api.MatchSet) []*api.Statement {
				return bogonImportStatements(cfg, &n, pname, scope)
			})
		ep := derivePolicy("export", pfx, set, exportPolicy(cfg, &n), byName, neighborSets, in,
			func(pname string, scope func() *api.MatchSet) []*api.Statement {
				return blackholeExportStatements(cfg, pname, scope)
			})
		pols = append(pols, ip, ep)
		imp.Policies = append(imp.Policies, &api.Policy{Name: ip.Name})
		exp.Policies = append(exp.Policies, &api.Policy{Name: ep.Name})
	}
	return pols, nsets
}

// addDynamic adds the plan's peer groups and ranges to GoBGP (after the
// policies: a range's sessions are scoped by its set from the start).
func addDynamic(ctx context.Context, srv *server.BgpServer, groups []*api.PeerGroup, ranges []dynRange) error {
	for _, g := range groups {
		if err := srv.AddPeerGroup(ctx, &api.AddPeerGroupRequest{PeerGroup: g}); err != nil {
			return fmt.Errorf("peer group %s: %w", g.Conf.PeerGroupName, err)
		}
	}
	for _, r := range ranges {
		if err := srv.AddDynamicNeighbor(ctx, &api.AddDynamicNeighborRequest{DynamicNeighbor: &api.DynamicNeighbor{
			Prefix: r.prefix.String(), PeerGroup: r.group}}); err != nil {
			return fmt.Errorf("dynamic neighbor %s: %w", r.prefix, err)
		}
	}
	return nil
}

// rangeOf returns the range holding a, if any.
func rangeOf(ranges []dynRange, a netip.Addr) (dynRange, bool) {
	for _, r := range ranges {
		if r.prefix.Contains(a) {
			return r, true
		}
	}
	return dynRange{}, false
}

// admitEvery bounds how stale the admission state gets without a peer
// event (a missed one, a reload).
const admitEvery = 30 * time.Second

// watchAdmission wakes the admission worker on every peer event and runs
// it until ctx ends.
func (s *Speaker) watchAdmission(ctx context.Context, srv *server.BgpServer) error {
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	s.admitWake = poke
	err := srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(*apiutil.WatchEventMessage_PeerEvent, time.Time) { poke() },
	}, server.WatchPeer())
	if err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(admitEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-t.C:
			}
			s.admit(ctx)
		}
	}()
	return nil
}

// admit brings the ranges' admitted sets to GoBGP's dynamic peers: gone
// sessions leave their set, new ones enter it while their range has room
// and are deleted otherwise.
func (s *Speaker) admit(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock() // serialized with Reload, which rewrites the sets
	srv := s.srv
	if srv == nil || s.stopping.Load() || (len(s.plan.ranges) == 0 && len(s.admitted) == 0) {
		return
	}
	static := planPeers(s.plan)
	present := map[netip.Addr]netip.Prefix{}
	err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		a := peerAddr(p)
		if !a.IsValid() || static[a] != nil || p.GetConf().GetPeerGroup() == "" {
			return
		}
		if r, ok := rangeOf(s.plan.ranges, a); ok {
			present[a] = r.prefix
		}
	})
	if err != nil {
		s.log.Warn("dynamic neighbors: list peers", "err", err)
		return
	}
	count := map[netip.Prefix]int{}
	for a, r := range s.admitted {
		if present[a] == r {
			count[r]++
			continue
		}
		// Gone (or its range changed): free its place.
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: dynamicSetName(r), List: []string{hostPrefix(a)}}
		if err := srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: ds}); err != nil {
			s.log.Debug("dynamic neighbors: drop from admitted set", "peer", a, "range", r, "err", err)
		}
		delete(s.admitted, a)
	}
	var fresh []netip.Addr
	for a := range present {
		if _, ok := s.admitted[a]; !ok {
			fresh = append(fresh, a)
		}
	}
	slices.SortFunc(fresh, netip.Addr.Compare)
	for _, a := range fresh {
		r, _ := rangeOf(s.plan.ranges, a)
		if count[r.prefix] >= r.limit {
			s.tripsMu.Lock()
			if s.refused == nil {
				s.refused = map[netip.Prefix]uint64{}
			}
			s.refused[r.prefix]++
			s.tripsMu.Unlock()
			// Once per address until it gets in: a refused peer retries
			// every connect-retry, the metric counts each time.
			lvl := slog.LevelWarn
			if s.refusedLogged[a] {
				lvl = slog.LevelDebug
			}
			s.refusedLogged[a] = true
			s.log.Log(ctx, lvl, "dynamic neighbor refused: its range is at its limit", "peer", a, "range", r.prefix, "limit", r.limit)
			if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
				s.log.Warn("dynamic neighbors: delete a session over the limit", "peer", a, "err", err)
			}
			continue
		}
		ds := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: dynamicSetName(r.prefix), List: []string{hostPrefix(a)}}
		if err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: ds}); err != nil {
			s.log.Warn("dynamic neighbors: admit", "peer", a, "range", r.prefix, "err", err)
			continue
		}
		s.admitted[a] = r.prefix
		delete(s.refusedLogged, a)
		count[r.prefix]++
		s.log.Info("dynamic neighbor admitted", "peer", a, "range", r.prefix, "group", r.group, "sessions", count[r.prefix], "limit", r.limit)
		// What it sent before met the default (reject), and it was sent
		// nothing: re-run both policies. A session not yet established
		// has nothing to redo (the error says so).
		for _, dir := range []api.ResetPeerRequest_Direction{api.ResetPeerRequest_DIRECTION_IN, api.ResetPeerRequest_DIRECTION_OUT} {
			if err := srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: dir}); err != nil {
				s.log.Debug("dynamic neighbors: soft reset after admission", "peer", a, "err", err)
			}
		}
	}
}

// withAdmitted returns sets with the admitted sessions added to the
// ranges' sets: what GoBGP must keep when the policies are replaced.
// Callers hold s.mu.
func (s *Speaker) withAdmitted(sets []*api.DefinedSet) []*api.DefinedSet {
	if len(s.admitted) == 0 {
		return sets
	}
	bySet := map[string][]string{}
	for a, r := range s.admitted {
		bySet[dynamicSetName(r)] = append(bySet[dynamicSetName(r)], hostPrefix(a))
	}
	out := make([]*api.DefinedSet, len(sets))
	for i, ds := range sets {
		out[i] = ds
		if add := bySet[ds.Name]; ds.DefinedType == api.DefinedType_DEFINED_TYPE_NEIGHBOR && len(add) > 0 {
			slices.Sort(add)
			out[i] = &api.DefinedSet{DefinedType: ds.DefinedType, Name: ds.Name, List: append(slices.Clone(ds.List), add...)}
		}
	}
	return out
}

// dynamicDiff is what a reload changes of the dynamic neighbors.
type dynamicDiff struct {
	dropGroups, addGroups []*api.PeerGroup
	dropRanges, addRanges []dynRange
	kept                  []dynRange
}

// diffDynamic compares the peer groups and ranges of two plans. A range
// whose peer group changed (or that moves to another group) is dropped
// and added again: GoBGP copies a group's settings into a dynamic peer
// when it accepts it, so its sessions must start over. A change of limit
// alone keeps the range (sessions over a lowered limit stay; new ones
// wait for room).
func diffDynamic(op, np *plan) dynamicDiff {
	var d dynamicDiff
	group := func(l []*api.PeerGroup, name string) *api.PeerGroup {
		for _, g := range l {
			if g.Conf.PeerGroupName == name {
				return g
			}
		}
		return nil
	}
	changed := map[string]bool{}
	for _, g := range op.peerGroups {
		if ng := group(np.peerGroups, g.Conf.PeerGroupName); ng == nil || !proto.Equal(g, ng) {
			d.dropGroups = append(d.dropGroups, g)
			changed[g.Conf.PeerGroupName] = true
		}
	}
	for _, g := range np.peerGroups {
		if og := group(op.peerGroups, g.Conf.PeerGroupName); og == nil || !proto.Equal(g, og) {
			d.addGroups = append(d.addGroups, g)
			changed[g.Conf.PeerGroupName] = true
		}
	}
	find := func(l []dynRange, p netip.Prefix) (dynRange, bool) {
		i := slices.IndexFunc(l, func(r dynRange) bool { return r.prefix == p })
		if i < 0 {
			return dynRange{}, false
		}
		return l[i], true
	}
	for _, r := range op.ranges {
		if nr, ok := find(np.ranges, r.prefix); !ok || nr.group != r.group || changed[r.group] {
			d.dropRanges = append(d.dropRanges, r)
		}
	}
	for _, r := range np.ranges {
		if or, ok := find(op.ranges, r.prefix); !ok || or.group != r.group || changed[r.group] {
			d.addRanges = append(d.addRanges, r)
		} else {
			d.kept = append(d.kept, r)
		}
	}
	return d
}

// dropDynamic removes ranges and peer groups from GoBGP: no connection
// is accepted into them any more, and their sessions end (Cease).
// Callers hold s.mu.
func (s *Speaker) dropDynamic(ctx context.Context, d dynamicDiff) []error {
	srv := s.srv
	var errs []error
	for _, r := range d.dropRanges {
		if err := srv.DeleteDynamicNeighbor(ctx, &api.DeleteDynamicNeighborRequest{Prefix: r.prefix.String(), PeerGroup: r.group}); err != nil {
			errs = append(errs, fmt.Errorf("delete dynamic neighbor %s: %w", r.prefix, err))
		}
	}
	groups := map[string]bool{}
	for _, g := range d.dropGroups {
		groups[g.Conf.PeerGroupName] = true
	}
	dropped := func(a netip.Addr, group string) bool {
		if groups[group] {
			return true
		}
		return slices.ContainsFunc(d.dropRanges, func(r dynRange) bool { return r.prefix.Contains(a) })
	}
	// Twice: a connection accepted meanwhile keeps a group in use.
	for try := 0; try < 2; try++ {
		var gone []netip.Addr
		_ = srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			a := peerAddr(p)
			if g := p.GetConf().GetPeerGroup(); a.IsValid() && g != "" && dropped(a, g) {
				gone = append(gone, a)
			}
		})
		for _, a := range gone {
			if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
				s.log.Debug("dynamic neighbors: delete a session of a removed range", "peer", a, "err", err)
			}
			delete(s.admitted, a)
		}
		var left []*api.PeerGroup
		for _, g := range d.dropGroups {
			if err := srv.DeletePeerGroup(ctx, &api.DeletePeerGroupRequest{Name: g.Conf.PeerGroupName}); err != nil {
				left = append(left, g)
				if try == 1 {
					errs = append(errs, fmt.Errorf("delete peer group %s: %w", g.Conf.PeerGroupName, err))
				}
			}
		}
		if d.dropGroups = left; len(left) == 0 {
			break
		}
	}
	return errs
}

// dynamicCounts returns the sessions admitted per range (every range of
// the running configuration, 0 included) and the refusals counted so far.
func (s *Speaker) dynamicCounts() (sessions map[netip.Prefix]int, refused map[netip.Prefix]uint64) {
	sessions = map[netip.Prefix]int{}
	s.tripsMu.Lock()
	refused = maps.Clone(s.refused)
	s.tripsMu.Unlock()
	// admitted is guarded by s.mu, which admit holds across GoBGP calls:
	// a scrape waits for it at most that long.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil, refused
	}
	for _, r := range s.plan.ranges {
		sessions[r.prefix] = 0
	}
	for _, r := range s.admitted {
		sessions[r]++
	}
	return sessions, refused
}
