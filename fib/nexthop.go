package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// Kernel nexthop objects (ip nexthop), as measured on 6.18 in a test
// namespace (nexthop_compat_mode 1, the default):
//
//   - Route dumps and notifications of a route with RTA_NH_ID still carry
//     the expansion (RTA_GATEWAY/RTA_OIF, or RTA_MULTIPATH for a group), so
//     fromNetlink reads other daemons' nexthop routes (FRR uses them) like
//     plain ones. netlink v1.3.1 does not parse RTA_NH_ID: dumpRoutes reads
//     it for our routes with a raw dump; route events carry no NHID.
//   - Replacing an object (single or group, NLM_F_REPLACE on its id) moves
//     every route using it at once; the routes keep their nhid, and the
//     kernel sends one RTM_NEWROUTE per route (~0.7 µs each, synchronously:
//     75 ms for 100k routes; none with compat mode 0, then 0.1 ms), which
//     every route subscriber has to read: with a Watcher running, 100k
//     routes took 0.4 s, and 200k overflowed its 32 MiB buffer (a resync).
//   - Deleting a nexthop removes the routes using it directly and drops it
//     from its groups; a group left empty is deleted, with its routes. IPv4
//     routes go without an RTM_DELROUTE, IPv6 ones with one; the group
//     change and group deletion are notified.
//   - Carrier loss (veth peer down) and admin-down of a nexthop's device
//     delete the nexthop (no RTM_DELNEXTHOP), shrink its groups or delete
//     them when empty (not notified either), and remove the routes left
//     without a nexthop (IPv4 silently; IPv6 with an RTM_DELROUTE). Plain
//     routes survive carrier loss (marked linkdown); nexthop routes do not,
//     and nothing comes back with the carrier: the writer must reinstall.
//   - A single nexthop cannot be replaced by a group of the same id or the
//     reverse (EINVAL): delete, then create.
//   - A group of one member is allowed. A group or route naming an id that
//     does not exist, an IPv6 route by an IPv4 nexthop (or a group with
//     one), a broadcast gateway: EINVAL. An off-link gateway: ENETUNREACH
//     (IPv6: EHOSTUNREACH), as for routes. A dev-only AF_INET6 nexthop
//     serves IPv4 routes too.
//   - ids are one space per namespace for every daemon, and neither delete
//     nor replace checks the protocol: use ids no other daemon uses.

// Constants golang.org/x/sys/unix does not name: RTA_NH_ID (u32), NHA_FDB
// (flag) and NLA_TYPE_MASK.
const (
	rtaNHID     = 30
	nhaFDB      = 11
	nlaTypeMask = 0x3fff
)

// sizeofNhmsg is the size of struct nhmsg.
const sizeofNhmsg = 8

// ApplyNexthops writes nexthop changes in order, many per system call, and
// returns one error (or nil) per change. An install creates or replaces the
// object of that id; deleting one that is already gone is not an error.
// The kernel checks each change against the state the earlier ones left:
// install single nexthops before groups naming them, and move routes off
// an object before deleting it (the kernel removes routes still using it).
func (t *Table) ApplyNexthops(changes []route.NexthopChange) []error {
	proto, err := protocol(t.Protocol)
	if err != nil {
		errs := make([]error, len(changes))
		for i := range errs {
			errs[i] = fmt.Errorf("nexthop %d: %w", changes[i].ID(), err)
		}
		return errs
	}
	errs := t.batch.do(len(changes), func(buf []byte, i int, seq uint32) []byte {
		return appendNexthopMsg(buf, changes[i], uint8(proto), seq)
	})
	for i, err := range errs {
		c := changes[i]
		what := fmt.Sprintf("nexthop %d via %s", c.ID(), route.NextHop{Gateway: c.Nexthop.Gateway, Ifindex: c.Nexthop.Ifindex})
		if c.Group.ID != 0 {
			what = fmt.Sprintf("nexthop group %d of %v", c.ID(), c.Group.Members)
		}
		switch {
		case err == nil:
		case c.Delete && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)):
			errs[i] = nil
		case c.Delete:
			errs[i] = fmt.Errorf("delete nexthop %d: %w", c.ID(), err)
		case refused(err):
			errs[i] = fmt.Errorf("install %s: %w: %w", what, route.ErrRejected, err)
		default:
			errs[i] = fmt.Errorf("install %s: %w", what, err)
		}
	}
	return errs
}

// appendNexthopMsg encodes one RTM_NEWNEXTHOP (create or replace) or
// RTM_DELNEXTHOP.
func appendNexthopMsg(buf []byte, c route.NexthopChange, proto uint8, seq uint32) []byte {
	start := len(buf)
	buf = appendRequestHeader(buf, unix.RTM_NEWNEXTHOP, unix.RTM_DELNEXTHOP, c.Delete, seq)

	// A group has no family; a dev-only nexthop is AF_INET6 because IPv4
	// routes may use an IPv6 nexthop but IPv6 routes no IPv4 one.
	fam := byte(unix.AF_UNSPEC)
	nh := c.Nexthop
	switch {
	case c.Delete || c.Group.ID != 0:
	case nh.Gateway.Is4():
		fam = unix.AF_INET
	default:
		fam = unix.AF_INET6
	}
	if c.Delete {
		proto = 0 // the kernel wants a bare header on delete
	}
	// struct nhmsg: family, scope, protocol, resvd, flags (u32)
	buf = append(buf, fam, 0, proto, 0, 0, 0, 0, 0)
	buf = appendU32(buf, unix.NHA_ID, c.ID())
	switch {
	case c.Delete:
	case c.Group.ID != 0:
		var grp []byte
		for _, id := range c.Group.Members {
			// struct nexthop_grp: id, weight-1 (low, high), reserved
			grp = binary.NativeEndian.AppendUint32(grp, id)
			grp = append(grp, 0, 0, 0, 0)
		}
		buf = appendAttr(buf, unix.NHA_GROUP, grp)
	default:
		buf = appendU32(buf, unix.NHA_OIF, uint32(nh.Ifindex))
		if nh.Gateway.IsValid() {
			buf = appendAttr(buf, unix.NHA_GATEWAY, nh.Gateway.AsSlice())
		}
	}
	binary.NativeEndian.PutUint32(buf[start:], uint32(len(buf)-start))
	return buf
}

// Nexthops lists the nexthop objects of the table writer's protocol, for a
// startup reconcile; others' are not returned. An object of ours these
// types cannot express (a blackhole, an encapsulation) is returned as a
// Nexthop with Ifindex 0, to be deleted.
func (t *Table) Nexthops() ([]route.Nexthop, []route.NexthopGroup, error) {
	proto, err := protocol(t.Protocol)
	if err != nil {
		return nil, nil, err
	}
	var singles []route.Nexthop
	var groups []route.NexthopGroup
	err = retryErr(func() error {
		singles, groups = singles[:0], groups[:0]
		return dumpNexthops(func(protocol uint8, nh route.Nexthop, g route.NexthopGroup) {
			switch {
			case int(protocol) != proto:
			case g.ID != 0:
				groups = append(groups, g)
			default:
				singles = append(singles, nh)
			}
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list nexthops: %w", err)
	}
	slices.SortFunc(singles, func(a, b route.Nexthop) int { return int(a.ID) - int(b.ID) })
	slices.SortFunc(groups, func(a, b route.NexthopGroup) int { return int(a.ID) - int(b.ID) })
	return singles, groups, nil
}

// NexthopsSupported reports whether the kernel has nexthop objects (Linux
// 5.3 and later); without them callers install plain routes.
func (t *Table) NexthopsSupported() bool {
	err := dumpNexthops(func(uint8, route.Nexthop, route.NexthopGroup) {})
	// Older kernels answer an unknown message type with EOPNOTSUPP;
	// anything else going wrong means no usable support either.
	return err == nil || errors.Is(err, nl.ErrDumpInterrupted)
}

// dumpNexthops calls f for every nexthop object of the namespace: a group
// (g.ID non-zero) or a single nexthop.
func dumpNexthops(f func(protocol uint8, nh route.Nexthop, g route.NexthopGroup)) error {
	req := nl.NewNetlinkRequest(unix.RTM_GETNEXTHOP, unix.NLM_F_DUMP)
	req.AddData(rawData(make([]byte, sizeofNhmsg))) // a dump wants a zero header
	var perr error
	err := req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWNEXTHOP, func(m []byte) bool {
		if len(m) < sizeofNhmsg {
			perr = fmt.Errorf("short nexthop message (%d bytes)", len(m))
			return false
		}
		fam, protocol := m[0], m[2]
		var nh route.Nexthop
		var g route.NexthopGroup
		other := false // something our types do not hold
		forAttrs(m[sizeofNhmsg:], func(typ uint16, v []byte) {
			switch typ {
			case unix.NHA_ID:
				if len(v) == 4 {
					nh.ID = binary.NativeEndian.Uint32(v)
				}
			case unix.NHA_OIF:
				if len(v) == 4 {
					nh.Ifindex = int(binary.NativeEndian.Uint32(v))
				}
			case unix.NHA_GATEWAY:
				if fam == unix.AF_INET && len(v) == 4 || fam == unix.AF_INET6 && len(v) == 16 {
					nh.Gateway, _ = netip.AddrFromSlice(v)
				}
			case unix.NHA_GROUP:
				for ; len(v) >= 8; v = v[8:] {
					g.Members = append(g.Members, binary.NativeEndian.Uint32(v))
				}
			case unix.NHA_BLACKHOLE, unix.NHA_ENCAP, nhaFDB:
				other = true
			}
		})
		switch {
		case g.Members != nil:
			g.ID = nh.ID
			f(protocol, route.Nexthop{}, g)
		case other:
			f(protocol, route.Nexthop{ID: nh.ID}, g)
		default:
			f(protocol, nh, g)
		}
		return true
	})
	if err != nil {
		return err
	}
	return perr
}

// routeKey names a route of one protocol.
type routeKey struct {
	table  int
	prefix netip.Prefix
	metric int
}

// routeNHIDs returns the nexthop ids of the routes of table (allTables:
// every table) and protocol proto that have one, read from a raw route
// dump: the netlink library does not parse RTA_NH_ID.
func routeNHIDs(table, proto int) (map[routeKey]uint32, error) {
	ids := map[routeKey]uint32{}
	err := retryErr(func() error {
		clear(ids)
		req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_DUMP)
		req.AddData(rawData(make([]byte, unix.SizeofRtMsg)))
		return req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE, func(m []byte) bool {
			if len(m) < unix.SizeofRtMsg {
				return true
			}
			fam, bits, tbl, protocol := m[0], int(m[1]), int(m[4]), int(m[5])
			if protocol != proto || binary.NativeEndian.Uint32(m[8:])&unix.RTM_F_CLONED != 0 ||
				fam != unix.AF_INET && fam != unix.AF_INET6 {
				return true
			}
			dst := netip.IPv4Unspecified()
			if fam == unix.AF_INET6 {
				dst = netip.IPv6Unspecified()
			}
			var metric int
			var nhid uint32
			forAttrs(m[unix.SizeofRtMsg:], func(typ uint16, v []byte) {
				switch {
				case typ == unix.RTA_TABLE && len(v) == 4:
					tbl = int(binary.NativeEndian.Uint32(v))
				case typ == unix.RTA_DST:
					if a, ok := netip.AddrFromSlice(v); ok {
						dst = a
					}
				case typ == unix.RTA_PRIORITY && len(v) == 4:
					metric = int(binary.NativeEndian.Uint32(v))
				case typ == rtaNHID && len(v) == 4:
					nhid = binary.NativeEndian.Uint32(v)
				}
			})
			if (table == allTables || tbl == table) && nhid != 0 {
				ids[routeKey{route.NormTable(tbl), netip.PrefixFrom(dst, bits).Masked(), metric}] = nhid
			}
			return true
		})
	})
	return ids, err
}

// hasNexthops reports whether the namespace has nexthop objects of
// protocol proto (false when the kernel has none at all).
func hasNexthops(proto int) bool {
	found := false
	_ = dumpNexthops(func(protocol uint8, _ route.Nexthop, _ route.NexthopGroup) {
		found = found || int(protocol) == proto
	})
	return found
}

// forAttrs calls f for each netlink attribute in b.
func forAttrs(b []byte, f func(typ uint16, v []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return
		}
		f(binary.NativeEndian.Uint16(b[2:])&nlaTypeMask, b[4:l])
		b = b[min((l+3)&^3, len(b)):]
	}
}

// rawData is a request body already encoded.
type rawData []byte

func (d rawData) Len() int          { return len(d) }
func (d rawData) Serialize() []byte { return d }
