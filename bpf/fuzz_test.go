package bpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// maxTestFrame is a conservative bound for BPF_PROG_TEST_RUN's XDP input
// (a page minus headroom and skb_shared_info).
const maxTestFrame = 3000

// parsed is the Go oracle's view of a frame: what must hold for the
// program to drop or redirect it.
type parsed struct {
	ok         bool // well-formed IP packet without options/extension headers
	wellFormed bool // well-formed IP packet, options or extension headers allowed
	v6         bool
	dst        netip.Addr
	martian    bool // a source the kernel drops
	martianDst bool // a destination the kernel drops
	ttl        uint8
	l3Len      int
	hdrLen     int
	special    bool // link-local, multicast, loopback, ...
}

func parseFrame(b []byte) parsed {
	var p parsed
	if len(b) < 14 {
		return p
	}
	l3 := b[14:]
	switch binary.BigEndian.Uint16(b[12:]) {
	case 0x0800:
		if len(l3) < 20 || l3[0]>>4 != 4 || l3[0]&0xf < 5 {
			return p
		}
		tot := int(binary.BigEndian.Uint16(l3[2:]))
		if tot < int(l3[0]&0xf)*4 || tot > len(l3) {
			return p
		}
		p.dst = netip.AddrFrom4([4]byte(l3[16:20]))
		s := l3[12:16]
		p.martian = s[0] == 0 || s[0] == 127 || s[0]&0xf0 == 224 || [4]byte(s) == [4]byte{255, 255, 255, 255}
		p.martianDst = martianDst(p.dst) && !(p.dst.IsUnspecified() && [4]byte(s) == [4]byte{})
		p.ttl, p.l3Len, p.hdrLen = l3[8], tot, 20
		p.wellFormed = true
		if l3[0]&0xf != 5 {
			p.special = specialDst(p.dst)
			return p
		}
	case 0x86dd:
		if len(l3) < 40 || l3[0]>>4 != 6 {
			return p
		}
		plen := int(binary.BigEndian.Uint16(l3[4:]))
		if 40+plen > len(l3) {
			return p
		}
		p.v6 = true
		p.dst = netip.AddrFrom16([16]byte(l3[24:40]))
		s := netip.AddrFrom16([16]byte(l3[8:24]))
		// A link-local source is passed before the martian check.
		p.martian = !s.IsLinkLocalUnicast() && (s.IsMulticast() || s == netip.IPv6Loopback() || s.Is4In6())
		p.martianDst = martianDst(p.dst)
		p.ttl, p.l3Len, p.hdrLen = l3[7], 40+plen, 40
		p.wellFormed = true
		switch l3[6] {
		case 0, 43, 44, 60, 135, 139, 140:
			p.special = specialDst(p.dst)
			return p
		}
	default:
		return p
	}
	p.ok = true
	p.special = specialDst(p.dst)
	return p
}

func seedFrames() [][]byte {
	var seeds [][]byte
	for _, dst := range []string{"10.1.2.3", "10.3.0.7", "10.8.0.1", "198.51.100.1", "192.0.2.1", "100.64.0.1", "224.0.0.5"} {
		seeds = append(seeds, v4(dst).build())
	}
	seeds = append(seeds,
		v4("10.1.2.3").with(func(p *pkt) { p.options = 4 }).build(),
		v4("10.8.0.1").with(func(p *pkt) { p.frag = 0x2001; p.proto = protoTCP }).build(),
		v4("10.1.2.3").with(func(p *pkt) { p.payload = 1472 }).build(),
	)
	for _, dst := range []string{"2001:db8:1::1", "2001:db8:3::7", "2001:db8:8::1", "2001:db8:dead::1", "fe80::1", "2001:db9::1"} {
		seeds = append(seeds, v6(dst).build())
	}
	seeds = append(seeds,
		v6("2001:db8:1::1").with(func(p *pkt) { p.proto = 44 }).build(),
		v4("10.1.2.3").with(func(p *pkt) { p.vlan = true }).build(),
		make([]byte, 14),
	)
	return seeds
}

// FuzzXDP runs arbitrary frames through the program loaded with the test
// table. The program must never abort, must only drop or redirect frames
// that parse as well-formed IP packets (with TTL > 1 for redirects), must
// leave passed and dropped frames untouched, and must rewrite redirected
// frames correctly.
func FuzzXDP(f *testing.F) {
	d := loadTest(f)
	p := setupPorts(f, d)
	setupTable(f, d, p)
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > maxTestFrame {
			t.Skip("frame size outside what BPF_PROG_TEST_RUN accepts")
		}
		in := append([]byte(nil), frame...)
		ret, out := run(t, d, frame)
		pf := parseFrame(in)
		switch ret {
		case xdpPass:
			if !bytes.Equal(out, in) {
				t.Fatalf("passed frame modified:\n%x\n%x", in, out)
			}
		case xdpDrop:
			if !pf.wellFormed || !(pf.martianDst || !pf.special && (pf.martian || pf.ok)) {
				t.Fatalf("dropped a frame that is not a well-formed routable packet (nor from a martian source or to a martian destination): %+v\n%x", pf, in)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("dropped frame modified")
			}
		case xdpRedirect:
			if !pf.ok || pf.special || pf.martian || pf.martianDst || pf.ttl <= 1 || pf.l3Len > 1500 {
				t.Fatalf("redirected a frame that must not be forwarded: %+v\n%x", pf, in)
			}
			if len(out) != len(in) {
				t.Fatalf("length changed: %d -> %d", len(in), len(out))
			}
			l3in, l3out := in[14:], out[14:]
			if pf.v6 {
				if l3out[7] != l3in[7]-1 {
					t.Fatalf("hop limit %d -> %d", l3in[7], l3out[7])
				}
			} else {
				if l3out[8] != l3in[8]-1 {
					t.Fatalf("TTL %d -> %d", l3in[8], l3out[8])
				}
				if ipv4ChecksumOK(l3in[:20]) && !ipv4ChecksumOK(l3out[:20]) {
					t.Fatalf("valid checksum %#04x became invalid %#04x", binary.BigEndian.Uint16(l3in[10:]), binary.BigEndian.Uint16(l3out[10:]))
				}
			}
			// Only MACs, TTL/hop limit and checksum may change.
			want := append([]byte(nil), in...)
			copy(want[0:12], out[0:12])
			if pf.v6 {
				want[14+7] = out[14+7]
			} else {
				want[14+8] = out[14+8]
				copy(want[14+10:14+12], out[14+10:14+12])
			}
			if !bytes.Equal(out, want) {
				t.Fatalf("redirect changed more than MACs and TTL:\n%x\n%x", in, out)
			}
		default:
			t.Fatalf("verdict %d (%s) for\n%x", ret, xdpNames[ret], in)
		}
	})
}
