package bypass

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// checkRules reports the ip rules (IPv4 and IPv6) beyond the kernel's
// defaults.
func checkRules() ([]Finding, error) {
	var out []Finding
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := ruleList(fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("ip rules: %w", err))
			continue
		}
		out = append(out, ruleFindings(fam, rules)...)
	}
	return out, errors.Join(errs...)
}

func ruleList(fam int) ([]netlink.Rule, error) {
	var err error
	for range 3 {
		var rs []netlink.Rule
		if rs, err = netlink.RuleList(fam); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return rs, err
		}
	}
	return nil, err
}

func ruleFindings(fam int, rules []netlink.Rule) []Finding {
	var out []Finding
	for _, r := range rules {
		if isDefaultRule(fam, r) {
			continue
		}
		ip := "ip"
		if fam == netlink.FAMILY_V6 {
			ip = "ip -6"
		}
		out = append(out, Finding{Kind: KindIPRule, Count: 1, Detail: ip + " rule " + describeRule(r)})
	}
	return out
}

// isDefaultRule: the rules a namespace starts with — IPv4 0 lookup local,
// 32766 lookup main, 32767 lookup default; IPv6 the first two — with no
// selector.
func isDefaultRule(fam int, r netlink.Rule) bool {
	want := map[int]int{0: unix.RT_TABLE_LOCAL, 32766: unix.RT_TABLE_MAIN}
	if fam == netlink.FAMILY_V4 {
		want[32767] = unix.RT_TABLE_DEFAULT
	}
	table, ok := want[r.Priority]
	return ok && r.Table == table && !hasSelector(r) && !r.Invert &&
		(r.Type == 0 || r.Type == unix.FR_ACT_TO_TBL) && r.Goto <= 0
}

func hasSelector(r netlink.Rule) bool {
	return r.Src != nil || r.Dst != nil || r.IifName != "" || r.OifName != "" || r.Mark != 0 ||
		(r.Mask != nil && *r.Mask != 0) || r.Tos != 0 || r.TunID != 0 || r.Flow > 0 ||
		r.Dport != nil || r.Sport != nil || r.IPProto != 0 || r.UIDRange != nil ||
		r.SuppressPrefixlen > 0 || r.SuppressIfgroup > 0
}

// describeRule prints a rule much as `ip rule` does.
func describeRule(r netlink.Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", r.Priority)
	if r.Invert {
		b.WriteString(" not")
	}
	from := "all"
	if r.Src != nil {
		from = r.Src.String()
	}
	fmt.Fprintf(&b, " from %s", from)
	if r.Dst != nil {
		fmt.Fprintf(&b, " to %s", r.Dst)
	}
	if r.Tos != 0 {
		fmt.Fprintf(&b, " tos %#x", r.Tos)
	}
	if r.Mark != 0 || (r.Mask != nil && *r.Mask != 0) {
		fmt.Fprintf(&b, " fwmark %#x", r.Mark)
		if r.Mask != nil && *r.Mask != 0xffffffff {
			fmt.Fprintf(&b, "/%#x", *r.Mask)
		}
	}
	if r.IifName != "" {
		fmt.Fprintf(&b, " iif %s", r.IifName)
	}
	if r.OifName != "" {
		fmt.Fprintf(&b, " oif %s", r.OifName)
	}
	if r.IPProto != 0 {
		fmt.Fprintf(&b, " ipproto %d", r.IPProto)
	}
	for _, p := range []struct {
		name string
		r    *netlink.RulePortRange
	}{{"sport", r.Sport}, {"dport", r.Dport}} {
		if p.r == nil {
			continue
		}
		if p.r.Start == p.r.End {
			fmt.Fprintf(&b, " %s %d", p.name, p.r.Start)
		} else {
			fmt.Fprintf(&b, " %s %d-%d", p.name, p.r.Start, p.r.End)
		}
	}
	if r.UIDRange != nil {
		fmt.Fprintf(&b, " uidrange %d-%d", r.UIDRange.Start, r.UIDRange.End)
	}
	// netlink v1.3.1 does not decode the action (rtmsg type): a rule with
	// neither table nor goto is a blackhole, unreachable or prohibit rule.
	switch {
	case r.Type == unix.FR_ACT_GOTO || r.Goto > 0:
		fmt.Fprintf(&b, " goto %d", r.Goto)
	case r.Type == unix.FR_ACT_NOP:
		b.WriteString(" nop")
	case r.Type == unix.FR_ACT_BLACKHOLE:
		b.WriteString(" blackhole")
	case r.Type == unix.FR_ACT_UNREACHABLE:
		b.WriteString(" unreachable")
	case r.Type == unix.FR_ACT_PROHIBIT:
		b.WriteString(" prohibit")
	case r.Table == 0:
		b.WriteString(" blackhole|unreachable|prohibit")
	default:
		fmt.Fprintf(&b, " lookup %s", tableName(r.Table))
	}
	if r.SuppressPrefixlen > 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixlen)
	}
	if r.SuppressIfgroup > 0 {
		fmt.Fprintf(&b, " suppress_ifgroup %d", r.SuppressIfgroup)
	}
	return b.String()
}

func tableName(t int) string {
	switch t {
	case unix.RT_TABLE_LOCAL:
		return "local"
	case unix.RT_TABLE_MAIN:
		return "main"
	case unix.RT_TABLE_DEFAULT:
		return "default"
	}
	return fmt.Sprint(t)
}
