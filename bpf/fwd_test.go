package bpf

import (
	"bytes"
	"encoding/binary"
	"github.com/xdprouter/xdprouter/route"
	"net"
	"net/netip"
	"testing"
)

// Group and next-hop ids of the test table (see setupTable).
const (
	gA, gB, gConn, gUnres, gEgress, gEmpty, gECMP, gECMP6 = 1, 2, 3, 4, 5, 6, 7, 8
	gMissing                                              = 999999 // beyond max_entries
)

var ecmpMACs = []net.HardwareAddr{
	mustMAC("02:00:00:00:e0:00"), mustMAC("02:00:00:00:e0:01"),
	mustMAC("02:00:00:00:e0:02"), mustMAC("02:00:00:00:e0:03"),
}

var (
	pfx = netip.MustParsePrefix
	ip  = netip.MustParseAddr
)

// setupTable fills the maps with a small table covering every outcome.
func setupTable(tb testing.TB, d *Datapath, p ports) {
	tb.Helper()
	nhs := map[uint32]route.Egress{
		1:  {Ifindex: p.a, MAC: macGwA},
		2:  {Ifindex: p.b, MAC: macGwB},
		3:  {Ifindex: p.a, Connected: true},
		4:  {Ifindex: p.a},                   // unresolved
		5:  {Ifindex: p.unused, MAC: macGwA}, // not a router port
		10: {Ifindex: p.a, MAC: ecmpMACs[0]},
		11: {Ifindex: p.b, MAC: ecmpMACs[1]},
		12: {Ifindex: p.a, MAC: ecmpMACs[2]},
		13: {Ifindex: p.b, MAC: ecmpMACs[3]},
	}
	for id, nh := range nhs {
		if err := d.SetNextHop(id, nh); err != nil {
			tb.Fatal(err)
		}
	}
	groups := map[uint32][]uint32{
		gA: {1}, gB: {2}, gConn: {3}, gUnres: {4}, gEgress: {5}, gEmpty: {},
		gECMP: {10, 11, 12, 13}, gECMP6: {10, 11, 12, 13},
	}
	for id, g := range groups {
		if err := d.SetGroup(id, g); err != nil {
			tb.Fatal(err)
		}
	}
	routes := []route.Entry{
		{Prefix: pfx("10.1.0.0/16"), Group: gA},
		{Prefix: pfx("10.1.5.0/24"), Group: gB}, // more specific wins
		{Prefix: pfx("10.2.0.0/16"), Group: gB},
		{Prefix: pfx("10.3.0.0/24"), Group: gConn},
		{Prefix: pfx("10.4.0.0/16"), Group: gUnres},
		{Prefix: pfx("10.5.0.0/16"), Group: gEgress},
		{Prefix: pfx("10.6.0.0/16"), Group: gEmpty},
		{Prefix: pfx("10.7.0.0/16"), Group: gMissing},
		{Prefix: pfx("10.8.0.0/16"), Group: gECMP},
		{Prefix: pfx("192.0.2.1/32"), Kind: route.Local},
		{Prefix: pfx("198.51.100.0/24"), Kind: route.Blackhole},
		{Prefix: pfx("203.0.113.0/24"), Kind: route.Unreachable},
		{Prefix: pfx("10.9.0.0/16"), Kind: route.KernelOnly},

		{Prefix: pfx("2001:db8:1::/48"), Group: gA},
		{Prefix: pfx("2001:db8:1:5::/64"), Group: gB},
		{Prefix: pfx("2001:db8:2::/48"), Group: gB},
		{Prefix: pfx("2001:db8:3::/64"), Group: gConn},
		{Prefix: pfx("2001:db8:4::/48"), Group: gUnres},
		{Prefix: pfx("2001:db8:5::/48"), Group: gEgress},
		{Prefix: pfx("2001:db8:6::/48"), Group: gEmpty},
		{Prefix: pfx("2001:db8:7::/48"), Group: gMissing},
		{Prefix: pfx("2001:db8:8::/48"), Group: gECMP6},
		{Prefix: pfx("2001:db8:ffff::1/128"), Kind: route.Local},
		{Prefix: pfx("2001:db8:dead::/48"), Kind: route.Blackhole},
		{Prefix: pfx("2001:db8:beef::/48"), Kind: route.Unreachable},
		{Prefix: pfx("2001:db8:9::/48"), Kind: route.KernelOnly},
	}
	if _, err := d.UpdateRoutes(routes); err != nil {
		tb.Fatal(err)
	}
	for _, a := range []string{"10.3.0.7", "2001:db8:3::7"} {
		if err := d.SetNeighbor(p.a, ip(a), macNbr); err != nil {
			tb.Fatal(err)
		}
	}
}

var (
	src4 = ip("172.16.0.1")
	src6 = ip("2001:db8:aaaa::1")
)

func v4(dst string) pkt { return pkt{src: src4, dst: ip(dst), sport: 1000, dport: 53} }
func v6(dst string) pkt { return pkt{v6: true, src: src6, dst: ip(dst), sport: 1000, dport: 53} }

func (p pkt) with(f func(*pkt)) pkt { f(&p); return p }

// redirect is where a forwarded test frame must go.
type redirect struct{ dmac, smac net.HardwareAddr }

// forwardCase is a case of TestForward (and TestExplainAgrees).
type forwardCase struct {
	name   string
	pkt    pkt
	raw    []byte // overrides pkt
	ret    uint32
	stat   string // action/reason
	expect *redirect
}

// forwardCases covers every outcome over setupTable's table, frames
// arriving on no port.
func forwardCases() []forwardCase {
	toA := &redirect{macGwA, macA}
	toB := &redirect{macGwB, macB}
	toNbr := &redirect{macNbr, macA}

	return []forwardCase{
		// Redirects.
		{name: "v4 unicast", pkt: v4("10.1.2.3"), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v4 more specific", pkt: v4("10.1.5.9"), ret: xdpRedirect, stat: "redirect/", expect: toB},
		{name: "v4 other port", pkt: v4("10.2.0.1"), ret: xdpRedirect, stat: "redirect/", expect: toB},
		{name: "v4 connected", pkt: v4("10.3.0.7"), ret: xdpRedirect, stat: "redirect/", expect: toNbr},
		{name: "v4 TTL 2", pkt: v4("10.1.2.3").with(func(p *pkt) { p.ttl = 2 }), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v4 TCP", pkt: v4("10.1.2.3").with(func(p *pkt) { p.proto = protoTCP }), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v4 ICMP", pkt: v4("10.1.2.3").with(func(p *pkt) { p.proto = protoICMP }), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v4 fragment", pkt: v4("10.1.2.3").with(func(p *pkt) { p.frag = 0x2000 }), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v4 at MTU", pkt: v4("10.1.2.3").with(func(p *pkt) { p.payload = 1500 - 28 }), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v4 ethernet padding", pkt: v4("10.1.2.3").with(func(p *pkt) {
			p.mutate = func(b []byte) { binary.BigEndian.PutUint16(b[16:], 28-4); fixCsum(b) }
		}), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v6 unicast", pkt: v6("2001:db8:1::1"), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v6 more specific", pkt: v6("2001:db8:1:5::1"), ret: xdpRedirect, stat: "redirect/", expect: toB},
		{name: "v6 connected", pkt: v6("2001:db8:3::7"), ret: xdpRedirect, stat: "redirect/", expect: toNbr},
		{name: "v6 at MTU", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.payload = 1500 - 48 }), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v6 ICMPv6", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.proto = 58 }), ret: xdpRedirect, stat: "redirect/", expect: toA},

		// Route types.
		{name: "v4 blackhole", pkt: v4("198.51.100.7"), ret: xdpDrop, stat: "drop/blackhole"},
		{name: "v4 blackhole TTL 1", pkt: v4("198.51.100.7").with(func(p *pkt) { p.ttl = 1 }), ret: xdpDrop, stat: "drop/blackhole"},
		{name: "v6 blackhole", pkt: v6("2001:db8:dead::1"), ret: xdpDrop, stat: "drop/blackhole"},
		// Martian sources: dropped, as the kernel does whatever its settings.
		{name: "v4 source 0/8", pkt: v4("10.1.2.3").with(func(p *pkt) { p.src = ip("0.1.2.3") }), ret: xdpDrop, stat: "drop/martian_source"},
		{name: "v4 source loopback", pkt: v4("10.1.2.3").with(func(p *pkt) { p.src = ip("127.0.0.1") }), ret: xdpDrop, stat: "drop/martian_source"},
		{name: "v4 source multicast", pkt: v4("10.1.2.3").with(func(p *pkt) { p.src = ip("239.1.1.1") }), ret: xdpDrop, stat: "drop/martian_source"},
		{name: "v4 source broadcast", pkt: v4("10.1.2.3").with(func(p *pkt) { p.src = ip("255.255.255.255") }), ret: xdpDrop, stat: "drop/martian_source"},
		{name: "v4 source 240/4 (not martian)", pkt: v4("10.1.2.3").with(func(p *pkt) { p.src = ip("240.0.0.1") }), ret: xdpRedirect, stat: "redirect/", expect: toA},
		{name: "v6 source multicast", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.src = ip("ff02::1") }), ret: xdpDrop, stat: "drop/martian_source"},
		{name: "v6 source loopback", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.src = ip("::1") }), ret: xdpDrop, stat: "drop/martian_source"},
		{name: "v6 source v4-mapped", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.src = ip("::ffff:10.0.0.1") }), ret: xdpDrop, stat: "drop/martian_source"},
		{name: "v4 local", pkt: v4("192.0.2.1"), ret: xdpPass, stat: "pass/local"},
		{name: "v4 local TTL 1", pkt: v4("192.0.2.1").with(func(p *pkt) { p.ttl = 1 }), ret: xdpPass, stat: "pass/local"},
		{name: "v6 local", pkt: v6("2001:db8:ffff::1"), ret: xdpPass, stat: "pass/local"},
		{name: "v4 unreachable", pkt: v4("203.0.113.9"), ret: xdpPass, stat: "pass/unreachable"},
		{name: "v6 unreachable", pkt: v6("2001:db8:beef::9"), ret: xdpPass, stat: "pass/unreachable"},
		{name: "v4 kernel-only route", pkt: v4("10.9.1.1"), ret: xdpPass, stat: "pass/kernel_route"},
		{name: "v6 kernel-only route", pkt: v6("2001:db8:9::1"), ret: xdpPass, stat: "pass/kernel_route"},
		{name: "v4 no route", pkt: v4("100.64.0.1"), ret: xdpPass, stat: "pass/no_route"},
		{name: "v4 no route beside local", pkt: v4("192.0.2.2"), ret: xdpPass, stat: "pass/no_route"},
		{name: "v6 no route", pkt: v6("2001:db9::1"), ret: xdpPass, stat: "pass/no_route"},

		// TTL.
		{name: "v4 TTL 1", pkt: v4("10.1.2.3").with(func(p *pkt) { p.ttl = 1 }), ret: xdpPass, stat: "pass/ttl_exceeded"},
		{name: "v4 TTL 0", pkt: v4("10.1.2.3").with(func(p *pkt) { p.mutate = func(b []byte) { b[22] = 0; fixCsum(b) } }), ret: xdpPass, stat: "pass/ttl_exceeded"},
		{name: "v6 hop limit 1", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.ttl = 1 }), ret: xdpPass, stat: "pass/ttl_exceeded"},

		// Next-hop failures.
		{name: "v4 empty group", pkt: v4("10.6.0.1"), ret: xdpPass, stat: "pass/no_nexthop"},
		{name: "v4 group beyond max", pkt: v4("10.7.0.1"), ret: xdpPass, stat: "pass/no_nexthop"},
		{name: "v6 empty group", pkt: v6("2001:db8:6::1"), ret: xdpPass, stat: "pass/no_nexthop"},
		{name: "v6 group beyond max", pkt: v6("2001:db8:7::1"), ret: xdpPass, stat: "pass/no_nexthop"},
		{name: "v4 unresolved", pkt: v4("10.4.0.1"), ret: xdpPass, stat: "pass/neighbor_unresolved"},
		{name: "v4 connected no neighbor", pkt: v4("10.3.0.8"), ret: xdpPass, stat: "pass/neighbor_unresolved"},
		{name: "v6 unresolved", pkt: v6("2001:db8:4::1"), ret: xdpPass, stat: "pass/neighbor_unresolved"},
		{name: "v6 connected no neighbor", pkt: v6("2001:db8:3::8"), ret: xdpPass, stat: "pass/neighbor_unresolved"},
		{name: "v4 egress not a port", pkt: v4("10.5.0.1"), ret: xdpPass, stat: "pass/egress_not_xdp"},
		{name: "v6 egress not a port", pkt: v6("2001:db8:5::1"), ret: xdpPass, stat: "pass/egress_not_xdp"},
		{name: "v4 too big", pkt: v4("10.1.2.3").with(func(p *pkt) { p.payload = 1500 - 28 + 1 }), ret: xdpPass, stat: "pass/too_big"},
		{name: "v6 too big", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.payload = 1500 - 48 + 1 }), ret: xdpPass, stat: "pass/too_big"},

		// Not for the fast path.
		{name: "ARP", pkt: v4("10.1.2.3").with(func(p *pkt) { p.ethertype = 0x0806 }), ret: xdpPass, stat: "pass/not_ip"},
		{name: "VLAN", pkt: v4("10.1.2.3").with(func(p *pkt) { p.vlan = true }), ret: xdpPass, stat: "pass/vlan_unknown"},
		{name: "v4 options", pkt: v4("10.1.2.3").with(func(p *pkt) { p.options = 4 }), ret: xdpPass, stat: "pass/ip_options"},
		{name: "v4 options TTL 1", pkt: v4("10.1.2.3").with(func(p *pkt) { p.options = 8; p.ttl = 1 }), ret: xdpPass, stat: "pass/ip_options"},
		{name: "v6 hop-by-hop", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.proto = 255; p.mutate = setNextHeader(0) }), ret: xdpPass, stat: "pass/ipv6_ext_header"},
		{name: "v6 routing", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.proto = 43 }), ret: xdpPass, stat: "pass/ipv6_ext_header"},
		{name: "v6 fragment", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.proto = 44 }), ret: xdpPass, stat: "pass/ipv6_ext_header"},
		{name: "v6 dstopts", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.proto = 60 }), ret: xdpPass, stat: "pass/ipv6_ext_header"},
		{name: "v6 mobility", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.proto = 135 }), ret: xdpPass, stat: "pass/ipv6_ext_header"},
		{name: "v6 HIP", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.proto = 139 }), ret: xdpPass, stat: "pass/ipv6_ext_header"},
		{name: "v6 shim6", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.proto = 140 }), ret: xdpPass, stat: "pass/ipv6_ext_header"},
		{name: "v4 multicast", pkt: v4("224.0.0.5"), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v4 multicast 239", pkt: v4("239.1.2.3"), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v4 broadcast", pkt: v4("255.255.255.255"), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v4 link-local", pkt: v4("169.254.1.1"), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v4 this network", pkt: v4("0.1.2.3"), ret: xdpDrop, stat: "drop/martian_destination"},
		{name: "v4 loopback", pkt: v4("127.0.0.1"), ret: xdpDrop, stat: "drop/martian_destination"},
		{name: "v4 loopback with options", pkt: v4("127.0.0.1").with(func(p *pkt) { p.options = 4 }), ret: xdpDrop, stat: "drop/martian_destination"},
		{name: "v4 0.0.0.0 from 0.0.0.0", pkt: v4("0.0.0.0").with(func(p *pkt) { p.src = ip("0.0.0.0") }), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v4 DHCP discover", pkt: v4("255.255.255.255").with(func(p *pkt) { p.src = ip("0.0.0.0") }), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v4 multicast with options", pkt: v4("224.0.0.5").with(func(p *pkt) { p.options = 4 }), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v6 multicast", pkt: v6("ff02::1"), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v6 global multicast", pkt: v6("ff0e::1"), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v6 link-local", pkt: v6("fe80::1"), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v6 link-local febf", pkt: v6("febf::1"), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v6 loopback", pkt: v6("::1"), ret: xdpDrop, stat: "drop/martian_destination"},
		{name: "v6 unspecified", pkt: v6("::"), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v6 link-local source", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.src = ip("fe80::1") }), ret: xdpPass, stat: "pass/link_local_multicast"},
		{name: "v6 multicast hop-by-hop", pkt: v6("ff02::16").with(func(p *pkt) { p.mutate = setNextHeader(0) }), ret: xdpPass, stat: "pass/link_local_multicast"},

		// Malformed.
		{name: "v4 truncated header", raw: v4("10.1.2.3").build()[:14+19], ret: xdpPass, stat: "pass/malformed"},
		{name: "v4 version 5", pkt: v4("10.1.2.3").with(func(p *pkt) { p.mutate = func(b []byte) { b[14] = 0x55; fixCsum(b) } }), ret: xdpPass, stat: "pass/malformed"},
		{name: "v4 ihl 4", pkt: v4("10.1.2.3").with(func(p *pkt) { p.mutate = func(b []byte) { b[14] = 0x44; fixCsum(b) } }), ret: xdpPass, stat: "pass/malformed"},
		{name: "v4 tot_len < ihl", pkt: v4("10.1.2.3").with(func(p *pkt) { p.mutate = setTotLen(19) }), ret: xdpPass, stat: "pass/malformed"},
		{name: "v4 tot_len < options", pkt: v4("10.1.2.3").with(func(p *pkt) { p.options = 8; p.mutate = setTotLen(24) }), ret: xdpPass, stat: "pass/malformed"},
		{name: "v4 tot_len beyond frame", pkt: v4("10.1.2.3").with(func(p *pkt) { p.mutate = setTotLen(20 + 8 + 1) }), ret: xdpPass, stat: "pass/malformed"},
		{name: "v4 truncated to multicast", raw: v4("224.0.0.5").build()[:40], ret: xdpPass, stat: "pass/malformed"},
		{name: "v6 truncated header", raw: v6("2001:db8:1::1").build()[:14+39], ret: xdpPass, stat: "pass/malformed"},
		{name: "v6 version 4", pkt: v6("2001:db8:1::1").with(func(p *pkt) { p.mutate = func(b []byte) { b[14] = 0x40 } }), ret: xdpPass, stat: "pass/malformed"},
		{name: "v6 payload beyond frame", pkt: v6("2001:db8:1::1").with(func(p *pkt) {
			p.mutate = func(b []byte) { binary.BigEndian.PutUint16(b[18:], 9) }
		}), ret: xdpPass, stat: "pass/malformed"},
		{name: "v6 ethertype with v4 packet", raw: v4("10.1.2.3").with(func(p *pkt) { p.ethertype = 0x86dd }).build(), ret: xdpPass, stat: "pass/malformed"},
		{name: "runt ethernet", raw: make([]byte, 14), ret: xdpPass, stat: "pass/not_ip"},
	}
}

func TestForward(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)

	tests := forwardCases()

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := tc.raw
			if frame == nil {
				frame = tc.pkt.build()
			}
			before := statsMap(t, d)
			ret, out := run(t, d, frame)
			if ret != tc.ret {
				t.Fatalf("verdict %s, want %s", xdpNames[ret], xdpNames[tc.ret])
			}
			after := statsMap(t, d)
			for k, a := range after {
				b := before[k]
				wantPkts, wantBytes := uint64(0), uint64(0)
				if k == tc.stat {
					wantPkts, wantBytes = 1, uint64(len(frame))
				}
				if a.Packets-b.Packets != wantPkts || a.Bytes-b.Bytes != wantBytes {
					t.Errorf("stat %s: +%d packets +%d bytes, want +%d +%d", k, a.Packets-b.Packets, a.Bytes-b.Bytes, wantPkts, wantBytes)
				}
			}
			if _, ok := after[tc.stat]; !ok {
				t.Fatalf("no stat %q", tc.stat)
			}
			if tc.expect == nil {
				if !bytes.Equal(out, frame) {
					t.Errorf("frame modified although not redirected")
				}
				return
			}
			checkRewrite(t, frame, out, tc.expect.dmac, tc.expect.smac)
		})
	}
}

// checkRewrite verifies a forwarded frame: MACs replaced, TTL or hop
// limit decremented, IPv4 checksum valid, nothing else changed.
func checkRewrite(t *testing.T, in, out []byte, dmac, smac net.HardwareAddr) {
	t.Helper()
	if len(out) != len(in) {
		t.Fatalf("frame length %d, want %d", len(out), len(in))
	}
	if got := net.HardwareAddr(out[0:6]); !bytes.Equal(got, dmac) {
		t.Errorf("dst MAC %v, want %v", got, dmac)
	}
	if got := net.HardwareAddr(out[6:12]); !bytes.Equal(got, smac) {
		t.Errorf("src MAC %v, want %v", got, smac)
	}
	want := append([]byte(nil), in...)
	copy(want[0:], dmac)
	copy(want[6:], smac)
	switch binary.BigEndian.Uint16(in[12:]) {
	case 0x0800:
		want[14+8]--
		hl := int(in[14]&0xf) * 4
		if !ipv4ChecksumOK(out[14 : 14+hl]) {
			t.Errorf("IPv4 checksum %#04x invalid after rewrite, want %#04x", binary.BigEndian.Uint16(out[24:]), ipv4Checksum(out[14:14+hl]))
		}
		copy(want[24:26], out[24:26]) // checked above
	case 0x86dd:
		want[14+7]--
	}
	if !bytes.Equal(out, want) {
		t.Errorf("rewritten frame\n%x\nwant\n%x", out, want)
	}
}

func fixCsum(b []byte) {
	hl := int(b[14]&0xf) * 4
	if hl < 20 {
		hl = 20
	}
	binary.BigEndian.PutUint16(b[24:], ipv4Checksum(b[14:14+hl]))
}

func setTotLen(n uint16) func([]byte) {
	return func(b []byte) { binary.BigEndian.PutUint16(b[16:], n); fixCsum(b) }
}

func setNextHeader(nh byte) func([]byte) {
	return func(b []byte) { b[14+6] = nh }
}

// TestChecksumEdgeCases forwards IPv4 packets for every TTL, including
// headers whose checksum is 0xfeff, where the incremental update needs the
// end-around carry (ip_decrease_ttl's `check >= 0xFFFF`).
func TestChecksumEdgeCases(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	carries := 0
	for ttl := 2; ttl <= 255; ttl++ {
		ids := []int{0, 0xffff, ttl * 257}
		// Find an IP ID that makes the checksum 0xfeff.
		b := v4("10.1.2.3").with(func(p *pkt) { p.ttl = uint8(ttl) }).build()
		for id := 0; id < 0x10000; id++ {
			binary.BigEndian.PutUint16(b[18:], uint16(id))
			if ipv4Checksum(b[14:34]) == 0xfeff {
				ids = append(ids, id)
				carries++
				break
			}
		}
		for _, id := range ids {
			frame := v4("10.1.2.3").with(func(p *pkt) {
				p.ttl = uint8(ttl)
				p.mutate = func(b []byte) { binary.BigEndian.PutUint16(b[18:], uint16(id)); fixCsum(b) }
			}).build()
			ret, out := run(t, d, frame)
			if ret != xdpRedirect {
				t.Fatalf("ttl %d id %#x: verdict %s", ttl, id, xdpNames[ret])
			}
			if out[22] != byte(ttl-1) || !ipv4ChecksumOK(out[14:34]) {
				t.Fatalf("ttl %d id %#x: ttl %d checksum %#04x (was %#04x), want %#04x", ttl, id, out[22],
					binary.BigEndian.Uint16(out[24:]), binary.BigEndian.Uint16(frame[24:]), ipv4Checksum(out[14:34]))
			}
		}
	}
	if carries == 0 {
		t.Fatal("no header with checksum 0xfeff found: the carry case is untested")
	}
}

// TestOtherHost: on a router port, only frames addressed to the port's MAC
// are routed; frames for other hosts (flooded unicast, promiscuous mode)
// go to the kernel, which drops them.
func TestOtherHost(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	runOn := func(frame []byte) (uint32, error) {
		// The ingress ifindex is resolved in the caller's namespace.
		ret, _ := checkedRun(t, d, frame, p.a, p.ns.Do)
		return ret, nil
	}
	for _, tc := range []struct {
		name string
		dst  net.HardwareAddr
		want uint32
		stat string
	}{
		{"to the port", macA, xdpRedirect, "redirect/"},
		{"to another host", macPeer, xdpPass, "pass/other_host"},
		{"broadcast", mustMAC("ff:ff:ff:ff:ff:ff"), xdpPass, "pass/other_host"},
	} {
		for _, pk := range []pkt{v4("10.2.0.1"), v6("2001:db8:2::1")} {
			frame := pk.build()
			copy(frame, tc.dst)
			before := statsMap(t, d)[tc.stat].Packets
			ret, err := runOn(frame)
			if err != nil {
				t.Fatal(err)
			}
			if ret != tc.want {
				t.Errorf("%s (v6=%v): %s, want %s", tc.name, pk.v6, xdpNames[ret], xdpNames[tc.want])
			}
			if got := statsMap(t, d)[tc.stat].Packets - before; got != 1 {
				t.Errorf("%s (v6=%v): counter %s +%d, want +1", tc.name, pk.v6, tc.stat, got)
			}
		}
	}
}

// TestEgressMissingFromDevmap: a port in ifaces but not in tx_ports (the
// redirect target cannot be set) passes the frame to the kernel untouched:
// no TTL decrement, no MAC rewrite for the kernel to trip over.
func TestEgressMissingFromDevmap(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	key := uint32(p.b)
	if err := d.objs.TxPorts.Delete(&key); err != nil {
		t.Fatal(err)
	}
	frame := v4("10.2.0.1").build()
	before := statsMap(t, d)["pass/egress_not_xdp"].Packets
	ret, out := run(t, d, frame)
	if ret != xdpPass {
		t.Fatalf("verdict %s, want XDP_PASS", xdpNames[ret])
	}
	if !bytes.Equal(out, frame) {
		t.Error("frame modified on the way to the kernel")
	}
	if got := statsMap(t, d)["pass/egress_not_xdp"].Packets - before; got != 1 {
		t.Errorf("egress_not_xdp +%d, want +1", got)
	}
}
