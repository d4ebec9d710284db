package fib

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

// TestOwnRulesAndTables: Apply writes a change into its Route.Table;
// SetOwnRules adds and removes rules of our protocol only, marked with
// it, and leaves the operator's.
func TestOwnRulesAndTables(t *testing.T) {
	inLab(t, func(l *lab.Lab, ifindex int) {
		tb, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()
		tb.Protocol = 200
		nh := []route.NextHop{{Gateway: mustAddr("10.99.0.2"), Ifindex: ifindex}}
		for _, err := range tb.Apply([]route.Change{
			{Route: route.Route{Table: 100, Prefix: pfxOf("198.51.100.0/24"), Kind: route.Unicast, NextHops: nh, Metric: 20}},
			{Route: route.Route{Prefix: pfxOf("198.51.101.0/24"), Kind: route.Unicast, NextHops: nh, Metric: 20}},
		}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		out, err := l.Output("r", "ip", "route", "show", "table", "100", "proto", "200")
		if err != nil || !strings.Contains(out, "198.51.100.0/24 via 10.99.0.2") {
			t.Errorf("table 100: %q %v", out, err)
		}
		out, _ = l.Output("r", "ip", "route", "show", "table", "main", "proto", "200")
		if strings.Contains(out, "198.51.100.0/24") || !strings.Contains(out, "198.51.101.0/24") {
			t.Errorf("main: %q", out)
		}
		ours, err := DumpOurs(100, 200)
		if err != nil || len(ours) != 1 {
			t.Errorf("DumpOurs(100) = %v, %v", ours, err)
		}

		run(t, l, "ip rule add iif v0 lookup 7 pref 900") // the operator's
		want := []OwnRule{
			{Family: 4, Priority: 1000, Iif: "v0", Table: 100},
			{Family: 4, Priority: 1001, Iif: "v0"},
			{Family: 6, Priority: 1000, Iif: "v0", Table: 100},
			{Family: 6, Priority: 1001, Iif: "v0"},
		}
		added, deleted, err := tb.SetOwnRules(want)
		if err != nil || len(added) != 4 || len(deleted) != 0 {
			t.Fatalf("SetOwnRules: added %v deleted %v err %v", added, deleted, err)
		}
		out, _ = l.Output("r", "ip", "rule", "show")
		for _, s := range []string{"1000:\tfrom all iif v0 lookup 100 proto 200", "1001:\tfrom all iif v0 unreachable proto 200", "900:\tfrom all iif v0 lookup 7"} {
			if !strings.Contains(out, s) {
				t.Errorf("ip rule lacks %q:\n%s", s, out)
			}
		}
		have, err := tb.OwnRules()
		if err != nil || len(have) != 4 || !slices.Contains(have, want[1]) {
			t.Errorf("OwnRules = %v, %v", have, err)
		}
		// Again: nothing to do.
		if added, deleted, err := tb.SetOwnRules(want); err != nil || len(added)+len(deleted) != 0 {
			t.Errorf("second SetOwnRules: %v %v %v", added, deleted, err)
		}
		// Removed, the operator's rule stays.
		if _, deleted, err := tb.SetOwnRules(nil); err != nil || len(deleted) != 4 {
			t.Errorf("SetOwnRules(nil): %v %v", deleted, err)
		}
		out, _ = l.Output("r", "ip", "rule", "show")
		if strings.Contains(out, "proto 200") || !strings.Contains(out, "lookup 7") {
			t.Errorf("after removal:\n%s", out)
		}
	})
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
func pfxOf(s string) netip.Prefix  { return netip.MustParsePrefix(s) }

// TestOwnPolicyRules: rules of ours with every selector and action of
// [[policy-route]] are written as wanted, read back equal (nothing to do
// the second time) and replaced by a changed selector.
func TestOwnPolicyRules(t *testing.T) {
	inLab(t, func(l *lab.Lab, ifindex int) {
		tb, err := Open(254)
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()
		tb.Protocol = 200
		want := []OwnRule{
			{Family: 4, Priority: 500, Src: pfxOf("10.1.0.0/24"), Table: 20000},
			{Family: 4, Priority: 510, Dst: pfxOf("198.51.100.0/24"), Iif: "v0", IPProto: 6, Dport: route.PortRange{Lo: 80, Hi: 80}, Sport: route.PortRange{Lo: 1000, Hi: 2000}, Table: 100},
			{Family: 4, Priority: 520, Tos: 0x10, Action: RuleBlackhole},
			{Family: 4, Priority: 521, Src: pfxOf("10.2.0.0/16"), Action: RuleProhibit},
			{Family: 6, Priority: 530, Src: pfxOf("fd00:1::/64"), IPProto: 58, Action: RuleUnreachable},
			{Family: 6, Priority: 540, Src: pfxOf("::/0"), Dst: pfxOf("2001:db8::/32"), Table: 20001},
		}
		added, deleted, err := tb.SetOwnRules(want)
		if err != nil || len(added) != len(want) || len(deleted) != 0 {
			t.Fatalf("SetOwnRules: added %v deleted %v err %v", added, deleted, err)
		}
		out, _ := l.Output("r", "ip", "rule", "show")
		for _, s := range []string{
			"500:\tfrom 10.1.0.0/24 lookup 20000 proto 200",
			"510:\tfrom all to 198.51.100.0/24 iif v0 ipproto tcp sport 1000-2000 dport 80 lookup 100 proto 200",
			"520:\tfrom all tos 0x10 blackhole proto 200",
			"521:\tfrom 10.2.0.0/16 prohibit proto 200",
		} {
			if !strings.Contains(out, s) {
				t.Errorf("ip rule lacks %q:\n%s", s, out)
			}
		}
		out, _ = l.Output("r", "ip", "-6", "rule", "show")
		for _, s := range []string{"530:\tfrom fd00:1::/64 ipproto ipv6-icmp unreachable proto 200", "540:\tfrom all to 2001:db8::/32 lookup 20001 proto 200"} {
			if !strings.Contains(out, s) {
				t.Errorf("ip -6 rule lacks %q:\n%s", s, out)
			}
		}
		if added, deleted, err := tb.SetOwnRules(want); err != nil || len(added)+len(deleted) != 0 {
			t.Errorf("second SetOwnRules: added %v deleted %v err %v", added, deleted, err)
		}
		// One rule changes its table: added, then the old one deleted.
		want[0].Table = 20002
		added, deleted, err = tb.SetOwnRules(want)
		if err != nil || len(added) != 1 || len(deleted) != 1 || deleted[0].Table != 20000 {
			t.Errorf("changed rule: added %v deleted %v err %v", added, deleted, err)
		}
		if _, deleted, err := tb.SetOwnRules(nil); err != nil || len(deleted) != len(want) {
			t.Errorf("SetOwnRules(nil): %v %v", deleted, err)
		}
	})
}
