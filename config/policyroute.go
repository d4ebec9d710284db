package config

import (
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/xdprouter/xdprouter/route"
)

// Policy routes ([[policy-route]], issue 11): the selectors and actions of
// ip rules, plus "send it to that next hop while it is usable". Each is
// one kernel rule of ours per family (two with a fallback other than
// "table"); a next hop gets a kernel table of its own (fib.
// policy-table-base up) whose only route is a default route of ours via
// it, present while the next hop is usable (see the sync package).

// Policy route actions (policy-route.action) and fallbacks
// (policy-route.fallback, with "table").
const (
	PolicyBlackhole   = "blackhole"
	PolicyUnreachable = "unreachable"
	PolicyProhibit    = "prohibit"
)

// PolicyRouteSpec is a validated [[policy-route]], ready for the kernel.
type PolicyRouteSpec struct {
	Name string
	// Families its rules are for: 4, 6, or both when no selector or
	// next hop names one.
	Families []int
	Priority int
	From, To netip.Prefix // invalid: any
	In       string
	// Protocol is the IP protocol selected (0: any).
	Protocol     uint8
	Sport, Dport route.PortRange
	TOS          uint8
	// Exactly one action: Table (lookup), NextHop (lookup of the next
	// hop's table; Fallback what follows while it is not usable), or
	// Reject (blackhole, unreachable, prohibit).
	Table    int
	NextHop  netip.Addr
	Fallback string
	Reject   string
}

// PolicyRouteSpecs returns the validated [[policy-route]]s (after Load or
// Parse, which validate them; an error for a Config built in code that
// does not validate).
func (c *Config) PolicyRouteSpecs() ([]PolicyRouteSpec, error) {
	v := &validator{c: c}
	specs := v.policyRoutes()
	if len(v.errs) > 0 {
		return nil, joinSorted(v.errs)
	}
	return specs, nil
}

// PolicyNextHops lists the distinct next hops of the [[policy-route]]s in
// the order they first appear.
func (c *Config) PolicyNextHops() []netip.Addr {
	var out []netip.Addr
	for _, r := range c.PolicyRoutes {
		a, err := netip.ParseAddr(r.NextHop)
		if err == nil && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

var policyRejects = []string{PolicyBlackhole, PolicyUnreachable, PolicyProhibit}

// policyRoutes checks the [[policy-route]]s and converts them.
func (v *validator) policyRoutes() []PolicyRouteSpec {
	c := v.c
	names := make([]string, len(c.PolicyRoutes))
	for i, r := range c.PolicyRoutes {
		names[i] = r.Name
	}
	v.setNames("policy-route", names)
	v.policyTableBase()

	// Priorities taken by the [[vrf]]s (each its priority and the next).
	prios := map[int]string{}
	for i, x := range c.VRFs {
		prios[x.RulePriority] = indexPath("vrf", i)
		prios[x.RulePriority+1] = indexPath("vrf", i)
	}
	var nextHops []netip.Addr
	specs := make([]PolicyRouteSpec, 0, len(c.PolicyRoutes))
	for i, r := range c.PolicyRoutes {
		base := indexPath("policy-route", i) + "."
		set := func(k string) bool { return c.pos.isSet(base + k) }
		s := PolicyRouteSpec{Name: r.Name, Priority: r.Priority, In: r.In}
		fam, famKey := 0, ""
		family := func(key string, f int, what string) {
			switch {
			case fam == 0:
				fam, famKey = f, key
			case fam != f:
				v.errf(base+key, "%s is IPv%d but %s is IPv%d: a policy route is of one family", what, f, famKey, fam)
			}
		}

		// Selectors.
		for _, p := range []struct {
			key, s string
			dst    *netip.Prefix
		}{{"from", r.From, &s.From}, {"to", r.To, &s.To}} {
			if p.s == "" {
				if set(p.key) {
					v.errf(base+p.key, `must not be empty (a prefix such as "198.51.100.0/24" or an address; leave it out to match any)`)
				}
				continue
			}
			pfx, msg := filterPrefix(p.s)
			if msg != "" {
				v.errf(base+p.key, "%s", msg)
				continue
			}
			family(p.key, familyOf(pfx.Addr()), pfx.String())
			if pfx.Bits() > 0 {
				*p.dst = pfx
			}
		}
		if r.In != "" || set("in") {
			if !slices.Contains(c.Dataplane.Interfaces, r.In) {
				v.errf(base+"in", "%q is not a router port (dataplane.interfaces)", r.In)
			}
		}
		if r.Protocol != "" || set("protocol") {
			p, ok := protocolKind.one(strings.TrimSpace(string(r.Protocol)))
			switch {
			case !ok:
				v.errf(base+"protocol", "%q is not %s", r.Protocol, protocolKind.desc)
			case p == 0:
				v.errf(base+"protocol", "0 matches any protocol in an ip rule: leave it out")
			case p == 1:
				family("protocol", 4, "icmp")
			case p == 58:
				family("protocol", 6, "icmpv6")
			}
			s.Protocol = uint8(p)
		}
		for _, p := range []struct {
			key string
			val Value
			dst *route.PortRange
		}{{"sport", r.SrcPort, &s.Sport}, {"dport", r.DstPort, &s.Dport}} {
			if p.val == "" && !set(p.key) {
				continue
			}
			rg, msg := portKind.token(strings.TrimSpace(string(p.val)))
			switch {
			case msg != "":
				v.errf(base+p.key, "%s (a port or \"LO-HI\")", msg)
				continue
			case rg.Lo == 0 || rg.Hi == 65535:
				v.errf(base+p.key, "%q: the kernel's rules take ports 1..65534", p.val)
				continue
			case s.Protocol == 0 && (r.Protocol == "" && !set("protocol")):
				v.errf(base+p.key, "needs protocol = \"tcp\", \"udp\" or \"sctp\" (ports are theirs)")
			case s.Protocol != 0 && !slices.Contains(portProtocols, uint16(s.Protocol)):
				v.errf(base+p.key, "protocol %s has no ports (only tcp, udp and sctp have)", protocolName(uint16(s.Protocol)))
			}
			*p.dst = route.PortRange{Lo: rg.Lo, Hi: rg.Hi}
		}
		switch t := r.TOS; {
		case t < 0 || t > 255:
			v.errf(base+"tos", "must be a dsfield byte 0..255 (DSCP << 2, e.g. 0xb8 for EF), got %d", t)
		case t&3 != 0:
			v.errf(base+"tos", "%#x has ECN bits (the low two) set: a rule matches DSCP << 2 (e.g. 0xb8 for EF)", t)
		default:
			s.TOS = uint8(t)
		}

		// Action: exactly one.
		var acts []string
		if r.Table != 0 || set("table") {
			acts = append(acts, "table")
		}
		if r.NextHop != "" || set("next-hop") {
			acts = append(acts, "next-hop")
		}
		if r.Action != "" || set("action") {
			acts = append(acts, "action")
		}
		switch len(acts) {
		case 0:
			v.missing(base+"next-hop", ` (or table, or action): a policy route needs exactly one action`)
		case 1:
		default:
			v.errf(base+acts[1], "a policy route has exactly one action: not both %s and %s", acts[0], acts[1])
		}
		if slices.Contains(acts, "table") {
			switch t := r.Table; {
			case t < 1 || int64(t) > math.MaxUint32:
				v.errf(base+"table", "must be a kernel table 1..4294967295, got %d", t)
			case t == tableLocal:
				v.errf(base+"table", "255 is the kernel's local table (its rule comes first anyway)")
			case c.isPolicyTable(t):
				v.errf(base+"table", "%d is one of the tables of policy routes' next hops (fib.policy-table-base %d .. %d)", t, c.FIB.PolicyTableBase, c.FIB.PolicyTableBase+MaxPolicyNextHops-1)
			default:
				s.Table = t
			}
		}
		if slices.Contains(acts, "next-hop") {
			a, err := netip.ParseAddr(r.NextHop)
			switch {
			case err != nil || a.Zone() != "":
				v.errf(base+"next-hop", "%q is not an IP address", r.NextHop)
			case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
				v.errf(base+"next-hop", "%s is not a unicast address a neighbor can have (link-local next hops are not supported)", a)
			default:
				family("next-hop", familyOf(a), a.String())
				s.NextHop = a
				if !slices.Contains(nextHops, a) {
					nextHops = append(nextHops, a)
				}
			}
		}
		if r.Fallback != "" || set("fallback") {
			switch {
			case !slices.Contains(acts, "next-hop"):
				v.errf(base+"fallback", "only with next-hop (what becomes of the traffic while the next hop is down)")
			case r.Fallback != PolicyFallbackTable && !slices.Contains(policyRejects, r.Fallback):
				v.errf(base+"fallback", `%q is not one of "table" (the next rules decide), "unreachable", "prohibit", "blackhole"`, r.Fallback)
			default:
				s.Fallback = r.Fallback
			}
		}
		if slices.Contains(acts, "action") {
			if !slices.Contains(policyRejects, r.Action) {
				v.errf(base+"action", `%q is not one of "blackhole", "unreachable", "prohibit" (use table = N or next-hop = ADDR to route)`, r.Action)
			} else {
				s.Reject = r.Action
			}
		}

		// Priority: its own, and the next one with a refusing fallback.
		n := 1
		if s.Fallback != "" && s.Fallback != PolicyFallbackTable {
			n = 2
		}
		switch p := r.Priority; {
		case p < 1 || p+n-1 > MaxPolicyRoutePriority:
			v.errf(base+"priority", "must be 1..%d (before the main table's rule at 32766; a refusing fallback takes the next priority too), got %d", MaxPolicyRoutePriority-n+1, p)
		default:
			hint := ""
			if !set("priority") {
				hint = " (this route's default priority: set one)"
			}
			for q := p; q < p+n; q++ {
				if other, dup := prios[q]; dup {
					v.errf(base+"priority", "%d%s: priority %d is already %s's (a rule priority belongs to one [[vrf]] or [[policy-route]])", p, hint, q, other)
					break
				}
			}
			for q := p; q < p+n; q++ {
				prios[q] = indexPath("policy-route", i)
			}
		}

		switch fam {
		case 0:
			s.Families = []int{4, 6}
		default:
			s.Families = []int{fam}
		}
		specs = append(specs, s)
	}
	if len(nextHops) > MaxPolicyNextHops {
		v.errf("policy-route", "%d distinct next hops: at most %d (one kernel table each)", len(nextHops), MaxPolicyNextHops)
	}
	return specs
}

// policyTableBase checks fib.policy-table-base: its tables must be
// free (not the kernel's, fib.table's nor a VRF's).
func (v *validator) policyTableBase() {
	c := v.c
	b := c.FIB.PolicyTableBase
	const key = "fib.policy-table-base"
	if b < 1 || int64(b)+MaxPolicyNextHops-1 > math.MaxUint32 {
		v.errf(key, "must be 1..%d (it and the next %d tables), got %d", int64(math.MaxUint32)-MaxPolicyNextHops+1, MaxPolicyNextHops-1, b)
		return
	}
	for _, t := range []int{tableDefault, tableMain, tableLocal} {
		if c.isPolicyTable(t) {
			v.errf(key, "%d .. %d holds the kernel's table %d: choose a base above 255 (default %d)", b, b+MaxPolicyNextHops-1, t, DefaultPolicyTableBase)
			return
		}
	}
	if c.isPolicyTable(c.FIB.Table) {
		v.errf(key, "%d .. %d holds fib.table %d", b, b+MaxPolicyNextHops-1, c.FIB.Table)
	}
	for i, x := range c.VRFs {
		if c.isPolicyTable(x.Table) {
			v.errf(key, "%d .. %d holds vrf[%d]'s table %d", b, b+MaxPolicyNextHops-1, i, x.Table)
		}
	}
}

// MirrorTableFilter says which tables fib.mirror-tables mirrors besides
// those always mirrored; nil: every table (the key is absent).
func (c *Config) MirrorTableFilter() func(table int) bool {
	if c.FIB.MirrorTables == nil && !c.pos.isSet("fib.mirror-tables") {
		return nil
	}
	set := map[int]bool{}
	for _, t := range c.FIB.MirrorTables {
		set[t] = true
	}
	return func(t int) bool { return set[t] }
}

// mirrorTables checks fib.mirror-tables.
func (v *validator) mirrorTables() {
	seen := map[int]int{}
	for i, t := range v.c.FIB.MirrorTables {
		key := "fib.mirror-tables"
		if v.c.pos.isSet(indexPath(key, i)) {
			key = indexPath(key, i)
		}
		switch j, dup := seen[t]; {
		case t < 1 || int64(t) > math.MaxUint32:
			v.errf(key, "%d is not a kernel table 1..4294967295", t)
		case t == tableLocal:
			v.errf(key, "255 is the kernel's local table: XDP follows it through the router's addresses, never as a table")
		case dup:
			v.errf(key, "table %d is listed twice (also at index %d)", t, j)
		default:
			seen[t] = i
		}
	}
}

// isPolicyTable reports whether t is one of the tables of policy routes'
// next hops.
func (c *Config) isPolicyTable(t int) bool {
	b := c.FIB.PolicyTableBase
	return b > 0 && t >= b && t < b+MaxPolicyNextHops
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}
