package sync

import (
	"slices"

	"github.com/xdprouter/xdprouter/route"
)

// audit reads the XDP maps back and rewrites every entry that differs from
// what sync applied (a write lost or made by someone else), and deletes
// routes sync does not know. It returns the number of entries repaired.
// The worker runs it in two steps (beginAudit, the route read outside the
// lock, finishAudit) so that a full table's read-back never stalls it.
func (st *state) audit() int {
	st.beginAudit()
	have, err := st.opt.Datapath.Routes()
	return st.finishAudit(have, err)
}

// beginAudit repairs next hops and groups (few: read under the lock) and
// starts recording the routes written while the route maps are read.
func (st *state) beginAudit() {
	st.auditRepairs = 0
	st.touched = map[route.TablePrefix]struct{}{}
	// Next hops and groups first: routes point at them.
	for _, x := range st.nhs {
		got, err := st.opt.Datapath.NextHopAt(x.id)
		if err != nil {
			st.log.Error("audit: read next hop", "id", x.id, "err", err)
			continue
		}
		if want := st.egress(x); !sameEgress(got, want) || string(want.MAC) != x.mac {
			st.writeNextHop(x)
			st.auditRepairs++
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
			st.auditRepairs++
		}
	}
}

// finishAudit compares the route maps as read (have) with the applied
// state, ignoring prefixes written since beginAudit, and repairs the rest.
func (st *state) finishAudit(have []route.Entry, err error) int {
	touched := st.touched
	st.touched = nil
	repairs := st.auditRepairs
	defer func() { st.counts.Repairs += uint64(repairs) }()
	if err != nil {
		st.log.Error("audit: read routes", "err", err)
		return repairs
	}
	var fix []route.Entry
	var drop []route.TablePrefix
	seen := make(map[route.TablePrefix]bool, len(have))
	for _, r := range have {
		r.Table = route.NormTable(r.Table)
		k := route.TablePrefix{Table: r.Table, Prefix: r.Prefix}
		seen[k] = true
		if _, ok := touched[k]; ok {
			continue
		}
		e := st.entries.get(k)
		if e == nil || !e.xdp.on {
			drop = append(drop, k)
			continue
		}
		if want := appliedEntry(k, e.xdp); r != want {
			fix = append(fix, want)
		}
	}
	for p, e := range st.entries.all() {
		if _, ok := touched[p]; e.xdp.on && !seen[p] && !ok {
			fix = append(fix, appliedEntry(p, e.xdp))
		}
	}
	slices.SortStableFunc(fix, func(a, b route.Entry) int {
		return compareMap(route.TablePrefix{Table: a.Table, Prefix: a.Prefix}, route.TablePrefix{Table: b.Table, Prefix: b.Prefix})
	})
	slices.SortStableFunc(drop, compareMap)
	n, err := st.opt.Datapath.UpdateRoutes(fix)
	repairs += n
	if err != nil {
		st.log.Error("audit: rewrite routes", "written", n, "of", len(fix), "err", err)
	}
	n, err = st.opt.Datapath.DeleteRoutes(drop)
	repairs += n
	if err != nil {
		st.log.Error("audit: delete unknown routes", "deleted", n, "of", len(drop), "err", err)
	}
	return repairs
}

// touch records that p's XDP entry was written (while an audit reads).
func (st *state) touch(p route.TablePrefix) {
	if st.touched != nil {
		st.touched[p] = struct{}{}
	}
}

// appliedEntry is the XDP entry of p as applied (x).
func appliedEntry(p route.TablePrefix, x xdpApplied) route.Entry {
	return route.Entry{Table: p.Table, Prefix: p.Prefix, Kind: x.kind, Group: x.group}
}

func sameEgress(a, b route.Egress) bool {
	return a.Ifindex == b.Ifindex && a.Connected == b.Connected && string(a.MAC) == string(b.MAC) && a.Gateway == b.Gateway
}
