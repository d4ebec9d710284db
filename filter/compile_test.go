package filter

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// matches is the rule semantics written plainly: the oracle for the
// compiled tables.
func matches(r *Rule, p Packet) bool {
	in := func(rs []Range, v int) bool {
		if len(rs) == 0 {
			return true
		}
		if v < 0 {
			return false
		}
		for _, x := range rs {
			if int(x.Lo) <= v && v <= int(x.Hi) {
				return true
			}
		}
		return false
	}
	if r.Family != 0 && (r.Family == 6) != p.Dst.Is6() {
		return false
	}
	if r.Src.IsValid() && !r.Src.Contains(p.Src) || r.Dst.IsValid() && !r.Dst.Contains(p.Dst) {
		return false
	}
	if !in(r.Protocols, int(p.Proto)) || !in(r.SrcPorts, p.Sport) || !in(r.DstPorts, p.Dport) ||
		!in(r.ICMPTypes, p.ICMPType) || !in(r.ICMPCodes, p.ICMPCode) || !in(r.DSCP, int(p.DSCP)) || !in(r.Lengths, p.Length) {
		return false
	}
	if len(r.Ports) > 0 && !in(r.Ports, p.Sport) && !in(r.Ports, p.Dport) {
		return false
	}
	if len(r.TCPFlags) > 0 {
		ok := false
		for _, f := range r.TCPFlags {
			if p.TCPFlags >= 0 && uint8(p.TCPFlags)&f.Set == f.Set && uint8(p.TCPFlags)&f.Clear == 0 {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if r.Fragments != 0 && r.Fragments&p.Fragment == 0 {
		return false
	}
	if len(r.Ingress) > 0 && !slices.Contains(r.Ingress, p.Ingress) {
		return false
	}
	return true
}

func randRanges(rng *rand.Rand, max int) []Range {
	if rng.IntN(3) != 0 {
		return nil
	}
	var rs []Range
	for range 1 + rng.IntN(3) {
		lo := rng.IntN(max + 1)
		hi := min(max, lo+rng.IntN(4)*rng.IntN(max/4+1))
		rs = append(rs, Range{uint16(lo), uint16(hi)})
	}
	return rs
}

var testPrefixes = []string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "192.0.2.0/24", "0.0.0.0/0",
	"2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::1/128", "::/0"}

func randRule(rng *rand.Rand) Rule {
	r := Rule{Action: Action{Kind: Drop}}
	if rng.IntN(2) == 0 {
		r.Dst = netip.MustParsePrefix(testPrefixes[rng.IntN(len(testPrefixes))])
	}
	if rng.IntN(3) == 0 {
		p := netip.MustParsePrefix(testPrefixes[rng.IntN(len(testPrefixes))])
		if !r.Dst.IsValid() || p.Addr().Is4() == r.Dst.Addr().Is4() {
			r.Src = p
		}
	}
	if !r.Dst.IsValid() && !r.Src.IsValid() && rng.IntN(3) == 0 {
		r.Family = 4 + 2*rng.IntN(2)
	}
	r.Protocols = randRanges(rng, 255)
	r.SrcPorts = randRanges(rng, 65535)
	r.DstPorts = randRanges(rng, 65535)
	if rng.IntN(4) == 0 {
		r.Ports = randRanges(rng, 65535)
	}
	r.ICMPTypes = randRanges(rng, 255)
	r.ICMPCodes = randRanges(rng, 255)
	r.DSCP = randRanges(rng, 63)
	r.Lengths = randRanges(rng, 65535)
	if rng.IntN(4) == 0 {
		r.TCPFlags = []TCPFlags{{Set: uint8(rng.IntN(256)) & TCPSyn, Clear: uint8(rng.IntN(256)) & TCPAck}}
	}
	if rng.IntN(4) == 0 {
		r.Fragments = uint8(1 + rng.IntN(7))
	}
	if rng.IntN(4) == 0 {
		r.Ingress = []int{1 + rng.IntN(3)}
	}
	return r
}

func randPacket(rng *rand.Rand) Packet {
	addr := func(v6 bool) netip.Addr {
		s := []string{"10.1.2.3", "10.1.2.4", "10.1.3.1", "10.2.0.1", "192.0.2.9", "8.8.8.8"}
		if v6 {
			s = []string{"2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::1", "2a00::1"}
		}
		return netip.MustParseAddr(s[rng.IntN(len(s))])
	}
	v6 := rng.IntN(3) == 0
	p := Packet{Src: addr(v6), Dst: addr(v6), Proto: uint8(rng.IntN(256)), Sport: -1, Dport: -1, ICMPType: -1, ICMPCode: -1, TCPFlags: -1,
		DSCP: uint8(rng.IntN(64)), Fragment: []uint8{NotFragment, FirstFragment, LaterFragment}[rng.IntN(3)], Length: rng.IntN(65536), Ingress: rng.IntN(5)}
	if rng.IntN(2) == 0 {
		p.Proto = []uint8{1, 6, 17, 58}[rng.IntN(4)]
	}
	if p.Fragment != LaterFragment {
		switch p.Proto {
		case 6, 17:
			p.Sport, p.Dport = rng.IntN(65536), rng.IntN(65536)
			if p.Proto == 6 {
				p.TCPFlags = rng.IntN(256)
			}
		case 1, 58:
			p.ICMPType, p.ICMPCode = rng.IntN(256), rng.IntN(256)
		}
	}
	return p
}

// The compiled tables match exactly the rules the plain semantics match.
func TestCompileMatchesRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		rules := make([]Rule, 1+rng.IntN(40))
		for i := range rules {
			rules[i] = randRule(rng)
		}
		c, err := Compile(rules)
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			p := randPacket(rng)
			var want []int
			for i := range c.Rules {
				if matches(&c.Rules[i], p) {
					want = append(want, i)
				}
			}
			if got := c.Match(p); !slices.Equal(got, want) {
				t.Fatalf("round %d: packet %+v: compiled matches rules %v, want %v\nrules: %+v", round, p, got, want, c.Rules)
			}
		}
	}
}

func TestCompileLimits(t *testing.T) {
	if _, err := Compile(make([]Rule, MaxRules+1)); err == nil {
		t.Error("more than MaxRules rules compiled")
	}
	if _, err := Compile([]Rule{{Name: "x"}}); err == nil {
		t.Error("a rule without an action compiled")
	}
	rules := make([]Rule, MaxRules)
	for i := range rules {
		rules[i] = Rule{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24),
			DstPorts: []Range{{uint16(i), uint16(i)}}, Action: Action{Kind: Drop}}
	}
	c, err := Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	p := Packet{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("10.3.232.7"), Proto: 6, Sport: 1, Dport: 1000, ICMPType: -1, ICMPCode: -1, TCPFlags: 2, Fragment: NotFragment}
	if got := c.Match(p); !slices.Equal(got, []int{1000}) {
		t.Errorf("packet to 10.3.232.7 port 1000 matches %v, want [1000]", got)
	}
}
