package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// notifier speaks the service manager's notify protocol (sd_notify(3)):
// one datagram per message to the Unix socket in $NOTIFY_SOCKET ("@..."
// is an abstract socket). Without it (not under systemd, or not
// Type=notify) every call is a no-op. No libsystemd, no dependency.
type notifier struct {
	addr string
	// watchdog is $WATCHDOG_USEC when $WATCHDOG_PID is unset or names this
	// process; 0: no watchdog.
	watchdog time.Duration
}

// notifierFromEnv reads the environment the service manager sets.
func notifierFromEnv(getenv func(string) string, pid int) *notifier {
	n := &notifier{addr: getenv("NOTIFY_SOCKET")}
	if n.addr == "" {
		return n
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return n // meant for another process (e.g. our parent)
	}
	if us, err := strconv.ParseUint(getenv("WATCHDOG_USEC"), 10, 63); err == nil && us > 0 {
		n.watchdog = time.Duration(us) * time.Microsecond
	}
	return n
}

// defaultNotifier is the notifier of this process.
func defaultNotifier() *notifier { return notifierFromEnv(os.Getenv, os.Getpid()) }

// notify sends state, e.g. "READY=1" or "WATCHDOG=1\nSTATUS=...".
func (n *notifier) notify(state string) error {
	if n == nil || n.addr == "" {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.addr, err)
	}
	return nil
}

// runWatchdog sends WATCHDOG=1 every half watchdog period until ctx ends,
// but only while alive returns nil: a wedged sync worker stops the pings
// and the service manager restarts xdprouterd (Restart=on-failure), whose
// pinned dataplane keeps forwarding meanwhile. alive is given the age of
// progress that still counts as alive: the period, at least 2 s (the idle
// worker turns once a second), so a worker stuck for one to two periods
// is restarted.
func (n *notifier) runWatchdog(ctx context.Context, alive func(maxAge time.Duration) error, log *slog.Logger) {
	if n == nil || n.addr == "" || n.watchdog <= 0 {
		return
	}
	every := n.watchdog / 2
	maxAge := max(n.watchdog, 2*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	healthy := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := alive(maxAge); err != nil {
			if healthy {
				log.Error("withholding the watchdog ping: the service manager will restart xdprouterd", "err", err, "watchdog", n.watchdog)
			}
			healthy = false
			continue
		}
		if !healthy {
			log.Info("sync worker progressing again: watchdog pings resumed")
		}
		healthy = true
		if err := n.notify("WATCHDOG=1"); err != nil {
			log.Warn("watchdog ping", "err", err)
		}
	}
}

// ready tells the service manager that xdprouterd is up: XDP attached to
// every port and the first snapshot of the kernel's state in both sinks.
func (n *notifier) ready(ports int, log *slog.Logger) {
	if err := n.notify(fmt.Sprintf("READY=1\nSTATUS=forwarding: XDP on %d ports, first snapshot applied", ports)); err != nil {
		log.Warn("tell the service manager we are ready", "err", err)
	}
}

// lifecycle returns a component for components.background: the watchdog
// pings until ctx ends, then STOPPING=1.
func (n *notifier) lifecycle(alive func(time.Duration) error, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		n.runWatchdog(ctx, alive, log)
		<-ctx.Done()
		_ = n.notify("STOPPING=1")
		return nil
	}
}
