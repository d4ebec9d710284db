// Command xdprouterd is the xdprouter daemon: it attaches the XDP forwarder
// to the router ports, mirrors the kernel's routes and neighbors (and BGP
// best paths) into its maps, and installs BGP routes into the kernel FIB.
// The wiring and lifecycle are in package daemon.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/daemon"
	"github.com/xdprouter/xdprouter/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xdprouterd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "configuration `file` (TOML)")
	check := fs.Bool("check", false, "only validate the configuration and exit")
	teardown := fs.Bool("teardown", false, "remove what a stopped xdprouterd left running (the pinned XDP dataplane, its kernel routes and nexthop objects) and exit")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	showVersion := fs.Bool("version", false, "print the version and commit and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "xdprouterd %s\n", version.Get())
		return 0
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
	if *teardown {
		if err := daemon.Teardown(cfg, log); err != nil {
			log.Error("teardown", "err", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, cfg, log); err != nil {
		log.Error("xdprouterd failed", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
