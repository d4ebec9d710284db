package bgp

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/xdprouter/xdprouter/config"
)

// A neighbor added at run time through GoBGP's API (as `gobgp neighbor
// add` would) is not in the configuration: RFC 8212 applies to it as to a
// configured eBGP neighbor without policies. Nothing it sends is
// accepted, nothing is sent to it.
func TestRuntimeNeighborDefaultDeny(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2", "127.0.0.3")
	a := e.nbr("127.0.0.2")
	a.Export = "accept-all"
	e.start(e.cfg([]config.Neighbor{a}, "198.51.100.0/24"))
	peerA, peerB := e.peer("127.0.0.2"), e.peer("127.0.0.3")
	e.waitUp("127.0.0.2")

	err := e.server().AddPeer(context.Background(), &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.3", PeerAsn: 65003},
		Transport: &api.Transport{LocalAddress: "127.0.0.1", RemotePort: e.ports["127.0.0.3"]},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1}},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
			Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	runtimePeer := func() (st PeerStatus) {
		err := e.server().ListPeer(context.Background(), &api.ListPeerRequest{Address: "127.0.0.3"}, func(p *api.Peer) {
			st = peerStatus(p)
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	waitFor(t, nil, "runtime neighbor up", func() bool { return runtimePeer().Up })
	peerB.announce(t, "10.3.0.0/24")
	waitFor(t, nil, "runtime neighbor sent 10.3.0.0/24", func() bool { return runtimePeer().Received == 1 })
	// A route of the configured neighbor afterwards: the runtime
	// neighbor's UPDATE was processed before it.
	peerA.announce(t, "10.1.0.0/24")
	waitRoute(t, e.hist.rec, "10.1.0.0/24", "127.0.0.2")
	if nh, ok := e.hist.rec.get("10.3.0.0/24"); ok {
		t.Errorf("route from a neighbor added at run time was accepted: 10.3.0.0/24 via %v", nh)
	}
	// Our network goes to the configured neighbor (export accept-all), not
	// to the runtime one.
	waitFor(t, nil, "configured neighbor learns 198.51.100.0/24", func() bool {
		return slices.Equal(peerA.received(t, bgp.RF_IPv4_UC), []string{"198.51.100.0/24"})
	})
	if got := adjOut(t, e.s, "127.0.0.3"); len(got) != 0 {
		t.Errorf("announced %v to a neighbor added at run time", got)
	}
}

// The default gRPC listener is a Unix socket in a directory only the
// daemon's user can enter.
func TestGRPCUnixSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	sock := filepath.Join(dir, "gobgp.sock")
	cfg := &config.Config{
		Router: config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		API:    config.API{GRPCListen: config.UnixScheme + sock},
		BGP:    config.BGP{ListenPort: -1},
	}
	s := startSpeaker(t, cfg, nil)
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v, %v; want mode 0700", st, err)
	}
	conn, err := grpc.NewClient(config.UnixScheme+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var rsp *api.GetBgpResponse
	waitFor(t, nil, "gRPC answers on "+sock, func() bool {
		rsp, err = api.NewGoBgpServiceClient(conn).GetBgp(context.Background(), &api.GetBgpRequest{})
		return err == nil
	})
	if rsp.GetGlobal().GetAsn() != 65000 {
		t.Errorf("GetBgp over the socket = %v", rsp)
	}
	s.Stop()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Stop: %v", err)
	}

	// A directory others can enter is refused, before anything listens.
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	cfg2 := *cfg
	cfg2.API.GRPCListen = config.UnixScheme + filepath.Join(open, "gobgp.sock")
	s2, err := New(Options{Config: &cfg2})
	if err != nil {
		t.Fatal(err)
	}
	err = s2.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "api.grpc-listen") || !strings.Contains(err.Error(), "mode 0755") {
		t.Errorf("Start with a socket directory of mode 0755: err = %v", err)
	}
	s2.Stop()
}
