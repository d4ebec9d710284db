package bench

// Convergence (BenchmarkConvergence): how long a router takes from its
// BGP session coming up to having a whole table in its forwarding sinks,
// and the memory it needs for it, for xdprouterd against BIRD 2 in the
// same run.
//
// Each router gets a fresh, identical lab r — h2 (routers_test.go): the
// router under test starts in r first, then a BIRD 2 upstream in h2
// announces lpm.SyntheticTable (IPv4 and, if asked, IPv6) as static
// routes whose AS paths are shared by groups of 1-8 prefixes, so that
// UPDATEs carry a few prefixes each as in a real feed. The clock starts
// when the first of the upstream's sessions (IPv4, IPv6) reaches
// Established, by the upstream's own ms time stamp: the same origin for
// both routers, excluding process start and session setup. It stops at
// the first poll (every 100 ms) that finds every prefix in r's kernel
// table and, for xdprouterd, in its XDP tries with nothing pending.
// A poll asks the router how many routes it has written (xdprouterd's
// status API, one HTTP request; BIRD's kernel protocols' export counts)
// and, once that is the whole table, reads the kernel's count from
// /proc/PID/net/fib_triestat and rt6_stats (no route dump, but the kernel
// walks its IPv4 trie: ~70 ms at 565k routes) to confirm; the mean cost of
// a poll is reported.
// Peak RSS is VmHWM of the router process. With XDPROUTER_BENCH_PROFILE=DIR
// a CPU profile of xdprouterd is taken from the upstream's start for
// XDPROUTER_BENCH_PROFILE_SECONDS (default 20), and during each churn run. xdprouterd's neighbors have
// max-prefixes 2,000,000, as an operator would set them.
//
// XDPROUTER_BENCH_TABLE sets the table: "N" (IPv4) or "N4+N6"; default
// defaultTable, 50000 with BENCH=quick (see the Makefile).

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/lpm"
)

const (
	// defaultTable is XDPROUTER_BENCH_TABLE's default: a full IPv4 table
	// with headroom and a full IPv6 one.
	defaultTable = "1000000+200000"
	quickTable   = "50000"
	tableSeed    = 8
	// convergePoll is the polling interval of the convergence probes.
	convergePoll = 100 * time.Millisecond
)

// benchTable returns the IPv4 and IPv6 prefixes of the table to announce
// (XDPROUTER_BENCH_TABLE).
func benchTable(b *testing.B, env, def string) (table []netip.Prefix, n4, n6 int) {
	s := os.Getenv(env)
	if s == "" {
		s = def
	}
	a, c, two := strings.Cut(s, "+")
	var err error
	if n4, err = strconv.Atoi(a); err == nil && two {
		n6, err = strconv.Atoi(c)
	}
	if err != nil || n4 < 0 || n6 < 0 || n4+n6 == 0 || n4 > 4_000_000 || n6 > 1_000_000 {
		b.Fatalf("%s=%q: want N4 or N4+N6 (IPv4 up to 4000000, IPv6 up to 1000000)", env, s)
	}
	table = lpm.SyntheticTable(n4, 32, tableSeed)
	if n6 > 0 {
		table = append(table, lpm.SyntheticTable(n6, 128, tableSeed)...)
	}
	return table, n4, n6
}

// convergence is one router's measurement.
type convergence struct {
	kind     string
	n4, n6   int
	kernel   time.Duration // Established → every prefix in the kernel
	all      time.Duration // ... and in XDP (xdprouterd; = kernel for BIRD)
	rss      int64
	heap     string        // xdprouterd's Go heap at convergence, MB
	pollCost time.Duration // mean time of one poll
	polls    int
	// timeline: what the router claimed, every 2 s from Established
	// (xdprouterd: its routes in the kernel, in XDP, pending in sync).
	timeline []string
}

// BenchmarkConvergence measures xdprouterd and BIRD converging on the same
// table, one after the other, and prints a comparison table.
func BenchmarkConvergence(b *testing.B) {
	if err := rootAndBIRD(); err != nil {
		b.Skip("convergence benchmark skipped:", err)
	}
	table, n4, n6 := benchTable(b, "XDPROUTER_BENCH_TABLE", defaultTable)
	bins := buildDaemon(b)
	name := fmt.Sprintf("table=%d", n4)
	if n6 > 0 {
		name += fmt.Sprintf("+%d", n6)
	}
	b.Run(name, func(b *testing.B) {
		var res []convergence
		for b.Loop() {
			res = res[:0]
			for _, kind := range []string{kindXDP, kindBIRD} {
				g := newRig(b, kind, bins)
				c, err := g.converge(b, table, n4, n6, nil)
				if err != nil {
					b.Fatalf("%s: %v", kind, err)
				}
				res = append(res, c)
				b.Logf("%s: kernel %.2fs, all sinks %.2fs, peak RSS %d MB, %d polls of %v", kind, c.kernel.Seconds(), c.all.Seconds(), c.rss>>20, c.polls, c.pollCost)
				if len(c.timeline) > 0 {
					b.Logf("%s timeline (s: kernel xdp pending): %s", kind, strings.Join(c.timeline, ", "))
				}
				if err := g.close(); err != nil { // free the memory before the next
					b.Error(err)
				}
			}
		}
		x, bird := res[0], res[1]
		b.ReportMetric(x.all.Seconds(), "xdprouterd-s")
		b.ReportMetric(bird.all.Seconds(), "bird-s")
		b.ReportMetric(x.all.Seconds()/bird.all.Seconds(), "time-ratio")
		b.ReportMetric(float64(x.rss)/float64(bird.rss), "rss-ratio")
		printConvergence(res)
	})
}

// converge starts the upstream with table (and churn slices, disabled)
// and waits until r holds n4+n6 BGP routes in every sink.
func (g *rig) converge(b *testing.B, table []netip.Prefix, n4, n6 int, churn [][]netip.Prefix) (convergence, error) {
	c := convergence{kind: g.kind, n4: n4, n6: n6}
	profiled := g.profile(fmt.Sprintf("convergence-%d+%d", n4, n6), profileTime())
	if err := g.startUpstream(table, churn); err != nil {
		return c, err
	}
	var est, kernelAt, allAt time.Time
	var cost time.Duration
	var last rcounts
	timeout := 2*time.Minute + time.Duration(n4+n6)*300*time.Microsecond
	err := lab.PollEvery(b.Context(), timeout, convergePoll, func() error {
		for _, p := range []*lab.Proc{g.router, g.up} {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited: %v\n%s", p.Name, err, p.Out.String())
			}
		}
		if est.IsZero() {
			var err error
			if est, err = g.established(); err != nil || est.IsZero() {
				return fmt.Errorf("upstream session not established (%v)", err)
			}
		}
		// The kernel is read only when the router claims to be done.
		t := time.Now()
		cl, err := g.claims()
		done := err == nil && (!kernelAt.IsZero() || cl.k4 >= n4 && cl.k6 >= n6)
		if done && kernelAt.IsZero() {
			var k rcounts
			k, err = g.kernelCounts()
			last.k4, last.k6 = k.k4-g.base.k4, k.k6-g.base.k6
			done = last.k4 >= n4 && last.k6 >= n6
		}
		last.x4, last.x6, last.pending = cl.x4-g.base.x4, cl.x6-g.base.x6, cl.pending
		if s := t.Sub(est); err == nil && g.kind == kindXDP && s >= time.Duration(2*len(c.timeline))*time.Second {
			c.timeline = append(c.timeline, fmt.Sprintf("%.0f: %d %d %d", s.Seconds(), cl.k4+cl.k6, last.x4+last.x6, cl.pending))
		}
		cost += time.Since(t)
		c.polls++
		if err != nil {
			return err
		}
		if done && kernelAt.IsZero() {
			kernelAt = t
		}
		if done && (g.kind != kindXDP || last.x4 >= n4 && last.x6 >= n6 && last.pending == 0) {
			allAt = t
			return nil
		}
		if !done {
			return fmt.Errorf("router claims %d+%d in the kernel (read: %d+%d), XDP %d+%d (%d pending) of %d+%d", cl.k4, cl.k6, last.k4, last.k6, last.x4, last.x6, last.pending, n4, n6)
		}
		return fmt.Errorf("kernel %d+%d, XDP %d+%d (%d pending) of %d+%d", last.k4, last.k6, last.x4, last.x6, last.pending, n4, n6)
	})
	if err != nil {
		return c, fmt.Errorf("%w\n%s", err, g.router.Out.String())
	}
	c.kernel, c.all = kernelAt.Sub(est), allAt.Sub(est)
	c.pollCost = cost / time.Duration(c.polls)
	var err2 error
	if c.rss, err2 = peakRSS(g.router); err2 != nil {
		return c, err2
	}
	if g.kind == kindXDP {
		if c.heap, err2 = g.heap(); err2 != nil {
			return c, err2
		}
		if err2 = g.saveHeap(fmt.Sprintf("heap-%d+%d", n4, n6)); err2 != nil {
			return c, err2
		}
	}
	return c, profiled()
}

// profileTime is how long the convergence profile runs from the
// upstream's start (XDPROUTER_BENCH_PROFILE_SECONDS, default 20).
func profileTime() time.Duration {
	n, err := strconv.Atoi(os.Getenv("XDPROUTER_BENCH_PROFILE_SECONDS"))
	if err != nil || n <= 0 {
		n = 20
	}
	return time.Duration(n) * time.Second
}

// printConvergence prints the comparison table: xdprouterd's figures
// relative to BIRD's (the last row).
func printConvergence(res []convergence) {
	bird := res[len(res)-1]
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nconvergence: Established → every prefix in the kernel (and XDP for xdprouterd)\n")
	fmt.Fprintf(&sb, "%-11s %-16s %8s %8s %7s %8s %7s  %s\n", "router", "table", "kernel s", "all s", "/bird", "RSS MB", "/bird", "poll")
	for _, c := range res {
		fmt.Fprintf(&sb, "%-11s %-16s %8.2f %8.2f %6.2fx %8d %6.2fx  %d × %v\n", c.kind, fmt.Sprintf("%d+%d", c.n4, c.n6),
			c.kernel.Seconds(), c.all.Seconds(), c.all.Seconds()/bird.all.Seconds(), c.rss>>20, float64(c.rss)/float64(bird.rss), c.polls, c.pollCost.Round(time.Microsecond))
	}
	for _, c := range res {
		if c.heap != "" {
			fmt.Fprintf(&sb, "%s Go memory at convergence (MB): %s\n", c.kind, c.heap)
		}
	}
	fmt.Print(sb.String())
}

// rootAndBIRD reports whether the benchmark can run: root, and BIRD 2.
func rootAndBIRD() error {
	if err := lab.Root(); err != nil {
		return err
	}
	if _, err := exec.LookPath("bird"); err != nil {
		return fmt.Errorf("needs BIRD 2 (apt-get install bird2): %w", err)
	}
	return nil
}
