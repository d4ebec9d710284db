package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// Policy rules are read from raw RTM_NEWRULE messages, not through
// netlink.RuleList: the library drops attributes it does not know, and a
// selector the data path ignores would make it forward packets the kernel
// routes elsewhere. Every attribute not understood ends up in
// route.Rule.Opaque.

// sizeofFibRuleHdr is struct fib_rule_hdr: family, dst_len, src_len, tos,
// table, res1, res2, action (u8 each), flags (u32).
const sizeofFibRuleHdr = 12

// FRA_* attributes newer than golang.org/x/sys/unix knows (Linux 6.12+):
// selectors XDP does not evaluate.
const (
	fraDSCP          = 25
	fraFlowlabel     = 26
	fraFlowlabelMask = 27
	fraSportMask     = 28
	fraDportMask     = 29
	fraDSCPMask      = 30
)

// noneU32 is the kernel's "none" for FRA_SUPPRESS_PREFIXLEN and
// FRA_SUPPRESS_IFGROUP (-1 as a u32).
const noneU32 = 0xffffffff

// ruleFromNetlink converts the body of an RTM_NEWRULE message (struct
// fib_rule_hdr and its attributes); ok is false for rules of other families
// than IPv4 and IPv6 (multicast routing rules) and for malformed messages.
func ruleFromNetlink(m []byte) (route.Rule, bool) {
	if len(m) < sizeofFibRuleHdr {
		return route.Rule{}, false
	}
	var r route.Rule
	addrLen := 0
	switch m[0] {
	case unix.AF_INET:
		r.Family, addrLen = 4, 4
	case unix.AF_INET6:
		r.Family, addrLen = 6, 16
	default:
		return route.Rule{}, false
	}
	dstLen, srcLen, tos, hdrTable, action := int(m[1]), int(m[2]), m[3], int(m[4]), m[7]
	flags := binary.NativeEndian.Uint32(m[8:])
	r.Tos = tos
	r.Invert = flags&unix.FIB_RULE_INVERT != 0
	r.SuppressPrefixlen, r.SuppressIfgroup = -1, -1
	table := hdrTable
	var src, dst []byte
	var mark, mask uint32
	var hasMark bool
	var masks [2]portMask // sport, dport
	opaque := func(s string) {
		if !slices.Contains(r.Opaque, s) {
			r.Opaque = append(r.Opaque, s)
		}
	}
	u32 := func(v []byte) (uint32, bool) {
		if len(v) < 4 {
			return 0, false
		}
		return binary.NativeEndian.Uint32(v), true
	}
	forAttrs(m[sizeofFibRuleHdr:], func(typ uint16, v []byte) {
		bad := func() { opaque("bad attr " + strconv.Itoa(int(typ))) }
		switch typ {
		case unix.FRA_UNSPEC, unix.FRA_PAD, unix.FRA_PROTOCOL:
			// Nothing, padding, who added the rule.
		case unix.FRA_PRIORITY:
			if x, ok := u32(v); ok {
				r.Priority = x
			} else {
				bad()
			}
		case unix.FRA_SRC:
			src = v
		case unix.FRA_DST:
			dst = v
		case unix.FRA_IIFNAME:
			r.IifName = cString(v)
		case unix.FRA_OIFNAME:
			opaque("oif " + cString(v))
		case unix.FRA_IP_PROTO:
			if len(v) >= 1 {
				r.IPProto = v[0]
			} else {
				bad()
			}
		case unix.FRA_SPORT_RANGE, unix.FRA_DPORT_RANGE:
			if len(v) < 4 {
				bad()
				return
			}
			pr := route.PortRange{Lo: binary.NativeEndian.Uint16(v), Hi: binary.NativeEndian.Uint16(v[2:])}
			if typ == unix.FRA_SPORT_RANGE {
				r.Sport = pr
			} else {
				r.Dport = pr
			}
		case unix.FRA_TABLE:
			if x, ok := u32(v); ok {
				table = int(x)
			} else {
				bad()
			}
		case unix.FRA_GOTO:
			if x, ok := u32(v); ok {
				r.Goto = x
			} else {
				bad()
			}
		case unix.FRA_SUPPRESS_PREFIXLEN, unix.FRA_SUPPRESS_IFGROUP:
			x, ok := u32(v)
			if !ok {
				bad()
				return
			}
			n := -1
			if x != noneU32 {
				n = int(x)
			}
			if typ == unix.FRA_SUPPRESS_PREFIXLEN {
				r.SuppressPrefixlen = n
			} else {
				r.SuppressIfgroup = n
			}
		case unix.FRA_FWMARK, unix.FRA_FWMASK:
			x, ok := u32(v)
			if !ok {
				bad()
				return
			}
			hasMark = true
			if typ == unix.FRA_FWMARK {
				mark = x
			} else {
				mask = x
			}
		case unix.FRA_UID_RANGE:
			if len(v) < 8 {
				bad()
				return
			}
			lo, hi := binary.NativeEndian.Uint32(v), binary.NativeEndian.Uint32(v[4:])
			if lo != 0 || hi != noneU32 {
				opaque(fmt.Sprintf("uidrange %d-%d", lo, hi))
			}
		case unix.FRA_L3MDEV:
			if len(v) < 1 || v[0] != 0 {
				opaque("l3mdev")
			}
		case unix.FRA_TUN_ID:
			if len(v) < 8 {
				bad()
				return
			}
			if id := binary.BigEndian.Uint64(v); id != 0 {
				opaque("tun_id " + strconv.FormatUint(id, 10))
			}
		case unix.FRA_FLOW:
			x, ok := u32(v)
			if !ok {
				bad()
				return
			}
			opaque(fmt.Sprintf("realms %d/%d", x>>16, x&0xffff))
		case fraDSCP:
			opaque("dscp " + hexBytes(v))
		case fraDSCPMask:
			opaque("dscp_mask " + hexBytes(v))
		case fraFlowlabel:
			opaque("flowlabel " + hexBytes(v))
		case fraFlowlabelMask:
			opaque("flowlabel_mask " + hexBytes(v))
		case fraSportMask, fraDportMask:
			if len(v) < 2 {
				bad()
				return
			}
			masks[typ-fraSportMask] = portMask{binary.NativeEndian.Uint16(v), true}
		default:
			// A selector of a newer kernel (or anything else): never
			// ignored.
			opaque("attr " + strconv.Itoa(int(typ)))
		}
	})
	// A port mask makes the range's start a value to match under the mask.
	// The kernel reports the full mask 0xffff for a single port: that is
	// the range itself.
	for i, pr := range []route.PortRange{r.Sport, r.Dport} {
		if m := masks[i]; m.set && (m.mask != 0xffff || pr.Lo != pr.Hi) {
			opaque(fmt.Sprintf("%s %d/%#x", [2]string{"sport", "dport"}[i], pr.Lo, m.mask))
		}
	}
	if hasMark && (mark != 0 || mask != 0) {
		opaque(fmt.Sprintf("fwmark %#x/%#x", mark, mask))
	}
	var ok bool
	if r.Src, ok = rulePrefix(src, srcLen, addrLen); !ok {
		opaque("bad from")
	}
	if r.Dst, ok = rulePrefix(dst, dstLen, addrLen); !ok {
		opaque("bad to")
	}
	switch action {
	case unix.FR_ACT_TO_TBL:
		r.Action = route.RuleLookup
		r.Table = table
		if table == unix.RT_TABLE_UNSPEC {
			// The table of the l3mdev (VRF) the packet belongs to.
			opaque("l3mdev")
		}
	case unix.FR_ACT_GOTO:
		r.Action = route.RuleGoto
	case unix.FR_ACT_NOP:
		r.Action = route.RuleNop
	case unix.FR_ACT_BLACKHOLE:
		r.Action = route.RuleBlackhole
	case unix.FR_ACT_UNREACHABLE, unix.FR_ACT_PROHIBIT:
		r.Action = route.RuleUnreachable
	default:
		// Unknown to us: the kernel decides what becomes of every packet
		// the rule may match.
		r.Action = route.RuleUnreachable
		opaque("action " + strconv.Itoa(int(action)))
	}
	return r, true
}

type portMask struct {
	mask uint16
	set  bool
}

// rulePrefix is a rule's from/to selector: invalid (any) for length 0; ok
// is false when the kernel's data does not fit the family.
func rulePrefix(addr []byte, bits, addrLen int) (netip.Prefix, bool) {
	if bits == 0 && addr == nil {
		return netip.Prefix{}, true
	}
	if bits > 8*addrLen {
		return netip.Prefix{}, false
	}
	if addr == nil {
		addr = make([]byte, addrLen) // length without address: the kernel compares with zeros
	}
	if len(addr) != addrLen {
		return netip.Prefix{}, false
	}
	if bits == 0 {
		return netip.Prefix{}, true
	}
	a, _ := netip.AddrFromSlice(addr)
	return netip.PrefixFrom(a, bits).Masked(), true
}

func cString(v []byte) string {
	if i := slices.Index(v, 0); i >= 0 {
		v = v[:i]
	}
	return string(v)
}

func hexBytes(v []byte) string {
	if len(v) == 0 {
		return "0x"
	}
	var b strings.Builder
	b.WriteString("0x")
	for _, c := range v {
		fmt.Fprintf(&b, "%02x", c)
	}
	return b.String()
}

// sortRules puts rules in evaluation order: IPv4 then IPv6, then by
// priority; rules of equal priority keep the kernel's order (it evaluates
// them in that order).
func sortRules(rs []route.Rule) {
	slices.SortStableFunc(rs, func(a, b route.Rule) int {
		if a.Family != b.Family {
			return a.Family - b.Family
		}
		switch {
		case a.Priority < b.Priority:
			return -1
		case a.Priority > b.Priority:
			return 1
		}
		return 0
	})
}

// dumpRules reads the policy rules of both families, in evaluation order.
func dumpRules() ([]route.Rule, error) {
	var rules []route.Rule
	err := retryErr(func() error {
		rules = rules[:0]
		req := nl.NewNetlinkRequest(unix.RTM_GETRULE, unix.NLM_F_DUMP)
		req.AddData(rawData(make([]byte, sizeofFibRuleHdr))) // family AF_UNSPEC: all
		return req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWRULE, func(m []byte) bool {
			if r, ok := ruleFromNetlink(m); ok {
				rules = append(rules, r)
			}
			return true
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	sortRules(rules)
	return rules, nil
}

// subscribeRules opens a netlink socket on the IPv4 and IPv6 rule groups
// (RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE) in the network namespace of the
// calling thread, like the library's *Subscribe functions. Every
// RTM_NEWRULE/RTM_DELRULE sets the returned channel (capacity one, so a
// burst coalesces): the receiver then dumps the rules. The socket closes
// when done is closed, then the channel is closed; receive errors (an
// overflow: changes were lost) go to onErr.
func subscribeRules(done <-chan struct{}, onErr func(error)) (<-chan struct{}, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE)
	if err != nil {
		return nil, err
	}
	changed := make(chan struct{}, 1)
	go func() {
		<-done
		s.Close()
	}()
	go func() {
		defer close(changed)
		for {
			msgs, from, err := s.Receive()
			if err != nil {
				select {
				case <-done:
				default:
					onErr(fmt.Errorf("rule subscription: %w", err))
				}
				return
			}
			if from.Pid != nl.PidKernel {
				continue
			}
			for _, m := range msgs {
				if m.Header.Type == unix.RTM_NEWRULE || m.Header.Type == unix.RTM_DELRULE {
					select {
					case changed <- struct{}{}:
					default: // already pending
					}
				}
			}
		}
	}()
	return changed, nil
}

var errRulesClosed = errors.New("rule subscription closed")
