// Package route holds the value types the control plane passes between its
// parts: kernel state read by fib/, best paths from bgp/, and what sync/
// installs. It imports no netlink or BPF library.
package route

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Kind is what a route does with matching packets.
type Kind uint8

const (
	Unicast     Kind = iota // forward to next hops
	Blackhole               // drop silently
	Unreachable             // reject: the kernel sends the ICMP error (unreachable, prohibit, throw)
	Local                   // destination is an address of this router
	KernelOnly              // only the kernel can forward: encapsulation, an MPLS via, a route MTU
	Throw                   // policy routing: the lookup fails in this table and goes on with the next rule
)

// Kernel routing tables (rtm_table) with a fixed meaning.
const (
	TableDefault = 253
	TableMain    = 254
	TableLocal   = 255
)

// TablePrefix names one route slot: a prefix of one kernel table.
type TablePrefix struct {
	Table  int
	Prefix netip.Prefix
}

// NormTable maps the table 0 (unset) to TableMain: keys built from
// tables always go through it.
func NormTable(t int) int {
	if t == 0 {
		return TableMain
	}
	return t
}

// Key is the route's slot: its table (normalised) and prefix.
func (r Route) Key() TablePrefix { return TablePrefix{NormTable(r.Table), r.Prefix} }

func (tp TablePrefix) String() string {
	if tp.Table == TableMain {
		return tp.Prefix.String()
	}
	return tp.Prefix.String() + " table " + strconv.Itoa(tp.Table)
}

func (k Kind) String() string {
	switch k {
	case Unicast:
		return "unicast"
	case Blackhole:
		return "blackhole"
	case Unreachable:
		return "unreachable"
	case Local:
		return "local"
	case KernelOnly:
		return "kernel-only"
	case Throw:
		return "throw"
	}
	return "unknown"
}

// NextHop is one way out: a gateway on an interface, or, with an invalid
// Gateway, the interface itself (a connected route: the destination host is
// the neighbor).
type NextHop struct {
	Gateway netip.Addr
	Ifindex int
}

// Connected reports whether the destination itself is the neighbor.
func (n NextHop) Connected() bool { return !n.Gateway.IsValid() }

func (n NextHop) String() string {
	if n.Connected() {
		return "dev#" + strconv.Itoa(n.Ifindex)
	}
	return n.Gateway.String() + "@" + strconv.Itoa(n.Ifindex)
}

// Compare orders next hops (for canonical sets).
func (n NextHop) Compare(o NextHop) int {
	if c := n.Gateway.Compare(o.Gateway); c != 0 {
		return c
	}
	return n.Ifindex - o.Ifindex
}

// Route is one kernel route or one route xdprouterd installs.
type Route struct {
	// Table is the kernel table (rtm_table, RTA_TABLE) of the route; 0
	// reads as TableMain (see NormTable).
	Table    int
	Prefix   netip.Prefix
	Kind     Kind
	NextHops []NextHop // Unicast only; canonical order (see SortNextHops)
	Protocol int       // kernel rtm_protocol
	Metric   int       // kernel priority: lower wins
	// NHID, when non-zero, is the kernel nexthop object (see Nexthop,
	// NexthopGroup) the route forwards by: it is installed by id, and
	// NextHops are ignored on install. Read back, NextHops hold the
	// kernel's expansion of the object.
	NHID uint32
}

// SortNextHops puts next hops in canonical order and removes duplicates, so
// that equal sets compare and intern equal.
func SortNextHops(nhs []NextHop) []NextHop {
	slices.SortFunc(nhs, NextHop.Compare)
	return slices.Compact(nhs)
}

// Key is a compact canonical string of a next-hop set, for interning.
func Key(nhs []NextHop) string {
	var b strings.Builder
	for _, n := range nhs {
		b.Write(n.Gateway.AsSlice())
		b.WriteByte('@')
		b.WriteString(strconv.Itoa(n.Ifindex))
		b.WriteByte(';')
	}
	return b.String()
}

// Neighbor is an ARP/NDP entry. Valid means the MAC may be used for
// forwarding (reachable, stale, delay, probe, permanent). Stale means the
// kernel has not confirmed it lately: traffic forwarded by XDP never does,
// so it is worth re-confirming. Static (permanent, noarp) entries are never
// stale and must never be re-resolved.
type Neighbor struct {
	Ifindex int
	Addr    netip.Addr
	MAC     net.HardwareAddr
	Valid   bool
	Stale   bool
}

// Link is a network interface.
type Link struct {
	Index int
	Name  string
	MAC   net.HardwareAddr
	MTU   int
	Up    bool // administratively up and carrier present
}

// Addr is an address assigned to an interface of the router.
type Addr struct {
	Ifindex int
	Prefix  netip.Prefix // address with its prefix length
}

// Change is one write to the kernel FIB: install (create or replace) or
// delete a route.
type Change struct {
	Delete bool
	Route  Route
}

// ErrRejected marks a change the kernel refused for good (e.g. an invalid
// gateway): retrying the same change cannot succeed. Test with errors.Is.
var ErrRejected = errors.New("rejected by the kernel")
