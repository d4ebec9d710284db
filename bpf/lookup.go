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
	// The policy rule that decided (ip rule syntax) and its index in its
	// family's list; empty while only the default rules are in force
	// (XDP then looks up the main table alone).
	Rule      string
	RuleIndex int
	// The table of the matched route (route.TableMain without rules).
	Table int
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

// Flow is what a packet's route depends on under policy rules: see
// LookupFlow. The zero value of each field but Dst matches what it
// matches in a packet that has it zero (an invalid Src reads as the
// unspecified address of Dst's family).
type Flow struct {
	Src, Dst     netip.Addr
	Iif          int // ingress ifindex
	Proto        uint8
	Sport, Dport uint16
	Tos          uint8 // IPv4 TOS byte, IPv6 traffic class
	// For Explain's frame only (the model assumes TTL 64 and a packet
	// that fits every MTU): the TTL or hop limit (0: DefaultTTL) and the
	// IP packet's length (0 or less than the headers: the headers).
	TTL  uint8 `json:",omitempty"`
	Size int   `json:",omitempty"`
}

// Lookup reports what the XDP program would do for a well-formed packet
// with TTL 64 to dst, from the current map contents: LookupFlow with
// only a destination.
func (d *Datapath) Lookup(dst netip.Addr) (Decision, error) {
	return d.LookupFlow(Flow{Dst: dst})
}

// LookupFlow reports what the XDP program would do for a well-formed
// packet of flow f with TTL 64, from the current map contents: the policy
// rule that picks the table (if rules beyond the defaults are in force),
// the route, and each ECMP member's outcome. The top-level Action is
// "redirect" if any candidate redirects; otherwise it is the outcome of
// the first candidate. Filters, uRPF and the MTU check are not modelled.
// It reads the maps with several system calls: under concurrent updates
// it is best effort.
func (d *Datapath) LookupFlow(f Flow) (Decision, error) {
	dst := f.Dst
	if !dst.IsValid() {
		return Decision{}, errors.New("lookup: invalid address")
	}
	// An IPv4-mapped address stays IPv6, like the packet that carries it.
	dst = dst.WithZone("")
	if !f.Src.IsValid() || f.Src.Is4() != dst.Is4() {
		f.Src = zeroAddr(dst.BitLen())
	}
	pass := func(reason string) Decision { return Decision{Action: ActionPass, Reason: reason} }
	if martianDst(dst) {
		return Decision{Action: ActionDrop, Reason: ReasonMartianDest}, nil
	}
	if specialDst(dst) {
		return pass(ReasonLinkLocalMulticast), nil
	}

	dec := Decision{Table: route.TableMain, RuleIndex: -1}
	slot := uint32(0)
	d.rmu.Lock()
	rs := d.rules
	d.rmu.Unlock()
	if rs != nil {
		fi := 0
		if !dst.Is4() {
			fi = 1
		}
		if fr := &rs.fam[fi]; !fr.simple {
			v, idx, s := d.evalRules(rs, fr, f)
			if idx >= 0 && idx < len(fr.rules) {
				dec.Rule, dec.RuleIndex = fr.rules[idx].String(), idx
			} else if idx == kernelRule {
				dec.Rule, dec.RuleIndex = "(more candidate rules than XDP checks)", idx
			} else if fr.fallback != "" {
				dec.Rule = "(" + fr.fallback + ")"
			}
			switch v {
			case fwdRuleVerdictRV_ROUTE:
				slot = s
				dec.Table = rs.tables[s%MaxTables]
			case fwdRuleVerdictRV_NO_ROUTE:
				dec.Action, dec.Reason = ActionPass, ReasonNoRoute
				return dec, nil
			case fwdRuleVerdictRV_BLACKHOLE:
				dec.Action, dec.Reason = ActionDrop, ReasonRule
				return dec, nil
			case fwdRuleVerdictRV_UNREACHABLE:
				dec.Action, dec.Reason = ActionPass, ReasonRule
				return dec, nil
			case fwdRuleVerdictRV_LOCAL:
				dec.Action, dec.Reason = ActionPass, ReasonLocal
				return dec, nil
			default:
				dec.Action, dec.Reason = ActionPass, ReasonRuleKernel
				return dec, nil
			}
		}
	}

	prefix, val, ok, err := d.lpm(slot, dst)
	if err != nil {
		return Decision{}, err
	}
	if mode, _ := d.LookupState(); mode == LookupCompiled {
		// XDP walks the compiled structure; the trie names the prefix.
		kind, _, group, found := d.compiledLookup(slot, dst)
		if found != ok || found && (kind != route.Kind(val.Type) || group != val.Nhg) {
			prefix = netip.Prefix{} // they disagree: the prefix is not known
		}
		ok, val.Type, val.Nhg = found, uint8(kind), group
	}
	if !ok {
		dec.Action, dec.Reason = ActionPass, ReasonNoRoute
		return dec, nil
	}
	dec.Prefix, dec.Kind, dec.Group = prefix, route.Kind(val.Type), val.Nhg
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
	case route.Throw: // main alone: the default table is empty
		dec.Action, dec.Reason = ActionPass, ReasonNoRoute
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

// evalRules mirrors rules_eval in fwd.c over the compiled rules: the
// verdict, the index of the rule that decided (-1: none) and, for
// RV_ROUTE, the slot.
func (d *Datapath) evalRules(rs *ruleSet, fr *famRules, f Flow) (fwdRuleVerdict, int, uint32) {
	if fr.fallback != "" {
		return fwdRuleVerdictRV_KERNEL, -1, 0
	}
	sclass, best := uint32(0), -1
	for _, s := range fr.srcs {
		if s.prefix.Contains(f.Src) && s.prefix.Bits() > best {
			sclass, best = s.class, s.prefix.Bits()
		}
	}
	iclass := int(rs.portClass[f.Iif])
	if f.Iif == loopback {
		iclass = int(rs.loClass)
	}
	li := iclass*fr.nsrc + int(sclass)
	if li >= len(fr.lists) {
		return fwdRuleVerdictRV_KERNEL, -1, 0
	}
	from := 0
	for _, idx := range fr.lists[li] {
		if int(idx) < from {
			continue
		}
		if idx == kernelRule {
			return fwdRuleVerdictRV_KERNEL, kernelRule, 0
		}
		p := fr.prules[idx]
		if !ruleMatch(&p, f) {
			continue
		}
		switch fwdRuleAction(p.Action) {
		case fwdRuleActionRA_LOOKUP:
			kind, plen, _, ok := d.compiledLookup(uint32(p.Table), f.Dst)
			if mode, _ := d.LookupState(); mode != LookupCompiled {
				_, val, found, err := d.lpm(uint32(p.Table), f.Dst)
				kind, plen, ok = route.Kind(val.Type), int(val.Plen), found && err == nil
			}
			if !ok || kind == route.Throw {
				continue
			}
			if p.Suppress != 0 && plen < int(p.Suppress) && (kind == route.Unicast || kind == route.Local || kind == route.KernelOnly) {
				continue
			}
			return fwdRuleVerdictRV_ROUTE, int(idx), uint32(p.Table)
		case fwdRuleActionRA_GOTO:
			if p.GotoIdx != ruleNone {
				from = int(p.GotoIdx)
			}
		case fwdRuleActionRA_NOP:
		case fwdRuleActionRA_LOCAL: // main's local routes
			if kind, _, _, ok := d.compiledLookup(0, f.Dst); ok && kind == route.Local {
				return fwdRuleVerdictRV_LOCAL, int(idx), 0
			}
		case fwdRuleActionRA_BLACKHOLE:
			return fwdRuleVerdictRV_BLACKHOLE, int(idx), 0
		case fwdRuleActionRA_UNREACHABLE:
			return fwdRuleVerdictRV_UNREACHABLE, int(idx), 0
		default:
			return fwdRuleVerdictRV_KERNEL, int(idx), 0
		}
	}
	return fwdRuleVerdictRV_NO_ROUTE, -1, 0
}

// ruleMatch mirrors rule_match in fwd.c.
func ruleMatch(p *fwdPrule, f Flow) bool {
	fl := fwdRuleFlags(p.Flags)
	masked := func(a netip.Addr, want, mask [16]byte) bool {
		var b [16]byte
		if a.Is4() {
			v := a.As4()
			copy(b[:], v[:])
		} else {
			b = a.As16()
		}
		for i := range b {
			if (b[i]^want[i])&mask[i] != 0 {
				return false
			}
		}
		return true
	}
	m := true
	switch {
	case fl&fwdRuleFlagsRF_SRC != 0 && !masked(f.Src, p.Src, p.SrcMask):
		m = false
	case fl&fwdRuleFlagsRF_DST != 0 && !masked(f.Dst, p.Dst, p.DstMask):
		m = false
	case fl&fwdRuleFlagsRF_IIF != 0 && uint32(f.Iif) != p.Iif:
		m = false
	case fl&fwdRuleFlagsRF_PROTO != 0 && f.Proto != p.Proto:
		m = false
	case fl&fwdRuleFlagsRF_SPORT != 0 && (f.Sport < p.SportLo || f.Sport > p.SportHi):
		m = false
	case fl&fwdRuleFlagsRF_DPORT != 0 && (f.Dport < p.DportLo || f.Dport > p.DportHi):
		m = false
	case fl&fwdRuleFlagsRF_TOS != 0 && f.Tos&p.TosMask != p.Tos:
		m = false
	}
	if fl&fwdRuleFlagsRF_INVERT != 0 {
		return !m
	}
	return m
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
func (d *Datapath) lpm(slot uint32, a netip.Addr) (netip.Prefix, fwdRouteVal, bool, error) {
	var (
		m    = d.objs.RoutesV6
		val  fwdRouteVal
		bits = 128
		key  = func(p netip.Prefix) any { k := v6Key(slot, p); return &k }
	)
	if a.Is4() {
		m, bits = d.objs.RoutesV4, 32
		key = func(p netip.Prefix) any { k := v4Key(slot, p); return &k }
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
