package bgp

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/k-sone/critbitgo"
)

// TestCritbitWalkMatch: the patched critbitgo (third_party/, the ROA
// table of GoBGP's RPKI) finds exactly the stored routes that contain a
// prefix, compared with a brute-force scan over random IPv4 and IPv6 sets
// of nested, adjacent and unrelated prefixes.
func TestCritbitWalkMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, bits := range []int{32, 128} {
		tree := critbitgo.NewNet()
		var stored []netip.Prefix
		random := func() netip.Prefix {
			var b [16]byte
			// Few distinct leading bytes: many routes share long prefixes.
			b[0] = byte(rng.IntN(4))
			for i := 1; i < 16; i++ {
				b[i] = byte(rng.IntN(256))
			}
			a := netip.AddrFrom16(b)
			if bits == 32 {
				a = netip.AddrFrom4([4]byte(b[:4]))
			}
			return netip.PrefixFrom(a, rng.IntN(bits+1)).Masked()
		}
		ipnet := func(p netip.Prefix) *net.IPNet {
			return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
		}
		for range 3000 {
			p := random()
			if slices.Contains(stored, p) {
				continue
			}
			stored = append(stored, p)
			if err := tree.Add(ipnet(p), p); err != nil {
				t.Fatal(err)
			}
		}
		queries := append(slices.Clone(stored[:500]), make([]netip.Prefix, 0, 500)...)
		for range 500 {
			queries = append(queries, random())
		}
		for _, q := range queries {
			var got, want []netip.Prefix
			tree.WalkMatch(ipnet(q), func(_ *net.IPNet, v any) bool {
				got = append(got, v.(netip.Prefix))
				return true
			})
			for _, p := range stored {
				if p.Bits() <= q.Bits() && p.Contains(q.Addr()) {
					want = append(want, p)
				}
			}
			slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Bits() - b.Bits() })
			slices.SortFunc(want, func(a, b netip.Prefix) int { return a.Bits() - b.Bits() })
			if !slices.Equal(got, want) {
				t.Fatalf("/%d: WalkMatch(%s) = %v, want %v", bits, q, got, want)
			}
		}
	}
}
