package fib

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// OwnRule is a kernel policy rule of xdprouterd's own, marked with its
// protocol (FRA_PROTOCOL) so that it is told apart from the operator's.
// VRF-lite instances use "iif Iif lookup Table" and, with Table 0, "iif
// Iif unreachable"; policy routes ([[policy-route]]) add the other
// selectors and actions. The zero value of each selector matches any
// packet. OwnRule is comparable: SetOwnRules compares with ==.
type OwnRule struct {
	Family   int // 4 or 6
	Priority int
	Iif      string
	Src, Dst netip.Prefix // invalid: any
	IPProto  uint8
	Sport    route.PortRange
	Dport    route.PortRange
	Tos      uint8
	// Table is the table looked up; 0 (with Action 0) makes the rule
	// "unreachable".
	Table int
	// Action, if not 0, is a rule action without a table: RuleBlackhole,
	// RuleUnreachable (also written as Table 0, Action 0) or
	// RuleProhibit. OwnRules reports unreachable rules as Action 0.
	Action uint8
}

// Rule actions without a table (FR_ACT_*).
const (
	RuleBlackhole   = unix.FR_ACT_BLACKHOLE
	RuleUnreachable = unix.FR_ACT_UNREACHABLE
	RuleProhibit    = unix.FR_ACT_PROHIBIT
)

// norm puts r in the form OwnRules reports: masked prefixes, an
// unreachable rule as Table 0 and Action 0.
func (r OwnRule) norm() OwnRule {
	for _, p := range []*netip.Prefix{&r.Src, &r.Dst} {
		switch {
		case !p.IsValid():
		case p.Bits() == 0:
			*p = netip.Prefix{} // matches any, as the kernel reports it
		default:
			*p = p.Masked()
		}
	}
	if r.Action == RuleUnreachable {
		r.Action = 0
	}
	if r.Action != 0 {
		r.Table = 0
	}
	return r
}

func (r OwnRule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ipv%d %d:", r.Family, r.Priority)
	if r.Src.IsValid() {
		b.WriteString(" from " + r.Src.String())
	} else {
		b.WriteString(" from all")
	}
	if r.Dst.IsValid() {
		b.WriteString(" to " + r.Dst.String())
	}
	if r.Tos != 0 {
		fmt.Fprintf(&b, " tos %#x", r.Tos)
	}
	if r.Iif != "" {
		b.WriteString(" iif " + r.Iif)
	}
	if r.IPProto != 0 {
		b.WriteString(" ipproto " + strconv.Itoa(int(r.IPProto)))
	}
	for _, p := range []struct {
		name string
		r    route.PortRange
	}{{"sport", r.Sport}, {"dport", r.Dport}} {
		if p.r.Any() {
			continue
		}
		b.WriteString(" " + p.name + " " + strconv.Itoa(int(p.r.Lo)))
		if p.r.Hi != p.r.Lo {
			b.WriteString("-" + strconv.Itoa(int(p.r.Hi)))
		}
	}
	switch n := r.norm(); {
	case n.Action == RuleBlackhole:
		b.WriteString(" blackhole")
	case n.Action == RuleProhibit:
		b.WriteString(" prohibit")
	case n.Action != 0:
		b.WriteString(" action " + strconv.Itoa(int(n.Action)))
	case n.Table == 0:
		b.WriteString(" unreachable")
	default:
		b.WriteString(" lookup " + strconv.Itoa(n.Table))
	}
	return b.String()
}

// OwnRules lists the kernel's policy rules marked with the table's
// protocol, both families. They are read from raw messages (see
// rule.go): the library drops the rule's action.
func (t *Table) OwnRules() ([]OwnRule, error) {
	proto, err := protocol(t.Protocol)
	if err != nil {
		return nil, err
	}
	var out []OwnRule
	err = retryErr(func() error {
		out = out[:0]
		req := nl.NewNetlinkRequest(unix.RTM_GETRULE, unix.NLM_F_DUMP)
		req.AddData(rawData(make([]byte, sizeofFibRuleHdr))) // AF_UNSPEC: both families
		return req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWRULE, func(m []byte) bool {
			if o, ok := ownRuleFromNetlink(m, proto); ok {
				out = append(out, o)
			}
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list policy rules: %w", err)
	}
	return out, nil
}

// ownRuleFromNetlink converts an RTM_NEWRULE body of protocol proto; ok
// is false for other protocols and families.
func ownRuleFromNetlink(m []byte, proto int) (OwnRule, bool) {
	if len(m) < sizeofFibRuleHdr {
		return OwnRule{}, false
	}
	p := -1
	forAttrs(m[sizeofFibRuleHdr:], func(typ uint16, v []byte) {
		if typ == unix.FRA_PROTOCOL && len(v) >= 1 {
			p = int(v[0])
		}
	})
	if p != proto {
		return OwnRule{}, false
	}
	r, ok := ruleFromNetlink(m)
	if !ok {
		return OwnRule{}, false
	}
	o := OwnRule{Family: r.Family, Priority: int(r.Priority), Iif: r.IifName, Src: r.Src, Dst: r.Dst,
		IPProto: r.IPProto, Sport: r.Sport, Dport: r.Dport, Tos: r.Tos}
	switch act := m[7]; act {
	case unix.FR_ACT_TO_TBL:
		o.Table = r.Table
	case unix.FR_ACT_UNREACHABLE:
	default:
		o.Action = act
	}
	if len(r.Opaque) > 0 {
		// A selector we never write: the rule is not one we want (a
		// distinct value so that it never equals a wanted rule).
		o.Iif += " " + strings.Join(r.Opaque, " ")
	}
	return o, true
}

// SetOwnRules makes the kernel's rules of the table's protocol exactly
// want: missing ones are added first, then those not wanted are deleted
// (a rule that changes never leaves a gap). It returns what it found and
// every error, joined; what succeeded stays.
func (t *Table) SetOwnRules(want []OwnRule) (added, deleted []OwnRule, err error) {
	have, err := t.OwnRules()
	if err != nil {
		return nil, nil, err
	}
	want = slices.Clone(want)
	for i := range want {
		want[i] = want[i].norm()
	}
	var errs []error
	for _, w := range want {
		if slices.Contains(have, w) || slices.Contains(added, w) {
			continue
		}
		if err := t.h.RuleAdd(t.netlinkRule(w)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add rule %s: %w", w, err))
			continue
		}
		added = append(added, w)
	}
	for _, h := range have {
		if slices.Contains(want, h) {
			continue
		}
		if err := t.h.RuleDel(t.netlinkRule(h)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete rule %s: %w", h, err))
			continue
		}
		deleted = append(deleted, h)
	}
	return added, deleted, errors.Join(errs...)
}

func (t *Table) netlinkRule(o OwnRule) *netlink.Rule {
	proto, _ := protocol(t.Protocol)
	o = o.norm()
	r := netlink.NewRule()
	r.Family = unix.AF_INET
	if o.Family == 6 {
		r.Family = unix.AF_INET6
	}
	r.Priority = o.Priority
	r.IifName, _, _ = strings.Cut(o.Iif, " ") // an unknown rule of ours (see ownRuleFromNetlink)
	r.Protocol = uint8(proto)
	r.Src, r.Dst = ipNet(o.Src), ipNet(o.Dst)
	r.IPProto = int(o.IPProto)
	if !o.Sport.Any() {
		r.Sport = netlink.NewRulePortRange(o.Sport.Lo, o.Sport.Hi)
	}
	if !o.Dport.Any() {
		r.Dport = netlink.NewRulePortRange(o.Dport.Lo, o.Dport.Hi)
	}
	r.Tos = uint(o.Tos)
	switch {
	case o.Action != 0:
		r.Type = o.Action
		r.Table = 0
	case o.Table == 0:
		r.Type = RuleUnreachable
		r.Table = 0
	default:
		r.Table = o.Table
	}
	return r
}

// ipNet is a rule selector for the library; nil for any.
func ipNet(p netip.Prefix) *net.IPNet {
	if !p.IsValid() {
		return nil
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
