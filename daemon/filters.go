package daemon

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/filter"
)

// filterSet is the filter rule set in XDP: the configuration's rules
// first (the operator's policy), then the Flowspec rules in RFC 8955
// order, compiled and written as one set on every change of either.
type filterSet struct {
	mu       sync.Mutex
	dp       *bpf.Datapath
	log      *slog.Logger
	config   []filter.Rule
	flowspec []filter.Rule
	rejected []bgp.Rejected // by bgp (infeasible, unsupported)
	overflow []bgp.Rejected // Flowspec rules beyond filter.MaxRules
	// held: the set a previous instance left in the pinned maps stays in
	// force until BGP has re-learned the Flowspec rules (release), so a
	// restart does not lift them for the seconds BGP takes.
	held bool
}

// newFilterSet makes the set before the datapath exists (BGP's callback
// is wired first); start gives it the datapath.
func newFilterSet(log *slog.Logger) *filterSet {
	return &filterSet{log: log.With("component", "filters")}
}

// start puts the configuration's rules, and any Flowspec rules received
// meanwhile, in force in dp. With hold (a pinned dataplane taken over,
// BGP on) the previous instance's set stays until release, or until
// holdFor has passed.
func (f *filterSet) start(dp *bpf.Datapath, rules []filter.Rule, hold bool, holdFor time.Duration) error {
	if len(rules) > filter.MaxRules {
		return fmt.Errorf("filters: %d rules, at most %d", len(rules), filter.MaxRules)
	}
	if _, err := filter.Compile(rules); err != nil {
		return err
	}
	f.mu.Lock()
	f.dp = dp
	if hold {
		f.config, f.held = rules, true
		f.mu.Unlock()
		f.log.Info("the previous instance's filters stay in force until BGP has re-learned the Flowspec rules", "at-most", holdFor)
		time.AfterFunc(holdFor, f.release)
		return nil
	}
	f.mu.Unlock()
	return f.setConfig(rules)
}

// release ends the hold of start: BGP has converged (or the bound has
// passed); the set of now is written.
func (f *filterSet) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held {
		return
	}
	f.held = false
	if err := f.apply(); err != nil {
		f.log.Error("filters not applied; the previous set stays in force", "err", err)
	}
}

// configRules resolves the configuration's [[filter]] rules against the
// ports (name → ifindex).
func configRules(cfg *config.Config, ports []port) ([]filter.Rule, error) {
	return cfg.FilterRules(func(name string) (int, error) {
		for _, p := range ports {
			if p.name == name {
				return p.ifindex, nil
			}
		}
		return 0, fmt.Errorf("interface %q is not a router port", name)
	})
}

// setConfig puts the configuration's rules in force; on error nothing
// changes.
func (f *filterSet) setConfig(rules []filter.Rule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(rules) > filter.MaxRules {
		return fmt.Errorf("filters: %d rules, at most %d", len(rules), filter.MaxRules)
	}
	old := f.config
	f.config, f.held = rules, false // the operator's reload ends a hold
	if err := f.apply(); err != nil {
		f.config = old
		return err
	}
	return nil
}

// setFlowspec is bgp's OnFlowspec: the complete Flowspec set.
func (f *filterSet) setFlowspec(rules []filter.Rule, rejected []bgp.Rejected) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flowspec, f.rejected = rules, rejected
	if err := f.apply(); err != nil {
		f.log.Error("Flowspec rules not applied; the previous set stays in force", "err", err)
	}
}

// apply compiles and writes the set. Flowspec rules that do not fit
// after the configuration's are left out, with a reason. Callers hold mu.
func (f *filterSet) apply() error {
	if f.dp == nil || f.held {
		return nil // start or release applies them
	}
	room := filter.MaxRules - len(f.config)
	fs := f.flowspec
	f.overflow = nil
	if len(fs) > room {
		for _, r := range fs[room:] {
			f.overflow = append(f.overflow, bgp.Rejected{Name: r.Name, Peer: r.Peer,
				Reason: fmt.Sprintf("filter table full (%d rules)", filter.MaxRules)})
		}
		f.log.Warn("filter table full: Flowspec rules left out", "rules", len(f.config)+len(fs), "max", filter.MaxRules, "left-out", len(fs)-room)
		fs = fs[:room]
	}
	all := append(append([]filter.Rule(nil), f.config...), fs...)
	c, err := filter.Compile(all)
	if err != nil {
		return err
	}
	if err := f.dp.SetFilters(c); err != nil {
		return err
	}
	f.log.Info("filters in force", "config", len(f.config), "flowspec", len(fs), "fields", fmt.Sprintf("%#x", c.Fields), "classes", len(c.Bitmaps))
	return nil
}

// Rejected lists the Flowspec rules not in force, with the reason.
func (f *filterSet) Rejected() []bgp.Rejected {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(append([]bgp.Rejected(nil), f.rejected...), f.overflow...)
}

// setURPF sets every port's uRPF mode from the configuration.
func setURPF(dp *bpf.Datapath, d config.Dataplane, ports []port) error {
	for _, p := range ports {
		m, err := bpf.ParseURPF(d.URPFMode(p.name))
		if err != nil {
			return fmt.Errorf("dataplane: %s: %w", p.name, err)
		}
		if err := dp.SetURPF(p.ifindex, m); err != nil {
			return err
		}
	}
	return nil
}
