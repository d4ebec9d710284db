package fib

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// Watcher streams the kernel's links, addresses, routes of every table but
// local (each route.Route carries its table), neighbors and policy rules: a
// Snapshot first, then events (RouteEvent, RuleSet, ...), and a fresh
// Snapshot whenever netlink reports lost messages. It works in the network
// namespace of the process (of the calling thread).
type Watcher struct {
	// Protocol is the rtm_protocol of xdprouterd's own routes (see
	// Table.Protocol); 0 means DefaultProtocol. Routes with it, in any
	// table, are Ours; every other route is a kernel route.
	Protocol int
	Log      *slog.Logger
	// RcvBuf is the socket receive buffer of the route and neighbor
	// subscriptions; 0 means 128 MiB, large enough that a full table load
	// does not overflow, nor replacing a nexthop group that a full table
	// uses (the kernel sends a message per route, ~150 bytes each, at
	// once). Memory is taken only while messages wait. (Tests make it tiny
	// to force resyncs.)
	RcvBuf int

	// Tests replace these; nil means w.once, sleepCtx and time.Now.
	attempt func(ctx context.Context, out chan<- any, proto int) error
	sleep   func(ctx context.Context, d time.Duration) bool
	now     func() time.Time
}

const defaultRcvBuf = 128 << 20

// Restart backoff: a watch that keeps failing (netlink refusing sockets,
// dumps failing) must not spin; one that ran for healthyRun starts over at
// minBackoff, so an occasional overflow resyncs quickly.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
	healthyRun = 10 * time.Second
)

// Run sends events to out until ctx ends. It restarts the watch (with a
// fresh Snapshot) after errors, waiting with exponential backoff.
func (w *Watcher) Run(ctx context.Context, out chan<- any) error {
	proto, err := protocol(w.Protocol)
	if err != nil {
		return fmt.Errorf("netlink watch: %w", err)
	}
	attempt, sleep, now := w.attempt, w.sleep, w.now
	if attempt == nil {
		attempt = w.once
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	if now == nil {
		now = time.Now
	}
	delay := minBackoff
	for {
		start := now()
		err := attempt(ctx, out, proto)
		if ctx.Err() != nil {
			return nil
		}
		if now().Sub(start) >= healthyRun {
			delay = minBackoff
		}
		w.Log.Warn("netlink watch restarting with a full resync", "err", err, "after", delay)
		if !sleep(ctx, delay) {
			return nil
		}
		delay = min(2*delay, maxBackoff)
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// once subscribes, dumps, then forwards events until an error.
func (w *Watcher) once(ctx context.Context, out chan<- any, proto int) error {
	rcvBuf := w.RcvBuf
	if rcvBuf == 0 {
		rcvBuf = defaultRcvBuf
	}
	done := make(chan struct{})
	failed := make(chan error, 4)
	onErr := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	routes := make(chan netlink.RouteUpdate, 4096)
	neighs := make(chan netlink.NeighUpdate, 1024)
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	// Closing done closes the sockets; the library's readers may be blocked
	// sending to us: drain what was subscribed until they close it.
	var drains []func()
	defer func() {
		close(done)
		for _, d := range drains {
			go d()
		}
	}()
	// Subscribe before dumping so nothing between the dump and the first
	// event is missed; events older than the dump converge anyway.
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{
		ErrorCallback: onErr, ReceiveBufferSize: rcvBuf, ReceiveBufferForceSize: true}); err != nil {
		return fmt.Errorf("subscribe routes: %w", err)
	}
	drains = append(drains, func() { drain(routes) })
	if err := netlink.NeighSubscribeWithOptions(neighs, done, netlink.NeighSubscribeOptions{
		ErrorCallback: onErr, ReceiveBufferSize: rcvBuf, ReceiveBufferForceSize: true}); err != nil {
		return fmt.Errorf("subscribe neighbors: %w", err)
	}
	drains = append(drains, func() { drain(neighs) })
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribe links: %w", err)
	}
	drains = append(drains, func() { drain(links) })
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
		return fmt.Errorf("subscribe addresses: %w", err)
	}
	drains = append(drains, func() { drain(addrs) })
	rules, err := subscribeRules(done, onErr)
	if err != nil {
		return fmt.Errorf("subscribe rules: %w", err)
	}
	drains = append(drains, func() { drain(rules) })
	snap, up, err := dump(proto)
	if err != nil {
		return err
	}
	if !send(ctx, out, snap) {
		return nil
	}
	st := &watchState{proto: proto, up: up, rules: snap.Rules}
	for {
		var ev any
		if st.pending() {
			// Coalesce: handle what is already queued, dump once the
			// burst that flushed routes is over.
			select {
			case <-ctx.Done():
				return nil
			case err = <-failed:
			case u, ok := <-routes:
				ev, err = st.route(u, ok)
			case u, ok := <-neighs:
				ev, err = st.neigh(u, ok)
			case u, ok := <-links:
				ev, err = st.link(u, ok)
			case u, ok := <-addrs:
				ev, err = st.addr(u, ok)
			case _, ok := <-rules:
				ev, err = st.ruleSet(ok)
			default:
				ev, err = st.resync(ctx)
			}
		} else {
			select {
			case <-ctx.Done():
				return nil
			case err = <-failed:
			case u, ok := <-routes:
				ev, err = st.route(u, ok)
			case u, ok := <-neighs:
				ev, err = st.neigh(u, ok)
			case u, ok := <-links:
				ev, err = st.link(u, ok)
			case u, ok := <-addrs:
				ev, err = st.addr(u, ok)
			case _, ok := <-rules:
				ev, err = st.ruleSet(ok)
			}
		}
		if err != nil {
			return err
		}
		if ev == nil {
			continue
		}
		if !send(ctx, out, ev) {
			return nil
		}
	}
}

// watchState is what one watch remembers between events: which links are
// up (administratively, and with carrier), and what silent IPv4 flush a
// RouteResync is due for.
type watchState struct {
	proto int
	up    map[int]linkUp
	rules []route.Rule // the last sent
	// Pending resync: links gone down or deleted, links that lost their
	// carrier (routes by nexthop objects go) or got it back (routes kept
	// as linkdown come back to life without a message), IPv4 addresses
	// removed.
	downed    map[int]bool
	noCarrier map[int]bool
	carrier   bool
	removed   []route.Addr
}

type linkUp struct{ admin, carrier bool }

func flagsUp(flags uint32) linkUp {
	return linkUp{flags&unix.IFF_UP != 0, flags&unix.IFF_LOWER_UP != 0}
}

func (st *watchState) pending() bool {
	return len(st.downed) > 0 || len(st.noCarrier) > 0 || st.carrier || len(st.removed) > 0
}

func (st *watchState) route(u netlink.RouteUpdate, ok bool) (any, error) {
	if !ok {
		return nil, errors.New("route subscription closed")
	}
	if (u.Type != unix.RTM_NEWROUTE && u.Type != unix.RTM_DELROUTE) || u.Flags&unix.RTM_F_CLONED != 0 {
		return nil, nil
	}
	r, ok := fromNetlink(&u.Route)
	if !ok {
		return nil, nil
	}
	ours, deleted := r.Protocol == st.proto, u.Type == unix.RTM_DELROUTE
	if ours && !deleted {
		return nil, nil // the echo of our own write
	}
	// An IPv6 replace must say so: the route it replaced may have had
	// other next hops, or none (a reject route).
	replace := !deleted && u.NlFlags&unix.NLM_F_REPLACE != 0
	return route.RouteEvent{Route: r, Ours: ours, Deleted: deleted, Replace: replace}, nil
}

// ruleSet dumps the rules after a change notification; nothing when they
// are what was sent last (notifications that the previous dump already
// covered).
func (st *watchState) ruleSet(ok bool) (any, error) {
	if !ok {
		return nil, errRulesClosed
	}
	rules, err := dumpRules()
	if err != nil {
		return nil, err
	}
	if slices.EqualFunc(rules, st.rules, ruleEqual) {
		return nil, nil
	}
	st.rules = rules
	return route.RuleSet{Rules: rules}, nil
}

func ruleEqual(a, b route.Rule) bool { return reflect.DeepEqual(a, b) }

func (st *watchState) neigh(u netlink.NeighUpdate, ok bool) (any, error) {
	if !ok {
		return nil, errors.New("neighbor subscription closed")
	}
	n, ok := neighFromNetlink(&u.Neigh)
	if !ok {
		return nil, nil
	}
	return route.NeighEvent{Neighbor: n, Deleted: u.Type == unix.RTM_DELNEIGH}, nil
}

func (st *watchState) link(u netlink.LinkUpdate, ok bool) (any, error) {
	if !ok {
		return nil, errors.New("link subscription closed")
	}
	l := linkFromNetlink(u.Link)
	deleted := u.Header.Type == unix.RTM_DELLINK
	was := st.up[l.Index]
	up := flagsUp(u.Link.Attrs().RawFlags)
	if deleted {
		delete(st.up, l.Index)
	} else {
		st.up[l.Index] = up
	}
	// Admin-down and deletion flush IPv4 routes through the link silently.
	// Carrier loss does not (those routes stay, marked linkdown), except
	// for routes by nexthop objects, whose nexthops the kernel deletes.
	switch {
	case deleted || (was.admin && !up.admin):
		st.flushed(l.Index)
	case was.carrier && !up.carrier:
		if st.noCarrier == nil {
			st.noCarrier = map[int]bool{}
		}
		st.noCarrier[l.Index] = true
	case was.admin && up.admin && !was.carrier && up.carrier:
		st.carrier = true
	}
	return route.LinkEvent{Link: l, Deleted: deleted}, nil
}

func (st *watchState) addr(u netlink.AddrUpdate, ok bool) (any, error) {
	if !ok {
		return nil, errors.New("address subscription closed")
	}
	ones, _ := u.LinkAddress.Mask.Size()
	p := netip.PrefixFrom(addrFromIP(u.LinkAddress.IP), ones)
	if !p.IsValid() {
		return nil, nil
	}
	a := route.Addr{Ifindex: u.LinkIndex, Prefix: p}
	if !u.NewAddr && p.Addr().Is4() {
		// Routes with it as source, or through its subnet, are flushed
		// silently.
		st.removed = append(st.removed, a)
	}
	return route.AddrEvent{Addr: a, Deleted: !u.NewAddr}, nil
}

func (st *watchState) flushed(ifindex int) {
	if st.downed == nil {
		st.downed = map[int]bool{}
	}
	st.downed[ifindex] = true
}

// Dump attempts before a RouteResync is sent anyway, and the wait between:
// see unflushed.
const (
	resyncTries = 5
	resyncRetry = 20 * time.Millisecond
)

// resync dumps the routes of all tables for a RouteResync.
func (st *watchState) resync(ctx context.Context) (any, error) {
	var rs route.RouteResync
	for try := 1; ; try++ {
		var err error
		rs.Routes, rs.Ours, err = dumpRoutes(allTables, st.proto)
		if err != nil {
			return nil, err
		}
		if try == resyncTries || !st.unflushed(rs) || !sleepCtx(ctx, resyncRetry) {
			break
		}
	}
	st.downed, st.noCarrier, st.carrier, st.removed = nil, nil, false, nil
	return rs, nil
}

// unflushed reports whether routes still point where the kernel is about to
// flush: its link and address messages are sent before the flush, which
// runs on the writer's CPU while we dump. (A route may also stay for a good
// reason, e.g. another address on the same subnet: hence a bounded retry.)
func (st *watchState) unflushed(rs route.RouteResync) bool {
	for _, list := range [][]route.Route{rs.Routes, rs.Ours} {
		for _, r := range list {
			if !r.Prefix.Addr().Is4() {
				continue
			}
			for _, nh := range r.NextHops {
				if st.downed[nh.Ifindex] || r.NHID != 0 && st.noCarrier[nh.Ifindex] {
					return true
				}
				for _, a := range st.removed {
					if nh.Ifindex != a.Ifindex {
						continue
					}
					if nh.Connected() && r.Prefix == a.Prefix.Masked() ||
						!nh.Connected() && a.Prefix.Masked().Contains(nh.Gateway) {
						return true
					}
				}
			}
		}
	}
	return false
}

func drain[T any](ch <-chan T) {
	for range ch {
	}
}

func send(ctx context.Context, out chan<- any, ev any) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// Dump reads the complete kernel state (see Snapshot: routes of every
// table but local, policy rules) with routes of DefaultProtocol as Ours,
// retrying dumps that the kernel interrupted.
func Dump() (*route.Snapshot, error) {
	s, _, err := dump(DefaultProtocol)
	return s, err
}

// DumpOurs lists the routes of one table with protocol proto
// (xdprouterd's); 0 for proto means DefaultProtocol.
func DumpOurs(table, proto int) ([]route.Route, error) {
	p, err := protocol(proto)
	if err != nil {
		return nil, err
	}
	if table <= 0 {
		return nil, fmt.Errorf("table %d: must be positive", table)
	}
	_, ours, err := dumpRoutes(table, p)
	return ours, err
}

// dump reads the complete kernel state, and which links are up.
func dump(proto int) (*route.Snapshot, map[int]linkUp, error) {
	var s route.Snapshot
	var errs []error
	up := map[int]linkUp{}
	links, err := retry(func() ([]netlink.Link, error) { return netlink.LinkList() })
	if err != nil {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	for _, l := range links {
		s.Links = append(s.Links, linkFromNetlink(l))
		up[l.Attrs().Index] = flagsUp(l.Attrs().RawFlags)
	}
	addrs, err := retry(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		errs = append(errs, fmt.Errorf("list addresses: %w", err))
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ones, _ := a.Mask.Size()
		s.Addrs = append(s.Addrs, route.Addr{Ifindex: a.LinkIndex, Prefix: netip.PrefixFrom(addrFromIP(a.IP), ones)})
	}
	s.Routes, s.Ours, err = dumpRoutes(allTables, proto)
	if err != nil {
		errs = append(errs, err)
	}
	s.Rules, err = dumpRules()
	if err != nil {
		errs = append(errs, err)
	}
	neighs, err := retry(func() ([]netlink.Neigh, error) { return netlink.NeighList(0, netlink.FAMILY_ALL) })
	if err != nil {
		errs = append(errs, fmt.Errorf("list neighbors: %w", err))
	}
	for i := range neighs {
		if n, ok := neighFromNetlink(&neighs[i]); ok {
			s.Neighbors = append(s.Neighbors, n)
		}
	}
	return &s, up, errors.Join(errs...)
}

// allTables asks dumpRoutes for every table but local.
const allTables = 0

// dumpRoutes lists the routes of table (allTables: every table but local),
// split into others' and ours. Ours carry their NHID (a second, raw dump,
// only when we have nexthop objects); others' only the expansion of
// theirs. Each dump is one pass over the kernel's FIB, whatever the number
// of tables.
func dumpRoutes(table, proto int) (routes, ours []route.Route, err error) {
	err = retryErr(func() error {
		routes, ours = routes[:0], ours[:0]
		// With RT_FILTER_TABLE and table 0 the library keeps the routes
		// of every table (without it, of main only).
		return netlink.RouteListFilteredIter(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE, func(nr netlink.Route) bool {
			if r, ok := fromNetlink(&nr); ok {
				if r.Protocol == proto {
					ours = append(ours, r)
				} else {
					routes = append(routes, r)
				}
			}
			return true
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list routes%s: %w", tableSuffix(table), err)
	}
	if len(ours) > 0 && hasNexthops(proto) {
		ids, err := routeNHIDs(table, proto)
		if err != nil {
			return nil, nil, fmt.Errorf("list nexthop ids of routes%s: %w", tableSuffix(table), err)
		}
		for i, r := range ours {
			ours[i].NHID = ids[routeKey{r.Table, r.Prefix, r.Metric}]
		}
	}
	return routes, ours, nil
}

func tableSuffix(table int) string {
	if table == allTables {
		return ""
	}
	return fmt.Sprintf(" of table %d", table)
}

func retry[T any](f func() (T, error)) (T, error) {
	var v T
	err := retryErr(func() (err error) { v, err = f(); return err })
	return v, err
}

// retryErr repeats a dump the kernel marked interrupted (the table changed
// while it was read).
func retryErr(f func() error) error {
	var err error
	for range 10 {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}
