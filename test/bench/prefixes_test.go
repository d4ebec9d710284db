package bench

import (
	"math/rand/v2"
	"net/netip"
)

// lenShare is one prefix length of a table and its share of the prefixes.
type lenShare struct {
	bits  int
	share float64
}

// Prefix-length mixes shaped like today's Internet tables (the CIDR
// report's and RIPE RIS's distributions, rounded): IPv4 mostly /24, then
// /22, /23, /21, /20 and a tail of shorter ones; IPv6 mostly /48, then /32,
// /44, /40 and the rest.
var (
	mixV4 = []lenShare{{24, 0.60}, {22, 0.12}, {23, 0.10}, {21, 0.05}, {20, 0.05}, {19, 0.03},
		{16, 0.015}, {18, 0.015}, {17, 0.01}, {15, 0.003}, {14, 0.003}, {13, 0.002}, {12, 0.002}}
	mixV6 = []lenShare{{48, 0.55}, {32, 0.15}, {44, 0.10}, {40, 0.08}, {36, 0.04}, {29, 0.03},
		{46, 0.02}, {47, 0.02}, {56, 0.01}}
)

// internetTable returns n distinct prefixes with the length mix of the
// family (deterministic for a seed): IPv4 in public unicast space (no
// 0/8, 10/8, 127/8, 169.254/16 or 224/3, so nothing the forwarders pass
// as special, nor the benchmark's own 10.99.0.0/24), IPv6 in 2000::/3.
func internetTable(v6 bool, n int, seed uint64) []netip.Prefix {
	rng := rand.New(rand.NewPCG(seed, 0x1f0b))
	mix := mixV4
	if v6 {
		mix = mixV6
	}
	seen := make(map[netip.Prefix]bool, n)
	out := make([]netip.Prefix, 0, n)
	for len(out) < n {
		bits := pickLen(rng, mix)
		var p netip.Prefix
		if v6 {
			var a [16]byte
			hi, lo := rng.Uint64(), rng.Uint64()
			hi = hi&^(7<<61) | 1<<61 // 2000::/3
			for i := range 8 {
				a[i], a[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
			}
			p = netip.PrefixFrom(netip.AddrFrom16(a), bits).Masked()
		} else {
			a := [4]byte{byte(1 + rng.IntN(223)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
			if a[0] == 10 || a[0] == 127 || a[0] == 169 && a[1] == 254 {
				continue
			}
			p = netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked()
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func pickLen(rng *rand.Rand, mix []lenShare) int {
	x := rng.Float64()
	for _, m := range mix {
		if x < m.share {
			return m.bits
		}
		x -= m.share
	}
	return mix[0].bits
}

// destinations returns n random hosts, each in a random prefix of table,
// so that every lookup finds a route and the lookups spread over the whole
// table (which prefix matches is up to the longest match: a host of a /16
// may fall into a /24 of the table too).
func destinations(table []netip.Prefix, n int, seed uint64) []netip.Addr {
	rng := rand.New(rand.NewPCG(seed, 0xd57))
	out := make([]netip.Addr, n)
	for i := range out {
		p := table[rng.IntN(len(table))]
		if p.Addr().Is4() {
			b := p.Addr().As4()
			host := rng.Uint32() >> p.Bits()
			for j := range 4 {
				b[j] |= byte(host >> (24 - 8*j))
			}
			out[i] = netip.AddrFrom4(b)
			continue
		}
		b := p.Addr().As16()
		for j := p.Bits() / 8; j < 16; j++ {
			r := byte(rng.Uint32())
			if j == p.Bits()/8 {
				r &= 0xff >> (p.Bits() % 8)
			}
			b[j] |= r
		}
		out[i] = netip.AddrFrom16(b)
	}
	return out
}
