package fib

import (
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

// run runs commands (each a space-separated line) in the lab's router
// namespace.
func run(t *testing.T, l *lab.Lab, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if err := l.Run("r", strings.Fields(c)...); err != nil {
			t.Fatal(err)
		}
	}
}

func findRoute(rs []route.Route, table int, p string) (route.Route, bool) {
	for _, r := range rs {
		if r.Table == table && r.Prefix == netip.MustParsePrefix(p) {
			return r, true
		}
	}
	return route.Route{}, false
}

func checkTables(t *testing.T, what string, lists ...[]route.Route) {
	t.Helper()
	for _, rs := range lists {
		for _, r := range rs {
			if r.Table == 0 || r.Table == route.TableLocal {
				t.Errorf("%s: route %s of table %d", what, r.Prefix, r.Table)
			}
		}
	}
}

// TestWatcherAllTables: the snapshot has the routes of every table but
// local with their table, ours in any table, and the kernel's default
// rules; routes added to another table arrive with it (throw as Throw);
// a RouteResync covers every table.
func TestWatcherAllTables(t *testing.T) {
	inLab(t, func(l *lab.Lab, ifindex int) {
		run(t, l,
			"ip route add 198.51.100.0/24 via 10.99.0.2 dev v0 table 100",
			"ip -6 route add 2001:db8:1::/48 via fd99::2 dev v0 table 100",
			"ip route add 203.0.113.0/24 via 10.99.0.2 dev v0 table 100 proto 200",
			"ip route add 192.0.2.0/24 via 10.99.0.2 dev v0",
		)
		next := watch(t, &Watcher{Log: slog.New(slog.DiscardHandler)})
		snap, ok := next().(*route.Snapshot)
		if !ok {
			t.Fatal("no initial snapshot")
		}
		if !reflect.DeepEqual(snap.Rules, route.DefaultRules()) {
			t.Errorf("rules of a fresh namespace:\n%v\nwant (route.DefaultRules)\n%v", snap.Rules, route.DefaultRules())
		}
		checkTables(t, "snapshot", snap.Routes, snap.Ours)
		for _, want := range []struct {
			table int
			p     string
			ours  bool
		}{{100, "198.51.100.0/24", false}, {100, "2001:db8:1::/48", false}, {100, "203.0.113.0/24", true},
			{route.TableMain, "192.0.2.0/24", false}, {route.TableMain, "10.99.0.0/24", false}} {
			list := snap.Routes
			if want.ours {
				list = snap.Ours
			}
			if _, ok := findRoute(list, want.table, want.p); !ok {
				t.Errorf("snapshot (ours %v) without %s table %d: routes %v ours %v", want.ours, want.p, want.table, snap.Routes, snap.Ours)
			}
		}
		if dumped, err := Dump(); err != nil {
			t.Error(err)
		} else if !reflect.DeepEqual(dumped.Rules, snap.Rules) || len(dumped.Routes) != len(snap.Routes) || len(dumped.Ours) != len(snap.Ours) {
			t.Errorf("Dump differs from the watcher's snapshot: %+v", dumped)
		}
		if ours, err := DumpOurs(100, DefaultProtocol); err != nil || len(ours) != 1 || ours[0].Table != 100 {
			t.Errorf("DumpOurs(100): %v, %v; want 203.0.113.0/24 of table 100", ours, err)
		}
		if ours, err := DumpOurs(254, DefaultProtocol); err != nil || len(ours) != 0 {
			t.Errorf("DumpOurs(254): %v, %v; want none", ours, err)
		}

		// await returns the first route event that match accepts.
		await := func(what string, match func(route.RouteEvent) bool) route.RouteEvent {
			t.Helper()
			for {
				switch ev := next().(type) {
				case nil:
					t.Fatalf("%s: no event", what)
				case route.RouteEvent:
					checkTables(t, what, []route.Route{ev.Route})
					if match(ev) {
						return ev
					}
				}
			}
		}
		is := func(table int, p string, deleted bool) func(route.RouteEvent) bool {
			return func(ev route.RouteEvent) bool {
				return ev.Route.Table == table && ev.Route.Prefix == netip.MustParsePrefix(p) && ev.Deleted == deleted
			}
		}
		run(t, l, "ip route add 198.51.101.0/24 via 10.99.0.2 dev v0 table 100 proto static")
		if ev := await("route added to table 100", is(100, "198.51.101.0/24", false)); ev.Ours || ev.Route.Kind != route.Unicast {
			t.Errorf("route added to table 100: %+v", ev)
		}
		run(t, l, "ip route add throw 198.51.102.0/24 table 100")
		if ev := await("throw route", is(100, "198.51.102.0/24", false)); ev.Route.Kind != route.Throw {
			t.Errorf("throw route: kind %v, want throw", ev.Route.Kind)
		}
		run(t, l, "ip route add unreachable 198.51.103.0/24 table 101")
		if ev := await("unreachable route", is(101, "198.51.103.0/24", false)); ev.Route.Kind != route.Unreachable {
			t.Errorf("unreachable route: kind %v, want unreachable", ev.Route.Kind)
		}
		run(t, l, "ip route del 203.0.113.0/24 table 100 proto 200")
		if ev := await("our route deleted", is(100, "203.0.113.0/24", true)); !ev.Ours {
			t.Errorf("our route deleted from table 100: not ours: %+v", ev)
		}
		run(t, l, "ip route del throw 198.51.102.0/24 table 100")
		await("throw route deleted", is(100, "198.51.102.0/24", true))

		// Admin-down flushes IPv4 routes through v0 in every table: the
		// RouteResync keeps the other tables' routes that do not use it.
		run(t, l, "ip link set v0 down")
		for {
			ev := next()
			if ev == nil {
				t.Fatal("no RouteResync after link down")
			}
			rs, ok := ev.(route.RouteResync)
			if !ok {
				continue
			}
			checkTables(t, "RouteResync", rs.Routes, rs.Ours)
			for _, gone := range []string{"198.51.100.0/24", "198.51.101.0/24"} {
				if _, ok := findRoute(rs.Routes, 100, gone); ok {
					t.Errorf("RouteResync still has %s table 100", gone)
				}
			}
			if r, ok := findRoute(rs.Routes, 101, "198.51.103.0/24"); !ok || r.Kind != route.Unreachable {
				t.Errorf("RouteResync without unreachable 198.51.103.0/24 table 101: %v", rs.Routes)
			}
			break
		}
	})
}

// TestWatcherRules: rules added and deleted (both families, selectors,
// actions) arrive as RuleSet events holding every rule in order.
func TestWatcherRules(t *testing.T) {
	inLab(t, func(l *lab.Lab, _ int) {
		next := watch(t, &Watcher{Log: slog.New(slog.DiscardHandler)})
		snap, ok := next().(*route.Snapshot)
		if !ok {
			t.Fatal("no initial snapshot")
		}
		if !reflect.DeepEqual(snap.Rules, route.DefaultRules()) {
			t.Fatalf("rules of a fresh namespace: %v, want %v", snap.Rules, route.DefaultRules())
		}
		// awaitRules waits for the RuleSet equal to want (a burst may
		// coalesce, so sets between are skipped).
		awaitRules := func(what string, want []route.Rule) {
			t.Helper()
			var last []route.Rule
			for {
				switch ev := next().(type) {
				case nil:
					t.Fatalf("%s: no RuleSet with\n%v\nlast one:\n%v", what, rulesString(want), rulesString(last))
				case route.RuleSet:
					if reflect.DeepEqual(ev.Rules, want) {
						return
					}
					last = ev.Rules
				}
			}
		}
		lookup := func(fam int, prio uint32, table int) route.Rule {
			return route.Rule{Family: fam, Priority: prio, Action: route.RuleLookup, Table: table,
				SuppressPrefixlen: -1, SuppressIfgroup: -1}
		}
		added := []struct {
			cmd  string
			rule route.Rule
		}{
			{"ip rule add from 10.1.0.0/16 iif eth1 ipproto udp dport 53 lookup 100 prio 100", func() route.Rule {
				r := lookup(4, 100, 100)
				r.Src, r.IifName, r.IPProto, r.Dport = netip.MustParsePrefix("10.1.0.0/16"), "eth1", 17, route.PortRange{Lo: 53, Hi: 53}
				return r
			}()},
			{"ip rule add fwmark 1 lookup 101 prio 200", func() route.Rule {
				r := lookup(4, 200, 101)
				r.Opaque = []string{"fwmark 0x1/0xffffffff"}
				return r
			}()},
			{"ip -6 rule add to 2001:db8::/32 suppress_prefixlength 0 lookup main prio 300", func() route.Rule {
				r := lookup(6, 300, route.TableMain)
				r.Dst, r.SuppressPrefixlen = netip.MustParsePrefix("2001:db8::/32"), 0
				return r
			}()},
			{"ip rule add from 192.0.2.0/24 goto 32766 prio 400", func() route.Rule {
				r := lookup(4, 400, 0)
				r.Src, r.Action, r.Goto = netip.MustParsePrefix("192.0.2.0/24"), route.RuleGoto, 32766
				return r
			}()},
			{"ip rule add to 192.0.2.128/25 blackhole prio 500", func() route.Rule {
				r := lookup(4, 500, 0)
				r.Dst, r.Action = netip.MustParsePrefix("192.0.2.128/25"), route.RuleBlackhole
				return r
			}()},
			{"ip -6 rule add from 2001:db8:dead::/48 prohibit prio 600", func() route.Rule {
				r := lookup(6, 600, 0)
				r.Src, r.Action = netip.MustParsePrefix("2001:db8:dead::/48"), route.RuleUnreachable
				return r
			}()},
			{"ip rule add not from 10.0.0.0/8 sport 1000-2000 unreachable prio 700", func() route.Rule {
				r := lookup(4, 700, 0)
				r.Invert, r.Src, r.Sport, r.Action = true, netip.MustParsePrefix("10.0.0.0/8"), route.PortRange{Lo: 1000, Hi: 2000}, route.RuleUnreachable
				return r
			}()},
			{"ip rule add uidrange 1000-1999 oif v0 tos 0x10 lookup 102 prio 800", func() route.Rule {
				r := lookup(4, 800, 102)
				r.Tos, r.Opaque = 0x10, []string{"oif v0", "uidrange 1000-1999"}
				return r
			}()},
			{"ip -6 rule add iif v0 nop prio 900", func() route.Rule {
				r := lookup(6, 900, 0)
				r.IifName, r.Action = "v0", route.RuleNop
				return r
			}()},
			{"ip rule add from all lookup 1000 prio 1000", lookup(4, 1000, 1000)},
		}
		rules := route.DefaultRules()
		for _, a := range added {
			run(t, l, a.cmd)
			rules = append(rules, a.rule)
			sortRules(rules)
			awaitRules(a.cmd, slices.Clone(rules))
		}
		// A burst: several changes, then the set they leave.
		dels := []string{"ip rule del prio 100", "ip rule del prio 200", "ip -6 rule del prio 300"}
		run(t, l, dels...)
		rules = slices.DeleteFunc(rules, func(r route.Rule) bool { return r.Priority >= 100 && r.Priority <= 300 })
		awaitRules("burst of deletions", slices.Clone(rules))
		for _, a := range added[3:] {
			fam := "-4"
			if a.rule.Family == 6 {
				fam = "-6"
			}
			run(t, l, "ip "+fam+" rule del prio "+strconv.Itoa(int(a.rule.Priority)))
		}
		awaitRules("all deleted", route.DefaultRules())
	})
}

func rulesString(rs []route.Rule) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("  ")
		b.WriteString("v" + strconv.Itoa(r.Family) + " " + r.String() + "\n")
	}
	return b.String()
}
