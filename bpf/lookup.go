package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/xdprouter/xdprouter/route"
)

// Decision is what the XDP program would do with a well-formed packet
// (TTL 64, no options or extension headers, small enough for any MTU) to a
// destination. See Datapath.Lookup.
type Decision struct {
	Action string // ActionRedirect, ActionDrop or ActionPass
	Reason string // Reason* constant; empty for redirect
	// The matched route; zero Prefix if none matched.
	Prefix netip.Prefix
	Kind   route.Kind
	Group  uint32
	// One per member of the route's group, in group order (unicast only).
	Candidates []Candidate
}

// Candidate is the outcome for one ECMP member of a Decision. Which member
// a packet uses depends on its flow hash.
type Candidate struct {
	NextHop uint32 // next-hop id
	Ifindex int    // egress interface of the next hop
	SrcMAC  net.HardwareAddr
	DstMAC  net.HardwareAddr
	Action  string
	Reason  string
}

// Lookup reports what the XDP program would do for a well-formed packet
// with TTL 64 to dst, from the current map contents. The top-level Action
// is "redirect" if any candidate redirects; otherwise it is the outcome of
// the first candidate. The MTU check is not modelled. Lookup reads the maps
// with several system calls: under concurrent updates it is best effort.
func (d *Datapath) Lookup(dst netip.Addr) (Decision, error) {
	if !dst.IsValid() {
		return Decision{}, errors.New("lookup: invalid address")
	}
	// An IPv4-mapped address stays IPv6, like the packet that carries it.
	dst = dst.WithZone("")
	pass := func(reason string) Decision { return Decision{Action: ActionPass, Reason: reason} }
	if martianDst(dst) {
		return Decision{Action: ActionDrop, Reason: ReasonMartianDest}, nil
	}
	if specialDst(dst) {
		return pass(ReasonLinkLocalMulticast), nil
	}

	prefix, val, ok, err := d.lpm(dst)
	if err != nil {
		return Decision{}, err
	}
	if mode, _ := d.LookupState(); mode == LookupCompiled {
		// XDP walks the compiled structure; the trie names the prefix.
		kind, group, found := d.compiledLookup(dst)
		if found != ok || found && (kind != route.Kind(val.Type) || group != val.Nhg) {
			prefix = netip.Prefix{} // they disagree: the prefix is not known
		}
		ok, val.Type, val.Nhg = found, uint8(kind), group
	}
	if !ok {
		return pass(ReasonNoRoute), nil
	}
	dec := Decision{Prefix: prefix, Kind: route.Kind(val.Type), Group: val.Nhg}
	switch dec.Kind {
	case route.Unicast:
	case route.Blackhole:
		dec.Action, dec.Reason = ActionDrop, ReasonBlackhole
		return dec, nil
	case route.Local:
		dec.Action, dec.Reason = ActionPass, ReasonLocal
		return dec, nil
	case route.KernelOnly:
		dec.Action, dec.Reason = ActionPass, ReasonKernelRoute
		return dec, nil
	default:
		dec.Action, dec.Reason = ActionPass, ReasonUnreachable
		return dec, nil
	}

	var g fwdNhg
	if err := d.objs.Nhgs.Lookup(val.Nhg, &g); err != nil {
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return Decision{}, fmt.Errorf("lookup %v: map nhgs: group %d: %w", dst, val.Nhg, err)
		}
		g.Count = 0 // id beyond max_entries
	}
	if g.Count == 0 || g.Count > MaxECMP {
		dec.Action, dec.Reason = ActionPass, ReasonNoNextHop
		return dec, nil
	}
	for _, id := range g.Nh[:g.Count] {
		c, err := d.candidate(id, dst)
		if err != nil {
			return Decision{}, fmt.Errorf("lookup %v: %w", dst, err)
		}
		dec.Candidates = append(dec.Candidates, c)
		if c.Action == ActionRedirect {
			dec.Action, dec.Reason = ActionRedirect, ""
		}
	}
	if dec.Action == "" {
		dec.Action, dec.Reason = dec.Candidates[0].Action, dec.Candidates[0].Reason
	}
	return dec, nil
}

// candidate mirrors resolve() in fwd.c.
func (d *Datapath) candidate(id uint32, dst netip.Addr) (Candidate, error) {
	c := Candidate{NextHop: id, Action: ActionPass}
	var nh fwdNexthop
	if err := d.objs.Nexthops.Lookup(id, &nh); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			c.Reason = ReasonNeighborUnresolved
			return c, nil
		}
		return c, fmt.Errorf("map nexthops: next hop %d: %w", id, err)
	}
	c.Ifindex = int(nh.Ifindex)
	switch {
	case nh.Flags&uint8(fwdNhFlagsNH_F_CONNECTED) != 0:
		k := fwdNeighKey{Ifindex: nh.Ifindex, Addr: dst.As16()}
		var v fwdNeighVal
		if err := d.objs.Neighbors.Lookup(&k, &v); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				c.Reason = ReasonNeighborUnresolved
				return c, nil
			}
			return c, fmt.Errorf("map neighbors: %v on ifindex %d: %w", dst, nh.Ifindex, err)
		}
		c.DstMAC = append(net.HardwareAddr(nil), v.Mac[:]...)
	case nh.Flags&uint8(fwdNhFlagsNH_F_RESOLVED) != 0:
		c.DstMAC = append(net.HardwareAddr(nil), nh.Dmac[:]...)
	default:
		c.Reason = ReasonNeighborUnresolved
		return c, nil
	}

	if nh.Flags&uint8(fwdNhFlagsNH_F_PORT) == 0 { // not a router port
		c.Reason = ReasonEgressNotXDP
		return c, nil
	}
	var port uint32
	if err := d.objs.TxPorts.Lookup(nh.Ifindex, &port); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			c.Reason = ReasonEgressNotXDP
			return c, nil
		}
		return c, fmt.Errorf("map tx_ports: ifindex %d: %w", nh.Ifindex, err)
	}
	c.SrcMAC = append(net.HardwareAddr(nil), nh.Smac[:]...)
	c.Action, c.Reason = ActionRedirect, ""
	return c, nil
}

// martianDst mirrors v4_martian_dst() and v6_martian_dst() in fwd.c, for
// a source that is not 0.0.0.0.
func martianDst(a netip.Addr) bool {
	if a.Is4() {
		b := a.As4()
		return b[0] == 0 || b[0] == 127
	}
	return a == netip.IPv6Loopback()
}

// specialDst mirrors v4_special() and v6_special() in fwd.c.
func specialDst(a netip.Addr) bool {
	if a.Is4() {
		b := a.As4()
		return b[0]&0xf0 == 224 || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) ||
			(b[0] == 169 && b[1] == 254) || a == netip.IPv4Unspecified()
	}
	b := a.As16()
	return b[0] == 0xff || (b[0] == 0xfe && b[1]&0xc0 == 0x80) || a == netip.IPv6Unspecified()
}

// lpm finds the longest prefix matching a, like the XDP program's lookup,
// and returns the matched prefix too. The kernel's LPM lookup returns only
// the value, so the prefix is found by probing each length for an exact
// key: BPF_MAP_GET_NEXT_KEY on an LPM trie returns the first key in
// iteration order when the given key does not exist exactly.
func (d *Datapath) lpm(a netip.Addr) (netip.Prefix, fwdRouteVal, bool, error) {
	var (
		m    = d.objs.RoutesV6
		val  fwdRouteVal
		bits = 128
		key  = func(p netip.Prefix) any { k := v6Key(p); return &k }
	)
	if a.Is4() {
		m, bits = d.objs.RoutesV4, 32
		key = func(p netip.Prefix) any { k := v4Key(p); return &k }
	}
	full := netip.PrefixFrom(a, bits)
	if err := m.Lookup(key(full), &val); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return netip.Prefix{}, val, false, nil
		}
		return netip.Prefix{}, val, false, fmt.Errorf("map %s: lookup %v: %w", m, a, err)
	}

	first, err := m.NextKeyBytes(nil)
	if err != nil {
		return netip.Prefix{}, val, false, fmt.Errorf("map %s: first key: %w", m, err)
	}
	for l := bits; l >= 0; l-- {
		p, _ := a.Prefix(l)
		exists, err := lpmExists(m, key(p), first)
		if err != nil {
			return netip.Prefix{}, val, false, fmt.Errorf("map %s: probe %v: %w", m, p, err)
		}
		if exists {
			return p, val, true, nil
		}
	}
	// Changed under us; report the value without a prefix.
	return netip.Prefix{}, val, true, nil
}

func lpmExists(m *ebpf.Map, key any, first []byte) (bool, error) {
	kb, err := marshalKey(key)
	if err != nil {
		return false, err
	}
	if string(kb) == string(first) {
		return true, nil
	}
	next, err := m.NextKeyBytes(key)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return true, nil // key exists and is the last one
	}
	if err != nil {
		return false, err
	}
	return string(next) != string(first), nil
}

func marshalKey(key any) ([]byte, error) {
	switch k := key.(type) {
	case *fwdLpmV4Key:
		b := binary.NativeEndian.AppendUint32(nil, k.Prefixlen)
		return binary.NativeEndian.AppendUint32(b, k.Addr), nil
	case *fwdLpmV6Key:
		b := binary.NativeEndian.AppendUint32(nil, k.Prefixlen)
		return append(b, k.Addr[:]...), nil
	}
	return nil, fmt.Errorf("unexpected key type %T", key)
}
