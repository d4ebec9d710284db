package sync

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/gaissmai/bart"

	"github.com/xdprouter/xdprouter/route"
)

// rejection is a route the kernel refused for good: the next-hop list
// (route.Key) and why. It is not retried until the wanted list changes.
type rejection struct {
	key, why string
}

type xdpApplied struct {
	group   uint32 // id of the group held (st.groupByID); 0: none
	on      bool
	kind    route.Kind
	refused refusal // KernelOnly for lack of room in XDP
	adopted bool    // left by a previous instance, not yet decided (adopt.go)
}

// sameXDP reports whether a and b write the same XDP entry.
func sameXDP(a, b xdpApplied) bool {
	a.adopted, b.adopted = false, false
	return a == b
}

// refusal is why a route XDP could forward is passed to the kernel.
type refusal uint8

const (
	refusedMapFull   refusal = 1 + iota // the group or next-hop map is full
	refusedPeerLimit                    // its peer used all its groups
)

// bgpSet is an interned set of BGP next hops with its resolution.
type bgpSet struct {
	id       uint32
	key      string // the addresses: identity that outlives the id
	addrs    []netip.Addr
	refs     int
	resolved []route.NextHop
	// backup is the next best path's next hops (BGP PIC edge), resolved
	// like addrs: the set's group switches to them at once when no
	// primary member is usable, and its routes use them while the
	// primary does not resolve.
	backup         []netip.Addr
	resolvedBackup []route.NextHop
	why            string // why some next hops were not used (e.g. an address of this router)
	// peer is the neighbor whose routes created the set; overLimit: that
	// peer had used all its sets then, so the set gets no XDP group.
	peer      netip.Addr
	overLimit bool
	// blackhole: the set of BGP blackhole routes (RTBH, RFC 7999), one
	// for all of them: no next hops, installed as blackholes.
	blackhole bool
	// table is the kernel table of its routes (they resolve there);
	// connected: the set of the connected routes of ours of one VRF port
	// (vrf.go): resolved is that port, nothing to resolve.
	table     int
	connected bool
	// policy: the set of a policy next hop's route (policy.go): resolved
	// is the next hop on its port, nothing to resolve.
	policy bool
}

type state struct {
	opt Options
	log *slog.Logger

	// table is the kernel table of the global instance's BGP routes
	// (Options.Table, normalised). bgpTables holds it and the VRF tables
	// (Options.Tables): the tables with routes of ours, where BGP routes
	// are keyed and resolve through that table's kernel routes.
	table     int
	bgpTables map[int]bool
	// portTable maps VRF ports to their table (Options.PortTables);
	// connected holds the connected routes of ours wanted in VRF tables,
	// each with the set (a connected bgpSet) it is installed with, and
	// connBGP the BGP set of such a prefix, kept aside: the connected
	// route wins, as in the kernel's main table (vrf.go).
	portTable map[string]int
	connected map[route.TablePrefix]uint32
	connBGP   map[route.TablePrefix]uint32
	connDirty bool // addresses or links changed: syncConnected

	// Policy next hops (policy.go): the default route wanted in each
	// next hop's table (key) via it, their addresses, the routes
	// installed (their sets), and the port each was last probed on.
	policyNH     map[route.TablePrefix]netip.Addr
	policyAddrs  map[netip.Addr]bool
	policyOn     map[route.TablePrefix]uint32
	policyProbed map[route.TablePrefix]int
	policyDirty  bool // links, addresses, their neighbors or the list changed: syncPolicy

	haveSnapshot   bool
	sweepWanted    bool // SweepStale before the first snapshot (sweep.go)
	entries        *entryTable
	dirty          *prefixSet
	failed         map[route.TablePrefix]struct{}
	rejected       map[route.TablePrefix]rejection // rare: kept beside the entries
	refused        map[route.TablePrefix]refusal   // in XDP as kernel-only for lack of room
	refusedMapFull int                             // of those, because a map was full
	foreignTables  map[int]bool                    // tables other than ours holding routes of our protocol (logged once each)

	// Policy rules (rules.go): the kernel's list as last received, and
	// what the Datapath last accepted.
	rules        []route.Rule
	rulesDirty   bool           // the rules or the links may have changed since SetRules last succeeded
	rulesChanged bool           // the rules did (or SetRules is yet to be called)
	rulesLinks   map[string]int // the link names SetRules last resolved with
	rulesSet     bool           // SetRules succeeded once
	rulesFailLog time.Time

	links  map[int]route.Link
	ports  map[string]bool
	addrs  map[route.Addr]struct{}
	neighs map[neighKey]route.Neighbor

	sets     map[string]*bgpSet
	setsByID map[uint32]*bgpSet
	setIDs   ids
	peerDown map[netip.Addr]time.Time // neighbors whose paths BGP dropped (PeerDropped), since
	peerSets map[netip.Addr]int       // sets within the bound, per peer
	peerOver map[netip.Addr]bool      // peers over the bound (logged once)

	ourLists  lists // next-hop lists of our routes in the kernel
	groups    map[string]*group
	groupByID map[uint32]*group
	groupIDs  ids
	nhs       map[route.NextHop]*nexthop
	nhIDs     ids
	adopted   map[uint32]*adoptedGroup // groups of a previous instance not taken over (adopt.go)

	leftovers []route.Route // ours with another metric (in our table), left by an earlier run

	// Kernel nexthop objects (kernelnh.go).
	kgroups         map[string]*kgroup
	kgroupByID      map[uint32]*kgroup
	ksingles        map[route.NextHop]*ksingle
	knhIDs          ids
	kdelete         []uint32        // objects to delete once routes moved off
	leftoverNH      map[uint32]bool // groups a previous instance left
	leftoverSingles []uint32
	// What they hold, so that a group of ours can take one over.
	leftoverMembers map[uint32][]uint32
	leftoverSingle  map[uint32]route.NextHop

	// kernelRoutes indexes, per BGP table (bgpTables), the entries with
	// kernel routes (e.kernelRoutes() not empty) by prefix: resolve walks
	// a next hop's covering routes in the table of the BGP route, longest
	// first, instead of probing entries at every prefix length. Other
	// tables' routes never resolve BGP next hops (the kernel validates a
	// gateway in the route's own table). The connected routes of ours in
	// VRF tables are indexed too (connIndex).
	kernelRoutes map[int]*bart.Table[*entry]
	connIndex    map[int]*bart.Table[int] // VRF table → connected prefix → ifindex
	// What changed since the last reresolve: the prefixes whose kernel
	// routes changed (only sets with a next hop inside one can resolve
	// differently), or, with resolveAll, something every set depends on
	// (the router's addresses), or more prefixes than worth tracking.
	kernelChanged  *bart.Lite
	kernelChangedN int
	resolveAll     bool

	resolveDirty     bool // kernel routes changed: re-resolve BGP sets
	groupsDirty      bool // links or neighbors changed: recompute group members
	connectedChanged bool
	exhausted        string // the map that ran out in this batch
	exhaustedLogged  bool   // the episode was logged

	batchFailed int // transient failures in this batch
	firstFail   error
	lastFailLog time.Time

	// An audit in progress: prefixes written since it read the maps
	// (nil: none running), and what it repaired so far.
	touched      map[route.TablePrefix]struct{}
	auditRepairs int

	counts Counts
}

type neighKey struct {
	ifindex int
	addr    netip.Addr
}

// idCooldown is how long a freed group or next-hop id stays unused: far
// longer than any packet takes through the XDP program.
const idCooldown = time.Second

func newState(opt Options, log *slog.Logger) *state {
	tables := newTableIndex()
	st := &state{
		opt: opt, log: log,
		table:         route.NormTable(opt.Table),
		entries:       newEntryTable(tables),
		dirty:         newPrefixSet(tables),
		failed:        map[route.TablePrefix]struct{}{},
		refused:       map[route.TablePrefix]refusal{},
		rejected:      map[route.TablePrefix]rejection{},
		foreignTables: map[int]bool{},
		links:         map[int]route.Link{},
		ports:         map[string]bool{},
		addrs:         map[route.Addr]struct{}{},
		neighs:        map[neighKey]route.Neighbor{},
		sets:          map[string]*bgpSet{},
		setsByID:      map[uint32]*bgpSet{},
		peerSets:      map[netip.Addr]int{},
		peerDown:      map[netip.Addr]time.Time{},
		peerOver:      map[netip.Addr]bool{},
		groups:        map[string]*group{},
		groupByID:     map[uint32]*group{},
		nhs:           map[route.NextHop]*nexthop{},
		ourLists:      newLists(),
		groupIDs:      ids{max: opt.MaxGroups, cool: idCooldown, now: opt.now},
		nhIDs:         ids{max: opt.MaxNextHops, cool: idCooldown, now: opt.now},

		kgroups:    map[string]*kgroup{},
		kgroupByID: map[uint32]*kgroup{},
		ksingles:   map[route.NextHop]*ksingle{},
		leftoverNH: map[uint32]bool{},

		kernelRoutes:  map[int]*bart.Table[*entry]{},
		connIndex:     map[int]*bart.Table[int]{},
		bgpTables:     map[int]bool{},
		portTable:     map[string]int{},
		connected:     map[route.TablePrefix]uint32{},
		connBGP:       map[route.TablePrefix]uint32{},
		policyOn:      map[route.TablePrefix]uint32{},
		policyProbed:  map[route.TablePrefix]int{},
		kernelChanged: new(bart.Lite),
	}
	st.ourLists.freed = st.listFreed
	st.bgpTables[st.table] = true
	for _, t := range opt.Tables {
		st.bgpTables[route.NormTable(t)] = true
	}
	for port, t := range opt.PortTables {
		st.portTable[port] = route.NormTable(t)
		st.bgpTables[route.NormTable(t)] = true
	}
	for t := range st.bgpTables {
		st.kernelRoutes[t] = new(bart.Table[*entry])
	}
	st.setPolicyNextHops(opt.PolicyNextHops)
	for _, p := range opt.Ports {
		st.ports[p] = true
	}
	if st.opt.MaxGroupsPerPeer == 0 && opt.MaxGroups > 0 {
		st.opt.MaxGroupsPerPeer = int(opt.MaxGroups / 8)
	}
	return st
}

func (st *state) entry(tp route.TablePrefix) *entry { return st.entries.add(tp) }

func (st *state) markDirty(tp route.TablePrefix) { st.dirty.add(tp) }

// ourKey is the key of prefix p in our table (BGP routes, ours).
func (st *state) ourKey(p netip.Prefix) route.TablePrefix {
	return route.TablePrefix{Table: st.table, Prefix: p}
}

// bgpKey is the key of a BGP path's prefix p in table t (0: def, the
// global instance's table).
func bgpKey(def, t int, p netip.Prefix) route.TablePrefix {
	if t == 0 {
		t = def
	}
	return route.TablePrefix{Table: route.NormTable(t), Prefix: p}
}

// isBGPTable reports whether table t holds BGP routes (routes of ours).
// The policy tables hold routes of ours too (policy.go).
func (st *state) isBGPTable(t int) bool {
	return st.bgpTables[route.NormTable(t)] || st.isPolicyTable(t)
}

// mainKey is the key of prefix p in the main table (local addresses).
func mainKey(p netip.Prefix) route.TablePrefix {
	return route.TablePrefix{Table: route.TableMain, Prefix: p}
}

// kernelRoutesSet records that e.kernel, the kernel's routes of tp,
// changed: in our table the index follows and the BGP sets through the
// prefix are re-resolved. An entry stays in the index only while it has
// kernel routes, so gc never drops one still indexed.
func (st *state) kernelRoutesSet(tp route.TablePrefix, e *entry) {
	st.markDirty(tp)
	idx := st.kernelRoutes[tp.Table]
	if idx == nil {
		return // resolves nothing
	}
	p := tp.Prefix
	st.resolveDirty = true
	if !st.resolveAll {
		if st.kernelChangedN++; st.kernelChangedN > maxTrackedChanges {
			st.resolveAll = true // a resync or a flap of many: not worth tracking
		} else {
			st.kernelChanged.Insert(p)
		}
	}
	if p != p.Masked() {
		return // not a route prefix (the index would mask it onto another)
	}
	if len(e.kernelRoutes()) > 0 {
		idx.Insert(p, e)
	} else {
		idx.Delete(p)
	}
}

// maxTrackedChanges bounds the kernel prefixes tracked for reresolve: past
// it, re-resolving every set costs less than tracking (a full table resync
// would insert every prefix).
const maxTrackedChanges = 4096

func (st *state) gc(tp route.TablePrefix, e *entry) {
	if e != nil && e.side == nil && e.bgpSet == 0 && !e.xdp.on && e.ours == 0 {
		st.entries.remove(tp)
	}
}

// forgetOurs records that our route of p is no longer in the kernel.
func (st *state) forgetOurs(p route.TablePrefix, e *entry) {
	if e.ours == 0 {
		return
	}
	st.ourLists.put(e.ours)
	e.ours = 0
	st.setStale(e, false)
	st.countFIB(p.Prefix, -1)
	st.markDirty(p)
}

// setStale marks e's route of ours as a previous instance's (or not),
// keeping count.
func (st *state) setStale(e *entry, b bool) {
	if e.isStale() == b {
		return
	}
	if b {
		st.counts.Stale++
	} else {
		st.counts.Stale--
	}
	e.setStale(b)
}

func (st *state) countXDP(p netip.Prefix, n int) {
	if p.Addr().Is4() {
		st.counts.XDP4 += n
	} else {
		st.counts.XDP6 += n
	}
}

func (st *state) countFIB(p netip.Prefix, n int) {
	if p.Addr().Is4() {
		st.counts.FIB4 += n
	} else {
		st.counts.FIB6 += n
	}
}

func (st *state) linkUp(ifindex int) bool { return st.links[ifindex].Up }

func (st *state) isPort(ifindex int) bool {
	l, ok := st.links[ifindex]
	return ok && st.ports[l.Name]
}

func (st *state) clock() time.Time {
	if st.opt.now != nil {
		return st.opt.now()
	}
	return time.Now()
}
