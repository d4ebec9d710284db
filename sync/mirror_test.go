package sync

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// TestMirrorTables: with Options.MirrorTables only the listed tables (and
// main, and the tables sync writes) reach XDP; rules looking up another
// table reach it with an opaque selector (XDP passes what they may match
// to the kernel); kernel events of other tables are ignored.
func TestMirrorTables(t *testing.T) {
	in := func(table int, p string, nh route.NextHop) route.Route {
		r := via(p, 0, nh)
		r.Table = table
		return r
	}
	opt := policyOptions()
	opt.MirrorTables = func(t int) bool { return t == 100 }
	kernel := []route.Route{in(100, "198.51.100.0/24", gw("10.0.1.2", eth1)), in(300, "198.51.101.0/24", gw("10.0.2.2", eth2))}
	dp := newFakeDP()
	r := newRigKernel(t, opt, dp, newFakeFIBForTest(), kernel)
	r.ev(route.RuleSet{Rules: append(route.DefaultRules(),
		route.Rule{Family: 4, Priority: 100, Action: route.RuleLookup, Table: 100, SuppressPrefixlen: -1, SuppressIfgroup: -1},
		route.Rule{Family: 4, Priority: 200, Action: route.RuleLookup, Table: 300, SuppressPrefixlen: -1, SuppressIfgroup: -1})})
	eq(t, "table 100 mirrored", dp.egressIn(t, 100, "198.51.100.0/24"), []string{"2:" + mac1.String()})
	eq(t, "table 300 not", dp.egressIn(t, 300, "198.51.101.0/24"), []string(nil))
	eq(t, "policy table mirrored", dp.egressIn(t, 20000, "0.0.0.0/0"), []string{"3:" + mac2.String()})
	eq(t, "main mirrored", dp.egress(t, "10.0.1.0/24"), []string{"2:direct"})
	i100 := slices.IndexFunc(dp.rules, func(r route.Rule) bool { return r.Table == 100 })
	i300 := slices.IndexFunc(dp.rules, func(r route.Rule) bool { return r.Table == 300 })
	if i100 < 0 || i300 < 0 || len(dp.rules[i100].Opaque) != 0 || !slices.Equal(dp.rules[i300].Opaque, []string{"lookup-not-mirrored 300"}) {
		t.Errorf("rules handed to XDP: %+v", dp.rules)
	}
	if slices.ContainsFunc(r.st.rules, func(r route.Rule) bool { return len(r.Opaque) > 0 }) {
		t.Error("sync's copy of the kernel's rules was changed")
	}
	r.ev(route.RouteEvent{Route: in(300, "198.51.102.0/24", gw("10.0.2.2", eth2))})
	eq(t, "event of table 300 ignored", len(r.st.routeInfos(300, route.TablePrefix{}.Prefix)), 0)
	r.ev(route.RouteEvent{Route: in(100, "198.51.102.0/24", gw("10.0.2.2", eth2))})
	eq(t, "event of table 100", dp.egressIn(t, 100, "198.51.102.0/24"), []string{"3:" + mac2.String()})
}

func newFakeFIBForTest() *fakeFIB { return &fakeFIB{routes: map[netip.Prefix]route.Route{}} }
