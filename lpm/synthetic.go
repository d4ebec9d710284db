package lpm

import (
	"math/rand/v2"
	"net/netip"
)

// SyntheticTable returns n distinct prefixes with the prefix-length mix of
// an Internet table (IPv4: 60% /24, then /22, /23, /20, /21, /19, /16...;
// IPv6: mostly /48, /32, /40, /44), clustered in allocations over the
// unicast space (IPv4 without 10/8, 127/8, 169.254/16, which the XDP
// program passes as special before any lookup), the same for the same
// seed: a full table for tests and benchmarks.
func SyntheticTable(n, bits int, seed uint64) []netip.Prefix {
	r := rand.New(rand.NewPCG(seed, 7))
	var lens []int
	// Length and weight (percent), in a fixed order for determinism.
	mix := [][2]int{{24, 60}, {23, 8}, {22, 10}, {21, 4}, {20, 4}, {19, 3}, {18, 2}, {17, 1}, {16, 2}, {15, 1}, {14, 1}, {13, 1}, {12, 1}, {11, 1}, {25, 1}}
	if bits == 128 {
		mix = [][2]int{{48, 55}, {32, 12}, {40, 8}, {44, 8}, {36, 4}, {29, 3}, {46, 3}, {47, 2}, {64, 2}, {28, 2}, {56, 1}}
	}
	for _, m := range mix {
		for range m[1] {
			lens = append(lens, m[0])
		}
	}
	// Routes cluster in allocations, as in the real table: IPv4 in 40k
	// /16s of the unicast space, IPv6 in 25k /32s of 2000::/4.
	type alloc struct{ a, b, c, d byte }
	blocks := make([]alloc, 0, 40000)
	for len(blocks) < cap(blocks) {
		if bits == 32 {
			a, b := byte(1+r.IntN(223)), byte(r.IntN(256))
			if a == 10 || a == 127 || a == 169 && b == 254 {
				continue // special-purpose: XDP passes them before any lookup
			}
			blocks = append(blocks, alloc{a, b, 0, 0})
		} else {
			blocks = append(blocks, alloc{0x20 | byte(r.IntN(16)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		}
	}
	if bits == 128 {
		blocks = blocks[:25000]
	}
	seen := make(map[netip.Prefix]bool, n)
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		blk := blocks[r.IntN(len(blocks))]
		var a netip.Addr
		if bits == 32 {
			a = netip.AddrFrom4([4]byte{blk.a, blk.b, byte(r.IntN(256)), byte(r.IntN(256))})
		} else {
			var b [16]byte
			b[0], b[1], b[2], b[3] = blk.a, blk.b, blk.c, blk.d
			for i := 4; i < 8; i++ {
				b[i] = byte(r.IntN(256))
			}
			a = netip.AddrFrom16(b)
		}
		p, _ := a.Prefix(lens[r.IntN(len(lens))])
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
