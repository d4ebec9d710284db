package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// RouteQuery is a packet as `ip route get` describes it: the kernel's
// input route lookup when Iif is set (a forwarded packet), else the
// output lookup of a locally generated one.
type RouteQuery struct {
	Src, Dst     netip.Addr
	Iif          int
	Proto        uint8
	Sport, Dport uint16 // TCP, UDP, SCTP only
	Tos          uint8
}

// KernelRoute is the kernel's answer.
type KernelRoute struct {
	// Error is the kernel's refusal (e.g. "network is unreachable",
	// "invalid argument" for a martian, "invalid cross-device link" for a
	// reverse-path failure); empty if it found a route.
	Error   string     `json:",omitempty"`
	Type    string     `json:",omitempty"` // unicast, local, blackhole, unreachable, prohibit, ...
	Table   int        `json:",omitempty"`
	Gateway netip.Addr `json:",omitempty"`
	Ifindex int        `json:",omitempty"` // the output device
	// Hops are every next hop of the matched route (RTM_F_FIB_MATCH);
	// the kernel picked Gateway/Ifindex among them for this flow.
	Hops []KernelHop `json:",omitempty"`
}

// KernelHop is a next hop of a kernel route.
type KernelHop struct {
	Gateway netip.Addr `json:",omitempty"`
	Ifindex int
}

var routeTypes = map[uint8]string{
	unix.RTN_UNICAST: "unicast", unix.RTN_LOCAL: "local", unix.RTN_BROADCAST: "broadcast",
	unix.RTN_ANYCAST: "anycast", unix.RTN_MULTICAST: "multicast", unix.RTN_BLACKHOLE: "blackhole",
	unix.RTN_UNREACHABLE: "unreachable", unix.RTN_PROHIBIT: "prohibit", unix.RTN_THROW: "throw",
	unix.RTN_NAT: "nat",
}

// via decodes RTA_VIA (struct rtvia: family, address): an IPv4 route's
// IPv6 gateway.
func via(b []byte) netip.Addr {
	if len(b) < 2 {
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(b[2:])
	return a
}

// RouteGet asks the kernel of the calling thread's network namespace for
// q's route, as `ip route get DST from SRC iif DEV ipproto P sport S
// dport D tos T` does (RTM_GETROUTE), and for the matched route's next
// hops (`ip route get ... fibmatch`).
func RouteGet(q RouteQuery) (KernelRoute, error) {
	k, err := routeGet(q, false)
	if err != nil || k.Error != "" {
		return k, err
	}
	if m, err := routeGet(q, true); err == nil && m.Error == "" {
		k.Hops = m.Hops
	}
	return k, nil
}

func routeGet(q RouteQuery, fibMatch bool) (KernelRoute, error) {
	if !q.Dst.IsValid() {
		return KernelRoute{}, errors.New("route get: no destination")
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_REQUEST)
	msg := &nl.RtMsg{}
	msg.Family, msg.Dst_len = unix.AF_INET, 32
	if !q.Dst.Is4() {
		msg.Family, msg.Dst_len = unix.AF_INET6, 128
	}
	msg.Tos = q.Tos
	msg.Flags = unix.RTM_F_LOOKUP_TABLE
	if fibMatch {
		msg.Flags = unix.RTM_F_FIB_MATCH
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.RTA_DST, q.Dst.Unmap().AsSlice()))
	if q.Src.IsValid() && q.Src.Is4() == q.Dst.Is4() {
		msg.Src_len = msg.Dst_len
		req.AddData(nl.NewRtAttr(unix.RTA_SRC, q.Src.Unmap().AsSlice()))
	}
	if q.Iif != 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_IIF, nl.Uint32Attr(uint32(q.Iif))))
	}
	if q.Proto != 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_IP_PROTO, []byte{q.Proto}))
	}
	if q.Proto == unix.IPPROTO_TCP || q.Proto == unix.IPPROTO_UDP || q.Proto == unix.IPPROTO_SCTP {
		req.AddData(nl.NewRtAttr(unix.RTA_SPORT, binary.BigEndian.AppendUint16(nil, q.Sport)))
		req.AddData(nl.NewRtAttr(unix.RTA_DPORT, binary.BigEndian.AppendUint16(nil, q.Dport)))
	}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE)
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return KernelRoute{Error: errno.Error()}, nil
	}
	if err != nil {
		return KernelRoute{}, fmt.Errorf("route get: %w", err)
	}
	if len(msgs) != 1 || len(msgs[0]) < unix.SizeofRtMsg {
		return KernelRoute{}, fmt.Errorf("route get: %d answers", len(msgs))
	}
	m := nl.DeserializeRtMsg(msgs[0])
	k := KernelRoute{Type: routeTypes[m.Type], Table: int(m.Table)}
	if k.Type == "" {
		k.Type = fmt.Sprintf("type %d", m.Type)
	}
	attrs, err := nl.ParseRouteAttr(msgs[0][unix.SizeofRtMsg:])
	if err != nil {
		return KernelRoute{}, fmt.Errorf("route get: %w", err)
	}
	addr := func(b []byte) netip.Addr { a, _ := netip.AddrFromSlice(b); return a.Unmap() }
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			k.Table = int(binary.NativeEndian.Uint32(a.Value))
		case unix.RTA_GATEWAY:
			k.Gateway = addr(a.Value)
		case unix.RTA_VIA:
			k.Gateway = via(a.Value)
		case unix.RTA_OIF:
			k.Ifindex = int(binary.NativeEndian.Uint32(a.Value))
		case unix.RTA_MULTIPATH:
			b := a.Value
			for len(b) >= unix.SizeofRtNexthop {
				n := nl.DeserializeRtNexthop(b)
				l := int(n.RtNexthop.Len)
				if l < unix.SizeofRtNexthop || l > len(b) {
					break
				}
				h := KernelHop{Ifindex: int(n.Ifindex)}
				sub, _ := nl.ParseRouteAttr(b[unix.SizeofRtNexthop:l])
				for _, s := range sub {
					switch s.Attr.Type {
					case unix.RTA_GATEWAY:
						h.Gateway = addr(s.Value)
					case unix.RTA_VIA:
						h.Gateway = via(s.Value)
					}
				}
				k.Hops = append(k.Hops, h)
				b = b[(l+3)&^3:]
			}
		}
	}
	if len(k.Hops) == 0 && (k.Gateway.IsValid() || k.Ifindex != 0) {
		k.Hops = []KernelHop{{k.Gateway, k.Ifindex}}
	}
	return k, nil
}
