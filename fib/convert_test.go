package fib

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

func TestFromNetlink(t *testing.T) {
	dst := mustIPNet("198.51.100.0/24")
	gw := net.ParseIP("10.0.0.1")
	tests := []struct {
		name string
		r    netlink.Route
		want string // kind and next hops
		ok   bool
	}{
		{"unicast", netlink.Route{Dst: dst, Gw: gw, LinkIndex: 2, Type: unix.RTN_UNICAST}, "unicast [10.0.0.1@2]", true},
		{"connected", netlink.Route{Dst: dst, LinkIndex: 2, Type: unix.RTN_UNICAST}, "unicast [dev#2]", true},
		{"multipath, one dead", netlink.Route{Dst: dst, Type: unix.RTN_UNICAST, MultiPath: []*netlink.NexthopInfo{
			{Gw: gw, LinkIndex: 2}, {Gw: net.ParseIP("10.0.0.2"), LinkIndex: 3, Flags: unix.RTNH_F_LINKDOWN}}}, "unicast [10.0.0.1@2]", true},
		{"blackhole", netlink.Route{Dst: dst, Type: unix.RTN_BLACKHOLE}, "blackhole []", true},
		{"prohibit", netlink.Route{Dst: dst, Type: unix.RTN_PROHIBIT}, "unreachable []", true},
		{"unreachable", netlink.Route{Dst: dst, Type: unix.RTN_UNREACHABLE}, "unreachable []", true},
		{"throw", netlink.Route{Dst: dst, Type: unix.RTN_THROW, Table: 100}, "throw []", true},
		{"local table: not mirrored", netlink.Route{Dst: mustIPNet("10.0.2.1/32"), LinkIndex: 2, Type: unix.RTN_LOCAL,
			Table: unix.RT_TABLE_LOCAL}, "", false},
		{"MPLS encap", netlink.Route{Dst: dst, Gw: gw, LinkIndex: 2, Type: unix.RTN_UNICAST, Encap: &netlink.MPLSEncap{Labels: []int{100}}}, "kernel-only []", true},
		{"IPv6 gateway for IPv4 (RFC 8950)", netlink.Route{Dst: dst, LinkIndex: 2, Type: unix.RTN_UNICAST,
			Via: &netlink.Via{AddrFamily: unix.AF_INET6, Addr: net.ParseIP("fe80::1")}}, "unicast [fe80::1@2]", true},
		{"IPv6 gateways for IPv4, multipath", netlink.Route{Dst: dst, Type: unix.RTN_UNICAST, MultiPath: []*netlink.NexthopInfo{
			{Via: &netlink.Via{AddrFamily: unix.AF_INET6, Addr: net.ParseIP("fe80::1")}, LinkIndex: 2}, {Gw: gw, LinkIndex: 3}}},
			"unicast [10.0.0.1@3 fe80::1@2]", true},
		{"MPLS via", netlink.Route{Dst: dst, LinkIndex: 2, Type: unix.RTN_UNICAST,
			Via: &netlink.Via{AddrFamily: unix.AF_MPLS, Addr: []byte{0, 0, 1, 0}}}, "kernel-only []", true},
		{"route MTU", netlink.Route{Dst: dst, Gw: gw, LinkIndex: 2, Type: unix.RTN_UNICAST, MTU: 1400}, "kernel-only []", true},
		{"by nexthop id, compat mode 0: no expansion", netlink.Route{Dst: dst, Type: unix.RTN_UNICAST}, "kernel-only []", true},
		{"local", netlink.Route{Dst: dst, LinkIndex: 1, Type: unix.RTN_LOCAL}, "kernel-only []", true},
		{"anycast", netlink.Route{Dst: mustIPNet("10.0.2.0/32"), LinkIndex: 2, Type: unix.RTN_ANYCAST}, "kernel-only []", true},
		{"broadcast", netlink.Route{Dst: mustIPNet("10.0.2.255/32"), LinkIndex: 2, Type: unix.RTN_BROADCAST}, "kernel-only []", true},
		{"multicast", netlink.Route{Dst: mustIPNet("224.0.0.0/4"), LinkIndex: 2, Type: unix.RTN_MULTICAST}, "kernel-only []", true},
		{"NAT", netlink.Route{Dst: dst, Type: unix.RTN_NAT}, "kernel-only []", true},
		{"xresolve", netlink.Route{Dst: dst, Type: unix.RTN_XRESOLVE}, "kernel-only []", true},
		{"IPv6 local", netlink.Route{Dst: mustIPNet("fd00::1/128"), LinkIndex: 1, Type: unix.RTN_LOCAL}, "kernel-only []", true},
		{"unspecified type: not mirrored", netlink.Route{Dst: dst, Type: unix.RTN_UNSPEC}, "", false},
		{"multicast routing family: not mirrored", netlink.Route{Family: 128 /* RTNL_FAMILY_IPMR */, Dst: mustIPNet("224.1.1.1/32"),
			Type: unix.RTN_MULTICAST}, "", false},
	}
	for _, tc := range tests {
		r, ok := fromNetlink(&tc.r)
		if ok != tc.ok {
			t.Errorf("%s: mirrored %v, want %v", tc.name, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if got := r.Kind.String() + " " + nhString(r.NextHops); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		if want := route.NormTable(tc.r.Table); r.Table != want {
			t.Errorf("%s: table %d, want %d", tc.name, r.Table, want)
		}
	}
}

func nhString(nhs []route.NextHop) string {
	s := "["
	for i, n := range nhs {
		if i > 0 {
			s += " "
		}
		s += n.String()
	}
	return s + "]"
}
