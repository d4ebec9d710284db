package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/route"
)

// fakeDP records what would be in the XDP maps. Like the real maps it
// writes batches in order and can stop part-way (failAfter).
type fakeDP struct {
	routes map[route.TablePrefix]route.Entry // by (table, prefix)
	groups map[uint32][]uint32
	from   map[uint32]uint32 // per group: the group its last write derived from
	nhs    map[uint32]route.Egress
	neighs map[string]string
	ifaces map[int]int
	// failAfter >= 0 makes the next route batch fail after that many
	// entries were written.
	failAfter int
	writes    int
	discard   bool // keep no routes (memory measurements)

	// Policy rules as last set, with the ifindex each rule's iif name
	// resolved to then; failRules makes the next SetRules calls fail.
	rules      []route.Rule
	ruleIfs    []int
	ruleCalls  int
	ruleRoutes int // routes in the maps at the last SetRules call
	failRules  int
	badEntries []string // entries written with table 0 (must never be)
}

func newFakeDP() *fakeDP {
	return &fakeDP{routes: map[route.TablePrefix]route.Entry{}, groups: map[uint32][]uint32{}, from: map[uint32]uint32{},
		nhs: map[uint32]route.Egress{}, neighs: map[string]string{}, ifaces: map[int]int{}, failAfter: -1}
}

func (f *fakeDP) UpdateRoutes(rs []route.Entry) (int, error) {
	for i, r := range rs {
		if i == f.failAfter {
			f.failAfter = -1
			return i, errors.New("injected: map full")
		}
		if r.Table == 0 {
			f.badEntries = append(f.badEntries, fmt.Sprint(r))
		}
		if !f.discard {
			f.routes[route.TablePrefix{Table: r.Table, Prefix: r.Prefix}] = r
		}
		f.writes++
	}
	return len(rs), nil
}
func (f *fakeDP) DeleteRoutes(ps []route.TablePrefix) (int, error) {
	for i, p := range ps {
		if i == f.failAfter {
			f.failAfter = -1
			return i, errors.New("injected")
		}
		if p.Table == 0 {
			f.badEntries = append(f.badEntries, fmt.Sprint("delete ", p))
		}
		delete(f.routes, p)
		f.writes++
	}
	return len(ps), nil
}
func (f *fakeDP) SetRules(rules []route.Rule, ifindex func(string) int) error {
	f.ruleCalls++
	f.ruleRoutes = len(f.routes)
	if f.failRules > 0 {
		f.failRules--
		return errors.New("injected: rules map")
	}
	f.rules = slices.Clone(rules)
	f.ruleIfs = nil
	for _, r := range rules {
		f.ruleIfs = append(f.ruleIfs, ifindex(r.IifName))
	}
	return nil
}
func (f *fakeDP) SetGroupFrom(id, from uint32, nhs []uint32) error {
	f.groups[id] = slices.Clone(nhs)
	f.from[id] = from
	return nil
}
func (f *fakeDP) SetNextHop(id uint32, nh route.Egress) error { f.nhs[id] = nh; return nil }
func (f *fakeDP) SetNeighbor(i int, a netip.Addr, mac net.HardwareAddr) error {
	f.neighs[fmt.Sprint(i, a)] = mac.String()
	return nil
}
func (f *fakeDP) DeleteNeighbor(i int, a netip.Addr) error {
	delete(f.neighs, fmt.Sprint(i, a))
	return nil
}
func (f *fakeDP) SetInterface(i int, _ net.HardwareAddr, mtu int) error {
	f.ifaces[i] = mtu
	return nil
}
func (f *fakeDP) DeleteInterface(i int) error { delete(f.ifaces, i); return nil }
func (f *fakeDP) Routes() ([]route.Entry, error) {
	var out []route.Entry
	for _, r := range f.routes {
		out = append(out, r)
	}
	return out, nil
}
func (f *fakeDP) Group(id uint32) ([]uint32, error)         { return slices.Clone(f.groups[id]), nil }
func (f *fakeDP) NextHopAt(id uint32) (route.Egress, error) { return f.nhs[id], nil }

// egress returns, for the route of p in the main table, the (ifindex,
// MAC) of each next hop XDP would use: what a packet would see.
func (f *fakeDP) egress(t *testing.T, p string) []string {
	t.Helper()
	return f.egressIn(t, route.TableMain, p)
}

// egressIn is egress for the route of p in table.
func (f *fakeDP) egressIn(t *testing.T, table int, p string) []string {
	t.Helper()
	r, ok := f.routes[route.TablePrefix{Table: table, Prefix: netip.MustParsePrefix(p)}]
	if !ok {
		return nil
	}
	if r.Kind != route.Unicast {
		return []string{r.Kind.String()}
	}
	var out []string
	for _, id := range f.groups[r.Group] {
		nh := f.nhs[id]
		if nh.Connected {
			out = append(out, fmt.Sprintf("%d:direct", nh.Ifindex))
		} else {
			out = append(out, fmt.Sprintf("%d:%s", nh.Ifindex, nh.MAC))
		}
	}
	return out
}

// fakeFIB is the kernel table as the kernel keeps it: routes by (prefix,
// metric); a delete must name the metric of the route, as the real one
// does (a wrong one leaves the route and is "not found"), and installs can
// be refused per route.
type fakeFIB struct {
	routes   map[netip.Prefix]route.Route
	resolved []string
	writes   int
	// refuse makes installs through this gateway fail for good, as the
	// kernel refuses a broadcast address (EINVAL).
	refuse netip.Addr
	// failNext makes the next n installs fail transiently.
	failNext int
	discard  bool // keep no routes (memory measurements)

	// Nexthop objects, as the kernel keeps them: routes by group follow
	// the group; deleting an object deletes the routes using it.
	singles  map[uint32]route.Nexthop
	nhGroups map[uint32][]uint32
	nhWrites int

	// byTable is the same routes by (table, prefix): routes keys by
	// prefix only, as most tests use one table.
	byTable map[route.TablePrefix]route.Route
}

func (f *fakeFIB) expand(id uint32) ([]route.NextHop, bool) {
	members, ok := f.nhGroups[id]
	if !ok {
		return nil, false
	}
	var out []route.NextHop
	for _, m := range members {
		s := f.singles[m]
		out = append(out, route.NextHop{Gateway: s.Gateway, Ifindex: s.Ifindex})
	}
	return route.SortNextHops(out), true
}

func (f *fakeFIB) ApplyNexthops(cs []route.NexthopChange) []error {
	if f.singles == nil {
		f.singles, f.nhGroups = map[uint32]route.Nexthop{}, map[uint32][]uint32{}
	}
	errs := make([]error, len(cs))
	for i, c := range cs {
		id := c.ID()
		switch {
		case c.Delete:
			delete(f.singles, id)
			delete(f.nhGroups, id)
			for p, r := range f.routes {
				if r.NHID == id {
					delete(f.routes, p)
				}
			}
		case c.Group.ID != 0:
			for _, m := range c.Group.Members {
				if _, ok := f.singles[m]; !ok {
					errs[i] = fmt.Errorf("group %d: no nexthop %d: %w", id, m, route.ErrRejected)
				}
			}
			if errs[i] != nil {
				continue
			}
			f.nhGroups[id] = slices.Clone(c.Group.Members)
			nhs, _ := f.expand(id)
			for p, r := range f.routes {
				if r.NHID == id {
					r.NextHops = nhs
					f.routes[p] = r
				}
			}
		default:
			f.singles[id] = c.Nexthop
		}
		f.nhWrites++
	}
	return errs
}

func (f *fakeFIB) Nexthops() ([]route.Nexthop, []route.NexthopGroup, error) {
	var ss []route.Nexthop
	var gs []route.NexthopGroup
	for _, s := range f.singles {
		ss = append(ss, s)
	}
	for id, m := range f.nhGroups {
		gs = append(gs, route.NexthopGroup{ID: id, Members: m})
	}
	return ss, gs, nil
}

func (f *fakeFIB) Apply(cs []route.Change) []error {
	errs := f.apply(cs)
	if f.byTable == nil {
		f.byTable = map[route.TablePrefix]route.Route{}
	}
	for i, c := range cs {
		k := route.TablePrefix{Table: route.NormTable(c.Route.Table), Prefix: c.Route.Prefix}
		old, had := f.byTable[k]
		switch {
		case errs[i] != nil || f.discard:
		case c.Delete && had && old.Metric != c.Route.Metric:
		case c.Delete:
			delete(f.byTable, k)
		default:
			r := c.Route
			if r.NHID != 0 {
				r.NextHops, _ = f.expand(r.NHID)
			}
			f.byTable[k] = r
		}
	}
	return errs
}

// viaIn is via for table t.
func (f *fakeFIB) viaIn(t int, p string) string {
	r, ok := f.byTable[route.TablePrefix{Table: t, Prefix: netip.MustParsePrefix(p)}]
	if !ok {
		return ""
	}
	return fmt.Sprint(r.NextHops)
}

func (f *fakeFIB) apply(cs []route.Change) []error {
	errs := make([]error, len(cs))
	for i, c := range cs {
		old, had := f.routes[c.Route.Prefix]
		switch {
		case c.Delete && had && old.Metric != c.Route.Metric:
			// Another metric: not this route (ESRCH, reported as done).
		case c.Delete:
			delete(f.routes, c.Route.Prefix)
		case slices.ContainsFunc(c.Route.NextHops, func(nh route.NextHop) bool { return f.refuse.IsValid() && nh.Gateway == f.refuse }):
			errs[i] = fmt.Errorf("install %s: %w: invalid argument", c.Route.Prefix, route.ErrRejected)
			continue
		case f.failNext > 0:
			f.failNext--
			errs[i] = errors.New("injected: no buffer space")
			continue
		case f.discard:
		case c.Route.NHID != 0:
			nhs, ok := f.expand(c.Route.NHID)
			if !ok {
				errs[i] = fmt.Errorf("install %s: no nexthop %d: %w", c.Route.Prefix, c.Route.NHID, route.ErrRejected)
				continue
			}
			r := c.Route
			r.NextHops = nhs
			f.routes[c.Route.Prefix] = r
		default:
			f.routes[c.Route.Prefix] = c.Route
		}
		f.writes++
	}
	return errs
}
func (f *fakeFIB) Resolve(i int, a netip.Addr) error {
	f.resolved = append(f.resolved, fmt.Sprint(i, a))
	return nil
}

func (f *fakeFIB) via(p string) string {
	r, ok := f.routes[netip.MustParsePrefix(p)]
	if !ok {
		return ""
	}
	return fmt.Sprint(r.NextHops)
}

const (
	eth1 = 2
	eth2 = 3
)

var (
	mac1 = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	mac2 = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	mac3 = net.HardwareAddr{2, 0, 0, 0, 0, 3}
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// mk is the key of prefix s in the main table.
func mk(s string) route.TablePrefix { return mainKey(pfx(s)) }

func connected(p string, ifindex int) route.Route {
	return route.Route{Prefix: pfx(p), Kind: route.Unicast, Protocol: protoKernel,
		NextHops: []route.NextHop{{Ifindex: ifindex}}}
}

func via(p string, metric int, hops ...route.NextHop) route.Route {
	return route.Route{Prefix: pfx(p), Kind: route.Unicast, Protocol: 4, Metric: metric, NextHops: route.SortNextHops(hops)}
}

func gw(a string, ifindex int) route.NextHop { return route.NextHop{Gateway: ip(a), Ifindex: ifindex} }

type rig struct {
	st  *state
	dp  *fakeDP
	fib *fakeFIB
}

// newRig has two router ports with a /24 each and one neighbor on each.
func newRig(t testing.TB, ours ...route.Route) *rig {
	return newRigWith(t, Options{}, ours...)
}

// newRigWith is newRig with extra options (Datapath, FIB, Metric, Ports
// and StaleAfter are the rig's).
func newRigWith(t testing.TB, opt Options, ours ...route.Route) *rig {
	return newRigFIB(t, opt, &fakeFIB{routes: map[netip.Prefix]route.Route{}}, ours...)
}

func newRigFIB(t testing.TB, opt Options, f *fakeFIB, ours ...route.Route) *rig {
	return newRigDP(t, opt, newFakeDP(), f, ours...)
}

func newRigDP(t testing.TB, opt Options, dp *fakeDP, f *fakeFIB, ours ...route.Route) *rig {
	return newRigKernel(t, opt, dp, f, nil, ours...)
}

// newRigKernel is newRigDP with more kernel routes in the first snapshot.
func newRigKernel(t testing.TB, opt Options, dp *fakeDP, f *fakeFIB, kernel []route.Route, ours ...route.Route) *rig {
	for _, r := range ours {
		f.routes[r.Prefix] = r
	}
	opt.Datapath, opt.FIB, opt.Metric, opt.Ports, opt.StaleAfter = dp, f, 20, []string{"eth1", "eth2"}, 1
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := newState(opt, log)
	t.Cleanup(func() {
		if len(dp.badEntries) > 0 {
			t.Errorf("XDP writes without a table: %v", dp.badEntries)
		}
	})
	st.kernelEvent(&route.Snapshot{
		Links:  []route.Link{{Index: eth1, Name: "eth1", MTU: 1500, Up: true, MAC: mac3}, {Index: eth2, Name: "eth2", MTU: 9000, Up: true, MAC: mac3}},
		Addrs:  []route.Addr{{Ifindex: eth1, Prefix: pfx("10.0.1.1/24")}, {Ifindex: eth2, Prefix: pfx("10.0.2.1/24")}},
		Routes: append([]route.Route{connected("10.0.1.0/24", eth1), connected("10.0.2.0/24", eth2)}, kernel...),
		Neighbors: []route.Neighbor{
			{Ifindex: eth1, Addr: ip("10.0.1.2"), MAC: mac1, Valid: true},
			{Ifindex: eth2, Addr: ip("10.0.2.2"), MAC: mac2, Valid: true},
		},
		Ours: ours,
	})
	st.apply(0)
	return &rig{st, dp, f}
}

func (r *rig) ev(evs ...any) {
	for _, e := range evs {
		r.st.kernelEvent(e)
	}
	r.st.apply(0)
}

func (r *rig) bgp(p string, nhs ...string) {
	var as []netip.Addr
	for _, n := range nhs {
		as = append(as, ip(n))
	}
	r.st.setBGP(pfx(p), as, nil, peerA, false)
	r.st.apply(0)
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestKernelRoutesMirrored(t *testing.T) {
	r := newRig(t)
	eq(t, "connected", r.dp.egress(t, "10.0.1.0/24"), []string{"2:direct"})
	eq(t, "local address", r.dp.egress(t, "10.0.1.1/32"), []string{"local"})
	eq(t, "ports", r.dp.ifaces, map[int]int{eth1: 1500, eth2: 9000})
	eq(t, "neighbors", len(r.dp.neighs), 2)

	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))})
	eq(t, "static", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})

	r.ev(route.RouteEvent{Route: route.Route{Prefix: pfx("192.0.2.0/24"), Kind: route.Blackhole}})
	eq(t, "blackhole", r.dp.egress(t, "192.0.2.0/24"), []string{"blackhole"})
	r.ev(route.RouteEvent{Route: route.Route{Prefix: pfx("192.0.3.0/24"), Kind: route.Unreachable}})
	eq(t, "unreachable", r.dp.egress(t, "192.0.3.0/24"), []string{"unreachable"})
	r.ev(route.RouteEvent{Route: route.Route{Prefix: pfx("192.0.4.0/24"), Kind: route.KernelOnly}})
	eq(t, "kernel-only", r.dp.egress(t, "192.0.4.0/24"), []string{"kernel-only"})

	// Neighbor MAC change: one next-hop rewrite, no route rewrite.
	writes := r.dp.writes
	r.ev(route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth2, Addr: ip("10.0.2.2"), MAC: mac1, Valid: true}})
	eq(t, "after MAC change", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac1.String()})
	eq(t, "route writes for a MAC change", r.dp.writes-writes, 0)

	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 0), Deleted: true})
	eq(t, "deleted", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	if r.st.entries.get(mk("198.51.100.0/24")) != nil {
		t.Error("deleted prefix still tracked")
	}
}

func TestECMPAndLinkDown(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: via("203.0.113.0/24", 0, gw("10.0.1.2", eth1), gw("10.0.2.2", eth2))},
		route.RouteEvent{Route: via("203.0.114.0/24", 0, gw("10.0.1.2", eth1), gw("10.0.2.2", eth2))})
	both := []string{"2:" + mac1.String(), "3:" + mac2.String()}
	eq(t, "ecmp", r.dp.egress(t, "203.0.113.0/24"), both)
	if a, b := r.dp.routes[mk("203.0.113.0/24")].Group, r.dp.routes[mk("203.0.114.0/24")].Group; a != b {
		t.Errorf("routes with the same next hops use groups %d and %d, want one shared group", a, b)
	}
	writes := r.dp.writes
	r.ev(route.LinkEvent{Link: route.Link{Index: eth1, Name: "eth1", MTU: 1500, MAC: mac3, Up: false}})
	eq(t, "link down", r.dp.egress(t, "203.0.113.0/24"), []string{"3:" + mac2.String()})
	eq(t, "link down other route", r.dp.egress(t, "203.0.114.0/24"), []string{"3:" + mac2.String()})
	eq(t, "route writes for a link down", r.dp.writes-writes, 0)
	r.ev(route.LinkEvent{Link: route.Link{Index: eth1, Name: "eth1", MTU: 1500, MAC: mac3, Up: true}})
	eq(t, "link up", r.dp.egress(t, "203.0.113.0/24"), both)
}

func TestUnresolvedGatewayIsResolvedProactively(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.1.9", eth1))})
	eq(t, "unresolved next hop", r.dp.egress(t, "198.51.100.0/24"), []string{"2:"})
	if !slices.Contains(r.fib.resolved, fmt.Sprint(eth1, ip("10.0.1.9"))) {
		t.Errorf("gateway not resolved proactively: %v", r.fib.resolved)
	}
	r.ev(route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: ip("10.0.1.9"), MAC: mac2, Valid: true}})
	eq(t, "resolved", r.dp.egress(t, "198.51.100.0/24"), []string{"2:" + mac2.String()})
	r.ev(route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: ip("10.0.1.9")}, Deleted: true})
	eq(t, "neighbor gone", r.dp.egress(t, "198.51.100.0/24"), []string{"2:"})
}

func TestBGPRoutes(t *testing.T) {
	tests := []struct {
		name     string
		kernel   []route.Route
		bgp      []string // next hops
		wantXDP  []string
		wantFIB  string
		shadowed bool
	}{
		{name: "connected next hop", bgp: []string{"10.0.2.2"},
			wantXDP: []string{"3:" + mac2.String()}, wantFIB: "[10.0.2.2@3]"},
		{name: "multipath", bgp: []string{"10.0.2.2", "10.0.1.2"},
			wantXDP: []string{"2:" + mac1.String(), "3:" + mac2.String()}, wantFIB: "[10.0.1.2@2 10.0.2.2@3]"},
		{name: "recursive through a static route", bgp: []string{"172.16.0.1"},
			kernel:  []route.Route{via("172.16.0.0/16", 0, gw("10.0.1.2", eth1))},
			wantXDP: []string{"2:" + mac1.String()}, wantFIB: "[10.0.1.2@2]"},
		{name: "unresolvable", bgp: []string{"172.31.0.1"}},
		{name: "through a blackhole: unresolvable, as in the kernel", bgp: []string{"172.16.0.1"},
			kernel: []route.Route{via("172.16.0.0/16", 0, gw("10.0.1.2", eth1)), {Prefix: pfx("172.16.0.0/24"), Kind: route.Blackhole}}},
		{name: "through a kernel-only route: unresolvable", bgp: []string{"172.16.0.1"},
			kernel: []route.Route{via("172.16.0.0/16", 0, gw("10.0.1.2", eth1)), {Prefix: pfx("172.16.0.0/24"), Kind: route.KernelOnly}}},
		{name: "through a route with all next hops dead: the shorter match", bgp: []string{"172.16.0.1"},
			kernel:  []route.Route{via("172.16.0.0/16", 0, gw("10.0.1.2", eth1)), {Prefix: pfx("172.16.0.0/24"), Kind: route.Unicast}},
			wantXDP: []string{"2:" + mac1.String()}, wantFIB: "[10.0.1.2@2]"},
		{name: "kernel route of lower metric wins in XDP", bgp: []string{"10.0.2.2"},
			kernel:  []route.Route{via("198.51.100.0/24", 10, gw("10.0.1.2", eth1))},
			wantXDP: []string{"2:" + mac1.String()}, wantFIB: "[10.0.2.2@3]"},
		{name: "kernel route of higher metric loses", bgp: []string{"10.0.2.2"},
			kernel:  []route.Route{via("198.51.100.0/24", 1024, gw("10.0.1.2", eth1))},
			wantXDP: []string{"3:" + mac2.String()}, wantFIB: "[10.0.2.2@3]"},
		{name: "same metric: the operator's route is never replaced", bgp: []string{"10.0.2.2"},
			kernel:  []route.Route{via("198.51.100.0/24", 20, gw("10.0.1.2", eth1))},
			wantXDP: []string{"2:" + mac1.String()}, shadowed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			for _, k := range tc.kernel {
				r.ev(route.RouteEvent{Route: k})
			}
			r.bgp("198.51.100.0/24", tc.bgp...)
			eq(t, "xdp", r.dp.egress(t, "198.51.100.0/24"), tc.wantXDP)
			eq(t, "fib", r.fib.via("198.51.100.0/24"), tc.wantFIB)
			if infos := r.st.routeInfos(-1, pfx("198.51.100.0/24")); len(infos) != 1 || (infos[0].Shadowed != "") != tc.shadowed {
				t.Errorf("route info %+v, want shadowed=%v", infos, tc.shadowed)
			}
			// Withdraw removes it from both sinks; kernel routes stay.
			r.bgp("198.51.100.0/24")
			eq(t, "fib after withdraw", r.fib.via("198.51.100.0/24"), "")
			if len(tc.kernel) == 0 || tc.kernel[0].Prefix != pfx("198.51.100.0/24") {
				eq(t, "xdp after withdraw", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
			} else {
				eq(t, "xdp after withdraw", r.dp.egress(t, "198.51.100.0/24"), []string{"2:" + mac1.String()})
			}
		})
	}
}

func TestBGPFollowsResolution(t *testing.T) {
	r := newRig(t)
	r.bgp("198.51.100.0/24", "172.16.0.1")
	r.bgp("198.51.101.0/24", "172.16.0.1")
	eq(t, "unresolved", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	eq(t, "counts", r.st.counts, Counts{XDP4: 4, XDPWrites: 4})

	// The next hop becomes reachable: both routes appear in both sinks.
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0, gw("10.0.1.2", eth1))})
	eq(t, "resolved", r.dp.egress(t, "198.51.100.0/24"), []string{"2:" + mac1.String()})
	eq(t, "fib", r.fib.via("198.51.101.0/24"), "[10.0.1.2@2]")
	eq(t, "counts", r.st.counts, Counts{XDP4: 7, FIB4: 2, FIBInstalls: 2, XDPWrites: 7})

	// The IGP path moves: the shared group is rewritten, not the routes.
	writes := r.dp.writes
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0, gw("10.0.2.2", eth2))})
	eq(t, "moved", r.dp.egress(t, "198.51.101.0/24"), []string{"3:" + mac2.String()})
	eq(t, "fib moved", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")
	eq(t, "XDP route writes for a next-hop move", r.dp.writes-writes-1, 0) // the static route itself

	// Gone: both withdrawn from both sinks.
	r.ev(route.RouteEvent{Route: via("172.16.0.0/16", 0), Deleted: true})
	eq(t, "xdp", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	eq(t, "fib", len(r.fib.routes), 0)
}

func TestRestartTouchesNothingRight(t *testing.T) {
	right := route.Route{Prefix: pfx("198.51.100.0/24"), Kind: route.Unicast, Metric: 20, Protocol: protoOurs,
		NextHops: []route.NextHop{gw("10.0.2.2", eth2)}}
	stale := route.Route{Prefix: pfx("198.51.200.0/24"), Kind: route.Unicast, Metric: 20, Protocol: protoOurs,
		NextHops: []route.NextHop{gw("10.0.2.2", eth2)}}
	otherMetric := route.Route{Prefix: pfx("198.51.201.0/24"), Kind: route.Unicast, Metric: 50, Protocol: protoOurs,
		NextHops: []route.NextHop{gw("10.0.2.2", eth2)}}
	r := newRig(t, right, stale, otherMetric)
	r.bgp("198.51.100.0/24", "10.0.2.2")
	eq(t, "kernel writes for routes already right", r.fib.writes, 0)
	eq(t, "stale kept until BGP converged", r.fib.via("198.51.200.0/24"), "[10.0.2.2@3]")
	r.st.sweepStale()
	r.st.apply(0)
	eq(t, "stale removed after the sweep", r.fib.via("198.51.200.0/24"), "")
	eq(t, "ours with an old metric removed after the sweep", r.fib.via("198.51.201.0/24"), "")
	eq(t, "right one kept", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")

	// The kernel drops our route (its link went away): it is reinstalled.
	r.ev(route.RouteEvent{Route: right, Ours: true, Deleted: true})
	eq(t, "reinstalled (after 2 sweep deletes)", r.fib.writes, 3)
}

func TestFailedWritesAreRetried(t *testing.T) {
	r := newRig(t)
	r.dp.failAfter = 0
	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))})
	eq(t, "after failure", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	r.st.retryFailed()
	r.st.apply(0)
	eq(t, "after retry", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	// Group references balance: exactly the groups in use remain.
	eq(t, "groups", len(r.st.groups), 3)
}

func TestPortRecreated(t *testing.T) {
	r := newRig(t)
	var calls []string
	r.st.opt.OnPort = func(name string, ifindex int, present bool) {
		calls = append(calls, fmt.Sprintf("%s %d %v", name, ifindex, present))
	}
	r.ev(route.LinkEvent{Link: route.Link{Index: eth2, Name: "eth2"}, Deleted: true})
	if _, ok := r.dp.ifaces[eth2]; ok {
		t.Error("deleted port still in the XDP port map")
	}
	r.ev(route.LinkEvent{Link: route.Link{Index: 9, Name: "eth2", MTU: 1500, Up: true, MAC: mac3}},
		route.LinkEvent{Link: route.Link{Index: 9, Name: "eth2", MTU: 1400, Up: true, MAC: mac3}}, // MTU change: no new attach
		route.LinkEvent{Link: route.Link{Index: 10, Name: "eth9", MTU: 1500, Up: true}})           // not a port
	eq(t, "port callbacks", calls, []string{"eth2 3 false", "eth2 9 true"})
	eq(t, "port map", r.dp.ifaces, map[int]int{eth1: 1500, 9: 1400})
}

// TestNeighborRefresh: only stale entries and gateways without an entry are
// re-resolved; reachable and static (permanent) entries are left alone
// (a resolve request would turn a permanent entry into an incomplete one).
func TestNeighborRefresh(t *testing.T) {
	r := newRig(t)
	r.ev(route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth2, Addr: ip("10.0.2.2"), MAC: mac2, Valid: true, Stale: true}},
		route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: ip("10.0.1.7"), MAC: mac1, Valid: true}}, // permanent
		route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.1.7", eth1))},
		route.RouteEvent{Route: via("198.51.101.0/24", 0, gw("10.0.1.9", eth1))}, // no entry yet
	)
	r.fib.resolved = nil
	r.st.refreshNeighbors()
	slices.Sort(r.fib.resolved)
	eq(t, "re-resolved", r.fib.resolved, []string{fmt.Sprint(eth1, ip("10.0.1.9")), fmt.Sprint(eth2, ip("10.0.2.2"))})
}

// TestBGPNextHopChange: a prefix moving to another next hop follows it in
// both sinks (the old next-hop set is freed in the same batch).
func TestBGPNextHopChange(t *testing.T) {
	r := newRig(t)
	r.bgp("198.51.100.0/24", "10.0.1.2")
	eq(t, "first", r.dp.egress(t, "198.51.100.0/24"), []string{"2:" + mac1.String()})
	r.bgp("198.51.100.0/24", "10.0.2.2")
	eq(t, "moved", r.dp.egress(t, "198.51.100.0/24"), []string{"3:" + mac2.String()})
	eq(t, "fib moved", r.fib.via("198.51.100.0/24"), "[10.0.2.2@3]")
	r.bgp("198.51.100.0/24", "10.0.1.2", "10.0.2.2")
	eq(t, "both", r.dp.egress(t, "198.51.100.0/24"), []string{"2:" + mac1.String(), "3:" + mac2.String()})
	r.bgp("198.51.100.0/24", "10.0.1.2")
	eq(t, "back", r.dp.egress(t, "198.51.100.0/24"), []string{"2:" + mac1.String()})
}

// TestBGPSetReuse: next-hop sets freed and created in one batch never
// share a group (a freed set's group lives until its routes moved).
func TestBGPSetReuse(t *testing.T) {
	r := newRig(t)
	r.bgp("198.51.100.0/24", "10.0.1.2")
	r.st.setBGP(pfx("198.51.100.0/24"), []netip.Addr{ip("10.0.1.3")}, nil, peerA, false) // frees the set of 10.0.1.2
	r.st.setBGP(pfx("198.51.101.0/24"), []netip.Addr{ip("10.0.2.2")}, nil, peerA, false) // a new set
	r.st.apply(0)
	eq(t, "new prefix", r.dp.egress(t, "198.51.101.0/24"), []string{"3:" + mac2.String()})
	eq(t, "fib", r.fib.via("198.51.101.0/24"), "[10.0.2.2@3]")
	eq(t, "moved prefix", r.dp.egress(t, "198.51.100.0/24"), []string{"2:"}) // 10.0.1.3: unresolved
}

// TestResyncSnapshot: a snapshot after a netlink overflow replaces the
// kernel inputs as a diff: what is still there is not rewritten, what is
// gone leaves both sinks, what is new arrives.
func TestResyncSnapshot(t *testing.T) {
	r := newRig(t)
	r.ev(route.RouteEvent{Route: via("198.51.100.0/24", 0, gw("10.0.2.2", eth2))},
		route.RouteEvent{Route: via("198.51.101.0/24", 0, gw("10.0.2.2", eth2))})
	writes := r.dp.writes
	delete(r.dp.neighs, fmt.Sprint(eth1, ip("10.0.1.2"))) // would come back only if rewritten
	r.ev(&route.Snapshot{
		Links:  []route.Link{{Index: eth1, Name: "eth1", MTU: 1500, Up: true, MAC: mac3}, {Index: eth2, Name: "eth2", MTU: 9000, Up: true, MAC: mac3}},
		Addrs:  []route.Addr{{Ifindex: eth1, Prefix: pfx("10.0.1.1/24")}, {Ifindex: eth2, Prefix: pfx("10.0.2.1/24")}},
		Routes: []route.Route{connected("10.0.1.0/24", eth1), connected("10.0.2.0/24", eth2), via("198.51.101.0/24", 0, gw("10.0.2.2", eth2)), via("198.51.102.0/24", 0, gw("10.0.2.2", eth2))},
		Neighbors: []route.Neighbor{
			{Ifindex: eth1, Addr: ip("10.0.1.2"), MAC: mac1, Valid: true},
		},
	})
	eq(t, "gone", r.dp.egress(t, "198.51.100.0/24"), []string(nil))
	eq(t, "kept", r.dp.egress(t, "198.51.101.0/24"), []string{"3:"}) // its neighbor vanished with the snapshot
	eq(t, "new", r.dp.egress(t, "198.51.102.0/24"), []string{"3:"})
	eq(t, "route writes", r.dp.writes-writes, 2) // one delete, one add
	if _, ok := r.dp.neighs[fmt.Sprint(eth1, ip("10.0.1.2"))]; ok {
		t.Error("an unchanged neighbor was rewritten")
	}
	if _, ok := r.dp.neighs[fmt.Sprint(eth2, ip("10.0.2.2"))]; ok {
		t.Error("a neighbor gone from the snapshot is still in XDP")
	}
}

// TestRunConcurrentInputs drives Run with kernel events while BGP changes
// arrive from another goroutine, as in the daemon (run with -race): inputs
// are taken off the producers without sharing a map with them.
func TestRunConcurrentInputs(t *testing.T) {
	dp, f := newFakeDP(), &fakeFIB{routes: map[netip.Prefix]route.Route{}}
	s := New(Options{Datapath: dp, FIB: f, Metric: 20, Ports: []string{"eth1"}, Log: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan any)
	done := make(chan struct{})
	go func() { _ = s.Run(ctx, events); close(done) }()
	events <- &route.Snapshot{
		Links:  []route.Link{{Index: eth1, Name: "eth1", MTU: 1500, Up: true, MAC: mac3}},
		Routes: []route.Route{connected("10.0.1.0/24", eth1)},
	}
	const n = 2000
	for i := range n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32)
		go s.Best([]BestPath{{Prefix: p, NextHops: []netip.Addr{ip("10.0.1.2")}}})
		events <- route.NeighEvent{Neighbor: route.Neighbor{Ifindex: eth1, Addr: ip("10.0.1.2"), MAC: mac1, Valid: true}}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Counts().FIB4 != n && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	cancel()
	<-done
	if c := s.Counts(); c.FIB4 != n {
		t.Errorf("installed %d of %d BGP routes: %+v", c.FIB4, n, c)
	}
}

// protoOurs is the protocol of xdprouterd's routes (fib.DefaultProtocol).
const protoOurs = 200

// peerA is the BGP peer the tests' paths come from.
var peerA = netip.MustParseAddr("10.0.2.2")
