package bgp

import (
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/config"
)

// TestVRFTranslateAndTag: [[vrf]]s become GoBGP VRFs whose route targets
// are their RD, neighbors carry their VRF, and best paths of a VRF's RD
// are tagged with its table (unknown RDs dropped, unicast untagged).
func TestVRFTranslateAndTag(t *testing.T) {
	cfg := &config.Config{
		Router:    config.Router{ASN: 65000, RouterID: "10.0.0.1"},
		VRFs:      []config.VRF{{Name: "red", Table: 100, RouteDistinguisher: "65000:100"}, {Name: "blue", Table: 200, RouteDistinguisher: "10.0.0.1:7"}},
		Neighbors: []config.Neighbor{{Address: "10.0.3.2", PeerASN: 65001, VRF: "red"}},
	}
	p, err := translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.vrfs) != 2 || p.vrfs[0].Name != "red" || len(p.vrfs[0].ImportRt) != 1 || len(p.vrfs[0].ExportRt) != 1 {
		t.Fatalf("vrfs %v", p.vrfs)
	}
	if p.peers[0].Conf.Vrf != "red" {
		t.Errorf("peer vrf %q", p.peers[0].Conf.Vrf)
	}
	pfx := netip.MustParsePrefix("198.51.100.0/24")
	vpn := func(rd string) *apiutil.Path {
		r, _ := bgp.ParseRouteDistinguisher(rd)
		n, _ := bgp.NewLabeledVPNIPAddrPrefix(pfx, *bgp.NewMPLSLabelStack(), r)
		mp, _ := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv4_VPN, []bgp.PathNLRI{{NLRI: n}}, netip.MustParseAddr("10.0.3.2"))
		return &apiutil.Path{Family: bgp.RF_IPv4_VPN, Nlri: n, Attrs: []bgp.PathAttributeInterface{mp}, PeerAddress: netip.MustParseAddr("10.0.3.2")}
	}
	for _, mp := range []bool{false, true} {
		tr := newBestTracker(mp, nil, nil)
		tr.vrfs = p.vrfTables
		ups := tr.apply([]*apiutil.Path{vpn("65000:100"), vpn("10.0.0.1:7"), vpn("65000:999")})
		if len(ups) != 2 || ups[0].Table != 100 || ups[1].Table != 200 || ups[0].Prefix != pfx ||
			len(ups[0].NextHops) != 1 || ups[0].NextHops[0] != netip.MustParseAddr("10.0.3.2") {
			t.Errorf("multipath %v: updates %+v", mp, ups)
		}
	}
}
