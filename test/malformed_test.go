package test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/lab"
	raw "github.com/xdprouter/xdprouter/lab/bgpraw"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// rawASN is the scripted peer's AS (eBGP, distinct from BIRD's).
const rawASN = 65002

// What r does with a malformed UPDATE (RFC 7606 section 2).
type outcome int

const (
	// treatAsWithdraw: every prefix of the UPDATE is withdrawn, the
	// session stays up.
	treatAsWithdraw outcome = iota
	// attrDiscard: the bad attribute is dropped, the routes are used.
	attrDiscard
	// accepted: nothing wrong enough to act on; the routes are used.
	accepted
	// notInstalled: GoBGP accepts the path, xdprouterd refuses to install
	// it (a next hop that must not be used).
	notInstalled
	// ignored: the UPDATE is dropped whole: not applied, and its prefixes
	// not withdrawn either (they keep their previous path).
	ignored
	// sessionReset: a NOTIFICATION and the session goes down.
	sessionReset
)

func (o outcome) String() string {
	return [...]string{"treat-as-withdraw", "attribute discard", "accepted", "not installed", "ignored (nothing withdrawn)", "session reset"}[o]
}

// rawCase is one malformed message.
type rawCase struct {
	name string
	// twoByte: the session has no 4-octet AS capability (AS_PATH carries
	// 2-octet ASNs, AS4_PATH the real ones).
	twoByte bool
	// msg returns the bytes sent after the valid announcement of e.v.
	msg func(e rawEnv) []byte
	// carriesV: the malformed UPDATE carries e.v again (so that
	// treat-as-withdraw must withdraw it), as well as e.b.
	carriesV bool
	want     outcome
	// code/subcode of the NOTIFICATION for sessionReset.
	code, subcode uint8
	// v6: the bad UPDATE carries e.b6 (MP_REACH) instead of e.b.
	v6 bool
	// ribHas and ribHasNot are substrings the path of e.b must and must not
	// have in GoBGP's RIB (gobgp global rib PREFIX -j), e.g. a discarded
	// attribute.
	ribHas, ribHasNot []string
}

// rawEnv is what a case's message may use: the raw peer's address (its
// next hop) and the case's prefixes: v was announced validly first, b is
// only in the malformed UPDATE, b6 for the IPv6 (MP_REACH) cases.
type rawEnv struct {
	local  netip.Addr
	v, b   netip.Prefix
	b6     netip.Prefix
	asPath []byte // AS_PATH attribute [rawASN] as the session encodes it
}

// good returns ORIGIN, AS_PATH and NEXT_HOP as a valid UPDATE has them.
func (e rawEnv) good() []byte {
	return raw.Concat(raw.Origin(0), e.asPath, raw.NextHop(e.local))
}

func (e rawEnv) nlri() []byte { return raw.Prefixes(e.v, e.b) }

// update is a well-formed UPDATE of e.v and e.b with attrs instead of the
// good ones.
func (e rawEnv) update(attrs ...[]byte) []byte {
	return raw.Update(nil, raw.Concat(attrs...), e.nlri())
}

func seq4(asns ...uint32) []byte { return raw.Segment(raw.SegSequence, true, asns...) }
func seq2(asns ...uint32) []byte { return raw.Segment(raw.SegSequence, false, asns...) }

// mpUpdate carries e.b6 in an MP_REACH_NLRI with the raw next-hop field nh.
func (e rawEnv) mpUpdate(nh []byte) []byte {
	return raw.Update(nil, raw.Concat(raw.Origin(0), e.asPath,
		raw.MPReach(raw.AFIIPv6, raw.SAFIUnicast, nh, raw.Prefixes(e.b6))), nil)
}

// The RFC 7606 cases, and the triggers of the 2026 GoBGP advisories. The
// wanted outcome is what GoBGP v4.8.0 does (pkg/packet/bgp/validate.go,
// bgp.go's BGPUpdate.DecodeFromBytes, pkg/server/fsm.go); where that differs
// from RFC 7606, docs/MALFORMED.md says so.
var rawCases = []rawCase{
	{name: "origin-value-3", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte { return e.update(raw.Origin(3), e.asPath, raw.NextHop(e.local)) }},
	{name: "origin-length-2", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			return e.update(raw.Attr(raw.FlagsWellKnown, raw.AttrOrigin, []byte{0, 0}), e.asPath, raw.NextHop(e.local))
		}},
	{name: "origin-flags-optional", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			return e.update(raw.Attr(raw.FlagOptional|raw.FlagTransitive, raw.AttrOrigin, []byte{0}), e.asPath, raw.NextHop(e.local))
		}},
	{name: "missing-origin", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte { return e.update(e.asPath, raw.NextHop(e.local)) }},
	{name: "missing-as-path", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte { return e.update(raw.Origin(0), raw.NextHop(e.local)) }},
	{name: "missing-next-hop", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte { return e.update(raw.Origin(0), e.asPath) }},
	{name: "duplicate-communities", carriesV: true, want: attrDiscard,
		ribHas: []string{strconv.Itoa(rawASN<<16 | 1)}, ribHasNot: []string{strconv.Itoa(rawASN<<16 | 2)},
		msg: func(e rawEnv) []byte {
			return e.update(e.good(), raw.Communities(rawASN<<16|1), raw.Communities(rawASN<<16|2))
		}},
	{name: "duplicate-mp-reach", want: sessionReset, code: 3, subcode: 1,
		msg: func(e rawEnv) []byte {
			nh := e.local.As4()
			mp := raw.MPReach(raw.AFIIPv4, raw.SAFIUnicast, nh[:], raw.Prefixes(e.b))
			return raw.Update(nil, raw.Concat(raw.Origin(0), e.asPath, mp, mp), nil)
		}},
	// GoBGP stops parsing at the overrunning attribute, before the NLRI:
	// its treat-as-withdraw has no prefixes to withdraw, so e.v keeps its
	// previous path (RFC 7606 section 4 wants it withdrawn).
	{name: "attr-length-overruns-path-attributes", carriesV: true, want: ignored,
		msg: func(e rawEnv) []byte {
			// The last attribute (MED) says 8 octets; 4 are inside the
			// path attributes, the NLRI follow.
			attrs := raw.Concat(e.good(), raw.AttrWithLength(raw.FlagOptional, raw.AttrMED, 8, []byte{0, 0, 0, 1}))
			return raw.Update(nil, attrs, e.nlri())
		}},
	// The other conflict of RFC 7606 section 4: fewer than 3 octets left
	// for an attribute. Here GoBGP goes on to the NLRI and withdraws them.
	{name: "attr-fewer-than-3-octets-left", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			return raw.Update(nil, raw.Concat(e.good(), []byte{raw.FlagOptional, raw.AttrMED}), e.nlri())
		}},
	{name: "attr-length-overruns-message", want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			// As above with no NLRI: the attribute overruns the message.
			attrs := raw.Concat(e.good(), raw.AttrWithLength(raw.FlagOptional, raw.AttrMED, 200, []byte{0, 0, 0, 1}))
			return raw.Update(nil, attrs, nil)
		}},
	{name: "total-path-attribute-length-overruns-message", want: sessionReset, code: 3, subcode: 1,
		msg: func(e rawEnv) []byte {
			body := raw.UpdateBody(nil, e.good(), e.nlri())
			binary.BigEndian.PutUint16(body[2:], uint16(len(body))) // more than is left
			return raw.Message(raw.MsgUpdate, body)
		}},
	{name: "withdrawn-length-overruns-message", want: sessionReset, code: 3, subcode: 1,
		msg: func(e rawEnv) []byte {
			body := raw.UpdateBody(raw.Prefixes(e.v), nil, nil)
			binary.BigEndian.PutUint16(body, 200)
			return raw.Message(raw.MsgUpdate, body)
		}},
	{name: "next-hop-length-5", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			nh := e.local.As4()
			return e.update(raw.Origin(0), e.asPath, raw.Attr(raw.FlagsWellKnown, raw.AttrNextHop, append(nh[:], 0)))
		}},
	{name: "next-hop-0.0.0.0", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			return e.update(raw.Origin(0), e.asPath, raw.NextHop(netip.IPv4Unspecified()))
		}},
	{name: "next-hop-multicast", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			return e.update(raw.Origin(0), e.asPath, raw.NextHop(netip.MustParseAddr("224.0.0.5")))
		}},
	{name: "next-hop-router-own-address", carriesV: true, want: notInstalled,
		msg: func(e rawEnv) []byte {
			return e.update(raw.Origin(0), e.asPath, raw.NextHop(netip.MustParseAddr(routerSide(e.local))))
		}},
	{name: "mp-reach-next-hop-length-5", want: sessionReset, code: 3, subcode: 5,
		msg: func(e rawEnv) []byte { return e.mpUpdate([]byte{0xfd, 0, 0, 3, 2}) }},
	{name: "mp-reach-next-hop-length-0", want: sessionReset, code: 3, subcode: 5,
		msg: func(e rawEnv) []byte { return e.mpUpdate(nil) }},
	// 24 and 48 octets are the VPN forms (route distinguisher + address):
	// GoBGP strips the RDs whatever the SAFI, so plain IPv6 unicast takes
	// them (RFC 7606 7.11: a length the AFI/SAFI does not define is an
	// error).
	{name: "mp-reach-next-hop-length-24-rd", v6: true, want: accepted,
		msg: func(e rawEnv) []byte {
			return e.mpUpdate(raw.Concat(make([]byte, 8), netip.MustParseAddr("fd00:3::2").AsSlice()))
		}},
	{name: "mp-reach-next-hop-length-48-rd", v6: true, want: accepted,
		msg: func(e rawEnv) []byte {
			return e.mpUpdate(raw.Concat(make([]byte, 8), netip.MustParseAddr("fd00:3::2").AsSlice(),
				make([]byte, 8), netip.MustParseAddr("fe80::1").AsSlice()))
		}},
	{name: "mp-reach-next-hop-length-48-zero", v6: true, want: notInstalled,
		msg: func(e rawEnv) []byte { return e.mpUpdate(make([]byte, 48)) }},
	{name: "mp-reach-next-hop-unspecified", v6: true, want: notInstalled,
		msg: func(e rawEnv) []byte { return e.mpUpdate(make([]byte, 16)) }},
	{name: "mp-reach-next-hop-multicast", v6: true, want: notInstalled,
		msg: func(e rawEnv) []byte { return e.mpUpdate(netip.MustParseAddr("ff02::1").AsSlice()) }},
	{name: "mp-reach-next-hop-router-own-address", v6: true, want: notInstalled,
		msg: func(e rawEnv) []byte { return e.mpUpdate(netip.MustParseAddr("fd00:3::1").AsSlice()) }},
	{name: "mp-reach-next-hop-overruns-attribute", want: sessionReset, code: 3, subcode: 5,
		msg: func(e rawEnv) []byte {
			v := []byte{0, raw.AFIIPv6, raw.SAFIUnicast, 16, 0xfd, 0, 0, 3} // says 16, has 4
			return raw.Update(nil, raw.Concat(raw.Origin(0), e.asPath, raw.Attr(raw.FlagOptional, raw.AttrMPReach, v)), nil)
		}},
	{name: "mp-reach-ipv6-prefix-length-129", want: sessionReset, code: 3, subcode: 10,
		msg: func(e rawEnv) []byte {
			nh := netip.MustParseAddr("fd00:3::2").AsSlice()
			nlri := raw.RawPrefix(129, make([]byte, 17)...)
			return raw.Update(nil, raw.Concat(raw.Origin(0), e.asPath, raw.MPReach(raw.AFIIPv6, raw.SAFIUnicast, nh, nlri)), nil)
		}},
	{name: "nlri-prefix-length-33", want: sessionReset, code: 3, subcode: 10,
		msg: func(e rawEnv) []byte {
			return raw.Update(nil, e.good(), raw.Concat(raw.Prefix(e.b), raw.RawPrefix(33, 198, 19, 0, 0, 1)))
		}},
	{name: "withdrawn-prefix-length-33", want: sessionReset, code: 3, subcode: 10,
		msg: func(e rawEnv) []byte {
			return raw.Update(raw.RawPrefix(33, 198, 18, 0, 0, 1), e.good(), raw.Prefixes(e.b))
		}},
	{name: "nlri-prefix-overruns-message", want: sessionReset, code: 3, subcode: 10,
		msg: func(e rawEnv) []byte {
			return raw.Update(nil, e.good(), raw.Concat(raw.Prefix(e.b), raw.RawPrefix(24, 198)))
		}},
	{name: "as-path-empty-ebgp", carriesV: true, want: accepted,
		msg: func(e rawEnv) []byte { return e.update(raw.Origin(0), raw.ASPath(), raw.NextHop(e.local)) }},
	{name: "as-path-segment-overruns", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			seg := []byte{raw.SegSequence, 3, 0, 0, 0xfe, 0x0a} // 3 ASNs announced, 1 present
			return e.update(raw.Origin(0), raw.ASPath(seg), raw.NextHop(e.local))
		}},
	{name: "as-path-segment-type-0", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			return e.update(raw.Origin(0), raw.ASPath(raw.Segment(0, true, rawASN)), raw.NextHop(e.local))
		}},
	{name: "as-path-confed-segment-ebgp", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			return e.update(raw.Origin(0), raw.ASPath(raw.Segment(raw.SegConfedSeq, true, 64512), seq4(rawASN)), raw.NextHop(e.local))
		}},
	{name: "as4-path-longer-than-as-path", twoByte: true, carriesV: true, want: accepted, ribHasNot: []string{"4200000001"},
		msg: func(e rawEnv) []byte {
			return e.update(raw.Origin(0), raw.ASPath(seq2(rawASN)), raw.NextHop(e.local),
				raw.AS4Path(seq4(rawASN, 4200000001, 4200000002)))
		}},
	{name: "as4-path-confed-segment", twoByte: true, carriesV: true, want: accepted, ribHasNot: []string{"4200000001"},
		msg: func(e rawEnv) []byte {
			return e.update(raw.Origin(0), raw.ASPath(seq2(rawASN, raw.ASTrans)), raw.NextHop(e.local),
				raw.AS4Path(raw.Segment(raw.SegConfedSeq, true, 4200000001)))
		}},
	{name: "as4-path-overruns", twoByte: true, carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			return e.update(raw.Origin(0), raw.ASPath(seq2(rawASN, raw.ASTrans)), raw.NextHop(e.local),
				raw.Attr(raw.FlagOptional|raw.FlagTransitive, raw.AttrAS4Path, []byte{raw.SegSequence, 2, 0xfa, 0x56, 0xea, 0x01}))
		}},
	{name: "as4-path-between-4-byte-speakers", carriesV: true, want: accepted, ribHasNot: []string{"4200000001"},
		msg: func(e rawEnv) []byte {
			return e.update(e.good(), raw.AS4Path(seq4(rawASN, 4200000001)))
		}},
	{name: "unknown-well-known-attribute", carriesV: true, want: sessionReset, code: 3, subcode: 2,
		msg: func(e rawEnv) []byte {
			return e.update(e.good(), raw.Attr(raw.FlagsWellKnown, 99, []byte{1, 2, 3}))
		}},
	{name: "optional-transitive-partial", carriesV: true, want: accepted, ribHas: []string{`"type":99,`},
		msg: func(e rawEnv) []byte {
			return e.update(e.good(), raw.Attr(raw.FlagOptional|raw.FlagTransitive|raw.FlagPartial, 99, []byte{1, 2, 3}))
		}},
	{name: "communities-length-5", carriesV: true, want: treatAsWithdraw,
		msg: func(e rawEnv) []byte {
			return e.update(e.good(), raw.Attr(raw.FlagOptional|raw.FlagTransitive, raw.AttrCommunities, []byte{0xfe, 0x0a, 0, 1, 9}))
		}},
	{name: "atomic-aggregate-length-1", carriesV: true, want: attrDiscard, ribHasNot: []string{`{"type":6}`},
		msg: func(e rawEnv) []byte {
			return e.update(e.good(), raw.Attr(raw.FlagsWellKnown, raw.AttrAtomicAggr, []byte{1}))
		}},
	{name: "aggregator-length-3", carriesV: true, want: attrDiscard, ribHasNot: []string{`"type":7,`},
		msg: func(e rawEnv) []byte {
			return e.update(e.good(), raw.Attr(raw.FlagOptional|raw.FlagTransitive, raw.AttrAggregator, []byte{1, 2, 3}))
		}},
	{name: "message-length-below-header", want: sessionReset, code: 1, subcode: 2,
		msg: func(e rawEnv) []byte { return raw.MessageWithLength(raw.MsgUpdate, 18, nil) }},
	{name: "message-length-above-4096", want: sessionReset, code: 1, subcode: 2,
		msg: func(e rawEnv) []byte {
			return raw.MessageWithLength(raw.MsgUpdate, 4097, raw.UpdateBody(nil, e.good(), e.nlri()))
		}},
	{name: "message-length-short-by-2", want: sessionReset, code: 3, subcode: 10,
		msg: func(e rawEnv) []byte {
			m := e.update(e.good())
			binary.BigEndian.PutUint16(m[16:], uint16(len(m)-2))
			return m[:len(m)-2]
		}},
	{name: "update-body-too-short", want: sessionReset, code: 3, subcode: 1,
		msg: func(e rawEnv) []byte { return raw.Message(raw.MsgUpdate, []byte{0, 0, 0}) }},
}

// routerSide returns r's address on the raw peer's link (10.0.3.1 for
// 10.0.3.x).
func routerSide(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%d.%d.%d.1", b[0], b[1], b[2])
}

// rawPeer is the scripted speaker in h3. It rotates over several
// addresses (each a configured neighbor) so that a reconnect need not wait
// out GoBGP's idle hold time after the previous session on one of them
// ended.
type rawPeer struct {
	r     *router
	role  string
	addrs []netip.Addr
	next  int
}

func (p *rawPeer) neighbors() string {
	var b strings.Builder
	for _, a := range p.addrs {
		fmt.Fprintf(&b, "[[neighbor]]\naddress = %q\npeer-asn = %d\ndescription = \"raw\"\nimport = \"accept-all\"\npassive = true\nconnect-retry = 1\nfamilies = [\"ipv4-unicast\", \"ipv6-unicast\"]\n\n",
			a, rawASN)
	}
	return b.String()
}

// connect opens a session from the next address, retrying while GoBGP
// still holds that neighbor in Idle.
func (p *rawPeer) connect(twoByte bool) (*raw.Conn, netip.Addr) {
	r := p.r
	r.t.Helper()
	local := p.addrs[p.next%len(p.addrs)]
	p.next++
	open := raw.Open{ASN: rawASN, HoldTime: 90, RouterID: local, FourByteAS: !twoByte,
		Families: []raw.Family{{AFI: raw.AFIIPv4, SAFI: raw.SAFIUnicast}, {AFI: raw.AFIIPv6, SAFI: raw.SAFIUnicast}}}
	var conn *raw.Conn
	r.poll(30*time.Second, func() error {
		var c net.Conn
		err := r.Do(p.role, func() error {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local.AsSlice()}, Timeout: 2 * time.Second}
			var err error
			c, err = d.Dial("tcp", net.JoinHostPort(routerSide(local), "179"))
			return err
		})
		if err != nil {
			return err
		}
		conn = raw.NewConn(c)
		if err := conn.Establish(open, 5*time.Second); err != nil {
			conn.Close()
			return fmt.Errorf("session from %s: %w", local, err)
		}
		return nil
	})
	return conn, local
}

// installed returns the BGP prefixes xdprouterd has in its kernel table
// and, separately, in XDP, as xdprouterctl reports them, and the ones the
// kernel itself lists with xdprouterd's protocol.
func (r *router) installed() (kernel, xdp, ipRoute map[netip.Prefix]bool) {
	r.t.Helper()
	var routes []xsync.RouteInfo
	if err := r.ctl(&routes, "routes"); err != nil {
		r.t.Fatal(err)
	}
	kernel, xdp, ipRoute = map[netip.Prefix]bool{}, map[netip.Prefix]bool{}, map[netip.Prefix]bool{}
	for _, ri := range routes {
		if ri.Source != "bgp" {
			continue
		}
		if ri.InKernel {
			kernel[ri.Prefix] = true
		}
		if ri.InXDP {
			xdp[ri.Prefix] = true
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		out, err := r.Output("r", "ip", fam, "route", "show", "proto", strconv.Itoa(fib.DefaultProtocol))
		if err != nil {
			r.t.Fatal(err)
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || line[0] == ' ' || line[0] == '\t' {
				continue
			}
			p, err := netip.ParsePrefix(f[0])
			if err != nil {
				if a, err2 := netip.ParseAddr(f[0]); err2 == nil {
					p = netip.PrefixFrom(a, a.BitLen())
				} else {
					r.t.Fatalf("ip route: %q", line)
				}
			}
			ipRoute[p] = true
		}
	}
	return kernel, xdp, ipRoute
}

// wantInstalled checks that exactly want is installed, in both sinks and
// in the kernel's own listing.
func (r *router) wantInstalled(want map[netip.Prefix]bool) error {
	k, x, ip := r.installed()
	for _, got := range []struct {
		name string
		set  map[netip.Prefix]bool
	}{{"kernel (xdprouterctl)", k}, {"XDP", x}, {"ip route", ip}} {
		var missing, extra []string
		for p := range want {
			if !got.set[p] {
				missing = append(missing, p.String())
			}
		}
		for p := range got.set {
			if !want[p] {
				extra = append(extra, p.String())
			}
		}
		if len(missing)+len(extra) > 0 {
			slices.Sort(missing)
			slices.Sort(extra)
			return fmt.Errorf("%s: missing %v, unexpected %v", got.name, missing, extra)
		}
	}
	return nil
}

// gobgp runs the gobgp CLI in r.
func (r *router) gobgp(args ...string) (string, error) {
	return r.Output("r", append([]string{filepath.Join(bin, "gobgp"), "-p", lab.GRPCPort}, args...)...)
}

// TestMalformed: a scripted raw BGP peer sends malformed UPDATEs (RFC
// 7606 cases, the triggers of the 2026 GoBGP advisories) next to a BIRD
// peer. For each: xdprouterd stays up, BIRD's routes stay in kernel and
// XDP, nothing from the bad UPDATE is installed that should not be, and
// the outcome is the one GoBGP v4.8.0 implements (see docs/MALFORMED.md).
func TestMalformed(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	birdPrefixes := announced(50, 10)
	p := r.peer(up1, birdPrefixes)
	if _, err := r.StartBIRD(p); err != nil {
		t.Fatal(err)
	}
	up2 := r.addUpstream2()
	rp := &rawPeer{r: r, role: up2.role}
	for i := 2; i <= 9; i++ {
		a := netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", up2.port, i))
		if i > 2 { // AddHost gave it .2
			if err := r.Run(up2.role, "ip", "addr", "add", a.String()+"/24", "dev", "eth0"); err != nil {
				t.Fatal(err)
			}
		}
		rp.addrs = append(rp.addrs, a)
	}
	r.start(neighbors("", up1) + rp.neighbors())
	r.waitRoutes("learned from BIRD", 50, 10)

	base := map[netip.Prefix]bool{}
	for _, pf := range birdPrefixes {
		base[pf] = true
	}
	with := func(ps ...netip.Prefix) map[netip.Prefix]bool {
		m := make(map[netip.Prefix]bool, len(base)+len(ps))
		for p := range base {
			m[p] = true
		}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}

	var summary []string
	for i, c := range rawCases {
		t.Run(c.name, func(t *testing.T) {
			r := r.with(t)
			rp.r = r
			conn, local := rp.connect(c.twoByte)
			defer conn.Close()
			e := rawEnv{
				local: local,
				v:     netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", i)),
				b:     netip.MustParsePrefix(fmt.Sprintf("198.19.%d.0/24", i)),
				b6:    netip.MustParsePrefix(fmt.Sprintf("2001:db8:19:%x::/64", i)),
			}
			e.asPath = raw.ASPath(raw.Segment(raw.SegSequence, !c.twoByte, rawASN))
			marker := netip.MustParsePrefix(fmt.Sprintf("198.20.%d.0/24", i))

			if err := conn.Send(raw.Update(nil, e.good(), raw.Prefixes(e.v))); err != nil {
				t.Fatal(err)
			}
			r.poll(20*time.Second, func() error { return r.wantInstalled(with(e.v)) })

			if err := conn.Send(c.msg(e)); err != nil {
				t.Fatal(err)
			}
			var got string
			if c.want == sessionReset {
				n, err := conn.WaitNotification(15 * time.Second)
				if err != nil {
					t.Fatalf("want NOTIFICATION %d/%d: %v", c.code, c.subcode, err)
				}
				got = fmt.Sprintf("NOTIFICATION %d/%d", n.Code, n.Subcode)
				if n.Code != c.code || n.Subcode != c.subcode {
					t.Errorf("got %v, want %d/%d", n, c.code, c.subcode)
				}
				// The session is gone, and its routes with it.
				r.poll(20*time.Second, func() error { return r.wantInstalled(with()) })
			} else {
				// A valid UPDATE after the bad one: once it is installed, the
				// bad one was processed and the session survived it.
				if err := conn.Send(raw.Update(nil, e.good(), raw.Prefixes(marker))); err != nil {
					t.Fatal(err)
				}
				bad := e.b
				if c.v6 {
					bad = e.b6
				}
				var want map[netip.Prefix]bool
				switch c.want {
				case treatAsWithdraw, notInstalled:
					want = with(marker)
					if !c.carriesV {
						want[e.v] = true
					}
				case ignored:
					want = with(marker, e.v)
				case attrDiscard, accepted:
					want = with(marker, e.v, bad)
				}
				r.poll(20*time.Second, func() error { return r.wantInstalled(want) })
				fam := "ipv4"
				if c.v6 {
					fam = "ipv6"
				}
				rib, err := r.gobgp("neighbor", local.String(), "adj-in", "-a", fam, "-j")
				if err != nil {
					t.Fatal(err)
				}
				inRIB := strings.Contains(rib, `"`+bad.String()+`"`)
				switch {
				case (c.want == treatAsWithdraw || c.want == ignored) && inRIB, c.want == notInstalled && !inRIB:
					t.Errorf("%s in GoBGP's Adj-RIB-In: %v, want %v:\n%s", bad, inRIB, !inRIB, rib)
				}
				got = c.want.String()
				if len(c.ribHas)+len(c.ribHasNot) > 0 {
					path, err := r.gobgp("global", "rib", "-a", fam, bad.String(), "-j")
					if err != nil {
						t.Fatal(err)
					}
					// ORIGIN is there: the JSON has the attributes where the
					// checks look.
					for _, s := range append([]string{`"type":1,`}, c.ribHas...) {
						if !strings.Contains(path, s) {
							t.Errorf("path of %s in GoBGP's RIB lacks %s: %s", bad, s, path)
						}
					}
					for _, s := range c.ribHasNot {
						if strings.Contains(path, s) {
							t.Errorf("path of %s in GoBGP's RIB has %s: %s", bad, s, path)
						}
					}
				}
				if err := conn.Send(raw.Notification{Code: 6, Subcode: 2}.Bytes()); err != nil {
					t.Fatal(err)
				}
				conn.Close()
				r.poll(20*time.Second, func() error { return r.wantInstalled(with()) })
			}
			if exited, err := r.daemon.Exited(); exited {
				t.Fatalf("xdprouterd exited: %v", err)
			}
			r.status() // the API answers
			// BIRD's sessions never went down (the daemon logs every
			// session that does; its peer status may be a second old).
			for _, a := range []string{up1.v4(), up1.v6()} {
				if strings.Contains(r.daemon.Out.String(), `msg="Peer Down" component=bgp Topic=Peer Key=`+a+" ") {
					t.Errorf("BIRD's session %s went down", a)
				}
			}
			summary = append(summary, fmt.Sprintf("%-46s %s", c.name, got))
		})
	}
	t.Logf("outcomes:\n%s", strings.Join(summary, "\n"))
	if strings.Contains(r.daemon.Out.String(), "panic") {
		t.Errorf("xdprouterd logged a panic")
	}
}
