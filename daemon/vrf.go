package daemon

import (
	"log/slog"

	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/fib"
)

// VRF-lite (issue 11). Each [[vrf]] is a kernel table and policy rules of
// xdprouterd's own, marked with fib.protocol so that they are told apart
// from the operator's: for each port of the instance and each family,
//
//	PRIO:   iif PORT lookup TABLE
//	PRIO+1: iif PORT unreachable
//
// so that traffic arriving on an instance's port is routed by its table
// and never falls through to the main table (or another instance's).
// Unreachable rather than blackhole: the sender gets an ICMP "network
// unreachable" (rate-limited by the kernel), as from a router without a
// route, which makes a missing route diagnosable (ping, traceroute) where
// a blackhole would drop silently. The local table's rule (priority 0)
// still comes first: the router's own addresses answer on every port, as
// they do without VRF devices.
//
// The rules are reconciled at start (those of ours not wanted any more,
// e.g. of a [[vrf]] removed while the daemon was stopped, are deleted) and
// stay when the daemon stops: the pinned dataplane outlives it, and XDP
// mirrors the kernel's rules, so forwarding by instance goes on across a
// restart. `xdprouterd --teardown` removes them. The connected routes of
// the instances' ports, and their BGP routes, are sync's (Options.Tables,
// PortTables): installed in the instance's table as routes of ours.

// vrfRules returns the policy rules the [[vrf]]s want.
func vrfRules(cfg *config.Config) []fib.OwnRule {
	var out []fib.OwnRule
	for _, v := range cfg.VRFs {
		for _, port := range v.Interfaces {
			for _, fam := range []int{4, 6} {
				out = append(out,
					fib.OwnRule{Family: fam, Priority: v.RulePriority, Iif: port, Table: v.Table},
					fib.OwnRule{Family: fam, Priority: v.RulePriority + 1, Iif: port})
			}
		}
	}
	return out
}

// vrfTables lists the kernel tables of the [[vrf]]s.
func vrfTables(cfg *config.Config) []int {
	var out []int
	for _, v := range cfg.VRFs {
		out = append(out, v.Table)
	}
	return out
}

// logVRFs logs the instances configured.
func logVRFs(cfg *config.Config, log *slog.Logger) {
	if len(cfg.VRFs) > 0 {
		log.Info("VRF-lite instances", "count", len(cfg.VRFs), "rules", len(vrfRules(cfg)))
	}
}
