package bpf

import (
	"encoding/binary"
	"fmt"
	"github.com/xdprouter/xdprouter/route"
	"net/netip"
	"testing"
)

// member returns which ECMP next hop (index into ecmpMACs) a frame took.
func member(t *testing.T, d *Datapath, frame []byte) int {
	t.Helper()
	ret, out := run(t, d, frame)
	if ret != xdpRedirect {
		t.Fatalf("verdict %s, want XDP_REDIRECT", xdpNames[ret])
	}
	for i, m := range ecmpMACs {
		if string(out[0:6]) == string(m) {
			return i
		}
	}
	t.Fatalf("dst MAC %x is no ECMP member", out[0:6])
	return -1
}

func TestECMP(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)

	const flows = 1000
	for _, fam := range []struct {
		name string
		flow func(i int) pkt
	}{
		{"v4 ports", func(i int) pkt {
			return pkt{src: src4, dst: ip("10.8.0.1"), proto: protoTCP, sport: uint16(10000 + i), dport: 443}
		}},
		{"v4 addresses", func(i int) pkt {
			return pkt{src: netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), dst: ip("10.8.0.1"), proto: protoICMP}
		}},
		{"v4 UDP dports", func(i int) pkt {
			return pkt{src: src4, dst: ip("10.8.0.1"), sport: 5000, dport: uint16(i)}
		}},
		{"v4 SCTP", func(i int) pkt {
			return pkt{src: src4, dst: ip("10.8.0.1"), proto: protoSCTP, sport: uint16(i), dport: 9}
		}},
		{"v6 ports", func(i int) pkt {
			return pkt{v6: true, src: src6, dst: ip("2001:db8:8::1"), proto: protoUDP, sport: uint16(20000 + i), dport: 53}
		}},
		{"v6 addresses", func(i int) pkt {
			a := src6.As16()
			binary.BigEndian.PutUint16(a[14:], uint16(i))
			return pkt{v6: true, src: netip.AddrFrom16(a), dst: ip("2001:db8:8::1"), proto: 58}
		}},
	} {
		t.Run(fam.name, func(t *testing.T) {
			var hits [4]int
			for i := 0; i < flows; i++ {
				f := fam.flow(i)
				m := member(t, d, f.build())
				hits[m]++
				// Stable per flow, whatever the payload.
				f.payload = i % 50
				if again := member(t, d, f.build()); again != m {
					t.Fatalf("flow %d: member %d, then %d", i, m, again)
				}
			}
			for m, n := range hits {
				if n < flows/10 {
					t.Errorf("member %d got %d of %d flows (want > 10%%): %v", m, n, flows, hits)
				}
			}
			t.Logf("spread: %v", hits)
		})
	}
}

// TestECMPFragments checks that IPv4 fragments hash without ports: all
// fragments of a datagram (first one with ports, later ones with payload
// where the ports would be) take one member, while unfragmented packets of
// the same address pair spread by port.
func TestECMPFragments(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)

	spread := map[int]bool{}
	for pair := 0; pair < 20; pair++ {
		src := netip.AddrFrom4([4]byte{172, 16, 1, byte(pair)})
		first := -1
		for i := 0; i < 50; i++ {
			for _, frag := range []uint16{0x2000 /* MF, offset 0 */, 0x2000 | uint16(1+i), uint16(1 + i) /* last */} {
				f := pkt{src: src, dst: ip("10.8.0.1"), proto: protoUDP, sport: uint16(1000 + 7*i), dport: uint16(i), frag: frag}
				m := member(t, d, f.build())
				if first < 0 {
					first = m
				}
				if m != first {
					t.Fatalf("pair %d: fragment %#04x with ports %d/%d took member %d, first fragment %d",
						pair, frag, f.sport, f.dport, m, first)
				}
			}
			// DF set is not a fragment: ports count.
			f := pkt{src: src, dst: ip("10.8.0.1"), proto: protoUDP, sport: uint16(1000 + 7*i), dport: uint16(i), frag: 0x4000}
			spread[member(t, d, f.build())] = true
		}
	}
	if len(spread) != len(ecmpMACs) {
		t.Errorf("unfragmented packets used members %v, want all %d", spread, len(ecmpMACs))
	}
}

// TestECMPGroupSizes checks every group size from 1 to MaxECMP reaches
// every member.
func TestECMPGroupSizes(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	for n := 1; n <= MaxECMP; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var ids []uint32
			for i := 0; i < n; i++ {
				id := uint32(100 + i)
				if err := d.SetNextHop(id, route.Egress{Ifindex: p.a, MAC: []byte{2, 0, 0, 0, 0xee, byte(i)}}); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			if err := d.SetGroup(50, ids); err != nil {
				t.Fatal(err)
			}
			if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.50.0.0/16"), Group: 50}}); err != nil {
				t.Fatal(err)
			}
			seen := map[byte]bool{}
			for i := 0; i < 64*n; i++ {
				f := pkt{src: src4, dst: ip("10.50.0.1"), sport: uint16(i), dport: 80}
				ret, out := run(t, d, f.build())
				if ret != xdpRedirect {
					t.Fatalf("verdict %s", xdpNames[ret])
				}
				seen[out[5]] = true
			}
			if len(seen) != n {
				t.Errorf("group of %d: %d members used", n, len(seen))
			}
		})
	}
}
