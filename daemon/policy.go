package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	gosync "sync"

	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/fib"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// Policy routes ([[policy-route]], issue 11). Each is one kernel policy
// rule of ours per family (marked with fib.protocol, like the VRF rules:
// both are one desired set, reconciled by fib.SetOwnRules at start and on
// SIGHUP), with the route's selectors and
//
//	table = N          lookup N
//	action = X         X (blackhole, unreachable, prohibit)
//	next-hop = ADDR    lookup T, T the next hop's table; with a fallback
//	                   other than "table", a second rule at priority + 1
//	                   with the same selectors and that action.
//
// T is one of fib.policy-table-base .. +MaxPolicyNextHops-1, one per
// distinct next hop. Sync keeps T's only route, "default via ADDR" (of
// ours), there exactly while ADDR is usable (sync/policy.go): while it is
// not, T is empty, the lookup finds nothing and the next rule decides (or
// the fallback rule refuses the traffic). The kernel and XDP (which
// mirrors every table and evaluates the rules) need nothing else, and
// `ip rule` and `ip route get` tell the truth.
//
// Tables are assigned in the order next hops first appear in the config
// at start; on SIGHUP a next hop keeps its table and a new one takes the
// lowest free table, so that a reload never moves a rule between tables.

// policyTables assigns the policy next hops their tables.
type policyTables struct {
	mu   gosync.Mutex
	base int
	of   map[netip.Addr]int
}

func newPolicyTables(cfg *config.Config) *policyTables {
	p := &policyTables{base: cfg.FIB.PolicyTableBase, of: map[netip.Addr]int{}}
	p.assign(cfg)
	return p
}

// assign gives every next hop of cfg a table, keeping the tables of next
// hops assigned before, and forgets next hops cfg no longer has. It
// returns the new assignment.
func (p *policyTables) assign(cfg *config.Config) map[netip.Addr]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := cfg.PolicyNextHops()
	of := map[netip.Addr]int{}
	used := map[int]bool{}
	for _, a := range want {
		if t, ok := p.of[a]; ok {
			of[a] = t
			used[t] = true
		}
	}
	next := p.base
	for _, a := range want {
		if _, ok := of[a]; ok {
			continue
		}
		for used[next] {
			next++
		}
		of[a], used[next] = next, true
	}
	p.of = of
	return of
}

// nextHops is the sync input for an assignment.
func policyNextHops(of map[netip.Addr]int) []xsync.PolicyNextHop {
	out := make([]xsync.PolicyNextHop, 0, len(of))
	for a, t := range of {
		out = append(out, xsync.PolicyNextHop{Table: t, Addr: a})
	}
	slices.SortFunc(out, func(a, b xsync.PolicyNextHop) int { return a.Table - b.Table })
	return out
}

// policyRules returns the rules of the [[policy-route]]s, with the next
// hops' tables of.
func policyRules(cfg *config.Config, of map[netip.Addr]int) ([]fib.OwnRule, error) {
	specs, err := cfg.PolicyRouteSpecs()
	if err != nil {
		return nil, err
	}
	var out []fib.OwnRule
	for _, s := range specs {
		for _, fam := range s.Families {
			r := fib.OwnRule{Family: fam, Priority: s.Priority, Iif: s.In, Src: s.From, Dst: s.To,
				IPProto: s.Protocol, Sport: s.Sport, Dport: s.Dport, Tos: s.TOS}
			switch {
			case s.Table != 0:
				r.Table = s.Table
			case s.Reject != "":
				r.Action = rejectAction(s.Reject)
			case s.NextHop.IsValid():
				t, ok := of[s.NextHop]
				if !ok {
					return nil, fmt.Errorf("policy route %q: next hop %s has no table", s.Name, s.NextHop)
				}
				r.Table = t
				if s.Fallback != "" && s.Fallback != config.PolicyFallbackTable {
					f := r
					f.Priority, f.Table, f.Action = s.Priority+1, 0, rejectAction(s.Fallback)
					out = append(out, r, f)
					continue
				}
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func rejectAction(s string) uint8 {
	switch s {
	case config.PolicyBlackhole:
		return fib.RuleBlackhole
	case config.PolicyProhibit:
		return fib.RuleProhibit
	}
	return fib.RuleUnreachable
}

// setOwnRules reconciles the kernel's rules of ours with the [[vrf]]s and
// the [[policy-route]]s (next hops' tables of): one desired set.
func setOwnRules(t *fib.Table, cfg *config.Config, of map[netip.Addr]int, log *slog.Logger) error {
	pr, err := policyRules(cfg, of)
	if err != nil {
		return err
	}
	want := append(vrfRules(cfg), pr...)
	added, deleted, err := t.SetOwnRules(want)
	for _, r := range added {
		log.Info("policy rule of ours added", "rule", r.String())
	}
	for _, r := range deleted {
		log.Info("policy rule of ours no longer configured: deleted", "rule", r.String())
	}
	return err
}
