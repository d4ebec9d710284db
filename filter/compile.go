package filter

import (
	"fmt"
	"net/netip"
	"slices"
)

// Fields, as enum filter_field in bpf/fwd.h: bit i of Compiled.Fields says
// that some rule matches on field i (XDP skips the others).
const (
	FieldDst = iota
	FieldSrc
	FieldProto
	FieldDport
	FieldSport
	FieldPort
	FieldICMPType
	FieldICMPCode
	FieldTCPFlags
	FieldDSCP
	FieldFrag
	FieldLen
	FieldIngress
	FieldFamily // some rule is of one family: Compiled.Family
	NumFields
)

// Value tables: the packet fields XDP maps through a value → class table.
// None is the entry of packets without the field (no ports, not ICMP, not
// TCP): only rules without a condition on it match them.
const (
	TableProto = iota
	TableDport
	TableSport
	TablePort
	TableICMPType
	TableICMPCode
	TableTCPFlags
	TableDSCP
	TableFrag
	TableLen
	NumTables
)

// TableSize is the number of entries of each value table (None included).
var TableSize = [NumTables]int{256, 65537, 65537, 65537, 257, 257, 257, 64, 4, 65536}

var tableField = [NumTables]int{FieldProto, FieldDport, FieldSport, FieldPort, FieldICMPType, FieldICMPCode, FieldTCPFlags, FieldDSCP, FieldFrag, FieldLen}

// Fragment states as XDP numbers them (enum filter_frag).
const (
	fragNone = iota
	fragFirst
	fragLater
)

// Words is the number of 64-bit words of a rule bitmap.
const Words = MaxRules / 64

// MaxClasses is the number of distinct bitmaps a compiled set may have
// (FILTER_CLASSES in bpf/fwd.h); class 0 is the empty one.
const MaxClasses = 32768

// Bitmap has bit i set for rule i.
type Bitmap [Words]uint64

func (b *Bitmap) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b *Bitmap) Has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }

// PrefixClass is one entry of the source or destination prefix tables.
type PrefixClass struct {
	Source bool
	Prefix netip.Prefix
	Class  uint32
}

// Compiled is a rule set in the form XDP classifies with: per field, the
// class of each value (or prefix, or port), per class the bitmap of the
// rules that match it. A packet matches the rules in the AND of its
// fields' bitmaps; the lowest bit is the first rule.
type Compiled struct {
	Rules    []Rule
	Fields   uint32 // bit (1 << Field*) per field in use
	Bitmaps  []Bitmap
	Tables   [NumTables][]uint32 // value → class; nil for a field not in use
	Prefixes []PrefixClass       // longest match wins; /0 entries for each family in use
	Ingress  map[int]uint32      // ifindex → class; 0: ports not listed
	Family   [2]uint32           // class of the rules IPv4 (0) and IPv6 (1) packets may match
}

type classes struct {
	ids     map[Bitmap]uint32
	bitmaps []Bitmap
}

func (c *classes) of(b Bitmap) (uint32, error) {
	if id, ok := c.ids[b]; ok {
		return id, nil
	}
	if len(c.bitmaps) >= MaxClasses {
		return 0, fmt.Errorf("filters: more than %d distinct field classes", MaxClasses)
	}
	id := uint32(len(c.bitmaps))
	c.ids[b] = id
	c.bitmaps = append(c.bitmaps, b)
	return id, nil
}

// Compile validates rules and compiles them, in order. Rules beyond
// MaxRules are an error.
func Compile(rules []Rule) (*Compiled, error) {
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("filters: %d rules, at most %d", len(rules), MaxRules)
	}
	c := &Compiled{Rules: slices.Clone(rules), Ingress: map[int]uint32{}}
	for i := range c.Rules {
		if err := c.Rules[i].Validate(); err != nil {
			return nil, err
		}
	}
	cl := &classes{ids: map[Bitmap]uint32{}}
	if _, err := cl.of(Bitmap{}); err != nil { // class 0: nothing
		return nil, err
	}
	for t := range NumTables {
		if err := c.compileTable(t, cl); err != nil {
			return nil, err
		}
	}
	if err := c.compilePrefixes(cl); err != nil {
		return nil, err
	}
	if err := c.compileIngress(cl); err != nil {
		return nil, err
	}
	if err := c.compileFamily(cl); err != nil {
		return nil, err
	}
	c.Bitmaps = cl.bitmaps
	return c, nil
}

// ranges returns rule r's condition on table t (nil: none) and whether
// the None entry can match.
func (r *Rule) ranges(t int) []Range {
	switch t {
	case TableProto:
		return r.Protocols
	case TableDport:
		return r.DstPorts
	case TableSport:
		return r.SrcPorts
	case TablePort:
		return r.Ports
	case TableICMPType:
		return r.ICMPTypes
	case TableICMPCode:
		return r.ICMPCodes
	case TableDSCP:
		return r.DSCP
	case TableLen:
		return r.Lengths
	}
	return nil
}

// matchesValue says whether rule r matches value v of table t, given it
// has a condition on t.
func (r *Rule) matchesValue(t, v int) bool {
	switch t {
	case TableTCPFlags:
		if v > 255 {
			return false
		}
		for _, f := range r.TCPFlags {
			if uint8(v)&f.Set == f.Set && uint8(v)&f.Clear == 0 {
				return true
			}
		}
		return false
	case TableFrag:
		switch v {
		case fragNone:
			return r.Fragments&NotFragment != 0
		case fragFirst:
			return r.Fragments&FirstFragment != 0
		case fragLater:
			return r.Fragments&LaterFragment != 0
		}
		return false
	}
	for _, x := range r.ranges(t) {
		if int(x.Lo) <= v && v <= int(x.Hi) {
			return true
		}
	}
	return false
}

func (r *Rule) hasCondition(t int) bool {
	switch t {
	case TableTCPFlags:
		return len(r.TCPFlags) > 0
	case TableFrag:
		return r.Fragments != 0
	}
	return len(r.ranges(t)) > 0
}

// compileTable fills table t: values between two range boundaries share a
// bitmap, so each run is computed once.
func (c *Compiled) compileTable(t int, cl *classes) error {
	var with []int // rules with a condition on t
	var any Bitmap // rules without
	for i := range c.Rules {
		if c.Rules[i].hasCondition(t) {
			with = append(with, i)
		} else {
			any.set(i)
		}
	}
	if len(with) == 0 {
		return nil
	}
	c.Fields |= 1 << tableField[t]
	size := TableSize[t]
	// Boundaries: where some rule's match may change.
	cuts := []int{0, size}
	for _, i := range with {
		r := &c.Rules[i]
		if t == TableTCPFlags || t == TableFrag {
			for v := range size {
				cuts = append(cuts, v)
			}
			break
		}
		for _, x := range r.ranges(t) {
			cuts = append(cuts, int(x.Lo), int(x.Hi)+1)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	tab := make([]uint32, size)
	for k := 0; k+1 < len(cuts); k++ {
		lo, hi := cuts[k], cuts[k+1]
		if lo >= size {
			break
		}
		b := any
		for _, i := range with {
			if c.Rules[i].matchesValue(t, lo) {
				b.set(i)
			}
		}
		id, err := cl.of(b)
		if err != nil {
			return err
		}
		for v := lo; v < hi && v < size; v++ {
			tab[v] = id
		}
	}
	c.Tables[t] = tab
	return nil
}

func familyOK(r *Rule, v6 bool) bool {
	return r.Family == 0 || (r.Family == 6) == v6
}

// compileFamily: packets of a family lose the bits of the other family's
// rules (FieldFamily, when some rule is of one without a prefix).
func (c *Compiled) compileFamily(cl *classes) error {
	var fam [2]Bitmap
	used := false
	for i := range c.Rules {
		r := &c.Rules[i]
		// A prefix keeps the other family's packets away already.
		used = used || r.Family != 0 && !r.Dst.IsValid() && !r.Src.IsValid()
		for v6 := range 2 {
			if familyOK(r, v6 == 1) {
				fam[v6].set(i)
			}
		}
	}
	if !used {
		return nil
	}
	c.Fields |= 1 << FieldFamily
	var err error
	for v6 := range 2 {
		if c.Family[v6], err = cl.of(fam[v6]); err != nil {
			return err
		}
	}
	return nil
}

// compilePrefixes builds the source and destination prefix tables.
func (c *Compiled) compilePrefixes(cl *classes) error {
	for _, source := range []bool{false, true} {
		used := false
		for i := range c.Rules {
			r := &c.Rules[i]
			if (source && r.Src.IsValid()) || (!source && r.Dst.IsValid()) {
				used = true
			}
		}
		if !used {
			continue
		}
		if source {
			c.Fields |= 1 << FieldSrc
		} else {
			c.Fields |= 1 << FieldDst
		}
		for _, v6 := range []bool{false, true} {
			root := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if v6 {
				root = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			ps := []netip.Prefix{root}
			for i := range c.Rules {
				p := c.Rules[i].Dst
				if source {
					p = c.Rules[i].Src
				}
				if p.IsValid() && p.Addr().Is6() == v6 {
					ps = append(ps, p.Masked())
				}
			}
			slices.SortFunc(ps, func(a, b netip.Prefix) int {
				if n := a.Addr().Compare(b.Addr()); n != 0 {
					return n
				}
				return a.Bits() - b.Bits()
			})
			ps = slices.Compact(ps)
			for _, p := range ps {
				var b Bitmap
				for i := range c.Rules {
					r := &c.Rules[i]
					rp := r.Dst
					if source {
						rp = r.Src
					}
					if !familyOK(r, v6) {
						continue
					}
					// Every address under p is under rp too: rp
					// covers p (p is the longest prefix a lookup finds).
					if !rp.IsValid() || (rp.Addr().Is6() == v6 && rp.Bits() <= p.Bits() && rp.Contains(p.Addr())) {
						b.set(i)
					}
				}
				id, err := cl.of(b)
				if err != nil {
					return err
				}
				c.Prefixes = append(c.Prefixes, PrefixClass{Source: source, Prefix: p, Class: id})
			}
		}
	}
	return nil
}

func (c *Compiled) compileIngress(cl *classes) error {
	ports := map[int]bool{}
	var any Bitmap
	for i := range c.Rules {
		if len(c.Rules[i].Ingress) == 0 {
			any.set(i)
		}
		for _, p := range c.Rules[i].Ingress {
			ports[p] = true
		}
	}
	if len(ports) == 0 {
		return nil
	}
	c.Fields |= 1 << FieldIngress
	id, err := cl.of(any)
	if err != nil {
		return err
	}
	c.Ingress[0] = id
	for p := range ports {
		b := any
		for i := range c.Rules {
			if slices.Contains(c.Rules[i].Ingress, p) {
				b.set(i)
			}
		}
		if c.Ingress[p], err = cl.of(b); err != nil {
			return err
		}
	}
	return nil
}

// Packet is what a packet shows the filters, for Match (tests and
// diagnostics): the fields XDP parses.
type Packet struct {
	Src, Dst     netip.Addr
	Proto        uint8
	Sport, Dport int // -1: none
	ICMPType     int // -1: not ICMP
	ICMPCode     int
	TCPFlags     int // -1: not TCP
	DSCP         uint8
	Fragment     uint8 // NotFragment, FirstFragment or LaterFragment
	Length       int
	Ingress      int
}

// Match returns the indexes of the rules p matches, in order, by the
// compiled tables: what XDP computes.
func (c *Compiled) Match(p Packet) []int {
	acc := Bitmap{}
	for i := range c.Rules {
		acc.set(i)
	}
	and := func(id uint32) {
		b := c.Bitmaps[id]
		for w := range acc {
			acc[w] &= b[w]
		}
	}
	none := func(v, size int) int {
		if v < 0 {
			return size - 1
		}
		return v
	}
	vals := [NumTables]int{int(p.Proto), none(p.Dport, 65537), none(p.Sport, 65537), 0,
		none(p.ICMPType, 257), none(p.ICMPCode, 257), none(p.TCPFlags, 257), int(p.DSCP), 0, p.Length}
	switch p.Fragment {
	case FirstFragment:
		vals[TableFrag] = fragFirst
	case LaterFragment:
		vals[TableFrag] = fragLater
	}
	for t := range NumTables {
		tab := c.Tables[t]
		if tab == nil {
			continue
		}
		if t == TablePort {
			a, b := c.Bitmaps[tab[none(p.Sport, 65537)]], c.Bitmaps[tab[none(p.Dport, 65537)]]
			for w := range acc {
				acc[w] &= a[w] | b[w]
			}
			continue
		}
		and(tab[vals[t]])
	}
	for _, source := range []bool{false, true} {
		if c.Fields&(1<<FieldDst) == 0 && !source || c.Fields&(1<<FieldSrc) == 0 && source {
			continue
		}
		a := p.Dst
		if source {
			a = p.Src
		}
		best, found := -1, uint32(0)
		for _, e := range c.Prefixes {
			if e.Source == source && e.Prefix.Addr().Is6() == a.Is6() && e.Prefix.Contains(a) && e.Prefix.Bits() > best {
				best, found = e.Prefix.Bits(), e.Class
			}
		}
		and(found)
	}
	if c.Fields&(1<<FieldFamily) != 0 {
		v6 := 0
		if p.Dst.Is6() {
			v6 = 1
		}
		and(c.Family[v6])
	}
	if c.Fields&(1<<FieldIngress) != 0 {
		id, ok := c.Ingress[p.Ingress]
		if !ok {
			id = c.Ingress[0]
		}
		and(id)
	}
	var out []int
	for i := range c.Rules {
		if acc.Has(i) {
			out = append(out, i)
		}
	}
	return out
}
