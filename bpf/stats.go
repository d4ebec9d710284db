package bpf

import (
	"fmt"
)

// Action strings, as used in StatCounter, Decision and Candidate.
const (
	ActionRedirect = "redirect"
	ActionDrop     = "drop"
	ActionPass     = "pass"
	ActionAborted  = "aborted"
)

// Reason strings (the "why" of a pass or drop), as used in StatCounter,
// Decision and Candidate. Redirects have the empty reason.
const (
	ReasonBlackhole          = "blackhole"
	ReasonNotIP              = "not_ip"
	ReasonMalformed          = "malformed"
	ReasonLocal              = "local"
	ReasonTTLExceeded        = "ttl_exceeded"
	ReasonIPOptions          = "ip_options"
	ReasonIPv6ExtHeader      = "ipv6_ext_header"
	ReasonLinkLocalMulticast = "link_local_multicast"
	ReasonNoRoute            = "no_route"
	ReasonUnreachable        = "unreachable"
	ReasonNoNextHop          = "no_nexthop"
	ReasonNeighborUnresolved = "neighbor_unresolved"
	ReasonTooBig             = "too_big"
	ReasonEgressNotXDP       = "egress_not_xdp"
	ReasonOtherHost          = "other_host"
	ReasonKernelRoute        = "kernel_route"
	ReasonMartianSource      = "martian_source"
	ReasonMartianDest        = "martian_destination"
	ReasonURPF               = "urpf"
	ReasonBlackholeSource    = "blackhole_source"
	ReasonURPFKernelRoute    = "urpf_kernel_route"
	ReasonFilter             = "filter"
	ReasonRateLimit          = "rate_limit"
	ReasonRule               = "rule"         // drop: a blackhole rule; pass: an unreachable/prohibit rule
	ReasonRuleKernel         = "rule_kernel"  // a policy rule XDP cannot evaluate (fwmark, oif, ...)
	ReasonVLANUnknown        = "vlan_unknown" // a VLAN id that is no router port; untagged on a VLAN ports' parent that is none
	ReasonVLANOther          = "vlan_other"   // 802.1ad (QinQ) or stacked tags
)

type statName struct{ action, reason string }

// statNames is indexed by enum stat (fwd.h).
var statNames = [fwdStatSTAT__MAX]statName{
	fwdStatSTAT_REDIRECT:             {ActionRedirect, ""},
	fwdStatSTAT_DROP_BLACKHOLE:       {ActionDrop, ReasonBlackhole},
	fwdStatSTAT_PASS_NOT_IP:          {ActionPass, ReasonNotIP},
	fwdStatSTAT_PASS_MALFORMED:       {ActionPass, ReasonMalformed},
	fwdStatSTAT_PASS_LOCAL:           {ActionPass, ReasonLocal},
	fwdStatSTAT_PASS_TTL:             {ActionPass, ReasonTTLExceeded},
	fwdStatSTAT_PASS_IP_OPTIONS:      {ActionPass, ReasonIPOptions},
	fwdStatSTAT_PASS_IPV6EXT:         {ActionPass, ReasonIPv6ExtHeader},
	fwdStatSTAT_PASS_LINKLOCAL_MCAST: {ActionPass, ReasonLinkLocalMulticast},
	fwdStatSTAT_PASS_NO_ROUTE:        {ActionPass, ReasonNoRoute},
	fwdStatSTAT_PASS_UNREACHABLE:     {ActionPass, ReasonUnreachable},
	fwdStatSTAT_PASS_NO_NEXTHOP:      {ActionPass, ReasonNoNextHop},
	fwdStatSTAT_PASS_NO_NEIGH:        {ActionPass, ReasonNeighborUnresolved},
	fwdStatSTAT_PASS_TOO_BIG:         {ActionPass, ReasonTooBig},
	fwdStatSTAT_PASS_EGRESS:          {ActionPass, ReasonEgressNotXDP},
	fwdStatSTAT_PASS_OTHER_HOST:      {ActionPass, ReasonOtherHost},
	fwdStatSTAT_PASS_KERNEL_ROUTE:    {ActionPass, ReasonKernelRoute},
	fwdStatSTAT_DROP_MARTIAN_SRC:     {ActionDrop, ReasonMartianSource},
	fwdStatSTAT_ABORTED:              {ActionAborted, ""},
	fwdStatSTAT_DROP_MARTIAN_DST:     {ActionDrop, ReasonMartianDest},
	fwdStatSTAT_DROP_URPF:            {ActionDrop, ReasonURPF},
	fwdStatSTAT_DROP_BLACKHOLE_SRC:   {ActionDrop, ReasonBlackholeSource},
	fwdStatSTAT_PASS_URPF_KERNEL:     {ActionPass, ReasonURPFKernelRoute},
	fwdStatSTAT_DROP_FILTER:          {ActionDrop, ReasonFilter},
	fwdStatSTAT_PASS_FILTER:          {ActionPass, ReasonFilter},
	fwdStatSTAT_DROP_RATE_LIMIT:      {ActionDrop, ReasonRateLimit},
	fwdStatSTAT_DROP_RULE:            {ActionDrop, ReasonRule},
	fwdStatSTAT_PASS_RULE:            {ActionPass, ReasonRule},
	fwdStatSTAT_PASS_RULE_KERNEL:     {ActionPass, ReasonRuleKernel},
	fwdStatSTAT_PASS_VLAN_UNKNOWN:    {ActionPass, ReasonVLANUnknown},
	fwdStatSTAT_PASS_VLAN_OTHER:      {ActionPass, ReasonVLANOther},
}

// StatCounter is one forwarding outcome of the XDP program, summed over all
// CPUs.
type StatCounter struct {
	Action  string // ActionRedirect, ActionDrop, ActionPass or ActionAborted
	Reason  string // one of the Reason* constants; empty for redirect and aborted
	Packets uint64
	Bytes   uint64 // frame lengths, Ethernet header included
}

// Stats returns one counter per outcome, in the order of enum stat.
func (d *Datapath) Stats() ([]StatCounter, error) {
	out := make([]StatCounter, 0, len(statNames))
	var perCPU []fwdCounter
	for i, n := range statNames {
		if err := d.objs.Stats.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("stats: lookup %s/%s (index %d): %w", n.action, n.reason, i, err)
		}
		c := StatCounter{Action: n.action, Reason: n.reason}
		for _, v := range perCPU {
			c.Packets += v.Packets
			c.Bytes += v.Bytes
		}
		out = append(out, c)
	}
	return out, nil
}
