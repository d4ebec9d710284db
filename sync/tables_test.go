package sync

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// tk is the key of prefix s in table.
func tk(table int, s string) route.TablePrefix {
	return route.TablePrefix{Table: table, Prefix: pfx(s)}
}

// inTable is r in kernel table t.
func inTable(t int, r route.Route) route.Route { r.Table = t; return r }

// TestTablesCoexist: the same prefix in table 100 and main is two routes,
// each written to XDP with its table and its own next hops; deleting one
// leaves the other.
func TestTablesCoexist(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: inTable(100, via("198.51.100.0/24", 0, gw("10.0.1.2", eth1)))},
		route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))})
	eq(t, "table 100", r.dp.egressIn(t, 100, "198.51.100.0/24"), []string{"2:" + mac1.String()})
	eq(t, "main", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	eq(t, "entry tables", [2]int{r.dp.routes[tk(100, "198.51.100.0/24")].Table, r.dp.routes[mk("198.51.100.0/24")].Table},
		[2]int{100, route.TableMain})
	eq(t, "counts all tables", r.st.counts.XDP4, 6) // the rig's 2 connected and 2 local routes, and these
	// Table 254 given explicitly is main.
	r.ev(route.RouteEvent{Route: inTable(route.TableMain, via("198.51.101.0/24", 0, gw("10.0.2.2", eth2)))})
	eq(t, "explicit main", r.dp.egress(t, "198.51.101.0/24"), []string{"3:" + mac2.String()})

	// The same next hops in another table share the group.
	r.ev(route.RouteEvent{Route: inTable(100, via("198.51.101.0/24", 0, gw("10.0.2.2", eth2)))})
	if a, b := r.dp.routes[tk(100, "198.51.101.0/24")].Group, r.dp.routes[mk("198.51.100.0/24")].Group; a != b || a == 0 {
		t.Errorf("groups %d (table 100) and %d (main) for the same next hops, want one shared group", a, b)
	}

	infos := r.st.routeInfos(-1, pfx("198.51.100.0/24"))
	if len(infos) != 2 || infos[0].Table != route.TableMain || infos[1].Table != 100 {
		t.Errorf("route infos %+v, want main then table 100", infos)
	}
	if in := r.st.routeInfos(100, pfx("198.51.100.0/24")); len(in) != 1 || in[0].NextHops[0] != "via 10.0.1.2 dev eth1" {
		t.Errorf("route infos of table 100: %+v", in)
	}

	// Deleting table 100's route leaves main's.
	r.ev(route.RouteEvent{Route: inTable(100, via("198.51.100.0/24", 0)), Deleted: true})
	eq(t, "table 100 deleted", r.dp.egressIn(t, 100, "198.51.100.0/24"), []string(nil))
	eq(t, "main kept", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	if r.st.entries.get(tk(100, "198.51.100.0/24")) != nil {
		t.Error("deleted route of table 100 still tracked")
	}
	// And the other way round.
	r.ev(route.RouteEvent{Route: via("198.51.101.0/24", 0), Deleted: true})
	eq(t, "main deleted", r.dp.egress(t, "198.51.101.0/24"), []string(nil))
	eq(t, "table 100 kept", r.dp.egressIn(t, 100, "198.51.101.0/24"), []string{"3:" + mac2.String()})

	// A resync replaces every table's routes as a diff.
	writes := r.dp.writes
	r.ev(route.RouteResync{Routes: []route.Route{connected("10.0.1.0/24", eth1), connected("10.0.2.0/24", eth2),
		via("198.51.100.0/24", 0, gw("10.0.2.2", eth2)), inTable(100, via("198.51.101.0/24", 0, gw("10.0.2.2", eth2))),
		inTable(7, via("198.51.102.0/24", 0, gw("10.0.1.2", eth1)))}})
	eq(t, "resync writes", r.dp.writes-writes, 1) // table 7's route only
	eq(t, "table 7", r.dp.egressIn(t, 7, "198.51.102.0/24"), []string{"2:" + mac1.String()})
	r.ev(route.RouteResync{Routes: []route.Route{connected("10.0.1.0/24", eth1), connected("10.0.2.0/24", eth2)}})
	eq(t, "resync: table 100 gone", r.dp.egressIn(t, 100, "198.51.101.0/24"), []string(nil))
	eq(t, "resync: table 7 gone", r.dp.egressIn(t, 7, "198.51.102.0/24"), []string(nil))
	eq(t, "resync: main gone", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	eq(t, "XDP routes", len(r.dp.routes), 4)
}

// TestThrowAndKinds: kernel routes of other tables carry their kind to
// XDP; a throw route reaches it as Throw.
func TestThrowAndKinds(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: route.Route{Table: 100, Prefix: pfx("10.0.0.0/8"), Kind: route.Throw}},
		route.RouteEvent{Route: route.Route{Table: 100, Prefix: pfx("192.0.2.0/24"), Kind: route.Blackhole}},
		route.RouteEvent{Route: route.Route{Table: 100, Prefix: pfx("192.0.3.0/24"), Kind: route.Unreachable}},
		route.RouteEvent{Route: route.Route{Table: 100, Prefix: pfx("192.0.4.0/24"), Kind: route.KernelOnly}},
		route.RouteEvent{Route: route.Route{Prefix: pfx("192.0.5.0/24"), Kind: route.Throw}},
		route.RouteEvent{Route: inTable(100, connected("10.0.1.0/24", eth1))})
	eq(t, "throw", r.dp.routes[tk(100, "10.0.0.0/8")].Kind, route.Throw)
	eq(t, "blackhole", r.dp.egressIn(t, 100, "192.0.2.0/24"), []string{"blackhole"})
	eq(t, "unreachable", r.dp.egressIn(t, 100, "192.0.3.0/24"), []string{"unreachable"})
	eq(t, "kernel-only", r.dp.egressIn(t, 100, "192.0.4.0/24"), []string{"kernel-only"})
	eq(t, "throw in main", r.dp.egress(t, "192.0.5.0/24"), []string{"throw"})
	eq(t, "connected in table 100", r.dp.egressIn(t, 100, "10.0.1.0/24"), []string{"2:direct"})
	if in := r.st.routeInfos(100, pfx("10.0.0.0/8")); len(in) == 0 || in[0].Kind != "throw" || in[0].Table != 100 {
		t.Errorf("route info %+v", in)
	}
	r.ev(route.RouteEvent{Route: route.Route{Table: 100, Prefix: pfx("10.0.0.0/8"), Kind: route.Throw}, Deleted: true})
	eq(t, "throw deleted", r.dp.egressIn(t, 100, "10.0.0.0/8"), []string(nil))
}

// TestBGPInOptionsTable: BGP routes are installed in Options.Table (in
// the kernel and in XDP) and resolve through that table's routes only;
// local addresses stay in main.
func TestBGPInOptionsTable(t *testing.T) {
	var logs bytes.Buffer
	foreign := route.Route{Table: 5, Prefix: pfx("203.0.113.0/24"), Kind: route.Unicast, Metric: 20, Protocol: protoOurs,
		NextHops: []route.NextHop{gw("10.0.1.2", eth1)}}
	r := newRigWith(t, Options{Table: 100, Log: slog.New(slog.NewTextHandler(&logs, nil))}, foreign)
	eq(t, "local address in main", r.dp.egress(t, "10.0.1.1/32"), []string{"local"})
	eq(t, "ours of another table: mirrored", r.dp.egressIn(t, 5, "203.0.113.0/24"), []string{"2:" + mac1.String()})
	eq(t, "ours of another table: logged once", strings.Count(logs.String(), "another kernel table"), 1)
	eq(t, "ours of another table: not ours", r.st.counts.FIB4, 0)

	// Main's connected and static routes do not resolve it.
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0, gw("10.0.1.2", eth1))})
	r.bgp("198.51.100.0/24", "172.16.0.1")
	r.bgp("198.51.101.0/24", "10.0.2.2")
	eq(t, "unresolved by main's routes", r.fib.via("198.51.100.0/24"), "")
	eq(t, "unresolved by main's connected route", r.fib.via("198.51.101.0/24"), "")
	eq(t, "not in XDP", r.dp.egressIn(t, 100, "198.51.100.0/24"), []string(nil))
	if in := r.st.routeInfos(100, pfx("198.51.100.0/24")); len(in) != 1 || !in[0].Unresolved || in[0].Table != 100 {
		t.Errorf("route info %+v, want unresolved in table 100", in)
	}

	// Table 100's routes do.
	r.ev(route.RouteEvent{Route: inTable(100, connected("10.0.2.0/24", eth2))},
		route.RouteEvent{Route: inTable(100, via("172.16.0.0/16", 0, gw("10.0.2.2", eth2)))})
	eq(t, "resolved in table 100", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")
	eq(t, "kernel route's table", r.fib.routes[pfx("198.51.100.0/24")].Table, 100)
	eq(t, "connected in table 100", r.fib.via("198.51.101.0/24"), "[10.0.2.2@3]")
	eq(t, "XDP in table 100", r.dp.egressIn(t, 100, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	eq(t, "not in main", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	eq(t, "counts", [2]int{r.st.counts.FIB4, r.st.counts.XDP4}, [2]int{2, 10})

	// A change of main's route re-resolves nothing.
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0, gw("10.0.1.2", eth1)), Deleted: true})
	eq(t, "main's route gone: still resolved", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")

	// The kernel drops our route of table 100: reinstalled.
	writes := r.fib.writes
	r.ev(route.RouteEvent{Route: route.Route{Table: 100, Prefix: pfx("198.51.100.0/24"), Metric: 20, Protocol: protoOurs}, Ours: true, Deleted: true})
	eq(t, "reinstalled", r.fib.writes-writes, 1)
	// Our echo of another table is a foreign route: deleting it does not
	// touch ours.
	r.ev(route.RouteEvent{Route: foreign, Ours: true, Deleted: true})
	eq(t, "foreign deleted", r.dp.egressIn(t, 5, "203.0.113.0/24"), []string(nil))
	eq(t, "ours kept", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")

	// Table 100's route goes: withdrawn from both sinks.
	r.ev(route.RouteEvent{Route: inTable(100, via("172.16.0.0/16", 0)), Deleted: true})
	eq(t, "unresolved again", r.fib.via("198.51.100.0/24"), "")
	eq(t, "gone from XDP", r.dp.egressIn(t, 100, "198.51.100.0/24"), []string(nil))

	// Clean shutdown deletes ours from table 100.
	s := &Syncer{opt: r.st.opt, st: r.st}
	if err := s.RemoveKernelRoutes(); err != nil {
		t.Fatal(err)
	}
	eq(t, "after RemoveKernelRoutes", r.fib.via("198.51.101.0/24"), "")
}

// TestRules: the kernel's rules reach SetRules after the first snapshot,
// on every change, and again when a link an iif names appears; a failed
// call is retried.
func TestRules(t *testing.T) {
	rules := []route.Rule{
		{Family: 4, Priority: 0, Action: route.RuleLookup, Table: route.TableLocal, SuppressPrefixlen: -1, SuppressIfgroup: -1},
		{Family: 4, Priority: 100, IifName: "eth1", Action: route.RuleLookup, Table: 100, SuppressPrefixlen: -1, SuppressIfgroup: -1},
		{Family: 4, Priority: 200, IifName: "veth9", Action: route.RuleLookup, Table: 200, SuppressPrefixlen: -1, SuppressIfgroup: -1},
		{Family: 4, Priority: 32766, Action: route.RuleLookup, Table: route.TableMain, SuppressPrefixlen: -1, SuppressIfgroup: -1},
	}
	r := newRig(t)
	eq(t, "once after the first snapshot, without rules", r.dp.ruleCalls, 1)
	eq(t, "rules", len(r.dp.rules), 0)
	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))})
	eq(t, "not again for routes", r.dp.ruleCalls, 1)

	r.ev(route.RuleSet{Rules: rules})
	eq(t, "rule set", r.dp.ruleCalls, 2)
	eq(t, "rules", r.dp.rules, rules)
	eq(t, "iif indexes", r.dp.ruleIfs, []int{0, eth1, 0, 0})
	r.ev(route.RuleSet{Rules: rules})
	eq(t, "the same rules again: no call", r.dp.ruleCalls, 2)

	// veth9 appears: its index reaches XDP; an MTU change does nothing.
	r.ev(route.LinkEvent{Link: route.Link{Index: 12, Name: "veth9", MTU: 1500, Up: true}})
	eq(t, "link appeared", r.dp.ruleCalls, 3)
	eq(t, "iif indexes", r.dp.ruleIfs, []int{0, eth1, 12, 0})
	r.ev(route.LinkEvent{Link: route.Link{Index: 12, Name: "veth9", MTU: 1400, Up: true}})
	eq(t, "MTU change", r.dp.ruleCalls, 3)
	r.ev(route.LinkEvent{Link: route.Link{Index: 12, Name: "veth9"}, Deleted: true})
	eq(t, "link deleted", r.dp.ruleIfs, []int{0, eth1, 0, 0})

	// A failure is retried with the next apply.
	r.dp.failRules = 1
	r.ev(route.RuleSet{Rules: rules[1:]})
	eq(t, "failed call", r.dp.ruleCalls, 5)
	eq(t, "rules after the failure", len(r.dp.rules), 4)
	r.st.apply(0)
	eq(t, "retried", r.dp.rules, rules[1:])
	r.st.apply(0)
	eq(t, "not again", r.dp.ruleCalls, 6)

	// A resync snapshot with rules.
	r.ev(&route.Snapshot{
		Links:  []route.Link{{Index: eth1, Name: "eth1", MTU: 1500, Up: true, MAC: mac3}, {Index: eth2, Name: "eth2", MTU: 9000, Up: true, MAC: mac3}},
		Addrs:  []route.Addr{{Ifindex: eth1, Prefix: pfx("10.0.1.1/24")}, {Ifindex: eth2, Prefix: pfx("10.0.2.1/24")}},
		Routes: []route.Route{connected("10.0.1.0/24", eth1), connected("10.0.2.0/24", eth2)},
		Rules:  route.DefaultRules(),
	})
	eq(t, "snapshot rules", r.dp.rules, route.DefaultRules())
	eq(t, "calls", r.dp.ruleCalls, 7)
}

// TestRulesFirstSnapshotRun: through Run, the first snapshot's rules reach
// SetRules after its routes, with names resolved, and a failed call is
// retried by the worker without further input.
func TestRulesFirstSnapshotRun(t *testing.T) {
	dp, f := newFakeDP(), &fakeFIB{routes: map[netip.Prefix]route.Route{}}
	dp.failRules = 1
	s := New(Options{Datapath: dp, FIB: f, Metric: 20, Ports: []string{"eth1"}, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan any)
	done := make(chan struct{})
	go func() { _ = s.Run(ctx, events); close(done) }()
	defer func() { cancel(); <-done }()
	rules := []route.Rule{{Family: 6, Priority: 10, IifName: "eth1", Action: route.RuleLookup, Table: 100, SuppressPrefixlen: -1, SuppressIfgroup: -1}}
	events <- &route.Snapshot{
		Links:  []route.Link{{Index: eth1, Name: "eth1", MTU: 1500, Up: true, MAC: mac3}},
		Routes: []route.Route{connected("10.0.1.0/24", eth1), inTable(100, connected("10.0.1.0/24", eth1))},
		Rules:  rules,
	}
	var calls, n int
	var ifs []int
	poll(t, func() bool { // a failure, then the retry
		s.mu.Lock()
		defer s.mu.Unlock()
		calls, ifs, n = dp.ruleCalls, dp.ruleIfs, dp.ruleRoutes
		return calls >= 2
	})
	eq(t, "SetRules calls", calls, 2)
	eq(t, "iif indexes", ifs, []int{eth1})
	eq(t, "routes written before the rules", n, 2)
}

// TestAuditOtherTable: the audit compares by (table, prefix): a route of
// table 100 removed behind sync's back is rewritten, one it does not know
// is deleted, and main's route of the same prefix is left alone.
func TestAuditOtherTable(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: inTable(100, via("198.51.100.0/24", 0, gw("10.0.1.2", eth1)))},
		route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))})
	eq(t, "clean audit", r.st.audit(), 0)
	delete(r.dp.routes, tk(100, "198.51.100.0/24"))
	r.dp.routes[tk(100, "192.0.2.0/24")] = route.Entry{Table: 100, Prefix: pfx("192.0.2.0/24"), Kind: route.Blackhole}
	r.dp.routes[tk(7, "198.51.100.0/24")] = route.Entry{Table: 7, Prefix: pfx("198.51.100.0/24"), Kind: route.Blackhole}
	writes := r.dp.writes
	eq(t, "repairs", r.st.audit(), 3)
	eq(t, "rewritten", r.dp.egressIn(t, 100, "198.51.100.0/24"), []string{"2:" + mac1.String()})
	eq(t, "unknown deleted", r.dp.egressIn(t, 100, "192.0.2.0/24"), []string(nil))
	eq(t, "unknown table deleted", r.dp.egressIn(t, 7, "198.51.100.0/24"), []string(nil))
	eq(t, "main kept", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	eq(t, "writes", r.dp.writes-writes, 3)
	eq(t, "clean again", r.st.audit(), 0)

	// Read back with table 0 (a Datapath that leaves main unset): main.
	read, _ := r.dp.Routes()
	for i := range read {
		if read[i].Table == route.TableMain {
			read[i].Table = 0
		}
	}
	r.st.beginAudit()
	eq(t, "table 0 reads as main", r.st.finishAudit(read, nil), 0)
}

// TestAdoptOtherTable: a previous instance's XDP entries of other tables
// are taken over by (table, prefix): nothing right is rewritten.
func TestAdoptOtherTable(t *testing.T) {
	kernel := []route.Route{inTable(100, via("198.51.100.0/24", 0, gw("10.0.1.2", eth1))),
		inTable(100, route.Route{Prefix: pfx("10.0.0.0/8"), Kind: route.Throw}),
		via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))}
	r := newRigKernel(t, Options{}, newFakeDP(), &fakeFIB{routes: map[netip.Prefix]route.Route{}}, kernel)
	left := r.dp.clone()
	r2 := newRigKernel(t, Options{Adopt: left.xdpState()}, left, &fakeFIB{routes: map[netip.Prefix]route.Route{}}, kernel)
	eq(t, "XDP route writes at the restart", r2.dp.writes, 0)
	eq(t, "table 100", r2.dp.egressIn(t, 100, "198.51.100.0/24"), []string{"2:" + mac1.String()})
	eq(t, "main", r2.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	eq(t, "throw", r2.dp.egressIn(t, 100, "10.0.0.0/8"), []string{"throw"})
	eq(t, "counts", r2.st.counts.XDP4, 7)
}
