package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Backup paths (Options.Backup) for prefix-independent convergence.
//
// Every PathUpdate then also names the backup: the best path, in GoBGP's
// decision order, after the primary (the best path or the multipath set)
// whose next hop is not one of the primary's. It changes without the best
// path changing (a second upstream's table arrives after the first, the
// backup is withdrawn), so the best-path watch alone cannot tell.
//
// How (GoBGP v4.8.0; figures from 200k prefixes x 2 peers on a shared
// 2-core machine, BenchmarkBackup and a raw-GoBGP comparison of watches):
//   - Triggers: GoBGP's pre-policy update watch (one event per received
//     UPDATE message: its NLRIs), the Adj-RIB-In drop watch (one event per
//     session drop, with every dropped path) and the best-path watch (local
//     originations, policy effects). Each callback only marks prefixes
//     dirty and wakes the worker. The post-policy update watch would carry
//     the attributes after import policy (needed to rank paths ourselves),
//     but GoBGP builds a copy of the neighbor's configuration per path for
//     it: +80% process CPU on the load by itself, before any ranking or the
//     state per prefix that ranking needs; the pre-policy watch is within
//     the noise.
//   - The worker asks GoBGP's global RIB for the dirty prefixes, up to
//     backupBatch per ListPath call (about 0.5 ms of CPU per call plus 5 us
//     per prefix), and takes primary and backup from the returned path
//     list, which is in GoBGP's decision order, best first (the list of a
//     destination is kept sorted by its compare; ListPath flags the first
//     path, and with multipath every path equal to it, Best). No ranking of
//     our own and no state per prefix: the heap after the load is the same
//     as without backups; only the dirty set, while there is work.
//   - Cost: one query per received path (each prefix is read again when a
//     second table arrives): 2 to 17 us of CPU per path, the whole process
//     (test peers included) x1.05 to x1.6 on the load, noisy.
//   - Only the worker emits: each update is a snapshot of the RIB taken
//     after the event that marked the prefix, and one worker emits the
//     snapshots of a prefix in the order they were taken, so an older state
//     never follows a newer one. Repeats are passed on (sync's diff makes
//     them free).
//   - Session down: GoBGP withdraws the neighbor's paths one prefix at a
//     time under its server lock (200k: 2 to 4 s), and ListPath waits for
//     that lock: the first update comes when GoBGP is done, the rest follow
//     in batches (about 1 s more for 200k). OnPeerDropped comes first
//     (about 0.3 s for 200k: GoBGP converts the dropped paths before the
//     callback).
//
// Not seen by any trigger: an import policy change applied with a soft
// reset in (paths are re-evaluated without an UPDATE); Reload calls resync
// after one, which walks the whole RIB. A soft reset from the gobgp CLI
// is not seen.

// backupBatch bounds the prefixes of one ListPath call and of one OnBest
// call from the worker.
const backupBatch = 1000

// backupHoldoff is the least time between two ListPath calls that are not
// full: each call costs about 0.5 ms of CPU before the first prefix (GoBGP
// builds a result table of 2048 shards), so a trickle of updates is read
// at most 20 times a second. It delays an update by as much.
const backupHoldoff = 50 * time.Millisecond

// backupRetry is the wait after a failed ListPath before the prefixes are
// asked for again.
const backupRetry = time.Second

type backupTracker struct {
	srv  *server.BgpServer
	rib  ribReader // srv, or srv guarded against soft resets (Speaker.guarded)
	log  *slog.Logger
	rule *atomic.Pointer[blackholeRule] // which paths are blackholes (bogon.go)
	wake chan struct{}

	mu       sync.Mutex
	dirty    [2]map[netip.Prefix]struct{} // by family: 0 IPv4, 1 IPv6
	resync   bool                         // walk the whole RIB
	barriers []func()                     // run once the work queued before them is emitted
}

var backupFamilies = [2]bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC}

func newBackupTracker(srv *server.BgpServer, log *slog.Logger, rule *atomic.Pointer[blackholeRule]) *backupTracker {
	if rule == nil {
		rule = new(atomic.Pointer[blackholeRule])
	}
	b := &backupTracker{srv: srv, rib: srv, log: log, rule: rule, wake: make(chan struct{}, 1)}
	for i := range b.dirty {
		b.dirty[i] = make(map[netip.Prefix]struct{})
	}
	return b
}

// watch registers the triggers; callbacks run on GoBGP's watcher goroutine
// and only mark prefixes dirty. With eor, the same watch feeds it session
// states and End-of-RIBs, in order with the paths (see eor.go).
//
// observe, when set, also sees every best-path batch (the Flowspec
// tracker's trigger).
func (b *backupTracker) watch(ctx context.Context, eor *eorTracker, observe func([]*apiutil.Path)) error {
	mark := func(paths []*apiutil.Path, _ time.Time) { b.markPaths(paths) }
	best := mark
	if observe != nil {
		best = func(paths []*apiutil.Path, t time.Time) {
			observe(paths)
			mark(paths, t)
		}
	}
	cb := server.WatchEventMessageCallbacks{OnBestPath: best, OnPathUpdate: mark}
	opts := []server.WatchOption{server.WatchBestPath(true), server.WatchUpdate(false, "", ""), server.WatchAdjInWithdraw()}
	if eor != nil {
		cb.OnPathEor = func(p *apiutil.Path, _ time.Time) { eor.eorEvent(p) }
		cb.OnPeerUpdate = func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) { eor.peerEvent(ev) }
		opts = append(opts, server.WatchEor(false), server.WatchPeer())
	}
	return b.srv.WatchEvent(ctx, cb, opts...)
}

// barrier has the worker call fn once it has emitted everything marked
// before the call.
func (b *backupTracker) barrier(fn func()) {
	b.mu.Lock()
	b.barriers = append(b.barriers, fn)
	b.mu.Unlock()
	b.kick()
}

// idleBarriers takes the barriers if no work is left.
func (b *backupTracker) idleBarriers() []func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.resync || len(b.dirty[0]) > 0 || len(b.dirty[1]) > 0 {
		return nil
	}
	out := b.barriers
	b.barriers = nil
	return out
}

func familyIndex(f bgp.Family) (int, bool) {
	switch f {
	case bgp.RF_IPv4_UC:
		return 0, true
	case bgp.RF_IPv6_UC:
		return 1, true
	}
	return 0, false
}

// markPaths marks the unicast prefixes of paths dirty and wakes the worker.
func (b *backupTracker) markPaths(paths []*apiutil.Path) {
	n := 0
	b.mu.Lock()
	for _, p := range paths {
		pfx, ok := pathPrefix(p)
		if !ok {
			continue
		}
		fi, _ := familyIndex(p.Family)
		b.dirty[fi][pfx] = struct{}{}
		n++
	}
	b.mu.Unlock()
	if n > 0 {
		b.kick()
	}
}

func (b *backupTracker) mark(fi int, prefixes []netip.Prefix) {
	b.mu.Lock()
	for _, p := range prefixes {
		b.dirty[fi][p] = struct{}{}
	}
	b.mu.Unlock()
	b.kick()
}

// requestResync makes the worker walk the whole RIB once.
func (b *backupTracker) requestResync() {
	b.mu.Lock()
	b.resync = true
	b.mu.Unlock()
	b.kick()
}

func (b *backupTracker) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// full reports whether a ListPath call would be full.
func (b *backupTracker) full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.resync || len(b.dirty[0]) >= backupBatch || len(b.dirty[1]) >= backupBatch
}

// take removes up to max dirty prefixes of one family, and reports a
// pending resync (which clears the dirty sets: the walk covers them).
func (b *backupTracker) take(max int) (fi int, out []netip.Prefix, resync bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.resync {
		b.resync = false
		for i := range b.dirty {
			b.dirty[i] = make(map[netip.Prefix]struct{})
		}
		return 0, nil, true
	}
	for fi = range b.dirty {
		d := b.dirty[fi]
		if len(d) == 0 {
			continue
		}
		out = make([]netip.Prefix, 0, min(max, len(d)))
		for p := range d {
			if len(out) == max {
				break
			}
			out = append(out, p)
			delete(d, p)
		}
		if len(d) == 0 {
			// A map keeps its buckets after a full table went through it.
			b.dirty[fi] = make(map[netip.Prefix]struct{})
		}
		return fi, out, false
	}
	return 0, nil, false
}

// run is the worker: it turns dirty prefixes into PathUpdates until ctx ends.
func (b *backupTracker) run(ctx context.Context, emit func([]PathUpdate)) {
	var last time.Time // of the last ListPath call
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
		for ctx.Err() == nil {
			if wait := backupHoldoff - time.Since(last); wait > 0 && !b.full() {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			fi, prefixes, resync := b.take(backupBatch)
			if resync || len(prefixes) > 0 {
				last = time.Now()
			}
			var err error
			switch {
			case resync:
				err = b.walk(emit)
			case len(prefixes) > 0:
				var ups []PathUpdate
				ups, err = b.query(backupFamilies[fi], prefixes)
				if err == nil {
					emit(ups)
				} else {
					b.mark(fi, prefixes)
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if resync {
					b.requestResync()
				}
				b.log.Warn("reading the RIB for backup paths failed; retrying", "err", err, "retry", backupRetry)
				t := time.NewTimer(backupRetry)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				continue
			}
			if !resync && len(prefixes) == 0 {
				break
			}
		}
		for _, fn := range b.idleBarriers() {
			fn()
		}
	}
}

// query reads the paths of the given prefixes of one family and returns
// one update per prefix (a withdrawal for a prefix that has none).
func (b *backupTracker) query(fam bgp.Family, prefixes []netip.Prefix) ([]PathUpdate, error) {
	lp := make([]*apiutil.LookupPrefix, len(prefixes))
	for i, p := range prefixes {
		lp[i] = &apiutil.LookupPrefix{Prefix: p.String()}
	}
	out := make([]PathUpdate, 0, len(prefixes))
	seen := make(map[netip.Prefix]bool, len(prefixes))
	rule := b.rule.Load()
	err := b.rib.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam, Prefixes: lp},
		func(nlri bgp.NLRI, paths []*apiutil.Path) {
			n, ok := nlri.(*bgp.IPAddrPrefix)
			if !ok {
				return
			}
			u := selectPaths(n.Prefix.Masked(), paths, rule, b.log)
			seen[u.Prefix] = true
			out = append(out, u)
		})
	if err != nil {
		return nil, err
	}
	for _, p := range prefixes {
		if !seen[p] {
			out = append(out, PathUpdate{Prefix: p})
		}
	}
	return out, nil
}

// walk emits an update for every prefix of the global RIB.
func (b *backupTracker) walk(emit func([]PathUpdate)) error {
	rule := b.rule.Load()
	for _, fam := range backupFamilies {
		var out []PathUpdate
		err := b.rib.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam},
			func(nlri bgp.NLRI, paths []*apiutil.Path) {
				n, ok := nlri.(*bgp.IPAddrPrefix)
				if !ok {
					return
				}
				out = append(out, selectPaths(n.Prefix.Masked(), paths, rule, b.log))
				if len(out) == backupBatch {
					emit(out)
					out = nil
				}
			})
		if len(out) > 0 {
			emit(out)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// selectPaths takes primary and backup from the paths of one destination,
// in GoBGP's decision order with the primary flagged Best (the best path,
// or every member of the multipath set). The primary is empty when the best
// path is ours (nothing to install), and then so is the backup. The backup
// is the first later path with a usable next hop that is not one of the
// primary's. The update is a blackhole if a primary path is one (rule).
func selectPaths(pfx netip.Prefix, paths []*apiutil.Path, rule *blackholeRule, log *slog.Logger) PathUpdate {
	u := PathUpdate{Prefix: pfx}
	if len(paths) == 0 || !paths[0].Best || isLocal(paths[0]) {
		return u
	}
	rest := paths
	var lowest netip.Addr
	for len(rest) > 0 && rest[0].Best {
		p := rest[0]
		rest = rest[1:]
		nh, ok := usableNextHop(p)
		if !ok || p.IsNexthopInvalid {
			continue
		}
		if !lowest.IsValid() || nh.Less(lowest) {
			lowest, u.Peer = nh, p.PeerAddress
		}
		u.NextHops = append(u.NextHops, nh)
		u.Blackhole = u.Blackhole || isBlackhole(rule, p, pfx, log)
	}
	if len(u.NextHops) == 0 {
		return u
	}
	slices.SortFunc(u.NextHops, netip.Addr.Compare)
	u.NextHops = slices.Compact(u.NextHops)
	for _, p := range rest {
		nh, ok := usableNextHop(p)
		if !ok || p.IsNexthopInvalid || p.Best || slices.Contains(u.NextHops, nh) {
			continue
		}
		u.Backup, u.BackupPeer = []netip.Addr{nh}, p.PeerAddress
		break
	}
	return u
}

// watchDropped calls fn with the neighbor of every Adj-RIB-In drop. GoBGP
// reports a drop (all paths of the neighbor's dropped families) before it
// withdraws them from the global RIB one by one; a watcher of its own
// keeps the report from queueing behind other events.
func watchDropped(ctx context.Context, srv *server.BgpServer, fn func(netip.Addr)) error {
	return srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPathUpdate: func(paths []*apiutil.Path, _ time.Time) {
			var done []netip.Addr // one neighbor per event in practice
			for _, p := range paths {
				if a := p.PeerAddress; a.IsValid() && !slices.Contains(done, a) {
					done = append(done, a)
					fn(a)
				}
			}
		},
	}, server.WatchAdjInWithdraw())
}
