package sync

import (
	"slices"
	"strconv"

	"github.com/xdprouter/xdprouter/route"
)

// Mirrored tables (config fib.mirror-tables, issue 11).
//
// By default every kernel table (but local) is mirrored into XDP. With
// Options.MirrorTables, the kernel's routes of the other tables are not
// taken in at all (nor kept: a full table the router never forwards by in
// XDP costs no memory here) and stay the kernel's: a policy rule that
// looks such a table up is handed to the Datapath with an opaque selector
// ("not mirrored"), so XDP passes to the kernel the packets that may match
// it, as for any selector it cannot evaluate, and never gives the table a
// slot. The tables sync writes (Table, Tables, the policy tables) and
// main and default are always mirrored.

// mirrored reports whether table t's routes go into XDP.
func (st *state) mirrored(t int) bool {
	if st.opt.MirrorTables == nil {
		return true
	}
	t = route.NormTable(t)
	return t == route.TableMain || t == route.TableDefault || st.isBGPTable(t) || st.opt.MirrorTables(t)
}

// mirroredOnly returns the routes of rs in mirrored tables (rs itself
// when all are).
func (st *state) mirroredOnly(rs []route.Route) []route.Route {
	if st.opt.MirrorTables == nil || !slices.ContainsFunc(rs, func(r route.Route) bool { return !st.mirrored(r.Table) }) {
		return rs
	}
	return slices.DeleteFunc(slices.Clone(rs), func(r route.Route) bool { return !st.mirrored(r.Table) })
}

// notMirroredSelector marks a rule looking up a table that is not
// mirrored (see above).
func notMirroredSelector(table int) string {
	return "lookup-not-mirrored " + strconv.Itoa(table)
}

// rulesForXDP is the kernel's rule list as the Datapath gets it: rules
// that look up a table that is not mirrored carry an opaque selector.
func (st *state) rulesForXDP() []route.Rule {
	rs := slices.Clone(st.rules)
	if st.opt.MirrorTables == nil {
		return rs
	}
	for i, r := range rs {
		if r.Action == route.RuleLookup && route.NormTable(r.Table) != route.TableLocal && !st.mirrored(r.Table) {
			rs[i].Opaque = append(slices.Clip(r.Opaque), notMirroredSelector(route.NormTable(r.Table)))
		}
	}
	return rs
}
