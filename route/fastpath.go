package route

import (
	"net"
	"net/netip"
)

// MaxECMP is the largest number of next hops in a group, in XDP (MAX_ECMP in
// bpf/fwd.h) and in sync.
const MaxECMP = 64

// Entry is one route of the fast path's lookup structure: what packets to
// Prefix do (Kind) and, for Unicast, which next-hop group they use.
type Entry struct {
	// Table is the kernel table the route mirrors (0 reads as TableMain):
	// XDP keeps one lookup structure per table and picks the table by the
	// kernel's policy rules (see Rule).
	Table  int
	Prefix netip.Prefix
	Kind   Kind
	Group  uint32 // next-hop group id; Unicast only
}

// Egress is one next-hop entry of the fast path: the egress interface and
// the gateway's MAC.
type Egress struct {
	Ifindex int
	// MAC is the gateway's MAC address; nil means unresolved (packets are
	// passed to the kernel, which resolves the neighbor). Ignored when
	// Connected is set.
	MAC net.HardwareAddr
	// Connected means the packet's destination is itself the neighbor: its
	// MAC comes from the neighbor table (Ifindex, destination).
	Connected bool
	// Gateway is the next hop's address (invalid for connected next
	// hops); XDP does not use it, a restarted daemon reads it back.
	Gateway netip.Addr
}

// XDPState is what a previous instance left in the pinned XDP maps, read
// back on start (hitless restart): the routes, the groups they name (the
// next-hop ids XDP hashes over), every next hop written and the neighbors.
type XDPState struct {
	Routes    []Entry
	Groups    map[uint32][]uint32
	NextHops  map[uint32]Egress
	Neighbors []Neighbor
}
