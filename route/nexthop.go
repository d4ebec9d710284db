package route

import "net/netip"

// Nexthop is a kernel nexthop object (ip nexthop): a gateway on an
// interface, or with an invalid Gateway the interface itself. Routes that
// name its ID follow it when it is replaced.
type Nexthop struct {
	ID      uint32
	Gateway netip.Addr // invalid: connected (dev only)
	Ifindex int
}

// NexthopGroup is a kernel nexthop group: multipath over single nexthops
// (by ID), each of weight 1.
type NexthopGroup struct {
	ID      uint32
	Members []uint32
}

// NexthopChange installs (creates or replaces) or deletes one nexthop
// object: the group when Group.ID is non-zero, else Nexthop. A delete needs
// only the ID.
type NexthopChange struct {
	Delete  bool
	Nexthop Nexthop
	Group   NexthopGroup
}

// ID is the id of the object the change is about.
func (c NexthopChange) ID() uint32 {
	if c.Group.ID != 0 {
		return c.Group.ID
	}
	return c.Nexthop.ID
}
