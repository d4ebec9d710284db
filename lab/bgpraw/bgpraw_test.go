package bgpraw

import (
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// GoBGP's parser, as an independent reader, accepts what the builders
// encode when they are given well-formed input.
func TestWellFormedParses(t *testing.T) {
	id := netip.MustParseAddr("10.0.3.2")
	open := Open{ASN: 4200000001, HoldTime: 90, RouterID: id, FourByteAS: true,
		Families: []Family{{AFIIPv4, SAFIUnicast}, {AFIIPv6, SAFIUnicast}}}.Bytes()
	m, err := bgp.ParseBGPMessage(open)
	if err != nil {
		t.Fatalf("OPEN: %v", err)
	}
	o := m.Body.(*bgp.BGPOpen)
	if o.MyAS != ASTrans || o.HoldTime != 90 || o.ID != id || len(o.OptParams) != 1 {
		t.Errorf("OPEN decoded as %+v", o)
	}
	if _, err := bgp.ParseBGPMessage(Keepalive()); err != nil {
		t.Errorf("KEEPALIVE: %v", err)
	}
	n, err := bgp.ParseBGPMessage(Notification{Code: 6, Subcode: 2}.Bytes())
	if err != nil || n.Body.(*bgp.BGPNotification).ErrorCode != 6 {
		t.Errorf("NOTIFICATION: %v %+v", err, n)
	}

	p := netip.MustParsePrefix("198.18.1.0/24")
	attrs := Concat(Origin(0), ASPath(Segment(SegSequence, true, 65002, 4200000001)),
		NextHop(id), MED(7), Communities(65002<<16|1))
	u := Update(Prefixes(netip.MustParsePrefix("198.18.2.0/23")), attrs, Prefixes(p, netip.MustParsePrefix("0.0.0.0/0")))
	m, err = bgp.ParseBGPMessage(u, &bgp.MarshallingOption{})
	if err != nil {
		t.Fatalf("UPDATE: %v", err)
	}
	body := m.Body.(*bgp.BGPUpdate)
	if len(body.NLRI) != 2 || body.NLRI[0].NLRI.String() != p.String() || len(body.WithdrawnRoutes) != 1 || len(body.PathAttributes) != 5 {
		t.Errorf("UPDATE decoded as %+v", body)
	}
	if ok, err := bgp.ValidateUpdateMsg(body, map[bgp.Family]bgp.BGPAddPathMode{bgp.RF_IPv4_UC: 0}, true, false, false); !ok {
		t.Errorf("UPDATE does not validate: %v", err)
	}

	nh := netip.MustParseAddr("fd00:3::2").AsSlice()
	mp := Update(nil, Concat(Origin(0), ASPath(Segment(SegSequence, true, 65002)),
		MPReach(AFIIPv6, SAFIUnicast, nh, Prefixes(netip.MustParsePrefix("2001:db8:77::/48")))), nil)
	m, err = bgp.ParseBGPMessage(mp, &bgp.MarshallingOption{})
	if err != nil {
		t.Fatalf("MP UPDATE: %v", err)
	}
	r := m.Body.(*bgp.BGPUpdate).PathAttributes[2].(*bgp.PathAttributeMpReachNLRI)
	if r.Nexthop.String() != "fd00:3::2" || len(r.Value) != 1 {
		t.Errorf("MP_REACH decoded as %+v", r)
	}
}

func TestExtendedLength(t *testing.T) {
	a := Attr(FlagOptional|FlagTransitive, 99, make([]byte, 300))
	if a[0]&FlagExtLen == 0 || a[2] != 1 || a[3] != 44 || len(a) != 304 {
		t.Errorf("attribute of 300 octets: % x", a[:4])
	}
	if got := AttrWithLength(FlagsWellKnown, AttrOrigin, 9, []byte{0}); len(got) != 4 || got[2] != 9 {
		t.Errorf("AttrWithLength: % x", got)
	}
	if got := RawPrefix(33, 10, 0, 0, 0, 0); len(got) != 6 || got[0] != 33 {
		t.Errorf("RawPrefix: % x", got)
	}
}
