package bgp

// Translation of Flowspec routes (RFC 8955 IPv4, RFC 8956 IPv6) into
// filter.Rule values. Pure functions, unit-tested component by component.
//
// Exact or nothing: a rule whose match or action filter.Rule cannot express
// exactly is refused with a reason (never approximated): a filter that
// matches more than was asked drops traffic nobody asked to drop, one that
// matches less lets an attack through while the operator believes it is
// filtered.
//
// Components:
//   - destination and source prefix (types 1, 2): Dst, Src. IPv6 prefixes
//     with a non-zero offset (RFC 8956 3.1) are refused.
//   - protocol / next header (3), port (4), destination port (5), source
//     port (6), ICMP type (7) and code (8), packet length (10), DSCP (11):
//     the numeric operators (RFC 8955 4.2.1.1), an OR of AND-ed
//     comparisons, become the exact set of values as sorted, merged
//     ranges. The lt/gt/eq bits are read as RFC 8955 defines them (000
//     false, 111 true; GoBGP's text prints these two the other way round).
//     A full range stays explicit: "port true" still means "has ports".
//   - TCP flags (9): the bitmask operators (RFC 8955 4.2.1.2) become a
//     list of filter.TCPFlags (an OR of "these set and those clear"),
//     computed exactly and checked against every one of the 256 flag
//     bytes. Values with bits beyond the 8 flag bits (2-octet values
//     naming the data offset, reserved or AE bits) are refused.
//   - fragment (12): the expression is evaluated for every fragment state
//     of a packet and becomes the Fragments mask. Refused when the result
//     depends on DF (filter.Rule does not see DF) or tells a last fragment
//     from a middle one (both are LaterFragment).
//   - flow label (13, IPv6) and every other type: refused.
//
// Actions (extended communities):
//   - traffic-rate-bytes (0x8006) and traffic-rate-packets (0x800c): rate 0
//     drops; another rate is a RateLimit (BPS or PPS, rounded, at least 1).
//     Several rates: a zero rate wins, else the lowest of one kind; a byte
//     rate and a packet rate together are refused.
//   - traffic-action (0x8007): terminal bit clear sets Action.Continue;
//     the sample bit is ignored (logged at debug).
//   - traffic-marking (0x8009): Action.Remark with the DSCP.
//   - redirect to IP (draft-ietf-idr-flowspec-redirect-ip): the
//     IPv4/IPv6-address-specific sub-type 0x0c communities (the target in
//     the community) and the older 0x0800 (the target is the route's next
//     hop) set Action.Redirect; with the copy bit set (mirror) refused.
//   - redirect to VRF (0x8008, 0x8108, 0x8208; IPv6 0x000d/0x800b): refused.
//   - no action at all: Accept (RFC 8955 7: the rule still matches).

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/filter"
)

// Extended community codes GoBGP v4.8.0 does not name or decodes as
// unknown.
const (
	ecSubTrafficRatePackets = 0x0c // type 0x80, RFC 8955 7.1 (traffic-rate-packets)
	ecSubRedirectIP         = 0x0c // types 0x01 (IPv4) and 0x00 (IPv6) address specific
	ecTypeRedirectIPLegacy  = 0x08 // 0x0800: redirect to the route's next hop
	ecSubRedirectIP6VRF     = 0x0d // IPv6 address specific, RFC 8956 6.1 rt-redirect-ipv6
)

// fsInput is what translation needs of one Flowspec path.
type fsInput struct {
	family  int // 4 or 6
	nlri    *bgp.FlowSpecNLRI
	attrs   []bgp.PathAttributeInterface
	peer    netip.Addr
	nexthop netip.Addr
}

// errFlowspec marks a rule refused by translation.
var errFlowspec = errors.New("flowspec")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errFlowspec}, args...)...)
}

// translateFlowspec turns a Flowspec route into a rule, or says why not.
func translateFlowspec(in fsInput) (filter.Rule, error) {
	r := filter.Rule{
		Name:   in.nlri.String(),
		Origin: filter.FromFlowspec,
		Peer:   in.peer,
		Family: in.family,
	}
	seen := map[bgp.BGPFlowSpecType]bool{}
	for _, c := range in.nlri.Value {
		t := c.Type()
		if seen[t] {
			return r, refuse("component %s appears twice (RFC 8955 4.2: each type at most once)", t)
		}
		seen[t] = true
		if err := translateComponent(&r, in.family, c); err != nil {
			return r, err
		}
	}
	a, err := translateActions(in)
	if err != nil {
		return r, err
	}
	r.Action = a
	if err := r.Validate(); err != nil {
		return r, refuse("%v", err)
	}
	return r, nil
}

// numericMax is the largest value of each numeric component's field.
var numericMax = map[bgp.BGPFlowSpecType]uint64{
	bgp.FLOW_SPEC_TYPE_IP_PROTO:  255,
	bgp.FLOW_SPEC_TYPE_PORT:      65535,
	bgp.FLOW_SPEC_TYPE_DST_PORT:  65535,
	bgp.FLOW_SPEC_TYPE_SRC_PORT:  65535,
	bgp.FLOW_SPEC_TYPE_ICMP_TYPE: 255,
	bgp.FLOW_SPEC_TYPE_ICMP_CODE: 255,
	bgp.FLOW_SPEC_TYPE_PKT_LEN:   65535,
	bgp.FLOW_SPEC_TYPE_DSCP:      63,
}

func translateComponent(r *filter.Rule, family int, c bgp.FlowSpecComponentInterface) error {
	switch c := c.(type) {
	case *bgp.FlowSpecDestinationPrefix:
		r.Dst = c.Prefix.Prefix.Masked()
		return nil
	case *bgp.FlowSpecSourcePrefix:
		r.Src = c.Prefix.Prefix.Masked()
		return nil
	case *bgp.FlowSpecDestinationPrefix6:
		if c.Offset != 0 {
			return refuse("destination prefix %s with offset %d: only offset 0 is supported", c.Prefix.Prefix, c.Offset)
		}
		r.Dst = c.Prefix.Prefix.Masked()
		return nil
	case *bgp.FlowSpecSourcePrefix6:
		if c.Offset != 0 {
			return refuse("source prefix %s with offset %d: only offset 0 is supported", c.Prefix.Prefix, c.Offset)
		}
		r.Src = c.Prefix.Prefix.Masked()
		return nil
	case *bgp.FlowSpecComponent:
		t := c.Type()
		if max, ok := numericMax[t]; ok {
			rs, err := numericRanges(c.Items, max)
			if err != nil {
				return refuse("%s: %v", t, err)
			}
			if len(rs) == 0 {
				return refuse("%s matches no value", t)
			}
			switch t {
			case bgp.FLOW_SPEC_TYPE_IP_PROTO:
				r.Protocols = rs
			case bgp.FLOW_SPEC_TYPE_PORT:
				r.Ports = rs
			case bgp.FLOW_SPEC_TYPE_DST_PORT:
				r.DstPorts = rs
			case bgp.FLOW_SPEC_TYPE_SRC_PORT:
				r.SrcPorts = rs
			case bgp.FLOW_SPEC_TYPE_ICMP_TYPE:
				r.ICMPTypes = rs
			case bgp.FLOW_SPEC_TYPE_ICMP_CODE:
				r.ICMPCodes = rs
			case bgp.FLOW_SPEC_TYPE_PKT_LEN:
				r.Lengths = rs
			case bgp.FLOW_SPEC_TYPE_DSCP:
				r.DSCP = rs
			}
			return nil
		}
		switch t {
		case bgp.FLOW_SPEC_TYPE_TCP_FLAG:
			fl, err := tcpFlags(c.Items)
			if err != nil {
				return refuse("tcp-flags: %v", err)
			}
			r.TCPFlags = fl
			return nil
		case bgp.FLOW_SPEC_TYPE_FRAGMENT:
			m, err := fragments(c.Items, family)
			if err != nil {
				return refuse("fragment: %v", err)
			}
			r.Fragments = m
			return nil
		case bgp.FLOW_SPEC_TYPE_LABEL:
			if family == 6 {
				return refuse("flow label (type 13) is not supported by the XDP filter")
			}
		}
		return refuse("component type %d (%s) is not supported", uint8(t), t)
	}
	return refuse("component type %d is unknown or malformed", uint8(c.Type()))
}

// Operator bits (RFC 8955 4.2.1.1 and 4.2.1.2).
const (
	opEnd = 0x80
	opAnd = 0x40
	opLt  = 0x04
	opGt  = 0x02
	opEq  = 0x01
	opNot = 0x02 // bitmask
	opM   = 0x01 // bitmask: match all bits
)

// span is an inclusive range of uint64 values; spans are kept sorted and
// disjoint.
type span struct{ lo, hi uint64 }

func intersect(a, b []span) []span {
	var out []span
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i].lo, b[j].lo), min(a[i].hi, b[j].hi)
		if lo <= hi {
			out = append(out, span{lo, hi})
		}
		if a[i].hi < b[j].hi {
			i++
		} else {
			j++
		}
	}
	return out
}

func union(a, b []span) []span {
	all := append(slices.Clone(a), b...)
	slices.SortFunc(all, func(x, y span) int { return cmp.Compare(x.lo, y.lo) })
	var out []span
	for _, s := range all {
		if n := len(out); n > 0 && (s.lo <= out[n-1].hi || s.lo == out[n-1].hi+1) {
			out[n-1].hi = max(out[n-1].hi, s.hi)
			continue
		}
		out = append(out, s)
	}
	return out
}

// comparison returns the values in 0..max that one {numeric_op, value}
// term matches.
func comparison(op uint8, v, max uint64) []span {
	full := []span{{0, max}}
	var s []span
	switch op & (opLt | opGt | opEq) {
	case 0: // false
		return nil
	case opEq:
		s = []span{{v, v}}
	case opGt:
		if v == math.MaxUint64 {
			return nil
		}
		s = []span{{v + 1, math.MaxUint64}}
	case opGt | opEq:
		s = []span{{v, math.MaxUint64}}
	case opLt:
		if v == 0 {
			return nil
		}
		s = []span{{0, v - 1}}
	case opLt | opEq:
		s = []span{{0, v}}
	case opLt | opGt: // !=
		if v > 0 {
			s = append(s, span{0, v - 1})
		}
		if v < math.MaxUint64 {
			s = append(s, span{v + 1, math.MaxUint64})
		}
	default: // true
		return full
	}
	return intersect(s, full)
}

// numericRanges evaluates a numeric operator list: an OR of AND-groups
// (AND binds tighter; the first term's AND bit is ignored).
func numericRanges(items []*bgp.FlowSpecComponentItem, max uint64) ([]filter.Range, error) {
	if len(items) == 0 {
		return nil, errors.New("no operator")
	}
	var result, group []span
	for i, it := range items {
		term := comparison(it.Op, it.Value, max)
		if i == 0 || it.Op&opAnd == 0 {
			if i > 0 {
				result = union(result, group)
			}
			group = term
			continue
		}
		group = intersect(group, term)
	}
	result = union(result, group)
	out := make([]filter.Range, len(result))
	for i, s := range result {
		out[i] = filter.Range{Lo: uint16(s.lo), Hi: uint16(s.hi)}
	}
	return out, nil
}

// maxTCPFlagTerms bounds the OR list a TCP flags expression may expand to.
const maxTCPFlagTerms = 64

// bitmaskTerm returns one {bitmask_op, value} term as an OR of
// (set, clear) conjunctions over 8 bits.
func bitmaskTerm(op uint8, v uint8) []filter.TCPFlags {
	match, not := op&opM != 0, op&opNot != 0
	var out []filter.TCPFlags
	bits := func(f func(b uint8) filter.TCPFlags) []filter.TCPFlags {
		for b := uint8(1); b != 0; b <<= 1 {
			if v&b != 0 {
				out = append(out, f(b))
			}
		}
		return out
	}
	switch {
	case match && !not: // all of v set (v = 0: always)
		return []filter.TCPFlags{{Set: v}}
	case match && not: // not all of v set: some bit of v clear (v = 0: never)
		return bits(func(b uint8) filter.TCPFlags { return filter.TCPFlags{Clear: b} })
	case !match && !not: // any of v set (v = 0: never)
		return bits(func(b uint8) filter.TCPFlags { return filter.TCPFlags{Set: b} })
	default: // none of v set (v = 0: always)
		return []filter.TCPFlags{{Clear: v}}
	}
}

// and is the conjunction of two OR lists.
func andFlags(a, b []filter.TCPFlags) []filter.TCPFlags {
	var out []filter.TCPFlags
	for _, x := range a {
		for _, y := range b {
			z := filter.TCPFlags{Set: x.Set | y.Set, Clear: x.Clear | y.Clear}
			if z.Set&z.Clear == 0 {
				out = append(out, z)
			}
		}
	}
	return out
}

// simplifyFlags drops duplicates and conjunctions implied by another one
// (a term that requires more than another matches a subset of it).
func simplifyFlags(l []filter.TCPFlags) []filter.TCPFlags {
	slices.SortFunc(l, func(a, b filter.TCPFlags) int {
		return cmp.Or(cmp.Compare(popcount(a), popcount(b)), cmp.Compare(a.Set, b.Set), cmp.Compare(a.Clear, b.Clear))
	})
	var out []filter.TCPFlags
next:
	for _, x := range l {
		for _, y := range out {
			if y.Set&x.Set == y.Set && y.Clear&x.Clear == y.Clear {
				continue next // y is weaker: x adds nothing
			}
		}
		out = append(out, x)
	}
	return out
}

func popcount(f filter.TCPFlags) int {
	n := 0
	for v := uint16(f.Set)<<8 | uint16(f.Clear); v != 0; v &= v - 1 {
		n++
	}
	return n
}

// bitmaskMatch evaluates a bitmask operator list on one data value (RFC
// 8955 4.2.1.2), the reference the translations are checked against.
func bitmaskMatch(items []*bgp.FlowSpecComponentItem, data uint64) bool {
	result, group := false, false
	for i, it := range items {
		var t bool
		if it.Op&opM != 0 {
			t = data&it.Value == it.Value
		} else {
			t = data&it.Value != 0
		}
		if it.Op&opNot != 0 {
			t = !t
		}
		if i == 0 || it.Op&opAnd == 0 {
			if i > 0 {
				result = result || group
			}
			group = t
			continue
		}
		group = group && t
	}
	return result || group
}

// tcpFlags translates a TCP flags component.
func tcpFlags(items []*bgp.FlowSpecComponentItem) ([]filter.TCPFlags, error) {
	if len(items) == 0 {
		return nil, errors.New("no operator")
	}
	var result, group []filter.TCPFlags
	for i, it := range items {
		if it.Value > 0xff {
			return nil, fmt.Errorf("value %#x names bits beyond the 8 TCP flags (data offset, reserved, AE)", it.Value)
		}
		term := bitmaskTerm(it.Op, uint8(it.Value))
		if i == 0 || it.Op&opAnd == 0 {
			if i > 0 {
				result = append(result, group...)
			}
			group = term
		} else {
			group = andFlags(group, term)
		}
		if len(group) > maxTCPFlagTerms || len(result) > maxTCPFlagTerms {
			return nil, fmt.Errorf("expression expands to more than %d alternatives", maxTCPFlagTerms)
		}
	}
	result = simplifyFlags(append(result, group...))
	if len(result) > maxTCPFlagTerms {
		return nil, fmt.Errorf("expression expands to more than %d alternatives", maxTCPFlagTerms)
	}
	if len(result) == 0 {
		return nil, errors.New("matches no packet")
	}
	// The translation must agree with the operators on every flag byte.
	for d := range 256 {
		want := bitmaskMatch(items, uint64(d))
		got := slices.ContainsFunc(result, func(f filter.TCPFlags) bool {
			return uint8(d)&f.Set == f.Set && uint8(d)&f.Clear == 0
		})
		if got != want {
			return nil, fmt.Errorf("internal error: translation differs on flags %#02x", d)
		}
	}
	return result, nil
}

// Fragment bits of the component (RFC 8955 4.2.2.12).
const (
	fragDF  = 0x01
	fragIsF = 0x02
	fragFF  = 0x04
	fragLF  = 0x08
)

// fragments translates a fragment component into a filter.Fragments mask
// by evaluating it on each state a packet can be in.
func fragments(items []*bgp.FlowSpecComponentItem, family int) (uint8, error) {
	if len(items) == 0 {
		return 0, errors.New("no operator")
	}
	for _, it := range items {
		if it.Value&^uint64(fragDF|fragIsF|fragFF|fragLF) != 0 {
			return 0, fmt.Errorf("value %#x has undefined bits", it.Value)
		}
		if family == 6 && it.Value&fragDF != 0 {
			return 0, errors.New("dont-fragment does not exist in IPv6 (RFC 8956 3.7)")
		}
	}
	states := []struct {
		bits  uint64
		class uint8
	}{
		{0, filter.NotFragment},
		{fragIsF | fragFF, filter.FirstFragment},
		{fragIsF, filter.LaterFragment},          // a middle fragment
		{fragIsF | fragLF, filter.LaterFragment}, // the last one
	}
	var mask uint8
	middle := false
	for i, st := range states {
		m := bitmaskMatch(items, st.bits)
		if family == 4 && bitmaskMatch(items, st.bits|fragDF) != m {
			return 0, errors.New("the match depends on the DF bit, which the XDP filter does not see")
		}
		switch {
		case i == 2:
			middle = m
		case i == 3 && m != middle:
			return 0, errors.New("last-fragment alone: the XDP filter sees later fragments (offset > 0) as one class")
		}
		if m {
			mask |= st.class
		}
	}
	switch mask {
	case 0:
		return 0, errors.New("matches no packet")
	case filter.NotFragment | filter.AnyFragment:
		return 0, nil // every packet
	}
	return mask, nil
}

// translateActions reads the traffic filtering actions of a path.
func translateActions(in fsInput) (filter.Action, error) {
	var (
		a                 = filter.Action{Kind: filter.Accept}
		drop              bool
		bps, pps          float64
		haveBPS, havePPS  bool
		redirects         []netip.Addr
		rateErr           error
		copyBit, vrf, bad string
	)
	rate := func(kind string, r float32, v *float64, have *bool) {
		f := float64(r)
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0) || f < 0:
			rateErr = refuse("%s %v is not a rate", kind, r)
		case f == 0:
			drop = true
		case !*have || f < *v:
			*v, *have = f, true
		}
	}
	for _, attr := range in.attrs {
		switch attr := attr.(type) {
		case *bgp.PathAttributeExtendedCommunities:
			for _, ec := range attr.Value {
				switch ec := ec.(type) {
				case *bgp.TrafficRateExtended:
					rate("traffic-rate-bytes", ec.Rate, &bps, &haveBPS)
				case *bgp.TrafficActionExtended:
					a.Continue = !ec.Terminal
				case *bgp.TrafficRemarkExtended:
					if ec.DSCP > 63 {
						bad = fmt.Sprintf("traffic-marking DSCP %d is not 0-63", ec.DSCP)
					}
					a.Remark, a.DSCP = true, ec.DSCP
				case *bgp.RedirectTwoOctetAsSpecificExtended, *bgp.RedirectIPv4AddressSpecificExtended, *bgp.RedirectFourOctetAsSpecificExtended:
					vrf = ec.String()
				case *bgp.IPv4AddressSpecificExtended:
					if ec.SubType == ecSubRedirectIP && ec.IsTransitive {
						if ec.LocalAdmin&1 != 0 {
							copyBit = ec.IPv4.String()
						}
						redirects = append(redirects, ec.IPv4)
					}
				case *bgp.UnknownExtended:
					switch {
					case ec.Type == bgp.EC_TYPE_GENERIC_TRANSITIVE_EXPERIMENTAL && len(ec.Value) == 7 && ec.Value[0] == ecSubTrafficRatePackets:
						rate("traffic-rate-packets", math.Float32frombits(binary.BigEndian.Uint32(ec.Value[3:7])), &pps, &havePPS)
					case ec.Type == ecTypeRedirectIPLegacy && len(ec.Value) == 7 && ec.Value[0] == 0:
						if ec.Value[6]&1 != 0 {
							copyBit = in.nexthop.String()
						}
						if !in.nexthop.IsValid() || in.nexthop.IsUnspecified() {
							bad = "redirect to IP next hop (0x0800) without a next hop"
						}
						redirects = append(redirects, in.nexthop)
					}
				}
			}
		case *bgp.PathAttributeIP6ExtendedCommunities:
			for _, ec := range attr.Value {
				switch ec := ec.(type) {
				case *bgp.RedirectIPv6AddressSpecificExtended:
					vrf = ec.String()
				case *bgp.IPv6AddressSpecificExtended:
					switch {
					case ec.SubType == ecSubRedirectIP && ec.IsTransitive:
						if ec.LocalAdmin&1 != 0 {
							copyBit = ec.IPv6.String()
						}
						redirects = append(redirects, ec.IPv6)
					case ec.SubType == ecSubRedirectIP6VRF && ec.IsTransitive:
						vrf = ec.String()
					}
				}
			}
		}
	}
	switch {
	case rateErr != nil:
		return a, rateErr
	case bad != "":
		return a, refuse("%s", bad)
	case vrf != "":
		return a, refuse("redirect to VRF (%s) is not supported", vrf)
	case copyBit != "":
		return a, refuse("redirect with the copy bit (mirror to %s) is not supported", copyBit)
	}
	if len(redirects) > 0 {
		slices.SortFunc(redirects, netip.Addr.Compare)
		if redirects = slices.Compact(redirects); len(redirects) > 1 {
			return a, refuse("several redirect targets %v", redirects)
		}
		a.Redirect = redirects[0]
	}
	switch {
	case drop:
		a.Kind = filter.Drop
	case haveBPS && havePPS:
		return a, refuse("both a byte rate and a packet rate")
	case haveBPS:
		a.Kind, a.BPS = filter.RateLimit, max(1, uint64(math.Round(bps)))
	case havePPS:
		a.Kind, a.PPS = filter.RateLimit, max(1, uint64(math.Round(pps)))
	}
	return a, nil
}

// sampled reports whether a path asks for sampling (traffic-action S bit),
// which the filter ignores.
func sampled(attrs []bgp.PathAttributeInterface) bool {
	for _, attr := range attrs {
		if ec, ok := attr.(*bgp.PathAttributeExtendedCommunities); ok {
			for _, c := range ec.Value {
				if ta, ok := c.(*bgp.TrafficActionExtended); ok && ta.Sample {
					return true
				}
			}
		}
	}
	return false
}

// compareFlowspec orders two Flowspec NLRIs of one family by RFC 8955
// 5.1 precedence: negative when a comes first. Components are compared in
// order; a lower type, or a rule that still has a component where the
// other has ended, comes first. Prefixes: the lower address over the
// common length first, else the longer (more specific) one; other
// components: their bytes, memcmp over the common length, else the
// longer first.
func compareFlowspec(a, b *bgp.FlowSpecNLRI) int {
	for i := 0; ; i++ {
		if i >= len(a.Value) && i >= len(b.Value) {
			return 0
		}
		if i >= len(a.Value) {
			return 1 // end of list is type infinity
		}
		if i >= len(b.Value) {
			return -1
		}
		ca, cb := a.Value[i], b.Value[i]
		if c := cmp.Compare(ca.Type(), cb.Type()); c != 0 {
			return c
		}
		pa, oka := componentPrefix(ca)
		pb, okb := componentPrefix(cb)
		if oka && okb {
			if c := comparePrefixes(pa, pb); c != 0 {
				return c
			}
			continue
		}
		da, db := componentData(ca), componentData(cb)
		n := min(len(da), len(db))
		if c := bytes.Compare(da[:n], db[:n]); c != 0 {
			return c
		}
		if c := cmp.Compare(len(db), len(da)); c != 0 {
			return c // the longer string first
		}
	}
}

// comparePrefixes: the lowest value over the common length first; equal,
// the longer prefix first.
func comparePrefixes(a, b netip.Prefix) int {
	common := min(a.Bits(), b.Bits())
	ma, _ := a.Addr().Prefix(common)
	mb, _ := b.Addr().Prefix(common)
	if c := ma.Addr().Compare(mb.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(b.Bits(), a.Bits())
}

func componentPrefix(c bgp.FlowSpecComponentInterface) (netip.Prefix, bool) {
	switch c := c.(type) {
	case *bgp.FlowSpecDestinationPrefix:
		return c.Prefix.Prefix, true
	case *bgp.FlowSpecSourcePrefix:
		return c.Prefix.Prefix, true
	case *bgp.FlowSpecDestinationPrefix6:
		return c.Prefix.Prefix, true
	case *bgp.FlowSpecSourcePrefix6:
		return c.Prefix.Prefix, true
	}
	return netip.Prefix{}, false
}

// componentData is a component's encoding after its type octet.
func componentData(c bgp.FlowSpecComponentInterface) []byte {
	b, err := c.Serialize()
	if err != nil || len(b) == 0 {
		return nil
	}
	return b[1:]
}
