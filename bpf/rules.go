package bpf

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/xdprouter/xdprouter/route"
)

// Policy rules in XDP (see fwd.h, struct prule and rule_list, and
// rules_eval in fwd.c). SetRules compiles the kernel's rule list per
// family into an array of rules and, for each pair of a source class (the
// longest rule source prefix covering the packet's source) and an
// interface class (the ingress port), the list of rules that may match,
// in priority order; XDP checks the other selectors on that short list.

const (
	maxRules   = 256 // MAX_RULES
	ruleCands  = 31  // RULE_CANDS
	ruleLists  = 8192
	ruleNone   = 0xffff
	kernelRule = maxRules - 1 // the sentinel every overfull list ends in
	loopback   = 1            // LOOPBACK_IFINDEX: uRPF looks the source up from lo
)

var (
	_ = [1]struct{}{}[len(fwdRuleList{}.Idx)-ruleCands]
	_ = [1]struct{}{}[fwdStatSTAT__MAX-fwdStatSTAT_PASS_VLAN_OTHER-1]
)

// famRules is one family's compiled rules.
type famRules struct {
	rules    []route.Rule // in XDP order (priority), as given
	prules   []fwdPrule
	simple   bool // the defaults: XDP looks up the main table only
	srcs     []srcClass
	nsrc     int
	lists    [][]uint16 // by interface class * nsrc + source class
	fallback string     // why every packet goes to the kernel ("" if not)
}

type srcClass struct {
	prefix netip.Prefix
	class  uint32
}

// ruleSet is the compiled rule set of both families, with the classes of
// the router ports.
type ruleSet struct {
	fam       [2]famRules
	portClass map[int]uint8 // ifindex -> interface class; absent: 0
	loClass   uint8
	tables    [MaxTables]int // slot -> kernel table, as compiled
}

func famIndex(family int) int {
	if family == 6 {
		return 1
	}
	return 0
}

// unconditional: no selector, a plain lookup.
func unconditional(r route.Rule) bool {
	return !r.Invert && anyPrefix(r.Src) && anyPrefix(r.Dst) && r.IifName == "" && r.IPProto == 0 &&
		r.Sport.Any() && r.Dport.Any() && r.Tos == 0 && len(r.Opaque) == 0 && r.Action == route.RuleLookup &&
		r.SuppressPrefixlen < 0 && r.SuppressIfgroup < 0
}

func anyPrefix(p netip.Prefix) bool { return !p.IsValid() || p.Bits() == 0 }

// defaults reports whether rs (one family, in order) are the rules a fresh
// namespace has: local, main, then default (while the default table is
// empty, a lookup there changes nothing).
func defaults(rs []route.Rule, defaultEmpty bool) bool {
	want := []int{route.TableLocal, route.TableMain}
	if len(rs) == 3 && defaultEmpty {
		want = append(want, route.TableDefault)
	}
	if len(rs) != len(want) {
		return false
	}
	for i, r := range rs {
		if !unconditional(r) || route.NormTable(r.Table) != want[i] {
			return false
		}
	}
	return true
}

func prefixBytes(p netip.Prefix) (addr, mask [16]byte) {
	if anyPrefix(p) {
		return
	}
	p = p.Masked()
	if p.Addr().Is4() {
		a := p.Addr().As4()
		copy(addr[:], a[:])
	} else {
		addr = p.Addr().As16()
	}
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return
}

// compileRule makes rule r (index i of its family's ordered list) XDP's.
func compileRule(r route.Rule, i int, rs []route.Rule, slot func(int) (uint32, error), iif int) fwdPrule {
	var p fwdPrule
	p.GotoIdx = ruleNone
	opaque := len(r.Opaque) > 0 || r.SuppressIfgroup >= 0
	if opaque && r.Invert {
		// Whether it matches depends on what XDP cannot see, whatever
		// the rest: the kernel decides.
		p.Action = uint8(fwdRuleActionRA_KERNEL)
		return p
	}
	var f fwdRuleFlags
	if r.Invert {
		f |= fwdRuleFlagsRF_INVERT
	}
	if !anyPrefix(r.Src) {
		f |= fwdRuleFlagsRF_SRC
		p.Src, p.SrcMask = prefixBytes(r.Src)
	}
	if !anyPrefix(r.Dst) {
		f |= fwdRuleFlagsRF_DST
		p.Dst, p.DstMask = prefixBytes(r.Dst)
	}
	if r.IifName != "" {
		f |= fwdRuleFlagsRF_IIF
		p.Iif = uint32(iif) // 0: no such interface, matches no packet
	}
	if r.IPProto != 0 {
		f |= fwdRuleFlagsRF_PROTO
		p.Proto = r.IPProto
	}
	if !r.Sport.Any() {
		f |= fwdRuleFlagsRF_SPORT
		p.SportLo, p.SportHi = r.Sport.Lo, r.Sport.Hi
	}
	if !r.Dport.Any() {
		f |= fwdRuleFlagsRF_DPORT
		p.DportLo, p.DportHi = r.Dport.Lo, r.Dport.Hi
	}
	if r.Tos != 0 {
		f |= fwdRuleFlagsRF_TOS
		// IPv4 compares the TOS bits of the dsfield (IPTOS_RT_MASK),
		// IPv6 the whole DSCP.
		p.Tos, p.TosMask = r.Tos, 0x1c
		if r.Family == 6 {
			p.Tos, p.TosMask = r.Tos&0xfc, 0xfc // the DSCP, ECN bits aside
		}
	}
	if !r.Invert {
		// The candidate lists hold only rules whose source and port
		// match.
		f &^= fwdRuleFlagsRF_SRC | fwdRuleFlagsRF_IIF
	}
	p.Flags = uint8(f)
	switch {
	case opaque:
		p.Action = uint8(fwdRuleActionRA_KERNEL)
	case r.Action == route.RuleLookup && route.NormTable(r.Table) == route.TableLocal:
		p.Action = uint8(fwdRuleActionRA_LOCAL)
	case r.Action == route.RuleLookup:
		s, err := slot(r.Table)
		if err != nil {
			p.Action = uint8(fwdRuleActionRA_KERNEL)
			break
		}
		p.Action, p.Table = uint8(fwdRuleActionRA_LOOKUP), uint8(s)
		if r.SuppressPrefixlen >= 0 {
			p.Suppress = uint8(min(r.SuppressPrefixlen, 128) + 1)
		}
	case r.Action == route.RuleGoto:
		p.Action = uint8(fwdRuleActionRA_GOTO)
		if t := slices.IndexFunc(rs, func(o route.Rule) bool { return o.Priority == r.Goto }); t > i {
			p.GotoIdx = uint16(t)
		}
	case r.Action == route.RuleNop:
		p.Action = uint8(fwdRuleActionRA_NOP)
	case r.Action == route.RuleBlackhole:
		p.Action = uint8(fwdRuleActionRA_BLACKHOLE)
	case r.Action == route.RuleUnreachable:
		p.Action = uint8(fwdRuleActionRA_UNREACHABLE)
	default:
		p.Action = uint8(fwdRuleActionRA_KERNEL)
	}
	return p
}

// compileRules compiles the rules of both families. ports are the router
// ports' ifindexes; ifindex resolves interface names (0: none).
func compileRules(all []route.Rule, ports []int, ifindex func(string) int, slot func(int) (uint32, error), defaultEmpty bool) *ruleSet {
	rs := &ruleSet{portClass: map[int]uint8{}}
	var iifs [2][]int // per family and rule: the resolved iif (-1: none)
	for fi, family := range []int{4, 6} {
		var own []route.Rule
		for _, r := range all {
			if r.Family == family {
				own = append(own, r)
			}
		}
		slices.SortStableFunc(own, func(a, b route.Rule) int { return cmp.Compare(a.Priority, b.Priority) })
		fr := &rs.fam[fi]
		fr.rules = own
		if defaults(own, defaultEmpty) {
			fr.simple = true
			continue
		}
		if len(own) > kernelRule {
			fr.fallback = fmt.Sprintf("%d IPv%d rules, XDP holds %d", len(own), family, kernelRule)
			continue
		}
		iifs[fi] = make([]int, len(own))
		for i, r := range own {
			iifs[fi][i] = -1
			if r.IifName != "" {
				iifs[fi][i] = ifindex(r.IifName)
			}
			fr.prules = append(fr.prules, compileRule(r, i, own, slot, max(iifs[fi][i], 0)))
		}
	}

	// Interface classes, shared by both families (a port has one class
	// byte per bank): by the set of rules whose iif is the port. Class 0
	// is "none": ports no rule names, and packets from elsewhere.
	type classSet [2]map[int]bool
	classes := []classSet{{}}
	classOf := map[string]uint8{"": 0}
	full := false
	for _, ifx := range append(slices.Clone(ports), loopback) {
		var set classSet
		var key strings.Builder
		for fi := range 2 {
			key.WriteString("|")
			for i, x := range iifs[fi] {
				if x == ifx && x > 0 && !rs.fam[fi].rules[i].Invert {
					if set[fi] == nil {
						set[fi] = map[int]bool{}
					}
					set[fi][i] = true
					key.WriteString(strconv.Itoa(i) + ",")
				}
			}
		}
		k := key.String()
		if set[0] == nil && set[1] == nil {
			k = ""
		}
		c, ok := classOf[k]
		if !ok {
			if len(classes) > 255 {
				full = true
				break
			}
			c = uint8(len(classes))
			classOf[k] = c
			classes = append(classes, set)
		}
		if ifx == loopback {
			rs.loClass = c
		} else {
			rs.portClass[ifx] = c
		}
	}
	for fi := range rs.fam {
		fr := &rs.fam[fi]
		if fr.simple || fr.fallback != "" {
			continue
		}
		if full {
			fr.fallback = "more than 255 distinct interface classes"
			continue
		}
		fr.compileLists(len(classes), func(class, i int) bool {
			return iifs[fi][i] < 0 || fr.rules[i].Invert || classes[class][fi][i]
		})
	}
	return rs
}

// compileLists makes the source classes and the candidate lists.
func (fr *famRules) compileLists(nclass int, admits func(class, i int) bool) {
	bits := 32
	if fr.rules[0].Family == 6 {
		bits = 128
	}
	// Source classes: the longest rule source prefix covering a source
	// decides which rules' source selectors match it.
	srcs := []netip.Prefix{netip.PrefixFrom(zeroAddr(bits), 0)}
	for _, r := range fr.rules {
		if !r.Invert && !anyPrefix(r.Src) {
			srcs = append(srcs, r.Src.Masked())
		}
	}
	slices.SortFunc(srcs, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	srcs = slices.Compact(srcs)
	srcMatch := func(p netip.Prefix, i int) bool {
		r := fr.rules[i]
		return r.Invert || anyPrefix(r.Src) || (r.Src.Bits() <= p.Bits() && r.Src.Contains(p.Addr()))
	}
	classes := map[string]uint32{}
	var reps []netip.Prefix // a prefix of each class
	for _, p := range srcs {
		var b strings.Builder
		for i := range fr.rules {
			if srcMatch(p, i) {
				b.WriteString(strconv.Itoa(i) + ",")
			}
		}
		c, ok := classes[b.String()]
		if !ok {
			c = uint32(len(reps))
			classes[b.String()] = c
			reps = append(reps, p)
		}
		fr.srcs = append(fr.srcs, srcClass{prefix: p, class: c})
	}
	fr.nsrc = len(reps)
	if nclass*fr.nsrc > ruleLists {
		fr.fallback = fmt.Sprintf("%d interface classes x %d source classes, XDP holds %d lists", nclass, fr.nsrc, ruleLists)
		return
	}
	fr.lists = make([][]uint16, nclass*fr.nsrc)
	for ic := range nclass {
		for sc, p := range reps {
			var l []uint16
			for i := range fr.rules {
				if srcMatch(p, i) && admits(ic, i) {
					l = append(l, uint16(i))
				}
			}
			if len(l) > ruleCands {
				l = append(l[:ruleCands-1], kernelRule)
			}
			fr.lists[ic*fr.nsrc+sc] = l
		}
	}
}

func zeroAddr(bits int) netip.Addr {
	if bits == 32 {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// SetRules makes XDP take the decisions the kernel's policy rules (both
// families, any order) take: it compiles them, writes the bank packets do
// not use and switches to it at once. Tables the rules name get a table
// slot (empty until routes arrive). ifindex resolves the rules' interface
// names (0: no such interface). Rules XDP cannot evaluate send the
// packets that may match them to the kernel (pass/rule_kernel); a set XDP
// cannot hold at all (too many rules or classes) sends every packet of
// that family to the kernel, and SetRules reports why.
func (d *Datapath) SetRules(rules []route.Rule, ifindex func(name string) int) error {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	d.lastRules, d.lastIfindex = slices.Clone(rules), ifindex
	return d.writeRules()
}

// refreshRules recompiles the last rules (a port came or went, the
// default table's emptiness changed).
func (d *Datapath) refreshRules() {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if d.lastIfindex == nil {
		return
	}
	if err := d.writeRules(); err != nil {
		d.rulesErr = err
	}
}

func (d *Datapath) writeRules() error {
	d.egressMu.Lock()
	ports := make([]int, 0, len(d.ports))
	for p := range d.ports {
		ports = append(ports, p)
	}
	d.egressMu.Unlock()
	slices.Sort(ports)
	dflt, _ := d.defaultEmpty()
	slot := func(t int) (uint32, error) { return d.tables.slot(t, true) }
	rs := compileRules(d.lastRules, ports, d.lastIfindex, slot, dflt)
	rs.tables = d.tables.ids()

	var meta fwdRuleMeta
	if err := d.objs.RuleState.Lookup(uint32(0), &meta); err != nil {
		return fmt.Errorf("map rule_state: %w", err)
	}
	bank := 1 - meta.Bank&1
	var errs []error
	on := uint32(0)
	for fi := range rs.fam {
		fr := &rs.fam[fi]
		n, nsrc := uint32(0), uint32(1)
		if !fr.simple {
			if err := d.writeFamily(bank, fi, fr); err != nil {
				fr.fallback = err.Error()
				fr.prules, fr.srcs, fr.nsrc = nil, nil, 1
				fr.lists = nil
				if err := d.writeFamily(bank, fi, fr); err != nil {
					errs = append(errs, err)
				}
			}
			n, nsrc = uint32(max(len(fr.prules), 1)), uint32(fr.nsrc)
			on |= 1 << fi
		}
		if fr.fallback != "" {
			errs = append(errs, fmt.Errorf("IPv%d rules: every packet goes to the kernel: %s", 4+2*fi, fr.fallback))
		}
		meta.N[bank][fi], meta.Nsrc[bank][fi] = n, nsrc
	}
	meta.LoClass[bank] = uint32(rs.loClass)
	// The compiled source classes, for both families of the bank: XDP
	// classifies with them once every family's are built, else with the
	// trie.
	compiledOK := true
	for fi := range rs.fam {
		fr := &rs.fam[fi]
		if fr.simple || fr.fallback != "" || fr.nsrc <= 1 {
			continue
		}
		if err := d.compiled.setSources(bank, fi, fr.srcs); err != nil {
			compiledOK = false
			errs = append(errs, fmt.Errorf("compiled source classes (the trie classifies meanwhile): %w", err))
		}
	}
	if !compiledOK {
		// Before the switch: the new bank's compiled classes are not
		// whole.
		if err := d.objs.RulesCompiled.Set(uint32(0)); err != nil {
			errs = append(errs, fmt.Errorf("set rules_compiled: %w", err))
		}
	}
	if err := d.setPortClasses(bank, rs.portClass); err != nil {
		return errors.Join(append(errs, err)...)
	}
	// The bank's counts first, then the switch to it (two copies of the
	// value: either is consistent for a packet reading it meanwhile).
	if err := d.objs.RuleState.Put(uint32(0), &meta); err != nil {
		return errors.Join(append(errs, fmt.Errorf("map rule_state: %w", err))...)
	}
	meta.Bank = bank
	if err := d.objs.RuleState.Put(uint32(0), &meta); err != nil {
		return errors.Join(append(errs, fmt.Errorf("map rule_state: %w", err))...)
	}
	if err := d.objs.RulesOn.Set(on); err != nil {
		errs = append(errs, fmt.Errorf("set rules_on: %w", err))
	}
	if err := d.objs.RulesCompiled.Set(b2u(compiledOK)); err != nil {
		errs = append(errs, fmt.Errorf("set rules_compiled: %w", err))
	}
	d.rules = rs
	d.freeSlots(rs)
	d.rulesErr = errors.Join(errs...)
	return d.rulesErr
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// writeFamily writes one family's rules, lists and source classes into a
// bank; with fallback set, a set that sends everything to the kernel.
func (d *Datapath) writeFamily(bank uint32, fi int, fr *famRules) error {
	base := (bank*2 + uint32(fi))
	sentinel := fwdPrule{Action: uint8(fwdRuleActionRA_KERNEL), GotoIdx: ruleNone}
	if err := d.objs.Rules.Put(base*maxRules+kernelRule, &sentinel); err != nil {
		return fmt.Errorf("map rules: %w", err)
	}
	for i := range fr.prules {
		if err := d.objs.Rules.Put(base*maxRules+uint32(i), &fr.prules[i]); err != nil {
			return fmt.Errorf("map rules: %w", err)
		}
	}
	lists := fr.lists
	if fr.fallback != "" {
		// Every list (any interface class) is the sentinel alone.
		lists = make([][]uint16, 256)
		for i := range lists {
			lists[i] = []uint16{kernelRule}
		}
	}
	for li, l := range lists {
		v := fwdRuleList{N: uint16(len(l))}
		copy(v.Idx[:], l)
		if err := d.objs.RuleLists.Put(base*ruleLists+uint32(li), &v); err != nil {
			return fmt.Errorf("map rule_lists: %w", err)
		}
	}
	// Source classes: replace the bank's keys of this family.
	for _, k := range d.srcKeys[bank][fi] {
		_ = d.objs.RuleSrc.Delete(&k)
	}
	d.srcKeys[bank][fi] = nil
	if fr.fallback != "" {
		return nil
	}
	for _, s := range fr.srcs {
		k := fwdRuleSrcKey{Prefixlen: 32 + uint32(s.prefix.Bits()), Tag: bank<<1 | uint32(fi)}
		a, _ := prefixBytes(s.prefix)
		if s.prefix.Bits() == 0 {
			a = [16]byte{}
		}
		k.Addr = a
		if err := d.objs.RuleSrc.Put(&k, s.class); err != nil {
			return fmt.Errorf("map rule_src: %v: %w", s.prefix, err)
		}
		d.srcKeys[bank][fi] = append(d.srcKeys[bank][fi], k)
	}
	return nil
}

// setPortClasses writes the ports' interface classes of a bank.
func (d *Datapath) setPortClasses(bank uint32, classes map[int]uint8) error {
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	var errs []error
	for ifx, p := range d.ports {
		rc := d.ruleClass[ifx]
		rc[bank] = classes[ifx]
		d.ruleClass[ifx] = rc
		if err := d.putIface(ifx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// freeSlots releases the slots of tables that have no route and that no
// rule names.
func (d *Datapath) freeSlots(rs *ruleSet) {
	named := map[uint32]bool{0: true}
	for _, fr := range rs.fam {
		for _, p := range fr.prules {
			if p.Action == uint8(fwdRuleActionRA_LOOKUP) {
				named[uint32(p.Table)] = true
			}
		}
	}
	ids := d.tables.ids()
	for s, id := range ids {
		if id == 0 || named[uint32(s)] || !d.compiled.empty(uint32(s)) {
			continue
		}
		d.compiled.reset(uint32(s))
		d.tables.free(uint32(s))
	}
}
