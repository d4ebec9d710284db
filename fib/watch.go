package fib

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// The event types live in route/ (sync/ knows no fib); these names are
// kept for the watcher's readers.
type (
	Snapshot   = route.Snapshot
	RouteEvent = route.RouteEvent
	NeighEvent = route.NeighEvent
	LinkEvent  = route.LinkEvent
	AddrEvent  = route.AddrEvent
)

// Watcher streams the kernel's links, addresses, routes of one table and
// neighbors: a Snapshot first, then events, and a fresh Snapshot whenever
// netlink reports lost messages. It works in the network namespace of the
// process.
type Watcher struct {
	Table int
	Log   *slog.Logger
	// RcvBuf is the socket receive buffer of the route and neighbor
	// subscriptions; 0 means 32 MiB, large enough that a full table load
	// does not overflow. (Tests make it tiny to force resyncs.)
	RcvBuf int
}

const defaultRcvBuf = 32 << 20

// Run sends events to out until ctx ends.
func (w *Watcher) Run(ctx context.Context, out chan<- any) error {
	for {
		err := w.once(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		w.Log.Warn("netlink watch restarting with a full resync", "err", err)
	}
}

// once subscribes, dumps, then forwards events until an error.
func (w *Watcher) once(ctx context.Context, out chan<- any) error {
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
	snap, err := Dump(w.Table)
	if err != nil {
		return err
	}
	if !send(ctx, out, snap) {
		return nil
	}
	for {
		var ev any
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case u, ok := <-routes:
			if !ok {
				return errors.New("route subscription closed")
			}
			if u.Table != w.Table || (u.Type != unix.RTM_NEWROUTE && u.Type != unix.RTM_DELROUTE) {
				continue
			}
			r, ok := fromNetlink(&u.Route)
			if !ok {
				continue
			}
			ours, deleted := r.Protocol == ProtoBGP, u.Type == unix.RTM_DELROUTE
			if ours && !deleted {
				continue // the echo of our own write
			}
			ev = RouteEvent{Route: r, Ours: ours, Deleted: deleted}
		case u, ok := <-neighs:
			if !ok {
				return errors.New("neighbor subscription closed")
			}
			n, ok := neighFromNetlink(&u.Neigh)
			if !ok {
				continue
			}
			ev = NeighEvent{Neighbor: n, Deleted: u.Type == unix.RTM_DELNEIGH}
		case u, ok := <-links:
			if !ok {
				return errors.New("link subscription closed")
			}
			ev = LinkEvent{Link: linkFromNetlink(u.Link), Deleted: u.Header.Type == unix.RTM_DELLINK}
		case u, ok := <-addrs:
			if !ok {
				return errors.New("address subscription closed")
			}
			ones, _ := u.LinkAddress.Mask.Size()
			p := netip.PrefixFrom(addrFromIP(u.LinkAddress.IP), ones)
			if !p.IsValid() {
				continue
			}
			ev = AddrEvent{Addr: route.Addr{Ifindex: u.LinkIndex, Prefix: p}, Deleted: !u.NewAddr}
		}
		if !send(ctx, out, ev) {
			return nil
		}
	}
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

// Dump reads the complete kernel state (see Snapshot), retrying dumps that
// the kernel interrupted.
func Dump(table int) (*Snapshot, error) {
	var s Snapshot
	var errs []error
	links, err := retry(func() ([]netlink.Link, error) { return netlink.LinkList() })
	if err != nil {
		errs = append(errs, fmt.Errorf("list links: %w", err))
	}
	for _, l := range links {
		s.Links = append(s.Links, linkFromNetlink(l))
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
	err = retryErr(func() error {
		s.Routes, s.Ours = s.Routes[:0], s.Ours[:0]
		return netlink.RouteListFilteredIter(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE, func(nr netlink.Route) bool {
			if r, ok := fromNetlink(&nr); ok {
				if r.Protocol == ProtoBGP {
					s.Ours = append(s.Ours, r)
				} else {
					s.Routes = append(s.Routes, r)
				}
			}
			return true
		})
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("list routes of table %d: %w", table, err))
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
	return &s, errors.Join(errs...)
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
