package sync

import (
	"net/netip"
	"slices"

	"github.com/xdprouter/xdprouter/route"
)

// audit reads the XDP maps back and rewrites every entry that differs from
// what sync applied (a write lost or made by someone else), and deletes
// routes sync does not know. It returns the number of entries repaired.
func (st *state) audit() int {
	repairs := 0
	// Next hops and groups first: routes point at them.
	for _, x := range st.nhs {
		got, err := st.opt.Datapath.NextHopAt(x.id)
		if err != nil {
			st.log.Error("audit: read next hop", "id", x.id, "err", err)
			continue
		}
		if want := st.egress(x); !sameEgress(got, want) || string(want.MAC) != x.mac {
			st.writeNextHop(x)
			repairs++
		}
	}
	for _, g := range st.groups {
		got, err := st.opt.Datapath.Group(g.id)
		if err != nil {
			st.log.Error("audit: read group", "id", g.id, "err", err)
			continue
		}
		if !slices.Equal(got, g.written) {
			g.written = nil // force the write
			st.writeGroup(g)
			repairs++
		}
	}
	have, err := st.opt.Datapath.Routes()
	if err != nil {
		st.log.Error("audit: read routes", "err", err)
		return repairs
	}
	var fix []route.Entry
	var drop []netip.Prefix
	seen := make(map[netip.Prefix]bool, len(have))
	for _, r := range have {
		seen[r.Prefix] = true
		e := st.entries[r.Prefix]
		if e == nil || !e.xdp.on {
			drop = append(drop, r.Prefix)
			continue
		}
		if want := appliedEntry(r.Prefix, e.xdp); r != want {
			fix = append(fix, want)
		}
	}
	for p, e := range st.entries {
		if e.xdp.on && !seen[p] {
			fix = append(fix, appliedEntry(p, e.xdp))
		}
	}
	v4First := func(a, b netip.Prefix) int { return boolCmp(b.Addr().Is4(), a.Addr().Is4()) }
	slices.SortStableFunc(fix, func(a, b route.Entry) int { return v4First(a.Prefix, b.Prefix) })
	slices.SortStableFunc(drop, v4First)
	if n, err := st.opt.Datapath.UpdateRoutes(fix); err != nil {
		st.log.Error("audit: rewrite routes", "written", n, "of", len(fix), "err", err)
		repairs += n
	} else {
		repairs += len(fix)
	}
	if n, err := st.opt.Datapath.DeleteRoutes(drop); err != nil {
		st.log.Error("audit: delete unknown routes", "deleted", n, "of", len(drop), "err", err)
		repairs += n
	} else {
		repairs += len(drop)
	}
	st.counts.Repairs += uint64(repairs)
	return repairs
}

func appliedEntry(p netip.Prefix, x xdpApplied) route.Entry {
	r := route.Entry{Prefix: p, Kind: x.kind}
	if x.group != nil {
		r.Group = x.group.id
	}
	return r
}

func sameEgress(a, b route.Egress) bool {
	return a.Ifindex == b.Ifindex && a.Connected == b.Connected && string(a.MAC) == string(b.MAC)
}
