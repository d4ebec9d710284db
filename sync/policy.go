package sync

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"github.com/xdprouter/xdprouter/route"
)

// Next hops of policy routes (config [[policy-route]] next-hop = ADDR,
// issue 11).
//
// Each next hop has a kernel table of its own; the daemon points a policy
// rule of ours at it ("from ... lookup TABLE"). Sync keeps one route
// there: the default route of the next hop's family via it, a route of
// ours, present only while the next hop is usable:
//
//   - a link that is up has an address whose connected subnet covers it
//     (the lowest such ifindex is the egress, stable), and it is not that
//     address, nor the subnet's network or broadcast address;
//   - its neighbor entry on that link is valid (reachable, stale, delay,
//     probe, permanent, noarp): not FAILED or INCOMPLETE, and present.
//
// While it is not usable the table is empty: the rule's lookup finds
// nothing and the next rules decide (normally the main table), in the
// kernel and, as XDP mirrors every table and evaluates the rules, in XDP.
// Neither needs to know about policy routes.
//
// Sync is the place because it already follows links, addresses and
// neighbors, writes routes of ours (adopted at a restart, swept when
// stale, removed at a clean exit) and keeps XDP in step with the kernel
// (XDP's entry goes before the kernel route). The route is an entry whose
// set is a policy set (bgpSet.policy): resolved is the next hop on its
// port, nothing to resolve, as VRF connected routes (vrf.go).
//
// A next hop with a candidate port but no usable neighbor is probed (the
// kernel is asked to resolve it) when it becomes a candidate, and then at
// every neighbor refresh while it stays unusable: a next hop that comes
// back is used again within Options.Refresh. A stale entry in use is
// re-confirmed like every gateway's (refreshNeighbors): a next hop that
// died turns FAILED, and its route goes.

// PolicyNextHop is the next hop of policy routes: its Table holds a
// default route of ours via Addr while Addr is usable.
type PolicyNextHop struct {
	Table int
	Addr  netip.Addr
}

// policyNextHops is SetPolicyNextHops's input, queued in order with the
// kernel events.
type policyNextHops struct{ nhs []PolicyNextHop }

// SetPolicyNextHops replaces the policy next hops (Options.PolicyNextHops)
// while running: the routes of next hops no longer listed are removed.
// Their tables must be in the policy table range (Options.PolicyTableBase,
// PolicyTableCount). It never blocks.
func (s *Syncer) SetPolicyNextHops(nhs []PolicyNextHop) {
	s.inMu.Lock()
	s.kernelIn = append(s.kernelIn, policyNextHops{slices.Clone(nhs)})
	s.inMu.Unlock()
	s.kick()
}

// PolicyNextHopInfo describes a policy next hop as sync sees it.
type PolicyNextHopInfo struct {
	Table   int        `json:"table"`
	Addr    netip.Addr `json:"addr"`
	Ifindex int        `json:"ifindex,omitempty"` // its port; 0: no link up covers it
	Usable  bool       `json:"usable"`            // its route is wanted in Table
}

// PolicyNextHops describes the policy next hops, by table.
func (s *Syncer) PolicyNextHops() []PolicyNextHopInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PolicyNextHopInfo
	for k, a := range s.st.policyNH {
		ifx, ok := s.st.policyEgress(a)
		out = append(out, PolicyNextHopInfo{Table: k.Table, Addr: a, Ifindex: ifx, Usable: ok})
	}
	slices.SortFunc(out, func(a, b PolicyNextHopInfo) int { return a.Table - b.Table })
	return out
}

// isPolicyTable reports whether t is in the policy table range.
func (st *state) isPolicyTable(t int) bool {
	b, n := st.opt.PolicyTableBase, st.opt.PolicyTableCount
	return b > 0 && t >= b && t < b+n
}

// policyKey is the key of the default route via a in table t.
func policyKey(t int, a netip.Addr) route.TablePrefix {
	p := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if a.Is6() {
		p = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return route.TablePrefix{Table: route.NormTable(t), Prefix: p}
}

// setPolicyNextHops records the wanted next hops.
func (st *state) setPolicyNextHops(nhs []PolicyNextHop) {
	want := map[route.TablePrefix]netip.Addr{}
	addrs := map[netip.Addr]bool{}
	for _, n := range nhs {
		if !n.Addr.IsValid() {
			continue
		}
		a := n.Addr.Unmap()
		if !st.isPolicyTable(n.Table) {
			st.log.Error("policy next hop's table is outside the policy table range: ignored", "table", n.Table, "next_hop", a)
			continue
		}
		want[policyKey(n.Table, a)] = a
		addrs[a] = true
	}
	if maps.Equal(want, st.policyNH) {
		return
	}
	st.policyNH, st.policyAddrs = want, addrs
	st.policyDirty = true
}

// syncPolicy installs or removes the route of every policy next hop by
// whether it is usable now.
func (st *state) syncPolicy() {
	st.policyDirty = false
	for k, a := range st.policyNH {
		ifx, ok := st.policyEgress(a)
		want := 0
		if ok {
			want = ifx
		}
		if cur := st.setsByID[st.policyOn[k]]; cur == nil || cur.resolved[0] != (route.NextHop{Gateway: a, Ifindex: want}) {
			st.setPolicyRoute(k, a, want)
		}
		switch {
		case ifx == 0 || ok:
			delete(st.policyProbed, k)
		case st.policyProbed[k] != ifx:
			st.policyProbed[k] = ifx // a new candidate: ask for its neighbor now
			st.resolveNeighbor(ifx, a)
		}
	}
	for k := range st.policyOn {
		if _, ok := st.policyNH[k]; !ok {
			st.setPolicyRoute(k, netip.Addr{}, 0)
			delete(st.policyProbed, k)
		}
	}
}

// probePolicy asks the kernel to resolve the neighbors of policy next hops
// that have a candidate port but no usable entry (a FAILED entry is
// probed again): called at every neighbor refresh.
func (st *state) probePolicy() {
	for k, a := range st.policyNH {
		if ifx, ok := st.policyEgress(a); ifx != 0 && !ok {
			st.policyProbed[k] = ifx
			st.resolveNeighbor(ifx, a)
		}
	}
}

// policyEgress returns the port a reaches as a neighbor (0: none: no link
// up has a connected subnet covering it, or it is an address of ours or
// the subnet's network or broadcast address) and whether its neighbor
// entry there is usable.
func (st *state) policyEgress(a netip.Addr) (ifindex int, usable bool) {
	if st.unusableNextHop(a) != "" {
		return 0, false
	}
	for ad := range st.addrs {
		p := ad.Prefix
		if p.Addr().BitLen() != a.BitLen() || p.Bits() >= p.Addr().BitLen() || !p.Contains(a) || !st.linkUp(ad.Ifindex) {
			continue
		}
		if ifindex == 0 || ad.Ifindex < ifindex {
			ifindex = ad.Ifindex
		}
	}
	if ifindex == 0 {
		return 0, false
	}
	_, usable = st.neighs[neighKey{ifindex, a}]
	return ifindex, usable
}

// setPolicyRoute installs (ifindex > 0) or removes the route of ours via
// a in p's table.
func (st *state) setPolicyRoute(p route.TablePrefix, a netip.Addr, ifindex int) {
	e := st.entry(p)
	cur, had := st.policyOn[p]
	switch {
	case ifindex > 0:
		id := st.getPolicySet(p.Table, a, ifindex)
		if had {
			st.putSet(cur)
		} else if e.bgpSet != 0 {
			st.putSet(e.bgpSet) // not ours to keep: nothing else writes a policy table
		}
		e.bgpSet = id
		st.policyOn[p] = id
	case had:
		st.putSet(cur)
		delete(st.policyOn, p)
		e.bgpSet = 0
	default:
		return
	}
	st.markDirty(p)
}

// getPolicySet returns the policy set of next hop a on port ifindex in
// table.
func (st *state) getPolicySet(table int, a netip.Addr, ifindex int) uint32 {
	key := "p" + strconv.Itoa(table) + "|" + a.String() + "|" + strconv.Itoa(ifindex)
	s := st.sets[key]
	if s == nil {
		s = &bgpSet{id: st.setIDs.get(), key: key, table: table, policy: true, addrs: []netip.Addr{a},
			resolved: []route.NextHop{{Gateway: a, Ifindex: ifindex}}}
		st.sets[key] = s
		st.setsByID[s.id] = s
		st.admitSet(s)
	}
	s.refs++
	return s.id
}
