// Package filter holds the packet filter rules XDP applies before the route
// lookup: rules from the configuration ([[filter]]) and from BGP Flowspec
// (RFC 8955/8956), and their compilation into the per-field bitmap tables
// the XDP program classifies packets with (compile.go).
//
// A rule matches a packet when every field it sets matches (an empty field
// matches everything); within a field, a packet matches when it matches
// any of the listed values or ranges. Rules are evaluated in order; the
// first terminal action that matches decides.
package filter

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxRules is the number of rules XDP classifies at once (FILTER_MAX in
// bpf/fwd.h): one bit each in the per-field bitmaps.
const MaxRules = 1024

// Origin says where a rule came from.
type Origin string

const (
	FromConfig   Origin = "config"
	FromFlowspec Origin = "flowspec"
)

// Range is an inclusive range of values: ports, packet lengths, ICMP types.
type Range struct{ Lo, Hi uint16 }

func (r Range) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// TCPFlags matches when the packet has every flag of Set and none of
// Clear. A list of them matches when any does.
type TCPFlags struct{ Set, Clear uint8 }

// TCP flag bits, as in the TCP header's flags byte.
const (
	TCPFin uint8 = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
)

// Fragment states of a packet, as a bit mask of the states a rule accepts.
const (
	NotFragment   uint8 = 1 << iota // a whole packet
	FirstFragment                   // offset 0, more fragments
	LaterFragment                   // offset > 0: no L4 header
	AnyFragment   = FirstFragment | LaterFragment
)

// Action is what a matching rule does.
type ActionKind uint8

const (
	// Drop drops the packet in XDP.
	Drop ActionKind = iota + 1
	// Pass hands the packet to the kernel (its stack, its netfilter).
	Pass
	// RateLimit forwards packets within the rate and drops the rest.
	RateLimit
	// Count only counts: evaluation goes on with the next matching rule.
	Count
	// Accept forwards the packet normally: no later rule applies.
	Accept
)

func (k ActionKind) String() string {
	switch k {
	case Drop:
		return "drop"
	case Pass:
		return "pass"
	case RateLimit:
		return "rate-limit"
	case Count:
		return "count"
	case Accept:
		return "accept"
	}
	return fmt.Sprintf("action(%d)", uint8(k))
}

// Action is a rule's action with its parameters.
type Action struct {
	Kind ActionKind
	// RateLimit: packets per second or bytes per second (exactly one is
	// non-zero). Each CPU enforces its share (rate / CPUs): per-CPU token
	// buckets need no atomics.
	PPS, BPS uint64
	// DSCP, when Remark is set, rewrites the packets' DSCP (Flowspec
	// traffic-marking) of packets the rule lets through.
	Remark bool
	DSCP   uint8
	// Redirect, when valid, forwards the packets the rule lets through
	// by the route to this address instead of their destination's
	// (Flowspec redirect to IP next hop).
	Redirect netip.Addr
	// Continue: after this rule's action (rate-limit within the rate,
	// remark, redirect), later rules still apply (Flowspec traffic-action
	// without the terminal bit). Count always continues.
	Continue bool
}

// Rule is one filter rule.
type Rule struct {
	// Name identifies the rule: the config's name, or the Flowspec NLRI
	// in text.
	Name   string
	Origin Origin
	// Peer is the neighbor a Flowspec rule came from.
	Peer netip.Addr
	// Family is 4 or 6; 0 matches both (a rule without prefixes).
	Family int
	// Src and Dst: invalid matches any address.
	Src, Dst netip.Prefix
	// Protocols: IP protocol (IPv4) or next header (IPv6) numbers.
	Protocols []Range
	SrcPorts  []Range
	DstPorts  []Range
	// Ports matches when the source or the destination port does
	// (Flowspec type 4).
	Ports     []Range
	ICMPTypes []Range
	ICMPCodes []Range
	DSCP      []Range
	TCPFlags  []TCPFlags
	// Fragments: the fragment states matched (NotFragment, ...); 0: any.
	Fragments uint8
	// Lengths: the IP packet length (IPv4 total length, IPv6 payload
	// length + 40).
	Lengths []Range
	// Ingress: router ports (by ifindex) the packet arrived on; empty: any.
	Ingress []int
	Action  Action
}

// String is a one-line summary of the rule's match, for logs and the CLI.
func (r *Rule) String() string {
	var b strings.Builder
	add := func(k string, v any) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s %v", k, v)
	}
	ranges := func(rs []Range) string {
		s := make([]string, len(rs))
		for i, r := range rs {
			s[i] = r.String()
		}
		return strings.Join(s, ",")
	}
	if r.Src.IsValid() {
		add("src", r.Src)
	}
	if r.Dst.IsValid() {
		add("dst", r.Dst)
	}
	for _, f := range []struct {
		k  string
		rs []Range
	}{{"proto", r.Protocols}, {"sport", r.SrcPorts}, {"dport", r.DstPorts}, {"port", r.Ports},
		{"icmp-type", r.ICMPTypes}, {"icmp-code", r.ICMPCodes}, {"dscp", r.DSCP}, {"length", r.Lengths}} {
		if len(f.rs) > 0 {
			add(f.k, ranges(f.rs))
		}
	}
	if len(r.TCPFlags) > 0 {
		s := make([]string, len(r.TCPFlags))
		for i, f := range r.TCPFlags {
			s[i] = fmt.Sprintf("%#02x/%#02x", f.Set, f.Set|f.Clear)
		}
		add("tcp-flags", strings.Join(s, ","))
	}
	if r.Fragments != 0 {
		add("fragment", FragmentString(r.Fragments))
	}
	if len(r.Ingress) > 0 {
		add("in", r.Ingress)
	}
	if b.Len() == 0 {
		b.WriteString("any")
	}
	return b.String()
}

// FragmentString names a fragment mask.
func FragmentString(m uint8) string {
	var s []string
	if m&NotFragment != 0 {
		s = append(s, "no")
	}
	if m&FirstFragment != 0 {
		s = append(s, "first")
	}
	if m&LaterFragment != 0 {
		s = append(s, "later")
	}
	return strings.Join(s, ",")
}

// Validate reports what is wrong with the rule, naming the field.
func (r *Rule) Validate() error {
	for _, p := range []netip.Prefix{r.Src, r.Dst} {
		if !p.IsValid() {
			continue
		}
		fam := 6
		if p.Addr().Is4() {
			fam = 4
		}
		if r.Family != 0 && r.Family != fam {
			return fmt.Errorf("rule %q: prefixes of both families", r.Name)
		}
		r.Family = fam
	}
	for _, f := range []struct {
		k   string
		rs  []Range
		max uint16
	}{{"protocol", r.Protocols, 255}, {"icmp-type", r.ICMPTypes, 255}, {"icmp-code", r.ICMPCodes, 255}, {"dscp", r.DSCP, 63},
		{"source-port", r.SrcPorts, 65535}, {"destination-port", r.DstPorts, 65535}, {"port", r.Ports, 65535}, {"length", r.Lengths, 65535}} {
		for _, x := range f.rs {
			if x.Lo > x.Hi || x.Hi > f.max {
				return fmt.Errorf("rule %q: %s %s: want a range within 0-%d", r.Name, f.k, x, f.max)
			}
		}
	}
	switch r.Action.Kind {
	case Drop, Pass, Count, Accept:
	case RateLimit:
		if (r.Action.PPS == 0) == (r.Action.BPS == 0) {
			return fmt.Errorf("rule %q: rate-limit needs exactly one of a packet rate and a byte rate", r.Name)
		}
	default:
		return fmt.Errorf("rule %q: no action", r.Name)
	}
	if r.Action.Remark && r.Action.DSCP > 63 {
		return fmt.Errorf("rule %q: DSCP %d: want 0-63", r.Name, r.Action.DSCP)
	}
	if a := r.Action.Redirect; a.IsValid() && r.Family != 0 && (a.Is4() != (r.Family == 4)) {
		return fmt.Errorf("rule %q: redirect to %s: not of the rule's family", r.Name, a)
	}
	return nil
}
