package fib

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// Table writes xdprouterd's routes into one kernel table with protocol
// ProtoBGP and asks the kernel to resolve neighbors. It works in the network
// namespace of the process.
type Table struct {
	ID int
	h  *netlink.Handle
}

// Open returns a writer for kernel table id.
func Open(id int) (*Table, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return &Table{ID: id, h: h}, nil
}

// Close releases the netlink socket.
func (t *Table) Close() error { t.h.Close(); return nil }

// Replace installs r (creating or replacing the route of the same prefix and
// metric).
func (t *Table) Replace(r route.Route) error {
	if err := t.h.RouteReplace(toNetlink(r, t.ID)); err != nil {
		return fmt.Errorf("replace route %s in table %d: %w", r.Prefix, t.ID, err)
	}
	return nil
}

// Delete removes r; a route that is already gone is not an error.
func (t *Table) Delete(r route.Route) error {
	nr := toNetlink(route.Route{Prefix: r.Prefix, Kind: r.Kind, Metric: r.Metric}, t.ID)
	nr.Type = 0 // match any type
	err := t.h.RouteDel(nr)
	if err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete route %s from table %d: %w", r.Prefix, t.ID, err)
	}
	return nil
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
