package fib

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// Table writes xdprouterd's routes with its own protocol, into table ID
// or, for a change whose Route.Table is set, into that table (VRF-lite
// instances), and asks the kernel to resolve neighbors. It works in the
// network namespace of the process.
type Table struct {
	ID int
	// Protocol is the rtm_protocol of the routes written and deleted
	// (1-255); 0 means DefaultProtocol. Deletes carry it too, so the kernel
	// never removes another daemon's route of the same prefix and metric.
	// Set it before the first Apply.
	Protocol int
	h        *netlink.Handle
	batch    *batcher
}

// Open returns a writer for kernel table id.
func Open(id int) (*Table, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	b, err := newBatcher()
	if err != nil {
		h.Close()
		return nil, err
	}
	return &Table{ID: id, h: h, batch: b}, nil
}

// Close releases the netlink sockets.
func (t *Table) Close() error {
	t.h.Close()
	return t.batch.close()
}

// Apply writes changes in order, many per system call, and returns one
// error (or nil) per change. An install creates or replaces the route of
// the same prefix and metric; deleting a route that is already gone is not
// an error.
func (t *Table) Apply(changes []route.Change) []error {
	proto, err := protocol(t.Protocol)
	if err != nil {
		errs := make([]error, len(changes))
		for i := range errs {
			errs[i] = fmt.Errorf("table %d: %w", t.ID, err)
		}
		return errs
	}
	errs := t.batch.run(changes, t.ID, uint8(proto))
	for i, err := range errs {
		c := changes[i]
		tid := t.ID
		if c.Route.Table != 0 {
			tid = c.Route.Table
		}
		switch {
		case err == nil:
		case c.Delete && (errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT)):
			errs[i] = nil
		case c.Delete:
			errs[i] = fmt.Errorf("delete route %s from table %d: %w", c.Route.Prefix, tid, err)
		case refused(err) && c.Route.NHID != 0:
			// Also a nexthop id that does not exist (yet): install the
			// objects before the routes naming them.
			errs[i] = fmt.Errorf("install route %s by nexthop %d in table %d: %w: %w", c.Route.Prefix, c.Route.NHID, tid, route.ErrRejected, err)
		case refused(err):
			errs[i] = fmt.Errorf("install route %s via %v in table %d: %w: %w", c.Route.Prefix, c.Route.NextHops, tid, route.ErrRejected, err)
		default:
			errs[i] = fmt.Errorf("install route %s in table %d: %w", c.Route.Prefix, tid, err)
		}
	}
	return errs
}

// refused reports whether an install error is final: the kernel found the
// route itself invalid (e.g. a gateway that is a broadcast address), as
// opposed to a lack of memory or a table changing under us.
func refused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EAFNOSUPPORT)
}

// Resolve asks the kernel to resolve (or re-confirm) the neighbor addr on
// ifindex, as if a packet were sent to it (NTF_USE): XDP forwarding never
// confirms neighbors itself, and the first packet of a route should not be
// lost to an ARP/ND miss.
func (t *Table) Resolve(ifindex int, addr netip.Addr) error {
	fam := unix.AF_INET
	if addr.Is6() {
		fam = unix.AF_INET6
	}
	err := t.h.NeighSet(&netlink.Neigh{LinkIndex: ifindex, Family: fam, IP: addr.AsSlice(), Flags: unix.NTF_USE})
	if err != nil {
		return fmt.Errorf("resolve neighbor %s on ifindex %d: %w", addr, ifindex, err)
	}
	return nil
}
