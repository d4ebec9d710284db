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
