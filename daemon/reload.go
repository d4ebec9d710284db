package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/filter"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// reloadOnHangup answers SIGHUP (which would otherwise kill the daemon):
// it re-reads and validates the configuration and applies the difference
// live where it can (BGP neighbors, networks, sets, policies, filters,
// uRPF, policy routes). A change
// that needs a restart (api, dataplane, fib, router identity, BGP on/off)
// is refused as a whole and the running configuration stays.
func reloadOnHangup(ctx context.Context, running *config.Config, speaker *bgp.Speaker /* nil: BGP off */, live reloadable, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	path := running.File
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := config.Load(path)
		if err != nil {
			log.Error("SIGHUP: configuration invalid; running configuration unchanged", "file", path, "err", err)
			continue
		}
		if cfg.Equal(running) {
			log.Info("SIGHUP: configuration unchanged", "file", path)
			continue
		}
		if keys := restartOnly(running, cfg); len(keys) > 0 {
			log.Error("SIGHUP: these changes need a restart; nothing applied", "file", path, "keys", strings.Join(keys, ", "))
			continue
		}
		rules, err := configRules(cfg, live.ports)
		if err == nil {
			_, err = filter.Compile(rules)
		}
		if err != nil {
			log.Error("SIGHUP: filters invalid; running configuration unchanged", "file", path, "err", err)
			continue
		}
		if speaker != nil {
			if err := speaker.Reload(ctx, cfg); err != nil {
				log.Error("SIGHUP: reload failed", "file", path, "err", err)
				continue
			}
		}
		if err := live.filters.setConfig(rules); err != nil {
			log.Error("SIGHUP: filters not applied", "file", path, "err", err)
		}
		if err := setURPF(live.dp, cfg.Dataplane, live.ports); err != nil {
			log.Error("SIGHUP: uRPF not applied", "file", path, "err", err)
		}
		if !reflect.DeepEqual(running.PolicyRoutes, cfg.PolicyRoutes) && live.policy != nil {
			// Routes in the next hops' tables first, then the rules.
			of := live.policy.assign(cfg)
			live.sync.SetPolicyNextHops(policyNextHops(of))
			if err := setOwnRules(live.fib, cfg, of, log.With("component", "rules")); err != nil {
				log.Error("SIGHUP: policy routes not (all) applied", "file", path, "err", err)
			}
		}
		if running.Runtime != cfg.Runtime {
			setMemory(cfg.Runtime, log)
		}
		running = cfg
		log.Info("SIGHUP: configuration reloaded", "file", path)
	}
}

// reloadable is what SIGHUP changes besides BGP: filters, uRPF and
// policy routes.
type reloadable struct {
	filters *filterSet
	dp      *bpf.Datapath
	ports   []port
	fib     *fib.Table
	sync    *xsync.Syncer
	policy  *policyTables
}

// restartOnly names the changed sections that cannot change while running.
// (bgp.Speaker.Reload refuses the BGP keys of this kind itself.)
func restartOnly(old, new *config.Config) []string {
	var keys []string
	if !reflect.DeepEqual(old.API, new.API) {
		keys = append(keys, "api")
	}
	// uRPF modes change live.
	od, nd := old.Dataplane, new.Dataplane
	od.URPF, od.URPFPorts, nd.URPF, nd.URPFPorts = "", nil, "", nil
	if !reflect.DeepEqual(od, nd) {
		keys = append(keys, "dataplane")
	}
	if !reflect.DeepEqual(old.FIB, new.FIB) {
		keys = append(keys, "fib")
	}
	if !reflect.DeepEqual(old.VRFs, new.VRFs) {
		// Tables, ports, rules and GoBGP VRFs are set up at start. Moving
		// a neighbor between existing instances (neighbor.vrf) is live.
		keys = append(keys, "vrf (adding, removing or changing a [[vrf]])")
	}
	if old.BGPEnabled() != new.BGPEnabled() {
		keys = append(keys, "router.asn (BGP on/off)")
	}
	return keys
}
