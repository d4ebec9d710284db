package sync

import (
	"slices"
	"strconv"

	"github.com/xdprouter/xdprouter/route"
)

// fibAction is what the kernel sink should do with our route of a prefix.
type fibAction uint8

const (
	fibRemove  fibAction = iota // no route of ours
	fibInstall                  // our route via fibWant.nhs
	fibKeep                     // leave what the kernel has (it refused the wanted one)
)

type fibWant struct {
	action    fibAction
	blackhole bool // a blackhole route of ours (BGP RTBH), no next hops
	nhs       []route.NextHop
	set       *bgpSet // the BGP set installed
	shadowed  string  // why a usable BGP path is not installed
}

// wantFIB is our route wanted in the kernel for e (only keys of our
// table have a BGP set).
func (st *state) wantFIB(p route.TablePrefix, e *entry) fibWant {
	set := st.setsByID[e.bgpSet]
	if set == nil || (len(set.active()) == 0 && !set.blackhole) {
		return fibWant{}
	}
	// Never replace an operator's route of the same metric.
	if slices.ContainsFunc(e.kernelRoutes(), func(r route.Route) bool { return r.Metric == st.opt.Metric }) {
		return fibWant{shadowed: "kernel route with metric " + strconv.Itoa(st.opt.Metric)}
	}
	key := route.Key(set.active())
	if set.blackhole {
		key = blackholeListKey
	}
	if e.isRejected() && st.rejected[p].key == key {
		return fibWant{action: fibKeep}
	}
	return fibWant{action: fibInstall, blackhole: set.blackhole, nhs: set.active(), set: set}
}

// xdpWant is what one prefix should look like in XDP.
type xdpWant struct {
	on       bool
	kind     route.Kind
	groupKey string
	members  []route.NextHop
	backups  []route.NextHop // used while no member is usable
	set      *bgpSet         // the BGP set whose group it is
	source   string          // kernel, bgp, local
	metric   int
	refuse   bool // no group for it: its peer is over the limit
}

// wantXDP mirrors into XDP what the kernel does for e's prefix in its
// table: its local address (main table), or the winner of the kernel's
// own routes and ours as installed (oursGone: about to be deleted). XDP
// follows the kernel, not BGP: a path the kernel refused, or one not
// installed yet, is not forwarded, and a route left by a previous
// instance is forwarded as it is in the kernel.
func (st *state) wantXDP(e *entry, oursGone bool) xdpWant {
	if e.localRefs() > 0 {
		return xdpWant{on: true, kind: route.Local, source: "local"}
	}
	k := bestKernel(e)
	ours := e.ours != 0 && !oursGone
	if k != nil && (!ours || k.Metric <= st.opt.Metric) {
		w := xdpWant{on: true, kind: k.Kind, source: "kernel", metric: k.Metric}
		switch {
		case ambiguous(e, k):
			w.kind = route.KernelOnly
		case k.Kind == route.Unicast:
			w.members, w.groupKey = k.NextHops, "k"+route.Key(k.NextHops)
		}
		// Blackhole, Unreachable, Throw and KernelOnly are carried as
		// they are: XDP drops, passes to the kernel, or (Throw) goes on
		// with the next policy rule.
		return w
	}
	if !ours {
		return xdpWant{}
	}
	if st.oursBlackhole(e) {
		w := xdpWant{on: true, kind: route.Blackhole, source: "bgp", metric: st.opt.Metric}
		if e.isStale() {
			w.source = "bgp (previous instance)"
		}
		return w
	}
	nhs := st.ourLists.nhs(e.ours)
	w := xdpWant{on: true, kind: route.Unicast, source: "bgp", metric: st.opt.Metric, members: nhs}
	// The BGP set's own group while it is what the kernel has: a change of
	// its resolution then rewrites one group, not every route.
	if set := st.setsByID[e.bgpSet]; set != nil && slices.Equal(set.active(), nhs) {
		w.groupKey, w.refuse = setGroupKey(set), set.overLimit
		w.members, w.backups, w.set = set.resolved, set.resolvedBackup, set
		if set.policy {
			w.source = "policy"
		}
	} else {
		w.groupKey = "k" + route.Key(nhs)
	}
	if e.isStale() {
		w.source = "bgp (previous instance)"
	}
	return w
}

// blackholeListKey is the list key of our blackhole routes in the kernel
// (BGP RTBH): no next hops. It cannot be a route.Key (those end in ';')
// nor an objListKey (digits after 'o').
const blackholeListKey = "blackhole"

// oursBlackhole reports whether our route of e in the kernel is a
// blackhole.
func (st *state) oursBlackhole(e *entry) bool {
	l := st.ourLists.byID[e.ours]
	return l != nil && l.key == blackholeListKey
}
