package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
)

// RouteType says what the XDP program does with packets matching a route.
// The values mirror enum route_type in fwd.h.
type RouteType uint8

const (
	// RouteUnicast forwards via the route's next-hop group.
	RouteUnicast RouteType = RouteType(fwdRouteTypeROUTE_UNICAST)
	// RouteBlackhole drops (XDP_DROP, counted as drop/blackhole).
	RouteBlackhole RouteType = RouteType(fwdRouteTypeROUTE_BLACKHOLE)
	// RouteUnreachable passes to the kernel, which sends the ICMP error
	// (unreachable and prohibit routes).
	RouteUnreachable RouteType = RouteType(fwdRouteTypeROUTE_UNREACHABLE)
	// RouteLocal marks an address of the router itself: passed to the kernel.
	RouteLocal RouteType = RouteType(fwdRouteTypeROUTE_LOCAL)
	// RouteKernel is a route only the kernel can forward on (encapsulation,
	// a gateway of the other family, a route MTU): passed to the kernel.
	RouteKernel RouteType = RouteType(fwdRouteTypeROUTE_KERNEL)
)

// String returns "unicast", "blackhole", "unreachable" or "local".
func (t RouteType) String() string {
	switch t {
	case RouteUnicast:
		return "unicast"
	case RouteBlackhole:
		return "blackhole"
	case RouteUnreachable:
		return "unreachable"
	case RouteLocal:
		return "local"
	case RouteKernel:
		return "kernel"
	}
	return fmt.Sprintf("RouteType(%d)", uint8(t))
}

// Route is one entry of routes_v4 or routes_v6.
type Route struct {
	Prefix netip.Prefix // IPv4 prefixes go to routes_v4, all others to routes_v6
	Type   RouteType
	Group  uint32 // next-hop group id; used by RouteUnicast only
}

// NextHop is one entry of the nexthops map.
type NextHop struct {
	// Ifindex is the egress interface.
	Ifindex int
	// MAC is the gateway's MAC address; nil means unresolved (packets are
	// passed to the kernel, which resolves the neighbor). Ignored by the
	// XDP program when Connected is set.
	MAC net.HardwareAddr
	// Connected means the packet's destination is itself the neighbor: its
	// MAC comes from the neighbors map (Ifindex, destination).
	Connected bool
}

// Neighbor is one entry of the neighbors map.
type Neighbor struct {
	Ifindex int
	Addr    netip.Addr // IPv4 addresses are returned as 4-byte addresses
	MAC     net.HardwareAddr
}

func isV4(a netip.Addr) bool { return a.Is4() }

func v4Key(p netip.Prefix) fwdLpmV4Key {
	a := p.Addr().As4()
	// addr is in network byte order: keep the bytes as they are.
	return fwdLpmV4Key{Prefixlen: uint32(p.Bits()), Addr: nativeU32(a)}
}

func v6Key(p netip.Prefix) fwdLpmV6Key {
	return fwdLpmV6Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
}

// nativeU32 reinterprets 4 bytes as a host-order uint32 (so that the
// bytes land in memory unchanged).
func nativeU32(b [4]byte) uint32 {
	return binary.NativeEndian.Uint32(b[:])
}

func fromNativeU32(v uint32) (b [4]byte) {
	binary.NativeEndian.PutUint32(b[:], v)
	return b
}

func checkPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, fmt.Errorf("invalid prefix %v", p)
	}
	return p.Masked(), nil
}

// UpdateRoutes adds or replaces routes, one batch per address family. It
// falls back to one update per route where batch operations are
// unsupported.
func (d *Datapath) UpdateRoutes(rs []Route) error {
	var (
		k4 []fwdLpmV4Key
		v4 []fwdRouteVal
		k6 []fwdLpmV6Key
		v6 []fwdRouteVal
	)
	for _, r := range rs {
		p, err := checkPrefix(r.Prefix)
		if err != nil {
			return fmt.Errorf("update routes: %w", err)
		}
		if r.Type > RouteKernel {
			return fmt.Errorf("update routes: %v: invalid route type %d", p, r.Type)
		}
		val := fwdRouteVal{Nhg: r.Group, Type: uint8(r.Type)}
		if isV4(p.Addr()) {
			k4 = append(k4, v4Key(p))
			v4 = append(v4, val)
		} else {
			k6 = append(k6, v6Key(p))
			v6 = append(v6, val)
		}
	}
	if err := batchUpdate(d.objs.RoutesV4, k4, v4, func(i int) string { return prefixString4(k4[i]) }); err != nil {
		return err
	}
	return batchUpdate(d.objs.RoutesV6, k6, v6, func(i int) string { return prefixString6(k6[i]) })
}

func prefixString4(k fwdLpmV4Key) string {
	return netip.PrefixFrom(netip.AddrFrom4(fromNativeU32(k.Addr)), int(k.Prefixlen)).String()
}

func prefixString6(k fwdLpmV6Key) string {
	return netip.PrefixFrom(netip.AddrFrom16(k.Addr), int(k.Prefixlen)).String()
}

func batchUpdate[K any](m *ebpf.Map, keys []K, vals []fwdRouteVal, name func(int) string) error {
	if len(keys) == 0 {
		return nil
	}
	n, err := m.BatchUpdate(keys, vals, nil)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		if n < len(keys) {
			return fmt.Errorf("map %s: update route %s (after %d of %d): %w", m, name(n), n, len(keys), err)
		}
		return fmt.Errorf("map %s: batch update: %w", m, err)
	}
	for i := range keys {
		if err := m.Put(&keys[i], &vals[i]); err != nil {
			return fmt.Errorf("map %s: update route %s: %w", m, name(i), err)
		}
	}
	return nil
}

// DeleteRoutes deletes routes by prefix. Prefixes that are not in the maps
// are ignored.
func (d *Datapath) DeleteRoutes(ps []netip.Prefix) error {
	var (
		k4 []fwdLpmV4Key
		k6 []fwdLpmV6Key
	)
	for _, p := range ps {
		p, err := checkPrefix(p)
		if err != nil {
			return fmt.Errorf("delete routes: %w", err)
		}
		if isV4(p.Addr()) {
			k4 = append(k4, v4Key(p))
		} else {
			k6 = append(k6, v6Key(p))
		}
	}
	if err := batchDelete(d.objs.RoutesV4, k4, func(i int) string { return prefixString4(k4[i]) }); err != nil {
		return err
	}
	return batchDelete(d.objs.RoutesV6, k6, func(i int) string { return prefixString6(k6[i]) })
}

func batchDelete[K any](m *ebpf.Map, keys []K, name func(int) string) error {
	for i := 0; i < len(keys); {
		n, err := m.BatchDelete(keys[i:], nil)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ebpf.ErrNotSupported):
			for ; i < len(keys); i++ {
				if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
					return fmt.Errorf("map %s: delete route %s: %w", m, name(i), err)
				}
			}
			return nil
		case errors.Is(err, ebpf.ErrKeyNotExist):
			// The batch stops at the first missing key: skip it.
			i += n + 1
		default:
			return fmt.Errorf("map %s: delete route %s: %w", m, name(min(i+n, len(keys)-1)), err)
		}
	}
	return nil
}

// Routes returns the contents of both route maps, prefixes masked, IPv4
// prefixes with 4-byte addresses.
func (d *Datapath) Routes() ([]Route, error) {
	var out []Route
	var (
		k4  fwdLpmV4Key
		k6  fwdLpmV6Key
		val fwdRouteVal
	)
	it := d.objs.RoutesV4.Iterate()
	for it.Next(&k4, &val) {
		p := netip.PrefixFrom(netip.AddrFrom4(fromNativeU32(k4.Addr)), int(k4.Prefixlen)).Masked()
		out = append(out, Route{Prefix: p, Type: RouteType(val.Type), Group: val.Nhg})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("map %s: iterate: %w", d.objs.RoutesV4, err)
	}
	it = d.objs.RoutesV6.Iterate()
	for it.Next(&k6, &val) {
		p := netip.PrefixFrom(netip.AddrFrom16(k6.Addr), int(k6.Prefixlen)).Masked()
		out = append(out, Route{Prefix: p, Type: RouteType(val.Type), Group: val.Nhg})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("map %s: iterate: %w", d.objs.RoutesV6, err)
	}
	return out, nil
}

// SetGroup sets next-hop group id to the given next-hop ids (at most
// MaxECMP). An empty group makes its routes pass to the kernel
// (no_nexthop).
func (d *Datapath) SetGroup(id uint32, nexthops []uint32) error {
	if len(nexthops) > MaxECMP {
		return fmt.Errorf("map nhgs: group %d: %d next hops, at most %d: %w", id, len(nexthops), MaxECMP, ErrTooManyNextHops)
	}
	g := fwdNhg{Count: uint32(len(nexthops))}
	copy(g.Nh[:], nexthops)
	if err := d.objs.Nhgs.Put(id, &g); err != nil {
		return fmt.Errorf("map nhgs: set group %d: %w", id, err)
	}
	return nil
}

// Group returns the next-hop ids of group id.
func (d *Datapath) Group(id uint32) ([]uint32, error) {
	var g fwdNhg
	if err := d.objs.Nhgs.Lookup(id, &g); err != nil {
		return nil, fmt.Errorf("map nhgs: group %d: %w", id, err)
	}
	if g.Count > MaxECMP {
		return nil, fmt.Errorf("map nhgs: group %d: corrupt count %d", id, g.Count)
	}
	return append([]uint32(nil), g.Nh[:g.Count]...), nil
}

func checkMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("MAC %q: want 6 bytes, have %d", mac, len(mac))
	}
	return nil
}

func checkIfindex(ifindex int) error {
	if ifindex <= 0 || ifindex > 1<<31-1 {
		return fmt.Errorf("invalid ifindex %d", ifindex)
	}
	return nil
}

// SetNextHop sets next hop id.
func (d *Datapath) SetNextHop(id uint32, nh NextHop) error {
	if err := checkIfindex(nh.Ifindex); err != nil {
		return fmt.Errorf("map nexthops: next hop %d: %w", id, err)
	}
	v := fwdNexthop{Ifindex: uint32(nh.Ifindex)}
	if nh.MAC != nil {
		if err := checkMAC(nh.MAC); err != nil {
			return fmt.Errorf("map nexthops: next hop %d: %w", id, err)
		}
		copy(v.Dmac[:], nh.MAC)
		v.Flags |= uint8(fwdNhFlagsNH_F_RESOLVED)
	}
	if nh.Connected {
		v.Flags |= uint8(fwdNhFlagsNH_F_CONNECTED)
	}
	if err := d.objs.Nexthops.Put(id, &v); err != nil {
		return fmt.Errorf("map nexthops: set next hop %d: %w", id, err)
	}
	return nil
}

// NextHopAt returns next hop id. Unset ids read back as the zero NextHop.
func (d *Datapath) NextHopAt(id uint32) (NextHop, error) {
	var v fwdNexthop
	if err := d.objs.Nexthops.Lookup(id, &v); err != nil {
		return NextHop{}, fmt.Errorf("map nexthops: next hop %d: %w", id, err)
	}
	return nextHopFrom(v), nil
}

func nextHopFrom(v fwdNexthop) NextHop {
	nh := NextHop{Ifindex: int(v.Ifindex), Connected: v.Flags&uint8(fwdNhFlagsNH_F_CONNECTED) != 0}
	if v.Flags&uint8(fwdNhFlagsNH_F_RESOLVED) != 0 {
		nh.MAC = append(net.HardwareAddr(nil), v.Dmac[:]...)
	}
	return nh
}

func neighKey(ifindex int, addr netip.Addr) (fwdNeighKey, error) {
	if err := checkIfindex(ifindex); err != nil {
		return fwdNeighKey{}, err
	}
	if !addr.IsValid() {
		return fwdNeighKey{}, fmt.Errorf("invalid neighbor address")
	}
	// As16 maps IPv4 to ::ffff:a.b.c.d, as the XDP program expects.
	return fwdNeighKey{Ifindex: uint32(ifindex), Addr: addr.WithZone("").As16()}, nil
}

// SetNeighbor sets the MAC address of neighbor addr on ifindex, used by
// connected next hops.
func (d *Datapath) SetNeighbor(ifindex int, addr netip.Addr, mac net.HardwareAddr) error {
	k, err := neighKey(ifindex, addr)
	if err != nil {
		return fmt.Errorf("map neighbors: set %v on ifindex %d: %w", addr, ifindex, err)
	}
	if err := checkMAC(mac); err != nil {
		return fmt.Errorf("map neighbors: set %v on ifindex %d: %w", addr, ifindex, err)
	}
	var v fwdNeighVal
	copy(v.Mac[:], mac)
	if err := d.objs.Neighbors.Put(&k, &v); err != nil {
		return fmt.Errorf("map neighbors: set %v on ifindex %d: %w", addr, ifindex, err)
	}
	return nil
}

// DeleteNeighbor deletes a neighbor; a missing one is not an error.
func (d *Datapath) DeleteNeighbor(ifindex int, addr netip.Addr) error {
	k, err := neighKey(ifindex, addr)
	if err != nil {
		return fmt.Errorf("map neighbors: delete %v on ifindex %d: %w", addr, ifindex, err)
	}
	if err := d.objs.Neighbors.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("map neighbors: delete %v on ifindex %d: %w", addr, ifindex, err)
	}
	return nil
}

// Neighbors returns the contents of the neighbors map.
func (d *Datapath) Neighbors() ([]Neighbor, error) {
	var (
		out []Neighbor
		k   fwdNeighKey
		v   fwdNeighVal
	)
	it := d.objs.Neighbors.Iterate()
	for it.Next(&k, &v) {
		out = append(out, Neighbor{
			Ifindex: int(k.Ifindex),
			Addr:    netip.AddrFrom16(k.Addr).Unmap(),
			MAC:     append(net.HardwareAddr(nil), v.Mac[:]...),
		})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("map neighbors: iterate: %w", err)
	}
	return out, nil
}

// SetInterface makes ifindex a router port: egress with source MAC mac and
// the given MTU. ifindex is resolved in the network namespace of the
// calling OS thread (tx_ports is a devmap). Only a port that can transmit
// redirected frames becomes a redirect target (see RedirectTarget); packets
// routed out of another one are passed to the kernel (egress_not_xdp).
// Call it again when the port's attachment changes.
func (d *Datapath) SetInterface(ifindex int, mac net.HardwareAddr, mtu int) error {
	if err := checkIfindex(ifindex); err != nil {
		return fmt.Errorf("set interface: %w", err)
	}
	if err := checkMAC(mac); err != nil {
		return fmt.Errorf("set interface %d: %w", ifindex, err)
	}
	if mtu <= 0 || mtu > 1<<31-1 {
		return fmt.Errorf("set interface %d: invalid MTU %d", ifindex, mtu)
	}
	k := uint32(ifindex)
	why, err := d.redirectCheck(ifindex)
	if err != nil {
		return fmt.Errorf("set interface: %w", err)
	}
	if why == "" {
		if err := d.objs.TxPorts.Put(k, k); err != nil {
			return fmt.Errorf("map tx_ports: set ifindex %d: %w", ifindex, err)
		}
	} else if err := d.objs.TxPorts.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("map tx_ports: delete ifindex %d (not a redirect target: %s): %w", ifindex, why, err)
	}
	v := fwdIface{Mtu: uint32(mtu)}
	copy(v.Mac[:], mac)
	if err := d.objs.Ifaces.Put(k, &v); err != nil {
		return fmt.Errorf("map ifaces: set ifindex %d: %w", ifindex, err)
	}
	d.mu.Lock()
	d.targets[ifindex] = why
	d.mu.Unlock()
	return nil
}

// DeleteInterface removes ifindex from the router ports; packets routed
// to it are then passed to the kernel (egress_not_xdp). A missing
// interface is not an error.
func (d *Datapath) DeleteInterface(ifindex int) error {
	if err := checkIfindex(ifindex); err != nil {
		return fmt.Errorf("delete interface: %w", err)
	}
	k := uint32(ifindex)
	if err := d.objs.Ifaces.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("map ifaces: delete ifindex %d: %w", ifindex, err)
	}
	if err := d.objs.TxPorts.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("map tx_ports: delete ifindex %d: %w", ifindex, err)
	}
	return nil
}
