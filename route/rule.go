package route

import (
	"net/netip"
	"strconv"
	"strings"
)

// RuleAction is what a policy rule does with the packets it matches.
type RuleAction uint8

const (
	// RuleLookup looks the destination up in Rule.Table; without a route
	// there (or with a throw route, or a result the rule suppresses) the
	// next rule applies.
	RuleLookup      RuleAction = iota
	RuleGoto                   // continue at the rule of priority Rule.Goto
	RuleNop                    // nothing: the next rule applies
	RuleBlackhole              // drop silently
	RuleUnreachable            // the kernel answers with an ICMP error (unreachable, prohibit)
)

func (a RuleAction) String() string {
	switch a {
	case RuleLookup:
		return "lookup"
	case RuleGoto:
		return "goto"
	case RuleNop:
		return "nop"
	case RuleBlackhole:
		return "blackhole"
	case RuleUnreachable:
		return "unreachable"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// PortRange is an inclusive range of ports; the zero value matches any.
type PortRange struct{ Lo, Hi uint16 }

// Any reports whether the range matches every port.
func (r PortRange) Any() bool { return r == PortRange{} }

// Rule is one kernel policy-routing rule (ip rule) of one family, as the
// kernel's fib_rules evaluate it for forwarded packets: rules apply in
// priority order; the first one whose selectors all match (or, with
// Invert, not all) acts.
type Rule struct {
	Family   int // 4 or 6
	Priority uint32
	Invert   bool
	// Selectors; the zero value of each matches any packet.
	Src, Dst     netip.Prefix // invalid: any
	IifName      string       // the ingress interface, by name ("" any)
	IPProto      uint8
	Sport, Dport PortRange
	Tos          uint8 // dsfield (ip rule tos/dsfield)
	// Opaque lists the selectors XDP cannot evaluate for a packet
	// (fwmark, uidrange, oif, l3mdev, tun_id, realms, ...): traffic that
	// may match such a rule is left to the kernel.
	Opaque []string

	Action RuleAction
	Table  int    // RuleLookup
	Goto   uint32 // RuleGoto: the target's priority
	// SuppressPrefixlen rejects a lookup result of this prefix length or
	// shorter (-1: none); SuppressIfgroup one through a device of this
	// group (-1: none).
	SuppressPrefixlen int
	SuppressIfgroup   int
}

// DefaultRules are the rules a fresh network namespace has (both
// families): local, main, default.
func DefaultRules() []Rule {
	var rs []Rule
	for _, fam := range []int{4, 6} {
		for _, d := range []struct {
			prio  uint32
			table int
		}{{0, TableLocal}, {32766, TableMain}, {32767, TableDefault}} {
			if fam == 6 && d.table == TableDefault {
				continue // IPv6 has no default-table rule
			}
			rs = append(rs, Rule{Family: fam, Priority: d.prio, Action: RuleLookup, Table: d.table,
				SuppressPrefixlen: -1, SuppressIfgroup: -1})
		}
	}
	return rs
}

// String is the rule in ip-rule syntax.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(uint64(r.Priority), 10) + ":")
	if r.Invert {
		b.WriteString(" not")
	}
	if r.Src.IsValid() {
		b.WriteString(" from " + r.Src.String())
	} else {
		b.WriteString(" from all")
	}
	if r.Dst.IsValid() {
		b.WriteString(" to " + r.Dst.String())
	}
	if r.Tos != 0 {
		b.WriteString(" tos 0x" + strconv.FormatUint(uint64(r.Tos), 16))
	}
	if r.IifName != "" {
		b.WriteString(" iif " + r.IifName)
	}
	if r.IPProto != 0 {
		b.WriteString(" ipproto " + strconv.Itoa(int(r.IPProto)))
	}
	for _, p := range []struct {
		name string
		r    PortRange
	}{{"sport", r.Sport}, {"dport", r.Dport}} {
		if p.r.Any() {
			continue
		}
		b.WriteString(" " + p.name + " " + strconv.Itoa(int(p.r.Lo)))
		if p.r.Hi != p.r.Lo {
			b.WriteString("-" + strconv.Itoa(int(p.r.Hi)))
		}
	}
	for _, o := range r.Opaque {
		b.WriteString(" " + o)
	}
	switch r.Action {
	case RuleLookup:
		b.WriteString(" lookup " + tableName(r.Table))
	case RuleGoto:
		b.WriteString(" goto " + strconv.FormatUint(uint64(r.Goto), 10))
	default:
		b.WriteString(" " + r.Action.String())
	}
	if r.SuppressPrefixlen >= 0 {
		b.WriteString(" suppress_prefixlength " + strconv.Itoa(r.SuppressPrefixlen))
	}
	if r.SuppressIfgroup >= 0 {
		b.WriteString(" suppress_ifgroup " + strconv.Itoa(r.SuppressIfgroup))
	}
	return b.String()
}

func tableName(t int) string {
	switch t {
	case TableLocal:
		return "local"
	case TableMain:
		return "main"
	case TableDefault:
		return "default"
	}
	return strconv.Itoa(t)
}

// RuleSet is the kernel's complete list of policy rules (both families),
// sent by the watcher at start (in Snapshot) and after every rule change.
type RuleSet struct {
	Rules []Rule
}
