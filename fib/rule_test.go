package fib

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// ruleMsg builds an RTM_NEWRULE body: struct fib_rule_hdr, then attributes.
type ruleMsg struct {
	family, dstLen, srcLen, tos, table, action uint8
	flags                                      uint32
	attrs                                      []attr
}

type attr struct {
	typ uint16
	v   []byte
}

func (m ruleMsg) bytes() []byte {
	b := []byte{m.family, m.dstLen, m.srcLen, m.tos, m.table, 0, 0, m.action}
	b = binary.NativeEndian.AppendUint32(b, m.flags)
	for _, a := range m.attrs {
		b = binary.NativeEndian.AppendUint16(b, uint16(4+len(a.v)))
		b = binary.NativeEndian.AppendUint16(b, a.typ)
		b = append(b, a.v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

func u8a(typ uint16, v uint8) attr { return attr{typ, []byte{v}} }
func u32a(typ uint16, v uint32) attr {
	return attr{typ, binary.NativeEndian.AppendUint32(nil, v)}
}
func strA(typ uint16, s string) attr { return attr{typ, append([]byte(s), 0)} }
func addrA(typ uint16, s string) attr {
	return attr{typ, netip.MustParseAddr(s).AsSlice()}
}
func rangeA(typ uint16, lo, hi uint16) attr {
	return attr{typ, binary.NativeEndian.AppendUint16(binary.NativeEndian.AppendUint16(nil, lo), hi)}
}
func pairA(typ uint16, a, b uint32) attr {
	return attr{typ, binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(nil, a), b)}
}

// base is a rule as the kernel reports one without extras.
func base(fam int, prio uint32) route.Rule {
	return route.Rule{Family: fam, Priority: prio, SuppressPrefixlen: -1, SuppressIfgroup: -1}
}

func TestRuleFromNetlink(t *testing.T) {
	v4, v6 := uint8(unix.AF_INET), uint8(unix.AF_INET6)
	suppressNone := []attr{u32a(unix.FRA_SUPPRESS_PREFIXLEN, 0xffffffff)}
	tests := []struct {
		name string
		m    ruleMsg
		want func(r route.Rule) route.Rule // applied to base(family, priority)
	}{
		{"default main rule", ruleMsg{family: v4, table: 254, action: unix.FR_ACT_TO_TBL,
			attrs: append([]attr{u32a(unix.FRA_TABLE, 254), u32a(unix.FRA_PRIORITY, 32766), u8a(unix.FRA_PROTOCOL, 2)}, suppressNone...)},
			func(r route.Rule) route.Rule { r.Priority, r.Table = 32766, 254; return r }},
		{"priority 0 (no FRA_PRIORITY), table from the header", ruleMsg{family: v4, table: 255, action: unix.FR_ACT_TO_TBL},
			func(r route.Rule) route.Rule { r.Table = 255; return r }},
		{"selectors, table > 255 from FRA_TABLE, suppress absent, unknown attribute", ruleMsg{family: v4, srcLen: 16,
			table: unix.RT_TABLE_COMPAT, action: unix.FR_ACT_TO_TBL, attrs: []attr{
				u32a(unix.FRA_TABLE, 1000), u32a(unix.FRA_PRIORITY, 100), addrA(unix.FRA_SRC, "10.1.0.0"),
				strA(unix.FRA_IIFNAME, "eth1"), u8a(unix.FRA_IP_PROTO, unix.IPPROTO_UDP),
				rangeA(unix.FRA_DPORT_RANGE, 53, 53), rangeA(unix.FRA_SPORT_RANGE, 1024, 65535),
				attr{fraDportMask, []byte{0xff, 0xff}}, // the kernel's for a single port: the range
				u32a(99, 7), {unix.FRA_PAD, nil}}},
			func(r route.Rule) route.Rule {
				r.Priority, r.Table = 100, 1000
				r.Src = netip.MustParsePrefix("10.1.0.0/16")
				r.IifName, r.IPProto = "eth1", unix.IPPROTO_UDP
				r.Dport, r.Sport = route.PortRange{Lo: 53, Hi: 53}, route.PortRange{Lo: 1024, Hi: 65535}
				r.Opaque = []string{"attr 99"}
				return r
			}},
		{"IPv6 suppress_prefixlength 0, to", ruleMsg{family: v6, dstLen: 32, table: 254, action: unix.FR_ACT_TO_TBL,
			attrs: []attr{u32a(unix.FRA_TABLE, 254), u32a(unix.FRA_PRIORITY, 32000), addrA(unix.FRA_DST, "2001:db8::"),
				u32a(unix.FRA_SUPPRESS_PREFIXLEN, 0), u32a(unix.FRA_SUPPRESS_IFGROUP, 5)}},
			func(r route.Rule) route.Rule {
				r.Family, r.Priority, r.Table = 6, 32000, 254
				r.Dst = netip.MustParsePrefix("2001:db8::/32")
				r.SuppressPrefixlen, r.SuppressIfgroup = 0, 5
				return r
			}},
		{"fwmark, uidrange (full: no selector), not", ruleMsg{family: v4, table: 101, action: unix.FR_ACT_TO_TBL,
			flags: unix.FIB_RULE_INVERT, attrs: []attr{u32a(unix.FRA_TABLE, 101), u32a(unix.FRA_PRIORITY, 32765),
				u32a(unix.FRA_FWMARK, 1), u32a(unix.FRA_FWMASK, 0xffffffff), pairA(unix.FRA_UID_RANGE, 0, 0xffffffff)}},
			func(r route.Rule) route.Rule {
				r.Priority, r.Table, r.Invert = 32765, 101, true
				r.Opaque = []string{"fwmark 0x1/0xffffffff"}
				return r
			}},
		{"fwmark 0 with a mask still selects", ruleMsg{family: v4, table: 101, action: unix.FR_ACT_TO_TBL,
			attrs: []attr{u32a(unix.FRA_FWMASK, 0xff)}},
			func(r route.Rule) route.Rule { r.Table = 101; r.Opaque = []string{"fwmark 0x0/0xff"}; return r }},
		{"kernel-only selectors", ruleMsg{family: v4, tos: 0x10, table: 100, action: unix.FR_ACT_TO_TBL, attrs: []attr{
			strA(unix.FRA_OIFNAME, "eth2"), pairA(unix.FRA_UID_RANGE, 1000, 1999), u32a(unix.FRA_FLOW, 1<<16|2),
			{unix.FRA_TUN_ID, binary.BigEndian.AppendUint64(nil, 42)}, u8a(fraDSCP, 46), rangeA(unix.FRA_DPORT_RANGE, 0x1200, 0x1200), attr{fraDportMask, []byte{0, 0xff}}}},
			func(r route.Rule) route.Rule {
				r.Table, r.Tos = 100, 0x10
				r.Opaque = []string{"oif eth2", "uidrange 1000-1999", "realms 1/2", "tun_id 42", "dscp 0x2e", "dport 4608/0xff00"}
				r.Dport = route.PortRange{Lo: 0x1200, Hi: 0x1200}
				return r
			}},
		{"l3mdev: table 0", ruleMsg{family: v4, action: unix.FR_ACT_TO_TBL, attrs: []attr{
			u8a(unix.FRA_L3MDEV, 1), u32a(unix.FRA_PRIORITY, 1000)}},
			func(r route.Rule) route.Rule { r.Priority = 1000; r.Opaque = []string{"l3mdev"}; return r }},
		{"goto", ruleMsg{family: v4, action: unix.FR_ACT_GOTO, flags: unix.FIB_RULE_UNRESOLVED,
			attrs: []attr{u32a(unix.FRA_GOTO, 200), u32a(unix.FRA_PRIORITY, 150)}},
			func(r route.Rule) route.Rule { r.Priority, r.Action, r.Goto = 150, route.RuleGoto, 200; return r }},
		{"nop", ruleMsg{family: v6, action: unix.FR_ACT_NOP},
			func(r route.Rule) route.Rule { r.Family, r.Action = 6, route.RuleNop; return r }},
		{"blackhole", ruleMsg{family: v4, action: unix.FR_ACT_BLACKHOLE},
			func(r route.Rule) route.Rule { r.Action = route.RuleBlackhole; return r }},
		{"prohibit", ruleMsg{family: v4, action: unix.FR_ACT_PROHIBIT},
			func(r route.Rule) route.Rule { r.Action = route.RuleUnreachable; return r }},
		{"unreachable", ruleMsg{family: v6, action: unix.FR_ACT_UNREACHABLE},
			func(r route.Rule) route.Rule { r.Family, r.Action = 6, route.RuleUnreachable; return r }},
		{"unknown action", ruleMsg{family: v4, action: 42},
			func(r route.Rule) route.Rule {
				r.Action = route.RuleUnreachable
				r.Opaque = []string{"action 42"}
				return r
			}},
		{"from length without address: zeros", ruleMsg{family: v4, srcLen: 8, table: 100, action: unix.FR_ACT_TO_TBL},
			func(r route.Rule) route.Rule { r.Table, r.Src = 100, netip.MustParsePrefix("0.0.0.0/8"); return r }},
		{"prefix length beyond the family: never any", ruleMsg{family: v4, dstLen: 40, table: 100, action: unix.FR_ACT_TO_TBL,
			attrs: []attr{addrA(unix.FRA_DST, "10.0.0.0")}},
			func(r route.Rule) route.Rule { r.Table, r.Opaque = 100, []string{"bad to"}; return r }},
		{"address of the wrong family", ruleMsg{family: v6, srcLen: 8, table: 100, action: unix.FR_ACT_TO_TBL,
			attrs: []attr{addrA(unix.FRA_SRC, "10.0.0.0")}},
			func(r route.Rule) route.Rule { r.Family, r.Table, r.Opaque = 6, 100, []string{"bad from"}; return r }},
		{"truncated attribute", ruleMsg{family: v4, table: 100, action: unix.FR_ACT_TO_TBL,
			attrs: []attr{{unix.FRA_IP_PROTO, nil}}},
			func(r route.Rule) route.Rule { r.Table, r.Opaque = 100, []string{"bad attr 22"}; return r }},
	}
	for _, tc := range tests {
		got, ok := ruleFromNetlink(tc.m.bytes())
		if !ok {
			t.Errorf("%s: not converted", tc.name)
			continue
		}
		want := tc.want(base(4, 0))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", tc.name, got, want)
		}
	}
	for _, fam := range []uint8{0, 128 /* RTNL_FAMILY_IPMR */, 129} {
		if r, ok := ruleFromNetlink(ruleMsg{family: fam, table: 254, action: unix.FR_ACT_TO_TBL}.bytes()); ok {
			t.Errorf("family %d converted: %v", fam, r)
		}
	}
	if _, ok := ruleFromNetlink([]byte{unix.AF_INET, 0, 0}); ok {
		t.Error("short message converted")
	}
}

func TestSortRules(t *testing.T) {
	mk := func(fam int, prio uint32, table int) route.Rule {
		return route.Rule{Family: fam, Priority: prio, Table: table}
	}
	rs := []route.Rule{mk(6, 0, 255), mk(4, 100, 1), mk(4, 0, 255), mk(4, 100, 2), mk(6, 5, 3), mk(4, 50, 4), mk(4, 100, 5)}
	sortRules(rs)
	want := []route.Rule{mk(4, 0, 255), mk(4, 50, 4), mk(4, 100, 1), mk(4, 100, 2), mk(4, 100, 5), mk(6, 0, 255), mk(6, 5, 3)}
	if !reflect.DeepEqual(rs, want) {
		t.Errorf("sorted %v, want %v", rs, want)
	}
}
