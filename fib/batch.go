package fib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

// batcher writes many route changes over one netlink socket: requests are
// packed into large writes and their acknowledgements read back together,
// instead of one request/ack round trip per route (the kernel processes
// every message of a write in order).
type batcher struct {
	fd  int
	seq atomic.Uint32
	buf []byte
	rb  []byte // acks are read into it
}

// window is how many requests are in flight at once; their acks (36 bytes
// each with NETLINK_CAP_ACK) must fit the socket's receive buffer.
const window = 1024

func newBatcher() (*batcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// Acks without a copy of the request; room for a window of them.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &batcher{fd: fd}, nil
}

func (b *batcher) close() error { return unix.Close(b.fd) }

// run applies route changes in order and returns one error (or nil) per
// change.
func (b *batcher) run(ops []route.Change, table int, proto uint8) []error {
	return b.do(len(ops), func(buf []byte, i int, seq uint32) []byte {
		t := table
		if ops[i].Route.Table != 0 {
			t = ops[i].Route.Table // another table of ours (VRF-lite)
		}
		return appendRouteMsg(buf, ops[i], t, proto, seq)
	})
}

// do sends n requests, the i-th encoded by enc, in order and returns one
// error (or nil) per request.
func (b *batcher) do(n int, enc func(buf []byte, i int, seq uint32) []byte) []error {
	errs := make([]error, n)
	for start := 0; start < n; start += window {
		end := min(start+window, n)
		if err := b.window(start, errs[start:end], enc); err != nil {
			for i := start; i < end; i++ {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		}
	}
	return errs
}

// window sends requests start..start+len(errs) and collects their acks.
func (b *batcher) window(start int, errs []error, enc func(buf []byte, i int, seq uint32) []byte) error {
	b.buf = b.buf[:0]
	count := len(errs)
	first := b.seq.Add(uint32(count)) - uint32(count) + 1
	for i := range count {
		b.buf = enc(b.buf, start+i, first+uint32(i))
	}
	// One write may hold many messages; keep each write well below the
	// socket's send limit.
	for rest := b.buf; len(rest) > 0; {
		n := min(len(rest), 256<<10)
		// Cut at a message boundary.
		cut := 0
		for cut < n {
			l := int(binary.NativeEndian.Uint32(rest[cut:]))
			if cut+l > n && cut > 0 {
				break
			}
			cut += l
		}
		if err := unix.Sendto(b.fd, rest[:cut], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("netlink send: %w", err)
		}
		rest = rest[cut:]
	}
	pending := count
	if b.rb == nil {
		b.rb = make([]byte, 1<<16)
	}
	for pending > 0 {
		n, _, err := unix.Recvfrom(b.fd, b.rb, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("netlink receive: %w", err)
		}
		// Acks, parsed in place: nlmsghdr (len, type, flags, seq, pid),
		// then the error code.
		for msg := b.rb[:n]; len(msg) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(msg))
			if l < unix.NLMSG_HDRLEN || l > len(msg) {
				return fmt.Errorf("netlink parse: message of %d bytes in %d", l, len(msg))
			}
			typ := binary.NativeEndian.Uint16(msg[4:])
			i := int(binary.NativeEndian.Uint32(msg[8:]) - first)
			if typ == unix.NLMSG_ERROR && i >= 0 && i < count && l >= unix.NLMSG_HDRLEN+4 {
				if code := int32(binary.NativeEndian.Uint32(msg[unix.NLMSG_HDRLEN:])); code != 0 {
					errs[i] = os.NewSyscallError("netlink", unix.Errno(-code))
				}
				pending--
			}
			msg = msg[min((l+3)&^3, len(msg)):]
		}
	}
	return nil
}

// appendRouteMsg encodes one RTM_NEWROUTE (create or replace) or
// RTM_DELROUTE for a route of ours (protocol proto: a delete matches only
// routes of that protocol).
func appendRouteMsg(buf []byte, o route.Change, table int, proto uint8, seq uint32) []byte {
	r := o.Route
	start := len(buf)
	buf = appendRequestHeader(buf, unix.RTM_NEWROUTE, unix.RTM_DELROUTE, o.Delete, seq)

	fam := byte(unix.AF_INET)
	if r.Prefix.Addr().Is6() {
		fam = unix.AF_INET6
	}
	scope, rtype := byte(unix.RT_SCOPE_UNIVERSE), byte(unix.RTN_UNICAST)
	switch {
	case o.Delete:
		scope, rtype = unix.RT_SCOPE_NOWHERE, unix.RTN_UNSPEC // any
	case r.Kind == route.Blackhole:
		rtype = unix.RTN_BLACKHOLE
	case r.Kind == route.Unreachable:
		rtype = unix.RTN_UNREACHABLE
	case r.NHID != 0:
		// The nexthop object carries its own scope.
	case len(r.NextHops) == 1 && r.NextHops[0].Connected():
		scope = unix.RT_SCOPE_LINK
	}
	tbl := byte(unix.RT_TABLE_UNSPEC)
	if table < 256 {
		tbl = byte(table)
	}
	// struct rtmsg
	buf = append(buf, fam, byte(r.Prefix.Bits()), 0, 0, tbl, proto, scope, rtype, 0, 0, 0, 0)
	buf = appendAttr(buf, unix.RTA_DST, r.Prefix.Addr().AsSlice())
	buf = appendU32(buf, unix.RTA_TABLE, uint32(table))
	buf = appendU32(buf, unix.RTA_PRIORITY, uint32(r.Metric))
	if !o.Delete && r.Kind == route.Unicast {
		if r.NHID != 0 {
			buf = appendU32(buf, rtaNHID, r.NHID)
		} else if len(r.NextHops) == 1 {
			nh := r.NextHops[0]
			if !nh.Connected() {
				buf = appendGateway(buf, fam, nh.Gateway)
			}
			buf = appendU32(buf, unix.RTA_OIF, uint32(nh.Ifindex))
		} else {
			var mp []byte
			for _, nh := range r.NextHops {
				s := len(mp)
				mp = binary.NativeEndian.AppendUint16(mp, 0) // rtnh_len
				mp = append(mp, 0, 0)                        // flags, hops
				mp = binary.NativeEndian.AppendUint32(mp, uint32(nh.Ifindex))
				if !nh.Connected() {
					mp = appendGateway(mp, fam, nh.Gateway)
				}
				binary.NativeEndian.PutUint16(mp[s:], uint16(len(mp)-s))
			}
			buf = appendAttr(buf, unix.RTA_MULTIPATH, mp)
		}
	}
	binary.NativeEndian.PutUint32(buf[start:], uint32(len(buf)-start))
	return buf
}

// appendGateway appends a next hop's gateway: RTA_GATEWAY of the route's
// family, or RTA_VIA (struct rtvia: family, address) for an IPv6 gateway
// of an IPv4 route (RFC 8950, `via inet6`).
func appendGateway(buf []byte, fam byte, gw netip.Addr) []byte {
	if fam == unix.AF_INET && gw.Is6() {
		via := binary.NativeEndian.AppendUint16(make([]byte, 0, 18), unix.AF_INET6)
		return appendAttr(buf, unix.RTA_VIA, append(via, gw.AsSlice()...))
	}
	return appendAttr(buf, unix.RTA_GATEWAY, gw.AsSlice())
}

// appendRequestHeader appends the nlmsghdr of a request with an ack: newTyp
// creating or replacing, or delTyp; its length is set once the message is
// complete.
func appendRequestHeader(buf []byte, newTyp, delTyp uint16, del bool, seq uint32) []byte {
	typ, flags := newTyp, uint16(unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	if del {
		typ, flags = delTyp, unix.NLM_F_REQUEST|unix.NLM_F_ACK
	}
	buf = binary.NativeEndian.AppendUint32(buf, 0) // length, set by the caller
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = binary.NativeEndian.AppendUint16(buf, flags)
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	return binary.NativeEndian.AppendUint32(buf, 0) // pid: kernel
}

func appendAttr(buf []byte, typ uint16, data []byte) []byte {
	l := 4 + len(data)
	buf = binary.NativeEndian.AppendUint16(buf, uint16(l))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = append(buf, data...)
	for pad := (4 - l%4) % 4; pad > 0; pad-- {
		buf = append(buf, 0)
	}
	return buf
}

// appendU32 is appendAttr of a u32 without a slice per attribute (a full
// table is millions of them: garbage the collector would chase).
func appendU32(buf []byte, typ uint16, v uint32) []byte {
	buf = binary.NativeEndian.AppendUint16(buf, 8)
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	return binary.NativeEndian.AppendUint32(buf, v)
}
