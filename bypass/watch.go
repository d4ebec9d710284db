package bypass

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// DefaultEvery is how often a Watcher checks without a notification.
const DefaultEvery = 10 * time.Second

// settle lets a burst of notifications (nft -f, iptables-restore) end
// before the check that follows it.
const settle = 200 * time.Millisecond

// A Watcher checks at start, again soon after nf_tables or an
// IPv4 netconf setting (rp_filter) changes, and every Every; it logs the
// findings (WARN, one line each with what to do) whenever they change.
type Watcher struct {
	Ports []string
	Log   *slog.Logger
	Every time.Duration // 0: DefaultEvery
	// NetNS is a file descriptor of the network namespace to watch; 0 is
	// the caller's.
	NetNS int
	// OnChange, if set, is called with the findings after the first check
	// and after every change.
	OnChange func([]Finding)

	mu       sync.Mutex
	findings []Finding
	checked  bool
	lastErr  string
}

// Findings returns the findings of the last check (nil before the first).
func (w *Watcher) Findings() []Finding {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.findings)
}

// Run checks until ctx ends. It returns nil: a failed check is logged and
// retried, it does not stop the router.
func (w *Watcher) Run(ctx context.Context) error {
	every := w.Every
	if every <= 0 {
		every = DefaultEvery
	}
	wake := make(chan struct{}, 1)
	stop := w.subscribe(wake)
	defer stop()
	w.Recheck()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-wake:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(settle):
			}
			select {
			case <-wake:
			default:
			}
		}
		w.Recheck()
	}
}

// Recheck checks now, records the findings and logs a change.
func (w *Watcher) Recheck() {
	fs, err := CheckAt(w.NetNS, w.Ports)
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	w.mu.Lock()
	first := !w.checked
	old := w.findings
	changed := first || !slices.Equal(old, fs)
	w.findings, w.checked = fs, true
	errChanged := errText != w.lastErr
	w.lastErr = errText
	w.mu.Unlock()

	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err != nil && errChanged {
		log.Warn("cannot read all the kernel policy XDP might bypass", "err", err)
	}
	if !changed {
		return
	}
	for _, f := range old {
		if !slices.Contains(fs, f) {
			log.Info("gone: "+f.Detail, "kind", f.Kind)
		}
	}
	for _, f := range fs {
		log.Warn(f.Message(), "kind", f.Kind, "count", f.Count)
	}
	if len(fs) == 0 && err == nil {
		log.Info("no kernel policy here that XDP would bypass: no netfilter forward, prerouting or port ingress chain or rp_filter on the ports")
	}
	if w.OnChange != nil {
		w.OnChange(slices.Clone(fs))
	}
}

// subscribe joins the netlink groups whose messages announce a change
// (nf_tables; IPv4 netconf, which carries rp_filter)
// and wakes the loop on each. Without them the poll still finds changes.
func (w *Watcher) subscribe(wake chan<- struct{}) (stop func()) {
	var conns []*netlink.Conn
	var wg sync.WaitGroup
	for _, s := range []struct {
		proto  int
		groups []uint32
	}{
		{unix.NETLINK_NETFILTER, []uint32{unix.NFNLGRP_NFTABLES}},
		{unix.NETLINK_ROUTE, []uint32{unix.RTNLGRP_IPV4_NETCONF}},
	} {
		c, err := netlink.Dial(s.proto, &netlink.Config{NetNS: w.NetNS})
		if err == nil {
			for _, g := range s.groups {
				if err = c.JoinGroup(g); err != nil {
					break
				}
			}
			if err != nil {
				c.Close()
			}
		}
		if err != nil {
			if w.Log != nil {
				w.Log.Info("no change notifications: checking every interval only", "netlink", s.proto, "err", err)
			}
			continue
		}
		conns = append(conns, c)
		wg.Go(func() {
			for {
				_, err := c.Receive()
				if err != nil && !errors.Is(err, unix.ENOBUFS) { // ENOBUFS: lost some, still a change
					return // closed
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		})
	}
	return func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}
}
