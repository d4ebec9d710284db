package bgp

// BGP Flowspec (RFC 8955, RFC 8956): the best paths of the ipv4-flowspec
// and ipv6-flowspec families become filter.Rule values (see
// flowspec_translate.go), validated (RFC 8955 6) and ordered (RFC 8955
// 5.1), and are handed to Options.OnFlowspec as a complete set each time
// it changes.
//
// Only neighbors with flowspec = true negotiate the families (see
// neighborFamilies), so GoBGP drops Flowspec NLRI from every other
// neighbor on receipt (an UPDATE of a family that was not negotiated is
// ignored). Paths GoBGP holds from a neighbor not configured with
// flowspec = true (one added at run time over gRPC) are dropped here too.
// Paths originated locally (`gobgp global rib -a ipv4-flowspec add ...`
// by whoever controls the gRPC API) are taken as they are, unvalidated.
//
// How: the best-path watch (the one OnBest uses; a second watch would copy
// every unicast path once more) hands Flowspec paths and unicast paths to
// observe, which only sets flags and wakes the worker: Flowspec paths mark
// the Flowspec RIB dirty; a unicast path marks the validation dirty when
// its prefix overlaps the destination prefix of a current rule. The
// worker waits flowspecCoalesce for more of the same burst, reads the
// Flowspec RIB from GoBGP (few paths: a whole-table read is simpler and
// right whatever the multipath mode delivers), translates, validates each
// rule against the unicast RIB (two lookups per rule), sorts and calls
// OnFlowspec when the result differs from the last one. A unicast change
// is re-checked at most every flowspecRevalidate: a table loading under a
// rule's destination costs one check per 100 ms, not one per path.

import (
	"context"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/filter"
)

// Rejected is a Flowspec route that is not applied, with the reason:
// translation refused it (something the XDP filter cannot do exactly) or
// it is not feasible (RFC 8955 6 validation).
type Rejected struct {
	Name   string     // the NLRI in text
	Peer   netip.Addr // the neighbor it came from; invalid: local
	Reason string
}

const (
	// flowspecCoalesce is how long the worker waits after the first
	// change for the rest of its burst (one UPDATE may bring many rules).
	flowspecCoalesce = 5 * time.Millisecond
	// flowspecRevalidate is the least time between two validations
	// caused by unicast changes alone.
	flowspecRevalidate = 100 * time.Millisecond
	// flowspecRetry is the wait after a failed RIB read.
	flowspecRetry = time.Second
)

var flowspecFamilies = []bgp.Family{bgp.RF_FS_IPv4_UC, bgp.RF_FS_IPv6_UC}

// neighborFamilies adds the Flowspec families to a neighbor's families
// when it has flowspec = true (one per unicast family, unless families
// names Flowspec families itself) and removes them otherwise.
func neighborFamilies(n *config.Neighbor, families []string) []string {
	isFS := func(f string) bool { return f == config.FamilyIPv4Flowspec || f == config.FamilyIPv6Flowspec }
	if !n.Flowspec {
		return slices.DeleteFunc(slices.Clone(families), isFS)
	}
	if slices.ContainsFunc(families, isFS) {
		return families
	}
	out := slices.Clone(families)
	for _, f := range families {
		switch f {
		case config.FamilyIPv4Unicast:
			out = append(out, config.FamilyIPv4Flowspec)
		case config.FamilyIPv6Unicast:
			out = append(out, config.FamilyIPv6Flowspec)
		}
	}
	return out
}

// fsNeighbor is what the tracker needs of a configured neighbor.
type fsNeighbor struct {
	flowspec, validate bool
}

func flowspecNeighbors(cfg *config.Config) map[netip.Addr]fsNeighbor {
	out := make(map[netip.Addr]fsNeighbor, len(cfg.Neighbors))
	for i := range cfg.Neighbors {
		n := &cfg.Neighbors[i]
		out[n.Addr()] = fsNeighbor{flowspec: n.Flowspec, validate: n.FlowspecValidate}
	}
	return out
}

// fsEntry is one Flowspec best path, translated.
type fsEntry struct {
	nlri *bgp.FlowSpecNLRI
	rule filter.Rule
	err  error // translation refused it
}

// ribReader is the part of GoBGP's server the tracker reads.
type ribReader interface {
	ListPath(apiutil.ListPathRequest, func(bgp.NLRI, []*apiutil.Path)) error
}

type flowspecTracker struct {
	log  *slog.Logger
	srv  ribReader
	on   func([]filter.Rule, []Rejected)
	wake chan struct{}
	// flushes asks the worker for an evaluation now (see flush).
	flushes chan chan struct{}

	// dsts are the destination prefixes of the current entries, read by
	// observe on GoBGP's watcher goroutine.
	dsts atomic.Pointer[[]netip.Prefix]

	mu        sync.Mutex
	ribDirty  bool // re-read the Flowspec RIB
	uniDirty  bool // a unicast change under a rule's destination
	nbrs      map[netip.Addr]fsNeighbor
	nbrsDirty bool

	outMu    sync.Mutex
	rules    []filter.Rule
	rejected []Rejected
}

func newFlowspecTracker(srv ribReader, log *slog.Logger, nbrs map[netip.Addr]fsNeighbor, on func([]filter.Rule, []Rejected)) *flowspecTracker {
	t := &flowspecTracker{log: log, srv: srv, on: on, wake: make(chan struct{}, 1), flushes: make(chan chan struct{}),
		nbrs: nbrs, ribDirty: true}
	t.dsts.Store(&[]netip.Prefix{})
	return t
}

// flush has the worker read the RIB and evaluate at once (no coalescing,
// no revalidation delay) and waits until it has handed a changed set to
// on, or timeout: at the initial sync, so that the set in force then is
// what BGP has, validated against the unicast routes just learned.
func (t *flowspecTracker) flush(timeout time.Duration) {
	done := make(chan struct{})
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case t.flushes <- done:
	case <-tm.C:
		return
	}
	select {
	case <-done:
	case <-tm.C:
	}
}

func (t *flowspecTracker) kick() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// observe looks at a batch of best paths: cheap, never blocking (GoBGP's
// watcher goroutine).
func (t *flowspecTracker) observe(paths []*apiutil.Path) {
	fs, uni := false, false
	dsts := *t.dsts.Load()
	for _, p := range paths {
		if p == nil {
			continue
		}
		switch p.Family {
		case bgp.RF_FS_IPv4_UC, bgp.RF_FS_IPv6_UC:
			fs = true
		case bgp.RF_IPv4_UC, bgp.RF_IPv6_UC:
			if uni || len(dsts) == 0 {
				continue
			}
			if n, ok := p.Nlri.(*bgp.IPAddrPrefix); ok {
				for _, d := range dsts {
					if d.Overlaps(n.Prefix) {
						uni = true
						break
					}
				}
			}
		}
	}
	if !fs && !uni {
		return
	}
	t.mu.Lock()
	t.ribDirty = t.ribDirty || fs
	t.uniDirty = t.uniDirty || uni
	t.mu.Unlock()
	t.kick()
}

// setNeighbors replaces the neighbor settings (Reload) and re-checks.
func (t *flowspecTracker) setNeighbors(nbrs map[netip.Addr]fsNeighbor) {
	t.mu.Lock()
	t.nbrs, t.nbrsDirty = nbrs, true
	t.mu.Unlock()
	t.kick()
}

// current returns copies of the last result.
func (t *flowspecTracker) current() ([]filter.Rule, []Rejected) {
	t.outMu.Lock()
	defer t.outMu.Unlock()
	return cloneRules(t.rules), slices.Clone(t.rejected)
}

func cloneRules(rs []filter.Rule) []filter.Rule {
	out := make([]filter.Rule, len(rs))
	for i, r := range rs {
		out[i] = r
		out[i].Protocols = slices.Clone(r.Protocols)
		out[i].SrcPorts = slices.Clone(r.SrcPorts)
		out[i].DstPorts = slices.Clone(r.DstPorts)
		out[i].Ports = slices.Clone(r.Ports)
		out[i].ICMPTypes = slices.Clone(r.ICMPTypes)
		out[i].ICMPCodes = slices.Clone(r.ICMPCodes)
		out[i].DSCP = slices.Clone(r.DSCP)
		out[i].TCPFlags = slices.Clone(r.TCPFlags)
		out[i].Lengths = slices.Clone(r.Lengths)
		out[i].Ingress = slices.Clone(r.Ingress)
	}
	return out
}

// run is the worker; it returns when ctx ends. stopping suppresses the
// callback (the speaker is going away: the last rules stay in force).
func (t *flowspecTracker) run(ctx context.Context, stopping func() bool) {
	var (
		entries   []fsEntry
		lastCheck time.Time
		timer     = time.NewTimer(0)
	)
	<-timer.C
	defer timer.Stop()
	wait := func(d time.Duration) bool {
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}
	for {
		var flushed chan struct{} // closed once this round is done
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		case flushed = <-t.flushes:
			t.mu.Lock()
			t.ribDirty = true
			t.mu.Unlock()
		}
		if flushed == nil {
			if !wait(flowspecCoalesce) {
				return
			}
			t.mu.Lock()
			rib, uni, nbrs := t.ribDirty, t.uniDirty, t.nbrsDirty
			t.mu.Unlock()
			if !rib && !nbrs && uni {
				// Unicast changes alone: at most every flowspecRevalidate.
				if d := flowspecRevalidate - time.Since(lastCheck); d > 0 && !wait(d) {
					return
				}
			}
		}
		t.round(ctx, &entries, &lastCheck, stopping, wait)
		if flushed != nil {
			close(flushed)
		}
	}
}

// round is one evaluation of the worker: the RIB read if dirty, the rules
// validated and handed to on if they changed.
func (t *flowspecTracker) round(ctx context.Context, entries *[]fsEntry, lastCheck *time.Time, stopping func() bool, wait func(time.Duration) bool) {
	t.mu.Lock()
	rib := t.ribDirty
	t.ribDirty = false
	t.uniDirty, t.nbrsDirty = false, false
	cfg := t.nbrs
	t.mu.Unlock()
	if rib {
		e, err := t.read()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			t.log.Warn("flowspec: read the RIB", "err", err)
			t.mu.Lock()
			t.ribDirty = true
			t.mu.Unlock()
			if !wait(flowspecRetry) {
				return
			}
			t.kick()
			return
		}
		*entries = e
	}
	*lastCheck = time.Now()
	rules, rejected := t.evaluate(*entries, cfg)
	var dsts []netip.Prefix
	for _, e := range *entries {
		if e.err == nil && e.rule.Dst.IsValid() {
			dsts = append(dsts, e.rule.Dst)
		}
	}
	t.dsts.Store(&dsts)
	t.outMu.Lock()
	same := reflect.DeepEqual(rules, t.rules) && reflect.DeepEqual(rejected, t.rejected)
	if !same {
		t.rules, t.rejected = rules, rejected
	}
	t.outMu.Unlock()
	if same || stopping() {
		return
	}
	t.log.Info("flowspec rules changed", "rules", len(rules), "rejected", len(rejected))
	if t.on != nil {
		t.on(cloneRules(rules), slices.Clone(rejected))
	}
}

// read takes the best path of every Flowspec NLRI from GoBGP's RIB and
// translates it.
func (t *flowspecTracker) read() ([]fsEntry, error) {
	var out []fsEntry
	for _, fam := range flowspecFamilies {
		err := t.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam},
			func(nlri bgp.NLRI, paths []*apiutil.Path) {
				n, ok := nlri.(*bgp.FlowSpecNLRI)
				if !ok || len(paths) == 0 || paths[0].Withdrawal {
					return
				}
				p := paths[0]
				in := fsInput{family: 4, nlri: n, attrs: p.Attrs, peer: p.PeerAddress.WithZone(""), nexthop: pathNextHop(p)}
				if fam == bgp.RF_FS_IPv6_UC {
					in.family = 6
				}
				r, err := translateFlowspec(in)
				if err == nil && sampled(p.Attrs) {
					t.log.Debug("flowspec: traffic-action sample bit ignored", "rule", r.Name, "peer", r.Peer)
				}
				out = append(out, fsEntry{nlri: n, rule: r, err: err})
			})
		if err != nil && !strings.Contains(err.Error(), "not supported") {
			return nil, err
		}
	}
	return out, nil
}

// evaluate validates the entries and returns the rules in RFC 8955 5.1
// order (IPv4 first) and the rejected ones by name.
func (t *flowspecTracker) evaluate(entries []fsEntry, nbrs map[netip.Addr]fsNeighbor) ([]filter.Rule, []Rejected) {
	type ok struct {
		nlri *bgp.FlowSpecNLRI
		rule filter.Rule
	}
	var good []ok
	var rejected []Rejected
	reject := func(e fsEntry, reason string) {
		rejected = append(rejected, Rejected{Name: e.rule.Name, Peer: e.rule.Peer, Reason: reason})
	}
	for _, e := range entries {
		peer := e.rule.Peer
		local := !peer.IsValid()
		n, known := nbrs[peer]
		switch {
		case !local && (!known || !n.flowspec):
			reject(e, "neighbor "+peer.String()+" is not configured with flowspec = true")
			continue
		case e.err != nil:
			reject(e, strings.TrimPrefix(e.err.Error(), errFlowspec.Error()+": "))
			continue
		}
		if !local && n.validate {
			if reason := t.feasible(e.rule); reason != "" {
				reject(e, reason)
				continue
			}
		}
		good = append(good, ok{e.nlri, e.rule})
	}
	slices.SortStableFunc(good, func(a, b ok) int {
		if a.rule.Family != b.rule.Family {
			return a.rule.Family - b.rule.Family
		}
		if c := compareFlowspec(a.nlri, b.nlri); c != 0 {
			return c
		}
		return strings.Compare(a.rule.Name, b.rule.Name)
	})
	slices.SortFunc(rejected, func(a, b Rejected) int {
		return strings.Compare(a.Name+"\x00"+a.Peer.String(), b.Name+"\x00"+b.Peer.String())
	})
	rules := make([]filter.Rule, len(good))
	for i, g := range good {
		rules[i] = g.rule
	}
	for _, r := range rejected {
		t.log.Debug("flowspec rule rejected", "rule", r.Name, "peer", r.Peer, "reason", r.Reason)
	}
	return rules, rejected
}

// feasible applies RFC 8955 6 to a rule from a neighbor; "" when feasible,
// else the reason:
//
//	a) it has a destination prefix, and the best-match (longest covering)
//	   unicast route of that prefix, best path, came from the same
//	   neighbor (with multipath: one of the multipath set did);
//	b) no more-specific unicast route inside the destination prefix was
//	   received from a neighboring AS other than that best path's.
func (t *flowspecTracker) feasible(r filter.Rule) string {
	dst := r.Dst
	if !dst.IsValid() {
		return "no destination prefix (RFC 8955 6: validation needs one; flowspec-validate = false takes the rule as sent)"
	}
	fam := bgp.RF_IPv4_UC
	if dst.Addr().Is6() {
		fam = bgp.RF_IPv6_UC
	}
	var (
		bestLen  = -1
		bestPath []*apiutil.Path
	)
	err := t.srv.ListPath(apiutil.ListPathRequest{
		TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam,
		Prefixes: []*apiutil.LookupPrefix{{Prefix: dst.String(), LookupOption: apiutil.LOOKUP_SHORTER}},
	}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
		n, ok := nlri.(*bgp.IPAddrPrefix)
		if !ok || len(paths) == 0 || n.Prefix.Bits() <= bestLen {
			return
		}
		bestLen, bestPath = n.Prefix.Bits(), paths
	})
	if err != nil {
		return "validation: unicast lookup of " + dst.String() + ": " + err.Error()
	}
	if bestPath == nil {
		return "not feasible (RFC 8955 6 a): no unicast route covers destination " + dst.String()
	}
	var best *apiutil.Path
	for _, p := range bestPath {
		if p.Best && p.PeerAddress.WithZone("") == r.Peer {
			best = p
			break
		}
	}
	if best == nil {
		from := "this router"
		if a := bestPath[0].PeerAddress; a.IsValid() {
			from = "neighbor " + a.WithZone("").String()
		}
		return "not feasible (RFC 8955 6 a): the best unicast route covering " + dst.String() + " (/" + strconv.Itoa(bestLen) + ") is from " + from
	}
	var other string
	err = t.srv.ListPath(apiutil.ListPathRequest{
		TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam,
		Prefixes: []*apiutil.LookupPrefix{{Prefix: dst.String(), LookupOption: apiutil.LOOKUP_LONGER}},
	}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
		n, ok := nlri.(*bgp.IPAddrPrefix)
		if !ok || other != "" || n.Prefix.Bits() <= dst.Bits() {
			return
		}
		for _, p := range paths {
			if !isLocal(p) && p.PeerASN != best.PeerASN {
				other = n.Prefix.String() + " from AS" + strconv.FormatUint(uint64(p.PeerASN), 10)
				return
			}
		}
	})
	if err != nil {
		return "validation: unicast lookup under " + dst.String() + ": " + err.Error()
	}
	if other != "" {
		return "not feasible (RFC 8955 6 b): more-specific unicast route " + other + ", not the best-match route's AS" + strconv.FormatUint(uint64(best.PeerASN), 10)
	}
	return ""
}

// Flowspec returns the Flowspec rules in force (in the order the filter
// applies them) and the Flowspec routes rejected, with their reasons.
// Empty before Start and when no neighbor has flowspec = true.
func (s *Speaker) Flowspec() ([]filter.Rule, []Rejected) {
	s.mu.Lock()
	t := s.flowspec
	s.mu.Unlock()
	if t == nil {
		return nil, nil
	}
	return t.current()
}

// startFlowspec creates the tracker and its worker for a starting server;
// callers hold s.mu.
func (s *Speaker) startFlowspec(ctx context.Context, srv *server.BgpServer) *flowspecTracker {
	t := newFlowspecTracker(s.guarded(srv), s.log, flowspecNeighbors(s.cfg), s.onFlowspec)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.run(ctx, s.stopping.Load)
	}()
	s.flowspec, s.flowspecRun = t, done
	return t
}
