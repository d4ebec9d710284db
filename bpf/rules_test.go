package bpf

import (
	"cmp"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// The kernel's fib_rules_lookup written plainly (net/core/fib_rules.c,
// fib4_rule_match, fib6_rule_match, fib4/6_rule_suppress): the model the
// compiled rules in XDP are checked against. It knows nothing of source
// classes or candidate lists.

type kverdict int

const (
	kRoute kverdict = iota
	kNoRoute
	kBlackhole   // a blackhole rule
	kUnreachable // an unreachable/prohibit rule
	kLocal
	kKernel // a rule XDP cannot evaluate may match
)

type modelFlow struct {
	Flow
	iifName string
}

type model struct {
	rules  []route.Rule // one family, in priority order
	tables map[int]map[netip.Prefix]route.Entry
	locals map[netip.Addr]bool
}

func (m *model) lookup(table int, a netip.Addr) (route.Entry, bool) {
	t := m.tables[table]
	for l := a.BitLen(); l >= 0; l-- {
		p, _ := a.Prefix(l)
		if e, ok := t[p]; ok {
			return e, true
		}
	}
	return route.Entry{}, false
}

func (m *model) match(r route.Rule, f modelFlow) bool {
	ok := (!r.Src.IsValid() || r.Src.Contains(f.Src)) &&
		(!r.Dst.IsValid() || r.Dst.Contains(f.Dst)) &&
		(r.IifName == "" || r.IifName == f.iifName) &&
		(r.IPProto == 0 || r.IPProto == f.Proto) &&
		(r.Sport.Any() || f.Sport >= r.Sport.Lo && f.Sport <= r.Sport.Hi) &&
		(r.Dport.Any() || f.Dport >= r.Dport.Lo && f.Dport <= r.Dport.Hi)
	if ok && r.Tos != 0 {
		if r.Family == 4 {
			ok = f.Tos&0x1c == r.Tos // dsfield's TOS bits (IPTOS_RT_MASK)
		} else {
			ok = f.Tos>>2 == r.Tos>>2 // the DSCP
		}
	}
	return ok != r.Invert
}

func (m *model) decide(f modelFlow) (kverdict, route.Entry, int) {
	for i := 0; i < len(m.rules); i++ {
		r := m.rules[i]
		if !m.match(r, f) {
			continue
		}
		if len(r.Opaque) > 0 || r.SuppressIfgroup >= 0 {
			return kKernel, route.Entry{}, i
		}
		switch r.Action {
		case route.RuleGoto:
			j := slices.IndexFunc(m.rules, func(o route.Rule) bool { return o.Priority == r.Goto })
			if j > i {
				i = j - 1 // the loop's i++ lands on the target, which must match too
			}
		case route.RuleNop:
		case route.RuleBlackhole:
			return kBlackhole, route.Entry{}, i
		case route.RuleUnreachable:
			return kUnreachable, route.Entry{}, i
		case route.RuleLookup:
			if r.Table == route.TableLocal {
				if m.locals[f.Dst] {
					return kLocal, route.Entry{}, i
				}
				continue
			}
			e, ok := m.lookup(route.NormTable(r.Table), f.Dst)
			if !ok || e.Kind == route.Throw {
				continue
			}
			ok = e.Kind == route.Unicast || e.Kind == route.Local || e.Kind == route.KernelOnly
			if ok && r.SuppressPrefixlen >= 0 && e.Prefix.Bits() <= r.SuppressPrefixlen {
				continue
			}
			return kRoute, e, i
		}
	}
	return kNoRoute, route.Entry{}, -1
}

// TestRulesAgainstModel: random tables and rule lists (every selector and
// action), random packets on both ports: XDP's verdict and reason equal
// the kernel's semantics, and LookupFlow (the CLI's explanation) says the
// same as the program.
func TestRulesAgainstModel(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	names := map[int]string{p.a: "pa", p.b: "pb"}
	ifindex := func(n string) int {
		for i, m := range names {
			if m == n {
				return i
			}
		}
		if n == "lo" {
			return 1
		}
		return 0
	}
	const gA, gB = 1, 2
	for id, nh := range map[uint32]route.Egress{1: {Ifindex: p.a, MAC: macGwA}, 2: {Ifindex: p.b, MAC: macGwB}} {
		if err := d.SetNextHop(id, nh); err != nil {
			t.Fatal(err)
		}
		if err := d.SetGroup(id, []uint32{id}); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	tableIDs := []int{route.TableMain, 100, 101, 102, route.TableDefault}
	var agree, fwd, rulesMatter int
	for scenario := range 24 {
		v6 := scenario%2 == 1
		family, bits := 4, 32
		base := netip.MustParseAddr("10.0.0.0")
		if v6 {
			family, bits = 6, 128
			base = netip.MustParseAddr("2001:db8::")
		}
		randAddr := func() netip.Addr {
			b := base.AsSlice()
			off := 1
			if v6 {
				off = 4
			}
			for i := off; i < len(b); i++ {
				b[i] = byte(rng.IntN(256))
			}
			if rng.IntN(3) == 0 {
				b[off] = byte(rng.IntN(4)) // crowd a few ranges
			}
			a, _ := netip.AddrFromSlice(b)
			return a
		}
		randPrefix := func(lo, hi int) netip.Prefix {
			if v6 {
				lo, hi = lo+24, hi+24
			}
			pf, _ := randAddr().Prefix(lo + rng.IntN(hi-lo+1))
			return pf
		}

		// Tables.
		m := &model{tables: map[int]map[netip.Prefix]route.Entry{}, locals: map[netip.Addr]bool{}}
		var old []route.TablePrefix
		if es, err := d.Routes(); err == nil {
			for _, e := range es {
				old = append(old, route.TablePrefix{Table: e.Table, Prefix: e.Prefix})
			}
		}
		if _, err := d.DeleteRoutes(old); err != nil {
			t.Fatal(err)
		}
		var entries []route.Entry
		for _, tb := range tableIDs {
			m.tables[tb] = map[netip.Prefix]route.Entry{}
			n := 12
			if tb == route.TableDefault && rng.IntN(2) == 0 {
				n = 0 // an empty default table: the defaults stay simple
			}
			for range n {
				l := 8 + 4*rng.IntN(6) // few lengths: suppress_prefixlength hits them
				e := route.Entry{Table: tb, Prefix: randPrefix(l, l)}
				switch k := rng.IntN(10); {
				case k < 3:
					e.Group = gA
				case k < 6:
					e.Group = gB
				case k == 6:
					e.Kind = route.Blackhole
				case k == 7:
					e.Kind = route.Unreachable
				case k == 8:
					e.Kind = route.Throw
				default:
					e.Kind = route.KernelOnly
				}
				m.tables[tb][e.Prefix] = e
				entries = append(entries, e)
			}
		}
		for range 3 {
			a := randAddr()
			e := route.Entry{Table: route.TableMain, Prefix: netip.PrefixFrom(a, bits), Kind: route.Local}
			m.tables[route.TableMain][e.Prefix] = e
			m.locals[a] = true
			entries = append(entries, e)
		}
		if _, err := d.UpdateRoutes(entries); err != nil {
			t.Fatal(err)
		}

		// Rules: the defaults plus random ones.
		rules := route.DefaultRules()
		nrules := 8 + rng.IntN(20)
		if scenario == 5 {
			nrules = 60 // more candidates than a list holds
		}
		for i := range nrules {
			r := route.Rule{Family: family, Priority: uint32(100 + 10*i), SuppressPrefixlen: -1, SuppressIfgroup: -1}
			if rng.IntN(2) == 0 {
				r.Src = randPrefix(8, 24)
			}
			if rng.IntN(4) == 0 {
				r.Dst = randPrefix(8, 24)
			}
			if rng.IntN(4) == 0 {
				r.IifName = []string{"pa", "pb", "lo", "nosuch"}[rng.IntN(4)]
			}
			if rng.IntN(5) == 0 {
				r.IPProto = []uint8{protoTCP, protoUDP, protoICMP}[rng.IntN(3)]
			}
			if rng.IntN(6) == 0 {
				lo := uint16(rng.IntN(100))
				r.Dport = route.PortRange{Lo: lo, Hi: lo + uint16(rng.IntN(50))}
			}
			if rng.IntN(8) == 0 {
				lo := uint16(rng.IntN(100))
				r.Sport = route.PortRange{Lo: lo, Hi: lo + uint16(rng.IntN(50))}
			}
			if rng.IntN(8) == 0 {
				r.Tos = uint8(1+rng.IntN(7)) << 2
				if v6 {
					r.Tos = uint8(1+rng.IntN(63)) << 2
				}
			}
			r.Invert = rng.IntN(10) == 0
			switch k := rng.IntN(20); {
			case k < 10:
				r.Action, r.Table = route.RuleLookup, tableIDs[rng.IntN(len(tableIDs))]
				if rng.IntN(4) == 0 {
					r.SuppressPrefixlen = 4 + 4*rng.IntN(6) + rng.IntN(2)*4
					if v6 {
						r.SuppressPrefixlen += 24
					}
				}
			case k < 12:
				r.Action, r.Goto = route.RuleGoto, uint32(100+10*(i+1+rng.IntN(5)))
			case k < 13:
				r.Action = route.RuleNop
			case k < 15:
				r.Action = route.RuleBlackhole
			case k < 17:
				r.Action = route.RuleUnreachable
			case k < 18:
				r.Action, r.Table = route.RuleLookup, route.TableLocal
			case k < 19:
				r.Action, r.Table, r.Opaque = route.RuleLookup, 100, []string{"fwmark 0x1"}
			default:
				r.Action, r.Table, r.SuppressIfgroup = route.RuleLookup, route.TableMain, 3
			}
			rules = append(rules, r)
		}
		if scenario < 2 {
			rules = route.DefaultRules() // the simple case
		}
		if err := p.ns.Do(func() error { return d.SetRules(rules, ifindex) }); err != nil {
			t.Fatalf("scenario %d: SetRules: %v", scenario, err)
		}
		if scenario%4 >= 2 {
			// The trie's source classes (a restarted daemon's until its
			// first SetRules), not the compiled ones.
			if err := d.objs.RulesCompiled.Set(uint32(0)); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range rules {
			if r.Family == family {
				m.rules = append(m.rules, r)
			}
		}
		slices.SortStableFunc(m.rules, func(a, b route.Rule) int { return cmp.Compare(a.Priority, b.Priority) })
		overfull := nrules > ruleCands-4
		mainOnly := &model{rules: route.DefaultRules()[:0], tables: m.tables, locals: m.locals}
		for _, r := range route.DefaultRules() {
			if r.Family == family {
				mainOnly.rules = append(mainOnly.rules, r)
			}
		}

		for range 250 {
			k := pkt{v6: v6, src: randAddr(), dst: randAddr(), sport: uint16(rng.IntN(120)), dport: uint16(rng.IntN(120)),
				proto: []uint8{protoTCP, protoUDP, protoICMP}[rng.IntN(3)], tos: uint8(rng.IntN(256)) &^ 3}
			if rng.IntN(10) == 0 {
				for a := range m.locals {
					k.dst = a
					break
				}
			}
			in := []int{p.a, p.b}[rng.IntN(2)]
			f := modelFlow{Flow: Flow{Src: k.src, Dst: k.dst, Iif: in, Proto: k.proto, Sport: k.sport, Dport: k.dport, Tos: k.tos}, iifName: names[in]}
			if k.proto == protoICMP {
				f.Sport, f.Dport = 0, 0 // no ports for the rules
			}
			v, e, ri := m.decide(f)
			if v2, e2, _ := mainOnly.decide(f); v2 != v || e2 != e {
				rulesMatter++
			}
			var wantRet uint32 = xdpPass
			var wantMAC net.HardwareAddr
			wantStat := ""
			switch v {
			case kRoute:
				switch e.Kind {
				case route.Unicast:
					wantRet, wantMAC, wantStat = xdpRedirect, macGwA, "redirect/"
					if e.Group == gB {
						wantMAC = macGwB
					}
				case route.Blackhole:
					wantRet, wantStat = xdpDrop, "drop/blackhole"
				case route.Unreachable:
					wantStat = "pass/unreachable"
				case route.Local:
					wantStat = "pass/local"
				case route.KernelOnly:
					wantStat = "pass/kernel_route"
				}
			case kNoRoute:
				wantStat = "pass/no_route"
			case kBlackhole:
				wantRet, wantStat = xdpDrop, "drop/rule"
			case kUnreachable:
				wantStat = "pass/rule"
			case kLocal:
				wantStat = "pass/local"
			case kKernel:
				wantStat = "pass/rule_kernel"
			}
			before := statsMap(t, d)
			ret, out := runIn(t, d, p, in, k.build())
			after := statsMap(t, d)
			gotStat := ""
			for name, c := range after {
				if c.Packets != before[name].Packets {
					gotStat = name
				}
			}
			ok := ret == wantRet && gotStat == wantStat && (wantMAC == nil || net.HardwareAddr(out[:6]).String() == wantMAC.String())
			if !ok && overfull && gotStat == "pass/rule_kernel" {
				ok = true // a list cut short: the kernel decides
			}
			if !ok {
				rule := "none"
				if ri >= 0 {
					rule = m.rules[ri].String()
				}
				t.Errorf("scenario %d: %+v in %s: XDP %s %s, want %s %s %v (rule %s, route %+v)", scenario, f.Flow, f.iifName,
					xdpNames[ret], gotStat, xdpNames[wantRet], wantStat, wantMAC, rule, e)
				if t.Failed() && agree == 0 {
					for _, r := range m.rules {
						t.Logf("  rule %s", r)
					}
				}
				continue
			}
			agree++
			if ret == xdpRedirect {
				fwd++
			}
			// The CLI's explanation agrees with the program.
			dec, err := d.LookupFlow(f.Flow)
			if err != nil {
				t.Fatal(err)
			}
			if got := dec.Action + "/" + dec.Reason; got != gotStat && !(ret == xdpRedirect && dec.Action == ActionRedirect) {
				t.Errorf("scenario %d: %+v: LookupFlow says %s (rule %q), XDP %s", scenario, f.Flow, got, dec.Rule, gotStat)
			}
		}
	}
	t.Logf("%d packets agree (%d forwarded); the rules changed the outcome of %d", agree, fwd, rulesMatter)
	if fwd < agree/10 || rulesMatter < agree/10 {
		t.Errorf("too few forwarded (%d) or rule-dependent (%d) packets of %d: the test would prove little", fwd, rulesMatter, agree)
	}
}

// TestRulesFallback: a rule set XDP cannot hold sends every packet of its
// family to the kernel, and says why.
func TestRulesFallback(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	rules := route.DefaultRules()
	for i := range kernelRule + 1 {
		rules = append(rules, route.Rule{Family: 4, Priority: uint32(1 + i), Src: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16),
			Action: route.RuleLookup, Table: 100, SuppressPrefixlen: -1, SuppressIfgroup: -1})
	}
	err := p.ns.Do(func() error { return d.SetRules(rules, func(string) int { return 0 }) })
	if err == nil {
		t.Fatal("SetRules took more rules than XDP holds without an error")
	}
	t.Log(err)
	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.1.0.0/16"), Group: 1}}); err != nil {
		t.Fatal(err)
	}
	before := statsMap(t, d)["pass/rule_kernel"].Packets
	if ret, _ := runIn(t, d, p, p.a, v4("10.1.0.1").build()); ret != xdpPass {
		t.Errorf("%s, want XDP_PASS", xdpNames[ret])
	}
	if n := statsMap(t, d)["pass/rule_kernel"].Packets - before; n != 1 {
		t.Errorf("pass/rule_kernel +%d, want +1", n)
	}
	// Back to the defaults: XDP looks up the main table alone again.
	if err := p.ns.Do(func() error { return d.SetRules(route.DefaultRules(), func(string) int { return 0 }) }); err != nil {
		t.Fatal(err)
	}
	before = statsMap(t, d)["pass/rule_kernel"].Packets
	runIn(t, d, p, p.a, v4("10.1.0.1").build())
	if n := statsMap(t, d)["pass/rule_kernel"].Packets - before; n != 0 {
		t.Errorf("pass/rule_kernel +%d after the defaults came back, want +0", n)
	}
}

// TestRuleSuppress: suppress_prefixlength N rejects a result of length N
// or shorter (wg-quick's "lookup main suppress_prefixlength 0" ignores
// the default route), in the compiled structure and in the trie.
func TestRuleSuppress(t *testing.T) {
	for _, mode := range []LookupMode{LookupCompiled, LookupTrie} {
		t.Run(mode.String(), func(t *testing.T) {
			d, err := Load(Options{Lookup: mode})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			p := setupPorts(t, d)
			setupTable(t, d, p) // 10.1.0.0/16 via A, ...
			if _, err := d.UpdateRoutes([]route.Entry{{Table: 100, Prefix: pfx("0.0.0.0/0"), Group: gB}}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				suppress int
				want     net.HardwareAddr
			}{{-1, macGwA}, {15, macGwA}, {16, macGwB}, {0, macGwA}} {
				rules := append(route.DefaultRules(),
					route.Rule{Family: 4, Priority: 10, Action: route.RuleLookup, Table: route.TableMain, SuppressPrefixlen: c.suppress, SuppressIfgroup: -1},
					route.Rule{Family: 4, Priority: 20, Action: route.RuleLookup, Table: 100, SuppressPrefixlen: -1, SuppressIfgroup: -1})
				if err := p.ns.Do(func() error { return d.SetRules(rules, func(string) int { return 0 }) }); err != nil {
					t.Fatal(err)
				}
				ret, out := runIn(t, d, p, p.b, v4("10.1.0.9").build())
				if ret != xdpRedirect || net.HardwareAddr(out[:6]).String() != c.want.String() {
					t.Errorf("suppress_prefixlength %d: %s to %s, want redirect to %s", c.suppress, xdpNames[ret], net.HardwareAddr(out[:6]), c.want)
				}
			}
		})
	}
}

// TestRulesUnmirroredTable: routes of tables beyond the MaxTables XDP
// holds are taken and listed but not in XDP, a rule that looks such a
// table up passes its packets to the kernel, the others still forward.
func TestRulesUnmirroredTable(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	// Routes of tables beyond MaxTables are taken (Routes lists them: the
	// audit finds nothing to repair) but stay out of XDP.
	var es []route.Entry
	for tb := 101; tb < 101+MaxTables+3; tb++ {
		es = append(es, route.Entry{Table: tb, Prefix: pfx("10.1.0.0/16"), Group: gB})
	}
	if n, err := d.UpdateRoutes(es); err != nil || n != len(es) {
		t.Fatalf("UpdateRoutes: %d, %v; want all %d taken", n, err, len(es))
	}
	got, err := d.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if !slices.ContainsFunc(got, func(g route.Entry) bool { return g.Table == e.Table && g.Prefix == e.Prefix }) {
			t.Errorf("Routes() lacks table %d's route", e.Table)
		}
	}
	held := 101 + MaxTables + 1 // main has slot 0
	if n, err := d.DeleteRoutes([]route.TablePrefix{{Table: held, Prefix: pfx("10.1.0.0/16")}}); err != nil || n != 1 {
		t.Errorf("DeleteRoutes of a held route: %d, %v", n, err)
	}
	got, _ = d.Routes()
	if slices.ContainsFunc(got, func(g route.Entry) bool { return g.Table == held }) {
		t.Error("a deleted held route is still listed")
	}
	last := 101 + MaxTables + 2 // beyond the slots
	rules0 := append(route.DefaultRules(),
		route.Rule{Family: 4, Priority: 11, Src: pfx("172.16.7.0/24"), Action: route.RuleLookup, Table: last, SuppressPrefixlen: -1, SuppressIfgroup: -1})
	if err := p.ns.Do(func() error { return d.SetRules(rules0, func(string) int { return 0 }) }); err != nil {
		t.Fatal(err)
	}
	before := statsMap(t, d)["pass/rule_kernel"].Packets
	runIn(t, d, p, p.b, v4("10.1.0.9").with(func(k *pkt) { k.src = ip("172.16.7.1") }).build())
	if n := statsMap(t, d)["pass/rule_kernel"].Packets - before; n != 1 {
		t.Errorf("a rule looking up table %d (no slot): pass/rule_kernel +%d, want +1", last, n)
	}
	rules := append(route.DefaultRules(),
		route.Rule{Family: 4, Priority: 10, Src: pfx("172.16.9.0/24"), Action: route.RuleLookup, Table: held + 1, SuppressPrefixlen: -1, SuppressIfgroup: -1})
	if err := p.ns.Do(func() error { return d.SetRules(rules, func(string) int { return 0 }) }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src  string
		want string
	}{{"172.16.9.1", "pass/rule_kernel"}, {"172.16.8.1", "redirect/"}} {
		before := statsMap(t, d)[c.want].Packets
		runIn(t, d, p, p.b, v4("10.1.0.9").with(func(k *pkt) { k.src = ip(c.src) }).build())
		if n := statsMap(t, d)[c.want].Packets - before; n != 1 {
			t.Errorf("from %s: %s +%d, want +1", c.src, c.want, n)
		}
	}
}
