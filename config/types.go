// Package config defines xdprouterd's TOML configuration: the schema, its
// defaults and its validation. Errors name the file, line and key.
package config

import "strings"

// Config is the whole daemon configuration. The TOML key of every field is
// given by its toml tag; keys not listed here are rejected.
type Config struct {
	Router    Router     `toml:"router"`
	API       API        `toml:"api"`
	Dataplane Dataplane  `toml:"dataplane"`
	FIB       FIB        `toml:"fib"`
	BGP       BGP        `toml:"bgp"`
	Runtime   Runtime    `toml:"runtime"`
	Networks  []Network  `toml:"network"`
	Neighbors []Neighbor `toml:"neighbor"`
	// PeerGroups are templates of neighbor settings (see PeerGroup).
	PeerGroups []PeerGroup `toml:"peer-group"`
	// DynamicNeighbors are ranges from which sessions are accepted from
	// any address (see DynamicNeighbor).
	DynamicNeighbors []DynamicNeighbor `toml:"dynamic-neighbor"`
	// VRFs are the VRF-lite routing instances (see VRF).
	VRFs []VRF `toml:"vrf"`
	// PolicyRoutes are policy routes: kernel policy rules of ours (see
	// PolicyRoute).
	PolicyRoutes []PolicyRoute `toml:"policy-route"`
	// RPKI are the RPKI-to-Router caches route origin validation asks
	// (see RPKI); BMP the monitoring stations BGP is exported to.
	RPKI []RPKI `toml:"rpki"`
	BMP  []BMP  `toml:"bmp"`

	// Policy model handed to GoBGP's policy engine (never re-implemented).
	PrefixSets    []PrefixSet    `toml:"prefix-set"`
	NeighborSets  []NeighborSet  `toml:"neighbor-set"`
	CommunitySets []CommunitySet `toml:"community-set"`
	Policies      []Policy       `toml:"policy"`

	// Packet filters applied in XDP before the route lookup, in file
	// order (see FilterRules).
	Filters []Filter `toml:"filter"`

	// File is the path the config was read from (not a TOML key).
	File string `toml:"-"`

	// pos maps keys to lines for error messages; nil for a Config built
	// in code (errors then carry no line).
	pos *positions
}

// Router identifies this BGP speaker.
type Router struct {
	ASN      uint32 `toml:"asn"`
	RouterID string `toml:"router-id"`
}

// API holds the listen addresses of the management interfaces.
type API struct {
	// GRPCListen is GoBGP's gRPC API for the gobgp CLI: "unix:///PATH"
	// (default; access is the socket directory's permissions, root only),
	// or HOST:PORT (TCP: unauthenticated, anyone who can connect controls
	// routing). "" disables it.
	GRPCListen    string `toml:"grpc-listen"`
	MetricsListen string `toml:"metrics-listen"` // Prometheus /metrics and xdprouterctl's JSON API
	// PProf serves /debug/pprof/ on metrics-listen. Default false: profiles
	// reveal memory contents and cost CPU.
	PProf bool `toml:"pprof"`
}

// GRPCSocket returns the Unix socket path of grpc-listen, if it is one.
func (a API) GRPCSocket() (path string, ok bool) {
	return strings.CutPrefix(a.GRPCListen, UnixScheme)
}

// Dataplane selects the router ports and how XDP is attached.
type Dataplane struct {
	Interfaces []string `toml:"interfaces"`
	XDPMode    string   `toml:"xdp-mode"` // native | generic | auto
	PinPath    string   `toml:"pin-path"` // "" disables pinning
	Lookup     string   `toml:"lookup"`   // compiled | trie
	// KeepOnExit leaves the pinned dataplane forwarding when the daemon
	// stops (XDP stays on the ports with the last state; the kernel keeps
	// its routes): the next start takes it over without a gap. Default
	// true with a pin path. `xdprouterd --teardown` removes it all.
	KeepOnExit bool `toml:"keep-on-exit"`
	// URPF is the reverse-path check (RFC 3704) of every router port:
	// "off" (default), "loose" or "strict" (see URPFMode).
	URPF string `toml:"urpf"`
	// URPFPorts overrides URPF for some ports: interface name → mode.
	URPFPorts map[string]string `toml:"urpf-ports"`
	// HashSeed seeds XDP's ECMP flow hash: 1..4294967295 pins it; 0 (the
	// default) picks a random seed at the first start and keeps it in
	// the pinned dataplane.
	HashSeed int64 `toml:"hash-seed"`
}

// FIB configures the kernel routing table sink and source.
type FIB struct {
	Table  int `toml:"table"`  // kernel table mirrored into XDP and written with BGP routes
	Metric int `toml:"metric"` // metric (priority) of the routes xdprouterd installs
	// KeepRoutesOnExit leaves the installed routes in the kernel when the
	// daemon stops, so the kernel keeps forwarding across a restart; the
	// next start reconciles them (keeps what is right, removes the rest
	// once BGP has converged). Default: dataplane.keep-on-exit's value.
	KeepRoutesOnExit bool `toml:"keep-routes-on-exit"`
	// Protocol is the kernel route protocol (rtm_protocol) xdprouterd marks
	// its own routes with, 5..255 except 186 (bgp, used by FRR and BIRD).
	Protocol int `toml:"protocol"`
	// ResolveViaDefault lets BGP next hops resolve through a default route
	// (like FRR's "ip nht resolve-via-default"). Default false.
	ResolveViaDefault bool `toml:"resolve-via-default"`
	// NexthopObjects installs BGP routes by kernel nexthop groups (ip
	// nexthop), one per set of BGP next hops, so that a change of how they
	// resolve is one write, not one per route. Used where the kernel has
	// them; default true.
	NexthopObjects bool `toml:"nexthop-objects"`
	// PolicyTableBase is the first of the kernel tables xdprouterd gives
	// the next hops of [[policy-route]]s (next-hop = ADDR): one table per
	// distinct next hop, PolicyTableBase .. PolicyTableBase +
	// MaxPolicyNextHops - 1, all routes there of ours. Default 20000.
	PolicyTableBase int `toml:"policy-table-base"`
	// MirrorTables lists the kernel tables mirrored into XDP besides
	// those always mirrored (main, default, fib.table, the [[vrf]]s' and
	// the policy routes' next hops' tables); the others' routes stay the
	// kernel's, and XDP passes to the kernel the packets a rule looking
	// one up may match. Absent (default): every table; [] only those
	// always mirrored. See MirrorTableFilter.
	MirrorTables []int `toml:"mirror-tables"`
}

// Runtime tunes the Go runtime's memory use (see the README's figures).
type Runtime struct {
	// MemoryLimit is the Go runtime's soft memory limit in MiB
	// (debug.SetMemoryLimit): near it, garbage is collected more often,
	// trading CPU (convergence time) for memory. 0: 80% of the memory the
	// machine or the service's cgroup has, whichever is less.
	MemoryLimit uint64 `toml:"memory-limit"`
	// GCPercent is the heap growth between collections (GOGC), 1..10000;
	// default 100. Higher converges faster and takes more memory.
	GCPercent int `toml:"gc-percent"`
}

// BGP holds speaker-wide BGP settings.
type BGP struct {
	ListenPort       int32    `toml:"listen-port"`      // default 179; -1: do not listen
	ListenAddresses  []string `toml:"listen-addresses"` // default all
	UseMultiplePaths bool     `toml:"use-multiple-paths"`
	// PIC pre-installs each prefix's next best path as a backup (BGP PIC
	// edge): when the best path's next hop fails, every prefix moves to
	// its backup in one write per next-hop group. Costs CPU while tables
	// load (GoBGP's RIB is read for every received path). Default false.
	PIC                   bool `toml:"pic"`
	RedistributeConnected bool `toml:"redistribute-connected"`
	// Graceful restart (RFC 4724) defaults for every neighbor; a neighbor
	// may override each. See Neighbor.GracefulRestart.
	GracefulRestart    bool   `toml:"graceful-restart"`      // default true
	RestartTime        uint64 `toml:"restart-time"`          // seconds, default 120
	LongLivedStaleTime uint64 `toml:"long-lived-stale-time"` // seconds, RFC 9494; default 0 (off)

	// BogonFilter rejects, on import from every neighbor and before its
	// own import policy, routes to special-purpose and unallocated ranges
	// (RFC 6890 and others, see bgp.Bogons) and their more-specifics, and
	// routes longer than BogonMaxLengthV4 / BogonMaxLengthV6 (blackhole
	// routes of neighbors with accept-blackhole excepted). Default false.
	BogonFilter      bool `toml:"bogon-filter"`
	BogonMaxLengthV4 int  `toml:"bogon-max-length-v4"` // 8..32, default 24
	BogonMaxLengthV6 int  `toml:"bogon-max-length-v6"` // 16..128, default 48
	// BlackholeCommunities mark remotely triggered blackhole routes (RFC
	// 7999 BLACKHOLE, 65535:666, and operators' own): from a neighbor with
	// accept-blackhole they become blackhole routes. Default ["65535:666"].
	BlackholeCommunities []string `toml:"blackhole-communities"`

	// RPKIRejectInvalid rejects, on import from every neighbor, routes
	// whose origin validation state is invalid (RFC 6811) against the
	// VRPs of the [[rpki]] caches. Default true; without [[rpki]] every
	// route is not-found and nothing is rejected.
	RPKIRejectInvalid bool `toml:"rpki-reject-invalid"`
	// RPKIValidLocalPref sets LOCAL_PREF to this value on import of the
	// routes whose state is valid, so that they win over not-found ones
	// (a later set-local-pref of the neighbor's import policy overrides
	// it). 0 (default): not changed.
	RPKIValidLocalPref uint32 `toml:"rpki-valid-local-pref"`
}

// RPKI is one RPKI-to-Router cache (RFC 6810/8210) whose validated ROA
// payloads (VRPs) decide the origin validation state of BGP routes. With
// several caches the union of their VRPs counts.
type RPKI struct {
	Address string `toml:"address"` // IP address of the cache
	Port    uint32 `toml:"port"`    // TCP port, default 323 (rpki-rtr)
	// Lifetime is how long (seconds) the VRPs of a cache whose session
	// dropped are kept while it reconnects. Default 3600.
	Lifetime uint64 `toml:"lifetime"`
}

// BMP is one BGP Monitoring Protocol (RFC 7854) station the speaker
// connects to and streams its peers' state and routes to.
type BMP struct {
	Address string `toml:"address"` // IP address of the collector
	Port    uint32 `toml:"port"`    // TCP port, default 11019
	// RouteMonitoring selects the routes reported: pre-policy (default,
	// each neighbor's Adj-RIB-In as received), post-policy (after import
	// policy), local-rib (the best paths, RFC 9069) or all of them.
	RouteMonitoring string `toml:"route-monitoring"`
	// StatisticsInterval sends a Statistics Report per neighbor this
	// often (seconds); 0 (default): none.
	StatisticsInterval uint64 `toml:"statistics-interval"`
}

// Network is a prefix originated into BGP.
type Network struct {
	Prefix string `toml:"prefix"`
}

// Neighbor is one BGP peer.
type Neighbor struct {
	Address string `toml:"address"`
	// Interface is an unnumbered neighbor (BGP unnumbered, RFC 8950): the
	// session runs between the link-local addresses of this interface and
	// of the one router on its other end, found in the IPv6 neighbor
	// table. Not with Address.
	Interface string `toml:"interface"`
	// PeerGroup names the [[peer-group]] whose keys the neighbor inherits
	// where it leaves them out (see Config.inherit).
	PeerGroup   string `toml:"peer-group"`
	PeerASN     uint32 `toml:"peer-asn"`
	Description string `toml:"description"`
	Import      string `toml:"import"` // policy name, accept-all or reject-all
	Export      string `toml:"export"`
	MaxPrefixes uint32 `toml:"max-prefixes"` // 0: no limit
	// MaxPrefixesWarning is the share of max-prefixes (percent) at which a
	// warning is logged; MaxPrefixesRestart how long (seconds) a session
	// shut down for max-prefixes stays down before it is restarted (0: until
	// the operator enables it).
	MaxPrefixesWarning uint32   `toml:"max-prefixes-warning"`
	MaxPrefixesRestart uint64   `toml:"max-prefixes-restart"`
	Passive            bool     `toml:"passive"`
	Multihop           uint32   `toml:"multihop"` // eBGP multihop TTL; 0: directly connected
	Password           string   `toml:"password"` // TCP MD5
	LocalAddress       string   `toml:"local-address"`
	Port               uint32   `toml:"port"`     // remote TCP port, default 179
	Families           []string `toml:"families"` // ipv4-unicast, ipv6-unicast; default from address family

	HoldTime          uint64 `toml:"hold-time"`          // seconds, default 90
	KeepaliveInterval uint64 `toml:"keepalive-interval"` // seconds, default hold-time/3
	ConnectRetry      uint64 `toml:"connect-retry"`      // seconds, default 120
	// IdleHoldAfterReset is how long (seconds, 1..3600) the session stays
	// idle, refusing the neighbor's connections too, after we reset it:
	// a BFD failure, max-prefixes, an operator's reset. Default (and 0) 5;
	// GoBGP's own default is 30.
	IdleHoldAfterReset uint64 `toml:"idle-hold-after-reset"`

	// GracefulRestart negotiates BGP graceful restart (RFC 4724) with the
	// neighbor, both roles: while the neighbor restarts, its routes stay
	// installed (marked stale) until its End-of-RIB or RestartTime; while
	// we restart with the data plane preserved, it keeps ours. Default:
	// [bgp] graceful-restart (true).
	GracefulRestart bool `toml:"graceful-restart"`
	// RestartTime is the restart time we advertise (seconds, 1..4095):
	// how long the neighbor keeps our routes while we restart. Default
	// [bgp] restart-time (120).
	RestartTime uint64 `toml:"restart-time"`
	// LongLivedStaleTime enables long-lived graceful restart (RFC 9494):
	// after the restart time, stale routes are kept this many seconds more
	// (up to 16777215) at the lowest preference. 0: off. Default [bgp]
	// long-lived-stale-time (0).
	LongLivedStaleTime uint64 `toml:"long-lived-stale-time"`

	// BFD (RFC 5880/5881 single hop, GoBGP's): when the BFD session goes
	// down the BGP session is reset at once, without waiting for the hold
	// timer. Intervals in milliseconds; defaults 300 / 300 / 3.
	BFD           bool   `toml:"bfd"`
	BFDMinRx      uint64 `toml:"bfd-min-rx"`
	BFDMinTx      uint64 `toml:"bfd-min-tx"`
	BFDMultiplier uint64 `toml:"bfd-multiplier"`

	// AcceptBlackhole lets the neighbor send remotely triggered blackhole
	// routes (RFC 7999): a route carrying one of [bgp]
	// blackhole-communities is installed as a blackhole (dropped in XDP
	// and the kernel), for any prefix length. Without it the community is
	// ignored and the route is a normal one. Default false.
	AcceptBlackhole bool `toml:"accept-blackhole"`
	// Flowspec negotiates BGP Flowspec (RFC 8955 IPv4, RFC 8956 IPv6)
	// with the neighbor: ipv4-flowspec and ipv6-flowspec next to the
	// unicast families it has (or those families lists), and the rules it
	// sends become XDP filters. Default false: the families are not
	// negotiated, so the neighbor's Flowspec routes are never accepted.
	Flowspec bool `toml:"flowspec"`
	// FlowspecValidate applies the RFC 8955 section 6 feasibility check to
	// the neighbor's Flowspec routes: a rule needs a destination prefix
	// whose best-match unicast route came from the same neighbor, with no
	// more-specific unicast route from another neighboring AS. false: rules
	// are taken as sent (a trusted controller, e.g. DDoS scrubbing, that
	// announces no unicast routes). Default true.
	FlowspecValidate bool `toml:"flowspec-validate"`
	// VRF puts the neighbor in a [[vrf]] routing instance (by name): its
	// best paths go to that instance's kernel table (and XDP table), never
	// to fib.table or another instance; it is sent only the instance's
	// routes. "" (default): the global instance.
	VRF string `toml:"vrf"`
}

// PeerGroup is a template of neighbor settings: every [[neighbor]] key
// but address and peer-group. A neighbor naming it (neighbor.peer-group)
// inherits each key it leaves out; a [[dynamic-neighbor]] range gives it
// to every session it accepts. Its keys get the neighbor defaults only
// where it is used (a member's defaults, or a range's).
type PeerGroup struct {
	// Name identifies it (neighbor.peer-group, dynamic-neighbor.peer-group).
	Name string `toml:"name"`
	// The neighbor keys; Address and PeerGroup must stay unset. Embedded
	// so that the TOML keys are the neighbor's, flat in the table.
	Neighbor
}

// DynamicNeighbor is a range of addresses from which BGP sessions are
// accepted without a [[neighbor]] each (FRR's "bgp listen range"): a
// top-of-rack switch's servers announcing their addresses. The sessions
// are passive (the peer connects) and take their settings from the peer
// group. A [[neighbor]] whose address is in the range keeps its own.
type DynamicNeighbor struct {
	// Prefix is the range, e.g. "10.1.0.0/24". Ranges do not overlap.
	Prefix string `toml:"prefix"`
	// PeerGroup names the [[peer-group]] of its sessions. Its peer-asn
	// may be left out: any AS is then accepted (eBGP or iBGP by the AS
	// the peer sends), and import/export default to reject-all.
	PeerGroup string `toml:"peer-group"`
	// Limit is how many sessions of the range may exist at once (FRR's
	// "bgp listen limit", per range here); a connection beyond it is
	// closed (Cease) as soon as it is seen. Default 100.
	Limit uint32 `toml:"limit"`
}

// VRF is one VRF-lite routing instance: a kernel routing table, the
// router ports whose traffic it routes (kernel policy rules `iif PORT
// lookup TABLE`, then `iif PORT unreachable`, both xdprouterd's), and the
// BGP neighbors in it (neighbor.vrf). Kernel VRF devices are not used.
type VRF struct {
	// Name identifies the instance (neighbor.vrf, `gobgp vrf NAME rib`).
	Name string `toml:"name"`
	// Table is its kernel table: 1..2147483647, not 253..255 (default,
	// main, local) and not fib.table.
	Table int `toml:"table"`
	// Interfaces are its router ports (from dataplane.interfaces); a port
	// is in at most one instance.
	Interfaces []string `toml:"interfaces"`
	// RouteDistinguisher is the RD of its paths in GoBGP ("ASN:N" or
	// "IPv4:N"); the route targets it imports and exports are the same
	// value. Default "router.asn:table" (see DefaultRouteDistinguisher).
	RouteDistinguisher string `toml:"route-distinguisher"`
	// RulePriority is the priority of its `iif PORT lookup TABLE` rules;
	// the `iif PORT unreachable` rules take RulePriority+1. 1..32764
	// (below the main table's rule, 32766). Default 1000 + 10*N, N its
	// position among the [[vrf]]s (room for 2776 instances, and for
	// operators' rules between them).
	RulePriority int `toml:"rule-priority"`
}

// PolicyRoute is a policy route: traffic matching its selectors (all
// that are set; none set: all traffic) is routed by its action instead
// of the main table. xdprouterd installs it as a kernel policy rule of
// its own (marked with fib.protocol), so that `ip rule` and `ip route
// get` tell the truth; XDP follows the kernel's rules.
type PolicyRoute struct {
	// Name identifies it in logs. Unique; required.
	Name string `toml:"name"`
	// From and To select by source and destination: a prefix or an
	// address. Of one family (that of next-hop too).
	From string `toml:"from"`
	To   string `toml:"to"`
	// In selects by ingress port (from dataplane.interfaces).
	In string `toml:"in"`
	// Protocol selects by IP protocol: tcp, udp, sctp, icmp (IPv4),
	// icmpv6 (IPv6), a name of config's list or a number 0-255.
	Protocol Value `toml:"protocol"`
	// SrcPort and DstPort select by port, "80" or "1024-65535"; only with
	// protocol tcp, udp or sctp.
	SrcPort Value `toml:"sport"`
	DstPort Value `toml:"dport"`
	// TOS selects by the dsfield byte (DSCP << 2, e.g. 0xb8 for EF); the
	// two ECN bits must be 0.
	TOS int `toml:"tos"`
	// Priority of its rule, 1..32765 (before the main table's, 32766);
	// a fallback other than "table" takes the next one as well.
	// Default 500 + 10*N, N its position among the [[policy-route]]s:
	// before the [[vrf]] rules (1000 up).
	Priority int `toml:"priority"`
	// The action, exactly one of:
	// Table: look the destination up in that kernel table (no route
	// there: the next rules decide).
	Table int `toml:"table"`
	// NextHop: send the traffic to this address, a neighbor on a
	// connected subnet, while it is usable (its port up, a connected
	// route covering it, its neighbor entry resolved); else Fallback.
	NextHop string `toml:"next-hop"`
	// Fallback, with next-hop, says what becomes of the traffic while
	// the next hop is not usable: "table" (default) the next rules
	// decide (normally the main table routes it); "unreachable",
	// "prohibit" or "blackhole" it is refused (ICMP unreachable or
	// prohibited) or dropped, never routed elsewhere.
	Fallback string `toml:"fallback"`
	// Action: "blackhole" (drop), "unreachable" or "prohibit" (refused
	// with an ICMP error).
	Action string `toml:"action"`
}

// PrefixSet is a named list of prefixes with optional mask-length ranges,
// e.g. "10.0.0.0/8" or "10.0.0.0/8 16..24".
type PrefixSet struct {
	Name     string   `toml:"name"`
	Prefixes []string `toml:"prefixes"`
}

// NeighborSet is a named list of neighbor addresses or prefixes.
type NeighborSet struct {
	Name      string   `toml:"name"`
	Addresses []string `toml:"addresses"`
}

// CommunitySet is a named list of standard communities ("65000:100") or
// regular expressions in GoBGP syntax.
type CommunitySet struct {
	Name        string   `toml:"name"`
	Communities []string `toml:"communities"`
}

// Policy is an ordered list of statements; the first statement whose
// conditions match decides. Without a match the neighbor's default applies
// (reject for eBGP, RFC 8212).
type Policy struct {
	Name       string      `toml:"name"`
	Statements []Statement `toml:"statement"`
}

// Statement is one condition/action pair of a policy.
type Statement struct {
	Name string `toml:"name"`
	// Conditions: all given ones must match.
	MatchPrefixSet    string `toml:"match-prefix-set"`
	MatchNeighborSet  string `toml:"match-neighbor-set"`
	MatchCommunitySet string `toml:"match-community-set"`
	MatchSetOptions   string `toml:"match-set-options"` // any (default) | invert
	// Actions.
	Action       string   `toml:"action"` // accept | reject | next (continue to next statement)
	SetLocalPref uint32   `toml:"set-local-pref"`
	SetMED       int64    `toml:"set-med"`
	AddCommunity []string `toml:"add-community"`
}

// Filter is one [[filter]] table: a packet filter rule XDP applies before
// the route lookup (see filter.Rule; FilterRules builds them). Every match
// key is optional; a rule matches a packet when every key it sets does.
// Values are kept as written and checked by Validate.
type Filter struct {
	// Name identifies the rule in logs, metrics and the CLI. Unique;
	// default "filter-N", N its 1-based position among the [[filter]]s.
	Name string `toml:"name"`
	// Src and Dst: a prefix ("198.51.100.0/24", no host bits) or an
	// address (a /32 or /128). Both of one family.
	Src string `toml:"src"`
	Dst string `toml:"dst"`
	// Protocol: names (tcp, udp, icmp, icmpv6, sctp, gre, esp, ah),
	// numbers 0-255 or ranges "6-17".
	Protocol Values `toml:"protocol"`
	SrcPort  Values `toml:"sport"`
	DstPort  Values `toml:"dport"`
	Port     Values `toml:"port"` // source or destination port
	ICMPType Values `toml:"icmp-type"`
	ICMPCode Values `toml:"icmp-code"`
	DSCP     Values `toml:"dscp"`   // 0-63 or names: ef, af11..af43, cs0..cs7
	Length   Values `toml:"length"` // IP packet length, 0-65535
	// TCPFlags: alternatives (any matches), each "syn,!ack": the flags
	// named set and those with '!' clear.
	TCPFlags Strings `toml:"tcp-flags"`
	// Fragment: "no", "first", "later", "yes" (first or later), "any".
	Fragment Strings `toml:"fragment"`
	// In: router ports (names in dataplane.interfaces) the packet arrived
	// on; default any.
	In []string `toml:"in"`
	// Action: drop | pass (to the kernel) | accept | count | rate-limit.
	// Required.
	Action string `toml:"action"`
	// Rate of rate-limit: "10000pps", "1.5kpps", "100mbps" (bits), ...
	Rate string `toml:"rate"`
	// SetDSCP rewrites the DSCP of the packets accept and rate-limit let
	// through: 0-63 or a DSCP name.
	SetDSCP Value `toml:"set-dscp"`
	// Continue lets later rules apply after accept or rate-limit.
	Continue bool `toml:"continue"`
}
