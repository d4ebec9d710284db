package test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
)

// Policy routing (issue 11): XDP mirrors every routing table and evaluates
// the kernel's policy rules. The acceptance test compares, for thousands of
// random (source, destination, protocol, ports, tos, ingress) tuples, the
// decision of the daemon's real XDP program (BPF_PROG_TEST_RUN on a frame
// of the tuple) with the kernel's input route lookup of the same tuple
// (RTM_GETROUTE with RTA_IIF, RTA_SRC, RTA_IP_PROTO, RTA_SPORT, RTA_DPORT
// and rtm_tos, as `ip route get ... iif ... ipproto ... sport ... dport ...
// tos ...` sends it).

// flowTuple is one packet as the policy rules see it.
type flowTuple struct {
	fam          int // 4 or 6
	src, dst     netip.Addr
	iif          string // eth1 or eth2
	proto        uint8  // 6, 17, 1 (IPv4) or 58 (IPv6)
	sport, dport uint16 // 0 for ICMP
	tos          uint8  // IPv4 TOS byte / IPv6 traffic class
}

func (u flowTuple) String() string {
	s := fmt.Sprintf("from %s to %s iif %s ipproto %d", u.src, u.dst, u.iif, u.proto)
	if u.proto == unix.IPPROTO_TCP || u.proto == unix.IPPROTO_UDP {
		s += fmt.Sprintf(" sport %d dport %d", u.sport, u.dport)
	}
	return s + fmt.Sprintf(" tos %#x", u.tos)
}

// ipRouteGet is the equivalent `ip route get` command line.
func (u flowTuple) ipRouteGet() []string {
	a := []string{"ip", "-" + strconv.Itoa(u.fam), "route", "get", u.dst.String(), "from", u.src.String(),
		"iif", u.iif, "ipproto", strconv.Itoa(int(u.proto))}
	if u.proto == unix.IPPROTO_TCP || u.proto == unix.IPPROTO_UDP {
		a = append(a, "sport", strconv.Itoa(int(u.sport)), "dport", strconv.Itoa(int(u.dport)))
	}
	return append(a, "tos", fmt.Sprintf("%#x", u.tos))
}

// pRule is one policy rule the test adds, with what it needs to decide
// whether the rule's selectors XDP can see match a tuple.
type pRule struct {
	fam          int
	prio         int
	not          bool
	from, to     netip.Prefix // invalid: any
	iif          string
	proto        uint8
	sport, dport [2]uint16 // {0, 0}: any
	tos          uint8
	opaque       []string // selectors XDP cannot evaluate (fwmark, uidrange, oif)
	action       []string // lookup N [suppress_prefixlength N], goto N, blackhole, ...
}

func (p pRule) args() []string {
	a := []string{"-" + strconv.Itoa(p.fam), "rule", "add", "priority", strconv.Itoa(p.prio)}
	if p.not {
		a = append(a, "not")
	}
	if p.from.IsValid() {
		a = append(a, "from", p.from.String())
	}
	if p.to.IsValid() {
		a = append(a, "to", p.to.String())
	}
	if p.iif != "" {
		a = append(a, "iif", p.iif)
	}
	if p.proto != 0 {
		a = append(a, "ipproto", strconv.Itoa(int(p.proto)))
	}
	for i, r := range [][2]uint16{p.sport, p.dport} {
		if r != [2]uint16{} {
			v := fmt.Sprintf("%d-%d", r[0], r[1])
			if r[0] == r[1] {
				v = strconv.Itoa(int(r[0])) // iproute2 refuses a range of one port
			}
			a = append(a, []string{"sport", "dport"}[i], v)
		}
	}
	if p.tos != 0 {
		a = append(a, "tos", fmt.Sprintf("%#x", p.tos))
	}
	a = append(a, p.opaque...)
	return append(a, p.action...)
}

func (p pRule) String() string { return "ip " + strings.Join(p.args(), " ") }

// visibleMatch reports whether the selectors XDP can evaluate match u.
func (p pRule) visibleMatch(u flowTuple) bool {
	m := (!p.from.IsValid() || p.from.Contains(u.src)) &&
		(!p.to.IsValid() || p.to.Contains(u.dst)) &&
		(p.iif == "" || p.iif == u.iif) &&
		(p.proto == 0 || p.proto == u.proto)
	sport, dport := u.sport, u.dport
	if u.proto != unix.IPPROTO_TCP && u.proto != unix.IPPROTO_UDP {
		sport, dport = 0, 0
	}
	for i, port := range []uint16{sport, dport} {
		r := [][2]uint16{p.sport, p.dport}[i]
		if r != [2]uint16{} && (port < r[0] || port > r[1]) {
			m = false
		}
	}
	mask := uint8(0x1c)
	if p.fam == 6 {
		mask = 0xfc
	}
	if p.tos != 0 && u.tos&mask != p.tos {
		m = false
	}
	return m != p.not
}

// policyGen makes random routes, rules and tuples for one family.
type policyGen struct {
	fam     int
	rng     *rand.Rand
	dstNets []netip.Prefix // where the routes are
	srcNets []netip.Prefix // where the rule sources are
	anchors []netip.Addr   // addresses routes of several lengths cover
	ruleSrc []netip.Prefix // from selectors in force
	ruleDst []netip.Prefix // to selectors in force
	gw      [2]string      // h1, h2
	used    map[int]bool   // rule priorities
	rules   []pRule        // in force (the test's, not the defaults)
}

var tuplePorts = []uint16{22, 53, 80, 123, 443, 1000, 1500, 2000, 2001, 4000, 5353, 8080, 33434, 40000, 65000}

var portRanges = [][2]uint16{{53, 53}, {80, 443}, {1000, 2000}, {1024, 65534}, {4000, 4000}, {5000, 6000}, {33434, 33534}, {1, 1023}}

func newPolicyGen(fam int, seed uint64) *policyGen {
	g := &policyGen{fam: fam, rng: rand.New(rand.NewPCG(seed, uint64(fam))), used: map[int]bool{}}
	if fam == 4 {
		for _, s := range []string{"172.16.0.0/16", "172.17.0.0/16", "172.18.0.0/16", "198.18.0.0/16"} {
			g.dstNets = append(g.dstNets, netip.MustParsePrefix(s))
		}
		for _, s := range []string{"100.64.0.0/16", "100.65.0.0/16", "203.0.0.0/16"} {
			g.srcNets = append(g.srcNets, netip.MustParsePrefix(s))
		}
		g.gw = [2]string{lab.H1v4, lab.H2v4}
	} else {
		for _, s := range []string{"2001:db8:10::/48", "2001:db8:11::/48", "2001:db8:12::/48", "2001:db8:13::/48"} {
			g.dstNets = append(g.dstNets, netip.MustParsePrefix(s))
		}
		for _, s := range []string{"2001:db8:a0::/48", "2001:db8:a1::/48", "2001:db8:a2::/48"} {
			g.srcNets = append(g.srcNets, netip.MustParsePrefix(s))
		}
		g.gw = [2]string{lab.H1v6, lab.H2v6}
	}
	for range 24 {
		g.anchors = append(g.anchors, g.randIn(g.dstNets[g.rng.IntN(len(g.dstNets))]))
	}
	return g
}

// randIn is a random address of p.
func (g *policyGen) randIn(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if g.rng.IntN(2) == 1 {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// near is a random address sharing the first bits bits of a.
func (g *policyGen) near(a netip.Addr, bits int) netip.Addr {
	return g.randIn(netip.PrefixFrom(a, min(bits, a.BitLen())).Masked())
}

func (g *policyGen) base() int { // the bits of a /16 (IPv6: /48)
	if g.fam == 4 {
		return 16
	}
	return 48
}

func (g *policyGen) width() int { // bits below base a route may go
	if g.fam == 4 {
		return 12
	}
	return 16
}

// routePrefix is a prefix around an anchor, /16../28 (IPv6 /48../64).
func (g *policyGen) routePrefix() netip.Prefix {
	a := g.anchors[g.rng.IntN(len(g.anchors))]
	return netip.PrefixFrom(a, g.base()+g.rng.IntN(g.width()+1)).Masked()
}

// routes returns n random `ip route` argument lists for table.
func (g *policyGen) routes(table string, n int) [][]string {
	var out [][]string
	f := "-" + strconv.Itoa(g.fam)
	for range n {
		p := g.routePrefix().String()
		pt := []string{p, "table", table} // the table before any nexthop
		var a []string
		switch k := g.rng.IntN(100); {
		case k < 24:
			a = append(pt, "via", g.gw[0], "dev", "eth1")
		case k < 48:
			a = append(pt, "via", g.gw[1], "dev", "eth2")
		case k < 62:
			a = append(pt, "nexthop", "via", g.gw[0], "dev", "eth1", "nexthop", "via", g.gw[1], "dev", "eth2")
		case k < 70:
			a = append(pt, "dev", []string{"eth1", "eth2"}[g.rng.IntN(2)])
		case k < 78:
			a = append([]string{"blackhole"}, pt...)
		case k < 85:
			a = append([]string{"unreachable"}, pt...)
		case k < 92:
			a = append([]string{"prohibit"}, pt...)
		default:
			a = append([]string{"throw"}, pt...)
		}
		out = append(out, append([]string{f, "route", "replace"}, a...))
	}
	return out
}

// connected puts the ports' subnets into table, so that gateways resolve
// in it whatever rules are in force.
func (g *policyGen) connected(table string) [][]string {
	f := "-" + strconv.Itoa(g.fam)
	nets := [2]string{"10.0.1.0/24", "10.0.2.0/24"}
	if g.fam == 6 {
		nets = [2]string{"fd00:1::/64", "fd00:2::/64"}
	}
	return [][]string{
		{f, "route", "replace", nets[0], "dev", "eth1", "table", table},
		{f, "route", "replace", nets[1], "dev", "eth2", "table", table},
	}
}

func (g *policyGen) prio() int {
	for {
		p := 100 + g.rng.IntN(30000)
		if !g.used[p] {
			g.used[p] = true
			return p
		}
	}
}

// rule makes a random rule with lookups into tables (and main).
func (g *policyGen) rule(tables []string) pRule {
	r := pRule{fam: g.fam, prio: g.prio()}
	rng := g.rng
	selectors := 0
	for selectors == 0 {
		if rng.IntN(100) < 45 {
			n := g.srcNets[rng.IntN(len(g.srcNets))]
			r.from = netip.PrefixFrom(g.randIn(n), n.Bits()-8+rng.IntN(g.width()+9)).Masked()
			g.ruleSrc = append(g.ruleSrc, r.from)
			selectors++
		}
		if rng.IntN(100) < 30 {
			r.to = netip.PrefixFrom(g.anchors[rng.IntN(len(g.anchors))], g.base()-4+rng.IntN(g.width()+5)).Masked()
			g.ruleDst = append(g.ruleDst, r.to)
			selectors++
		}
		if rng.IntN(100) < 30 {
			r.iif = []string{"eth1", "eth1", "eth2", "eth2", "nosuch0", "lo"}[rng.IntN(6)]
			selectors++
		}
		if rng.IntN(100) < 30 {
			r.proto = []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP, g.icmp()}[rng.IntN(3)]
			selectors++
		}
		if r.proto != g.icmp() && rng.IntN(100) < 15 {
			r.sport = portRanges[rng.IntN(len(portRanges))]
			selectors++
		}
		if r.proto != g.icmp() && rng.IntN(100) < 22 {
			r.dport = portRanges[rng.IntN(len(portRanges))]
			selectors++
		}
		if rng.IntN(100) < 15 {
			r.tos = g.ruleTos()
			selectors++
		}
	}
	r.not = rng.IntN(100) < 12
	switch k := rng.IntN(100); {
	case k < 55:
		t := tables[rng.IntN(len(tables))]
		r.action = []string{"lookup", t}
		if rng.IntN(100) < 30 {
			r.action = append(r.action, "suppress_prefixlength", strconv.Itoa(g.suppress()))
		}
	case k < 64:
		r.action = []string{"goto", "GOTO"} // resolved by the caller
	case k < 75:
		r.action = []string{"blackhole"}
	case k < 83:
		r.action = []string{"unreachable"}
	case k < 91:
		r.action = []string{"prohibit"}
	default:
		r.action = []string{"nop"}
	}
	return r
}

func (g *policyGen) icmp() uint8 {
	if g.fam == 4 {
		return unix.IPPROTO_ICMP
	}
	return unix.IPPROTO_ICMPV6
}

// ruleTos: IPv4 rules take the TOS bits (0x1c) only; IPv6 any DSCP.
func (g *policyGen) ruleTos() uint8 {
	if g.fam == 4 {
		return uint8(1+g.rng.IntN(7)) << 2
	}
	return []uint8{0x20, 0x28, 0xb8, 0x48, 0x04, 0x1c, 0x88}[g.rng.IntN(7)]
}

// tupleTos: packets' TOS, half of them zero.
func (g *policyGen) tupleTos() uint8 {
	if g.rng.IntN(2) == 0 {
		return 0
	}
	if g.rng.IntN(2) == 0 {
		return g.ruleTos() // likely to hit a rule
	}
	return uint8(g.rng.IntN(64)) << 2
}

func (g *policyGen) suppress() int {
	if g.rng.IntN(3) == 0 {
		return 0
	}
	return g.base() + g.rng.IntN(g.width()+1) - 1
}

// resolveGotos points each goto at a later rule of the list (or, once in a
// while, at a priority no rule has: the kernel treats it as a nop).
func (g *policyGen) resolveGotos(rs []pRule) {
	prios := []int{}
	for _, r := range g.rules {
		prios = append(prios, r.prio)
	}
	for _, r := range rs {
		prios = append(prios, r.prio)
	}
	slices.Sort(prios)
	for i := range rs {
		if rs[i].action[0] != "goto" {
			continue
		}
		var later []int
		for _, p := range prios {
			if p > rs[i].prio {
				later = append(later, p)
			}
		}
		target := 32000 + g.rng.IntN(700) // unresolved
		if len(later) > 0 && g.rng.IntN(6) != 0 {
			target = later[g.rng.IntN(len(later))]
		}
		rs[i].action = []string{"goto", strconv.Itoa(target)}
	}
}

// tuple is a random tuple: sources mostly in the rules' from prefixes,
// destinations mostly near the routes.
func (g *policyGen) tuple() flowTuple {
	rng := g.rng
	u := flowTuple{fam: g.fam, iif: []string{"eth1", "eth2"}[rng.IntN(2)]}
	switch k := rng.IntN(100); {
	case k < 55 && len(g.ruleSrc) > 0:
		u.src = g.randIn(g.ruleSrc[rng.IntN(len(g.ruleSrc))])
	case k < 80:
		u.src = g.randIn(g.srcNets[rng.IntN(len(g.srcNets))])
	default:
		u.src = g.global()
	}
	switch k := rng.IntN(100); {
	case k < 55:
		a := g.anchors[rng.IntN(len(g.anchors))]
		u.dst = g.near(a, g.base()+rng.IntN(g.width()+8))
	case k < 67 && len(g.ruleDst) > 0:
		u.dst = g.randIn(g.ruleDst[rng.IntN(len(g.ruleDst))])
	case k < 82:
		u.dst = g.randIn(g.dstNets[rng.IntN(len(g.dstNets))])
	case k < 92:
		special := []string{lab.H1v4, lab.H2v4, lab.R1v4, lab.R2v4, "10.0.1.77", "10.0.2.77"}
		if g.fam == 6 {
			special = []string{lab.H1v6, lab.H2v6, lab.R1v6, lab.R2v6, "fd00:1::77", "fd00:2::77"}
		}
		u.dst = netip.MustParseAddr(special[rng.IntN(len(special))])
	default:
		u.dst = g.global()
	}
	u.proto = []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_UDP, g.icmp()}[rng.IntN(4)]
	if u.proto != g.icmp() {
		u.sport = tuplePorts[rng.IntN(len(tuplePorts))]
		u.dport = tuplePorts[rng.IntN(len(tuplePorts))]
	}
	u.tos = g.tupleTos()
	return u
}

// global is a random unicast address outside the lab's and the test's
// ranges (and not martian).
func (g *policyGen) global() netip.Addr {
	for {
		if g.fam == 4 {
			a := netip.AddrFrom4([4]byte{byte(1 + g.rng.IntN(223)), byte(g.rng.IntN(256)), byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))})
			if b := a.As4(); b[0] != 10 && b[0] != 127 && b[0] != 169 && b[0] != 100 && b[0] != 172 && b[0] != 198 && b[0] != 203 {
				return a
			}
			continue
		}
		var b [16]byte
		binary.BigEndian.PutUint16(b[:], 0x2400+uint16(g.rng.IntN(0x600)))
		for i := 2; i < 16; i++ {
			b[i] = byte(g.rng.IntN(256))
		}
		return netip.AddrFrom16(b)
	}
}

// kernelAnswer is the kernel's input route for a tuple.
type kernelAnswer struct {
	errno syscall.Errno // 0: a route
	typ   uint8         // RTN_*
	table uint32
	gw    netip.Addr // the next hop the kernel chose
	oif   int
	hops  []kernelHop // every next hop of the matched route (RTM_F_FIB_MATCH)
}

type kernelHop struct {
	gw  netip.Addr
	oif int
}

func (k kernelAnswer) String() string {
	if k.errno != 0 {
		return "error " + k.errno.Error()
	}
	s := fmt.Sprintf("type %d table %d", k.typ, k.table)
	if k.typ == unix.RTN_LOCAL {
		s = fmt.Sprintf("local table %d", k.table)
	}
	for _, h := range k.hops {
		s += fmt.Sprintf(" nexthop via %v oif %d", h.gw, h.oif)
	}
	if k.gw.IsValid() || k.oif != 0 {
		s += fmt.Sprintf(" (chose via %v oif %d)", k.gw, k.oif)
	}
	return s
}

// kernelRoute asks the kernel for the input route of u (run in r's
// namespace): RTM_GETROUTE as `ip route get` sends it; fibMatch asks for
// the matched FIB entry (all next hops) instead of the resolved route.
func kernelRoute(u flowTuple, iif int, fibMatch bool) (kernelAnswer, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_REQUEST)
	msg := &nl.RtMsg{}
	msg.Family = unix.AF_INET
	bits := uint8(32)
	if u.fam == 6 {
		msg.Family, bits = unix.AF_INET6, 128
	}
	msg.Dst_len, msg.Src_len, msg.Tos = bits, bits, u.tos
	msg.Flags = unix.RTM_F_LOOKUP_TABLE // the table that decided, as ip route get asks
	if fibMatch {
		msg.Flags = unix.RTM_F_FIB_MATCH
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.RTA_DST, u.dst.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.RTA_SRC, u.src.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.RTA_IIF, nl.Uint32Attr(uint32(iif))))
	req.AddData(nl.NewRtAttr(unix.RTA_IP_PROTO, []byte{u.proto}))
	if u.proto == unix.IPPROTO_TCP || u.proto == unix.IPPROTO_UDP {
		req.AddData(nl.NewRtAttr(unix.RTA_SPORT, binary.BigEndian.AppendUint16(nil, u.sport)))
		req.AddData(nl.NewRtAttr(unix.RTA_DPORT, binary.BigEndian.AppendUint16(nil, u.dport)))
	}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE)
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return kernelAnswer{errno: errno}, nil
	}
	if err != nil {
		return kernelAnswer{}, err
	}
	if len(msgs) != 1 || len(msgs[0]) < unix.SizeofRtMsg {
		return kernelAnswer{}, fmt.Errorf("RTM_GETROUTE %s: %d answers", u, len(msgs))
	}
	m := nl.DeserializeRtMsg(msgs[0])
	k := kernelAnswer{typ: m.Type, table: uint32(m.Table)}
	attrs, err := nl.ParseRouteAttr(msgs[0][unix.SizeofRtMsg:])
	if err != nil {
		return kernelAnswer{}, err
	}
	addr := func(b []byte) netip.Addr { a, _ := netip.AddrFromSlice(b); return a }
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			k.table = binary.NativeEndian.Uint32(a.Value)
		case unix.RTA_GATEWAY:
			k.gw = addr(a.Value)
		case unix.RTA_OIF:
			k.oif = int(binary.NativeEndian.Uint32(a.Value))
		case unix.RTA_MULTIPATH:
			b := a.Value
			for len(b) >= unix.SizeofRtNexthop {
				n := nl.DeserializeRtNexthop(b)
				l := int(n.RtNexthop.Len)
				if l < unix.SizeofRtNexthop || l > len(b) {
					break
				}
				h := kernelHop{oif: int(n.Ifindex)}
				sub, _ := nl.ParseRouteAttr(b[unix.SizeofRtNexthop:l])
				for _, s := range sub {
					if s.Attr.Type == unix.RTA_GATEWAY {
						h.gw = addr(s.Value)
					}
				}
				k.hops = append(k.hops, h)
				b = b[(l+3)&^3:]
			}
		}
	}
	if len(k.hops) == 0 && (k.gw.IsValid() || k.oif != 0) {
		k.hops = []kernelHop{{k.gw, k.oif}}
	}
	if fibMatch {
		k.gw, k.oif = netip.Addr{}, 0
	}
	return k, nil
}

// xdpAnswer is what the XDP program did with a tuple's frame.
type xdpAnswer struct {
	ret    uint32
	to     string // redirect: the next hop (h1, h2) by destination MAC
	reason string // the stat counter that counted the frame
}

func (a xdpAnswer) String() string {
	switch a.ret {
	case xdpRedirect:
		return "redirect to " + a.to
	case xdpDrop:
		return "drop/" + a.reason
	case xdpPass:
		return "pass/" + a.reason
	}
	return fmt.Sprintf("verdict %d/%s", a.ret, a.reason)
}

// policyFrame is an Ethernet frame of u (destination MAC set by the caller).
func policyFrame(u flowTuple) []byte {
	var l4 []byte
	switch u.proto {
	case unix.IPPROTO_TCP:
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint16(l4[0:], u.sport)
		binary.BigEndian.PutUint16(l4[2:], u.dport)
		l4[12], l4[13] = 5<<4, 0x02 // SYN
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case unix.IPPROTO_UDP:
		l4 = make([]byte, 8+16)
		binary.BigEndian.PutUint16(l4[0:], u.sport)
		binary.BigEndian.PutUint16(l4[2:], u.dport)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	default: // echo request
		l4 = make([]byte, 8+16)
		l4[0] = 8
		if u.fam == 6 {
			l4[0] = 128
		}
		binary.BigEndian.PutUint16(l4[4:], 0x1234)
	}
	var b []byte
	if u.fam == 4 {
		b = make([]byte, 14+20+len(l4))
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip := b[14:]
		ip[0], ip[1], ip[8], ip[9] = 0x45, u.tos, 64, u.proto
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		s, d := u.src.As4(), u.dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		setIPv4Checksum(ip)
		copy(ip[20:], l4)
	} else {
		b = make([]byte, 14+40+len(l4))
		binary.BigEndian.PutUint16(b[12:], 0x86dd)
		ip := b[14:]
		binary.BigEndian.PutUint32(ip, 6<<28|uint32(u.tos)<<20)
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6], ip[7] = u.proto, 64
		s, d := u.src.As16(), u.dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		copy(ip[40:], l4)
	}
	copy(b[6:], []byte{0x02, 0, 0, 0, 0, 0x99}) // source MAC
	return b
}

// policyHarness runs tuples through the kernel and through XDP in r.
type policyHarness struct {
	r       *router
	x       *xdp
	stats   *ebpf.Map
	names   []string // stat index -> action/reason
	prev    []uint64
	macName map[string]string // next-hop MAC -> h1, h2
	gwName  map[netip.Addr]string
	ifname  map[int]string
}

func newPolicyHarness(t *testing.T, r *router, x *xdp, pin string) *policyHarness {
	t.Helper()
	h := &policyHarness{r: r, x: x, macName: map[string]string{}, gwName: map[netip.Addr]string{}, ifname: map[int]string{}}
	m, err := ebpf.LoadPinnedMap(filepath.Join(pin, "stats"), nil)
	if err != nil {
		t.Fatalf("pinned stats map: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	h.stats = m
	var s []bpf.StatCounter
	if err := r.ctl(&s, "stats"); err != nil { // in the order of the stats map
		t.Fatal(err)
	}
	for _, c := range s {
		h.names = append(h.names, c.Action+"/"+c.Reason)
	}
	for _, host := range []string{"h1", "h2"} {
		h.macName[linkMAC(t, r, host, "eth0").String()] = host
	}
	h.gwName[netip.MustParseAddr(lab.H1v4)] = "h1"
	h.gwName[netip.MustParseAddr(lab.H1v6)] = "h1"
	h.gwName[netip.MustParseAddr(lab.H2v4)] = "h2"
	h.gwName[netip.MustParseAddr(lab.H2v6)] = "h2"
	for name, idx := range x.ifindex {
		h.ifname[idx] = name
	}
	return h
}

// counts reads the stats map (packets per stat, summed over CPUs).
func (h *policyHarness) counts() ([]uint64, error) {
	out := make([]uint64, len(h.names))
	var per []struct{ Packets, Bytes uint64 }
	for i := range h.names {
		if err := h.stats.Lookup(uint32(i), &per); err != nil {
			return nil, err
		}
		for _, v := range per {
			out[i] += v.Packets
		}
	}
	return out, nil
}

// runXDP runs u's frame through the program; call in r's namespace.
func (h *policyHarness) runXDP(u flowTuple) (xdpAnswer, error) {
	for attempt := 0; ; attempt++ {
		if h.prev == nil {
			c, err := h.counts()
			if err != nil {
				return xdpAnswer{}, err
			}
			h.prev = c
		}
		frame := policyFrame(u)
		copy(frame, h.x.mac[u.iif])
		out := make([]byte, len(frame)+256)
		opts := &ebpf.RunOptions{Data: frame, DataOut: out,
			Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(h.x.ifindex[u.iif])}}
		ret, err := h.x.prog.Run(opts)
		if err != nil {
			return xdpAnswer{}, err
		}
		a := xdpAnswer{ret: ret}
		if ret == xdpRedirect {
			a.to = cmpOr(h.macName[net.HardwareAddr(out[:6]).String()], "MAC "+net.HardwareAddr(out[:6]).String())
		}
		c, err := h.counts()
		if err != nil {
			return xdpAnswer{}, err
		}
		var moved []string
		for i := range c {
			if c[i] != h.prev[i] {
				moved = append(moved, h.names[i])
			}
		}
		h.prev = c
		if len(moved) == 1 {
			_, a.reason, _ = strings.Cut(moved[0], "/")
			return a, nil
		}
		// Real traffic (ND, MLD) counted meanwhile: once more.
		if attempt == 5 {
			a.reason = "?" + strings.Join(moved, ",")
			return a, nil
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// outcome of one tuple.
type policyResult struct {
	u       flowTuple
	k       kernelAnswer
	x       xdpAnswer
	class   string // agreement category, "" if they disagree
	problem string
}

// query asks the kernel (input route, and the matched FIB entry for a
// unicast route); call in r's namespace.
func (h *policyHarness) query(u flowTuple) (kernelAnswer, error) {
	k, err := kernelRoute(u, h.x.ifindex[u.iif], false)
	if err != nil || k.errno != 0 || k.typ != unix.RTN_UNICAST {
		return k, err
	}
	f, err := kernelRoute(u, h.x.ifindex[u.iif], true)
	if err != nil {
		return k, err
	}
	if f.errno != 0 {
		return k, fmt.Errorf("fibmatch %s: %v after a route %s", u, f.errno, k)
	}
	k.hops, k.table = f.hops, f.table
	return k, nil
}

// judge compares the kernel's and XDP's answers for u. opaque are the
// rules XDP cannot evaluate.
func (h *policyHarness) judge(u flowTuple, k kernelAnswer, x xdpAnswer, opaque []pRule) policyResult {
	res := policyResult{u: u, k: k, x: x}
	if x.ret == xdpPass && x.reason == bpf.ReasonRuleKernel {
		for _, o := range opaque {
			if o.fam == u.fam && o.visibleMatch(u) {
				res.class = "pass: to the kernel for a rule XDP cannot evaluate"
				return res
			}
		}
		res.problem = "XDP passed it for a rule it cannot evaluate, but no such rule can match"
		return res
	}
	switch {
	case k.errno == 0 && k.typ == unix.RTN_UNICAST:
		var want []string
		for _, hop := range k.hops {
			switch {
			case h.gwName[hop.gw] != "":
				want = append(want, h.gwName[hop.gw])
			case !hop.gw.IsValid() && h.gwName[u.dst] != "":
				want = append(want, h.gwName[u.dst]) // a connected route to a host
			case !hop.gw.IsValid():
				want = append(want, "unresolved")
			default:
				want = append(want, "gateway "+hop.gw.String())
			}
		}
		switch {
		case x.ret == xdpRedirect && slices.Contains(want, x.to):
			res.class = "forward via " + x.to
			if len(k.hops) > 1 {
				res.class = "forward ECMP"
			}
		case x.ret == xdpPass && x.reason == bpf.ReasonNeighborUnresolved && slices.Contains(want, "unresolved"):
			res.class = "forward to an unresolved neighbor: pass"
		default:
			res.problem = fmt.Sprintf("kernel forwards to %v", want)
		}
	case k.errno == 0 && (k.typ == unix.RTN_LOCAL || k.typ == unix.RTN_ANYCAST):
		if x.ret == xdpPass {
			res.class = "local: pass"
		} else {
			res.problem = "kernel delivers locally"
		}
	case k.errno == unix.EINVAL:
		if x.ret == xdpDrop && (x.reason == bpf.ReasonRule || x.reason == bpf.ReasonBlackhole) {
			res.class = "blackhole: drop/" + x.reason
		} else {
			res.problem = "kernel drops (blackhole)"
		}
	case k.errno == unix.ENETUNREACH || k.errno == unix.EHOSTUNREACH || k.errno == unix.EACCES:
		if x.ret == xdpPass {
			res.class = "unreachable/prohibit/no route: pass"
		} else {
			res.problem = "kernel answers with an ICMP error"
		}
	default:
		res.problem = "unexpected kernel answer"
	}
	return res
}

// runTuples gets both answers for every tuple (kernel first, then XDP).
func (h *policyHarness) runTuples(tuples []flowTuple) ([]kernelAnswer, []xdpAnswer, error) {
	ks := make([]kernelAnswer, len(tuples))
	xs := make([]xdpAnswer, len(tuples))
	err := h.r.Do("r", func() error {
		h.prev = nil
		for i, u := range tuples {
			k, err := h.query(u)
			if err != nil {
				return fmt.Errorf("kernel route %s: %w", u, err)
			}
			x, err := h.runXDP(u)
			if err != nil {
				return fmt.Errorf("XDP %s: %w", u, err)
			}
			ks[i], xs[i] = k, x
		}
		return nil
	})
	return ks, xs, err
}

// kernelOnly re-asks the kernel for tuples.
func (h *policyHarness) kernelOnly(tuples []flowTuple) ([]kernelAnswer, error) {
	ks := make([]kernelAnswer, len(tuples))
	err := h.r.Do("r", func() error {
		for i, u := range tuples {
			k, err := h.query(u)
			if err != nil {
				return err
			}
			ks[i] = k
		}
		return nil
	})
	return ks, err
}

// probe waits until XDP's decision for u satisfies ok.
func (h *policyHarness) probe(t *testing.T, what string, u flowTuple, ok func(xdpAnswer) bool) {
	t.Helper()
	start := time.Now()
	var last xdpAnswer
	h.r.poll(10*time.Second, func() error {
		err := h.r.Do("r", func() error {
			h.prev = nil
			var err error
			last, err = h.runXDP(u)
			return err
		})
		if err != nil {
			return err
		}
		if !ok(last) {
			return fmt.Errorf("%s: XDP %s for %s", what, last, u)
		}
		return nil
	})
	t.Logf("%s: XDP follows after %v (%s: %s)", what, time.Since(start).Round(time.Millisecond), u, last)
}

// TestPolicyRoutingAgreesWithKernel is issue 11's acceptance test: with
// three extra routing tables of random routes (unicast via h1 or h2, ECMP,
// connected, blackhole, unreachable, prohibit, throw, over nested prefixes),
// routes in main and ~30 random policy rules per family (from, to, iif,
// ipproto, sport, dport, tos, not; lookup, suppress_prefixlength, goto,
// blackhole, unreachable, prohibit, nop, and rules XDP cannot evaluate),
// part set up before xdprouterd starts and part while it runs, XDP takes
// the kernel's decision for 2,400 random tuples per family: forward to the
// same next hop (any member of an ECMP route), drop where the kernel
// blackholes, pass where the kernel delivers locally or answers with an
// ICMP error. XDP passes a packet the kernel would forward only for a rule
// it cannot evaluate (fwmark, uidrange, oif) whose other selectors match,
// or to a connected destination whose neighbor it does not know.
func TestPolicyRoutingAgreesWithKernel(t *testing.T) {
	r := newLab(t)
	pin := r.pinned()
	runAll := func(cmds ...[]string) {
		t.Helper()
		if len(cmds) == 0 {
			return
		}
		// ip -batch takes no options per line: one batch per family.
		for _, fam := range []string{"-4", "-6"} {
			var b strings.Builder
			for _, c := range cmds {
				if c[0] == fam {
					b.WriteString(strings.Join(c[1:], " ") + "\n")
				}
			}
			if b.Len() == 0 {
				continue
			}
			f := filepath.Join(t.TempDir(), "batch")
			if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := r.Run("r", "ip", fam, "-batch", f); err != nil {
				t.Fatalf("%v\n%s", err, b.String())
			}
		}
	}
	for _, c := range [][]string{
		// The kernel's input route lookup of transit traffic needs
		// forwarding on (XDP forwards here either way); no reverse-path
		// filter (XDP has no uRPF configured).
		{"sysctl", "-qw", "net.ipv4.conf.all.forwarding=1"},
		{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.eth1.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.eth2.rp_filter=0"},
	} {
		if err := r.Run("r", c...); err != nil {
			t.Fatal(err)
		}
	}

	gens := map[int]*policyGen{4: newPolicyGen(4, 11), 6: newPolicyGen(6, 11)}
	var opaque []pRule
	probeSrc := map[int][2]string{4: {"100.127.0.1", "100.127.0.2"}, 6: {"2001:db8:ff::1", "2001:db8:ff::2"}}
	probeNet := map[int][2]string{4: {"203.0.113.0/24", "203.0.114.0/24"}, 6: {"2001:db8:fe:1::/64", "2001:db8:fe:2::/64"}}
	probeTuple := func(fam, i int) flowTuple {
		u := flowTuple{fam: fam, src: netip.MustParseAddr(probeSrc[fam][i]), iif: "eth1", proto: unix.IPPROTO_UDP, sport: 1000, dport: 7}
		u.dst = netip.MustParsePrefix(probeNet[fam][i]).Addr().Next()
		return u
	}

	// Part 1, before the daemon starts: tables 100 and 101, routes in
	// main, 16 rules per family (one XDP cannot evaluate).
	for _, fam := range []int{4, 6} {
		g := gens[fam]
		var cmds [][]string
		for _, table := range []string{"100", "101"} {
			cmds = append(cmds, g.connected(table)...)
			cmds = append(cmds, g.routes(table, 30)...)
		}
		cmds = append(cmds, g.routes("main", 12)...)
		f := "-" + strconv.Itoa(fam)
		cmds = append(cmds, []string{f, "route", "replace", probeNet[fam][0], "via", g.gw[0], "dev", "eth1", "table", "100"})
		var rs []pRule
		for range 15 {
			rs = append(rs, g.rule([]string{"100", "101", "main", "103"}))
		}
		op := pRule{fam: fam, prio: g.prio(), from: g.srcNets[0], opaque: []string{"fwmark", "0x1"}, action: []string{"lookup", "101"}}
		if fam == 6 {
			op.opaque = []string{"oif", "eth2"}
		}
		rs = append(rs, op)
		opaque = append(opaque, op)
		g.resolveGotos(rs)
		g.rules = append(g.rules, rs...)
		for _, p := range rs {
			cmds = append(cmds, p.args())
		}
		cmds = append(cmds, []string{f, "rule", "add", "priority", "40", "from", probeSrc[fam][0], "lookup", "100"})
		runAll(cmds...)
	}
	r.start("")
	x := r.xdp(pin)
	h := newPolicyHarness(t, r, x, pin)
	for _, fam := range []int{4, 6} {
		h.probe(t, fmt.Sprintf("IPv%d rules and tables at start", fam), probeTuple(fam, 0), func(a xdpAnswer) bool {
			return a.ret == xdpRedirect && a.to == "h1"
		})
	}

	// The oracle: the raw RTM_GETROUTE answers are those of ip route get.
	var logged int
	h.verifyOracle(t, gens, &logged)

	categories := map[string]int{}
	var failures []policyResult
	total := 0
	check := func(what string, fam, n int) ([]flowTuple, []xdpAnswer) {
		t.Helper()
		g := gens[fam]
		tuples := make([]flowTuple, n)
		for i := range tuples {
			tuples[i] = g.tuple()
		}
		ks, xs, err := h.runTuples(tuples)
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for i, u := range tuples {
			res := h.judge(u, ks[i], xs[i], opaque)
			total++
			if res.problem != "" {
				bad++
				failures = append(failures, res)
				continue
			}
			categories[fmt.Sprintf("IPv%d %s", fam, res.class)]++
		}
		t.Logf("%s IPv%d: %d tuples, %d disagree", what, fam, n, bad)
		return tuples, xs
	}
	start := time.Now()
	for _, fam := range []int{4, 6} {
		check("rules and tables from before the start", fam, 1200)
	}

	// Part 2, live: table 102, more routes in 100, 101 and main, 12 more
	// rules (one XDP cannot evaluate), 3 rules of part 1 deleted; then the
	// probe route and rule, whose decision XDP must take within the
	// deadline.
	for _, fam := range []int{4, 6} {
		g := gens[fam]
		f := "-" + strconv.Itoa(fam)
		var cmds [][]string
		cmds = append(cmds, g.connected("102")...)
		cmds = append(cmds, g.routes("102", 30)...)
		cmds = append(cmds, g.routes("100", 8)...)
		cmds = append(cmds, g.routes("101", 8)...)
		cmds = append(cmds, g.routes("main", 6)...)
		if fam == 4 {
			cmds = append(cmds, []string{f, "route", "replace", "default", "via", g.gw[1], "dev", "eth2"})
		}
		cmds = append(cmds, []string{f, "route", "replace", probeNet[fam][1], "via", g.gw[0], "dev", "eth1", "table", "102"})
		// Delete three rules of part 1 (not the opaque one).
		for range 3 {
			i := g.rng.IntN(len(g.rules) - 1)
			cmds = append(cmds, []string{f, "rule", "del", "priority", strconv.Itoa(g.rules[i].prio)})
			g.rules = slices.Delete(g.rules, i, i+1)
		}
		var rs []pRule
		for range 11 {
			rs = append(rs, g.rule([]string{"100", "101", "102", "main"}))
		}
		to := g.dstNets[2]
		op := pRule{fam: fam, prio: g.prio(), to: to, opaque: []string{"uidrange", "1000-2000"}, action: []string{"lookup", "102"}}
		rs = append(rs, op)
		opaque = append(opaque, op)
		g.resolveGotos(rs)
		g.rules = append(g.rules, rs...)
		for _, p := range rs {
			cmds = append(cmds, p.args())
		}
		cmds = append(cmds, []string{f, "rule", "add", "priority", "41", "from", probeSrc[fam][1], "lookup", "102"})
		runAll(cmds...)
	}
	for _, fam := range []int{4, 6} {
		h.probe(t, fmt.Sprintf("IPv%d rules and routes added live", fam), probeTuple(fam, 1), func(a xdpAnswer) bool {
			return a.ret == xdpRedirect && a.to == "h1"
		})
	}
	var live [2][]flowTuple
	var liveX [2][]xdpAnswer
	for i, fam := range []int{4, 6} {
		live[i], liveX[i] = check("rules and tables changed live", fam, 1200)
	}
	elapsed := time.Since(start)

	names := make([]string, 0, len(categories))
	for c := range categories {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		t.Logf("%6d  %s", categories[c], c)
	}
	t.Logf("%d tuples compared in %v", total, elapsed.Round(time.Millisecond))
	if len(failures) > 0 {
		for i, f := range failures {
			if i == 10 {
				break
			}
			t.Errorf("IPv%d %s: kernel %s, XDP %s: %s\n  %s", f.u.fam, f.u, f.k, f.x, f.problem, strings.Join(f.u.ipRouteGet(), " "))
		}
		t.Errorf("%d of %d tuples disagree", len(failures), total)
		for i, f := range failures[:min(3, len(failures))] {
			var rs any
			err := r.ctl(&rs, "routes", f.u.dst.String())
			t.Logf("failure %d: XDP's routes covering %s: %v %+v", i, f.u.dst, err, rs)
		}
		r.dumpPolicy(t)
	}
	for _, fam := range []int{4, 6} {
		for _, want := range []string{"forward via h1", "forward via h2", "forward ECMP", "blackhole: drop/", "unreachable/prohibit/no route: pass", "pass: to the kernel for a rule XDP cannot evaluate"} {
			n := 0
			for c, v := range categories {
				if strings.HasPrefix(c, fmt.Sprintf("IPv%d %s", fam, want)) {
					n += v
				}
			}
			if n == 0 {
				t.Errorf("IPv%d: no tuple in category %q: the test does not cover it", fam, want)
			}
		}
	}

	// The test can fail: without the rules, the kernel decides otherwise
	// for many of these tuples than XDP did with them.
	var dels [][]string
	for _, fam := range []int{4, 6} {
		for _, p := range gens[fam].rules {
			dels = append(dels, []string{"-" + strconv.Itoa(fam), "rule", "del", "priority", strconv.Itoa(p.prio)})
		}
		dels = append(dels, []string{"-" + strconv.Itoa(fam), "rule", "del", "priority", "40"}, []string{"-" + strconv.Itoa(fam), "rule", "del", "priority", "41"})
	}
	runAll(dels...)
	for i, fam := range []int{4, 6} {
		ks, err := h.kernelOnly(live[i])
		if err != nil {
			t.Fatal(err)
		}
		differ := 0
		for j, u := range live[i] {
			if res := h.judge(u, ks[j], liveX[i][j], nil); res.problem != "" {
				differ++
			}
		}
		t.Logf("IPv%d: without the rules, the kernel disagrees with XDP's decisions (taken with the rules) for %d of %d tuples", fam, differ, len(live[i]))
		if differ*10 < len(live[i]) {
			t.Errorf("IPv%d: only %d of %d tuples depend on the rules: the comparison would not notice rules ignored", fam, differ, len(live[i]))
		}
	}
}

// verifyOracle checks kernelRoute against `ip route get` on a few tuples
// per family (and logs them once).
func (h *policyHarness) verifyOracle(t *testing.T, gens map[int]*policyGen, logged *int) {
	t.Helper()
	for _, fam := range []int{4, 6} {
		g := gens[fam]
		for i := 0; i < 40; i++ {
			u := g.tuple()
			var k kernelAnswer
			err := h.r.Do("r", func() error {
				var err error
				k, err = kernelRoute(u, h.x.ifindex[u.iif], false)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			out, cmdErr := h.r.Output("r", u.ipRouteGet()...)
			got := strings.TrimSpace(out)
			if cmdErr != nil {
				got = cmdErr.Error()
			}
			var want string
			switch {
			case k.errno != 0:
				want = map[syscall.Errno]string{unix.ENETUNREACH: "Network is unreachable", unix.EHOSTUNREACH: "No route to host",
					unix.EACCES: "Permission denied", unix.EINVAL: "Invalid argument"}[k.errno]
			case k.typ == unix.RTN_LOCAL:
				want = "local " + u.dst.String()
			case k.gw.IsValid():
				want = fmt.Sprintf("via %s dev %s", k.gw, h.ifname[k.oif])
			default:
				want = "dev " + h.ifname[k.oif]
			}
			if want == "" || !strings.Contains(got, want) {
				t.Fatalf("oracle: RTM_GETROUTE %s = %s, but %s says %q", u, k, strings.Join(u.ipRouteGet(), " "), got)
			}
			if k.errno == 0 && k.typ == unix.RTN_UNICAST && !strings.Contains(got, "table") == (k.table != unix.RT_TABLE_MAIN) {
				t.Fatalf("oracle: RTM_GETROUTE %s = %s, but ip route get says %q", u, k, got)
			}
			if *logged < 8 && (i%5 == 0) {
				*logged++
				t.Logf("oracle check: %s\n    -> %s\n    RTM_GETROUTE: %s", strings.Join(u.ipRouteGet(), " "), strings.ReplaceAll(got, "\n", " "), k)
			}
		}
	}
}

// dumpPolicy logs r's rules and tables (on failure).
func (r *router) dumpPolicy(t *testing.T) {
	t.Helper()
	for _, c := range [][]string{
		{"ip", "-4", "rule"}, {"ip", "-6", "rule"},
		{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
	} {
		out, err := r.Output("r", c...)
		if err != nil {
			t.Logf("%s: %v", strings.Join(c, " "), err)
			continue
		}
		var keep []string
		for _, l := range strings.Split(out, "\n") {
			if !strings.Contains(l, "table local") {
				keep = append(keep, l)
			}
		}
		t.Logf("%s:\n%s", strings.Join(c, " "), strings.Join(keep, "\n"))
	}
}

// TestLookupShowsRule: xdprouterctl lookup with a flow (--from, --in,
// --proto, --sport, --dport, --tos) names the policy rule and the table
// that decide it, and its answer is what the XDP program does with a
// frame of that flow and what the kernel's route lookup says.
func TestLookupShowsRule(t *testing.T) {
	r := newLab(t)
	pin := r.pinned()
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv4.conf.all.forwarding=1"},
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.eth1.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.eth2.rp_filter=0"},
		{"ip", "route", "add", "172.16.0.0/16", "via", lab.H1v4, "dev", "eth1", "table", "100"},
		{"ip", "route", "add", "172.16.0.0/16", "via", lab.H2v4, "dev", "eth2", "table", "101"},
		{"ip", "route", "add", "172.16.0.0/12", "via", lab.H2v4, "dev", "eth2"},
		{"ip", "rule", "add", "priority", "100", "from", "100.64.0.0/16", "iif", "eth1", "ipproto", "udp", "dport", "53", "lookup", "100"},
		{"ip", "rule", "add", "priority", "200", "from", "100.64.0.0/16", "tos", "0x08", "lookup", "101"},
		{"ip", "rule", "add", "priority", "300", "iif", "eth2", "to", "172.16.0.0/16", "blackhole"},
	} {
		if err := r.Run("r", c...); err != nil {
			t.Fatal(err)
		}
	}
	r.start("")
	x := r.xdp(pin)
	h := newPolicyHarness(t, r, x, pin)
	macs := map[string]string{}
	for m, host := range h.macName {
		macs[host] = m
	}
	for _, tc := range []struct {
		u          flowTuple
		rule       string // prefix of Decision.Rule
		table      int
		action, to string // to: the next hop's host
		reason     string
	}{
		{flowTuple{fam: 4, src: netip.MustParseAddr("100.64.1.1"), dst: netip.MustParseAddr("172.16.1.1"), iif: "eth1", proto: unix.IPPROTO_UDP, sport: 1000, dport: 53},
			"100:", 100, bpf.ActionRedirect, "h1", ""},
		{flowTuple{fam: 4, src: netip.MustParseAddr("100.64.1.1"), dst: netip.MustParseAddr("172.16.1.1"), iif: "eth1", proto: unix.IPPROTO_UDP, sport: 1000, dport: 54, tos: 0x08},
			"200:", 101, bpf.ActionRedirect, "h2", ""},
		{flowTuple{fam: 4, src: netip.MustParseAddr("100.65.1.1"), dst: netip.MustParseAddr("172.16.1.1"), iif: "eth2", proto: unix.IPPROTO_TCP, sport: 1000, dport: 53},
			"300:", 0, bpf.ActionDrop, "", bpf.ReasonRule},
		{flowTuple{fam: 4, src: netip.MustParseAddr("100.65.1.1"), dst: netip.MustParseAddr("172.16.1.1"), iif: "eth1", proto: unix.IPPROTO_TCP, sport: 1000, dport: 53},
			"32766:", 254, bpf.ActionRedirect, "h2", ""},
		// No rule finds a route: none decided.
		{flowTuple{fam: 4, src: netip.MustParseAddr("100.64.1.1"), dst: netip.MustParseAddr("198.51.100.1"), iif: "eth1", proto: unix.IPPROTO_UDP, sport: 1000, dport: 53},
			"", 0, bpf.ActionPass, "", bpf.ReasonNoRoute},
	} {
		u := tc.u
		args := []string{"lookup", u.dst.String(), "--from", u.src.String(), "--in", u.iif, "--proto", strconv.Itoa(int(u.proto)),
			"--sport", strconv.Itoa(int(u.sport)), "--dport", strconv.Itoa(int(u.dport)), "--tos", fmt.Sprintf("%#x", u.tos)}
		var d bpf.Decision
		r.poll(5*time.Second, func() error { // the rules reach XDP after the first snapshot
			if err := r.ctl(&d, args...); err != nil {
				return err
			}
			if !strings.HasPrefix(d.Rule, tc.rule) || d.Action != tc.action {
				return fmt.Errorf("xdprouterctl %s: %+v, want rule %s... and %s", strings.Join(args, " "), d, tc.rule, tc.action)
			}
			return nil
		})
		t.Logf("xdprouterctl %s: %s/%s by rule %q, table %d, route %v", strings.Join(args, " "), d.Action, d.Reason, d.Rule, d.Table, d.Prefix)
		if tc.table != 0 && d.Table != tc.table {
			t.Errorf("%s: table %d, want %d", u, d.Table, tc.table)
		}
		if tc.reason != "" && d.Reason != tc.reason {
			t.Errorf("%s: reason %q, want %q", u, d.Reason, tc.reason)
		}
		if tc.to != "" && (len(d.Candidates) != 1 || d.Candidates[0].DstMAC.String() != macs[tc.to]) {
			t.Errorf("%s: candidates %+v, want one to %s (%s)", u, d.Candidates, tc.to, macs[tc.to])
		}
		// The real program and the kernel agree with the lookup.
		ks, xs, err := h.runTuples([]flowTuple{u})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]uint32{bpf.ActionRedirect: xdpRedirect, bpf.ActionDrop: xdpDrop, bpf.ActionPass: xdpPass}[d.Action]
		if xs[0].ret != want || xs[0].to != tc.to {
			t.Errorf("%s: XDP %s, but lookup says %s to %s", u, xs[0], d.Action, tc.to)
		}
		if res := h.judge(u, ks[0], xs[0], nil); res.problem != "" {
			t.Errorf("%s: kernel %s, XDP %s: %s", u, ks[0], xs[0], res.problem)
		}
	}
}
