package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/xdprouter/xdprouter/lpm"
	"github.com/xdprouter/xdprouter/route"
)

// MaxECMP is the largest number of next hops in a group: route.MaxECMP,
// which must be MAX_ECMP of fwd.h (the size of struct nhg, checked below).
const MaxECMP = route.MaxECMP

var _ = [1]struct{}{}[len(fwdNhg{}.Nh)-MaxECMP]

// The fast path's route kinds are route.Kind: the values must match enum
// route_type in fwd.h (checked at compile time).
var _ = [1]struct{}{}[int(route.Unicast)-int(fwdRouteTypeROUTE_UNICAST)]
var _ = [1]struct{}{}[int(route.Blackhole)-int(fwdRouteTypeROUTE_BLACKHOLE)]
var _ = [1]struct{}{}[int(route.Unreachable)-int(fwdRouteTypeROUTE_UNREACHABLE)]
var _ = [1]struct{}{}[int(route.Local)-int(fwdRouteTypeROUTE_LOCAL)]
var _ = [1]struct{}{}[int(route.KernelOnly)-int(fwdRouteTypeROUTE_KERNEL)]
var _ = [1]struct{}{}[int(route.Throw)-int(fwdRouteTypeROUTE_THROW)]

// Neighbor is one entry of the neighbors map.
type Neighbor struct {
	Ifindex int
	Addr    netip.Addr // IPv4 addresses are returned as 4-byte addresses
	MAC     net.HardwareAddr
}

func isV4(a netip.Addr) bool { return a.Is4() }

// Trie keys: the table slot (32 bits, always matched) before the address.
func v4Key(slot uint32, p netip.Prefix) fwdLpmV4Key {
	a := p.Addr().As4()
	// addr is in network byte order: keep the bytes as they are.
	return fwdLpmV4Key{Prefixlen: 32 + uint32(p.Bits()), Table: slot, Addr: nativeU32(a)}
}

func v6Key(slot uint32, p netip.Prefix) fwdLpmV6Key {
	return fwdLpmV6Key{Prefixlen: 32 + uint32(p.Bits()), Table: slot, Addr: p.Addr().As16()}
}

func keyPrefix4(k fwdLpmV4Key) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4(fromNativeU32(k.Addr)), int(k.Prefixlen)-32).Masked()
}

func keyPrefix6(k fwdLpmV6Key) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16(k.Addr), int(k.Prefixlen)-32).Masked()
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

// UpdateRoutes adds or replaces routes in order and returns how many were
// written: on an error, exactly rs[:n] are in the maps (runs of one address
// family go to their map in one batch each; a batch stops at its first
// failure). It falls back to one update per route where batch operations
// are unsupported. A route of a table XDP holds no slot for (more than
// MaxTables tables) is taken but kept out
// of the maps: Routes lists it, and rules that look that table up pass to
// the kernel.
func (d *Datapath) UpdateRoutes(rs []route.Entry) (n int, err error) {
	slots := make([]uint32, len(rs))
	held := make([]bool, len(rs)) // a table XDP holds no slot for
	for i, r := range rs {
		var serr error
		if slots[i], serr = d.tables.slot(r.Table, true); serr != nil {
			held[i] = true
		}
	}
	defer func() { d.routesWritten(rs[:n], slots[:n], held[:n], nil, nil) }()
	d.markLocals(rs)
	for n < len(rs) {
		if held[n] {
			n++
			continue
		}
		v4, run := rs[n].Prefix.Addr().Is4(), 1
		for n+run < len(rs) && !held[n+run] && rs[n+run].Prefix.Addr().Is4() == v4 {
			run++
		}
		var (
			done int
			err  error
		)
		if v4 {
			done, err = updateRun(d.objs.RoutesV4, rs[n:n+run], slots[n:n+run], v4Key, prefixString4)
		} else {
			done, err = updateRun(d.objs.RoutesV6, rs[n:n+run], slots[n:n+run], v6Key, prefixString6)
		}
		n += done
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// familyRun is the length of the leading run of addresses of one family.
func familyRun(n int, addr func(int) netip.Addr) int {
	v4 := addr(0).Is4()
	i := 1
	for i < n && addr(i).Is4() == v4 {
		i++
	}
	return i
}

func updateRun[K any](m *ebpf.Map, rs []route.Entry, slots []uint32, key func(uint32, netip.Prefix) K, name func(K) string) (int, error) {
	keys := make([]K, 0, len(rs))
	vals := make([]fwdRouteVal, 0, len(rs))
	for i, r := range rs {
		p, err := checkPrefix(r.Prefix)
		if err == nil && r.Kind > route.Throw {
			err = fmt.Errorf("%v: invalid route kind %d", p, r.Kind)
		}
		if err == nil && r.Group > lpm.MaxGroup {
			err = fmt.Errorf("%v: group %d beyond %d", p, r.Group, lpm.MaxGroup)
		}
		if err != nil {
			// Write the valid ones before it, then report it.
			n, berr := batchUpdate(m, keys, vals, name)
			if berr != nil {
				return n, berr
			}
			return i, fmt.Errorf("update routes: %w", err)
		}
		keys = append(keys, key(slots[i], p))
		vals = append(vals, fwdRouteVal{Nhg: r.Group, Type: uint8(r.Kind), Plen: uint8(p.Bits())})
	}
	return batchUpdate(m, keys, vals, name)
}

func prefixString4(k fwdLpmV4Key) string { return keyPrefix4(k).String() }

func prefixString6(k fwdLpmV6Key) string { return keyPrefix6(k).String() }

// batchUpdate writes keys[i] = vals[i] in order and returns how many were
// written.
func batchUpdate[K any](m *ebpf.Map, keys []K, vals []fwdRouteVal, name func(K) string) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	n, err := m.BatchUpdate(keys, vals, nil)
	if err == nil {
		return len(keys), nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		n = max(0, min(n, len(keys)))
		if n < len(keys) {
			return n, fmt.Errorf("map %s: update route %s (after %d of %d): %w", m, name(keys[n]), n, len(keys), err)
		}
		return n, fmt.Errorf("map %s: batch update: %w", m, err)
	}
	for i := range keys {
		if err := m.Put(&keys[i], &vals[i]); err != nil {
			return i, fmt.Errorf("map %s: update route %s: %w", m, name(keys[i]), err)
		}
	}
	return len(keys), nil
}

// DeleteRoutes deletes routes by table and prefix, in order, and returns
// how many were processed: on an error, exactly ps[:n] are gone. Routes
// that are not in the maps (or tables XDP has no slot for) are not an
// error.
func (d *Datapath) DeleteRoutes(ps []route.TablePrefix) (n int, err error) {
	slots := make([]uint32, len(ps))
	known := make([]bool, len(ps))
	for i, tp := range ps {
		slots[i], err = d.tables.slot(tp.Table, false)
		known[i] = err == nil
	}
	defer func() { d.routesWritten(nil, nil, nil, ps[:n], known[:n]) }()
	for n < len(ps) {
		if !known[n] {
			n++
			continue
		}
		v4, run := ps[n].Prefix.Addr().Is4(), 1
		for n+run < len(ps) && known[n+run] && ps[n+run].Prefix.Addr().Is4() == v4 {
			run++
		}
		var (
			done int
			err  error
		)
		if ps[n].Prefix.Addr().Is4() {
			done, err = deleteRun(d.objs.RoutesV4, ps[n:n+run], slots[n:n+run], v4Key, prefixString4)
		} else {
			done, err = deleteRun(d.objs.RoutesV6, ps[n:n+run], slots[n:n+run], v6Key, prefixString6)
		}
		n += done
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func deleteRun[K any](m *ebpf.Map, ps []route.TablePrefix, slots []uint32, key func(uint32, netip.Prefix) K, name func(K) string) (int, error) {
	keys := make([]K, 0, len(ps))
	for i, tp := range ps {
		p, err := checkPrefix(tp.Prefix)
		if err != nil {
			n, derr := batchDelete(m, keys, name)
			if derr != nil {
				return n, derr
			}
			return i, fmt.Errorf("delete routes: %w", err)
		}
		keys = append(keys, key(slots[i], p))
	}
	return batchDelete(m, keys, name)
}

func batchDelete[K any](m *ebpf.Map, keys []K, name func(K) string) (int, error) {
	for i := 0; i < len(keys); {
		n, err := m.BatchDelete(keys[i:], nil)
		switch {
		case err == nil:
			return len(keys), nil
		case errors.Is(err, ebpf.ErrNotSupported):
			for ; i < len(keys); i++ {
				if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
					return i, fmt.Errorf("map %s: delete route %s: %w", m, name(keys[i]), err)
				}
			}
			return len(keys), nil
		case errors.Is(err, ebpf.ErrKeyNotExist):
			// The batch stops at the first missing key: skip it.
			i += n + 1
		default:
			i = min(i+max(n, 0), len(keys)-1)
			return i, fmt.Errorf("map %s: delete route %s: %w", m, name(keys[i]), err)
		}
	}
	return len(keys), nil
}

// Routes returns the contents of both route maps with their tables,
// prefixes masked, IPv4 prefixes with 4-byte addresses.
func (d *Datapath) Routes() ([]route.Entry, error) {
	ids := d.tables.ids()
	out := d.heldRoutes()
	err := readRoutes(d.objs.RoutesV4, func(k fwdLpmV4Key, v fwdRouteVal) {
		out = append(out, route.Entry{Table: ids[k.Table%MaxTables], Prefix: keyPrefix4(k), Kind: route.Kind(v.Type), Group: v.Nhg})
	})
	if err != nil {
		return nil, err
	}
	err = readRoutes(d.objs.RoutesV6, func(k fwdLpmV6Key, v fwdRouteVal) {
		out = append(out, route.Entry{Table: ids[k.Table%MaxTables], Prefix: keyPrefix6(k), Kind: route.Kind(v.Type), Group: v.Nhg})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readRoutes reads every entry of a route map: in batches where the
// kernel has them (a full table in about a second, against 5 s one entry
// at a time here).
func readRoutes[K any](m *ebpf.Map, f func(K, fwdRouteVal)) error {
	keys := make([]K, 4096)
	vals := make([]fwdRouteVal, len(keys))
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			f(keys[i], vals[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil // the end
		case errors.Is(err, ebpf.ErrNotSupported):
			if n > 0 {
				return fmt.Errorf("map %s: batch lookup stopped after %d: %w", m, n, err)
			}
			var (
				k K
				v fwdRouteVal
			)
			it := m.Iterate()
			for it.Next(&k, &v) {
				f(k, v)
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("map %s: iterate: %w", m, err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("map %s: batch lookup: %w", m, err)
		}
	}
}

// SetGroup sets next-hop group id to the given next-hop ids (at most
// MaxECMP), keeping the flows of the members that stay where they were
// (resilient.go). An empty group makes its routes pass to the kernel
// (no_nexthop).
func (d *Datapath) SetGroup(id uint32, nexthops []uint32) error {
	return d.SetGroupFrom(id, id, nexthops)
}

// SetGroupFrom sets group id like SetGroup, deriving its hash buckets
// from group from as the map holds it now: a route moving from group from
// to a new group id keeps the flows of the members the two share.
//
// The kernel copies an array element without a lock, so XDP may read a
// group half-written: count, buckets and slots each from one version or
// the other. Every slot past the count repeats the members, so any bucket
// of either version names a member of the old or of the new version (sync
// keeps freed next-hop ids out of use for a while, so an old member is
// still what it was).
func (d *Datapath) SetGroupFrom(id, from uint32, nexthops []uint32) error {
	if len(nexthops) > MaxECMP {
		return fmt.Errorf("map nhgs: group %d: %d next hops, at most %d: %w", id, len(nexthops), MaxECMP, ErrTooManyNextHops)
	}
	d.groupMu.Lock() // read-modify-write of the buckets
	defer d.groupMu.Unlock()
	var prev *[NHGBuckets]uint32
	var old fwdNhg
	if err := d.objs.Nhgs.Lookup(from, &old); err == nil {
		prev = bucketMembers(&old)
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("map nhgs: read group %d: %w", from, err)
	}
	g := fwdNhg{Count: uint32(len(nexthops)), Bucket: resilientBuckets(prev, nexthops)}
	for i := 0; len(nexthops) > 0 && i < MaxECMP; i++ {
		g.Nh[i] = nexthops[i%len(nexthops)]
	}
	if err := d.objs.Nhgs.Put(id, &g); err != nil {
		return fmt.Errorf("map nhgs: set group %d: %w", id, err)
	}
	return nil
}

// GroupBuckets returns the next hop of each hash bucket of group id (all
// 0 if it is empty), as XDP picks them.
func (d *Datapath) GroupBuckets(id uint32) ([]uint32, error) {
	var g fwdNhg
	if err := d.objs.Nhgs.Lookup(id, &g); err != nil {
		return nil, fmt.Errorf("map nhgs: group %d: %w", id, err)
	}
	return bucketMembers(&g)[:], nil
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

// SetNextHop sets next hop id. Its map value also carries the source MAC
// and MTU of its port (SetInterface), so that XDP's egress path needs no
// ifaces lookup; SetInterface and DeleteInterface rewrite the next hops of
// a port that changes. A next hop whose ifindex is not a router port makes
// its packets pass to the kernel (egress_not_xdp).
func (d *Datapath) SetNextHop(id uint32, nh route.Egress) error {
	if err := checkIfindex(nh.Ifindex); err != nil {
		return fmt.Errorf("map nexthops: next hop %d: %w", id, err)
	}
	if nh.MAC != nil {
		if err := checkMAC(nh.MAC); err != nil {
			return fmt.Errorf("map nexthops: next hop %d: %w", id, err)
		}
		nh.MAC = append(net.HardwareAddr(nil), nh.MAC...)
	}
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	if old, ok := d.nhs[id]; !ok || old.Gateway != nh.Gateway {
		// Before the next hop: a reader of both never sees a new next hop
		// with an old gateway.
		if err := d.objs.NhGateways.Put(id, gatewayOf(nh.Gateway)); err != nil {
			return fmt.Errorf("map nh_gateways: set next hop %d: %w", id, err)
		}
	}
	if err := d.putNextHop(id, nh); err != nil {
		return err
	}
	d.nhs[id] = nh
	return nil
}

// putNextHop writes next hop id with its port's MAC and MTU from d.ports.
// d.egressMu must be held.
func (d *Datapath) putNextHop(id uint32, nh route.Egress) error {
	v := fwdNexthop{Ifindex: uint32(nh.Ifindex)}
	if nh.MAC != nil {
		copy(v.Dmac[:], nh.MAC)
		v.Flags |= uint8(fwdNhFlagsNH_F_RESOLVED)
	}
	if nh.Connected {
		v.Flags |= uint8(fwdNhFlagsNH_F_CONNECTED)
	}
	if p, ok := d.ports[nh.Ifindex]; ok {
		v.Flags |= uint8(fwdNhFlagsNH_F_PORT)
		v.Smac, v.Mtu, v.Vid = p.mac, p.mtu, p.vid
	}
	if err := d.objs.Nexthops.Put(id, &v); err != nil {
		return fmt.Errorf("map nexthops: set next hop %d: %w", id, err)
	}
	return nil
}

// rewritePort rewrites the next hops through ifindex after its entry in
// d.ports changed. d.egressMu must be held.
func (d *Datapath) rewritePort(ifindex int) error {
	for id, nh := range d.nhs {
		if nh.Ifindex != ifindex {
			continue
		}
		if err := d.putNextHop(id, nh); err != nil {
			return fmt.Errorf("interface %d: %w", ifindex, err)
		}
	}
	return nil
}

// NextHopAt returns next hop id. Unset ids read back as the zero Egress.
func (d *Datapath) NextHopAt(id uint32) (route.Egress, error) {
	var v fwdNexthop
	if err := d.objs.Nexthops.Lookup(id, &v); err != nil {
		return route.Egress{}, fmt.Errorf("map nexthops: next hop %d: %w", id, err)
	}
	var gw fwdNhGateway
	if err := d.objs.NhGateways.Lookup(id, &gw); err != nil {
		return route.Egress{}, fmt.Errorf("map nh_gateways: next hop %d: %w", id, err)
	}
	nh := nextHopFrom(v)
	nh.Gateway = gatewayFrom(gw)
	return nh, nil
}

func nextHopFrom(v fwdNexthop) route.Egress {
	nh := route.Egress{Ifindex: int(v.Ifindex), Connected: v.Flags&uint8(fwdNhFlagsNH_F_CONNECTED) != 0}
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
// Call it again when the port's attachment changes. An 802.1Q VLAN device
// is a VLAN port: XDP on its parent (VLANParent) receives its tagged
// frames and sends its frames out of the parent, tagged (see vlan.go).
func (d *Datapath) SetInterface(ifindex int, mac net.HardwareAddr, mtu int) error {
	d.egressMu.Lock()
	_, had := d.ports[ifindex]
	d.egressMu.Unlock()
	err := d.setInterface(ifindex, mac, mtu)
	if !had && err == nil {
		d.refreshRules() // a new port: its interface class
	}
	return err
}

func (d *Datapath) setInterface(ifindex int, mac net.HardwareAddr, mtu int) error {
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
	vlan, isVLAN, err := d.vlanOf(ifindex)
	if err != nil {
		return fmt.Errorf("set interface: %w", err)
	}
	// A VLAN port's frames go out of its parent.
	out := ifindex
	if isVLAN {
		out = vlan.parent
	}
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	why, err := d.redirectCheck(out)
	if err != nil {
		return fmt.Errorf("set interface: %w", err)
	}
	if why == "" {
		if err := d.objs.TxPorts.Put(k, uint32(out)); err != nil {
			return fmt.Errorf("map tx_ports: set ifindex %d: %w", ifindex, err)
		}
	} else if err := d.objs.TxPorts.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("map tx_ports: delete ifindex %d (not a redirect target: %s): %w", ifindex, why, err)
	}
	p := egressPort{mtu: uint32(mtu), vid: vlan.vid}
	copy(p.mac[:], mac)
	v := d.ifaceVal(ifindex, p)
	if err := d.objs.Ifaces.Put(k, &v); err != nil {
		return fmt.Errorf("map ifaces: set ifindex %d: %w", ifindex, err)
	}
	// After its ifaces entry: a tagged frame never finds a VLAN port
	// without one.
	if err := d.setVLAN(ifindex, vlan, isVLAN, v); err != nil {
		return fmt.Errorf("set interface: %w", err)
	}
	d.mu.Lock()
	d.targets[ifindex] = why
	d.mu.Unlock()

	old, had := d.ports[ifindex]
	if had && old == p {
		return nil
	}
	d.ports[ifindex] = p
	if err := d.rewritePort(ifindex); err != nil {
		// Undo, so that calling again retries every next hop.
		if had {
			d.ports[ifindex] = old
		} else {
			delete(d.ports, ifindex)
		}
		return fmt.Errorf("set interface: %w", err)
	}
	return nil
}

// DeleteInterface removes ifindex from the router ports; packets routed
// to it are then passed to the kernel (egress_not_xdp). A missing
// interface is not an error. Its next hops are rewritten to pass.
func (d *Datapath) DeleteInterface(ifindex int) error {
	err := d.deleteInterface(ifindex)
	d.refreshRules()
	return err
}

func (d *Datapath) deleteInterface(ifindex int) error {
	if err := checkIfindex(ifindex); err != nil {
		return fmt.Errorf("delete interface: %w", err)
	}
	k := uint32(ifindex)
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	// Its next hops lose NH_F_PORT. Should a rewrite fail, the tx_ports
	// deletion below still makes their packets pass (bpf_redirect_map
	// fails), and a later SetInterface rewrites them all.
	var rerr error
	if _, had := d.ports[ifindex]; had {
		delete(d.ports, ifindex)
		if err := d.rewritePort(ifindex); err != nil {
			rerr = fmt.Errorf("delete interface: %w", err)
		}
	}
	d.mu.Lock()
	delete(d.targets, ifindex)
	d.mu.Unlock()
	delete(d.ruleClass, ifindex)
	// Before its ifaces entry (see setInterface).
	if err := d.setVLAN(ifindex, vlanPort{}, false, fwdIface{}); err != nil {
		rerr = errors.Join(rerr, fmt.Errorf("delete interface: %w", err))
	}
	if err := d.objs.Ifaces.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return errors.Join(rerr, fmt.Errorf("map ifaces: delete ifindex %d: %w", ifindex, err))
	}
	// A parent of VLAN ports keeps a trunk entry.
	if err := d.syncTrunk(ifindex); err != nil {
		rerr = errors.Join(rerr, fmt.Errorf("delete interface: %w", err))
	}
	if err := d.objs.TxPorts.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return errors.Join(rerr, fmt.Errorf("map tx_ports: delete ifindex %d: %w", ifindex, err))
	}
	return rerr
}

// URPFMode is a router port's reverse-path check (RFC 3704), as the
// kernel's rp_filter: strict 1, loose 2.
type URPFMode uint8

const (
	URPFOff    = URPFMode(fwdUrpfModeURPF_OFF)
	URPFStrict = URPFMode(fwdUrpfModeURPF_STRICT)
	URPFLoose  = URPFMode(fwdUrpfModeURPF_LOOSE)
)

func (m URPFMode) String() string {
	switch m {
	case URPFOff:
		return "off"
	case URPFStrict:
		return "strict"
	case URPFLoose:
		return "loose"
	}
	return fmt.Sprintf("urpf(%d)", uint8(m))
}

// ParseURPF parses off, strict or loose.
func ParseURPF(s string) (URPFMode, error) {
	for _, m := range []URPFMode{URPFOff, URPFStrict, URPFLoose} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("uRPF mode %q: want off, strict or loose", s)
}

// SetURPF sets the reverse-path check of packets arriving on ifindex:
// strict drops a packet whose source's route does not go out of ifindex
// (any ECMP member), loose one whose source has no route; both drop
// packets from a blackholed source (source-based RTBH). It takes effect
// at once on a port already set, else with SetInterface.
func (d *Datapath) SetURPF(ifindex int, m URPFMode) error {
	if err := checkIfindex(ifindex); err != nil {
		return fmt.Errorf("set uRPF: %w", err)
	}
	if m > URPFLoose {
		return fmt.Errorf("set uRPF of ifindex %d: invalid mode %d", ifindex, m)
	}
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	d.urpf[ifindex] = m
	p, ok := d.ports[ifindex]
	if !ok {
		return nil
	}
	if err := d.putIface(ifindex, p); err != nil {
		return fmt.Errorf("set uRPF: %w", err)
	}
	return nil
}
