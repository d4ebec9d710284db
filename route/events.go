package route

// The kernel state fib/ reads and streams to sync/.

// Snapshot is the complete kernel state at one moment. The watcher sends one
// at start and after every resynchronisation (netlink overflow); receivers
// replace what they knew.
type Snapshot struct {
	Links     []Link
	Addrs     []Addr
	Routes    []Route // every table but local, all protocols but xdprouterd's
	Ours      []Route // every table but local, xdprouterd's protocol
	Neighbors []Neighbor
	Rules     []Rule // policy rules, both families, in priority order
}

// RouteResync is the complete route list of every table but local, split as
// in Snapshot. The watcher sends it after the kernel removed IPv4 routes
// without telling: a link set admin-down or deleted, an IPv4 address removed
// (routes through the link, or using the address, are flushed without an
// RTM_DELROUTE each). Receivers replace the routes they knew with it; links,
// addresses and neighbors are unaffected. It follows the event that caused
// it; a burst of such events gives one RouteResync.
type RouteResync struct {
	Routes []Route // not xdprouterd's
	Ours   []Route // xdprouterd's
}

// RouteEvent is a route added/replaced (Deleted false) or removed.
type RouteEvent struct {
	Route   Route
	Ours    bool // xdprouterd's protocol: one of our routes (or its echo)
	Deleted bool
	// Replace: the kernel replaced a route of the same table, prefix and
	// metric with Route (NLM_F_REPLACE). IPv6 keeps several routes of one
	// metric side by side; without Replace, Route is added next to them
	// (or, a multipath route listing the next hops it had, updates it).
	Replace bool
}

// NeighEvent is a neighbor entry change.
type NeighEvent struct {
	Neighbor Neighbor
	Deleted  bool
}

// LinkEvent is an interface change.
type LinkEvent struct {
	Link    Link
	Deleted bool
}

// AddrEvent is an address added or removed.
type AddrEvent struct {
	Addr    Addr
	Deleted bool
}
