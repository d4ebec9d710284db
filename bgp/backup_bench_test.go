package bgp

import (
	"context"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"

	"github.com/xdprouter/xdprouter/config"
)

// benchBackupPrefixes is the table size of BenchmarkBackup, sent by each of
// two peers.
const benchBackupPrefixes = 200_000

// processCPU is the CPU time (user + system) of the whole process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTable is n distinct /24s.
func benchTable(n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + i>>16), byte(i >> 8), byte(i), 0}), 24)
	}
	return out
}

// loadTable originates prefixes on a test peer in large AddPath batches,
// with an AS path longer by prepend hops.
func loadTable(tb testing.TB, p *testPeer, prefixes []netip.Prefix, prepend int) {
	tb.Helper()
	batch := make([]*apiutil.Path, 0, 5000)
	flush := func() {
		if _, err := p.srv.AddPath(apiutil.AddPathRequest{Paths: batch}); err != nil {
			tb.Fatalf("peer %s: %v", p.addr, err)
		}
		batch = batch[:0]
	}
	for _, pfx := range prefixes {
		path, err := localPath(pfx)
		if err != nil {
			tb.Fatal(err)
		}
		if prepend > 0 {
			path.Attrs = append(path.Attrs, prependAttr(prepend))
		}
		if batch = append(batch, path); len(batch) == cap(batch) {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// tableState is the last update of every prefix, reduced to what the
// benchmark checks.
type tableState struct {
	mu       sync.Mutex
	m        map[netip.Prefix][2]netip.Addr // primary (lowest), backup
	ups      int                            // updates received
	cbs      int                            // OnBest calls
	lastCall time.Time
	wake     chan struct{}
}

func (s *tableState) onBest(ups []PathUpdate) {
	s.mu.Lock()
	s.ups += len(ups)
	s.cbs++
	s.lastCall = time.Now()
	for _, u := range ups {
		if len(u.NextHops) == 0 {
			delete(s.m, u.Prefix)
			continue
		}
		var b netip.Addr
		if len(u.Backup) > 0 {
			b = u.Backup[0]
		}
		s.m[u.Prefix] = [2]netip.Addr{u.NextHops[0], b}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// firstAfter waits for an OnBest call after t and returns its time.
func (s *tableState) firstAfter(tb testing.TB, t time.Time) time.Time {
	tb.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		last := s.lastCall
		s.mu.Unlock()
		if last.After(t) {
			return last
		}
		select {
		case <-s.wake:
		case <-deadline.C:
			tb.Fatal("no update after the session went down")
		}
	}
}

func (s *tableState) updates() (ups, calls int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ups, s.cbs
}

// count reports how many prefixes have exactly primary and backup.
func (s *tableState) count(primary, backup netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.m {
		if v == [2]netip.Addr{primary, backup} {
			n++
		}
	}
	return n
}

// waitCount polls (waking on updates, at most every 100 ms: count walks the
// table) until n prefixes match, and returns when that was first seen.
func (s *tableState) waitCount(tb testing.TB, n int, primary, backup netip.Addr, extra func() bool) time.Time {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.count(primary, backup) == n && (extra == nil || extra()) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out: %d of %d prefixes via %v backup %v", s.count(primary, backup), n, primary, backup)
		}
		<-tick.C
	}
}

type backupRun struct {
	loadCPU, loadWall time.Duration // both tables in, until converged
	cpuA, cpuB        time.Duration // of that: a's table, then b's
	downWall          time.Duration // a's session stopped until every prefix is via b
	downFirst         time.Duration // until the first update
	downDropped       time.Duration // until OnPeerDropped
	loadUps, downUps  int           // updates passed to OnBest in each phase
	downCalls         int           // OnBest calls at session down
	heap              int64         // live heap after the load less before Start
}

// runBackupLoad: peers a (best: shorter AS path) and b (one hop longer)
// each announce the table to a speaker with or without backups, a first
// (from Start until every prefix is via a), then b (added by Reload, until
// b's table is in; with backups, until every prefix has backup b: the case
// where the best-path watch says nothing). Measured: CPU and wall time of
// both, then the time from stopping a's server until every prefix is via b
// (backup none).
func runBackupLoad(tb testing.TB, n int, backup bool) backupRun {
	const us, A, B = "127.0.0.1", "127.0.0.2", "127.0.0.3"
	table := benchTable(n)
	pUs, pA, pB := freePort(tb, us), freePort(tb, A), freePort(tb, B)
	peerA := startPeerOwned(tb, peerSpec{addr: A, port: pA, asn: 65001, speaker: us, speakerPt: pUs, passive: true})
	defer peerA.srv.Stop()
	peerB := startPeerOwned(tb, peerSpec{addr: B, port: pB, asn: 65002, speaker: us, speakerPt: pUs, passive: true})
	defer peerB.srv.Stop()
	loadTable(tb, peerA, table, 0)
	loadTable(tb, peerB, table, 1)
	nbr := func(addr string, port, asn uint32) config.Neighbor {
		return config.Neighbor{Address: addr, PeerASN: asn, Port: port, LocalAddress: us, ConnectRetry: 1, Import: "accept-all", Export: "reject-all"}
	}
	cfg := &config.Config{
		Router:    config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		BGP:       config.BGP{ListenPort: int32(pUs), ListenAddresses: []string{us}},
		Neighbors: []config.Neighbor{nbr(A, pA, 65001)},
	}
	cfgB := *cfg
	cfgB.Neighbors = []config.Neighbor{nbr(A, pA, 65001), nbr(B, pB, 65002)}
	st := &tableState{m: make(map[netip.Prefix][2]netip.Addr, n), wake: make(chan struct{}, 1)}
	dropped := make(chan time.Time, 1)
	s, err := New(Options{Config: cfg, Logger: testLogger(tb), OnBest: st.onBest, Backup: backup,
		OnPeerDropped: func(netip.Addr) { dropped <- time.Now() }})
	if err != nil {
		tb.Fatal(err)
	}
	heap0 := liveHeap()
	cpu0, t0 := processCPU(), time.Now()
	if err := s.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	defer s.Stop()
	a, b := netip.MustParseAddr(A), netip.MustParseAddr(B)
	st.waitCount(tb, n, a, netip.Addr{}, nil)
	cpuA := processCPU() - cpu0
	if err := s.Reload(context.Background(), &cfgB); err != nil {
		tb.Fatal(err)
	}
	var wantBackup netip.Addr
	if backup {
		wantBackup = b
	}
	var polled time.Time
	bIn := func() bool { // without backups nothing tells when b's table is in
		if backup {
			return true
		}
		// The count walks the Adj-RIB-In: ask seldom, or off pays for it.
		if time.Since(polled) < time.Second {
			return false
		}
		polled = time.Now()
		return peerReceived(tb, s, B) == uint64(n)
	}
	t1 := st.waitCount(tb, n, a, wantBackup, bIn)
	r := backupRun{loadCPU: processCPU() - cpu0, loadWall: t1.Sub(t0), cpuA: cpuA}
	r.cpuB = r.loadCPU - cpuA
	ups0, calls0 := st.updates()
	r.loadUps = ups0
	r.heap = int64(liveHeap()) - int64(heap0)

	t2 := time.Now()
	go peerA.srv.Stop()
	r.downFirst = st.firstAfter(tb, t2).Sub(t2)
	select {
	case t := <-dropped:
		r.downDropped = t.Sub(t2)
	case <-time.After(time.Minute):
		tb.Fatal("OnPeerDropped not called")
	}
	r.downWall = st.waitCount(tb, n, b, netip.Addr{}, nil).Sub(t2)
	ups1, calls1 := st.updates()
	r.downUps, r.downCalls = ups1-ups0, calls1-calls0
	return r
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func peerReceived(tb testing.TB, s *Speaker, addr string) uint64 {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	var n uint64
	err := srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr}, func(p *api.Peer) {
		for _, as := range p.GetAfiSafis() {
			n += as.GetState().GetReceived()
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkBackup measures what Options.Backup adds to a full-table load:
// two peers with benchBackupPrefixes each, backups off then on in the same
// run. CPU is the whole process's (the test peers' share is the same in
// both). Run with -benchtime=1x: one iteration takes a minute.
func BenchmarkBackup(b *testing.B) {
	n := benchBackupPrefixes
	paths := float64(2 * n)
	var off, on backupRun
	for range b.N {
		off = runBackupLoad(b, n, false)
		on = runBackupLoad(b, n, true)
	}
	b.ReportMetric(float64(off.loadCPU.Nanoseconds())/paths, "cpu-ns/path-off")
	b.ReportMetric(float64(on.loadCPU.Nanoseconds())/paths, "cpu-ns/path-on")
	b.ReportMetric(float64(on.loadCPU-off.loadCPU)/paths, "added-cpu-ns/path")
	b.ReportMetric(float64(on.loadCPU)/float64(off.loadCPU), "cpu-ratio")
	b.ReportMetric(float64(on.cpuB-off.cpuB)/float64(n), "added-cpu-ns/path-2nd-table")
	b.ReportMetric(float64(on.cpuB)/float64(off.cpuB), "cpu-ratio-2nd-table")
	b.ReportMetric(on.downWall.Seconds(), "down-s-on")
	b.ReportMetric(off.downWall.Seconds(), "down-s-off")
	b.Logf("%d prefixes x 2 peers: load CPU off %v on %v (x%.2f; a's table off %v on %v, b's off %v on %v), wall off %v on %v; session down until OnPeerDropped off %v on %v, until the first update off %v on %v, until all via b off %v on %v; speaker heap after load off %d MB on %d MB; updates per prefix at load off %.2f on %.2f, at session down off %.2f on %.2f (in %d and %d OnBest calls)",
		n, off.loadCPU.Round(time.Millisecond), on.loadCPU.Round(time.Millisecond), float64(on.loadCPU)/float64(off.loadCPU),
		off.cpuA.Round(time.Millisecond), on.cpuA.Round(time.Millisecond), off.cpuB.Round(time.Millisecond), on.cpuB.Round(time.Millisecond),
		off.loadWall.Round(time.Millisecond), on.loadWall.Round(time.Millisecond),
		off.downDropped.Round(time.Millisecond), on.downDropped.Round(time.Millisecond),
		off.downFirst.Round(time.Millisecond), on.downFirst.Round(time.Millisecond),
		off.downWall.Round(time.Millisecond), on.downWall.Round(time.Millisecond), off.heap>>20, on.heap>>20,
		float64(off.loadUps)/float64(n), float64(on.loadUps)/float64(n), float64(off.downUps)/float64(n), float64(on.downUps)/float64(n), off.downCalls, on.downCalls)
}
