// Command xdprouterd is the xdprouter daemon: it attaches the XDP forwarder
// to the router ports, mirrors the kernel's routes and neighbors (and BGP
// best paths) into its maps, and installs BGP routes into the kernel FIB.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/metrics"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// DefaultConfig is where xdprouterd and xdprouterctl look without --config.
const DefaultConfig = "/etc/xdprouter/xdprouter.toml"

// staleAfter is how long routes a previous instance left in the kernel are
// kept while BGP re-learns them.
const staleAfter = 30 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("xdprouterd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", DefaultConfig, "configuration `file` (TOML)")
	check := fs.Bool("check", false, "only validate the configuration and exit")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "xdprouterd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "xdprouterd: --log-level: %v\n", err)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "xdprouterd: invalid configuration:\n%v\n", err)
		return 2
	}
	if *check {
		fmt.Fprintf(stderr, "%s: ok\n", *path)
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := daemon(ctx, cfg, log); err != nil {
		log.Error("xdprouterd failed", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// port is a router port resolved from its configured name.
type port struct {
	name    string
	ifindex int
}

func daemon(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
	ln, err := net.Listen("tcp", cfg.API.MetricsListen)
	if err != nil {
		return fmt.Errorf("api.metrics-listen: %w", err)
	}
	defer ln.Close()

	var (
		speaker *bgp.Speaker
		syncer  *xsync.Syncer
	)
	if cfg.BGPEnabled() {
		speaker, err = bgp.New(bgp.Options{Config: cfg, Logger: log, OnBest: func(us []bgp.PathUpdate) {
			best := make([]xsync.BestPath, len(us))
			for i, u := range us {
				best[i] = xsync.BestPath(u)
			}
			syncer.Best(best)
		}})
		if err != nil {
			return err
		}
	}

	if err := ensureBPFFS(cfg.Dataplane.PinPath); err != nil {
		return err
	}
	dp, err := bpf.Load(bpf.Options{PinPath: cfg.Dataplane.PinPath})
	if err != nil {
		return fmt.Errorf("load XDP program: %w", err)
	}
	defer func() {
		if err := dp.Close(); err != nil {
			log.Error("close data path", "err", err)
		}
	}()
	table, err := fib.Open(cfg.FIB.Table)
	if err != nil {
		return err
	}
	defer table.Close()

	var collector *metrics.Collector
	opts := xsync.Options{
		Datapath: dp, FIB: table, Log: log, Metric: cfg.FIB.Metric,
		OnApply: func(d time.Duration) { collector.ObserveApply(d) },
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
		if _, ok := dp.AttachedMode(ifindex); ok {
			return
		}
		if err := dp.Attach(ifindex, mode); err != nil {
			log.Error("attach XDP to re-created port", "interface", name, "err", err)
			return
		}
		eff, _ := dp.AttachedMode(ifindex)
		log.Info("XDP attached", "interface", name, "ifindex", ifindex, "mode", eff)
	}
	if speaker != nil {
		opts.StaleAfter = staleAfter
		opts.OnConnected = func(ps []netip.Prefix) {
			if err := speaker.SetConnected(ps); err != nil {
				log.Error("redistribute connected", "err", err)
			}
		}
	}
	syncer = xsync.New(opts)
	collector = metrics.New(dp, syncer)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector)
	if speaker != nil {
		reg.MustRegister(speaker.Collector())
	}

	var ifaces []api.Interface
	for _, p := range ports {
		if err := dp.Attach(p.ifindex, mode); err != nil {
			return fmt.Errorf("attach XDP to %s: %w", p.name, err)
		}
		eff, _ := dp.AttachedMode(p.ifindex)
		ifaces = append(ifaces, api.Interface{Name: p.name, Ifindex: p.ifindex, Mode: eff.String()})
		log.Info("XDP attached", "interface", p.name, "mode", eff)
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index) // profiles for diagnosis, on the local API address
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.Handle("/api/", api.Handler(api.Backend{Datapath: dp, Sync: syncer, BGP: speaker, Interfaces: ifaces}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	events := make(chan any, 4096)
	g.Go(func() error {
		return (&fib.Watcher{Table: cfg.FIB.Table, Log: log.With("component", "fib")}).Run(gctx, events)
	})
	g.Go(func() error { return syncer.Run(gctx, events) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("api server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	if speaker != nil {
		if err := speaker.Start(gctx); err != nil {
			cancel()
			return errors.Join(err, g.Wait())
		}
		g.Go(func() error {
			<-gctx.Done()
			speaker.Stop()
			return nil
		})
	}
	go reloadOnHangup(gctx, cfg, speaker, log)
	log.Info("xdprouterd running", "interfaces", len(ports), "table", cfg.FIB.Table,
		"metrics", cfg.API.MetricsListen, "bgp", cfg.BGPEnabled())
	err = g.Wait()
	// Shutdown order: BGP (above), then sync (stopped by ctx), then what we
	// installed in the kernel, then the XDP program (deferred Close).
	if cfg.FIB.KeepRoutesOnExit {
		c := syncer.Counts()
		log.Info("keeping installed routes in the kernel (fib.keep-routes-on-exit)", "ipv4", c.FIB4, "ipv6", c.FIB6)
	} else if rerr := syncer.RemoveKernelRoutes(); rerr != nil {
		log.Error("remove kernel routes", "err", rerr)
	}
	return err
}

// resolvePorts maps interface names to indexes, reporting every missing one.
func resolvePorts(names []string) ([]port, error) {
	var out []port
	var errs []error
	for _, n := range names {
		l, err := netlink.LinkByName(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("dataplane.interfaces: %q: %w", n, err))
			continue
		}
		out = append(out, port{name: n, ifindex: l.Attrs().Index})
	}
	return out, errors.Join(errs...)
}

// ensureBPFFS makes sure the pin path's parent is a bpf filesystem. The
// standard /sys/fs/bpf is mounted if needed (it is not inside `ip netns
// exec`, which remounts /sys); other places must be mounted by the operator.
func ensureBPFFS(pin string) error {
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
	return nil
}

// reloadOnHangup answers SIGHUP (which would otherwise kill the daemon):
// it re-reads and validates the configuration and applies the difference
// live where it can (BGP neighbors, networks, sets, policies). A change
// that needs a restart (api, dataplane, fib, router identity, BGP on/off)
// is refused as a whole and the running configuration stays.
func reloadOnHangup(ctx context.Context, running *config.Config, speaker *bgp.Speaker /* nil: BGP off */, log *slog.Logger) {
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
		if speaker != nil { // without BGP nothing else can change live
			if err := speaker.Reload(ctx, cfg); err != nil {
				log.Error("SIGHUP: reload failed", "file", path, "err", err)
				continue
			}
		}
		running = cfg
		log.Info("SIGHUP: configuration reloaded", "file", path)
	}
}

// restartOnly names the changed sections that cannot change while running.
// (bgp.Speaker.Reload refuses the BGP keys of this kind itself.)
func restartOnly(old, new *config.Config) []string {
	var keys []string
	if !reflect.DeepEqual(old.API, new.API) {
		keys = append(keys, "api")
	}
	if !reflect.DeepEqual(old.Dataplane, new.Dataplane) {
		keys = append(keys, "dataplane")
	}
	if !reflect.DeepEqual(old.FIB, new.FIB) {
		keys = append(keys, "fib")
	}
	if old.BGPEnabled() != new.BGPEnabled() {
		keys = append(keys, "router.asn (BGP on/off)")
	}
	return keys
}
