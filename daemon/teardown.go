package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/route"
)

// Teardown removes what a stopped xdprouterd leaves running (see
// dataplane.keep-on-exit): the pinned XDP links (the program leaves the
// ports) and maps, the kernel routes of fib.protocol in fib.table and its
// kernel nexthop objects. It refuses while a daemon holds the pin path.
func Teardown(cfg *config.Config, log *slog.Logger) error {
	if pin := cfg.Dataplane.PinPath; pin != "" {
		if _, err := os.Stat(pin); err == nil {
			if err := bpf.Teardown(pin); err != nil {
				if errors.Is(err, bpf.ErrPinPathBusy) {
					return fmt.Errorf("dataplane.pin-path %s: %w: stop it first", pin, err)
				}
				return fmt.Errorf("remove the pinned dataplane: %w", err)
			}
			log.Info("removed the pinned dataplane", "pin-path", pin)
		}
	}
	table, err := fib.Open(cfg.FIB.Table)
	if err != nil {
		return err
	}
	defer table.Close()
	table.Protocol = cfg.FIB.Protocol
	ours, err := fib.DumpOurs(cfg.FIB.Table, cfg.FIB.Protocol)
	if err != nil {
		return err
	}
	var policy []int
	for _, t := range newPolicyTables(cfg).of {
		policy = append(policy, t)
	}
	for _, vt := range append(vrfTables(cfg), policy...) {
		vrf, err := fib.DumpOurs(vt, cfg.FIB.Protocol)
		if err != nil {
			return err
		}
		ours = append(ours, vrf...)
	}
	ops := make([]route.Change, len(ours))
	for i, r := range ours {
		ops[i] = route.Change{Delete: true, Route: r}
	}
	var errs []error
	if _, deleted, err := table.SetOwnRules(nil); err != nil {
		errs = append(errs, err)
	} else if len(deleted) > 0 {
		log.Info("removed xdprouterd's policy rules ([[vrf]], [[policy-route]])", "rules", len(deleted))
	}
	for _, err := range table.Apply(ops) {
		if err != nil && len(errs) < 10 {
			errs = append(errs, err)
		}
	}
	nhs, groups := 0, 0
	if table.NexthopsSupported() {
		singles, gs, err := table.Nexthops()
		if err != nil {
			errs = append(errs, err)
		}
		// Groups before the nexthops they hold.
		var del []route.NexthopChange
		for _, g := range gs {
			del = append(del, route.NexthopChange{Delete: true, Group: route.NexthopGroup{ID: g.ID}})
		}
		for _, n := range singles {
			del = append(del, route.NexthopChange{Delete: true, Nexthop: route.Nexthop{ID: n.ID}})
		}
		for _, err := range table.ApplyNexthops(del) {
			if err != nil && len(errs) < 10 {
				errs = append(errs, err)
			}
		}
		nhs, groups = len(singles), len(gs)
	}
	log.Info("removed xdprouterd's kernel routes and nexthop objects", "table", cfg.FIB.Table,
		"protocol", cfg.FIB.Protocol, "routes", len(ours), "nexthops", nhs, "groups", groups)
	return errors.Join(errs...)
}
