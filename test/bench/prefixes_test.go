package bench

import (
	"math/rand/v2"
	"net/netip"
)

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
