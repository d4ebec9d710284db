package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

const (
	maxASN      = math.MaxUint32 - 1 // 4294967295 is reserved (RFC 7300)
	maxHoldTime = math.MaxUint16     // the OPEN message field is 16 bits
	// Idle hold after a reset (s); 0 takes the default.
	maxIdleHoldAfterReset = 3600
	maxRestart            = 7 * 24 * 3600 // a week: beyond it, a typo
	// maxGRTime is the largest graceful-restart time: a 12-bit field of
	// the capability (RFC 4724 3).
	maxGRTime = 4095
	// maxLLGRTime is the largest long-lived stale time: 24 bits (RFC 9494 3).
	maxLLGRTime = 1<<24 - 1
	// BFD intervals (ms): the wire carries microseconds in 32 bits; below
	// 10 ms a Go timer on a loaded host misfires.
	minBFDInterval, maxBFDInterval = 10, 60000
)

// Validate checks the whole config and returns every problem joined with
// errors.Join, each an *[Error] naming file, line and key. Load and Parse
// call it after applying defaults.
func (c *Config) Validate() error {
	return joinSorted(c.problems())
}

func (c *Config) problems() []error {
	v := &validator{c: c}
	v.router()
	v.api()
	v.dataplane()
	v.fib()
	v.mirrorTables()
	v.runtime()
	v.bgp()
	v.networks()
	v.sets()
	v.policies()
	v.neighbors()
	v.vrfs()
	v.rpki()
	v.bmp()
	v.policyRoutes()
	v.urpf()
	v.filters()
	return v.errs
}

// joinSorted joins errs in file order (problems without a line first).
func joinSorted(errs []error) error {
	line := func(err error) int {
		var e *Error
		if errors.As(err, &e) {
			return e.Line
		}
		return 0
	}
	sort.SliceStable(errs, func(i, j int) bool { return line(errs[i]) < line(errs[j]) })
	return errors.Join(errs...)
}

type validator struct {
	c    *Config
	errs []error
}

// errf records a problem with key (a key path, see positions).
// A value a neighbor inherits from its peer group is reported at the
// group's key, once however many members share it.
func (v *validator) errf(key, format string, args ...any) {
	if v.c.pos != nil {
		for p := key; p != ""; p = parentPath(p) {
			if g, ok := v.c.pos.inherited[p]; ok {
				key = g + key[len(p):] // families[1] too
				break
			}
		}
	}
	line, _ := v.c.pos.line(key)
	e := &Error{File: v.c.File, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
	for _, o := range v.errs {
		if x, ok := o.(*Error); ok && *x == *e {
			return
		}
	}
	v.errs = append(v.errs, e)
}

// missing records a required key that is absent, at the line of its table.
func (v *validator) missing(key, why string) {
	line, _ := v.c.pos.line(key)
	msg := "must be set" + why
	if line == 0 && v.c.pos != nil {
		msg = "missing; " + msg
	}
	v.errs = append(v.errs, &Error{File: v.c.File, Line: line, Key: key, Msg: msg})
}

func (v *validator) router() {
	r := v.c.Router
	switch {
	case r.ASN == 0 && (len(v.c.Neighbors) > 0 || len(v.c.Networks) > 0 || len(v.c.DynamicNeighbors) > 0):
		v.missing("router.asn", " (1..4294967294) when [[neighbor]], [[dynamic-neighbor]] or [[network]] is configured; asn = 0 disables BGP")
	case r.ASN > maxASN:
		v.errf("router.asn", "must be 1..%d (%d is reserved)", uint32(maxASN), r.ASN)
	}
	if r.RouterID == "" {
		if r.ASN != 0 {
			v.missing("router.router-id", " (an IPv4 address) when asn is set")
		}
		return
	}
	a, err := netip.ParseAddr(r.RouterID)
	if err != nil || !a.Is4() || a.IsUnspecified() {
		v.errf("router.router-id", "%q is not a non-zero IPv4 address", r.RouterID)
	}
}

func (v *validator) api() {
	if path, ok := v.c.API.GRPCSocket(); ok {
		if !filepath.IsAbs(path) || path != filepath.Clean(path) || strings.HasSuffix(path, "/") {
			v.errf("api.grpc-listen", "%q: the socket path after unix:// must be absolute and clean (e.g. %q)", v.c.API.GRPCListen, DefaultGRPCListen)
		}
	} else if v.c.API.GRPCListen != "" {
		v.hostPort("api.grpc-listen", v.c.API.GRPCListen, `, or unix:///PATH; "" disables the gRPC API`)
	}
	v.hostPort("api.metrics-listen", v.c.API.MetricsListen, "")
}

func (v *validator) hostPort(key, s, hint string) {
	host, port, err := net.SplitHostPort(s)
	if err == nil && strings.ContainsFunc(host, unicode.IsSpace) {
		err = errors.New("bad host")
	}
	if err == nil {
		var p uint64
		p, err = strconv.ParseUint(port, 10, 16)
		if err == nil && p == 0 {
			err = errors.New("port 0")
		}
	}
	if err != nil {
		v.errf(key, "%q is not HOST:PORT with a port 1..65535 (e.g. \"127.0.0.1:9179\", \"[::1]:9179\", \":9179\")%s", s, hint)
	}
}

func (v *validator) dataplane() {
	d := v.c.Dataplane
	switch d.XDPMode {
	case XDPModeNative, XDPModeGeneric, XDPModeAuto:
	default:
		v.errf("dataplane.xdp-mode", "%q is not one of native, generic, auto", d.XDPMode)
	}
	switch d.Lookup {
	case LookupCompiled, LookupTrie:
	default:
		v.errf("dataplane.lookup", "%q is not one of compiled, trie", d.Lookup)
	}
	v.list("dataplane.interfaces", d.Interfaces, ifnameProblem)
	if d.PinPath != "" && !filepath.IsAbs(d.PinPath) {
		v.errf("dataplane.pin-path", `%q is not an absolute path ("" disables pinning)`, d.PinPath)
	}
	if d.HashSeed < 0 || d.HashSeed > math.MaxUint32 {
		v.errf("dataplane.hash-seed", "must be 0 (random, kept in the pinned dataplane) or 1..4294967295, got %d", d.HashSeed)
	}
	if d.KeepOnExit && d.PinPath == "" {
		v.errf("dataplane.keep-on-exit", `needs dataplane.pin-path: without pins XDP stops with the daemon`)
	}
	if d.KeepOnExit && !v.c.FIB.KeepRoutesOnExit {
		v.errf("dataplane.keep-on-exit", `XDP keeps forwarding after exit, so the kernel must keep its routes too: set fib.keep-routes-on-exit = true, or keep-on-exit = false`)
	}
}

// ifnameProblem applies the kernel's dev_valid_name rules.
func ifnameProblem(name string) string {
	switch {
	case name == "":
		return "interface name must not be empty"
	case len(name) >= 16:
		return fmt.Sprintf("interface name %q is longer than 15 bytes", name)
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a valid interface name", name)
	case strings.ContainsAny(name, "/:") || strings.ContainsFunc(name, unicode.IsSpace):
		return fmt.Sprintf("interface name %q contains '/', ':' or whitespace", name)
	}
	return ""
}

func (v *validator) fib() {
	f := v.c.FIB
	switch {
	case f.Table == 255:
		v.errf("fib.table", "255 is the kernel's local table; use 254 (main) or a table of your own")
	case f.Table < 1 || int64(f.Table) > math.MaxUint32:
		v.errf("fib.table", "must be 1..4294967295 (not 0 or 255), got %d", f.Table)
	}
	if f.Metric < 0 || int64(f.Metric) > math.MaxUint32 {
		v.errf("fib.metric", "must be 0..4294967295, got %d", f.Metric)
	}
	switch p := f.Protocol; {
	case p >= 0 && p <= 4:
		v.errf("fib.protocol", "%d is reserved by the kernel (0 unspec, 1 redirect, 2 kernel, 3 boot, 4 static); use 5..255, default %d", p, DefaultFIBProtocol)
	case p == RouteProtocolBGP:
		v.errf("fib.protocol", "%d is \"bgp\", used by FRR and BIRD for their routes; use another, default %d", p, DefaultFIBProtocol)
	case p < 0 || p > 255:
		v.errf("fib.protocol", "must be 5..255 (a kernel route protocol), got %d", p)
	}
}

func (v *validator) runtime() {
	r := v.c.Runtime
	if r.MemoryLimit != 0 && r.MemoryLimit < 64 {
		v.errf("runtime.memory-limit", "must be 0 (80%% of the memory available) or at least 64 MiB, got %d", r.MemoryLimit)
	}
	if r.MemoryLimit > 1<<30 {
		v.errf("runtime.memory-limit", "is in MiB: %d is more than a petabyte", r.MemoryLimit)
	}
	if r.GCPercent < 1 || r.GCPercent > 10000 {
		v.errf("runtime.gc-percent", "must be 1..10000, got %d", r.GCPercent)
	}
}

func (v *validator) bgp() {
	b := v.c.BGP
	if b.ListenPort != -1 && (b.ListenPort < 1 || b.ListenPort > 65535) {
		v.errf("bgp.listen-port", "must be 1..65535, or -1 not to listen; got %d", b.ListenPort)
	}
	for i, a := range b.ListenAddresses {
		if _, err := netip.ParseAddr(a); err != nil {
			v.errf(indexPath("bgp.listen-addresses", i), "%q is not an IP address", a)
		}
	}
	v.gracefulRestart("bgp.", b.RestartTime, b.LongLivedStaleTime)
	v.bogonFilter()
}

// bogonFilter checks the bogon filter and blackhole keys of [bgp].
func (v *validator) bogonFilter() {
	b := v.c.BGP
	if b.BogonMaxLengthV4 < 8 || b.BogonMaxLengthV4 > 32 {
		v.errf("bgp.bogon-max-length-v4", "must be 8..32 (longer IPv4 prefixes are rejected by bogon-filter), got %d", b.BogonMaxLengthV4)
	}
	if b.BogonMaxLengthV6 < 16 || b.BogonMaxLengthV6 > 128 {
		v.errf("bgp.bogon-max-length-v6", "must be 16..128 (longer IPv6 prefixes are rejected by bogon-filter), got %d", b.BogonMaxLengthV6)
	}
	v.list("bgp.blackhole-communities", b.BlackholeCommunities, communityProblem)
	if len(b.BlackholeCommunities) > 0 {
		return
	}
	for i, n := range v.c.Neighbors {
		if n.AcceptBlackhole {
			v.errf(indexPath("neighbor", i)+".accept-blackhole", "needs at least one community in bgp.blackhole-communities (default [%q])", CommunityBlackhole)
		}
	}
}

// gracefulRestart checks restart-time and long-lived-stale-time under base.
func (v *validator) gracefulRestart(base string, restart, llgr uint64) {
	if restart < 1 || restart > maxGRTime {
		v.errf(base+"restart-time", "must be 1..%d seconds (12 bits in the capability), got %d", maxGRTime, restart)
	}
	if llgr > maxLLGRTime {
		v.errf(base+"long-lived-stale-time", "must be 0 (off) or up to %d seconds (24 bits in the capability), got %d", maxLLGRTime, llgr)
	}
}

// prefix parses a CIDR prefix that must have no host bits set.
func prefix(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Sprintf("%q is not a prefix (want ADDRESS/LENGTH, e.g. 10.0.0.0/8 or 2001:db8::/32)", s)
	}
	if p != p.Masked() {
		return p, fmt.Sprintf("%q has host bits set; the prefix is %s", s, p.Masked())
	}
	return p, ""
}

func (v *validator) networks() {
	seen := map[netip.Prefix]int{}
	for i, n := range v.c.Networks {
		key := indexPath("network", i) + ".prefix"
		if n.Prefix == "" {
			v.missing(key, "")
			continue
		}
		p, msg := prefix(n.Prefix)
		if msg != "" {
			v.errf(key, "%s", msg)
			continue
		}
		if j, dup := seen[p]; dup {
			v.errf(key, "%s is already network[%d]", p, j)
			continue
		}
		seen[p] = i
	}
}

// setNames checks one kind of set and returns the names defined.
func (v *validator) setNames(kind string, names []string) map[string]bool {
	defined := map[string]bool{}
	first := map[string]int{}
	for i, name := range names {
		key := indexPath(kind, i) + ".name"
		switch j, dup := first[name]; {
		case name == "":
			v.missing(key, "")
		case dup:
			v.errf(key, "%q is already the name of %s[%d]", name, kind, j)
		default:
			first[name] = i
		}
		defined[name] = true
	}
	return defined
}

func (v *validator) sets() {
	for i, s := range v.c.PrefixSets {
		for j, e := range s.Prefixes {
			if msg := prefixSetEntryProblem(e); msg != "" {
				v.errf(indexPath(indexPath("prefix-set", i)+".prefixes", j), "%s", msg)
			}
		}
	}
	for i, s := range v.c.NeighborSets {
		for j, e := range s.Addresses {
			if _, err := ParseNeighborSetEntry(e); err != nil {
				v.errf(indexPath(indexPath("neighbor-set", i)+".addresses", j), "%v", err)
			}
		}
	}
	for i, s := range v.c.CommunitySets {
		for j, e := range s.Communities {
			if msg := communityMatchProblem(e); msg != "" {
				v.errf(indexPath(indexPath("community-set", i)+".communities", j), "%s", msg)
			}
		}
	}
}

// ParsePrefixSetEntry parses a prefix-set entry, "PREFIX" (that length
// only) or "PREFIX MIN..MAX"; the message names what is wrong.
func ParsePrefixSetEntry(e string) (p netip.Prefix, min, max int, err error) {
	f := strings.Fields(e)
	if len(f) == 0 || len(f) > 2 {
		return p, 0, 0, fmt.Errorf(`%q is not "PREFIX" or "PREFIX MIN..MAX" (e.g. "10.0.0.0/8 16..24")`, e)
	}
	p, msg := prefix(f[0])
	if msg != "" {
		return p, 0, 0, errors.New(msg)
	}
	if len(f) == 1 {
		return p, p.Bits(), p.Bits(), nil
	}
	lo, hi, ok := strings.Cut(f[1], "..")
	min, err1 := strconv.Atoi(lo)
	max, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil {
		return p, 0, 0, fmt.Errorf(`%q: mask-length range %q is not MIN..MAX (e.g. "16..24")`, e, f[1])
	}
	if bits := p.Addr().BitLen(); min < p.Bits() || max > bits || min > max {
		return p, 0, 0, fmt.Errorf("%q: mask-length range must satisfy %d <= MIN <= MAX <= %d", e, p.Bits(), bits)
	}
	return p, min, max, nil
}

func prefixSetEntryProblem(e string) string {
	if _, _, _, err := ParsePrefixSetEntry(e); err != nil {
		return err.Error()
	}
	return ""
}

// ParseNeighborSetEntry parses a neighbor-set entry, an address or a
// prefix, into a prefix (an address is a host prefix).
func ParseNeighborSetEntry(e string) (netip.Prefix, error) {
	if strings.Contains(e, "/") {
		p, msg := prefix(e)
		if msg != "" {
			return p, errors.New(msg)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(e)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a prefix", e)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

var (
	communityRE = regexp.MustCompile(`^([0-9]+):([0-9]+)$`)
	// Well-known communities (RFC 1997, 7999, 8326, 8642, 9494) by the
	// names GoBGP accepts.
	wellKnownCommunities = map[string]bool{
		"no-export": true, "no-advertise": true, "no-export-subconfed": true, "no-peer": true,
		"blackhole": true, "graceful-shutdown": true, "accept-own": true, "llgr-stale": true, "no-llgr": true,
	}
)

// communityProblem checks a standard community "ASN:VAL" or a well-known
// name.
func communityProblem(s string) string {
	if wellKnownCommunities[s] {
		return ""
	}
	m := communityRE.FindStringSubmatch(s)
	if m != nil {
		_, err1 := strconv.ParseUint(m[1], 10, 16)
		_, err2 := strconv.ParseUint(m[2], 10, 16)
		if err1 == nil && err2 == nil {
			return ""
		}
	}
	return fmt.Sprintf(`%q is not a community "ASN:VALUE" with both parts 0..65535, nor a well-known name such as no-export`, s)
}

// communityMatchProblem checks a community-set entry: a community, or a
// regular expression (anything with a regexp metacharacter) matched against
// "ASN:VALUE".
func communityMatchProblem(s string) string {
	if strings.ContainsAny(s, `\.^$|?*+()[]{}`) {
		if _, err := regexp.Compile(s); err != nil {
			return fmt.Sprintf("%q is not a valid regular expression: %v", s, err)
		}
		return ""
	}
	return communityProblem(s)
}

func (v *validator) policies() {
	c := v.c
	names := make([]string, len(c.Policies))
	for i, p := range c.Policies {
		names[i] = p.Name
	}
	v.setNames("policy", names)
	for i, p := range c.Policies {
		if p.Name == PolicyAcceptAll || p.Name == PolicyRejectAll {
			v.errf(indexPath("policy", i)+".name", "%q is a built-in policy and cannot be redefined", p.Name)
		}
	}

	sets := func(kind string, n int, name func(int) string) map[string]bool {
		names := make([]string, n)
		for i := range names {
			names[i] = name(i)
		}
		return v.setNames(kind, names)
	}
	prefixSets := sets("prefix-set", len(c.PrefixSets), func(i int) string { return c.PrefixSets[i].Name })
	neighborSets := sets("neighbor-set", len(c.NeighborSets), func(i int) string { return c.NeighborSets[i].Name })
	communitySets := sets("community-set", len(c.CommunitySets), func(i int) string { return c.CommunitySets[i].Name })

	for i, p := range c.Policies {
		stmtNames := map[string]int{}
		for j, s := range p.Statements {
			base := indexPath(indexPath("policy", i)+".statement", j) + "."
			if s.Name != "" {
				if k, dup := stmtNames[s.Name]; dup {
					v.errf(base+"name", "%q is already the name of statement[%d] of this policy", s.Name, k)
				} else {
					stmtNames[s.Name] = j
				}
			}
			ref := func(key, name, kind string, defined map[string]bool) {
				if name != "" && !defined[name] {
					v.errf(base+key, "no [[%s]] is named %q", kind, name)
				}
			}
			ref("match-prefix-set", s.MatchPrefixSet, "prefix-set", prefixSets)
			ref("match-neighbor-set", s.MatchNeighborSet, "neighbor-set", neighborSets)
			ref("match-community-set", s.MatchCommunitySet, "community-set", communitySets)
			switch s.MatchSetOptions {
			case "", MatchAny, MatchInvert:
			default:
				v.errf(base+"match-set-options", "%q is not one of any, invert", s.MatchSetOptions)
			}
			switch s.Action {
			case ActionAccept, ActionReject, ActionNext:
			case "":
				v.missing(base+"action", " (accept, reject or next)")
			default:
				v.errf(base+"action", "%q is not one of accept, reject, next", s.Action)
			}
			if s.SetMED < 0 || s.SetMED > math.MaxUint32 {
				v.errf(base+"set-med", "must be 0..4294967295 (0: leave MED unchanged), got %d", s.SetMED)
			}
			for k, com := range s.AddCommunity {
				if msg := communityProblem(com); msg != "" {
					v.errf(indexPath(base+"add-community", k), "%s", msg)
				}
			}
		}
	}
}

func (v *validator) neighbors() {
	c := v.c
	policies := map[string]bool{PolicyAcceptAll: true, PolicyRejectAll: true}
	for _, p := range c.Policies {
		policies[p.Name] = true
	}
	v.peerGroups(policies)
	v.dynamicNeighbors()
	seen := map[netip.Addr]int{}
	seenIf := map[string]int{}
	for i := range c.Neighbors {
		n := &c.Neighbors[i]
		base := indexPath("neighbor", i) + "."
		addr, err := netip.ParseAddr(n.Address)
		switch {
		case n.Interface != "":
			v.unnumbered(base, i, *n, seenIf)
		case n.Address == "":
			v.missing(base+"address", " (or interface, for an unnumbered neighbor)")
		case err != nil:
			v.errf(base+"address", "%q is not an IP address", n.Address)
		case addr.IsUnspecified() || addr.IsMulticast():
			v.errf(base+"address", "%s is not a unicast address", addr)
		default:
			if j, dup := seen[addr]; dup {
				v.errf(base+"address", "%s is already neighbor[%d]", addr, j)
			} else {
				seen[addr] = i
			}
		}

		switch {
		case n.PeerASN == 0 && !c.pos.isSet(base+"peer-asn") && n.PeerGroup != "":
			v.missing(base+"peer-asn", fmt.Sprintf(" (here or in its [[peer-group]] %q)", n.PeerGroup))
		case n.PeerASN == 0 && !c.pos.isSet(base+"peer-asn"):
			v.missing(base+"peer-asn", "")
		default:
			v.asn(base+"peer-asn", n.PeerASN)
		}
		v.neighborKeys(base, n, addr, policies)
	}
}

// asn checks a peer AS number.
func (v *validator) asn(key string, asn uint32) {
	if asn == 0 || asn > maxASN {
		v.errf(key, "must be 1..%d, got %d", uint32(maxASN), asn)
	}
}

// neighborKeys checks the keys of a neighbor or a peer group (addr
// invalid) but address and peer-asn; base is its key path with the dot.
func (v *validator) neighborKeys(base string, n *Neighbor, addr netip.Addr, policies map[string]bool) {
	c := v.c
	if n.LocalAddress != "" {
		la, err := netip.ParseAddr(n.LocalAddress)
		switch {
		case err != nil:
			v.errf(base+"local-address", "%q is not an IP address", n.LocalAddress)
		case addr.IsValid() && la.Unmap().Is4() != addr.Unmap().Is4():
			v.errf(base+"local-address", "%s is not of the same address family as address %s", la, addr)
		}
	}

	if n.Families != nil && len(n.Families) == 0 {
		v.errf(base+"families", "must list at least one of ipv4-unicast, ipv6-unicast (or be left out)")
	}
	fams := map[string]bool{}
	for j, f := range n.Families {
		key := indexPath(base+"families", j)
		switch {
		case f != FamilyIPv4Unicast && f != FamilyIPv6Unicast && f != FamilyIPv4Flowspec && f != FamilyIPv6Flowspec:
			v.errf(key, "%q is not one of ipv4-unicast, ipv6-unicast, ipv4-flowspec, ipv6-flowspec", f)
		case (f == FamilyIPv4Flowspec || f == FamilyIPv6Flowspec) && !n.Flowspec:
			v.errf(key, "%q needs flowspec = true (Flowspec routes are accepted only from neighbors that have it)", f)
		case fams[f]:
			v.errf(key, "%q is listed twice", f)
		}
		fams[f] = true
	}

	for _, p := range []struct{ key, name string }{{"import", n.Import}, {"export", n.Export}} {
		if !policies[p.name] {
			v.errf(base+p.key, "%q is not a defined [[policy]] nor accept-all / reject-all", p.name)
		}
	}

	if n.Multihop > 255 {
		v.errf(base+"multihop", "must be 0..255 (a TTL), got %d", n.Multihop)
	}
	if n.Port < 1 || n.Port > 65535 {
		v.errf(base+"port", "must be 1..65535, got %d", n.Port)
	}
	switch {
	case n.HoldTime != 0 && (n.HoldTime < 3 || n.HoldTime > maxHoldTime):
		v.errf(base+"hold-time", "must be 0 (no keepalives) or 3..%d seconds, got %d", maxHoldTime, n.HoldTime)
	case n.HoldTime == 0 && n.KeepaliveInterval != 0:
		v.errf(base+"keepalive-interval", "must be 0 when hold-time is 0, got %d", n.KeepaliveInterval)
	case n.HoldTime != 0 && n.KeepaliveInterval >= n.HoldTime:
		v.errf(base+"keepalive-interval", "must be less than hold-time (%d), got %d", n.HoldTime, n.KeepaliveInterval)
	}
	if n.IdleHoldAfterReset > maxIdleHoldAfterReset {
		v.errf(base+"idle-hold-after-reset", "must be 1..%d seconds, got %d", maxIdleHoldAfterReset, n.IdleHoldAfterReset)
	}
	if n.ConnectRetry == 0 {
		v.errf(base+"connect-retry", "must be at least 1 second")
	}
	if n.MaxPrefixesWarning < 1 || n.MaxPrefixesWarning > 100 {
		v.errf(base+"max-prefixes-warning", "must be 1..100 (percent of max-prefixes), got %d", n.MaxPrefixesWarning)
	}
	if n.MaxPrefixesRestart > maxRestart {
		v.errf(base+"max-prefixes-restart", "must be 0 (stay down until enabled) or up to %d seconds, got %d", maxRestart, n.MaxPrefixesRestart)
	}
	v.gracefulRestart(base, n.RestartTime, n.LongLivedStaleTime)
	if n.LongLivedStaleTime > 0 && !n.GracefulRestart {
		v.errf(base+"long-lived-stale-time", "needs graceful-restart = true (long-lived graceful restart extends it), got %d with graceful-restart = false", n.LongLivedStaleTime)
	}
	for _, b := range []struct {
		key string
		ms  uint64
	}{{"bfd-min-rx", n.BFDMinRx}, {"bfd-min-tx", n.BFDMinTx}} {
		if b.ms < minBFDInterval || b.ms > maxBFDInterval {
			v.errf(base+b.key, "must be %d..%d milliseconds, got %d", minBFDInterval, maxBFDInterval, b.ms)
		}
	}
	if n.BFDMultiplier < 1 || n.BFDMultiplier > 255 {
		v.errf(base+"bfd-multiplier", "must be 1..255 (missed packets before BFD declares the neighbor down), got %d", n.BFDMultiplier)
	}
	if n.BFD && n.Multihop > 0 {
		v.errf(base+"bfd", "is single-hop BFD (RFC 5881): not with multihop = %d", n.Multihop)
	}
	if n.VRF != "" {
		if !slices.ContainsFunc(c.VRFs, func(x VRF) bool { return x.Name == n.VRF }) {
			v.errf(base+"vrf", "no [[vrf]] is named %q", n.VRF)
		}
		if n.Flowspec {
			v.errf(base+"flowspec", "is not supported for a neighbor in a VRF (vrf = %q)", n.VRF)
		}
		if c.BGP.PIC {
			v.errf(base+"vrf", "not with bgp.pic = true: backup paths are computed for the global instance only")
		}
	}
}

// unnumbered checks an unnumbered neighbor (interface): its addresses are
// the link-local ones of the link, found at run time.
func (v *validator) unnumbered(base string, i int, n Neighbor, seen map[string]int) {
	if p := ifnameProblem(n.Interface); p != "" {
		v.errf(base+"interface", "%s", p)
		return
	}
	if j, dup := seen[n.Interface]; dup {
		v.errf(base+"interface", "%q is already neighbor[%d] (one unnumbered neighbor per link)", n.Interface, j)
	} else {
		seen[n.Interface] = i
	}
	if n.Address != "" {
		v.errf(base+"address", "not with interface = %q: an unnumbered neighbor's address is the link-local address found on the interface", n.Interface)
	}
	if n.LocalAddress != "" {
		v.errf(base+"local-address", "not with interface = %q: the session uses the interface's link-local address", n.Interface)
	}
	if n.Multihop > 0 {
		v.errf(base+"multihop", "not with interface = %q: an unnumbered neighbor is directly connected, got %d", n.Interface, n.Multihop)
	}
}

// list checks each entry of the list at key with problem ("" if fine)
// and refuses entries listed twice; it reports whether all are fine.
func (v *validator) list(key string, items []string, problem func(string) string) bool {
	ok := true
	seen := map[string]int{}
	for i, it := range items {
		k := indexPath(key, i)
		if msg := problem(it); msg != "" {
			v.errf(k, "%s", msg)
			ok = false
		} else if j, dup := seen[it]; dup {
			v.errf(k, "%q is listed twice (also %s)", it, indexPath(key, j))
			ok = false
		} else {
			seen[it] = i
		}
	}
	return ok
}

// Reserved kernel tables a VRF may not use.
const (
	tableDefault = 253
	tableMain    = 254
	tableLocal   = 255
)

// vrfs checks the [[vrf]] instances: unique names, tables, RDs and rule
// priorities; ports from dataplane.interfaces, each in one instance.
func (v *validator) vrfs() {
	c := v.c
	names := make([]string, len(c.VRFs))
	for i, x := range c.VRFs {
		names[i] = x.Name
	}
	v.setNames("vrf", names)
	ports := map[string]bool{}
	for _, p := range c.Dataplane.Interfaces {
		ports[p] = true
	}
	tables := map[int]int{}
	rds := map[string]int{}
	portOf := map[string]int{}
	prios := map[int]int{} // priority (and priority+1) → vrf index
	for i, x := range c.VRFs {
		base := indexPath("vrf", i) + "."
		switch t := x.Table; {
		case t == 0 && !c.pos.isSet(base+"table"):
			v.missing(base+"table", " (the instance's kernel table, e.g. 100)")
		case t < 1 || t > math.MaxInt32:
			v.errf(base+"table", "must be 1..%d, got %d", math.MaxInt32, t)
		case t == tableDefault || t == tableMain || t == tableLocal:
			v.errf(base+"table", "%d is one of the kernel's tables (253 default, 254 main, 255 local); use a table of its own", t)
		case t == c.FIB.Table:
			v.errf(base+"table", "%d is fib.table, the global instance's table", t)
		default:
			if j, dup := tables[t]; dup {
				v.errf(base+"table", "%d is already the table of vrf[%d]", t, j)
			} else {
				tables[t] = i
			}
		}
		if v.list(base+"interfaces", x.Interfaces, ifnameProblem) {
			for j, p := range x.Interfaces {
				key := indexPath(base+"interfaces", j)
				switch k, dup := portOf[p]; {
				case !ports[p]:
					v.errf(key, "%q is not a router port (dataplane.interfaces)", p)
				case dup:
					v.errf(key, "%q is already a port of vrf[%d]: a port is in one instance", p, k)
				default:
					portOf[p] = i
				}
			}
		}
		switch rd := x.RouteDistinguisher; {
		case rd == "" && c.Router.ASN != 0:
			v.errf(base+"route-distinguisher", "must be set: the default ASN:TABLE does not fit (a 4-byte router.asn leaves 16 bits for the table)")
		case rd != "":
			if _, err := ParseRouteDistinguisher(rd); err != nil {
				v.errf(base+"route-distinguisher", "%v", err)
			} else if j, dup := rds[rd]; dup {
				v.errf(base+"route-distinguisher", "%q is already the route distinguisher of vrf[%d]", rd, j)
			} else {
				rds[rd] = i
			}
		}
		switch p := x.RulePriority; {
		case p < 1 || p > MaxVRFRulePriority:
			v.errf(base+"rule-priority", "must be 1..%d (it and the next priority, before the main table's rule at 32766), got %d", MaxVRFRulePriority, p)
		default:
			if j, dup := prios[p]; dup {
				v.errf(base+"rule-priority", "%d overlaps vrf[%d]'s rules (each instance takes its priority and the next)", p, j)
			} else if j, dup := prios[p+1]; dup {
				v.errf(base+"rule-priority", "%d overlaps vrf[%d]'s rules (each instance takes its priority and the next)", p, j)
			} else {
				prios[p], prios[p+1] = i, i
			}
		}
	}
}

// RouteDistinguisher is a parsed route distinguisher (RFC 4364 4.2).
type RouteDistinguisher struct {
	Type     int    // 0: 2-byte ASN:32 bits; 1: IPv4:16 bits; 2: 4-byte ASN:16 bits
	Admin    string // the ASN or the address
	Assigned uint32
}

// ParseRouteDistinguisher parses "ASN:N" or "IPv4:N".
func ParseRouteDistinguisher(s string) (RouteDistinguisher, error) {
	bad := fmt.Errorf(`%q is not a route distinguisher "ASN:N" or "IPv4:N" (e.g. "65000:100", "192.0.2.1:100")`, s)
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return RouteDistinguisher{}, bad
	}
	n, err := strconv.ParseUint(b, 10, 32)
	if err != nil {
		return RouteDistinguisher{}, bad
	}
	if ip, err := netip.ParseAddr(a); err == nil {
		if !ip.Is4() || n > 0xffff {
			return RouteDistinguisher{}, fmt.Errorf("%q: an IPv4 route distinguisher is IPv4:N with N 0..65535", s)
		}
		return RouteDistinguisher{Type: 1, Admin: ip.String(), Assigned: uint32(n)}, nil
	}
	asn, err := strconv.ParseUint(a, 10, 32)
	switch {
	case err != nil:
		return RouteDistinguisher{}, bad
	case asn <= 0xffff:
		return RouteDistinguisher{Type: 0, Admin: a, Assigned: uint32(n)}, nil
	case n > 0xffff:
		return RouteDistinguisher{}, fmt.Errorf("%q: with a 4-byte ASN the number is 0..65535", s)
	}
	return RouteDistinguisher{Type: 2, Admin: a, Assigned: uint32(n)}, nil
}

// VRFOf returns the [[vrf]] named name, or nil.
func (c *Config) VRFOf(name string) *VRF {
	for i := range c.VRFs {
		if c.VRFs[i].Name == name {
			return &c.VRFs[i]
		}
	}
	return nil
}

// PortTables maps each router port of a [[vrf]] to the instance's table.
func (c *Config) PortTables() map[string]int {
	m := map[string]int{}
	for _, x := range c.VRFs {
		for _, p := range x.Interfaces {
			m[p] = x.Table
		}
	}
	return m
}

// rpki checks the [[rpki]] caches and the [bgp] keys that use them.
func (v *validator) rpki() {
	seen := map[netip.AddrPort]int{}
	for i, r := range v.c.RPKI {
		base := indexPath("rpki", i) + "."
		v.stationAddrPort(base, "rpki", i, r.Address, r.Port, seen)
		if r.Lifetime < 1 || r.Lifetime > maxRestart {
			v.errf(base+"lifetime", "must be 1..%d seconds (how long a lost cache's VRPs are kept), got %d", maxRestart, r.Lifetime)
		}
	}
	if len(v.c.RPKI) > 0 && !v.c.BGPEnabled() {
		v.errf("rpki[0]", "needs BGP: router.asn is 0 (BGP off), so no route would be validated")
	}
	if v.c.BGP.RPKIValidLocalPref != 0 && len(v.c.RPKI) == 0 {
		v.errf("bgp.rpki-valid-local-pref", "needs at least one [[rpki]] cache (without one no route is valid)")
	}
}

// bmp checks the [[bmp]] stations.
func (v *validator) bmp() {
	if len(v.c.BMP) > 0 && !v.c.BGPEnabled() {
		v.errf("bmp[0]", "needs BGP: router.asn is 0 (BGP off), so there is nothing to monitor")
	}
	seen := map[netip.AddrPort]int{}
	for i, b := range v.c.BMP {
		base := indexPath("bmp", i) + "."
		v.stationAddrPort(base, "bmp", i, b.Address, b.Port, seen)
		switch b.RouteMonitoring {
		case BMPPrePolicy, BMPPostPolicy, BMPLocalRIB, BMPAll:
		default:
			v.errf(base+"route-monitoring", "%q: must be %s, %s, %s or %s", b.RouteMonitoring, BMPPrePolicy, BMPPostPolicy, BMPLocalRIB, BMPAll)
		}
		if b.StatisticsInterval > math.MaxUint16 {
			v.errf(base+"statistics-interval", "must be 0..%d seconds, got %d", math.MaxUint16, b.StatisticsInterval)
		}
	}
}

// stationAddrPort checks the address and port of an [[rpki]] or [[bmp]]
// entry (base ends in "."), each pair at most once.
func (v *validator) stationAddrPort(base, kind string, i int, address string, port uint32, seen map[netip.AddrPort]int) {
	a, err := netip.ParseAddr(address)
	switch {
	case address == "":
		v.missing(base+"address", " (the IP address of the server)")
		return
	case err != nil || a.Zone() != "":
		v.errf(base+"address", "%q is not an IP address", address)
		return
	case a.IsUnspecified() || a.IsMulticast():
		v.errf(base+"address", "%q is not a unicast address", address)
		return
	}
	if port < 1 || port > math.MaxUint16 {
		v.errf(base+"port", "must be 1..65535, got %d", port)
		return
	}
	ap := netip.AddrPortFrom(a.Unmap(), uint16(port))
	if j, dup := seen[ap]; dup {
		v.errf(base+"address", "%s is already %s[%d]", ap, kind, j)
		return
	}
	seen[ap] = i
}
