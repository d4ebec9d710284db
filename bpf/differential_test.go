package bpf

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xdprouter/xdprouter/lpm"
	"github.com/xdprouter/xdprouter/route"
)

// TestCompiledMatchesTrie runs the XDP program on random destinations with
// the compiled structure and with the LPM trie (the reference), over full
// synthetic tables (1M IPv4, 200k IPv6 routes, Internet-like lengths)
// and after random update sequences (adds, deletes, group and kind
// changes, covering and covered prefixes, the default route): every
// verdict and every output frame must be the same.
func TestCompiledMatchesTrie(t *testing.T) {
	d := loadDiff(t)
	p := setupPorts(t, d)
	const groups = 1000
	for i := uint32(1); i <= groups; i++ {
		// The output frame's destination MAC names the group.
		mac := net.HardwareAddr{2, 0xd1, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		if err := d.SetNextHop(i, route.Egress{Ifindex: p.a, MAC: mac}); err != nil {
			t.Fatal(err)
		}
		if err := d.SetGroup(i, []uint32{i}); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(42, 1))
	entry := func(pf netip.Prefix) route.Entry {
		switch x := r.IntN(20); {
		case x == 0:
			return route.Entry{Prefix: pf, Kind: route.Blackhole}
		case x == 1:
			return route.Entry{Prefix: pf, Kind: route.Unreachable}
		default:
			return route.Entry{Prefix: pf, Kind: route.Unicast, Group: 1 + r.Uint32N(groups)}
		}
	}
	for _, fam := range []struct {
		bits, n int
		def     netip.Prefix
	}{{32, 1_000_000, pfx("0.0.0.0/0")}, {128, 200_000, pfx("::/0")}} {
		table := lpm.SyntheticTable(fam.n, fam.bits, 3)
		live := map[netip.Prefix]bool{}
		truth := map[netip.Prefix]route.Entry{}
		var es []route.Entry
		for _, pf := range table {
			es = append(es, entry(pf))
			live[pf] = true
		}
		write(t, d, truth, es, nil)
		if _, why := d.LookupState(); why != "" {
			t.Fatalf("compiled structure: %s", why)
		}
		check(t, d, truth, r, fam.bits, table, 300_000, "full table")
		for round := range 3 {
			var set []route.Entry
			var del []netip.Prefix
			for range 20_000 {
				pf := table[r.IntN(len(table))]
				switch x := r.IntN(6); {
				case x == 0 && live[pf]:
					del = append(del, pf)
					delete(live, pf)
				case x == 1: // a covered or covering prefix of an existing one
					l := min(fam.bits, max(1, pf.Bits()+r.IntN(9)-4))
					q, _ := pf.Addr().Prefix(l)
					set = append(set, entry(q))
					live[q] = true
				default:
					set = append(set, entry(pf))
					live[pf] = true
				}
			}
			if round == 1 {
				set = append(set, entry(fam.def))
			}
			if round == 2 {
				del = append(del, fam.def)
			}
			write(t, d, truth, set, del)
			if _, why := d.LookupState(); why != "" {
				t.Fatalf("compiled structure: %s", why)
			}
			check(t, d, truth, r, fam.bits, table, 100_000, "after updates")
		}
	}
	if mode, why := d.LookupState(); mode != LookupCompiled {
		t.Errorf("lookup fell back to %v: %s", mode, why)
	}
}

func loadDiff(tb testing.TB) *Datapath {
	tb.Helper()
	requireBPF(tb)
	d, err := Load(Options{MaxRoutesV4: 1 << 21, MaxRoutesV6: 1 << 19, MaxGroups: 2048, MaxNextHops: 2048, MaxNeighbors: 1024})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// write deletes del and writes set as sync does, and records the result in
// truth (the expected routes, for diagnostics).
func write(tb testing.TB, d *Datapath, truth map[netip.Prefix]route.Entry, set []route.Entry, del []netip.Prefix) {
	tb.Helper()
	for _, p := range del {
		delete(truth, p)
	}
	for _, e := range set {
		truth[e.Prefix] = e
	}
	if len(del) > 0 {
		if _, err := d.DeleteRoutes(inMain(del)); err != nil {
			tb.Fatal(err)
		}
	}
	// In chunks, as sync writes (prefixes set twice: the last write wins
	// in both structures).
	for len(set) > 0 {
		n := min(len(set), 4096)
		if _, err := d.UpdateRoutes(set[:n]); err != nil {
			tb.Fatal(err)
		}
		set = set[n:]
	}
}

// check runs n destinations (half inside or at the edges of table's
// prefixes) through the program in both lookup modes and compares.
func check(t *testing.T, d *Datapath, truth map[netip.Prefix]route.Entry, r *rand.Rand, bits int, table []netip.Prefix, n int, what string) {
	t.Helper()
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = pkt{v6: bits == 128, src: map[bool]netip.Addr{true: src6, false: src4}[bits == 128],
			dst: randDst(r, bits, table), sport: uint16(i), dport: 53}.build()
	}
	runAll := func(compiled uint32) ([]uint32, [][]byte, map[string]StatCounter) {
		if err := d.objs.LookupCompiled.Set(compiled); err != nil {
			t.Fatal(err)
		}
		before := statsMap(t, d)
		rets := make([]uint32, n)
		outs := make([][]byte, n)
		for i, f := range frames {
			out := make([]byte, len(f)+64)
			opts := ebpf.RunOptions{Data: f, DataOut: out}
			ret, err := d.Program().Run(&opts)
			if err != nil {
				t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
			}
			rets[i], outs[i] = ret, opts.DataOut
		}
		after := statsMap(t, d)
		for k, v := range after {
			v.Packets -= before[k].Packets
			v.Bytes -= before[k].Bytes
			after[k] = v
		}
		return rets, outs, after
	}
	retC, outC, statC := runAll(1)
	retT, outT, statT := runAll(0)
	if err := d.objs.LookupCompiled.Set(uint32(1)); err != nil {
		t.Fatal(err)
	}
	mismatches := 0
	for i := range frames {
		if retC[i] != retT[i] || !slices.Equal(outC[i], outT[i]) {
			if mismatches++; mismatches <= 5 {
				dst, _ := netip.AddrFromSlice(dstOf(frames[i], bits))
				pf, val, _, _ := d.lpm(0, dst)
				kind, _, group, _ := d.compiledLookup(0, dst)
				var want route.Entry
				for l := bits; l >= 0; l-- {
					q, _ := dst.Prefix(l)
					if e, ok := truth[q]; ok {
						want = e
						break
					}
				}
				t.Logf("written: %+v", want)
				t.Errorf("%d-bit %s: %v: compiled %s %x, trie %s %x (trie: %v kind %d group %d; Go walk of the compiled: kind %d group %d)",
					bits, what, dst, xdpNames[retC[i]], outC[i][:6], xdpNames[retT[i]], outT[i][:6], pf, val.Type, val.Nhg, kind, group)
			}
		}
	}
	for k, c := range statC {
		if statT[k].Packets != c.Packets {
			t.Errorf("%d-bit %s: %s counted %d with compiled, %d with the trie", bits, what, k, c.Packets, statT[k].Packets)
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d-bit %s: %d of %d destinations differ", bits, what, mismatches, n)
	}
	t.Logf("%d-bit %s: %d destinations, same verdict and frame in both", bits, what, n)
}

func dstOf(frame []byte, bits int) []byte {
	if bits == 32 {
		return frame[14+16 : 14+20]
	}
	return frame[14+24 : 14+40]
}

// randDst is a random address, or one inside, at the edge of or just
// outside a random prefix of table.
func randDst(r *rand.Rand, bits int, table []netip.Prefix) netip.Addr {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	if r.IntN(2) == 0 {
		p := table[r.IntN(len(table))]
		a := p.Addr().AsSlice()
		for i := 0; i < p.Bits(); i++ { // keep the prefix's bits
			m := byte(0x80 >> (i % 8))
			b[i/8] = b[i/8]&^m | a[i/8]&m
		}
		switch r.IntN(4) {
		case 0: // first address
			for i := p.Bits(); i < bits; i++ {
				b[i/8] &^= 0x80 >> (i % 8)
			}
		case 1: // last address
			for i := p.Bits(); i < bits; i++ {
				b[i/8] |= 0x80 >> (i % 8)
			}
		case 2: // just outside
			if p.Bits() > 0 {
				i := p.Bits() - 1
				b[i/8] ^= 0x80 >> (i % 8)
			}
		}
	} else if bits == 32 {
		b[0] = byte(1 + r.IntN(223))
	} else {
		b[0] = 0x20 | byte(r.IntN(16))
	}
	if bits == 32 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}
