package sync

import (
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/xdprouter/xdprouter/route"
)

// routeInfos describes the routes of table (normalised; negative: every
// table) within or containing filter (invalid: all).
func (st *state) routeInfos(table int, filter netip.Prefix) []RouteInfo {
	var out []RouteInfo
	for p, e := range st.entries.all() {
		if (table >= 0 && p.Table != table) || (filter.IsValid() && !filter.Overlaps(p.Prefix)) {
			continue
		}
		w := st.wantXDP(e, false)
		if !w.on && e.bgpSet == 0 && !e.xdp.on && e.ours == 0 {
			continue
		}
		ri := RouteInfo{Table: p.Table, Prefix: p.Prefix, Source: w.source, Metric: w.metric, InXDP: e.xdp.on, InKernel: e.ours != 0,
			Shadowed: st.wantFIB(p, e).shadowed, Error: st.rejected[p].why, Refused: e.xdp.refused != 0}
		ri.Kind = w.kind.String()
		if e.xdp.group != 0 {
			ri.Group = e.xdp.group
		}
		ri.Members = w.members
		for _, nh := range w.members {
			ri.NextHops = append(ri.NextHops, st.nhString(nh))
		}
		if set := st.setsByID[e.bgpSet]; set != nil {
			ri.BGPNextHops = set.addrs
			ri.BGPBackup = set.backup
			for _, nh := range set.resolvedBackup {
				ri.Backup = append(ri.Backup, st.nhString(nh))
			}
			ri.Unresolved = len(set.resolved) == 0 && !set.blackhole
			if ri.Error == "" {
				ri.Error = set.why
			}
			if ri.Source == "" {
				ri.Source, ri.Kind = "bgp", "unresolved"
			}
		}
		out = append(out, ri)
	}
	slices.SortFunc(out, func(a, b RouteInfo) int {
		if c := compareTable(a.Table, b.Table); c != 0 {
			return c
		}
		return comparePrefix(a.Prefix, b.Prefix)
	})
	return out
}

// compareTable orders tables main first, then by id.
func compareTable(a, b int) int {
	switch {
	case a == b:
		return 0
	case a == route.TableMain:
		return -1
	case b == route.TableMain:
		return 1
	}
	return a - b
}

func (st *state) groupInfos() []GroupInfo {
	out := make([]GroupInfo, 0, len(st.groups))
	for _, g := range st.groups {
		gi := GroupInfo{ID: g.id, Routes: g.refs, Active: g.written}
		for _, x := range g.nhs {
			gi.Members = append(gi.Members, NextHopInfo{ID: x.id, Via: st.nhString(x.nh), Ifindex: x.nh.Ifindex,
				MAC: net.HardwareAddr(x.mac).String(), Connected: x.nh.Connected()})
		}
		out = append(out, gi)
	}
	slices.SortFunc(out, func(a, b GroupInfo) int { return int(a.ID) - int(b.ID) })
	return out
}

func (st *state) nhString(nh route.NextHop) string {
	dev := strconv.Itoa(nh.Ifindex)
	if l, ok := st.links[nh.Ifindex]; ok {
		dev = l.Name
	}
	if nh.Connected() {
		return "dev " + dev
	}
	return "via " + nh.Gateway.String() + " dev " + dev
}
