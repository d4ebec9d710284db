package bpf

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xdprouter/xdprouter/route"
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

// TestECMPGroupSizes checks that groups of 1 to 16 members, and some
// larger ones up to MaxECMP, reach every member (TestECMP64 checks the
// spread of the largest).
func TestECMPGroupSizes(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 33, MaxECMP - 1, MaxECMP} {
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

// ecmpRig is a datapath with ports and n next hops 100.. (dst MAC
// 02:00:00:00:ee:i for member i) in group 50, routed by 10.50.0.0/16.
type ecmpRig struct {
	d   *Datapath
	p   ports
	ids []uint32
}

func newECMPRig(t *testing.T, seed uint32, n int) *ecmpRig {
	t.Helper()
	requireBPF(t)
	d, err := Load(Options{MaxRoutesV4: 1 << 10, MaxRoutesV6: 1 << 10, MaxGroups: 64, MaxNextHops: 256, MaxNeighbors: 64, HashSeed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	r := &ecmpRig{d: d, p: setupPorts(t, d)}
	for i := range n {
		id := uint32(100 + i)
		must(t, d.SetNextHop(id, route.Egress{Ifindex: r.p.a, MAC: []byte{2, 0, 0, 0, 0xee, byte(i)}}))
		r.ids = append(r.ids, id)
	}
	must(t, d.SetGroup(50, r.ids))
	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.50.0.0/16"), Group: 50}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// flowFrames are TCP flows with random source addresses and ports.
func flowFrames(n int) [][]byte {
	rng := rand.New(rand.NewPCG(7, 8))
	out := make([][]byte, n)
	for i := range out {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0xac100000|rng.Uint32()&0xfffff)
		f := pkt{src: netip.AddrFrom4(a), dst: ip("10.50.0.1"), proto: protoTCP, sport: uint16(rng.Uint32()), dport: 443}
		out[i] = f.build()
	}
	return out
}

// members runs every frame through the program and returns the member
// (index of the dst MAC) each took.
func (r *ecmpRig) members(t *testing.T, frames [][]byte) []int {
	t.Helper()
	out := make([]int, len(frames))
	buf := make([]byte, 2048)
	for i, f := range frames {
		ret, err := r.d.Program().Run(&ebpf.RunOptions{Data: f, DataOut: buf})
		if err != nil {
			t.Fatal(err)
		}
		if ret != xdpRedirect {
			t.Fatalf("flow %d: verdict %s, want XDP_REDIRECT", i, xdpNames[ret])
		}
		out[i] = int(buf[5])
	}
	return out
}

// TestECMP64 checks that a group of MaxECMP members spreads flows over
// all of them.
func TestECMP64(t *testing.T) {
	r := newECMPRig(t, 1, MaxECMP)
	const flows = 100 * MaxECMP
	hits := make([]int, MaxECMP)
	for _, m := range r.members(t, flowFrames(flows)) {
		hits[m]++
	}
	for m, n := range hits {
		// 100 expected; a binomial's 5-sigma band is ±50.
		if n < 40 || n > 170 {
			t.Errorf("member %d took %d of %d flows, want about %d: %v", m, n, flows, flows/MaxECMP, hits)
		}
	}
}

// TestECMPResilient: with 8 members, removing one leaves the flows of the
// others where they were and spreads its own over the rest; adding it
// back moves only flows to it. Both in place (SetGroup) and into a new
// group derived from the old one (SetGroupFrom, what sync does when a
// route's next-hop set changes).
func TestECMPResilient(t *testing.T) {
	r := newECMPRig(t, 1, 8)
	frames := flowFrames(10000)
	before := r.members(t, frames)
	const gone = 3
	left := append(append([]uint32(nil), r.ids[:gone]...), r.ids[gone+1:]...)

	check := func(t *testing.T, before, after []int) {
		t.Helper()
		kept, others, spread := 0, 0, map[int]int{}
		for i, m := range before {
			if m == gone {
				spread[after[i]]++
				continue
			}
			others++
			if after[i] == m {
				kept++
			}
		}
		t.Logf("kept %d of %d flows of the members left (%.1f%%); the removed member's went to %v",
			kept, others, 100*float64(kept)/float64(others), spread)
		if kept*100 < others*85 {
			t.Errorf("only %d of %d flows of the remaining members kept their member, want ≥ 85%%", kept, others)
		}
		if spread[gone] > 0 {
			t.Errorf("%d flows still on the removed member", spread[gone])
		}
		if len(spread) < 6 {
			t.Errorf("the removed member's flows went to %v, want spread over the others", spread)
		}
	}
	t.Run("in place", func(t *testing.T) {
		must(t, r.d.SetGroup(50, left))
		after := r.members(t, frames)
		check(t, before, after)

		// Back again: only flows moving to it move.
		must(t, r.d.SetGroup(50, r.ids))
		again := r.members(t, frames)
		movedN := 0
		for i := range after {
			if again[i] != after[i] {
				movedN++
				if again[i] != gone {
					t.Fatalf("flow %d moved from %d to %d, not to the member added", i, after[i], again[i])
				}
			}
		}
		t.Logf("adding it back moved %d of %d flows", movedN, len(frames))
		if movedN > len(frames)/8+len(frames)/40 {
			t.Errorf("adding a member moved %d of %d flows, want about 1/8", movedN, len(frames))
		}
	})
	t.Run("new group", func(t *testing.T) {
		// (The member is back, not necessarily on the buckets it had.)
		must(t, r.d.SetGroup(50, r.ids))
		before := r.members(t, frames)
		must(t, r.d.SetGroup(50, r.ids))
		if got := r.members(t, frames); !slices.Equal(got, before) {
			t.Fatal("the group rewritten with the same members does not pick as before")
		}
		must(t, r.d.SetGroupFrom(51, 50, left))
		if _, err := r.d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.50.0.0/16"), Group: 51}}); err != nil {
			t.Fatal(err)
		}
		check(t, before, r.members(t, frames))
	})
}

// TestECMPHashSeed: the seed decides which member a flow takes.
func TestECMPHashSeed(t *testing.T) {
	frames := flowFrames(2000)
	a := newECMPRig(t, 1, 8)
	b := newECMPRig(t, 2, 8)
	if a.d.HashSeed() != 1 || b.d.HashSeed() != 2 {
		t.Fatalf("seeds %d, %d; want the configured 1, 2", a.d.HashSeed(), b.d.HashSeed())
	}
	ma, mb := a.members(t, frames), b.members(t, frames)
	same := 0
	for i := range ma {
		if ma[i] == mb[i] {
			same++
		}
	}
	// Independent choices agree 1 time in 8.
	t.Logf("seeds 1 and 2 agree on %d of %d flows", same, len(frames))
	if same > len(frames)/4 {
		t.Errorf("seeds 1 and 2 pick the same member for %d of %d flows: the seed does not reach the hash", same, len(frames))
	}
}
