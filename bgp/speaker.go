// Package bgp runs xdprouter's embedded GoBGP (v4) speaker: it translates the
// configuration into GoBGP's API, serves GoBGP's gRPC API for the stock
// `gobgp` CLI, originates [[network]] and connected prefixes, and reports
// best-path changes to the sync layer through a cheap callback.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/filter"
)

// ErrNotRunning is returned by calls that need a started speaker.
var ErrNotRunning = errors.New("bgp: speaker not running")

// Options configures a Speaker.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// OnBest receives every batch of best-path changes (one call per GoBGP
	// event). It is called from GoBGP's watcher goroutine: it must be cheap
	// and must never block.
	OnBest func([]PathUpdate)
	// Backup adds the backup path of every prefix to the updates (for PIC
	// edge; see backup.go). OnBest is then called from a worker goroutine,
	// with at most backupBatch updates per call. Off: exactly the
	// best-path watch, no extra cost. Not changed by Reload.
	Backup bool
	// OnPeerDropped, when set, is told that GoBGP dropped the paths of a
	// neighbor (session down without graceful restart, neighbor removed,
	// a graceful-restart timer expired), as soon as GoBGP starts to: the
	// withdrawals follow one prefix at a time, and take seconds for a full
	// table. The trigger for PIC: switch the neighbor's groups to their
	// backups. Called from its own watcher goroutine: cheap, never blocking.
	OnPeerDropped func(netip.Addr)
	// ForwardingPreserved says that the data plane kept forwarding on the
	// routes of a previous instance (pinned maps, kernel routes kept):
	// sessions with graceful restart then open with the restart-state and
	// forwarding-state bits set (RFC 4724), so neighbors keep forwarding
	// to us on our stale routes until our End-of-RIB, and GoBGP announces
	// only once the neighbors' End-of-RIBs are in (or restart-time
	// passed). False: both bits clear, neighbors drop our stale routes
	// when the session is back. Asked once, by Start (the daemon loads the
	// data plane after New); nil: false. Not changed by Reload.
	ForwardingPreserved func() bool
	// GracefulStop makes Stop close the sessions that negotiated graceful
	// restart without a NOTIFICATION, so the neighbors keep our routes for
	// restart-time while we are gone (RFC 4724 helper). Set it when the
	// data plane outlives the process; otherwise neighbors would forward
	// into a router that no longer does. Sessions without graceful restart
	// get a Cease as always.
	GracefulStop bool
	// OnInitialSync, when set, is called once, the first time every
	// configured neighbor (not administratively down, not shut down for
	// max-prefixes) has sent End-of-RIB for each family negotiated on its
	// session, after the best paths they brought were passed to OnBest
	// (see eor.go). Never called while Stop runs, nor if some neighbor
	// never sends End-of-RIB. Called from a GoBGP watcher goroutine:
	// cheap, never blocking.
	OnInitialSync func()
	// OnFlowspec, when set, receives the complete set of Flowspec rules in
	// force, in the order the filter applies them (RFC 8955 5.1), and the
	// Flowspec routes rejected with their reasons, each time either
	// changes (see flowspec.go): within a few milliseconds of the UPDATE.
	// Called from one worker goroutine, never concurrently; the slices
	// are the callee's. Not called once Stop begins.
	OnFlowspec func(rules []filter.Rule, rejected []Rejected)
}

// PeerStatus is the state of one neighbor: configured, or a dynamic
// neighbor's session.
type PeerStatus struct {
	// Address is the neighbor's address; for an unnumbered neighbor the
	// peer's link-local address with the interface as zone, invalid
	// (State "no-peer") while none is found on Interface.
	Address     netip.Addr
	Interface   string `json:",omitempty"` // of an unnumbered neighbor
	Description string
	ASN         uint32
	State       string // idle, connect, active, opensent, openconfirm, established; admin-down or max-prefixes when shut down
	Up          bool
	Uptime      time.Duration // since the session was established, at the time of the call; 0 when down
	Established time.Time     // when the session was established (whole seconds); zero when down
	Received    uint64        // prefixes in Adj-RIB-In
	Accepted    uint64        // GoBGP's count: of those, not rejected on receipt (AS loop); import policy runs later
	// GracefulRestart: the neighbor advertised graceful restart for at
	// least one family we share (last OPEN), so its routes are kept while
	// it restarts. PeerRestarting: its session dropped and its routes are
	// kept, stale, until its End-of-RIB or its restart time.
	// LocalRestarting: we restarted with the forwarding state preserved
	// and still wait for End-of-RIBs before announcing to it.
	GracefulRestart bool
	PeerRestarting  bool
	LocalRestarting bool
	// BFD is the BFD session state: up, down, init, admin-down; "" when
	// BFD is off for the neighbor.
	BFD string
	// PeerGroup is the [[peer-group]] of a dynamic neighbor's session
	// (accepted from a [[dynamic-neighbor]] range; it exists while the
	// session does). "" for a configured neighbor, member of a group or
	// not.
	PeerGroup string `json:",omitempty"`
}

// StateNoPeer is the state of an unnumbered neighbor while no peer is
// found on its interface.
const StateNoPeer = "no-peer"

// Speaker is the embedded BGP speaker.
type Speaker struct {
	log        *slog.Logger
	onBest     func([]PathUpdate)
	withBackup bool
	onDropped  func(netip.Addr)
	preserved  func() bool
	graceful   bool
	onSync     func()
	onFlowspec func([]filter.Rule, []Rejected)
	syncOnce   sync.Once
	eor        *eorTracker // with OnInitialSync, while running

	// stopping is set when Stop begins: the withdrawals GoBGP generates while
	// tearing sessions down are not passed on, so a daemon restart does not
	// flush BGP routes from the FIB (reconcile on the next start instead).
	stopping atomic.Bool

	peersRefresh sync.Mutex

	tripsMu sync.Mutex
	trips   map[netip.Addr]uint64   // sessions shut down for max-prefixes, per peer
	refused map[netip.Prefix]uint64 // dynamic sessions refused for the limit, per range

	// rule decides which best paths are blackhole routes (bogon.go); the
	// trackers read it, Reload replaces it.
	rule atomic.Pointer[blackholeRule]

	mu          sync.Mutex            // guards the fields below
	best        *bestTracker          // without Options.Backup, while running
	backup      *backupTracker        // with Options.Backup, while running
	backupRun   chan struct{}         // closed when the backup worker has returned
	flowspec    *flowspecTracker      // while running
	flowspecRun chan struct{}         // closed when the Flowspec worker has returned
	cfg         *config.Config        // the applied configuration (want with the unnumbered peers found); Reload replaces it
	plan        *plan                 // cfg translated
	want        *config.Config        // the configuration as given (unnumbered neighbors by interface)
	found       map[string]netip.Addr // peers of unnumbered neighbors by interface (unnumbered.go)
	srv         *server.BgpServer
	cancel      context.CancelFunc
	networks    map[netip.Prefix]bool
	peers       []PeerStatus // last Peers answer, reused for peersAge
	peersAt     time.Time
	peersAge    time.Duration // how long s.peers is fresh (see Peers)
	connected   map[netip.Prefix]uuid.UUID
	// rpkiState is the caches' state at watchRPKI's last poll;
	// revalidations counts the re-evaluations after VRP changes.
	rpkiMu sync.Mutex
	// softMu keeps every ListPath (guarded) off soft resets in: GoBGP
	// re-feeds the same *Path objects and writes their fields in its main
	// loop, while ListPath converts them outside it (a data race in GoBGP).
	softMu        sync.RWMutex
	rpkiState     []RPKIStatus
	revalidations atomic.Uint64
	// connectedWant is the last SetConnected argument, kept so that a
	// Reload can re-apply it when networks or redistribute-connected change.
	connectedWant []netip.Prefix
	// admitted are the dynamic neighbors' sessions admitted, by address,
	// with their range; admitWake wakes the admission worker (dynamic.go).
	admitted      map[netip.Addr]netip.Prefix
	refusedLogged map[netip.Addr]bool // refusals logged once per address
	admitWake     func()
}

// New validates the configuration's translation into GoBGP objects without
// starting anything.
func New(opts Options) (*Speaker, error) {
	if opts.Config == nil {
		return nil, errors.New("bgp: no config")
	}
	found := foundNow(opts.Config, nil)
	cfg, p, err := translateUnnumbered(opts.Config, found)
	if err != nil {
		return nil, fmt.Errorf("bgp: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "bgp")
	onBest := opts.OnBest
	if onBest == nil {
		onBest = func([]PathUpdate) {}
	}
	s := &Speaker{
		cfg:           cfg,
		want:          opts.Config,
		found:         found,
		log:           log,
		onBest:        onBest,
		withBackup:    opts.Backup,
		onDropped:     opts.OnPeerDropped,
		preserved:     opts.ForwardingPreserved,
		graceful:      opts.GracefulStop,
		onSync:        opts.OnInitialSync,
		onFlowspec:    opts.OnFlowspec,
		plan:          p,
		networks:      make(map[netip.Prefix]bool),
		connected:     make(map[netip.Prefix]uuid.UUID),
		admitted:      make(map[netip.Addr]netip.Prefix),
		refusedLogged: make(map[netip.Addr]bool),
	}
	for _, n := range p.networks {
		s.networks[n] = true
	}
	s.rule.Store(newBlackholeRule(cfg))
	return s, nil
}

// Start starts the GoBGP server and configures it: global settings, gRPC
// API, defined sets, policies, the best-path watch (with replay), peers and
// originated networks. On error everything started is stopped again.
func (s *Speaker) Start(ctx context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("bgp: already started")
	}
	var sopts []server.ServerOption
	lvl := new(slog.LevelVar) // GoBGP's `gobgp global loglevel` changes it; the handler filters too
	lvl.Set(slog.LevelDebug)
	sopts = append(sopts, server.LoggerOption(s.log, lvl))
	if addr := s.cfg.API.GRPCListen; addr != "" {
		// GoBGP opens the gRPC listener in a goroutine and only logs a
		// failure; check the address first so a problem is an error here.
		if err := prepareGRPC(addr); err != nil {
			return fmt.Errorf("bgp: api.grpc-listen %s: %w", addr, err)
		}
		if _, unix := s.cfg.API.GRPCSocket(); !unix {
			s.log.Warn("GoBGP's gRPC API is on TCP, without authentication: every local user that can connect can change routing; use unix:///PATH", "grpc-listen", addr)
		}
		sopts = append(sopts, server.GrpcListenAddress(addr))
	}
	srv := server.NewBgpServer(sopts...)
	go srv.Serve()
	s.srv = srv
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	defer func() {
		if err != nil {
			s.stopLocked()
		}
	}()

	p := s.plan
	preserved := s.preserved != nil && s.preserved()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: p.global}); err != nil {
		return fmt.Errorf("bgp: start (asn %d, router-id %s, port %d): %w", p.global.Asn, p.global.RouterId, p.global.ListenPort, err)
	}
	if err := installPolicies(ctx, srv, p); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	for _, v := range p.vrfs {
		if err := srv.AddVrf(ctx, &api.AddVrfRequest{Vrf: v}); err != nil {
			return fmt.Errorf("bgp: vrf %s: %w", v.Name, err)
		}
	}
	// Caches and stations before the peers: a path that arrives before
	// the VRPs is re-evaluated when they come (rpki.go).
	if err := addRPKI(ctx, srv, p.rpki); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	if err := addBMP(ctx, srv, p.bmp); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	go s.watchRPKI(wctx, srv)

	// Watch before adding peers; Init replays whatever is already there.
	onBest := s.onBest
	s.stopping.Store(false)
	if s.onDropped != nil {
		if err := watchDropped(wctx, srv, func(a netip.Addr) {
			if !s.stopping.Load() {
				s.onDropped(a)
			}
		}); err != nil {
			return fmt.Errorf("bgp: watch dropped paths: %w", err)
		}
	}
	fs := s.startFlowspec(wctx, srv)
	var eor *eorTracker
	if s.onSync != nil {
		eor = s.newInitialSync()
		eor.setNeighbors(planAddrs(p))
		s.eor = eor
	}
	if s.withBackup {
		b := newBackupTracker(srv, s.log, &s.rule)
		b.rib = s.guarded(srv)
		if err := b.watch(wctx, eor, fs.observe); err != nil {
			return fmt.Errorf("bgp: watch paths for backups: %w", err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.run(wctx, func(ups []PathUpdate) {
				if !s.stopping.Load() {
					onBest(ups)
				}
			})
		}()
		s.backup, s.backupRun = b, done
	} else {
		tr := newBestTracker(p.global.UseMultiplePaths, &s.rule, s.log)
		tr.vrfs = p.vrfTables
		cb := server.WatchEventMessageCallbacks{
			OnBestPath: func(paths []*apiutil.Path, _ time.Time) {
				if s.stopping.Load() {
					return
				}
				fs.observe(paths)
				tr.deliver(paths, onBest)
			},
		}
		s.best = tr
		opts := []server.WatchOption{server.WatchBestPath(true)}
		if eor != nil {
			// The same watch: End-of-RIBs come after the paths before them.
			cb.OnPathEor = func(p *apiutil.Path, _ time.Time) { eor.eorEvent(p) }
			cb.OnPeerUpdate = func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) { eor.peerEvent(ev) }
			opts = append(opts, server.WatchEor(false), server.WatchPeer())
		}
		err = srv.WatchEvent(wctx, cb, opts...)
		if err != nil {
			return fmt.Errorf("bgp: watch best paths: %w", err)
		}
	}

	for _, peer := range p.peers {
		if preserved {
			peer = restarting(peer)
		}
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: unarmed(peer)}); err != nil {
			return fmt.Errorf("bgp: neighbor %s: %w", peer.Conf.NeighborAddress, err)
		}
	}
	if err := s.watchAdmission(wctx, srv); err != nil {
		return fmt.Errorf("bgp: watch peers for dynamic neighbors: %w", err)
	}
	if err := addDynamic(ctx, srv, p.peerGroups, p.ranges); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	for _, n := range p.networks {
		if _, err := s.originate(n); err != nil {
			return fmt.Errorf("bgp: network %s: %w", n, err)
		}
	}
	go s.enforceLimits(wctx)
	go s.runUnnumbered(wctx) // idle without unnumbered neighbors; Reload may add some
	s.log.Info("bgp speaker started", "asn", p.global.Asn, "router-id", p.global.RouterId,
		"rpki-caches", len(p.rpki), "bmp-stations", len(p.bmp),
		"port", p.global.ListenPort, "neighbors", len(p.peers), "dynamic-ranges", len(p.ranges), "networks", len(p.networks), "vrfs", len(p.vrfs),
		"multipath", p.global.UseMultiplePaths, "backup-paths", s.withBackup, "grpc", s.cfg.API.GRPCListen,
		"forwarding-preserved", preserved)
	return nil
}

// newInitialSync returns the End-of-RIB tracker that calls OnInitialSync:
// once per Speaker, never while stopping, after the backup worker (if
// any) has emitted the paths marked before.
//
// The tracker may fire from inside Start or Reload, which hold s.mu (no
// configured neighbor to wait for: a configuration of [[network]]s or
// [[dynamic-neighbor]]s only, or a reload removing the last neighbor):
// the callback takes s.mu, so it runs on a goroutine of its own. The
// paths before it have been handed to OnBest (or marked for the backup
// worker, whose barrier orders them) already.
func (s *Speaker) newInitialSync() *eorTracker {
	return newEORTracker(func() { go s.initialSync() })
}

func (s *Speaker) initialSync() {
	if s.stopping.Load() {
		return
	}
	call := func() {
		if s.stopping.Load() {
			return
		}
		s.syncOnce.Do(func() {
			s.log.Info("initial sync: every neighbor sent End-of-RIB")
			// The Flowspec set of now, validated against the unicast
			// routes just learned, reaches OnFlowspec first.
			s.mu.Lock()
			fs := s.flowspec
			s.mu.Unlock()
			if fs != nil {
				fs.flush(2 * time.Second)
			}
			s.onSync()
		})
	}
	s.mu.Lock()
	b := s.backup
	s.mu.Unlock()
	if b != nil {
		b.barrier(call)
		return
	}
	call()
}

// planAddrs lists the neighbor addresses of a plan, and a placeholder
// ("::%IFNAME", never a peer's) for each unnumbered neighbor whose peer is
// not known yet: the initial sync waits for it too (or for its bound).
func planAddrs(p *plan) []netip.Addr {
	out := make([]netip.Addr, 0, len(p.peers)+len(p.unresolved))
	for a := range planPeers(p) {
		out = append(out, a)
	}
	for _, ifname := range p.unresolved {
		out = append(out, netip.IPv6Unspecified().WithZone(ifname))
	}
	return out
}

// installPolicies adds the plan's defined sets and policies to a server
// that has none yet and sets the global assignments.
func installPolicies(ctx context.Context, srv *server.BgpServer, p *plan) error {
	for _, ds := range p.definedSets {
		if err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: ds}); err != nil {
			return fmt.Errorf("defined set %q: %w", ds.Name, err)
		}
	}
	for _, pol := range p.policies {
		if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol}); err != nil {
			return fmt.Errorf("policy %q: %w", pol.Name, err)
		}
	}
	return setAssignments(ctx, srv, p)
}

// setAssignments replaces the global import and export assignments.
func setAssignments(ctx context.Context, srv *server.BgpServer, p *plan) error {
	for _, a := range []*api.PolicyAssignment{p.importAssignment, p.exportAssignment} {
		if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
			return fmt.Errorf("global %s policy assignment: %w", strings.ToLower(strings.TrimPrefix(a.Direction.String(), "POLICY_DIRECTION_")), err)
		}
	}
	return nil
}

// localPath builds a locally originated path: origin IGP, next hop
// 0.0.0.0 / :: (GoBGP substitutes the session's local address on export).
func localPath(pfx netip.Prefix) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(pfx)
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	fam := familyOf(pfx)
	if pfx.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Age: time.Now().Unix()}, nil
}

// originate adds a local path; callers hold s.mu.
func (s *Speaker) originate(pfx netip.Prefix) (uuid.UUID, error) {
	path, err := localPath(pfx)
	if err != nil {
		return uuid.UUID{}, err
	}
	resps, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
	if err != nil {
		return uuid.UUID{}, err
	}
	if len(resps) != 1 {
		return uuid.UUID{}, fmt.Errorf("AddPath returned %d results", len(resps))
	}
	return resps[0].UUID, resps[0].Error
}

// Stop shuts the speaker down gracefully: peers get a Cease NOTIFICATION,
// listeners and the gRPC API close. OnBest is not called from the moment
// Stop begins: the routes learned so far are not withdrawn through it (a
// restart reconciles them). Safe to call more than once.
func (s *Speaker) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Speaker) stopLocked() {
	if s.srv == nil {
		return
	}
	s.stopping.Store(true)
	s.cancel()
	if s.backupRun != nil {
		<-s.backupRun // its ListPath needs a serving server
	}
	if s.flowspecRun != nil {
		<-s.flowspecRun // likewise
	}
	// GoBGP's Stop leaves RTR clients running (and blocked on its main
	// loop) and BMP stations without a Termination: remove them first.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := deleteRPKI(ctx, s.srv, s.plan.rpki); err != nil {
		s.log.Warn("stop rpki clients", "err", err)
	}
	if err := deleteBMP(ctx, s.srv, s.plan.bmp); err != nil {
		s.log.Warn("stop bmp clients", "err", err)
	}
	cancel()
	s.rpkiMu.Lock()
	s.rpkiState = nil
	s.rpkiMu.Unlock()
	if s.graceful {
		// No NOTIFICATION to graceful-restart peers: they keep our routes.
		// srv.Stop below then finds BGP stopped (and logs that it was).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
			s.log.Warn("graceful stop", "err", err)
		} else {
			s.log.Info("sessions closed for graceful restart: neighbors keep our routes for restart-time")
		}
		cancel()
	}
	s.srv.Stop() // StopBgp (waits for Serve and the FSMs) and gRPC stop
	s.srv, s.cancel, s.peers = nil, nil, nil
	s.best, s.backup, s.backupRun, s.eor = nil, nil, nil, nil
	s.flowspec, s.flowspecRun = nil, nil
	clear(s.connected)
	clear(s.admitted)
	s.admitWake = nil
	s.log.Info("bgp speaker stopped")
}

// Peers reports the state of every configured neighbor, sorted by address
// (unnumbered neighbors without a peer yet last, in configuration order).
// The answer may be as old as peersAge: GoBGP counts each peer's prefixes
// by walking its Adj-RIB-In, in its main loop, where it stalls UPDATEs.
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	if out, ok := s.cachedPeers(); ok {
		return out, nil
	}
	s.peersRefresh.Lock() // one walk at a time; the others take its answer
	defer s.peersRefresh.Unlock()
	if out, ok := s.cachedPeers(); ok {
		return out, nil
	}
	s.mu.Lock()
	srv := s.srv
	// Descriptions from the configuration: GoBGP keeps the one a neighbor
	// was added with (changing it there would reset the session).
	desc := make(map[netip.Addr]string, len(s.cfg.Neighbors))
	ifname := map[netip.Addr]string{}
	for _, n := range s.cfg.Neighbors {
		desc[n.Addr()] = n.Description
		if n.Interface != "" {
			ifname[n.Addr()] = n.Interface
		}
	}
	// Unnumbered neighbors whose peer is not found: not in GoBGP yet.
	var waiting []PeerStatus
	for _, n := range s.want.Neighbors {
		if n.Interface != "" && slices.Contains(s.plan.unresolved, n.Interface) {
			waiting = append(waiting, PeerStatus{Interface: n.Interface, ASN: n.PeerASN, Description: n.Description, State: StateNoPeer})
		}
	}
	s.mu.Unlock()
	if srv == nil {
		return nil, ErrNotRunning
	}
	var out []PeerStatus
	start := time.Now()
	err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		st := peerStatus(p)
		if d, ok := desc[st.Address]; ok {
			st.Description = d
		}
		st.Interface = ifname[st.Address]
		out = append(out, st)
	})
	if err != nil {
		return nil, fmt.Errorf("bgp: list peers: %w", err)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
	out = append(out, waiting...) // after the others, in configuration order
	s.mu.Lock()
	s.peers, s.peersAt = out, time.Now()
	s.peersAge = min(max(peersMinAge, peersWalkShare*time.Since(start)), peersMaxAge)
	s.mu.Unlock()
	return withUptime(out, time.Now()), nil
}

// withUptime returns a copy of peers with Uptime as of now: a cached walk
// is up to peersAge old, its sessions are not.
func withUptime(peers []PeerStatus, now time.Time) []PeerStatus {
	out := slices.Clone(peers)
	for i := range out {
		if out[i].Up && !out[i].Established.IsZero() {
			out[i].Uptime = now.Sub(out[i].Established).Truncate(time.Second)
		}
	}
	return out
}

func (s *Speaker) cachedPeers() ([]PeerStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil && s.peers != nil && time.Since(s.peersAt) < max(s.peersAge, peersMinAge) {
		return withUptime(s.peers, time.Now()), true
	}
	return nil, false
}

// Peers asks GoBGP at most every peersMinAge, and keeps its walks of the
// Adj-RIBs-In to 1/peersWalkShare of the time: with a full table a walk
// takes a good part of a second (measured: 13% of the CPU at 565k
// prefixes when asked every second), so counts, the max-prefixes check
// included, then refresh every few seconds.
// A call also waits for GoBGP's main loop (seconds while it withdraws a
// dropped session's table): the age is capped at peersMaxAge.
const (
	peersMinAge    = time.Second
	peersMaxAge    = 10 * time.Second
	peersWalkShare = 20
)

func peerStatus(p *api.Peer) PeerStatus {
	var st PeerStatus
	st.Address = peerAddr(p)
	if c := p.GetConf(); c != nil {
		st.Description = c.Description
		st.ASN = c.PeerAsn
		st.PeerGroup = c.PeerGroup
	}
	ps := p.GetState()
	if st.ASN == 0 { // a dynamic neighbor accepting any AS: the one it sent
		st.ASN = ps.GetPeerAsn()
	}
	st.State = strings.ToLower(strings.TrimPrefix(ps.GetSessionState().String(), "SESSION_STATE_"))
	switch ps.GetAdminState() {
	case api.PeerState_ADMIN_STATE_DOWN:
		st.State = "admin-down"
	case api.PeerState_ADMIN_STATE_PFX_CT:
		st.State = "max-prefixes"
	}
	st.Up = ps.GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
	if st.Up {
		if up := p.GetTimers().GetState().GetUptime(); up != nil {
			st.Established = up.AsTime()
		}
	}
	for _, as := range p.GetAfiSafis() {
		st.Received += as.GetState().GetReceived()
		st.Accepted += as.GetState().GetAccepted()
		if as.GetMpGracefulRestart().GetState().GetReceived() {
			st.GracefulRestart = true
		}
	}
	gr := p.GetGracefulRestart()
	st.PeerRestarting = gr.GetPeerRestarting()
	st.LocalRestarting = gr.GetLocalRestarting()
	if p.GetBfd().GetEnabled() {
		st.BFD = bfdState(ps.GetBfdState().GetSessionState())
	}
	return st
}

// peerAddr is a peer's address: a dynamic neighbor's is in its state
// only.
func peerAddr(p *api.Peer) netip.Addr {
	a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
	if err != nil {
		a, _ = netip.ParseAddr(p.GetState().GetNeighborAddress())
	}
	return a
}

// bfdState names a BFD session state as status shows it.
func bfdState(s api.BfdSessionState) string {
	switch s {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return "up"
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return "init"
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return "admin-down"
	}
	return "down"
}

// SetConnected announces exactly the given prefixes as connected routes
// (when bgp.redistribute-connected is set; otherwise it only remembers them,
// for a Reload that turns redistribution on). Each call is diffed against
// the previous one: new prefixes are announced, missing ones withdrawn.
// Prefixes also listed as [[network]] are left to that origination. Errors
// are joined; what succeeded is kept.
func (s *Speaker) SetConnected(prefixes []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connectedWant = slices.Clone(prefixes)
	if !s.cfg.BGP.RedistributeConnected {
		return nil
	}
	if s.srv == nil {
		return ErrNotRunning
	}
	if err := s.setConnectedLocked(); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	return nil
}

// setConnectedLocked brings the announced connected prefixes to
// s.connectedWant (nothing when redistribution is off), leaving [[network]]
// prefixes alone. Callers hold s.mu and have a running server.
func (s *Speaker) setConnectedLocked() error {
	want := make(map[netip.Prefix]bool, len(s.connectedWant))
	if s.cfg.BGP.RedistributeConnected {
		for _, p := range s.connectedWant {
			p = p.Masked()
			if !p.IsValid() || s.networks[p] {
				continue
			}
			want[p] = true
		}
	}
	var errs []error
	// Add before withdrawing.
	for p := range want {
		if _, ok := s.connected[p]; ok {
			continue
		}
		id, err := s.originate(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("announce connected %s: %w", p, err))
			continue
		}
		s.connected[p] = id
	}
	for p, id := range s.connected {
		if want[p] {
			continue
		}
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{UUIDs: []uuid.UUID{id}}); err != nil {
			errs = append(errs, fmt.Errorf("withdraw connected %s: %w", p, err))
			continue
		}
		delete(s.connected, p)
	}
	return errors.Join(errs...)
}
