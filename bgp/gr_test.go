package bgp

import (
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/config"
)

func TestTranslateGracefulRestartAndBFD(t *testing.T) {
	cfg := fullConfig()
	n := &cfg.Neighbors[0]
	n.GracefulRestart, n.RestartTime, n.LongLivedStaleTime = true, 90, 3600
	n.BFD, n.BFDMinRx, n.BFDMinTx, n.BFDMultiplier = true, 100, 200, 5
	cfg.Neighbors[1].GracefulRestart = true // restart-time 0: the default
	p, err := translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	peer := p.peers[0]
	gr := peer.GetGracefulRestart()
	if !gr.GetEnabled() || gr.GetRestartTime() != 90 || gr.GetDeferralTime() != 90 || !gr.GetLonglivedEnabled() ||
		gr.GetHelperOnly() || gr.GetNotificationEnabled() || gr.GetLocalRestarting() {
		t.Errorf("graceful restart = %v", gr)
	}
	for _, as := range peer.AfiSafis {
		if !as.GetMpGracefulRestart().GetConfig().GetEnabled() {
			t.Errorf("%v: no graceful restart for the family", as.Config.Family)
		}
		if l := as.GetLongLivedGracefulRestart().GetConfig(); !l.GetEnabled() || l.GetRestartTime() != 3600 {
			t.Errorf("%v: long-lived = %v", as.Config.Family, l)
		}
	}
	b := peer.GetBfd()
	if !b.GetEnabled() || b.GetRequiredMinimumReceive() != 100000 || b.GetDesiredMinimumTxInterval() != 200000 || b.GetDetectionMultiplier() != 5 {
		t.Errorf("bfd = %v (intervals in microseconds)", b)
	}
	if gr := p.peers[1].GetGracefulRestart(); gr.GetRestartTime() != config.DefaultRestartTime || gr.GetLonglivedEnabled() {
		t.Errorf("defaulted graceful restart = %v", gr)
	}
	if p.peers[1].GetBfd() != nil || p.peers[2].GetGracefulRestart() != nil || p.peers[2].AfiSafis[0].MpGracefulRestart != nil {
		t.Errorf("off means nil: bfd %v, graceful restart %v", p.peers[1].GetBfd(), p.peers[2].GetGracefulRestart())
	}

	// The restart-state and forwarding-state bits come from LocalRestarting,
	// set on a copy, and only where graceful restart is on.
	if r := restarting(peer); !r.GetGracefulRestart().GetLocalRestarting() || peer.GetGracefulRestart().GetLocalRestarting() {
		t.Error("restarting must set LocalRestarting on a copy")
	}
	if r := restarting(p.peers[2]); r.GetGracefulRestart() != nil {
		t.Error("restarting must leave a neighbor without graceful restart alone")
	}
}

// TestClassifyBFDLive: a BFD setting changes in place (GoBGP's UpdatePeer),
// graceful restart needs the session replaced (a new OPEN).
func TestClassifyBFDLive(t *testing.T) {
	cfg := fullConfig()
	old, _ := translate(cfg)
	cfg.Neighbors[0].BFD = true
	bfd, _ := translate(cfg)
	if c := classifyPeer(old.peers[0], bfd.peers[0]); c != peerUpdate {
		t.Errorf("bfd on: %v, want peerUpdate", c)
	}
	cfg.Neighbors[0].GracefulRestart = true
	gr, _ := translate(cfg)
	if c := classifyPeer(bfd.peers[0], gr.peers[0]); c != peerReplace {
		t.Errorf("graceful restart on: %v, want peerReplace", c)
	}
}

func mpCaps(fams ...bgp.Family) []bgp.ParameterCapabilityInterface {
	var out []bgp.ParameterCapabilityInterface
	for _, f := range fams {
		out = append(out, bgp.NewCapMultiProtocol(f))
	}
	return out
}

func peerEv(a string, state bgp.FSMState, admin api.PeerState_AdminState, local, remote []bgp.ParameterCapabilityInterface) *apiutil.WatchEventMessage_PeerEvent {
	return &apiutil.WatchEventMessage_PeerEvent{Type: apiutil.PEER_EVENT_STATE, Peer: apiutil.Peer{State: apiutil.PeerState{
		NeighborAddress: netip.MustParseAddr(a), SessionState: state, AdminState: admin, LocalCap: local, RemoteCap: remote,
	}}}
}

func eorPath(a string, f bgp.Family) *apiutil.Path {
	return &apiutil.Path{Family: f, PeerAddress: netip.MustParseAddr(a)}
}

func TestEORTracker(t *testing.T) {
	fired := 0
	tr := newEORTracker(func() { fired++ })
	a, b := "192.0.2.1", "192.0.2.2"
	tr.setNeighbors([]netip.Addr{netip.MustParseAddr(a), netip.MustParseAddr(b)})
	up := api.PeerState_ADMIN_STATE_UP
	both := mpCaps(bgp.RF_IPv4_UC, bgp.RF_IPv6_UC)
	// a negotiates both families, b only IPv4 (it sent no MP capability).
	tr.peerEvent(peerEv(a, bgp.BGP_FSM_ESTABLISHED, up, both, both))
	tr.peerEvent(peerEv(b, bgp.BGP_FSM_ESTABLISHED, up, both, nil))
	tr.eorEvent(eorPath(a, bgp.RF_IPv4_UC))
	tr.eorEvent(eorPath(b, bgp.RF_IPv4_UC))
	if fired != 0 {
		t.Fatal("fired before a's IPv6 End-of-RIB")
	}
	// a flaps: what it sent before does not count.
	tr.peerEvent(peerEv(a, bgp.BGP_FSM_IDLE, up, nil, nil))
	tr.peerEvent(peerEv(a, bgp.BGP_FSM_ESTABLISHED, up, both, both))
	tr.eorEvent(eorPath(a, bgp.RF_IPv6_UC))
	if fired != 0 {
		t.Fatal("fired with a's IPv4 End-of-RIB from an older session")
	}
	tr.eorEvent(eorPath(a, bgp.RF_IPv4_UC))
	if fired != 1 {
		t.Fatalf("fired %d times once all End-of-RIBs were in, want 1", fired)
	}
	tr.eorEvent(eorPath(a, bgp.RF_IPv4_UC))
	tr.setNeighbors(nil)
	if fired != 1 {
		t.Fatalf("fired %d times, want exactly once", fired)
	}
}

func TestEORTrackerExcludesShutDown(t *testing.T) {
	fired := 0
	tr := newEORTracker(func() { fired++ })
	a, b := "192.0.2.1", "2001:db8::2"
	tr.setNeighbors([]netip.Addr{netip.MustParseAddr(a), netip.MustParseAddr(b)})
	v4 := mpCaps(bgp.RF_IPv4_UC)
	tr.peerEvent(peerEv(a, bgp.BGP_FSM_ESTABLISHED, api.PeerState_ADMIN_STATE_UP, v4, v4))
	tr.eorEvent(eorPath(a, bgp.RF_IPv4_UC))
	if fired != 0 {
		t.Fatal("fired while b never came up")
	}
	tr.peerEvent(peerEv(b, bgp.BGP_FSM_IDLE, api.PeerState_ADMIN_STATE_PFX_CT, nil, nil))
	if fired != 1 {
		t.Fatalf("a neighbor shut down for max-prefixes is not waited for: fired %d", fired)
	}
}
