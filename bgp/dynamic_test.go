package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/config"
)

// TestDynamicNeighborGated: a dynamic session's routes are accepted only
// once it is admitted. With the admission worker held off (it needs the
// speaker's lock), the session comes up and sends its route, which GoBGP
// keeps in the Adj-RIB-In but not in the RIB; admitted, the route is in.
func TestDynamicNeighborGated(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.5")
	cfg := e.cfg(nil)
	cfg.PeerGroups = []config.PeerGroup{{Name: "servers", Neighbor: config.Neighbor{
		Import: "accept-all", Export: "reject-all", HoldTime: 90, KeepaliveInterval: 30, ConnectRetry: 1}}}
	cfg.DynamicNeighbors = []config.DynamicNeighbor{{Prefix: "127.0.0.4/30", PeerGroup: "servers", Limit: 1}}
	e.start(cfg)
	srv := e.server()

	e.s.mu.Lock() // no admission meanwhile
	locked := true
	defer func() {
		if locked {
			e.s.mu.Unlock()
		}
	}()
	peer := e.peer("127.0.0.5")
	peer.announce(t, "10.5.0.0/24")
	received := func() (uint64, error) {
		var n uint64
		found := false
		err := srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
			if peerAddr(p).String() == "127.0.0.5" {
				found = true
				for _, as := range p.GetAfiSafis() {
					n += as.GetState().GetReceived()
				}
			}
		})
		if err == nil && !found {
			err = fmt.Errorf("127.0.0.5 not a peer yet")
		}
		return n, err
	}
	waitFor(t, e.hist.rec, "the dynamic session's route in its Adj-RIB-In", func() bool {
		n, err := received()
		return err == nil && n == 1
	})
	inRIB := false
	err := srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC,
		Prefixes: []*apiutil.LookupPrefix{{Prefix: "10.5.0.0/24"}}}, func(bgp.NLRI, []*apiutil.Path) { inRIB = true })
	if err != nil || inRIB {
		t.Errorf("before admission: 10.5.0.0/24 in the RIB %v, %v", inRIB, err)
	}
	if _, ok := e.hist.rec.get("10.5.0.0/24"); ok {
		t.Error("before admission: 10.5.0.0/24 reached OnBest")
	}

	e.s.mu.Unlock()
	locked = false
	e.s.admitWake()
	waitRoute(t, e.hist.rec, "10.5.0.0/24", "127.0.0.5")
	if sessions, _ := e.s.dynamicCounts(); sessions[netip.MustParsePrefix("127.0.0.4/30")] != 1 {
		t.Errorf("sessions admitted: %v", sessions)
	}
}

// TestTranslateDynamic: a peer group used by an IPv4 and an IPv6 range
// becomes one GoBGP peer group with both families, passive, any AS, its
// prefix limit GoBGP's own; each range gets policies scoped by its
// admitted-session set, which holds only the sentinel.
func TestTranslateDynamic(t *testing.T) {
	cfg := &config.Config{
		Router: config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		PeerGroups: []config.PeerGroup{{Name: "servers", Neighbor: config.Neighbor{
			Import: "accept-all", HoldTime: 9, KeepaliveInterval: 3, ConnectRetry: 1, MaxPrefixes: 16}}},
		DynamicNeighbors: []config.DynamicNeighbor{
			{Prefix: "10.1.0.0/24", PeerGroup: "servers", Limit: 2},
			{Prefix: "2001:db8:1::/64", PeerGroup: "servers", Limit: 3},
		},
	}
	p, err := translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.peerGroups) != 1 || len(p.ranges) != 2 {
		t.Fatalf("peer groups %d, ranges %+v", len(p.peerGroups), p.ranges)
	}
	g := p.peerGroups[0]
	if g.Conf.PeerGroupName != "servers" || g.Conf.PeerAsn != 0 || !g.Transport.PassiveMode || g.Timers.Config.HoldTime != 9 {
		t.Errorf("peer group %v", g)
	}
	if len(g.AfiSafis) != 2 || g.AfiSafis[0].PrefixLimits.GetMaxPrefixes() != 16 || g.AfiSafis[1].Config.Family.Afi != api.Family_AFI_IP6 {
		t.Errorf("families %v", g.AfiSafis)
	}
	if r := p.ranges[1]; r.prefix.String() != "2001:db8:1::/64" || r.limit != 3 || r.group != "servers" {
		t.Errorf("range %+v", r)
	}
	for _, r := range p.ranges {
		ds := p.set(setKey{api.DefinedType_DEFINED_TYPE_NEIGHBOR, dynamicSetName(r.prefix)})
		if ds == nil || len(ds.List) != 1 || ds.List[0] != sentinel(r.prefix) {
			t.Errorf("set of %s: %v", r.prefix, ds)
		}
		for _, dir := range []string{"import", "export"} {
			if p.policy(derivedPolicyName(dir, r.prefix, map[string]string{"import": "accept-all", "export": "reject-all"}[dir])) == nil {
				t.Errorf("no %s policy for %s", dir, r.prefix)
			}
		}
	}
	var imp []string
	for _, pol := range p.importAssignment.Policies {
		imp = append(imp, pol.Name)
	}
	if len(imp) != 3 || imp[2] != localImportPolicy {
		t.Errorf("import assignment %v", imp)
	}
}

// TestDynamicMaxPrefixes: the peer group's max-prefixes is GoBGP's own
// for dynamic sessions: one over it is closed, its routes withdrawn, and
// it does not linger shut down (a dynamic peer held in GoBGP's
// max-prefixes state would keep its place in the range and refuse the
// peer's connections for good).
func TestDynamicMaxPrefixes(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.5")
	cfg := e.cfg(nil)
	cfg.PeerGroups = []config.PeerGroup{{Name: "servers", Neighbor: config.Neighbor{
		Import: "accept-all", Export: "reject-all", HoldTime: 90, KeepaliveInterval: 30, ConnectRetry: 1, MaxPrefixes: 1}}}
	cfg.DynamicNeighbors = []config.DynamicNeighbor{{Prefix: "127.0.0.4/30", PeerGroup: "servers", Limit: 1}}
	e.start(cfg)
	peer := e.peer("127.0.0.5")
	peer.announce(t, "10.5.0.0/24")
	waitRoute(t, e.hist.rec, "10.5.0.0/24", "127.0.0.5")
	peer.announce(t, "10.6.0.0/24")
	waitRoute(t, e.hist.rec, "10.5.0.0/24")
	waitFor(t, e.hist.rec, "no dynamic peer held in max-prefixes", func() bool {
		held := false
		err := e.server().ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
			held = held || p.GetState().GetAdminState() == api.PeerState_ADMIN_STATE_PFX_CT
		})
		return err == nil && !held
	})
}

// TestDynamicInitialSync: the initial sync waits for configured neighbors
// only: a dynamic session (here one that sends no End-of-RIB: GoBGP sends
// it only with graceful restart) does not hold it.
func TestDynamicInitialSync(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.5")
	cfg := e.cfg(nil)
	cfg.PeerGroups = []config.PeerGroup{{Name: "servers", Neighbor: config.Neighbor{Import: "accept-all", HoldTime: 90, KeepaliveInterval: 30, ConnectRetry: 1}}}
	cfg.DynamicNeighbors = []config.DynamicNeighbor{{Prefix: "127.0.0.4/30", PeerGroup: "servers", Limit: 1}}
	synced := make(chan struct{})
	s, err := New(Options{Config: cfg, Logger: testLogger(t), OnBest: e.hist.onBest, OnInitialSync: func() { close(synced) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	e.s = s
	e.peer("127.0.0.5").announce(t, "10.5.0.0/24")
	waitRoute(t, e.hist.rec, "10.5.0.0/24", "127.0.0.5")
	select {
	case <-synced:
	case <-ctx.Done():
		t.Fatal("no initial sync: a dynamic session holds it")
	}
}
