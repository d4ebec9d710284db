// Package daemon wires xdprouterd together: the XDP data path, the kernel
// FIB watcher and writer, the sync layer, the BGP speaker and the HTTP API,
// and runs them until the context ends, then shuts them down in order.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/bypass"
	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/metrics"
	xsync "github.com/xdprouter/xdprouter/sync"
	"github.com/xdprouter/xdprouter/version"
)

// auditEvery is how often the XDP maps are checked against sync's state.
const auditEvery = 5 * time.Minute

// port is a router port resolved from its configured name.
type port struct {
	name    string
	ifindex int
	// xdp is the device XDP goes on: the port, or the parent of an 802.1Q
	// VLAN port (once for all its VLAN ports; see bpf/vlan.go).
	xdp int
}

// Run runs xdprouterd with a validated configuration until ctx ends (or a
// component fails), then shuts down: BGP, sync, the kernel routes it
// installed (unless fib.keep-routes-on-exit), the FIB handle, the data path.
// SIGHUP reloads the configuration file while it runs.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) (err error) {
	// Everything that can fail on bad input is checked before any kernel
	// state is touched.
	ports, err := resolvePorts(cfg.Dataplane.Interfaces)
	if err != nil {
		return err
	}
	mode, err := bpf.ParseMode(cfg.Dataplane.XDPMode)
	if err != nil {
		return err
	}
	lookup, err := bpf.ParseLookup(cfg.Dataplane.Lookup)
	if err != nil {
		return err
	}
	setMemory(cfg.Runtime, log)
	sd := defaultNotifier() // systemd readiness and watchdog (contrib/xdprouterd.service)
	ln, err := net.Listen("tcp", cfg.API.MetricsListen)
	if err != nil {
		return fmt.Errorf("api.metrics-listen: %w", err)
	}
	defer ln.Close()

	var (
		speaker *bgp.Speaker
		syncer  *xsync.Syncer
		dp      *bpf.Datapath
	)
	// Filters (config and Flowspec) are checked now, in force before the
	// first packet is forwarded.
	filterRules, err := configRules(cfg, ports)
	if err != nil {
		return err
	}
	filters := newFilterSet(log)
	if cfg.BGPEnabled() {
		speaker, err = bgp.New(bgp.Options{Config: cfg, Logger: log, OnBest: func(us []bgp.PathUpdate) {
			best := make([]xsync.BestPath, len(us))
			for i, u := range us {
				best[i] = xsync.BestPath{Table: u.Table, Prefix: u.Prefix, NextHops: u.NextHops, Peer: u.Peer, Backup: u.Backup, BackupPeer: u.BackupPeer, Blackhole: u.Blackhole}
			}
			syncer.Best(best)
		}, Backup: cfg.BGP.PIC, OnPeerDropped: func(a netip.Addr) { syncer.PeerDropped(a) },
			// Graceful restart: the F bit only when the pinned data plane
			// really survived; sessions closed without NOTIFICATION when it
			// outlives us; the previous instance's routes swept as soon as
			// every neighbor sent End-of-RIB (StaleAfter the upper bound).
			ForwardingPreserved: func() bool { return dp != nil && dp.Preserved() },
			GracefulStop:        cfg.Dataplane.KeepOnExit,
			OnInitialSync:       func() { syncer.SweepStale(); filters.release() },
			OnFlowspec:          filters.setFlowspec})
		if err != nil {
			return err
		}
	}

	if err := ensureBPFFS(cfg.Dataplane.PinPath, log); err != nil {
		return err
	}
	dp, err = bpf.Load(bpf.Options{PinPath: cfg.Dataplane.PinPath, Lookup: lookup, HashSeed: uint32(cfg.Dataplane.HashSeed)})
	if err != nil {
		return fmt.Errorf("load XDP program: %w", err)
	}
	switch {
	case dp.Preserved():
		log.Info("took over the pinned dataplane: XDP kept forwarding meanwhile", "pin-path", cfg.Dataplane.PinPath)
	case dp.Rebuilt() != "":
		log.Warn("pinned maps not reused as they were: rebuilt side by side", "pin-path", cfg.Dataplane.PinPath, "why", dp.Rebuilt())
	}
	// dataplane.hash-seed = this value reproduces the flows' members.
	log.Info("ECMP hash seed", "seed", dp.HashSeed())
	// Until the lifecycle owns them, a setup error closes what is open.
	var handles []closer
	handles = append(handles, closer{"data path", closeFunc(func() error {
		if cfg.Dataplane.KeepOnExit {
			log.Info("the dataplane keeps forwarding (dataplane.keep-on-exit; xdprouterd --teardown removes it)", "pin-path", cfg.Dataplane.PinPath)
			return dp.Close()
		}
		return dp.Teardown()
	})})
	owned := false
	defer func() {
		if !owned {
			closeAll(handles, log)
		}
	}()
	table, err := fib.Open(cfg.FIB.Table)
	if err != nil {
		return err
	}
	table.Protocol = cfg.FIB.Protocol
	handles = append([]closer{{"fib", closeFunc(func() error { table.Close(); return nil })}}, handles...)
	logVRFs(cfg, log.With("component", "vrf"))
	ptables := newPolicyTables(cfg)
	if err := setOwnRules(table, cfg, ptables.assign(cfg), log.With("component", "rules")); err != nil {
		return fmt.Errorf("policy rules of ours ([[vrf]], [[policy-route]]): %w", err)
	}

	var collector *metrics.Collector
	capacity := dp.Capacity()
	if cfg.FIB.NexthopObjects && !table.NexthopsSupported() {
		log.Warn("the kernel has no nexthop objects: BGP routes are installed with their next hops (fib.nexthop-objects)")
	}
	opts := xsync.Options{
		Datapath: dp, FIB: table, Log: log, Metric: cfg.FIB.Metric, Table: cfg.FIB.Table,
		Tables: vrfTables(cfg), PortTables: cfg.PortTables(),
		PolicyNextHops: policyNextHops(ptables.assign(cfg)), PolicyTableBase: cfg.FIB.PolicyTableBase,
		PolicyTableCount: config.MaxPolicyNextHops,
		MirrorTables:     cfg.MirrorTableFilter(),
		OnApply:          func(d time.Duration) { collector.ObserveApply(d) },
		// With pinned maps of another layout, the old program forwards
		// until the new maps hold the kernel's state.
		OnFirstApply: func() {
			if err := dp.SwapIn(); err != nil {
				log.Error("swap in the new program", "err", err)
			}
			// Type=notify: the ports are attached (before sync runs) and
			// the kernel's state is in both sinks.
			sd.ready(len(ports), log)
		},
		ResolveViaDefault: cfg.FIB.ResolveViaDefault,
		// Not with PIC: see sync/kernelnh.go (the kernel deletes routes by
		// nexthops on carrier loss before it says the link is down).
		NexthopObjects: cfg.FIB.NexthopObjects && !cfg.BGP.PIC && table.NexthopsSupported(),
		Adopt:          dp.Adopted(),
		MaxGroups:      capacity.Groups,
		MaxNextHops:    capacity.NextHops,
		AuditEvery:     auditEvery,
	}
	for _, p := range ports {
		opts.Ports = append(opts.Ports, p.name)
	}
	// A port deleted and created again (new ifindex) gets the program again.
	opts.OnPort = func(name string, ifindex int, present bool) {
		if !present {
			_ = dp.Detach(ifindex) // the kernel detached it with the device
			return
		}
		xdp, err := bpf.VLANParent(ifindex)
		if err != nil {
			log.Error("attach XDP to re-created port", "interface", name, "err", err)
			return
		}
		if _, ok := dp.AttachedMode(xdp); ok {
			return
		}
		if err := dp.Attach(xdp, mode); err != nil {
			log.Error("attach XDP to re-created port", "interface", name, "err", err)
			return
		}
		eff, _ := dp.AttachedMode(xdp)
		log.Info("XDP attached", "interface", name, "ifindex", ifindex, "device", xdp, "mode", eff)
	}
	if speaker != nil {
		opts.StaleAfter = bgp.StaleBound(cfg)
		opts.OnConnected = func(ps []netip.Prefix) {
			if err := speaker.SetConnected(ps); err != nil {
				log.Error("redistribute connected", "err", err)
			}
		}
	}
	syncer = xsync.New(opts)
	collector = metrics.New(dp, syncer)
	// Netfilter, ip rules and rp_filter of this namespace, which packets
	// XDP forwards never meet: logged, counted and in status.
	bypassed := &bypass.Watcher{Ports: opts.Ports, Log: log.With("component", "bypass")}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector, metrics.NewBypass(bypassed), metrics.NewFilters(dp, func() int { return len(filters.Rejected()) }),
		metrics.NewMaps(dp, syncer),
		// process_resident_memory_bytes and the Go runtime's go_* for
		// dashboards.
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	if speaker != nil {
		reg.MustRegister(speaker.Collector())
	}

	if err := filters.start(dp, filterRules, dp.Preserved() && speaker != nil, bgp.StaleBound(cfg)); err != nil {
		return err
	}
	if err := setURPF(dp, cfg.Dataplane, ports); err != nil {
		return err
	}
	var ifaces []api.Interface
	for _, p := range ports {
		// A VLAN port's parent once, whatever number of its VLANs are ports.
		if err := dp.Attach(p.xdp, mode); err != nil {
			return fmt.Errorf("attach XDP to %s: %w", p.name, err)
		}
		eff, _ := dp.AttachedMode(p.xdp)
		ifaces = append(ifaces, api.Interface{Name: p.name, Ifindex: p.ifindex, Mode: eff.String()})
		if p.xdp != p.ifindex {
			log.Info("XDP attached", "interface", p.name, "mode", eff, "vlan-parent", p.xdp)
		} else {
			log.Info("XDP attached", "interface", p.name, "mode", eff)
		}
	}
	for _, ifindex := range dp.ReleaseAdopted() {
		log.Info("XDP detached from a port no longer configured", "ifindex", ifindex)
	}

	reg.MustRegister(metrics.NewBuildInfo(version.Get()))
	backend := api.Backend{Datapath: dp, Sync: syncer, BGP: speaker, Interfaces: ifaces, Bypass: bypassed, Rejected: filters.Rejected}
	srv := &http.Server{Handler: newMux(cfg.API, reg, api.Handler(backend)), ReadHeaderTimeout: 5 * time.Second}

	c := components{
		log:     log,
		sync:    syncer,
		handles: handles,
		watch: func(ctx context.Context, events chan<- any) error {
			return (&fib.Watcher{Protocol: cfg.FIB.Protocol, Log: log.With("component", "fib")}).Run(ctx, events)
		},
		serve: func(ctx context.Context) error {
			shut := make(chan struct{})
			go func() {
				defer close(shut)
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("api server: %w", err)
			}
			// Serve returns at once; requests still running use the data
			// path, which is closed after this returns.
			<-shut
			return nil
		},
		keepRoutes: cfg.FIB.KeepRoutesOnExit,
		background: []func(context.Context) error{bypassed.Run, sd.lifecycle(syncer.Alive, log.With("component", "watchdog"))},
	}
	if speaker != nil {
		c.bgp = speaker
	}
	c.reload = func(ctx context.Context) {
		reloadOnHangup(ctx, cfg, speaker, reloadable{filters, dp, ports, table, syncer, ptables}, log)
	}
	log.Info("xdprouterd running", "version", version.Get().Version, "commit", version.Get().Commit, "interfaces", len(ports), "table", cfg.FIB.Table,
		"metrics", cfg.API.MetricsListen, "bgp", cfg.BGPEnabled(), "pprof", cfg.API.PProf)
	owned = true
	return c.run(ctx)
}

// newMux serves /metrics, xdprouterctl's /api/ and, only when api.pprof is
// set, Go's profiles under /debug/pprof/.
func newMux(a config.API, reg prometheus.Gatherer, apiHandler http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/api/", apiHandler)
	if a.PProf {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// Contention and blocking too (/debug/pprof/mutex, /block):
		// sampled, cheap, and only while profiling is on.
		runtime.SetMutexProfileFraction(100)
		runtime.SetBlockProfileRate(int(time.Millisecond))
	}
	return mux
}

// resolvePorts maps interface names to indexes, reporting every missing
// one, and finds the device XDP goes on for each.
func resolvePorts(names []string) ([]port, error) {
	var out []port
	var errs []error
	for _, n := range names {
		l, err := netlink.LinkByName(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("dataplane.interfaces: %q: %w", n, err))
			continue
		}
		xdp, err := bpf.VLANParent(l.Attrs().Index)
		if err != nil {
			errs = append(errs, fmt.Errorf("dataplane.interfaces: %q: its VLAN parent: %w", n, err))
			continue
		}
		out = append(out, port{name: n, ifindex: l.Attrs().Index, xdp: xdp})
	}
	return out, errors.Join(errs...)
}

// ensureBPFFS makes sure the pin path's parent is a bpf filesystem. The
// standard /sys/fs/bpf is mounted if needed (it is not inside `ip netns
// exec`, which remounts /sys); other places must be mounted by the operator.
func ensureBPFFS(pin string, log *slog.Logger) error {
	if pin == "" {
		return nil
	}
	dir := filepath.Dir(pin)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if dir != "/sys/fs/bpf" && !strings.HasPrefix(dir, "/sys/fs/bpf/") {
		return fmt.Errorf("dataplane.pin-path %s: %s is not a bpf filesystem (mount -t bpf bpf %s)", pin, dir, dir)
	}
	if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("dataplane.pin-path %s: mount bpffs on /sys/fs/bpf: %w", pin, err)
	}
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	pid1, err2 := os.Readlink("/proc/1/ns/mnt")
	if err1 == nil && err2 == nil && self != pid1 {
		// E.g. under `ip netns exec`, whose /sys is the command's own.
		log.Warn("mounted bpffs on /sys/fs/bpf in a mount namespace of this process's own: the pinned dataplane will not outlive it (mount a bpffs that persists and point dataplane.pin-path there)", "pin-path", pin)
	}
	return nil
}
