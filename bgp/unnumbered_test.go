package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/config"
)

// TestUnnumberedTranslation: an unnumbered neighbor whose peer was found
// becomes a GoBGP neighbor at the peer's link-local address with its
// interface as zone, both unicast families, policies scoped to that
// address; one not found yet is left out, and numbered ones are as they
// were.
func TestUnnumberedTranslation(t *testing.T) {
	cfg := &config.Config{
		Router: config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		Neighbors: []config.Neighbor{
			{Address: "192.0.2.1", PeerASN: 65001},
			{Interface: "eth1", PeerASN: 65002, Import: config.PolicyAcceptAll, Families: []string{"ipv4-unicast", "ipv6-unicast"}},
			{Interface: "eth2", PeerASN: 65003},
		},
	}
	found := map[string]netip.Addr{"eth1": netip.MustParseAddr("fe80::1")}
	eff := withUnnumbered(cfg, found)
	if cfg.Neighbors[1].Address != "" || len(cfg.Neighbors) != 3 {
		t.Fatalf("the configuration as given was changed: %+v", cfg.Neighbors)
	}
	p, err := translate(eff)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, peer := range p.peers {
		addrs = append(addrs, peer.Conf.NeighborAddress)
	}
	if want := []string{"192.0.2.1", "fe80::1%eth1"}; !slices.Equal(addrs, want) {
		t.Fatalf("neighbors %v, want %v", addrs, want)
	}
	un := p.peers[1]
	if un.Conf.PeerAsn != 65002 || len(un.AfiSafis) != 2 || un.Transport.LocalAddress != "" || un.EbgpMultihop != nil {
		t.Errorf("unnumbered peer: %v", un)
	}
	var list []string
	for _, ds := range p.definedSets {
		if ds.Name == neighborSetName(netip.MustParseAddr("fe80::1%eth1")) {
			list = ds.List
		}
	}
	if !slices.Equal(list, []string{"fe80::1/128"}) {
		t.Errorf("neighbor set of the unnumbered peer: %v", list)
	}
	if withUnnumbered(eff, nil) == eff {
		t.Error("withUnnumbered returned a config with unnumbered neighbors unchanged")
	}
	plain := &config.Config{Neighbors: cfg.Neighbors[:1]}
	if withUnnumbered(plain, nil) != plain {
		t.Error("a config without unnumbered neighbors is not returned as it is")
	}
}

// TestPickPeer: the current peer stays while it is there; else the only
// neighbor, else the only router; several are an error naming the link.
func TestPickPeer(t *testing.T) {
	a, b, c := netip.MustParseAddr("fe80::a"), netip.MustParseAddr("fe80::b"), netip.MustParseAddr("fe80::c")
	for _, tc := range []struct {
		name    string
		neighs  []linkNeighbor
		current netip.Addr
		want    netip.Addr
		err     string
	}{
		{"none", nil, netip.Addr{}, netip.Addr{}, "no IPv6 link-local neighbor on eth1"},
		{"one", []linkNeighbor{{addr: a}}, netip.Addr{}, a, ""},
		{"replaced", []linkNeighbor{{addr: b}}, a, b, ""},
		{"current kept", []linkNeighbor{{addr: a}, {addr: b, router: true}}, a, a, ""},
		{"the router", []linkNeighbor{{addr: a}, {addr: b, router: true}}, netip.Addr{}, b, ""},
		{"ambiguous", []linkNeighbor{{addr: a, router: true}, {addr: b, router: true}, {addr: c}}, netip.Addr{}, netip.Addr{}, "3 IPv6 link-local neighbors on eth1 (2 routers)"},
	} {
		got, err := pickPeer("eth1", tc.neighs, tc.current)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && err.Error()[:len(tc.err)] != tc.err) {
			t.Errorf("%s: %v %v, want %v %q", tc.name, got, err, tc.want, tc.err)
		}
		if tc.name == "none" && !errors.Is(err, errNoPeer) {
			t.Errorf("none: %v is not errNoPeer", err)
		}
	}
}

// TestLinkLocalNextHop: an IPv4 path with an IPv6 link-local next hop
// (RFC 8950) from an unnumbered peer is installed with the peer's link as
// the next hop's zone; "::" with a link-local one (RFC 2545) takes the
// link-local one; a global IPv6 next hop and paths of numbered peers are
// unchanged.
func TestLinkLocalNextHop(t *testing.T) {
	path := func(pfx string, peer string, nhs ...string) *apiutil.Path {
		p := netip.MustParsePrefix(pfx)
		nlri, _ := bgp.NewIPAddrPrefix(p)
		var as []netip.Addr
		for _, n := range nhs {
			as = append(as, netip.MustParseAddr(n))
		}
		mp, err := bgp.NewPathAttributeMpReachNLRI(familyOf(p), []bgp.PathNLRI{{NLRI: nlri}}, as...)
		if err != nil {
			t.Fatal(err)
		}
		return &apiutil.Path{Family: familyOf(p), Nlri: nlri, Attrs: []bgp.PathAttributeInterface{mp},
			PeerAddress: netip.MustParseAddr(peer), PeerASN: 65001}
	}
	for _, tc := range []struct {
		name string
		p    *apiutil.Path
		want string
	}{
		{"IPv4 via link-local, unnumbered", path("10.0.0.0/24", "fe80::2%eth1", "fe80::2"), "fe80::2%eth1"},
		{"IPv4 via global and link-local", path("10.0.0.0/24", "fe80::2%eth1", "2001:db8::2", "fe80::2"), "2001:db8::2"},
		{"IPv4 via :: and link-local", path("10.0.0.0/24", "fe80::2%eth1", "::", "fe80::2"), "fe80::2%eth1"},
		{"IPv6 via link-local, unnumbered", path("2001:db8:1::/48", "fe80::2%eth1", "fe80::2"), "fe80::2%eth1"},
		{"link-local from a numbered peer: no zone", path("2001:db8:1::/48", "2001:db8::2", "fe80::2"), "fe80::2"},
	} {
		got, ok := usableNextHop(tc.p)
		if !ok || got.String() != tc.want {
			t.Errorf("%s: %v %v, want %s", tc.name, got, ok, tc.want)
		}
	}
}

// TestReloadUnnumberedWaiting: an unnumbered neighbor added by a reload
// whose link shows no peer (here: no such interface) is not given to
// GoBGP, shows in Peers as "no-peer" by its interface, and leaves the
// numbered neighbors alone; removing it again removes the entry.
func TestReloadUnnumberedWaiting(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2")
	e.peer("127.0.0.2")
	base := []config.Neighbor{e.nbr("127.0.0.2")}
	s := e.start(e.cfg(base))
	e.waitUp("127.0.0.2")
	un := config.Neighbor{Interface: "xr-nosuchif0", PeerASN: 65010, Description: "fabric", ConnectRetry: 1}
	e.mustReload(e.cfg(append(slices.Clone(base), un)))
	peers, err := s.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range peers {
		got = append(got, fmt.Sprintf("%s|%s|%s|%d|%s|%v", p.Address, p.Interface, p.State, p.ASN, p.Description, p.Up))
	}
	want := []string{"127.0.0.2||established|65002||true", "invalid IP|xr-nosuchif0|no-peer|65010|fabric|false"}
	if !slices.Equal(got, want) {
		t.Errorf("peers:\n got %q\nwant %q", got, want)
	}
	var n int
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if err := srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(*api.Peer) { n++ }); err != nil || n != 1 {
		t.Errorf("GoBGP has %d neighbors (%v), want the numbered one", n, err)
	}
	e.mustReload(e.cfg(base)) // also drops Peers' cache
	if peers, err := s.Peers(context.Background()); err != nil || len(peers) != 1 {
		t.Errorf("after removing it: %+v %v", peers, err)
	}
}
