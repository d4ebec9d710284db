package sync

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

// TestKernelRouteReplaceFollowsKernel feeds the real kernel's route events
// (fib.Watcher in a namespace) to the state and checks, after each `ip
// route` command, that the kernel routes the state holds for the prefix
// are those the kernel has (a fresh dump), and what XDP gets for it. The
// regression: an IPv6 replace of a reject route by a unicast one (or of a
// route by one through other next hops) was added next to the old route,
// which made the pair ambiguous, kernel-only in XDP for good.
func TestKernelRouteReplaceFollowsKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: needs a network namespace (not in -short mode)")
	}
	if err := lab.Root(); err != nil {
		t.Skip(err)
	}
	l := lab.New("xsyn")
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := l.AddNS("r"); err != nil {
		t.Fatal(err)
	}
	setup := [][]string{
		{"ip", "link", "add", "eth1", "type", "veth", "peer", "name", "p1"},
		{"ip", "link", "set", "eth1", "up"}, {"ip", "link", "set", "p1", "up"},
		{"ip", "addr", "add", "10.0.1.1/24", "dev", "eth1"},
		{"ip", "addr", "add", "fd00:1::1/64", "dev", "eth1", "nodad"},
	}
	for n := 2; n <= 5; n++ {
		mac := fmt.Sprintf("02:00:00:00:00:%02x", n)
		setup = append(setup,
			[]string{"ip", "neigh", "replace", fmt.Sprintf("10.0.1.%d", n), "lladdr", mac, "dev", "eth1", "nud", "permanent"},
			[]string{"ip", "neigh", "replace", fmt.Sprintf("fd00:1::%d", n), "lladdr", mac, "dev", "eth1", "nud", "permanent"})
	}
	for _, c := range setup {
		if err := l.Run("r", c...); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan any, 64)
	watching := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := netns.GetFromName(l.NS("r"))
		if err == nil {
			err = netns.Set(ns)
			ns.Close()
		}
		if err != nil {
			watching <- err
			return
		}
		w := &fib.Watcher{Log: slog.New(slog.DiscardHandler)}
		watching <- w.Run(ctx, events)
	}()
	next := func() any {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case err := <-watching:
			t.Fatalf("watcher ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no event from the watcher in 10 s")
		}
		return nil
	}
	dp := newFakeDP()
	st := newState(Options{Datapath: dp, FIB: &fakeFIB{routes: map[netip.Prefix]route.Route{}}, Metric: 20,
		Ports: []string{"eth1"}, StaleAfter: 1}, slog.New(slog.DiscardHandler))
	snap, ok := next().(*route.Snapshot)
	if !ok {
		t.Fatal("the watcher's first event is not a snapshot")
	}
	st.kernelEvent(snap)
	st.apply(0)

	type step struct {
		cmd  string // ip route arguments after the family; P: the prefix, G<n>: gateway n
		want string // XDP: a kind, or the gateways (n) of the unicast route
		v6   bool   // IPv6 only (IPv4 append and delete work otherwise)
	}
	steps := []step{
		{cmd: "add prohibit P", want: "unreachable"},
		{cmd: "replace P via G2 dev eth1", want: "2"},                                             // the bug: stayed kernel-only
		{cmd: "replace P via G3 dev eth1", want: "3"},                                             // unicast by unicast
		{cmd: "append P via G4 dev eth1", want: "3 4", v6: true},                                  // an ECMP sibling
		{cmd: "del P via G3 dev eth1", want: "4", v6: true},                                       // one sibling goes
		{cmd: "append P via G5 dev eth1", want: "4 5", v6: true},                                  // ECMP again
		{cmd: "replace P via G2 dev eth1", want: "2"},                                             // multipath by one path
		{cmd: "replace prohibit P", want: "unreachable"},                                          // unicast by reject
		{cmd: "replace P nexthop via G2 dev eth1 nexthop via G3 dev eth1", want: "2 3", v6: true}, // reject by multipath
		{cmd: "replace blackhole P", want: "blackhole"},                                           // multipath by reject
		{cmd: "append P via G4 dev eth1", want: "kernel-only", v6: true},                          // two routes of one metric: the kernel's choice
		{cmd: "replace P via G5 dev eth1", want: "kernel-only", v6: true},                         // replaces the unicast one
		{cmd: "replace prohibit P", want: "kernel-only", v6: true},                                // replaces the blackhole
		{cmd: "del prohibit P", want: "5", v6: true},
	}
	for _, fam := range []string{"4", "6"} {
		for _, table := range []int{route.TableMain, 101} {
			p, g := "198.51.100.0/24", "10.0.1."
			if fam == "6" {
				p, g = "2001:db8:98::/48", "fd00:1::"
			}
			key := route.TablePrefix{Table: table, Prefix: pfx(p)}
			for _, s := range steps {
				if s.v6 && fam == "4" {
					continue
				}
				what := fmt.Sprintf("-%s table %d: %s", fam, table, s.cmd)
				// ip route VERB table N ...: nexthop lists must come last.
				f := strings.Fields(s.cmd)
				args := []string{"ip", "-" + fam, "route", f[0], "table", fmt.Sprint(table)}
				for _, a := range f[1:] {
					switch {
					case a == "P":
						a = p
					case a[0] == 'G':
						a = g + a[1:]
					}
					args = append(args, a)
				}
				if err := l.Run("r", args...); err != nil {
					t.Fatal(err)
				}
				// Every command sends one message for the prefix.
				for {
					ev := next()
					st.kernelEvent(ev)
					if re, ok := ev.(route.RouteEvent); ok && re.Route.Key() == key {
						break
					}
				}
				st.apply(0)

				var kernel []route.Route
				if err := l.Do("r", func() error {
					s, err := fib.Dump()
					for _, r := range s.Routes {
						if r.Key() == key {
							kernel = append(kernel, r)
						}
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				var have []route.Route
				if e := st.entries.get(key); e != nil {
					have = e.kernelRoutes()
				}
				if !sameRoutes(have, kernel) {
					t.Errorf("%s: state has kernel routes %v, the kernel %v", what, have, kernel)
				}
				if got := xdpOf(dp, key); got != s.want {
					t.Errorf("%s: XDP has %q, want %q", what, got, s.want)
				}
			}
			// Clean up for the next table.
			if err := l.Run("r", "ip", "-"+fam, "route", "flush", p, "table", fmt.Sprint(table)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// sameRoutes compares routes as sets (the kernel's order is not kept).
func sameRoutes(a, b []route.Route) bool {
	if len(a) != len(b) {
		return false
	}
	for _, r := range a {
		if !slices.ContainsFunc(b, func(k route.Route) bool { return sameRoute(k, r) }) {
			return false
		}
	}
	return true
}

// xdpOf is the kind of key's XDP entry, or for a unicast one the last
// bytes of its next hops' MACs (the gateway numbers here).
func xdpOf(dp *fakeDP, key route.TablePrefix) string {
	x, ok := dp.routes[key]
	if !ok {
		return "none"
	}
	if x.Kind != route.Unicast {
		return x.Kind.String()
	}
	var out []string
	for _, id := range dp.groups[x.Group] {
		if mac := net.HardwareAddr(dp.nhs[id].MAC); len(mac) == 6 {
			out = append(out, fmt.Sprint(mac[5]))
		} else {
			out = append(out, "?")
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestIPv6ReplaceEvents replays the events the kernel sends (captured with
// fib.Watcher) for `ip -6 route add prohibit P`, `ip -6 route replace P via
// G`, and back: a replace takes the place of the route it replaced, whose
// next hops (none, for a reject route) differ.
func TestIPv6ReplaceEvents(t *testing.T) {
	r := newRig(t)
	p := "2001:db8:98::/48"
	g1, g2 := gw("fd00:1::2", eth1), gw("fd00:1::3", eth1)
	r.ev(route.AddrEvent{Addr: route.Addr{Ifindex: eth1, Prefix: pfx("fd00:1::1/64")}},
		route.RouteEvent{Route: connected("fd00:1::/64", eth1)},
		route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: g1.Gateway, MAC: mac1, Valid: true}},
		route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: g2.Gateway, MAC: mac2, Valid: true}})
	prohibit := route.Route{Table: route.TableMain, Prefix: pfx(p), Kind: route.Unreachable, Protocol: 3, Metric: 1024}
	uni := func(hops ...route.NextHop) route.Route {
		return route.Route{Table: route.TableMain, Prefix: pfx(p), Kind: route.Unicast, Protocol: 3, Metric: 1024, NextHops: route.SortNextHops(hops)}
	}
	r.ev(route.RouteEvent{Route: prohibit})
	eq(t, "prohibit", r.dp.egress(t, p), []string{"unreachable"})
	r.ev(route.RouteEvent{Route: uni(g1), Replace: true})
	eq(t, "replaced by a unicast route", r.dp.egress(t, p), []string{"2:" + mac1.String()})
	r.ev(route.RouteEvent{Route: uni(g2), Replace: true})
	eq(t, "replaced by another unicast route", r.dp.egress(t, p), []string{"2:" + mac2.String()})
	r.ev(route.RouteEvent{Route: uni(g1, g2)}) // ip -6 route append: the whole route
	eq(t, "ECMP sibling appended", r.dp.egress(t, p), []string{"2:" + mac1.String(), "2:" + mac2.String()})
	r.ev(route.RouteEvent{Route: uni(g1), Deleted: true})
	eq(t, "one sibling deleted", r.dp.egress(t, p), []string{"2:" + mac2.String()})
	r.ev(route.RouteEvent{Route: prohibit, Replace: true})
	eq(t, "replaced by prohibit", r.dp.egress(t, p), []string{"unreachable"})
	// Appended next to the reject route (no replace): two routes of one
	// metric, which one the kernel uses is not known here.
	r.ev(route.RouteEvent{Route: uni(g1)})
	eq(t, "unicast next to prohibit", r.dp.egress(t, p), []string{"kernel-only"})
	r.ev(route.RouteEvent{Route: prohibit, Deleted: true})
	eq(t, "prohibit deleted", r.dp.egress(t, p), []string{"2:" + mac1.String()})
}
