package config

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
)

// Peer groups and dynamic neighbors.
//
// A [[peer-group]] is resolved here, before defaults: each neighbor with
// peer-group = "NAME" takes every key it leaves out from the group's
// table, as if written in its own (an explicit zero in the neighbor, such
// as hold-time = 0, is kept). The neighbor is then defaulted and checked
// like any other, so everything per neighbor (status, metrics,
// max-prefixes, End-of-RIB, graceful restart) works for members without
// knowing about groups. A problem with an inherited value is reported at
// the group's key, where it is written.

// notInGroup are the neighbor keys a peer group may not set.
var notInGroup = []string{"address", "interface", "peer-group"}

// inherit copies the keys of each neighbor's peer group that the
// neighbor leaves out. Unknown group names are left to validation.
func (c *Config) inherit() {
	groups := map[string]int{}
	for i, g := range c.PeerGroups {
		if _, dup := groups[g.Name]; !dup {
			groups[g.Name] = i
		}
	}
	t := reflect.TypeOf(Neighbor{})
	for i := range c.Neighbors {
		n := &c.Neighbors[i]
		gi, ok := groups[n.PeerGroup]
		if n.PeerGroup == "" || !ok {
			continue
		}
		nv := reflect.ValueOf(n).Elem()
		gv := reflect.ValueOf(&c.PeerGroups[gi].Neighbor).Elem()
		for f := 0; f < t.NumField(); f++ {
			k, _, _ := strings.Cut(t.Field(f).Tag.Get("toml"), ",")
			if k == "" || k == "-" || slices.Contains(notInGroup, k) {
				continue
			}
			nk := indexPath("neighbor", i) + "." + k
			gk := indexPath("peer-group", gi) + "." + k
			var take bool
			if c.pos == nil { // built in code: zero is unset
				take = nv.Field(f).IsZero() && !gv.Field(f).IsZero()
			} else {
				take = !c.pos.present[nk] && c.pos.present[gk]
			}
			if !take {
				continue
			}
			val := gv.Field(f)
			if val.Kind() == reflect.Slice && !val.IsNil() { // no shared backing array
				cp := reflect.MakeSlice(val.Type(), val.Len(), val.Len())
				reflect.Copy(cp, val)
				val = cp
			}
			nv.Field(f).Set(val)
			if c.pos != nil {
				c.pos.present[nk] = true
				if c.pos.inherited == nil {
					c.pos.inherited = map[string]string{}
				}
				c.pos.inherited[nk] = gk
			}
		}
	}
}

// PeerGroupOf returns the [[peer-group]] named name, or nil.
func (c *Config) PeerGroupOf(name string) *PeerGroup {
	for i := range c.PeerGroups {
		if c.PeerGroups[i].Name == name {
			return &c.PeerGroups[i]
		}
	}
	return nil
}

// Range returns the dynamic neighbor's prefix, or the zero Prefix if it
// does not parse (never after a successful Load).
func (d DynamicNeighbor) Range() netip.Prefix {
	p, _ := netip.ParsePrefix(d.Prefix)
	return p
}

// dynamicUnsupported are the neighbor keys a peer group of
// [[dynamic-neighbor]]s may not set: what is configured per neighbor
// address elsewhere (blackhole routes, Flowspec validation, VRF
// membership) and a restart of a session that no longer exists once shut
// down.
var dynamicUnsupported = []string{"vrf", "flowspec", "accept-blackhole", "max-prefixes-restart"}

// peerGroups checks the [[peer-group]] tables (each like a neighbor,
// without address) and the neighbors' references to them.
func (v *validator) peerGroups(policies map[string]bool) {
	c := v.c
	names := make([]string, len(c.PeerGroups))
	for i, g := range c.PeerGroups {
		names[i] = g.Name
	}
	defined := v.setNames("peer-group", names)
	for i := range c.PeerGroups {
		g := &c.PeerGroups[i]
		base := indexPath("peer-group", i) + "."
		for _, k := range notInGroup {
			if c.pos.isSet(base + k) {
				v.errf(base+k, "is not a peer-group key: a peer group is a template for several neighbors")
			}
		}
		if g.PeerASN != 0 || c.pos.isSet(base+"peer-asn") {
			v.asn(base+"peer-asn", g.PeerASN)
		}
		v.neighborKeys(base, &g.Neighbor, netip.Addr{}, policies)
	}
	for i, n := range c.Neighbors {
		if n.PeerGroup != "" && !defined[n.PeerGroup] {
			v.errf(indexPath("neighbor", i)+".peer-group", "no [[peer-group]] is named %q", n.PeerGroup)
		}
	}
}

// dynamicNeighbors checks the [[dynamic-neighbor]] ranges: a prefix each,
// not overlapping another, a defined peer group without per-address
// keys, a limit of at least one session.
func (v *validator) dynamicNeighbors() {
	c := v.c
	var seen []netip.Prefix
	var seenAt []int
	checked := map[int]bool{} // peer groups checked for dynamic use
	for i, d := range c.DynamicNeighbors {
		base := indexPath("dynamic-neighbor", i) + "."
		switch {
		case d.Prefix == "":
			v.missing(base+"prefix", ` (the range sessions are accepted from, e.g. "10.1.0.0/24")`)
		default:
			p, msg := prefix(d.Prefix)
			if msg != "" {
				v.errf(base+"prefix", "%s", msg)
				break
			}
			for j, o := range seen {
				if o.Overlaps(p) {
					v.errf(base+"prefix", "%s overlaps dynamic-neighbor[%d].prefix %s: an address belongs to one range", p, seenAt[j], o)
				}
			}
			seen, seenAt = append(seen, p), append(seenAt, i)
		}
		if d.Limit < 1 {
			v.errf(base+"limit", "must be at least 1 (sessions accepted at once from the range), got %d", d.Limit)
		}
		switch g := c.PeerGroupOf(d.PeerGroup); {
		case d.PeerGroup == "":
			v.missing(base+"peer-group", " (the [[peer-group]] whose settings its sessions take)")
		case g == nil:
			v.errf(base+"peer-group", "no [[peer-group]] is named %q", d.PeerGroup)
		default:
			gi := slices.IndexFunc(c.PeerGroups, func(x PeerGroup) bool { return x.Name == d.PeerGroup })
			gbase := indexPath("peer-group", gi) + "."
			if checked[gi] {
				break
			}
			checked[gi] = true
			gv := reflect.ValueOf(g.Neighbor)
			for _, k := range dynamicUnsupported {
				if f, ok := fieldByTag(gv, k); ok && !f.IsZero() {
					v.errf(gbase+k, "is not supported in a peer group of [[dynamic-neighbor]]s (dynamic-neighbor[%d] uses %q)", i, d.PeerGroup)
				}
			}
		}
	}
}

// fieldByTag returns the field of struct value sv with toml key k.
func fieldByTag(sv reflect.Value, k string) (reflect.Value, bool) {
	t := sv.Type()
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); tag == k {
			return sv.Field(i), true
		}
	}
	return reflect.Value{}, false
}
