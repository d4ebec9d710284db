package fib

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// DefaultProtocol is the kernel route protocol (rtm_protocol) of the routes
// xdprouterd installs unless configured otherwise. It must be a number no
// other routing daemon uses: RTPROT_BGP (186) is shared with FRR's zebra,
// which installs BGP routes with metric 20 as well, and FRR uses 186-198.
// contrib/rt_protos.d/xdprouter.conf names it "xdprouter" for `ip route`.
const DefaultProtocol = 200

// ProtoBGP is RTPROT_BGP (186, "proto bgp"). xdprouterd does not use it:
// routes with it belong to another daemon and are mirrored as kernel routes.
const ProtoBGP = unix.RTPROT_BGP

// protocol returns p, or DefaultProtocol for 0, and checks it fits
// rtm_protocol (one byte; 0 is RTPROT_UNSPEC, which matches any route).
func protocol(p int) (int, error) {
	if p == 0 {
		return DefaultProtocol, nil
	}
	if p < 1 || p > 255 {
		return 0, fmt.Errorf("route protocol %d: must be 1-255", p)
	}
	return p, nil
}

// nud states in which the kernel holds a usable link-layer address.
const validNUD = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE |
	unix.NUD_PERMANENT | unix.NUD_NOARP

// Next-hop flags that make a path unusable.
const deadNH = unix.RTNH_F_DEAD | unix.RTNH_F_LINKDOWN

func addrFromIP(ip net.IP) netip.Addr {
	if ip4 := ip.To4(); ip4 != nil {
		return netip.AddrFrom4([4]byte(ip4))
	}
	a, _ := netip.AddrFromSlice(ip)
	return a
}

func prefixFromIPNet(n *net.IPNet, family int) (netip.Prefix, bool) {
	if n == nil { // default route
		if family == unix.AF_INET6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
	}
	a := addrFromIP(n.IP)
	ones, _ := n.Mask.Size()
	p := netip.PrefixFrom(a, ones)
	return p.Masked(), p.IsValid()
}

// fromNetlink converts a kernel route, with its table (normalised, see
// route.NormTable); ok is false for routes the data path does not mirror:
// the local table (255: the router's own and broadcast addresses, which
// the data path passes to the kernel anyway) and other families than IPv4
// and IPv6 (e.g. multicast routing tables).
func fromNetlink(r *netlink.Route) (route.Route, bool) {
	if r.Table == unix.RT_TABLE_LOCAL {
		return route.Route{}, false
	}
	fam := r.Family
	if fam == 0 && r.Dst != nil {
		fam = unix.AF_INET
		if r.Dst.IP.To4() == nil {
			fam = unix.AF_INET6
		}
	}
	if fam != unix.AF_INET && fam != unix.AF_INET6 {
		return route.Route{}, false
	}
	p, ok := prefixFromIPNet(r.Dst, fam)
	if !ok {
		return route.Route{}, false
	}
	out := route.Route{Table: route.NormTable(r.Table), Prefix: p, Protocol: int(r.Protocol), Metric: r.Priority}
	switch r.Type {
	case unix.RTN_UNICAST:
		out.Kind = route.Unicast
	case unix.RTN_BLACKHOLE:
		out.Kind = route.Blackhole
		return out, true
	case unix.RTN_UNREACHABLE, unix.RTN_PROHIBIT:
		out.Kind = route.Unreachable
		return out, true
	case unix.RTN_THROW:
		out.Kind = route.Throw
		return out, true
	case unix.RTN_UNSPEC:
		return route.Route{}, false
	default:
		// local, anycast, broadcast, multicast, NAT, xresolve: only the
		// kernel knows what to do. Skipping them would let XDP forward
		// their packets by a shorter match.
		out.Kind = route.KernelOnly
		return out, true
	}
	if kernelOnly(r) {
		// XDP cannot do what this route asks (encapsulate, an MPLS via,
		// respect a route MTU): mirroring it as a
		// pass keeps XDP from forwarding such packets by a shorter match.
		out.Kind = route.KernelOnly
		return out, true
	}
	if len(r.MultiPath) == 0 && r.LinkIndex == 0 {
		// A route by nexthop object with nexthop_compat_mode 0: the
		// kernel does not tell where it goes (only the nhid, which the
		// netlink library drops).
		out.Kind = route.KernelOnly
		return out, true
	}
	if len(r.MultiPath) > 0 {
		for _, nh := range r.MultiPath {
			if nh.Flags&deadNH != 0 {
				continue
			}
			out.NextHops = append(out.NextHops, nextHop(gateway(nh.Gw, nh.Via), nh.LinkIndex))
		}
	} else if r.Flags&deadNH == 0 {
		out.NextHops = append(out.NextHops, nextHop(gateway(r.Gw, r.Via), r.LinkIndex))
	}
	out.NextHops = route.SortNextHops(out.NextHops)
	return out, true
}

// gateway is a next hop's gateway: RTA_GATEWAY, or RTA_VIA for an IPv4
// route through an IPv6 gateway (RFC 8950: `via inet6 fe80::1`).
func gateway(gw net.IP, via netlink.Destination) net.IP {
	if v, ok := via.(*netlink.Via); ok && len(gw) == 0 {
		return v.Addr
	}
	return gw
}

func nextHop(gw net.IP, ifindex int) route.NextHop {
	nh := route.NextHop{Ifindex: ifindex}
	if len(gw) > 0 && !gw.IsUnspecified() {
		nh.Gateway = addrFromIP(gw)
	}
	return nh
}

func linkFromNetlink(l netlink.Link) route.Link {
	a := l.Attrs()
	return route.Link{
		Index: a.Index,
		Name:  a.Name,
		MAC:   a.HardwareAddr,
		MTU:   a.MTU,
		Up:    a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0,
	}
}

func neighFromNetlink(n *netlink.Neigh) (route.Neighbor, bool) {
	if n.IP == nil || n.Flags&unix.NTF_PROXY != 0 {
		return route.Neighbor{}, false
	}
	a := addrFromIP(n.IP)
	if !a.IsValid() || a.IsMulticast() || a.IsUnspecified() || a.IsLoopback() {
		return route.Neighbor{}, false // never a unicast next hop
	}
	nb := route.Neighbor{Ifindex: n.LinkIndex, Addr: a}
	if n.State&validNUD != 0 && len(n.HardwareAddr) == 6 {
		nb.MAC = n.HardwareAddr
		nb.Valid = true
		nb.Stale = n.State&unix.NUD_STALE != 0
	}
	return nb, true
}

// kernelOnly reports whether a unicast route needs forwarding the XDP
// program does not do. An IPv4 route via an IPv6 gateway is not one: XDP
// forwards by the gateway's neighbor entry, whatever its family.
func kernelOnly(r *netlink.Route) bool {
	if r.Encap != nil || !viaIPv6(r.Via) || r.MTU > 0 {
		return true
	}
	for _, nh := range r.MultiPath {
		if nh.Encap != nil || !viaIPv6(nh.Via) {
			return true
		}
	}
	return false
}

// viaIPv6 reports whether via is absent or an IPv6 gateway (other
// families, e.g. MPLS, are the kernel's).
func viaIPv6(via netlink.Destination) bool {
	if via == nil {
		return true
	}
	v, ok := via.(*netlink.Via)
	return ok && v.AddrFamily == unix.AF_INET6 && len(v.Addr) == net.IPv6len
}
