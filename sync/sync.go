// Package sync keeps the two forwarding sinks — the XDP maps and the kernel
// FIB — equal to the desired state: the kernel's own routes of every table
// but local (connected, static, any protocol) plus BGP best paths in the
// configured table (Options.Table), with next hops resolved through that
// table's kernel routes and the neighbors. XDP holds one lookup structure
// per kernel table and the kernel's policy rules (SetRules), so that it
// takes the decision the kernel would.
//
// Everything is keyed by (table, prefix) (route.TablePrefix): the same
// prefix in two tables is two routes. Local addresses are entries of the
// main table (XDP applies them to every table).
//
// It is level-triggered: inputs only mark keys dirty; one worker computes
// the desired state of each dirty key, diffs it against what it applied
// last and writes the difference in batches. Routes point at shared next-hop
// groups, so a neighbor or link change rewrites a few group and next-hop
// entries, never every route.
//
// The package name shadows the standard library's; importers alias it
// (xsync), and this package imports the standard one as gosync.
package sync

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	gosync "sync"
	"time"

	"github.com/xdprouter/xdprouter/route"
)

// Datapath is the XDP side (implemented by *bpf.Datapath).
type Datapath interface {
	// UpdateRoutes and DeleteRoutes write in order and return how many
	// were written: on an error exactly the first n took effect. Entries
	// and keys name their table (normalised: never 0).
	UpdateRoutes([]route.Entry) (n int, err error)
	DeleteRoutes([]route.TablePrefix) (n int, err error)
	// SetGroupFrom writes group id, deriving its hash buckets from group
	// from as written (from == id: the group's own; see bpf/resilient.go).
	SetGroupFrom(id, from uint32, nexthops []uint32) error
	SetNextHop(id uint32, nh route.Egress) error
	SetNeighbor(ifindex int, addr netip.Addr, mac net.HardwareAddr) error
	DeleteNeighbor(ifindex int, addr netip.Addr) error
	SetInterface(ifindex int, mac net.HardwareAddr, mtu int) error
	DeleteInterface(ifindex int) error
	// SetRules replaces the policy rules XDP evaluates (the kernel's
	// complete list, both families). Rules select the ingress interface
	// by name: ifindex maps a name to the index of the link that had it
	// at the call, 0 for none; it may be kept and called later from any
	// goroutine (sync calls SetRules again when the links change). Called
	// after the routes of a batch are applied: once after the first
	// snapshot, then whenever the rules or the links changed.
	SetRules(rules []route.Rule, ifindex func(name string) int) error

	// Read back, for the periodic audit (entries with their tables).
	Routes() ([]route.Entry, error)
	Group(id uint32) ([]uint32, error)
	NextHopAt(id uint32) (route.Egress, error)
}

// FIB is the kernel side (implemented by *fib.Table).
type FIB interface {
	// Apply writes changes in order and returns one error (or nil) per
	// change; deleting what is already gone is not an error; a change the
	// kernel refused for good wraps route.ErrRejected.
	Apply([]route.Change) []error
	Resolve(ifindex int, addr netip.Addr) error
	// ApplyNexthops and Nexthops write and read our kernel nexthop
	// objects (used with Options.NexthopObjects).
	ApplyNexthops([]route.NexthopChange) []error
	Nexthops() ([]route.Nexthop, []route.NexthopGroup, error)
}

// BestPath is a BGP best-path change: NextHops empty means withdrawn.
// Peer is the neighbor the (first) best path came from: next-hop groups
// are bounded per peer.
//
// Backup are the next hops of the next best path (BGP PIC edge), empty
// for none: XDP switches every route of the set to them as soon as no
// primary next hop is usable (link down, neighbor failed), without
// waiting for BGP.
//
// Blackhole makes the route a blackhole (BGP RTBH, RFC 7999): a kernel
// blackhole route of ours and a drop in XDP; NextHops must still be
// non-empty (empty withdraws) and are not used.
type BestPath struct {
	Prefix     netip.Prefix
	NextHops   []netip.Addr
	Peer       netip.Addr
	Backup     []netip.Addr
	BackupPeer netip.Addr
	Blackhole  bool
	// Table is the kernel table of the path's routing instance (a VRF's
	// table, see Options.Tables); 0: Options.Table (the global one).
	Table int
}

// peerDropped is PeerDropped's input, queued in order with kernel events.
type peerDropped struct{ addr netip.Addr }

// PeerDropped records that BGP dropped every path of the neighbor addr
// (session down): routes whose next hops are all that neighbor's address
// switch to their backups in XDP at once, before BGP's withdrawals (which
// take seconds for a full table) arrive. It never blocks.
func (s *Syncer) PeerDropped(addr netip.Addr) {
	s.inMu.Lock()
	s.kernelIn = append(s.kernelIn, peerDropped{addr})
	s.inMu.Unlock()
	s.kick()
}

// Options configure a Syncer.
type Options struct {
	Datapath Datapath
	FIB      FIB
	Log      *slog.Logger
	// Table is the kernel table BGP routes are installed in (config
	// fib.table; FIB writes into it); 0: route.TableMain. BGP next hops
	// resolve through its routes only.
	Table int
	// Tables are further kernel tables BGP routes are installed in: the
	// tables of VRF-lite instances (BestPath.Table). Like Table, they hold
	// routes of ours (adopted at a restart, swept when stale) and BGP next
	// hops in them resolve through their own routes only.
	Tables []int
	// PolicyNextHops are the next hops of policy routes: each one's
	// table holds a default route of ours via it while it is usable
	// (policy.go); SetPolicyNextHops changes them. PolicyTableBase and
	// PolicyTableCount are the range of their tables (base .. base+count-1):
	// routes of ours there are adopted at a start and swept when stale
	// like those of Table.
	PolicyNextHops                    []PolicyNextHop
	PolicyTableBase, PolicyTableCount int
	// MirrorTables, if set, says which kernel tables besides those sync
	// writes (Table, Tables, the policy tables), main and default are
	// mirrored into XDP; the routes of the others are ignored and rules
	// looking them up pass to the kernel (mirror.go). Nil: every table.
	MirrorTables func(table int) bool
	// PortTables maps router ports of VRF-lite instances to their table:
	// the connected routes of their addresses are installed there as
	// routes of ours (scope link), so that an instance reaches its own
	// subnets. Their tables must be in Tables.
	PortTables map[string]int
	// Ports are the router ports (interface names) that carry XDP.
	Ports []string
	// Metric is the kernel metric of the routes xdprouterd installs. A
	// kernel route of lower metric wins in XDP as it does in the kernel.
	Metric int
	// StaleAfter delays deleting routes a previous instance left in the
	// kernel, so that BGP can re-learn them first (no forwarding gap).
	StaleAfter time.Duration
	// Refresh is how often neighbors in use are re-confirmed (XDP traffic
	// never confirms them).
	Refresh time.Duration
	// OnConnected, if set, receives the connected prefixes whenever they
	// change (for BGP redistribution).
	OnConnected func([]netip.Prefix)
	// OnPort, if set, is called when a router port appears (present) or is
	// deleted, e.g. to attach the XDP program to a re-created interface.
	OnPort func(name string, ifindex int, present bool)
	// OnApply, if set, observes the duration of every applied batch.
	OnApply func(time.Duration)
	// OnFirstApply, if set, is called once the first snapshot of the
	// kernel's state has been applied to both sinks.
	OnFirstApply func()
	// NexthopObjects installs BGP routes by kernel nexthop groups, one per
	// next-hop set (see kernelnh.go); set it only where the kernel has
	// them (fib.Table.NexthopsSupported).
	NexthopObjects bool
	// ResolveViaDefault lets BGP next hops resolve through a default
	// route (off by default, as FRR's "ip nht resolve-via-default").
	ResolveViaDefault bool
	// MaxGroups and MaxNextHops are the sizes of the XDP group and
	// next-hop maps (0: unlimited). Routes that would need more are
	// passed to the kernel in XDP, counted as refused.
	MaxGroups, MaxNextHops uint32
	// MaxGroupsPerPeer bounds the BGP next-hop sets (each a group) one
	// peer's routes may use in XDP, so that one peer cannot exhaust the
	// maps for everyone (0: MaxGroups/8, or unlimited without MaxGroups;
	// negative: unlimited).
	// Routes beyond it are installed in the kernel and passed to it in
	// XDP, counted as refused.
	MaxGroupsPerPeer int
	// Adopt, if set, is the XDP state a previous instance left in the
	// pinned maps (hitless restart): taken as applied at the first
	// snapshot, so that nothing right is rewritten.
	Adopt *route.XDPState
	// AuditEvery is how often the XDP maps are read back and repaired
	// where they differ from what sync wrote (0: never).
	AuditEvery time.Duration
	// Chunk bounds how many prefixes one locked batch applies (0: 4096),
	// so that inspection and fresh input are never held up for long.
	Chunk int

	now func() time.Time // tests
}

// Syncer owns the desired and applied state. Create with New, run with Run.
type Syncer struct {
	opt Options
	log *slog.Logger

	// Inputs, queued by their producers without waiting for the worker:
	// BGP changes coalesced per prefix, kernel events in order.
	inMu     gosync.Mutex
	bgpIn    map[route.TablePrefix]BestPath
	kernelIn []any
	wake     chan struct{}

	mu gosync.Mutex // guards st (the worker holds it while applying a chunk)
	st *state

	// counts is published by the worker after every chunk: readers never
	// wait for a batch.
	countsMu gosync.Mutex
	counts   Counts

	beat heartbeat // see Alive
}

// New returns a Syncer; nothing is touched before Run.
func New(opt Options) *Syncer {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Refresh == 0 {
		opt.Refresh = 5 * time.Second
	}
	s := &Syncer{
		opt:   opt,
		log:   opt.Log.With("component", "sync"),
		bgpIn: map[route.TablePrefix]BestPath{},
		wake:  make(chan struct{}, 1),
	}
	s.st = newState(opt, s.log)
	return s
}

// Best records BGP best-path changes. It never blocks on the worker: GoBGP
// calls it from its event queue.
func (s *Syncer) Best(paths []BestPath) {
	s.inMu.Lock()
	for _, p := range paths {
		s.bgpIn[bgpKey(s.opt.Table, p.Table, p.Prefix.Masked())] = p
	}
	s.inMu.Unlock()
	s.kick()
}

func (s *Syncer) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run applies kernel events from events (see fib.Watcher) and BGP changes
// until ctx ends. Events are taken off the channel at once and queued, so
// that a long batch never stalls the netlink reader (whose socket would
// overflow and force a full resync).
func (s *Syncer) Run(ctx context.Context, events <-chan any) error {
	s.beat.tick()
	s.beat.running.Store(true)
	defer s.beat.running.Store(false)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				s.inMu.Lock()
				s.kernelIn = append(s.kernelIn, ev)
				s.inMu.Unlock()
				s.kick()
			}
		}
	}()
	refresh := time.NewTicker(s.opt.Refresh)
	defer refresh.Stop()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	var auditC <-chan time.Time
	if s.opt.AuditEvery > 0 {
		audit := time.NewTicker(s.opt.AuditEvery)
		defer audit.Stop()
		auditC = audit.C
	}
	var auditDone chan auditRead // a route read-back in progress
	var staleC <-chan time.Time
	for {
		s.beat.tick()
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-refresh.C:
			s.mu.Lock()
			s.st.refreshNeighbors()
			s.st.probePolicy()
			s.mu.Unlock()
		case <-retry.C:
			s.mu.Lock()
			s.st.retryFailed()
			s.mu.Unlock()
		case <-auditC:
			if auditDone != nil {
				break // the last one is still reading
			}
			s.mu.Lock()
			s.st.beginAudit()
			s.mu.Unlock()
			auditDone = make(chan auditRead, 1)
			go func(done chan<- auditRead) {
				rs, err := s.opt.Datapath.Routes()
				done <- auditRead{rs, err}
			}(auditDone)
		case read := <-auditDone:
			auditDone = nil
			s.mu.Lock()
			if n := s.st.finishAudit(read.routes, read.err); n > 0 {
				s.log.Warn("XDP maps differed from sync state: repaired", "entries", n)
			}
			s.mu.Unlock()
		case <-staleC:
			s.mu.Lock()
			s.st.sweepStale()
			s.mu.Unlock()
		}
		first := !s.st.haveSnapshot
		s.applyPending()
		if first && s.st.haveSnapshot {
			if s.opt.StaleAfter > 0 {
				staleC = time.After(s.opt.StaleAfter)
			}
			if s.opt.OnFirstApply != nil {
				s.opt.OnFirstApply()
			}
		}
	}
}

// auditRead is the XDP route maps as read back for an audit.
type auditRead struct {
	routes []route.Entry
	err    error
}

func (s *Syncer) applyPending() {
	s.inMu.Lock()
	kernelIn := s.kernelIn
	s.kernelIn = nil
	in := s.bgpIn
	if len(in) > 0 {
		s.bgpIn = map[route.TablePrefix]BestPath{}
	} else {
		in = nil // never keep the producers' map: Best writes it unlocked from us
	}
	s.inMu.Unlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.publishCounts()
	for _, ev := range kernelIn {
		s.st.kernelEvent(ev)
	}
	if !s.st.haveSnapshot {
		// Keep BGP input until the kernel state is known: resolving next
		// hops needs it.
		if len(in) > 0 {
			s.inMu.Lock()
			for p, nh := range in {
				if _, newer := s.bgpIn[p]; !newer {
					s.bgpIn[p] = nh
				}
			}
			s.inMu.Unlock()
		}
		return
	}
	for p, b := range in {
		s.st.peerSeen(b.Peer, b.BackupPeer)
		s.st.setBGPIn(p, b.NextHops, b.Backup, b.Peer, b.Blackhole)
	}
	chunk := s.opt.Chunk
	if chunk <= 0 {
		chunk = 4096
	}
	for s.st.dirty.Len() > 0 || s.st.resolveDirty || s.st.groupsDirty || s.st.rulesDirty {
		start := time.Now()
		more := s.st.apply(chunk)
		s.beat.tick()
		if s.opt.OnApply != nil {
			s.opt.OnApply(time.Since(start))
		}
		if !more {
			break
		}
		// Let readers in between chunks.
		s.publishCounts()
		s.mu.Unlock()
		s.mu.Lock()
	}
	if s.opt.OnConnected != nil && s.st.connectedChanged {
		s.st.connectedChanged = false
		s.opt.OnConnected(s.st.connectedPrefixes())
	}
}

// publishCounts makes the current counts visible to Counts. Call with mu.
func (s *Syncer) publishCounts() {
	c := s.st.counts
	c.Pending = s.st.dirty.Len()
	c.Failed = len(s.st.failed)
	c.Groups, c.NextHops = s.st.groupIDs.used(), s.st.nhIDs.used()
	c.Neighbors = len(s.st.neighs)
	s.countsMu.Lock()
	s.counts = c
	s.countsMu.Unlock()
}

// Counts is a snapshot of the sync state for metrics and status.
type Counts struct {
	XDP4, XDP6 int // routes in the XDP tries (every table)
	FIB4, FIB6 int // routes xdprouterd installed in the kernel (Options.Table and Options.Tables)
	Pending    int // changes received but not applied yet
	Failed     int // changes whose last apply failed (retried every second)
	Rejected   int // BGP routes the kernel refused for good (not retried until they change)
	Refused    int // routes passed to the kernel in XDP because the group or next-hop map is full
	Stale      int // routes a previous instance left that BGP has not re-learned (yet)
	// Writes since start: kernel routes installed (created or replaced)
	// and deleted, XDP route entries written and deleted; XDP entries
	// found wrong by the audit and rewritten.
	FIBInstalls, FIBDeletes uint64
	XDPWrites               uint64
	Repairs                 uint64
	NexthopWrites           uint64 // kernel nexthop objects written and deleted
	// XDP map slots in use: next-hop group and next-hop ids held (a freed
	// id cools down a second before reuse, and counts meanwhile), neighbor
	// entries written.
	Groups, NextHops, Neighbors int
	// Failovers counts next-hop groups switched from their primary members
	// to their backups (bgp.pic) since start: one per group, not per route.
	Failovers uint64
}

// Counts returns the counts as of the last applied chunk, plus the input
// queued since. It never waits for the worker.
func (s *Syncer) Counts() Counts {
	s.inMu.Lock()
	in := len(s.bgpIn) + len(s.kernelIn)
	s.inMu.Unlock()
	s.countsMu.Lock()
	c := s.counts
	s.countsMu.Unlock()
	c.Pending += in
	return c
}

// RouteInfo describes one prefix of one kernel table as sync sees it.
type RouteInfo struct {
	Table       int          `json:"table"` // kernel table (route.TableMain: 254)
	Prefix      netip.Prefix `json:"prefix"`
	Source      string       `json:"source"` // kernel, bgp, local
	Kind        string       `json:"kind"`
	Metric      int          `json:"metric"`
	NextHops    []string     `json:"nexthops,omitempty"`     // resolved
	BGPNextHops []netip.Addr `json:"bgp_nexthops,omitempty"` // as learned
	// The backup path (bgp.pic): its BGP next hops and how they resolve.
	BGPBackup  []netip.Addr `json:"bgp_backup,omitempty"`
	Backup     []string     `json:"backup,omitempty"`
	Unresolved bool         `json:"unresolved,omitempty"` // BGP next hop has no route
	InXDP      bool         `json:"in_xdp"`
	InKernel   bool         `json:"in_kernel"` // installed by xdprouterd (kernel-sourced routes are in the kernel by definition)
	Group      uint32       `json:"group,omitempty"`
	Shadowed   string       `json:"shadowed,omitempty"`
	// Why a BGP path is not (all) in use: the kernel refused it, or a
	// next hop must not be used (an address of this router).
	Error string `json:"error,omitempty"`
	// Refused: passed to the kernel in XDP because the group or next-hop
	// map is full.
	Refused bool            `json:"refused,omitempty"`
	Members []route.NextHop `json:"-"`
	// RPKI is the origin validation state of the BGP best path (valid,
	// not-found, invalid); set by the API when [[rpki]] is configured.
	RPKI string `json:"rpki,omitempty"`
}

// Routes lists the routes sync knows in every table (main first, then by
// table id; by prefix within a table), optionally only those within (or
// containing) filter.
func (s *Syncer) Routes(filter netip.Prefix) []RouteInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.routeInfos(-1, filter)
}

// RoutesIn is Routes for one kernel table (0: route.TableMain).
func (s *Syncer) RoutesIn(table int, filter netip.Prefix) []RouteInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.routeInfos(route.NormTable(table), filter)
}

// GroupInfo describes one next-hop group as written to XDP.
type GroupInfo struct {
	ID      uint32        `json:"id"`
	Routes  int           `json:"routes"`
	Members []NextHopInfo `json:"members"`
	Active  []uint32      `json:"active"` // next-hop ids XDP hashes over
}

// NextHopInfo describes one next-hop entry.
type NextHopInfo struct {
	ID        uint32 `json:"id"`
	Via       string `json:"via"`
	Ifindex   int    `json:"ifindex"`
	MAC       string `json:"mac,omitempty"` // gateway MAC; empty: unresolved or connected
	Connected bool   `json:"connected,omitempty"`
}

// Groups lists the next-hop groups in use.
func (s *Syncer) Groups() []GroupInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.groupInfos()
}

// RemoveKernelRoutes deletes every route xdprouterd installed in the kernel
// (clean shutdown: nothing stale stays behind). Call after Run returned.
func (s *Syncer) RemoveKernelRoutes() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.publishCounts()
	var ps []route.TablePrefix
	var ops []route.Change
	for p, e := range s.st.entries.all() {
		if e.ours != 0 {
			ps = append(ps, p)
			ops = append(ops, route.Change{Delete: true, Route: route.Route{Table: p.Table, Prefix: p.Prefix, Metric: s.opt.Metric}})
		}
	}
	var errs []error
	for i, err := range s.opt.FIB.Apply(ops) {
		if err != nil {
			if len(errs) < 10 {
				errs = append(errs, err)
			}
			continue
		}
		s.st.counts.FIBDeletes++
		e := s.st.entries.get(ps[i])
		s.st.ourLists.put(e.ours)
		e.ours = 0
		s.st.countFIB(ps[i].Prefix, -1)
	}
	if s.opt.NexthopObjects && len(errs) == 0 {
		s.st.sweepLeftoverNexthops() // with no route left, every object goes
	}
	return errors.Join(errs...)
}
