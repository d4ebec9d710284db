package config

import "strconv"

// Defaults. A key that is absent from the file gets its default; a key
// written with a zero value keeps it (then Validate decides whether zero is
// allowed: grpc-listen = "" disables the gRPC API, pin-path = "" disables
// pinning, hold-time = 0 disables keepalives, metric = 0 is a metric).
//
//	[router]      asn                 0: BGP disabled (FIB → XDP mirroring only)
//	              router-id           none; required when asn is set
//	[api]         grpc-listen         "unix:///run/xdprouter/gobgp.sock"
//	              metrics-listen      "127.0.0.1:9179"
//	              pprof               false
//	[dataplane]   interfaces          [] (no XDP program attached)
//	              xdp-mode            "auto"
//	              pin-path            "/sys/fs/bpf/xdprouter"
//	              lookup              "compiled"
//	              urpf                "off"
//	              urpf-ports          {} (every port: urpf)
//	[fib]         table               254 (main)
//	              metric              20
//	              protocol            200
//	              resolve-via-default false
//	              nexthop-objects     true
//	[runtime]     memory-limit        0 (80% of the machine's or cgroup's memory)
//	              gc-percent          100
//	[bgp]         listen-port         179 (-1: do not listen)
//	              listen-addresses    [] (all addresses)
//	              graceful-restart    true
//	              restart-time        120
//	              long-lived-stale-time 0 (off)
//	              bogon-filter        false
//	              bogon-max-length-v4 24
//	              bogon-max-length-v6 48
//	              blackhole-communities ["65535:666"] (RFC 7999 BLACKHOLE)
//	[[neighbor]]  port                179
//	              hold-time           90
//	              keepalive-interval  hold-time / 3
//	              connect-retry       120
//	              graceful-restart, restart-time, long-lived-stale-time:
//	                                  the [bgp] values
//	              bfd                 false
//	              bfd-min-rx, bfd-min-tx 300 (ms)
//	              bfd-multiplier      3
//	              accept-blackhole    false
//	              families            ["ipv4-unicast"] for an IPv4 address,
//	                                  ["ipv6-unicast"] for an IPv6 address
//	              flowspec            false
//	              flowspec-validate   true
//	              import, export      "reject-all" for eBGP (peer-asn differs
//	                                  from router.asn; RFC 8212),
//	                                  "accept-all" for iBGP
//	              vrf                 "" (the global instance)
//	[[peer-group]] the neighbor keys; defaults where it is used
//	[[dynamic-neighbor]] limit        100
//	[[vrf]]       route-distinguisher "ASN:TABLE" (router.asn, table)
//	              rule-priority       1000 + 10*N, N its position
//	[[policy-route]] priority         500 + 10*N, N its position
//	              fallback            "table" (with next-hop)
//	[fib]         policy-table-base   20000
//	[[policy.statement]] match-set-options "any"
//	[[filter]]    name                "filter-N", N its 1-based position
const (
	DefaultGRPCListen    = UnixScheme + "/run/xdprouter/gobgp.sock"
	DefaultMetricsListen = "127.0.0.1:9179"
	DefaultXDPMode       = XDPModeAuto
	DefaultPinPath       = "/sys/fs/bpf/xdprouter"
	DefaultLookup        = LookupCompiled
	DefaultFIBTable      = 254
	DefaultFIBMetric     = 20
	DefaultFIBProtocol   = 200
	DefaultBGPPort       = 179
	DefaultHoldTime      = 90
	DefaultConnectRetry  = 120
	// DefaultIdleHoldAfterReset: seconds idle after a reset (BFD down)
	// before the session may come back.
	DefaultIdleHoldAfterReset = 5
	DefaultGCPercent          = 100
	// DefaultRestartTime is the graceful-restart time advertised to peers
	// (seconds): how long they keep our routes while we restart. RFC 4724
	// suggests at most the hold time; 120 (FRR's and BIRD's default) covers
	// a daemon restart with a full table to re-learn.
	DefaultRestartTime = 120
	// BFD defaults: 300 ms intervals, detection after 3 missed packets
	// (0.9 s), as FRR's.
	DefaultBFDInterval   = 300
	DefaultBFDMultiplier = 3
	// DefaultMaxPrefixesWarning is where a peer's prefix count is logged
	// as near its max-prefixes, in percent.
	DefaultMaxPrefixesWarning = 90
	// Bogon filter length bounds: longer prefixes are not routed on the
	// Internet (a /24 and a /48 are the longest commonly accepted).
	DefaultBogonMaxLengthV4 = 24
	DefaultBogonMaxLengthV6 = 48
	// DefaultRPKIPort is the IANA rpki-rtr port (stayrtr and Routinator
	// listen on 8282 and 3323 by default: set port for them).
	DefaultRPKIPort = 323
	// DefaultRPKILifetime is how long (s) a lost cache's VRPs are kept.
	DefaultRPKILifetime = 3600
	// DefaultBMPPort is GoBGP's (BMP has no IANA port).
	DefaultBMPPort = 11019
	// DefaultVRFRulePriority and VRFRulePriorityStep give the default
	// rule-priority of the N-th [[vrf]]: base + N*step.
	DefaultVRFRulePriority = 1000
	VRFRulePriorityStep    = 10
	// MaxVRFRulePriority is the highest rule-priority: the unreachable
	// rule (+1) must come before the main table's (32766).
	MaxVRFRulePriority = 32764
	// DefaultPolicyRoutePriority and PolicyRoutePriorityStep give the
	// default priority of the N-th [[policy-route]]: base + N*step, a
	// block before the [[vrf]]s' rules.
	DefaultPolicyRoutePriority = 500
	PolicyRoutePriorityStep    = 10
	// MaxPolicyRoutePriority is the highest priority of a policy route's
	// rule: before the main table's (32766).
	MaxPolicyRoutePriority = 32765
	// DefaultPolicyTableBase is the first kernel table of policy routes'
	// next hops (fib.policy-table-base); MaxPolicyNextHops bounds how many
	// distinct next hops (tables) there may be.
	DefaultPolicyTableBase = 20000
	MaxPolicyNextHops      = 256
	// PolicyFallbackTable is the default fallback of a next-hop policy
	// route: the next rules decide.
	PolicyFallbackTable = "table"
	// DefaultDynamicNeighborLimit is how many sessions a [[dynamic-neighbor]]
	// range accepts at once (FRR's bgp listen limit default).
	DefaultDynamicNeighborLimit = 100
	// CommunityBlackhole is RFC 7999's BLACKHOLE well-known community.
	CommunityBlackhole = "65535:666"
)

// UnixScheme prefixes a Unix socket path in api.grpc-listen (GoBGP's and
// the gobgp CLI's --target syntax).
const UnixScheme = "unix://"

// RouteProtocolBGP is the kernel's "bgp" route protocol (rtnetlink
// RTPROT_BGP), which FRR and BIRD mark their routes with: fib.protocol
// must differ so that neither deletes the other's routes.
const RouteProtocolBGP = 186

// Route lookup structures of the XDP program (dataplane.lookup; see
// bpf.LookupMode).
const (
	LookupCompiled = "compiled"
	LookupTrie     = "trie" // the kernel's BPF LPM trie, the reference
)

// XDP attach modes (dataplane.xdp-mode).
const (
	XDPModeNative  = "native"
	XDPModeGeneric = "generic"
	XDPModeAuto    = "auto" // native where the driver supports it, else generic
)

// BMP route monitoring choices (bmp.route-monitoring).
const (
	BMPPrePolicy  = "pre-policy"
	BMPPostPolicy = "post-policy"
	BMPLocalRIB   = "local-rib"
	BMPAll        = "all"
)

// Address families (neighbor.families).
const (
	FamilyIPv4Unicast = "ipv4-unicast"
	FamilyIPv6Unicast = "ipv6-unicast"
)

// Flowspec address families (neighbor.families, with flowspec = true).
const (
	FamilyIPv4Flowspec = "ipv4-flowspec"
	FamilyIPv6Flowspec = "ipv6-flowspec"
)

// Built-in policies, usable as a neighbor's import or export.
const (
	PolicyAcceptAll = "accept-all"
	PolicyRejectAll = "reject-all"
)

// Statement actions and match-set options.
const (
	ActionAccept = "accept"
	ActionReject = "reject"
	ActionNext   = "next" // continue with the next statement

	MatchAny    = "any"
	MatchInvert = "invert"
)

// ApplyDefaults fills unset keys with their defaults. Load and Parse call
// it; a Config built in code can call it too, and then every zero value
// counts as unset.
func (c *Config) ApplyDefaults() { c.applyDefaults() }

func (c *Config) applyDefaults() {
	set := c.pos.isSet
	if c.API.GRPCListen == "" && !set("api.grpc-listen") {
		c.API.GRPCListen = DefaultGRPCListen
	}
	if c.API.MetricsListen == "" && !set("api.metrics-listen") {
		c.API.MetricsListen = DefaultMetricsListen
	}
	if c.Dataplane.XDPMode == "" && !set("dataplane.xdp-mode") {
		c.Dataplane.XDPMode = DefaultXDPMode
	}
	if c.Dataplane.URPF == "" && !set("dataplane.urpf") {
		c.Dataplane.URPF = DefaultURPF
	}
	for i := range c.Filters {
		if f := &c.Filters[i]; f.Name == "" && !set(indexPath("filter", i)+".name") {
			f.Name = DefaultFilterName(i)
		}
	}
	if c.Dataplane.Lookup == "" {
		c.Dataplane.Lookup = DefaultLookup
	}
	if c.Dataplane.PinPath == "" && !set("dataplane.pin-path") {
		c.Dataplane.PinPath = DefaultPinPath
	}
	if !set("dataplane.keep-on-exit") {
		// An explicit keep-routes-on-exit = false (the old way to ask for a
		// clean stop) still means a clean stop.
		c.Dataplane.KeepOnExit = c.Dataplane.PinPath != "" && (c.FIB.KeepRoutesOnExit || !set("fib.keep-routes-on-exit"))
	}
	if !set("fib.keep-routes-on-exit") {
		c.FIB.KeepRoutesOnExit = c.Dataplane.KeepOnExit
	}
	if c.FIB.Table == 0 && !set("fib.table") {
		c.FIB.Table = DefaultFIBTable
	}
	if c.FIB.Metric == 0 && !set("fib.metric") {
		c.FIB.Metric = DefaultFIBMetric
	}
	if c.FIB.Protocol == 0 && !set("fib.protocol") {
		c.FIB.Protocol = DefaultFIBProtocol
	}
	if c.Runtime.GCPercent == 0 && !set("runtime.gc-percent") {
		c.Runtime.GCPercent = DefaultGCPercent
	}
	if !set("fib.nexthop-objects") {
		c.FIB.NexthopObjects = true
	}
	if c.BGP.ListenPort == 0 && !set("bgp.listen-port") {
		c.BGP.ListenPort = DefaultBGPPort
	}
	if !set("bgp.graceful-restart") {
		c.BGP.GracefulRestart = true
	}
	if c.BGP.RestartTime == 0 && !set("bgp.restart-time") {
		c.BGP.RestartTime = DefaultRestartTime
	}
	if c.BGP.BogonMaxLengthV4 == 0 && !set("bgp.bogon-max-length-v4") {
		c.BGP.BogonMaxLengthV4 = DefaultBogonMaxLengthV4
	}
	if c.BGP.BogonMaxLengthV6 == 0 && !set("bgp.bogon-max-length-v6") {
		c.BGP.BogonMaxLengthV6 = DefaultBogonMaxLengthV6
	}
	if !set("bgp.rpki-reject-invalid") {
		c.BGP.RPKIRejectInvalid = true
	}
	for i := range c.RPKI {
		r := &c.RPKI[i]
		key := func(k string) string { return indexPath("rpki", i) + "." + k }
		if r.Port == 0 && !set(key("port")) {
			r.Port = DefaultRPKIPort
		}
		if r.Lifetime == 0 && !set(key("lifetime")) {
			r.Lifetime = DefaultRPKILifetime
		}
	}
	for i := range c.BMP {
		b := &c.BMP[i]
		key := func(k string) string { return indexPath("bmp", i) + "." + k }
		if b.Port == 0 && !set(key("port")) {
			b.Port = DefaultBMPPort
		}
		if b.RouteMonitoring == "" && !set(key("route-monitoring")) {
			b.RouteMonitoring = BMPPrePolicy
		}
	}
	if c.BGP.BlackholeCommunities == nil && !set("bgp.blackhole-communities") {
		c.BGP.BlackholeCommunities = []string{CommunityBlackhole}
	}
	c.inherit()
	for i := range c.Neighbors {
		c.neighborDefaults(&c.Neighbors[i], indexPath("neighbor", i)+".")
	}
	for i := range c.PeerGroups {
		c.neighborDefaults(&c.PeerGroups[i].Neighbor, indexPath("peer-group", i)+".")
	}
	for i := range c.DynamicNeighbors {
		if d := &c.DynamicNeighbors[i]; d.Limit == 0 && !set(indexPath("dynamic-neighbor", i)+".limit") {
			d.Limit = DefaultDynamicNeighborLimit
		}
	}
	for i := range c.VRFs {
		v := &c.VRFs[i]
		if v.RulePriority == 0 && !set(indexPath("vrf", i)+".rule-priority") {
			v.RulePriority = DefaultVRFRulePriority + i*VRFRulePriorityStep
		}
		if v.RouteDistinguisher == "" && !set(indexPath("vrf", i)+".route-distinguisher") {
			v.RouteDistinguisher = DefaultRouteDistinguisher(c.Router.ASN, v.Table)
		}
	}
	if c.FIB.PolicyTableBase == 0 && !set("fib.policy-table-base") {
		c.FIB.PolicyTableBase = DefaultPolicyTableBase
	}
	for i := range c.PolicyRoutes {
		r := &c.PolicyRoutes[i]
		if r.Priority == 0 && !set(indexPath("policy-route", i)+".priority") {
			r.Priority = DefaultPolicyRoutePriority + i*PolicyRoutePriorityStep
		}
		if r.Fallback == "" && r.NextHop != "" && !set(indexPath("policy-route", i)+".fallback") {
			r.Fallback = PolicyFallbackTable
		}
	}
	for i := range c.Policies {
		for j := range c.Policies[i].Statements {
			s := &c.Policies[i].Statements[j]
			if s.MatchSetOptions == "" {
				s.MatchSetOptions = MatchAny
			}
		}
	}
}

// neighborDefaults fills the unset keys of a neighbor, or of a peer
// group (no address: families stay unset, the range or the member
// decides), whose key paths start with base ("neighbor[1].").
func (c *Config) neighborDefaults(n *Neighbor, base string) {
	set := c.pos.isSet
	key := func(k string) string { return base + k }
	if n.Port == 0 && !set(key("port")) {
		n.Port = DefaultBGPPort
	}
	if n.HoldTime == 0 && !set(key("hold-time")) {
		n.HoldTime = DefaultHoldTime
	}
	if n.KeepaliveInterval == 0 && !set(key("keepalive-interval")) {
		n.KeepaliveInterval = n.HoldTime / 3
	}
	if n.ConnectRetry == 0 && !set(key("connect-retry")) {
		n.ConnectRetry = DefaultConnectRetry
	}
	if n.IdleHoldAfterReset == 0 && !set(key("idle-hold-after-reset")) {
		n.IdleHoldAfterReset = DefaultIdleHoldAfterReset
	}
	if !set(key("graceful-restart")) {
		n.GracefulRestart = c.BGP.GracefulRestart
	}
	if n.RestartTime == 0 && !set(key("restart-time")) {
		n.RestartTime = c.BGP.RestartTime
	}
	if n.LongLivedStaleTime == 0 && !set(key("long-lived-stale-time")) {
		n.LongLivedStaleTime = c.BGP.LongLivedStaleTime
	}
	if n.BFDMinRx == 0 && !set(key("bfd-min-rx")) {
		n.BFDMinRx = DefaultBFDInterval
	}
	if n.BFDMinTx == 0 && !set(key("bfd-min-tx")) {
		n.BFDMinTx = DefaultBFDInterval
	}
	if n.BFDMultiplier == 0 && !set(key("bfd-multiplier")) {
		n.BFDMultiplier = DefaultBFDMultiplier
	}
	if n.MaxPrefixesWarning == 0 && !set(key("max-prefixes-warning")) {
		n.MaxPrefixesWarning = DefaultMaxPrefixesWarning
	}
	if len(n.Families) == 0 && !set(key("families")) {
		if n.Interface != "" {
			// Unnumbered: IPv4 over IPv6 next hops (RFC 8950), and IPv6.
			n.Families = []string{FamilyIPv4Unicast, FamilyIPv6Unicast}
		} else if a := n.Addr(); a.IsValid() {
			if a.Unmap().Is4() {
				n.Families = []string{FamilyIPv4Unicast}
			} else {
				n.Families = []string{FamilyIPv6Unicast}
			}
		}
	}
	if !set(key("flowspec-validate")) {
		n.FlowspecValidate = true
	}
	def := PolicyAcceptAll
	if n.PeerASN != c.Router.ASN {
		def = PolicyRejectAll // RFC 8212
	}
	if n.Import == "" && !set(key("import")) {
		n.Import = def
	}
	if n.Export == "" && !set(key("export")) {
		n.Export = def
	}
}

// DefaultRouteDistinguisher is a VRF's RD when none is configured:
// "ASN:TABLE". A 4-byte ASN leaves 16 bits for the table (RFC 4364 type
// 2); "" when it does not fit (or BGP is off), then Validate asks for one
// where a neighbor needs it.
func DefaultRouteDistinguisher(asn uint32, table int) string {
	switch {
	case asn == 0 || table <= 0:
		return ""
	case asn <= 0xffff && int64(table) <= 0xffffffff, table <= 0xffff:
		return strconv.FormatUint(uint64(asn), 10) + ":" + strconv.Itoa(table)
	}
	return ""
}
