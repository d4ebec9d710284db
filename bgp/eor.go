package bgp

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Initial sync (Options.OnInitialSync): the first moment every configured
// neighbor has sent End-of-RIB for each family negotiated on its session.
//
// GoBGP v4.8.0 reports both from its event watch: WatchPeer gives every
// session state change with the capabilities both sides sent (the
// negotiated families are the multiprotocol capabilities in both, IPv4
// unicast when a side sent none); WatchEor gives each End-of-RIB received,
// by family and neighbor. GoBGP notices an End-of-RIB whether or not
// graceful restart was negotiated; BIRD and FRR send it by default, GoBGP
// peers too. A neighbor that sends none keeps the initial sync from
// happening: the caller then needs an upper bound of its own (the daemon's
// stale timer).
//
// The watch is the best-path watch (one watcher, one queue, in GoBGP's
// order): when the last End-of-RIB arrives, the best paths its UPDATEs
// caused have been handed to OnBest already. With Options.Backup, OnBest
// is called by the backup worker instead: the callback then waits until
// the worker has emitted what was marked before (backupTracker.barrier).
//
// Neighbors administratively down (gobgp neighbor ADDR disable) or shut
// down for max-prefixes are not waited for. Neighbors added by a Reload
// before the initial sync are waited for, removed ones no longer.
//
// Not seen: a neighbor whose End-of-RIB GoBGP marks as received without
// one (its restart-state bit set while we restart too, RFC 4724 4.1).
type eorTracker struct {
	mu    sync.Mutex
	want  map[netip.Addr]bool // configured neighbors
	peers map[netip.Addr]*eorPeer
	done  bool
	fire  func() // called once, outside mu
}

type eorPeer struct {
	established bool
	excluded    bool         // admin down, max-prefixes
	families    []bgp.Family // negotiated on the current session
	eor         []bgp.Family // End-of-RIB received on it
}

func newEORTracker(fire func()) *eorTracker {
	return &eorTracker{want: map[netip.Addr]bool{}, peers: map[netip.Addr]*eorPeer{}, fire: fire}
}

// setNeighbors replaces the configured neighbors.
func (t *eorTracker) setNeighbors(addrs []netip.Addr) {
	t.mu.Lock()
	t.want = make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		t.want[a] = true
	}
	t.mu.Unlock()
	// Not in the caller's goroutine: Start and Reload call this holding
	// the speaker's lock, which the callback takes (fewer neighbors, or
	// none, may complete the set at once).
	go t.check()
}

func (t *eorTracker) peer(a netip.Addr) *eorPeer {
	p := t.peers[a]
	if p == nil {
		p = &eorPeer{}
		t.peers[a] = p
	}
	return p
}

// peerEvent records a session state change.
func (t *eorTracker) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent) {
	if ev == nil || ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	a := st.NeighborAddress.WithZone("")
	if !a.IsValid() {
		a = ev.Peer.Conf.NeighborAddress.WithZone("")
	}
	t.mu.Lock()
	p := t.peer(a)
	p.excluded = st.AdminState == api.PeerState_ADMIN_STATE_DOWN || st.AdminState == api.PeerState_ADMIN_STATE_PFX_CT
	est := st.SessionState == bgp.BGP_FSM_ESTABLISHED
	if est && !p.established {
		p.families = negotiated(st.LocalCap, st.RemoteCap)
		p.eor = nil
	}
	if !est {
		p.families, p.eor = nil, nil
	}
	p.established = est
	t.mu.Unlock()
	t.check()
}

// eorEvent records an End-of-RIB.
func (t *eorTracker) eorEvent(path *apiutil.Path) {
	if path == nil {
		return
	}
	a := path.PeerAddress.WithZone("")
	t.mu.Lock()
	p := t.peer(a)
	if p.established && !slices.Contains(p.eor, path.Family) {
		p.eor = append(p.eor, path.Family)
	}
	t.mu.Unlock()
	t.check()
}

// check fires the callback once everything is in.
func (t *eorTracker) check() {
	t.mu.Lock()
	if t.done || !t.completeLocked() {
		t.mu.Unlock()
		return
	}
	t.done = true
	t.mu.Unlock()
	t.fire()
}

func (t *eorTracker) completeLocked() bool {
	for a := range t.want {
		p := t.peers[a]
		if p != nil && p.excluded {
			continue
		}
		if p == nil || !p.established {
			return false
		}
		for _, f := range p.families {
			if !slices.Contains(p.eor, f) {
				return false
			}
		}
	}
	return true
}

// negotiated returns the families both OPENs carried (RFC 4760: a side
// without multiprotocol capabilities speaks IPv4 unicast only).
func negotiated(local, remote []bgp.ParameterCapabilityInterface) []bgp.Family {
	fams := func(caps []bgp.ParameterCapabilityInterface) []bgp.Family {
		var out []bgp.Family
		for _, c := range caps {
			if mp, ok := c.(*bgp.CapMultiProtocol); ok {
				out = append(out, mp.CapValue)
			}
		}
		if len(out) == 0 {
			out = []bgp.Family{bgp.RF_IPv4_UC}
		}
		return out
	}
	l, r := fams(local), fams(remote)
	var out []bgp.Family
	for _, f := range l {
		if slices.Contains(r, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
