package bgp

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/filter"
)

// fsNLRI builds a Flowspec NLRI from GoBGP's text syntax (gobgp global rib
// -a ipv4-flowspec add match ...).
func fsNLRI(t testing.TB, fam bgp.Family, match string) *bgp.FlowSpecNLRI {
	t.Helper()
	cs, err := bgp.ParseFlowSpecComponents(fam, match)
	if err != nil {
		t.Fatalf("parse %q: %v", match, err)
	}
	n, err := bgp.NewFlowSpecUnicast(fam, cs)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fsItems builds one numeric or bitmask component from raw operator bytes.
func fsComp(t bgp.BGPFlowSpecType, ops ...uint64) *bgp.FlowSpecComponent {
	var items []*bgp.FlowSpecComponentItem
	for i := 0; i+1 < len(ops); i += 2 {
		items = append(items, bgp.NewFlowSpecComponentItem(uint8(ops[i]), ops[i+1]))
	}
	return bgp.NewFlowSpecComponent(t, items)
}

func extComms(cs ...bgp.ExtendedCommunityInterface) bgp.PathAttributeInterface {
	return bgp.NewPathAttributeExtendedCommunities(cs)
}

func rateBytes(r float32) bgp.ExtendedCommunityInterface { return bgp.NewTrafficRateExtended(0, r) }

func ratePackets(r float32) bgp.ExtendedCommunityInterface {
	v := []byte{ecSubTrafficRatePackets, 0, 0, 0, 0, 0, 0}
	bits := math.Float32bits(r)
	v[3], v[4], v[5], v[6] = byte(bits>>24), byte(bits>>16), byte(bits>>8), byte(bits)
	return &bgp.UnknownExtended{Type: bgp.EC_TYPE_GENERIC_TRANSITIVE_EXPERIMENTAL, Value: v}
}

func translateText(t *testing.T, fam bgp.Family, match string, attrs ...bgp.PathAttributeInterface) (filter.Rule, error) {
	t.Helper()
	in := fsInput{family: 4, nlri: fsNLRI(t, fam, match), attrs: attrs, peer: netip.MustParseAddr("192.0.2.1")}
	if fam == bgp.RF_FS_IPv6_UC {
		in.family = 6
	}
	return translateFlowspec(in)
}

func rs(pairs ...uint16) []filter.Range {
	var out []filter.Range
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, filter.Range{Lo: pairs[i], Hi: pairs[i+1]})
	}
	return out
}

func TestFlowspecComponents(t *testing.T) {
	drop := extComms(rateBytes(0))
	r, err := translateText(t, bgp.RF_FS_IPv4_UC,
		"destination 10.0.0.0/8 source 192.0.2.0/24 protocol udp destination-port ==53 source-port >=1024&<=2048 icmp-type ==3 icmp-code ==1 packet-length >1000 dscp ==10 port ==80 ==443", drop)
	if err != nil {
		t.Fatal(err)
	}
	want := filter.Rule{
		Name: r.Name, Origin: filter.FromFlowspec, Peer: netip.MustParseAddr("192.0.2.1"), Family: 4,
		Dst: netip.MustParsePrefix("10.0.0.0/8"), Src: netip.MustParsePrefix("192.0.2.0/24"),
		Protocols: rs(17, 17), DstPorts: rs(53, 53), SrcPorts: rs(1024, 2048), Ports: rs(80, 80, 443, 443),
		ICMPTypes: rs(3, 3), ICMPCodes: rs(1, 1), Lengths: rs(1001, 65535), DSCP: rs(10, 10),
		Action: filter.Action{Kind: filter.Drop},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	if !strings.Contains(r.Name, "[destination: 10.0.0.0/8]") {
		t.Errorf("name %q", r.Name)
	}

	r, err = translateText(t, bgp.RF_FS_IPv6_UC, "destination 2001:db8::/32 source 2001:db8:1::/48 protocol ==58 icmp-type ==128")
	if err != nil {
		t.Fatal(err)
	}
	if r.Family != 6 || r.Dst != netip.MustParsePrefix("2001:db8::/32") || r.Src != netip.MustParsePrefix("2001:db8:1::/48") ||
		!slices.Equal(r.Protocols, rs(58, 58)) || !slices.Equal(r.ICMPTypes, rs(128, 128)) || r.Action.Kind != filter.Accept {
		t.Errorf("IPv6: %+v", r)
	}

	// Refusals, each with its reason.
	for _, c := range []struct {
		fam   bgp.Family
		match string
		want  string
	}{
		{bgp.RF_FS_IPv6_UC, "destination 2001:db8::/32/8", "offset 8"},
		{bgp.RF_FS_IPv6_UC, "source 2001:db8::/32/16", "offset 16"},
		{bgp.RF_FS_IPv6_UC, "destination 2001:db8::/32 label ==5", "flow label"},
		{bgp.RF_FS_IPv4_UC, "destination 10.0.0.0/8 fragment dont-fragment", "DF bit"},
		{bgp.RF_FS_IPv4_UC, "destination 10.0.0.0/8 fragment last-fragment", "last-fragment"},
		{bgp.RF_FS_IPv4_UC, "destination 10.0.0.0/8 destination-port ==53&==54", "matches no value"},
	} {
		_, err := translateText(t, c.fam, c.match)
		if err == nil || !errors.Is(err, errFlowspec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.match, err, c.want)
		}
	}
}

func TestFlowspecNumericOperators(t *testing.T) {
	const (
		and = opAnd
		lt  = opLt
		gt  = opGt
		eq  = opEq
	)
	for _, c := range []struct {
		name string
		ops  []uint64
		max  uint64
		want []filter.Range
	}{
		{"eq", []uint64{eq, 80}, 65535, rs(80, 80)},
		{"or", []uint64{eq, 80, eq, 81, eq, 443}, 65535, rs(80, 81, 443, 443)}, // adjacent merge
		{"range", []uint64{gt | eq, 1024, and | lt | eq, 2048}, 65535, rs(1024, 2048)},
		{"range or eq", []uint64{gt, 10, and | lt, 20, eq, 5, eq, 15}, 65535, rs(5, 5, 11, 19)},
		{"neq", []uint64{lt | gt, 80}, 65535, rs(0, 79, 81, 65535)},
		{"neq and range", []uint64{gt | eq, 10, and | lt | eq, 20, and | lt | gt, 15}, 65535, rs(10, 14, 16, 20)},
		{"true", []uint64{lt | gt | eq, 0}, 255, rs(0, 255)},
		{"false", []uint64{0, 0}, 255, nil},
		{"false or eq", []uint64{0, 0, eq, 6}, 255, rs(6, 6)},
		{"beyond max", []uint64{gt, 100, and | lt, 100000}, 255, rs(101, 255)},
		{"eq beyond max", []uint64{eq, 300}, 255, nil},
		{"lt 0", []uint64{lt, 0}, 255, nil},
		{"first AND ignored", []uint64{and | eq, 7}, 255, rs(7, 7)},
		{"overlapping", []uint64{lt, 100, gt, 50}, 255, rs(0, 255)},
		{"dscp", []uint64{gt, 40}, 63, rs(41, 63)},
	} {
		c := c
		t.Run(c.name, func(t *testing.T) {
			comp := fsComp(bgp.FLOW_SPEC_TYPE_DST_PORT, c.ops...)
			got, err := numericRanges(comp.Items, c.max)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
			// Against a brute-force evaluation of RFC 8955 4.2.1.1.
			for v := uint64(0); v <= c.max; v++ {
				in := slices.ContainsFunc(got, func(r filter.Range) bool { return uint64(r.Lo) <= v && v <= uint64(r.Hi) })
				if in != evalNumeric(comp.Items, v) {
					t.Fatalf("value %d: ranges say %v", v, in)
				}
			}
		})
	}
}

// evalNumeric is RFC 8955 4.2.1.1 evaluated directly.
func evalNumeric(items []*bgp.FlowSpecComponentItem, v uint64) bool {
	result, group := false, false
	for i, it := range items {
		var t bool
		switch it.Op & 7 {
		case 0:
		case opEq:
			t = v == it.Value
		case opGt:
			t = v > it.Value
		case opGt | opEq:
			t = v >= it.Value
		case opLt:
			t = v < it.Value
		case opLt | opEq:
			t = v <= it.Value
		case opLt | opGt:
			t = v != it.Value
		default:
			t = true
		}
		if i == 0 || it.Op&opAnd == 0 {
			if i > 0 {
				result = result || group
			}
			group = t
			continue
		}
		group = group && t
	}
	return result || group
}

func TestFlowspecTCPFlags(t *testing.T) {
	const (
		and   = opAnd
		not   = opNot
		match = opM
		syn   = uint64(filter.TCPSyn)
		ack   = uint64(filter.TCPAck)
		fin   = uint64(filter.TCPFin)
		rst   = uint64(filter.TCPRst)
	)
	for _, c := range []struct {
		name string
		ops  []uint64
		want []filter.TCPFlags
		err  string
	}{
		{"syn set (any)", []uint64{0, syn}, []filter.TCPFlags{{Set: filter.TCPSyn}}, ""},
		{"syn and not ack", []uint64{match, syn, and | not, ack}, []filter.TCPFlags{{Set: filter.TCPSyn, Clear: filter.TCPAck}}, ""},
		{"syn+ack exactly all", []uint64{match, syn | ack}, []filter.TCPFlags{{Set: filter.TCPSyn | filter.TCPAck}}, ""},
		{"any of fin rst", []uint64{0, fin | rst}, []filter.TCPFlags{{Set: filter.TCPFin}, {Set: filter.TCPRst}}, ""},
		{"not all of syn ack", []uint64{match | not, syn | ack}, []filter.TCPFlags{{Clear: filter.TCPSyn}, {Clear: filter.TCPAck}}, ""},
		{"none of fin rst", []uint64{not, fin | rst}, []filter.TCPFlags{{Clear: filter.TCPFin | filter.TCPRst}}, ""},
		{"or of ands", []uint64{match, syn, and | not, ack, match, fin}, []filter.TCPFlags{{Set: filter.TCPFin}, {Set: filter.TCPSyn, Clear: filter.TCPAck}}, ""},
		{"redundant alternative", []uint64{0, syn, match, syn | ack}, []filter.TCPFlags{{Set: filter.TCPSyn}}, ""},
		{"contradiction", []uint64{match, syn, and | not, syn}, nil, "matches no packet"},
		{"2-octet value", []uint64{0, 0x100}, nil, "beyond the 8 TCP flags"},
	} {
		c := c
		t.Run(c.name, func(t *testing.T) {
			comp := fsComp(bgp.FLOW_SPEC_TYPE_TCP_FLAG, c.ops...)
			got, err := tcpFlags(comp.Items)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
	// Through the NLRI text too (GoBGP's parser).
	r, err := translateText(t, bgp.RF_FS_IPv4_UC, "destination 10.0.0.0/8 protocol tcp tcp-flags =S&!A")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.TCPFlags, []filter.TCPFlags{{Set: filter.TCPSyn, Clear: filter.TCPAck}}) {
		t.Errorf("tcp-flags =S&!A: %+v", r.TCPFlags)
	}
}

func TestFlowspecFragments(t *testing.T) {
	for _, c := range []struct {
		match string
		fam   bgp.Family
		want  uint8
	}{
		{"is-fragment", bgp.RF_FS_IPv4_UC, filter.AnyFragment},
		{"first-fragment", bgp.RF_FS_IPv4_UC, filter.FirstFragment},
		{"!is-fragment", bgp.RF_FS_IPv4_UC, filter.NotFragment},
		{"is-fragment&!first-fragment", bgp.RF_FS_IPv4_UC, filter.LaterFragment},
		{"is-fragment", bgp.RF_FS_IPv6_UC, filter.AnyFragment},
	} {
		dst := "10.0.0.0/8"
		if c.fam == bgp.RF_FS_IPv6_UC {
			dst = "2001:db8::/32"
		}
		r, err := translateText(t, c.fam, "destination "+dst+" fragment "+c.match)
		if err != nil {
			t.Errorf("%s: %v", c.match, err)
			continue
		}
		if r.Fragments != c.want {
			t.Errorf("%s (%v): fragments %s, want %s", c.match, c.fam, filter.FragmentString(r.Fragments), filter.FragmentString(c.want))
		}
	}
	// DF does not exist in IPv6.
	if _, err := fragments(fsComp(bgp.FLOW_SPEC_TYPE_FRAGMENT, 0, fragDF).Items, 6); err == nil {
		t.Error("IPv6 dont-fragment accepted")
	}
	// "true" for every state: any packet.
	if m, err := fragments(fsComp(bgp.FLOW_SPEC_TYPE_FRAGMENT, opNot, 0).Items, 4); err != nil || m != 0 {
		t.Errorf("always: %d, %v", m, err)
	}
}

func TestFlowspecActions(t *testing.T) {
	const match = "destination 10.0.0.0/8"
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	redirect4, _ := bgp.NewIPv4AddressSpecificExtended(ecSubRedirectIP, v4("192.0.2.9"), 0, true)
	mirror4, _ := bgp.NewIPv4AddressSpecificExtended(ecSubRedirectIP, v4("192.0.2.9"), 1, true)
	vrf := bgp.NewRedirectTwoOctetAsSpecificExtended(65000, 100)
	legacy := &bgp.UnknownExtended{Type: ecTypeRedirectIPLegacy, Value: []byte{0, 0, 0, 0, 0, 0, 0}}
	for _, c := range []struct {
		name    string
		attrs   []bgp.PathAttributeInterface
		nexthop string
		want    filter.Action
		err     string
	}{
		{"none: accept", nil, "", filter.Action{Kind: filter.Accept}, ""},
		{"rate 0 bytes: drop", []bgp.PathAttributeInterface{extComms(rateBytes(0))}, "", filter.Action{Kind: filter.Drop}, ""},
		{"rate bytes", []bgp.PathAttributeInterface{extComms(rateBytes(125000.4))}, "", filter.Action{Kind: filter.RateLimit, BPS: 125000}, ""},
		{"rate packets", []bgp.PathAttributeInterface{extComms(ratePackets(1000))}, "", filter.Action{Kind: filter.RateLimit, PPS: 1000}, ""},
		{"rate packets 0: drop", []bgp.PathAttributeInterface{extComms(ratePackets(0))}, "", filter.Action{Kind: filter.Drop}, ""},
		{"lowest rate", []bgp.PathAttributeInterface{extComms(rateBytes(5000), rateBytes(3000))}, "", filter.Action{Kind: filter.RateLimit, BPS: 3000}, ""},
		{"tiny rate", []bgp.PathAttributeInterface{extComms(rateBytes(0.2))}, "", filter.Action{Kind: filter.RateLimit, BPS: 1}, ""},
		{"zero wins", []bgp.PathAttributeInterface{extComms(rateBytes(5000), ratePackets(0))}, "", filter.Action{Kind: filter.Drop}, ""},
		{"bytes and packets", []bgp.PathAttributeInterface{extComms(rateBytes(5000), ratePackets(10))}, "", filter.Action{}, "both a byte rate and a packet rate"},
		{"negative", []bgp.PathAttributeInterface{extComms(rateBytes(-1))}, "", filter.Action{}, "not a rate"},
		{"non-terminal", []bgp.PathAttributeInterface{extComms(bgp.NewTrafficActionExtended(false, true))}, "", filter.Action{Kind: filter.Accept, Continue: true}, ""},
		{"terminal", []bgp.PathAttributeInterface{extComms(bgp.NewTrafficActionExtended(true, false))}, "", filter.Action{Kind: filter.Accept}, ""},
		{"rate and marking", []bgp.PathAttributeInterface{extComms(rateBytes(1e6), bgp.NewTrafficRemarkExtended(46))}, "",
			filter.Action{Kind: filter.RateLimit, BPS: 1000000, Remark: true, DSCP: 46}, ""},
		{"redirect ip", []bgp.PathAttributeInterface{extComms(redirect4)}, "", filter.Action{Kind: filter.Accept, Redirect: v4("192.0.2.9")}, ""},
		{"redirect ip with rate", []bgp.PathAttributeInterface{extComms(redirect4, rateBytes(1000))}, "",
			filter.Action{Kind: filter.RateLimit, BPS: 1000, Redirect: v4("192.0.2.9")}, ""},
		{"redirect next hop (0x0800)", []bgp.PathAttributeInterface{extComms(legacy)}, "192.0.2.7", filter.Action{Kind: filter.Accept, Redirect: v4("192.0.2.7")}, ""},
		{"mirror", []bgp.PathAttributeInterface{extComms(mirror4)}, "", filter.Action{}, "copy bit"},
		{"redirect vrf", []bgp.PathAttributeInterface{extComms(vrf)}, "", filter.Action{}, "redirect to VRF"},
		{"redirect other family", []bgp.PathAttributeInterface{bgp.NewPathAttributeIP6ExtendedCommunities([]bgp.ExtendedCommunityInterface{
			mustIP6Redirect(t, "2001:db8::9")})}, "", filter.Action{}, "not of the rule's family"},
	} {
		in := fsInput{family: 4, nlri: fsNLRI(t, bgp.RF_FS_IPv4_UC, match), attrs: c.attrs, peer: v4("192.0.2.1")}
		if c.nexthop != "" {
			in.nexthop = v4(c.nexthop)
		}
		r, err := translateFlowspec(in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(r.Action, c.want) {
			t.Errorf("%s: action %+v, want %+v", c.name, r.Action, c.want)
		}
	}
}

func mustIP6Redirect(t *testing.T, a string) bgp.ExtendedCommunityInterface {
	ec, err := bgp.NewIPv6AddressSpecificExtended(ecSubRedirectIP, netip.MustParseAddr(a), 0, true)
	if err != nil {
		t.Fatal(err)
	}
	return ec
}

func TestFlowspecOrder(t *testing.T) {
	// RFC 8955 5.1, in the order the rules must come out.
	ordered := []string{
		"destination 10.0.0.0/24 protocol tcp", // lower destination value first
		"destination 10.0.0.0/24",              // same destination: the one with more components first
		"destination 10.0.1.0/24",              // over the common length (16) equal to the next: more specific first
		"destination 10.0.0.0/16",
		"destination 10.1.0.0/16 source 192.0.2.0/24",
		"destination 10.1.0.0/16 protocol ==6", // type 2 before type 3
		"destination 10.1.0.0/16 protocol ==17",
		"destination 10.1.0.0/16 destination-port ==53",
		"destination 10.1.0.0/16",
		"source 10.0.0.0/8", // no destination: after every rule with one
		"protocol ==1",
	}
	var ns []*bgp.FlowSpecNLRI
	for _, m := range ordered {
		ns = append(ns, fsNLRI(t, bgp.RF_FS_IPv4_UC, m))
	}
	for i := range ns {
		for j := range ns {
			got := compareFlowspec(ns[i], ns[j])
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if (got < 0) != (want < 0) || (got > 0) != (want > 0) {
				t.Errorf("compare(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	// evaluate sorts by it, IPv4 before IPv6.
	var entries []fsEntry
	for _, i := range []int{3, 0, 8, 10, 5} {
		r, err := translateText(t, bgp.RF_FS_IPv4_UC, ordered[i])
		if err != nil {
			t.Fatal(err)
		}
		r.Peer = netip.Addr{} // local: not validated
		entries = append(entries, fsEntry{nlri: ns[i], rule: r})
	}
	v6 := fsNLRI(t, bgp.RF_FS_IPv6_UC, "destination 2001:db8::/32")
	r6, err := translateFlowspec(fsInput{family: 6, nlri: v6})
	if err != nil {
		t.Fatal(err)
	}
	entries = append([]fsEntry{{nlri: v6, rule: r6}}, entries...)
	tr := newFlowspecTracker(nil, testLogger(t), nil, nil)
	rules, rejected := tr.evaluate(entries, nil)
	var got []string
	for _, r := range rules {
		got = append(got, r.Name)
	}
	want := []string{ns[0].String(), ns[3].String(), ns[5].String(), ns[8].String(), ns[10].String(), v6.String()}
	if !slices.Equal(got, want) || len(rejected) != 0 {
		t.Errorf("order\n got %q\nwant %q (rejected %v)", got, want, rejected)
	}
}

func TestNeighborFamilies(t *testing.T) {
	for _, c := range []struct {
		fs   bool
		in   []string
		want []string
	}{
		{false, []string{"ipv4-unicast"}, []string{"ipv4-unicast"}},
		{true, []string{"ipv4-unicast"}, []string{"ipv4-unicast", "ipv4-flowspec"}},
		{true, []string{"ipv4-unicast", "ipv6-unicast"}, []string{"ipv4-unicast", "ipv6-unicast", "ipv4-flowspec", "ipv6-flowspec"}},
		{true, []string{"ipv4-unicast", "ipv6-flowspec"}, []string{"ipv4-unicast", "ipv6-flowspec"}},
		{false, []string{"ipv4-unicast", "ipv4-flowspec"}, []string{"ipv4-unicast"}},
	} {
		n := &config.Neighbor{Flowspec: c.fs}
		if got := neighborFamilies(n, c.in); !slices.Equal(got, c.want) {
			t.Errorf("flowspec=%v %v: got %v, want %v", c.fs, c.in, got, c.want)
		}
	}
}

// fsRecorder records OnFlowspec calls.
type fsRecorder struct {
	mu       sync.Mutex
	rules    []filter.Rule
	rejected []Rejected
	calls    int
	wake     chan struct{}
}

func newFSRecorder() *fsRecorder { return &fsRecorder{wake: make(chan struct{}, 1)} }

func (r *fsRecorder) on(rules []filter.Rule, rejected []Rejected) {
	r.mu.Lock()
	r.rules, r.rejected = rules, rejected
	r.calls++
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// state summarizes the last call: rule names (in order) with their peer,
// and rejected names with peer and reason.
func (r *fsRecorder) state() (rules, rejected []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.rules {
		rules = append(rules, x.Peer.String()+" "+x.Name)
	}
	for _, x := range r.rejected {
		rejected = append(rejected, x.Peer.String()+" "+x.Name+": "+x.Reason)
	}
	return rules, rejected
}

func (r *fsRecorder) wait(t *testing.T, what string, cond func(rules, rejected []string) bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		rules, rejected := r.state()
		if cond(rules, rejected) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; rules %q, rejected %q", what, rules, rejected)
		}
		select {
		case <-r.wake:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func has(l []string, sub ...string) bool {
	return slices.ContainsFunc(l, func(s string) bool {
		for _, x := range sub {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	})
}

// announceFlowspec has a test peer announce a Flowspec route.
func (p *testPeer) announceFlowspec(t *testing.T, fam bgp.Family, match string, ecs ...bgp.ExtendedCommunityInterface) {
	t.Helper()
	if err := p.flowspecPath(t, fam, match, false, ecs...); err != nil {
		t.Fatalf("peer %s: announce flowspec %q: %v", p.addr, match, err)
	}
}

func (p *testPeer) withdrawFlowspec(t *testing.T, fam bgp.Family, match string) {
	t.Helper()
	if err := p.flowspecPath(t, fam, match, true); err != nil {
		t.Fatalf("peer %s: withdraw flowspec %q: %v", p.addr, match, err)
	}
}

func (p *testPeer) flowspecPath(t *testing.T, fam bgp.Family, match string, withdraw bool, ecs ...bgp.ExtendedCommunityInterface) error {
	nlri := fsNLRI(t, fam, match)
	nh := netip.IPv4Unspecified()
	if fam == bgp.RF_FS_IPv6_UC {
		nh = netip.IPv6Unspecified()
	}
	mp, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, nh)
	if err != nil {
		return err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP), mp}
	if len(ecs) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeExtendedCommunities(ecs))
	}
	path := &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Age: time.Now().Unix()}
	if withdraw {
		return p.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}})
	}
	_, err = p.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
	return err
}

// TestFlowspecValidation runs a speaker with GoBGP peers announcing
// unicast and Flowspec routes: RFC 8955 6 validation (feasible and not,
// re-checked on unicast changes), flowspec-validate = false, and a
// neighbor without flowspec = true whose Flowspec never arrives.
func TestFlowspecValidation(t *testing.T) {
	const us = "127.0.0.1"
	pUs, pA, pB, pC := freePort(t, us), freePort(t, "127.0.0.2"), freePort(t, "127.0.0.3"), freePort(t, "127.0.0.4")
	nbr := func(addr string, port, asn uint32, fs bool) config.Neighbor {
		return config.Neighbor{
			Address: addr, PeerASN: asn, Port: port, LocalAddress: us, ConnectRetry: 1,
			Import: "accept-all", Export: "reject-all", Flowspec: fs, FlowspecValidate: true,
		}
	}
	cfg := &config.Config{
		Router:    config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		API:       config.API{GRPCListen: ""},
		BGP:       config.BGP{ListenPort: int32(pUs), ListenAddresses: []string{us}},
		Neighbors: []config.Neighbor{nbr("127.0.0.2", pA, 65001, true), nbr("127.0.0.3", pB, 65002, true), nbr("127.0.0.4", pC, 65003, false)},
	}
	rec := newFSRecorder()
	s, err := New(Options{Config: cfg, Logger: testLogger(t), OnFlowspec: rec.on})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	peerA := startPeer(t, peerSpec{addr: "127.0.0.2", port: pA, asn: 65001, speaker: us, speakerPt: pUs, flowspec: true})
	peerB := startPeer(t, peerSpec{addr: "127.0.0.3", port: pB, asn: 65002, speaker: us, speakerPt: pUs, flowspec: true})
	peerC := startPeer(t, peerSpec{addr: "127.0.0.4", port: pC, asn: 65003, speaker: us, speakerPt: pUs, flowspec: true})
	for _, p := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		waitPeer(t, s, p, func(ps PeerStatus) bool { return ps.Up }, "up")
	}

	peerA.announce(t, "10.1.0.0/16")
	peerA.announceFlowspec(t, bgp.RF_FS_IPv4_UC, "destination 10.1.1.0/24 protocol udp destination-port ==53", rateBytes(0))
	peerA.announceFlowspec(t, bgp.RF_FS_IPv4_UC, "destination 10.9.0.0/16", rateBytes(0))
	peerA.announceFlowspec(t, bgp.RF_FS_IPv4_UC, "protocol ==17", rateBytes(0))
	peerB.announceFlowspec(t, bgp.RF_FS_IPv4_UC, "destination 10.1.2.0/24", rateBytes(0))
	peerC.announce(t, "10.3.0.0/16")
	peerC.announceFlowspec(t, bgp.RF_FS_IPv4_UC, "destination 10.3.0.0/16", rateBytes(0))

	rec.wait(t, "A's rule feasible, the others not", func(rules, rej []string) bool {
		return len(rules) == 1 && has(rules, "127.0.0.2", "[destination: 10.1.1.0/24]") && len(rej) == 3 &&
			has(rej, "127.0.0.2", "10.9.0.0/16", "RFC 8955 6 a", "no unicast route") &&
			has(rej, "127.0.0.2", "[protocol:", "no destination prefix") &&
			has(rej, "127.0.0.3", "10.1.2.0/24", "RFC 8955 6 a", "from neighbor 127.0.0.2")
	})
	if got, _ := s.Flowspec(); len(got) != 1 || got[0].Action.Kind != filter.Drop || got[0].Origin != filter.FromFlowspec ||
		got[0].Peer != netip.MustParseAddr("127.0.0.2") || !slices.Equal(got[0].DstPorts, rs(53, 53)) {
		t.Errorf("Flowspec() = %+v", got)
	}
	// Peer C has no flowspec = true: nothing of its Flowspec reaches
	// GoBGP's RIB (the family is not negotiated), nor the rules.
	if n := countFlowspecPaths(t, s, "127.0.0.4"); n != 0 {
		t.Errorf("GoBGP holds %d Flowspec paths from 127.0.0.4", n)
	}
	if rules, rej := rec.state(); has(rules, "127.0.0.4") || has(rej, "127.0.0.4") {
		t.Errorf("127.0.0.4's Flowspec seen: %q %q", rules, rej)
	}

	// A more-specific unicast route from another AS under A's rule: (b).
	peerB.announce(t, "10.1.1.128/25")
	rec.wait(t, "A's rule infeasible by b", func(rules, rej []string) bool {
		return len(rules) == 0 && has(rej, "127.0.0.2", "10.1.1.0/24", "RFC 8955 6 b", "10.1.1.128/25 from AS65002")
	})
	peerB.withdraw(t, "10.1.1.128/25")
	rec.wait(t, "A's rule feasible again", func(rules, rej []string) bool { return len(rules) == 1 })

	// The unicast route goes: (a) fails.
	peerA.withdraw(t, "10.1.0.0/16")
	rec.wait(t, "A's rule infeasible without its unicast route", func(rules, rej []string) bool {
		return len(rules) == 0 && has(rej, "10.1.1.0/24", "no unicast route covers")
	})
	peerA.announce(t, "10.1.0.0/16")
	rec.wait(t, "back", func(rules, rej []string) bool { return len(rules) == 1 })

	// flowspec-validate = false for B (a trusted controller): its rule is
	// taken as sent, without a session reset.
	cfg2 := *cfg
	cfg2.Neighbors = slices.Clone(cfg.Neighbors)
	cfg2.Neighbors[1].FlowspecValidate = false
	if err := s.Reload(ctx, &cfg2); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "B's rule without validation", func(rules, rej []string) bool {
		return len(rules) == 2 && has(rules, "127.0.0.3", "10.1.2.0/24")
	})
	rules, _ := rec.state()
	if !strings.Contains(rules[0], "10.1.1.0/24") {
		t.Errorf("order: %q", rules) // 10.1.1.0/24 before 10.1.2.0/24
	}

	// Withdrawal removes the rule.
	peerB.withdrawFlowspec(t, bgp.RF_FS_IPv4_UC, "destination 10.1.2.0/24")
	rec.wait(t, "B's rule withdrawn", func(rules, rej []string) bool { return len(rules) == 1 && !has(rules, "10.1.2.0/24") })
}

// TestFlowspecIPv6AndLatency: an IPv6 rule from a neighbor with validation
// off arrives through OnFlowspec well within the 100 ms budget.
func TestFlowspecIPv6AndLatency(t *testing.T) {
	const us = "127.0.0.1"
	pUs, pA := freePort(t, us), freePort(t, "127.0.0.2")
	cfg := &config.Config{
		Router: config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		BGP:    config.BGP{ListenPort: int32(pUs), ListenAddresses: []string{us}},
		Neighbors: []config.Neighbor{{Address: "127.0.0.2", PeerASN: 65001, Port: pA, LocalAddress: us, ConnectRetry: 1,
			Import: "accept-all", Export: "reject-all", Families: []string{"ipv4-unicast", "ipv6-flowspec"}, Flowspec: true}},
	}
	rec := newFSRecorder()
	s, err := New(Options{Config: cfg, Logger: testLogger(t), OnFlowspec: rec.on})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	peer := startPeer(t, peerSpec{addr: "127.0.0.2", port: pA, asn: 65001, speaker: us, speakerPt: pUs, flowspec: true})
	waitPeer(t, s, "127.0.0.2", func(ps PeerStatus) bool { return ps.Up }, "up")
	start := time.Now()
	peer.announceFlowspec(t, bgp.RF_FS_IPv6_UC, "destination 2001:db8::/32 protocol ==58", ratePackets(100))
	rec.wait(t, "the IPv6 rule", func(rules, _ []string) bool { return len(rules) == 1 })
	took := time.Since(start)
	got, _ := s.Flowspec()
	if len(got) != 1 || got[0].Family != 6 || got[0].Action.Kind != filter.RateLimit || got[0].Action.PPS != 100 {
		t.Fatalf("rules %+v", got)
	}
	t.Logf("UPDATE to OnFlowspec: %v", took)
	if took > 100*time.Millisecond {
		t.Errorf("rule took %v to arrive (budget 100 ms)", took)
	}
}

func countFlowspecPaths(t *testing.T, s *Speaker, peer string) int {
	t.Helper()
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	n := 0
	for _, fam := range flowspecFamilies {
		err := srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam}, func(_ bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if p.PeerAddress.String() == peer {
					n++
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return n
}
