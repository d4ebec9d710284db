package config

// [[filter]] tables and uRPF keys: their TOML value types, their parsing
// into filter.Rule values and their validation.

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/xdprouter/xdprouter/filter"
)

// Values is a list of numeric values as written in the file: an integer,
// a string of comma-separated values and ranges ("80,443,8000-8080"), or
// an array of integers and such strings. Integers are kept as their
// decimal text; Validate checks the values, FilterRules converts them.
type Values []string

// UnmarshalTOML implements toml.Unmarshaler.
func (v *Values) UnmarshalTOML(data any) error {
	const want = `want an integer, a string such as "80,443,8000-8080", or an array of them`
	switch d := data.(type) {
	case int64:
		*v = Values{strconv.FormatInt(d, 10)}
	case string:
		*v = Values{d}
	case []any:
		out := make(Values, 0, len(d))
		for _, e := range d {
			switch e := e.(type) {
			case int64:
				out = append(out, strconv.FormatInt(e, 10))
			case string:
				out = append(out, e)
			default:
				return fmt.Errorf("%s; got an array with %s", want, tomlKind(e))
			}
		}
		*v = out
	default:
		return fmt.Errorf("%s; got %s", want, tomlKind(data))
	}
	return nil
}

// Strings is a string or an array of strings.
type Strings []string

// UnmarshalTOML implements toml.Unmarshaler.
func (s *Strings) UnmarshalTOML(data any) error {
	const want = "want a string or an array of strings"
	switch d := data.(type) {
	case string:
		*s = Strings{d}
	case []any:
		out := make(Strings, 0, len(d))
		for _, e := range d {
			str, ok := e.(string)
			if !ok {
				return fmt.Errorf("%s; got an array with %s", want, tomlKind(e))
			}
			out = append(out, str)
		}
		*s = out
	default:
		return fmt.Errorf("%s; got %s", want, tomlKind(data))
	}
	return nil
}

// Value is one integer or string as written ("" when absent).
type Value string

// UnmarshalTOML implements toml.Unmarshaler.
func (v *Value) UnmarshalTOML(data any) error {
	switch d := data.(type) {
	case int64:
		*v = Value(strconv.FormatInt(d, 10))
	case string:
		*v = Value(d)
	default:
		return fmt.Errorf("want an integer or a string; got %s", tomlKind(data))
	}
	return nil
}

// tomlKind names the TOML type of a decoded value for messages.
func tomlKind(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return "a date-time"
}

// uRPF modes (dataplane.urpf, dataplane.urpf-ports), as the kernel's
// rp_filter 0, 1 and 2.
const (
	URPFOff     = "off"
	URPFStrict  = "strict" // the source's route must leave by the ingress port
	URPFLoose   = "loose"  // the source must have a route
	DefaultURPF = URPFOff
)

// URPFMode returns the uRPF mode of a router port: its urpf-ports entry,
// else urpf, else "off".
func (d Dataplane) URPFMode(port string) string {
	if m, ok := d.URPFPorts[port]; ok {
		return m
	}
	if d.URPF == "" {
		return URPFOff
	}
	return d.URPF
}

// Filter actions ([[filter]] action).
const (
	FilterDrop      = "drop"
	FilterPass      = "pass" // to the kernel
	FilterAccept    = "accept"
	FilterCount     = "count"
	FilterRateLimit = "rate-limit"
)

var filterActions = map[string]filter.ActionKind{
	FilterDrop: filter.Drop, FilterPass: filter.Pass, FilterAccept: filter.Accept,
	FilterCount: filter.Count, FilterRateLimit: filter.RateLimit,
}

// DefaultFilterName is the name of the i-th [[filter]] (0-based) without
// a name key: "filter-1" for the first.
func DefaultFilterName(i int) string { return "filter-" + strconv.Itoa(i+1) }

// FilterRules builds the filter rules of the [[filter]] tables, in file
// order, with Origin filter.FromConfig. ifindex resolves the interface
// names of each rule's in key to ifindexes (Rule.Ingress); it is called
// only for rules that have one. The config is validated as by Validate
// (a loaded config is valid; one built in code may not be); any problem,
// and any error of ifindex, is returned as *Error values, joined.
func (c *Config) FilterRules(ifindex func(name string) (int, error)) ([]filter.Rule, error) {
	v := &validator{c: c}
	rules := v.filters()
	if len(v.errs) > 0 {
		return nil, joinSorted(v.errs)
	}
	for i := range rules {
		for j, name := range c.Filters[i].In {
			key := indexPath(indexPath("filter", i)+".in", j)
			if ifindex == nil {
				v.errf(key, "no interface resolver to find %q with", name)
				continue
			}
			idx, err := ifindex(name)
			if err != nil {
				v.errf(key, "interface %q: %v", name, err)
				continue
			}
			rules[i].Ingress = append(rules[i].Ingress, idx)
		}
	}
	if len(v.errs) > 0 {
		return nil, joinSorted(v.errs)
	}
	return rules, nil
}

// urpf checks dataplane.urpf and dataplane.urpf-ports.
func (v *validator) urpf() {
	d := v.c.Dataplane
	mode := func(key, m string) {
		switch m {
		case URPFOff, URPFLoose, URPFStrict:
		default:
			v.errf(key, "%q is not one of off, loose, strict", m)
		}
	}
	mode("dataplane.urpf", d.URPF)
	names := make([]string, 0, len(d.URPFPorts))
	for name := range d.URPFPorts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		key := "dataplane.urpf-ports." + name
		mode(key, d.URPFPorts[name])
		if !slices.Contains(d.Interfaces, name) {
			v.errf(key, "%q is not in dataplane.interfaces", name)
		}
	}
}

// filters checks every [[filter]] and returns the rules (without
// Ingress); they are meaningful only without errors.
func (v *validator) filters() []filter.Rule {
	fs := v.c.Filters
	if len(fs) > filter.MaxRules {
		v.errf(indexPath("filter", filter.MaxRules), "one [[filter]] too many: XDP classifies at most %d rules, there are %d", filter.MaxRules, len(fs))
	}
	first := map[string]int{}
	rules := make([]filter.Rule, len(fs))
	for i := range fs {
		key := indexPath("filter", i) + ".name"
		name := fs[i].Name
		switch {
		case name == "" && v.c.pos.isSet(key):
			v.errf(key, "must not be empty (leave it out for the default, %q)", DefaultFilterName(i))
		case strings.ContainsFunc(name, unicode.IsControl):
			v.errf(key, "%q contains control characters", name)
		}
		if name == "" {
			name = DefaultFilterName(i)
		}
		if j, dup := first[name]; dup {
			how := ""
			if fs[i].Name == "" || v.c.pos != nil && !v.c.pos.isSet(key) {
				how = " (this rule's default name)"
			}
			v.errf(key, "%q%s is already the name of filter[%d]", name, how, j)
		} else {
			first[name] = i
		}
		rules[i] = v.filter(i, name)
	}
	return rules
}

// IP protocols with ports (filter sport, dport, port).
var portProtocols = []uint16{6, 17, 132}

var protocolNames = map[string]uint16{
	"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
	"icmpv6": 58, "ipv6-icmp": 58, "sctp": 132,
}

var dscpNames = map[string]uint16{
	"cs0": 0, "cs1": 8, "cs2": 16, "cs3": 24, "cs4": 32, "cs5": 40, "cs6": 48, "cs7": 56,
	"af11": 10, "af12": 12, "af13": 14, "af21": 18, "af22": 20, "af23": 22,
	"af31": 26, "af32": 28, "af33": 30, "af41": 34, "af42": 36, "af43": 38,
	"ef": 46,
}

var tcpFlagNames = map[string]uint8{
	"fin": filter.TCPFin, "syn": filter.TCPSyn, "rst": filter.TCPRst, "psh": filter.TCPPsh,
	"ack": filter.TCPAck, "urg": filter.TCPUrg, "ece": filter.TCPEce, "cwr": filter.TCPCwr,
}

// protocolName names an IP protocol number for messages.
func protocolName(p uint16) string {
	switch p {
	case 58:
		return "icmpv6"
	}
	for name, n := range protocolNames {
		if n == p {
			return name
		}
	}
	return strconv.Itoa(int(p))
}

// valueKind describes what a Values key holds.
type valueKind struct {
	desc  string // for messages: "a port 0-65535"
	max   uint16
	names map[string]uint16 // case-insensitive
}

var (
	portKind     = valueKind{desc: "a port 0-65535", max: 65535}
	protocolKind = valueKind{desc: "a protocol (0-255 or a name: tcp, udp, icmp, icmpv6, sctp, gre, esp, ah)", max: 255, names: protocolNames}
	icmpKind     = valueKind{desc: "an ICMP type 0-255", max: 255}
	icmpCodeKind = valueKind{desc: "an ICMP code 0-255", max: 255}
	dscpKind     = valueKind{desc: "a DSCP (0-63 or a name: ef, af11..af43, cs0..cs7)", max: 63, names: dscpNames}
	lengthKind   = valueKind{desc: "a packet length 0-65535", max: 65535}
)

// one parses a single value: a number or a name.
func (k valueKind) one(s string) (uint16, bool) {
	if n, ok := k.names[strings.ToLower(s)]; ok {
		return n, true
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n > uint64(k.max) {
		return 0, false
	}
	return uint16(n), true
}

// token parses "V" or "LO-HI".
func (k valueKind) token(t string) (filter.Range, string) {
	if n, ok := k.one(t); ok {
		return filter.Range{Lo: n, Hi: n}, ""
	}
	bad := fmt.Sprintf("%q is not %s, nor a range LO-HI of them", t, k.desc)
	i := strings.IndexByte(t, '-')
	if i <= 0 {
		return filter.Range{}, bad
	}
	lo, ok1 := k.one(strings.TrimSpace(t[:i]))
	hi, ok2 := k.one(strings.TrimSpace(t[i+1:]))
	switch {
	case !ok1 || !ok2:
		return filter.Range{}, bad
	case lo > hi:
		return filter.Range{}, fmt.Sprintf("%q: the range is reversed (%d > %d)", t, lo, hi)
	}
	return filter.Range{Lo: lo, Hi: hi}, ""
}

// ranges parses the Values of key into sorted, merged ranges, reporting
// each bad element (nil when vals is nil: the key is absent).
func (v *validator) ranges(key string, vals Values, k valueKind) ([]filter.Range, bool) {
	if vals == nil {
		return nil, true
	}
	if len(vals) == 0 {
		v.errf(key, "must list at least one value (or be left out)")
		return nil, false
	}
	var out []filter.Range
	ok := true
	for j, item := range vals {
		ekey := key
		if v.c.pos.isSet(indexPath(key, j)) {
			ekey = indexPath(key, j)
		}
		for _, t := range strings.Split(item, ",") {
			r, msg := k.token(strings.TrimSpace(t))
			if msg != "" {
				if t != item {
					msg = fmt.Sprintf("%q: %s", item, msg)
				}
				v.errf(ekey, "%s", msg)
				ok = false
				continue
			}
			out = append(out, r)
		}
	}
	if !ok {
		return nil, false
	}
	return mergeRanges(out), true
}

// mergeRanges sorts rs and merges overlapping and adjacent ranges.
func mergeRanges(rs []filter.Range) []filter.Range {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Lo < rs[j].Lo || rs[i].Lo == rs[j].Lo && rs[i].Hi < rs[j].Hi })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.Lo) <= int(out[n-1].Hi)+1 {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

// outside returns a value of rs that is not in allowed, if any.
func outside(rs []filter.Range, allowed ...uint16) (uint16, bool) {
	for _, r := range rs {
		for p := int(r.Lo); p <= int(r.Hi); p++ {
			if !slices.Contains(allowed, uint16(p)) {
				return uint16(p), true
			}
		}
	}
	return 0, false
}

// onlyValue reports whether rs is the single value x.
func onlyValue(rs []filter.Range, x uint16) bool {
	return len(rs) == 1 && rs[0] == filter.Range{Lo: x, Hi: x}
}

// filterPrefix parses src / dst: a prefix without host bits, or an address.
func filterPrefix(s string) (netip.Prefix, string) {
	if strings.Contains(s, "/") {
		p, msg := prefix(s)
		return p.Masked(), msg
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Sprintf("%q is neither a prefix (e.g. 198.51.100.0/24) nor an IP address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), ""
}

func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

// filter checks the i-th [[filter]] and converts it (Ingress excepted).
func (v *validator) filter(i int, name string) filter.Rule {
	f := v.c.Filters[i]
	base := indexPath("filter", i) + "."
	set := func(k string) bool { return v.c.pos.isSet(base + k) }
	r := filter.Rule{Name: name, Origin: filter.FromConfig}
	ok := true

	// Prefixes.
	famKey := ""
	for _, p := range []struct {
		key, s string
		dst    *netip.Prefix
	}{{"src", f.Src, &r.Src}, {"dst", f.Dst, &r.Dst}} {
		if p.s == "" {
			if set(p.key) {
				v.errf(base+p.key, `must not be empty (a prefix such as "198.51.100.0/24" or an address; leave it out to match any)`)
				ok = false
			}
			continue
		}
		pfx, msg := filterPrefix(p.s)
		if msg != "" {
			v.errf(base+p.key, "%s", msg)
			ok = false
			continue
		}
		*p.dst = pfx
		if fam := family(pfx); r.Family == 0 {
			r.Family, famKey = fam, p.key
		} else if r.Family != fam {
			v.errf(base+p.key, "%s is IPv%d but %s %s is IPv%d: both must be of one family", pfx, fam, famKey, r.Src, r.Family)
			ok = false
		}
	}

	// Numeric fields.
	for _, fld := range []struct {
		key  string
		vals Values
		k    valueKind
		dst  *[]filter.Range
	}{
		{"protocol", f.Protocol, protocolKind, &r.Protocols},
		{"sport", f.SrcPort, portKind, &r.SrcPorts},
		{"dport", f.DstPort, portKind, &r.DstPorts},
		{"port", f.Port, portKind, &r.Ports},
		{"icmp-type", f.ICMPType, icmpKind, &r.ICMPTypes},
		{"icmp-code", f.ICMPCode, icmpCodeKind, &r.ICMPCodes},
		{"dscp", f.DSCP, dscpKind, &r.DSCP},
		{"length", f.Length, lengthKind, &r.Lengths},
	} {
		rs, good := v.ranges(base+fld.key, fld.vals, fld.k)
		*fld.dst = rs
		ok = ok && good
	}

	// ICMP against the family.
	wrongICMP := false
	switch {
	case r.Family == 6 && onlyValue(r.Protocols, 1):
		v.errf(base+"protocol", "icmp is IPv4's, and %s %s is IPv6: use icmpv6", famKey, prefixOf(r, famKey))
		wrongICMP = true
	case r.Family == 4 && onlyValue(r.Protocols, 58):
		v.errf(base+"protocol", "icmpv6 is IPv6's, and %s %s is IPv4: use icmp", famKey, prefixOf(r, famKey))
		wrongICMP = true
	}
	ok = ok && !wrongICMP

	// Keys that need a protocol of a kind.
	portKey, icmpKey := "", ""
	for _, k := range []struct {
		key string
		on  bool
	}{{"sport", f.SrcPort != nil}, {"dport", f.DstPort != nil}, {"port", f.Port != nil}} {
		if k.on && portKey == "" {
			portKey = k.key
		}
	}
	if f.ICMPType != nil {
		icmpKey = "icmp-type"
	} else if f.ICMPCode != nil {
		icmpKey = "icmp-code"
	}
	if portKey != "" && r.Protocols != nil {
		if p, bad := outside(r.Protocols, portProtocols...); bad {
			v.errf(base+portKey, "protocol %s has no ports (only tcp, udp and sctp have)", protocolName(p))
			ok = false
		}
	}
	if icmpKey != "" && r.Protocols != nil {
		allowed := []uint16{1, 58}
		switch r.Family {
		case 4:
			allowed = []uint16{1}
		case 6:
			allowed = []uint16{58}
		}
		if p, bad := outside(r.Protocols, allowed...); bad && !wrongICMP {
			if p == 1 || p == 58 {
				v.errf(base+icmpKey, "protocol %s is not the ICMP of IPv%d (%s %s)", protocolName(p), r.Family, famKey, prefixOf(r, famKey))
			} else {
				v.errf(base+icmpKey, "protocol %s has no ICMP types and codes (only icmp and icmpv6 have)", protocolName(p))
			}
			ok = false
		}
	}
	if f.TCPFlags != nil && r.Protocols != nil {
		if p, bad := outside(r.Protocols, 6); bad {
			v.errf(base+"tcp-flags", "protocol %s has no TCP flags (only tcp has)", protocolName(p))
			ok = false
		}
	}
	if icmpKey != "" && portKey != "" {
		v.errf(base+icmpKey, "no packet has both an ICMP header and ports: not with %s", portKey)
		ok = false
	}
	if icmpKey != "" && f.TCPFlags != nil {
		v.errf(base+icmpKey, "no packet has both an ICMP header and TCP flags: not with tcp-flags")
		ok = false
	}

	// TCP flags.
	if f.TCPFlags != nil {
		fl, good := v.tcpFlags(base+"tcp-flags", f.TCPFlags)
		r.TCPFlags, ok = fl, ok && good
	}

	// Fragments.
	if f.Fragment != nil {
		m, good := v.fragments(base+"fragment", f.Fragment)
		r.Fragments, ok = m, ok && good
		if good && m == filter.LaterFragment {
			l4 := portKey
			if l4 == "" {
				l4 = icmpKey
			}
			if l4 == "" && f.TCPFlags != nil {
				l4 = "tcp-flags"
			}
			if l4 != "" {
				v.errf(base+"fragment", `"later" fragments have no transport header, so %s never matches them`, l4)
				ok = false
			}
		}
	}

	// Ingress ports (resolved by FilterRules).
	if f.In != nil && len(f.In) == 0 {
		v.errf(base+"in", "must list at least one interface of dataplane.interfaces (or be left out: any port)")
		ok = false
	}
	if !v.list(base+"in", f.In, func(port string) string {
		if !slices.Contains(v.c.Dataplane.Interfaces, port) {
			return fmt.Sprintf("%q is not in dataplane.interfaces", port)
		}
		return ""
	}) {
		ok = false
	}

	// Action.
	kind, known := filterActions[f.Action]
	switch {
	case f.Action == "":
		v.missing(base+"action", " (drop, pass, accept, count or rate-limit)")
		ok = false
	case !known:
		v.errf(base+"action", "%q is not one of drop, pass, accept, count, rate-limit", f.Action)
		ok = false
	}
	r.Action.Kind = kind
	switch {
	case kind == filter.RateLimit && f.Rate == "" && !set("rate"):
		v.missing(base+"rate", ` with action = "rate-limit" (e.g. "10000pps", "100mbps")`)
		ok = false
	case kind == filter.RateLimit:
		pps, bps, msg := parseRate(f.Rate)
		if msg != "" {
			v.errf(base+"rate", "%s", msg)
			ok = false
		}
		r.Action.PPS, r.Action.BPS = pps, bps
	case known && (f.Rate != "" || set("rate")):
		v.errf(base+"rate", `only with action = "rate-limit", not %q`, f.Action)
		ok = false
	}
	if f.SetDSCP != "" || set("set-dscp") {
		d, good := dscpKind.one(strings.TrimSpace(string(f.SetDSCP)))
		switch {
		case !good:
			v.errf(base+"set-dscp", "%q is not a DSCP 0-63 nor a name (ef, af11..af43, cs0..cs7)", f.SetDSCP)
			ok = false
		case known && kind != filter.Accept && kind != filter.RateLimit:
			v.errf(base+"set-dscp", "only with action accept or rate-limit (it marks the packets they let through), not %q", f.Action)
			ok = false
		}
		r.Action.Remark, r.Action.DSCP = true, uint8(d)
	}
	if f.Continue {
		switch {
		case kind == filter.Count:
			v.errf(base+"continue", "count always continues: leave continue out")
			ok = false
		case known && kind != filter.Accept && kind != filter.RateLimit:
			v.errf(base+"continue", "only with action accept or rate-limit: %q is final", f.Action)
			ok = false
		case kind == filter.Accept && !r.Action.Remark:
			v.errf(base+"continue", "accept with continue = true and no set-dscp does nothing")
			ok = false
		}
		r.Action.Continue = true
	}

	if ok {
		if err := r.Validate(); err != nil {
			v.errf(indexPath("filter", i), "%v", err)
		}
	}
	return r
}

// prefixOf returns the rule's prefix named by key ("src" or "dst").
func prefixOf(r filter.Rule, key string) netip.Prefix {
	if key == "src" {
		return r.Src
	}
	return r.Dst
}

// tcpFlags parses tcp-flags alternatives ("syn,!ack").
func (v *validator) tcpFlags(key string, alts Strings) ([]filter.TCPFlags, bool) {
	if len(alts) == 0 {
		v.errf(key, `must list at least one alternative such as "syn,!ack" (or be left out)`)
		return nil, false
	}
	var out []filter.TCPFlags
	ok := true
	for j, alt := range alts {
		ekey := key
		if v.c.pos.isSet(indexPath(key, j)) {
			ekey = indexPath(key, j)
		}
		var fl filter.TCPFlags
		good := true
		for _, t := range strings.Split(alt, ",") {
			t = strings.TrimSpace(t)
			name, clear := strings.CutPrefix(t, "!")
			bit, known := tcpFlagNames[strings.ToLower(strings.TrimSpace(name))]
			switch {
			case !known:
				v.errf(ekey, "%q: %q is not a TCP flag (fin, syn, rst, psh, ack, urg, ece, cwr; '!' for clear, e.g. \"syn,!ack\")", alt, t)
				good = false
			case (fl.Set|fl.Clear)&bit != 0 && (fl.Set&bit != 0) == clear:
				v.errf(ekey, "%q: %s is both set and clear", alt, strings.TrimSpace(name))
				good = false
			case clear:
				fl.Clear |= bit
			default:
				fl.Set |= bit
			}
		}
		if !good {
			ok = false
			continue
		}
		if !slices.Contains(out, fl) {
			out = append(out, fl)
		}
	}
	return out, ok
}

var fragmentNames = map[string]uint8{
	"no":    filter.NotFragment,
	"first": filter.FirstFragment,
	"later": filter.LaterFragment,
	"yes":   filter.AnyFragment,
	"any":   filter.NotFragment | filter.AnyFragment,
}

// fragments parses the fragment key into a Rule.Fragments mask (0: any).
func (v *validator) fragments(key string, items Strings) (uint8, bool) {
	if len(items) == 0 {
		v.errf(key, `must list at least one of no, first, later, yes, any (or be left out)`)
		return 0, false
	}
	var m uint8
	ok := true
	for j, item := range items {
		ekey := key
		if v.c.pos.isSet(indexPath(key, j)) {
			ekey = indexPath(key, j)
		}
		for _, t := range strings.Split(item, ",") {
			b, known := fragmentNames[strings.TrimSpace(t)]
			if !known {
				v.errf(ekey, `%q is not one of no, first, later, yes (first or later), any`, t)
				ok = false
			}
			m |= b
		}
	}
	if m == filter.NotFragment|filter.AnyFragment {
		m = 0 // every packet
	}
	return m, ok
}

var rateRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+)$`)

// rateUnits: multiplier and whether the unit counts packets (else bits).
var rateUnits = map[string]struct {
	mult    float64
	packets bool
}{
	"pps": {1, true}, "kpps": {1e3, true}, "mpps": {1e6, true}, "gpps": {1e9, true},
	"bps": {1, false}, "kbps": {1e3, false}, "mbps": {1e6, false}, "gbps": {1e9, false}, "tbps": {1e12, false},
	"bit": {1, false}, "kbit": {1e3, false}, "mbit": {1e6, false}, "gbit": {1e9, false}, "tbit": {1e12, false},
}

// maxRate bounds rates (packets or bits per second): far beyond any link.
const maxRate = 1e15

// ParseRate parses a rate-limit rate: a number > 0 and a unit, packets
// per second (pps, kpps, mpps, gpps) or bits per second (bps or bit, with
// k, m, g, t: powers of 1000), case-insensitive: "10000pps", "1.5kpps",
// "100mbps", "1gbit". It returns packets per second, or bytes per second
// (bits / 8, rounded); exactly one is non-zero.
func ParseRate(s string) (pps, bytesPerSec uint64, err error) {
	pps, bytesPerSec, msg := parseRate(s)
	if msg != "" {
		return 0, 0, errors.New(msg)
	}
	return pps, bytesPerSec, nil
}

func parseRate(s string) (pps, bps uint64, msg string) {
	bad := fmt.Sprintf(`%q is not a rate: a number > 0 and pps, kpps, mpps, gpps (packets per second) or bps, kbps, mbps, gbps, tbps (bits per second; also kbit, mbit, ...), e.g. "10000pps", "1.5kpps", "100mbps"`, s)
	m := rateRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, 0, bad
	}
	u, ok := rateUnits[strings.ToLower(m[2])]
	n, err := strconv.ParseFloat(m[1], 64)
	if !ok || err != nil {
		return 0, 0, bad
	}
	x := n * u.mult
	switch {
	case x > maxRate:
		return 0, 0, fmt.Sprintf("%q is beyond any link", s)
	case u.packets:
		if x = math.Round(x); x < 1 {
			return 0, 0, fmt.Sprintf("%q: the rate must be at least 1 packet per second", s)
		}
		return uint64(x), 0, ""
	default:
		if x = math.Round(x / 8); x < 1 {
			return 0, 0, fmt.Sprintf("%q: the rate must be at least 8 bits (1 byte) per second", s)
		}
		return 0, uint64(x), ""
	}
}
