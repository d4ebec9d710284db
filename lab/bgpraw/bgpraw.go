// Package bgpraw is a tiny scripted BGP speaker for tests: it builds OPEN,
// KEEPALIVE, UPDATE and NOTIFICATION messages byte by byte and reads the
// replies, so that a test can send exactly the bytes it wants — including
// malformed ones no real BGP implementation would produce. It shares no
// code with GoBGP on purpose: an encoder that a parser bug also lives in
// cannot find that bug.
//
// Nothing here validates: every builder writes what it is given.
package bgpraw

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// Message types (RFC 4271 4.1).
const (
	MsgOpen         = 1
	MsgUpdate       = 2
	MsgNotification = 3
	MsgKeepalive    = 4
)

// HeaderLen is the length of the message header: marker, length, type.
const HeaderLen = 19

// Path attribute flags (RFC 4271 4.3).
const (
	FlagOptional   = 0x80
	FlagTransitive = 0x40
	FlagPartial    = 0x20
	FlagExtLen     = 0x10
	// FlagsWellKnown are the flags of a well-known attribute.
	FlagsWellKnown = FlagTransitive
)

// Path attribute type codes.
const (
	AttrOrigin      = 1
	AttrASPath      = 2
	AttrNextHop     = 3
	AttrMED         = 4
	AttrLocalPref   = 5
	AttrAtomicAggr  = 6
	AttrAggregator  = 7
	AttrCommunities = 8
	AttrMPReach     = 14
	AttrMPUnreach   = 15
	AttrAS4Path     = 17
)

// AS_PATH segment types (RFC 4271, RFC 5065).
const (
	SegSet       = 1
	SegSequence  = 2
	SegConfedSeq = 3
	SegConfedSet = 4
)

// Address families.
const (
	AFIIPv4     = 1
	AFIIPv6     = 2
	SAFIUnicast = 1
)

// ASTrans is AS_TRANS (RFC 6793), the 2-octet stand-in for a 4-octet ASN.
const ASTrans = 23456

// Message returns a whole message: marker, the correct length, type, body.
func Message(typ uint8, body []byte) []byte {
	return MessageWithLength(typ, uint16(HeaderLen+len(body)), body)
}

// MessageWithLength is Message with the header's length field set to
// length whatever the body is (for malformed headers).
func MessageWithLength(typ uint8, length uint16, body []byte) []byte {
	m := make([]byte, 16, HeaderLen+len(body))
	for i := range m {
		m[i] = 0xff
	}
	m = binary.BigEndian.AppendUint16(m, length)
	m = append(m, typ)
	return append(m, body...)
}

// Family is an AFI/SAFI pair for the multiprotocol capability.
type Family struct {
	AFI  uint16
	SAFI uint8
}

// Open describes an OPEN message.
type Open struct {
	ASN      uint32 // the 4-octet capability carries it; My AS is AS_TRANS above 65535
	HoldTime uint16
	RouterID netip.Addr
	// FourByteAS advertises the 4-octet AS capability (RFC 6793).
	FourByteAS bool
	Families   []Family // multiprotocol capabilities (RFC 4760)
}

// Bytes encodes the OPEN message.
func (o Open) Bytes() []byte {
	var caps []byte
	for _, f := range o.Families {
		caps = append(caps, 1, 4) // multiprotocol, length 4
		caps = binary.BigEndian.AppendUint16(caps, f.AFI)
		caps = append(caps, 0, f.SAFI)
	}
	if o.FourByteAS {
		caps = append(caps, 65, 4)
		caps = binary.BigEndian.AppendUint32(caps, o.ASN)
	}
	myAS := uint16(o.ASN)
	if o.ASN > 0xffff {
		myAS = ASTrans
	}
	b := []byte{4} // version
	b = binary.BigEndian.AppendUint16(b, myAS)
	b = binary.BigEndian.AppendUint16(b, o.HoldTime)
	id := o.RouterID.As4()
	b = append(b, id[:]...)
	if len(caps) == 0 {
		return Message(MsgOpen, append(b, 0))
	}
	b = append(b, byte(2+len(caps)), 2, byte(len(caps))) // one capabilities parameter
	return Message(MsgOpen, append(b, caps...))
}

// Keepalive returns a KEEPALIVE message.
func Keepalive() []byte { return Message(MsgKeepalive, nil) }

// Notification is a NOTIFICATION message.
type Notification struct {
	Code, Subcode uint8
	Data          []byte
}

func (n Notification) Error() string {
	return fmt.Sprintf("NOTIFICATION %d/%d data %x", n.Code, n.Subcode, n.Data)
}

// Bytes encodes the NOTIFICATION message.
func (n Notification) Bytes() []byte {
	return Message(MsgNotification, append([]byte{n.Code, n.Subcode}, n.Data...))
}

// Update returns an UPDATE message from its three raw parts, with the
// withdrawn-routes and path-attributes lengths computed from them.
func Update(withdrawn, attrs, nlri []byte) []byte {
	return Message(MsgUpdate, UpdateBody(withdrawn, attrs, nlri))
}

// UpdateBody is the body of an UPDATE (for messages whose inner lengths
// are to be tampered with).
func UpdateBody(withdrawn, attrs, nlri []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(withdrawn)))
	b = append(b, withdrawn...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(attrs)))
	b = append(b, attrs...)
	return append(b, nlri...)
}

// Attr encodes one path attribute. The length is one octet unless flags
// has FlagExtLen or the value needs two.
func Attr(flags, typ uint8, value []byte) []byte {
	if len(value) > 0xff {
		flags |= FlagExtLen
	}
	b := []byte{flags, typ}
	if flags&FlagExtLen != 0 {
		b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	} else {
		b = append(b, byte(len(value)))
	}
	return append(b, value...)
}

// AttrWithLength encodes a path attribute whose length field says length
// whatever value holds (one octet unless FlagExtLen).
func AttrWithLength(flags, typ uint8, length uint16, value []byte) []byte {
	b := []byte{flags, typ}
	if flags&FlagExtLen != 0 {
		b = binary.BigEndian.AppendUint16(b, length)
	} else {
		b = append(b, byte(length))
	}
	return append(b, value...)
}

// Origin is the ORIGIN attribute (0 IGP, 1 EGP, 2 INCOMPLETE).
func Origin(v uint8) []byte { return Attr(FlagsWellKnown, AttrOrigin, []byte{v}) }

// Segment encodes one AS_PATH segment with 4-octet (fourByte) or 2-octet
// ASNs.
func Segment(typ uint8, fourByte bool, asns ...uint32) []byte {
	b := []byte{typ, byte(len(asns))}
	for _, a := range asns {
		if fourByte {
			b = binary.BigEndian.AppendUint32(b, a)
		} else {
			b = binary.BigEndian.AppendUint16(b, uint16(a))
		}
	}
	return b
}

// ASPath is the AS_PATH attribute holding the given segments.
func ASPath(segments ...[]byte) []byte {
	var v []byte
	for _, s := range segments {
		v = append(v, s...)
	}
	return Attr(FlagsWellKnown, AttrASPath, v)
}

// AS4Path is the AS4_PATH attribute (optional transitive, 4-octet ASNs).
func AS4Path(segments ...[]byte) []byte {
	var v []byte
	for _, s := range segments {
		v = append(v, s...)
	}
	return Attr(FlagOptional|FlagTransitive, AttrAS4Path, v)
}

// NextHop is the NEXT_HOP attribute.
func NextHop(a netip.Addr) []byte { return Attr(FlagsWellKnown, AttrNextHop, a.AsSlice()) }

// Communities is the COMMUNITIES attribute (RFC 1997).
func Communities(cs ...uint32) []byte {
	var v []byte
	for _, c := range cs {
		v = binary.BigEndian.AppendUint32(v, c)
	}
	return Attr(FlagOptional|FlagTransitive, AttrCommunities, v)
}

// MED is the MULTI_EXIT_DISC attribute.
func MED(v uint32) []byte {
	return Attr(FlagOptional, AttrMED, binary.BigEndian.AppendUint32(nil, v))
}

// MPReach is the MP_REACH_NLRI attribute (RFC 4760) with the raw next-hop
// field (its length octet is len(nexthop)) and raw NLRI.
func MPReach(afi uint16, safi uint8, nexthop []byte, nlri []byte) []byte {
	v := binary.BigEndian.AppendUint16(nil, afi)
	v = append(v, safi, byte(len(nexthop)))
	v = append(v, nexthop...)
	v = append(v, 0) // reserved
	v = append(v, nlri...)
	return Attr(FlagOptional, AttrMPReach, v)
}

// MPUnreach is the MP_UNREACH_NLRI attribute with raw withdrawn NLRI.
func MPUnreach(afi uint16, safi uint8, nlri []byte) []byte {
	v := binary.BigEndian.AppendUint16(nil, afi)
	v = append(v, safi)
	return Attr(FlagOptional, AttrMPUnreach, append(v, nlri...))
}

// Prefix encodes one NLRI entry: the length in bits and as many address
// octets as it needs.
func Prefix(p netip.Prefix) []byte {
	a := p.Masked().Addr().AsSlice()
	return append([]byte{byte(p.Bits())}, a[:(p.Bits()+7)/8]...)
}

// Prefixes concatenates the NLRI encoding of ps.
func Prefixes(ps ...netip.Prefix) []byte {
	var b []byte
	for _, p := range ps {
		b = append(b, Prefix(p)...)
	}
	return b
}

// RawPrefix is an NLRI entry with any length octet followed by addr.
func RawPrefix(bits uint8, addr ...byte) []byte { return append([]byte{bits}, addr...) }

// Conn is a BGP connection.
type Conn struct {
	c net.Conn
	r *bufio.Reader
}

// NewConn wraps an established TCP connection.
func NewConn(c net.Conn) *Conn { return &Conn{c: c, r: bufio.NewReader(c)} }

// Close closes the TCP connection.
func (c *Conn) Close() error { return c.c.Close() }

// Send writes raw bytes (one or more messages, or anything else).
func (c *Conn) Send(b []byte) error {
	if err := c.c.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	_, err := c.c.Write(b)
	return err
}

// Read reads the next message before deadline and returns its type and
// body. It does not check the marker beyond its length.
func (c *Conn) Read(deadline time.Time) (typ uint8, body []byte, err error) {
	if err := c.c.SetReadDeadline(deadline); err != nil {
		return 0, nil, err
	}
	var h [HeaderLen]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[16:18]))
	if n < HeaderLen {
		return 0, nil, fmt.Errorf("bgpraw: message length %d in header", n)
	}
	body = make([]byte, n-HeaderLen)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return h[18], body, nil
}

// ErrClosed is returned when the peer closed the connection without a
// NOTIFICATION.
var ErrClosed = errors.New("bgpraw: connection closed without NOTIFICATION")

// Establish sends o, waits for the peer's OPEN and KEEPALIVE and confirms
// with a KEEPALIVE: afterwards the session is Established on both sides.
// A NOTIFICATION from the peer is returned as the error.
func (c *Conn) Establish(o Open, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := c.Send(o.Bytes()); err != nil {
		return err
	}
	gotOpen := false
	for {
		typ, body, err := c.Read(deadline)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return ErrClosed
			}
			return err
		}
		switch typ {
		case MsgOpen:
			gotOpen = true
			if err := c.Send(Keepalive()); err != nil {
				return err
			}
		case MsgKeepalive:
			if gotOpen {
				return nil
			}
		case MsgNotification:
			return parseNotification(body)
		default:
			return fmt.Errorf("bgpraw: message type %d while opening", typ)
		}
	}
}

func parseNotification(body []byte) Notification {
	var n Notification
	if len(body) >= 2 {
		n.Code, n.Subcode, n.Data = body[0], body[1], body[2:]
	}
	return n
}

// WaitNotification reads (and discards UPDATEs and KEEPALIVEs) until a
// NOTIFICATION arrives, the peer closes (ErrClosed) or timeout passes.
func (c *Conn) WaitNotification(timeout time.Duration) (Notification, error) {
	deadline := time.Now().Add(timeout)
	for {
		typ, body, err := c.Read(deadline)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return Notification{}, ErrClosed
			}
			return Notification{}, err
		}
		if typ == MsgNotification {
			return parseNotification(body), nil
		}
	}
}

// Concat joins encoded parts (attributes, NLRI entries).
func Concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
