package sync

import (
	"errors"
	"slices"
	"time"

	"github.com/xdprouter/xdprouter/route"
)

// apply writes the difference between desired and applied state for at
// most limit dirty prefixes (all if limit is 0) and reports whether dirty
// ones remain. Order keeps forwarding correct at every instant: next hops
// and groups before the routes that use them; the kernel before XDP on
// add, XDP before the kernel on delete; XDP follows what the kernel
// accepted.
func (st *state) apply(limit int) (more bool) {
	if st.resolveDirty {
		st.resolveDirty = false
		st.reresolve()
	}
	if st.groupsDirty {
		st.groupsDirty = false
		for _, g := range st.groups {
			st.writeGroup(g)
		}
	}
	if st.opt.NexthopObjects {
		st.writeKernelGroups()
	}
	batch, more := st.dirty.take(max(limit, 0))
	defer st.entries.shrink()
	st.exhausted, st.batchFailed = "", 0

	removing := st.applyKernelAdds(batch)
	st.applyXDP(batch, removing)
	st.applyKernelDeletes(removing)
	if st.opt.NexthopObjects {
		st.deleteKernelNexthops()
	}
	if !more {
		st.applyRules() // once the routes of every table are in
	}

	// Map exhaustion is logged once when it starts and once when it ends.
	switch full := st.exhausted != "" || st.refusedMapFull > 0; {
	case full && !st.exhaustedLogged:
		st.log.Error("XDP map full: routes needing new entries are passed to the kernel until some are freed",
			"map", st.exhausted, "refused_routes", len(st.refused))
		st.exhaustedLogged = true
	case !full && st.exhaustedLogged:
		st.log.Info("XDP maps have room again: every route is forwarded in XDP")
		st.exhaustedLogged = false
	}
	if st.batchFailed > 0 && time.Since(st.lastFailLog) >= failLogEvery {
		st.lastFailLog = time.Now()
		st.log.Error("sync: changes failed, retrying every second", "count", st.batchFailed, "first", st.firstFail)
	}
	return more
}

// failLogEvery bounds how often transient failures are logged.
const failLogEvery = 30 * time.Second

func (st *state) fail(p route.TablePrefix, err error) {
	st.failed[p] = struct{}{}
	if st.batchFailed++; st.batchFailed == 1 {
		st.firstFail = err
	}
}

// applyKernelAdds installs our routes that should be (re)installed and
// returns the keys whose route of ours should go (deleted after XDP
// stopped using it). Only keys of our table have routes of ours.
func (st *state) applyKernelAdds(batch []route.TablePrefix) (removing map[route.TablePrefix]*entry) {
	type add struct {
		p  route.TablePrefix
		e  *entry
		id uint32
	}
	type install struct {
		p route.TablePrefix
		e *entry
		w fibWant
	}
	var (
		installs []install
		adds     []add
		ops      []route.Change
	)
	removing = map[route.TablePrefix]*entry{}
	for _, p := range batch {
		e := st.entries.get(p)
		if e == nil {
			continue
		}
		w := st.wantFIB(p, e)
		if w.action != fibKeep && e.isRejected() {
			st.setRejected(p, e, rejection{}) // the wanted route changed: try it
		}
		switch w.action {
		case fibInstall:
			installs = append(installs, install{p, e, w})
			if st.opt.NexthopObjects && usesKernelGroup(w.set) {
				st.kgroupFor(w.set, oursNHID(st.ourLists.byID[e.ours]))
			}
		case fibRemove:
			if e.ours != 0 && !e.isStale() {
				removing[p] = e
			}
		}
	}
	if st.opt.NexthopObjects {
		st.writeKernelGroups() // before the routes naming them
	}
	for _, in := range installs {
		p, e, w := in.p, in.e, in.w
		r := route.Route{Table: p.Table, Prefix: p.Prefix, Kind: route.Unicast, NextHops: w.nhs, Metric: st.opt.Metric}
		var id uint32
		if st.opt.NexthopObjects && !w.blackhole {
			r.NHID = st.routeNHID(w.set, w.nhs)
		}
		switch {
		case w.blackhole:
			r.Kind, r.NextHops = route.Blackhole, nil
			id = st.ourLists.getKey(blackholeListKey, nil)
		case r.NHID != 0:
			id = st.ourLists.getKey(objListKey(r.NHID), w.nhs)
			st.kgroupByID[r.NHID].listed = true
		default:
			id = st.ourLists.get(w.nhs)
		}
		if id == e.ours {
			st.ourLists.put(id)
			st.setStale(e, false)
			continue
		}
		adds = append(adds, add{p, e, id})
		ops = append(ops, route.Change{Route: r})
	}
	if len(ops) == 0 {
		return removing
	}
	var rejected []error
	for i, err := range st.opt.FIB.Apply(ops) {
		a := adds[i]
		if err != nil {
			st.ourLists.put(a.id)
			if nhid := ops[i].Route.NHID; nhid != 0 {
				// Most likely the kernel deleted the group behind our back:
				// write it again and retry, rather than give the route up.
				if g := st.kgroupByID[nhid]; g != nil {
					g.written = false
				}
				// Expected after a link went down (the kernel deletes
				// groups without telling): retried, not an error.
				st.failed[a.p] = struct{}{}
				st.log.Debug("install by a kernel nexthop group failed: rewriting the group", "prefix", a.p, "err", err)
				continue
			}
			if errors.Is(err, route.ErrRejected) {
				key := route.Key(ops[i].Route.NextHops)
				if ops[i].Route.Kind == route.Blackhole {
					key = blackholeListKey
				}
				st.setRejected(a.p, a.e, rejection{key, err.Error()})
				rejected = append(rejected, err)
				continue
			}
			st.fail(a.p, err)
			continue
		}
		st.counts.FIBInstalls++
		if a.e.ours != 0 {
			st.ourLists.put(a.e.ours)
		} else {
			st.countFIB(a.p.Prefix, 1)
		}
		a.e.ours = a.id
		st.setStale(a.e, false)
	}
	if len(rejected) > 0 {
		// Reported once: not retried until the wanted route changes.
		st.log.Error("kernel refused routes; XDP keeps what the kernel has (see xdprouterctl routes)",
			"count", len(rejected), "first", rejected[0])
	}
	return removing
}

// setRejected records (or, with the zero rejection, clears) a refusal.
func (st *state) setRejected(p route.TablePrefix, e *entry, r rejection) {
	if r.key == "" {
		delete(st.rejected, p)
	} else {
		st.rejected[p] = r
	}
	e.setRejected(r.key != "")
	st.counts.Rejected = len(st.rejected)
}

// applyXDP brings the XDP entries of batch to what the kernel now does.
// A batch that fails part-way commits what was written.
func (st *state) applyXDP(batch []route.TablePrefix, removing map[route.TablePrefix]*entry) {
	type change struct {
		p   route.TablePrefix
		e   *entry
		new xdpApplied
	}
	var upd, del []change
	for _, p := range batch {
		e := st.entries.get(p)
		if e == nil {
			continue
		}
		if e.xdp.adopted && e.isStale() {
			continue // as a previous instance left it, until re-learned or swept
		}
		_, gone := removing[p]
		w := st.wantXDP(e, gone)
		if !w.on {
			if e.xdp.on {
				del = append(del, change{p: p, e: e})
			} else if !gone {
				st.gc(p, e) // e.g. a withdrawal of a prefix never installed
			}
			continue
		}
		n := xdpApplied{on: true, kind: w.kind}
		if w.kind == route.Unicast {
			if w.refuse {
				n.kind, n.refused = route.KernelOnly, refusedPeerLimit // the kernel forwards it
			} else if g := st.acquireGroup(w.groupKey, w.members, w.backups, w.set, st.adoptedGroupOf(e), e.xdp.group); g != nil {
				n.group = g.id
			} else {
				n.kind, n.refused = route.KernelOnly, refusedMapFull
			}
		}
		if sameXDP(e.xdp, n) {
			e.xdp.adopted = false
			st.releaseGroupID(n.group)
			continue
		}
		upd = append(upd, change{p, e, n})
	}
	// One run per address family and table: the map writes batch per run.
	byMap := func(a, b change) int { return compareMap(a.p, b.p) }
	slices.SortStableFunc(upd, byMap)
	slices.SortStableFunc(del, byMap)

	if len(upd) > 0 {
		entries := make([]route.Entry, len(upd))
		for i, c := range upd {
			entries[i] = appliedEntry(c.p, c.new)
		}
		n, err := st.opt.Datapath.UpdateRoutes(entries)
		st.counts.XDPWrites += uint64(n)
		for i, c := range upd {
			if i >= n {
				st.releaseGroupID(c.new.group)
				st.fail(c.p, err)
				continue
			}
			st.touch(c.p)
			if !c.e.xdp.on {
				st.countXDP(c.p.Prefix, 1)
			}
			st.noteRefused(c.p, c.new.refused)
			st.releaseGroupID(c.e.xdp.group)
			c.e.xdp = c.new
		}
	}
	if len(del) > 0 {
		ps := make([]route.TablePrefix, len(del))
		for i, c := range del {
			ps[i] = c.p
		}
		n, err := st.opt.Datapath.DeleteRoutes(ps)
		st.counts.XDPWrites += uint64(n)
		for i, c := range del {
			if i >= n {
				st.fail(c.p, err)
				continue
			}
			st.touch(c.p)
			st.countXDP(c.p.Prefix, -1)
			st.noteRefused(c.p, 0)
			st.releaseGroupID(c.e.xdp.group)
			c.e.xdp = xdpApplied{}
			st.gc(c.p, c.e)
		}
	}
}

// compareMap orders keys by the XDP map they are written to: IPv4 first,
// then by table.
func compareMap(a, b route.TablePrefix) int {
	if c := boolCmp(b.Prefix.Addr().Is4(), a.Prefix.Addr().Is4()); c != 0 {
		return c
	}
	return a.Table - b.Table
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// noteRefused tracks the prefixes passed to the kernel for lack of room
// (why; 0: not refused): they are retried with the failed ones.
func (st *state) noteRefused(p route.TablePrefix, why refusal) {
	if st.refused[p] == refusedMapFull {
		st.refusedMapFull--
	}
	if why == 0 {
		delete(st.refused, p)
	} else {
		st.refused[p] = why
	}
	if why == refusedMapFull {
		st.refusedMapFull++
	}
	st.counts.Refused = len(st.refused)
}

// applyKernelDeletes removes our routes that nobody wants any more (XDP no
// longer uses them).
func (st *state) applyKernelDeletes(removing map[route.TablePrefix]*entry) {
	if len(removing) == 0 {
		return
	}
	ps := make([]route.TablePrefix, 0, len(removing))
	ops := make([]route.Change, 0, len(removing))
	for p := range removing {
		ps = append(ps, p)
		ops = append(ops, route.Change{Delete: true, Route: route.Route{Table: p.Table, Prefix: p.Prefix, Metric: st.opt.Metric}})
	}
	for i, err := range st.opt.FIB.Apply(ops) {
		p := ps[i]
		e := removing[p]
		if err != nil {
			st.fail(p, err)
			continue
		}
		st.counts.FIBDeletes++
		st.ourLists.put(e.ours)
		e.ours = 0
		st.countFIB(p.Prefix, -1)
		st.gc(p, e)
	}
}

// retryFailed marks the failed changes, and the routes refused for lack
// of map room, to be tried again.
func (st *state) retryFailed() {
	for p := range st.failed {
		st.markDirty(p)
	}
	clear(st.failed)
	for p := range st.refused {
		st.markDirty(p)
	}
	if len(st.peerOver) > 0 {
		st.readmitSets()
	}
}
