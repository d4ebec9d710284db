package bench

// Churn (BenchmarkChurn): how many route changes per second a router
// carries from BGP into its sinks, and how late, for xdprouterd against
// BIRD 2 under the same churn in the same run.
//
// Each router converges on a table first (BenchmarkConvergence's lab and
// upstream). The upstream's config also holds churnSlices static
// protocols of churnSlice IPv4 prefixes each (more of lpm.SyntheticTable's,
// none in the table, AS paths shared by groups of 1-8 as in the table),
// disabled. The
// benchmark then toggles one slice per step over the upstream's control
// socket — enable announces its prefixes, disable withdraws them — in a
// round robin paced to the offered rate, for a fixed time; each prefix is
// announced and withdrawn in turn, and stays in either state for
// churnSlices steps. BIRD's own protocols were chosen over an in-process
// GoBGP peer: the upstream stays the same daemon as in the convergence
// benchmark, and one control-socket command (no process) changes hundreds
// of prefixes.
//
// r's kernel route notifications (netlink, subscribed in r's namespace,
// 64 MB receive buffer; the benchmark fails on a lost message) are time
// stamped on arrival: a prefix's lag is from the step that toggled it to
// the first notification of its new state. A transition toggled back
// before the kernel showed it is counted as lost (a level-triggered
// router may rightly skip it). The kernel rate is the notifications
// matched over the time from the first step to the last one matched. XDP
// is not observable per prefix: for xdprouterd the rate of XDP writes
// (status API) over the same run and the time XDP needed after the last
// step to hold the final table are reported.
//
// XDPROUTER_BENCH_CHURN_TABLE (default 100000, "N4+N6" as in
// XDPROUTER_BENCH_TABLE), XDPROUTER_BENCH_CHURN (offered rates in prefix
// changes per second, comma-separated, default defaultChurnRates) and
// XDPROUTER_BENCH_CHURN_SECONDS (per rate, default 20) size it.

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/lpm"
)

const (
	defaultChurnTable = "100000"
	defaultChurnRates = "10000,40000"
	defaultChurnTime  = 20 * time.Second
	// churnSlices protocols of churnSlice prefixes are toggled in turn: a
	// prefix stays announced (withdrawn) for churnSlices*churnSlice/rate,
	// 1.25 s at 40k changes/s.
	churnSlices = 100
	churnSlice  = 500
	// churnBuffer is the receive buffer of the netlink watch.
	churnBuffer = 64 << 20
)

// churnConfig returns the offered rates and the time each is offered.
func churnConfig(b *testing.B) (rates []float64, d time.Duration) {
	s := os.Getenv("XDPROUTER_BENCH_CHURN")
	if s == "" {
		s = defaultChurnRates
	}
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r < 100 || r > 1e6 {
			b.Fatalf("XDPROUTER_BENCH_CHURN=%q: want offered rates 100..1000000 (prefix changes per second), comma-separated", s)
		}
		rates = append(rates, r)
	}
	d = defaultChurnTime
	if s := os.Getenv("XDPROUTER_BENCH_CHURN_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 600 {
			b.Fatalf("XDPROUTER_BENCH_CHURN_SECONDS=%q: want 1..600", s)
		}
		d = time.Duration(n) * time.Second
	}
	return rates, d
}

// churnPrefixes returns the slices of prefixes the upstream toggles: the
// IPv4 prefixes lpm.SyntheticTable generates after the table's n4 (its
// output for n is a prefix of that for n+m), so none is in the table and
// their lengths and places are as realistic.
func churnPrefixes(n4 int) [][]netip.Prefix {
	all := lpm.SyntheticTable(n4+churnSlices*churnSlice, 32, tableSeed)[n4:]
	out := make([][]netip.Prefix, churnSlices)
	for i := range out {
		out[i] = all[i*churnSlice : (i+1)*churnSlice]
	}
	return out
}

// churnResult is one router's figures at one offered rate.
type churnResult struct {
	kind           string
	offered        float64 // prefix changes per second, as paced
	kernel         float64 // changes per second seen in the kernel
	changes, lost  int
	p50, p99, max  time.Duration
	kernelDrain    time.Duration // last step → last change in the kernel
	xdp            float64       // XDP writes per second (xdprouterd)
	xdpDrain       time.Duration // last step → XDP holds the final table
	updatesPerStep int
}

// BenchmarkChurn measures xdprouterd and BIRD under the same churn, one
// after the other, and prints a comparison table.
func BenchmarkChurn(b *testing.B) {
	if err := rootAndBIRD(); err != nil {
		b.Skip("churn benchmark skipped:", err)
	}
	table, n4, n6 := benchTable(b, "XDPROUTER_BENCH_CHURN_TABLE", defaultChurnTable)
	rates, d := churnConfig(b)
	churn := churnPrefixes(n4)
	bins := buildDaemon(b)
	b.Run(fmt.Sprintf("table=%d+%d", n4, n6), func(b *testing.B) {
		var res []churnResult
		for b.Loop() {
			res = res[:0]
			for _, kind := range []string{kindXDP, kindBIRD} {
				g := newRig(b, kind, bins)
				if _, err := g.converge(b, table, n4, n6, churn); err != nil {
					b.Fatalf("%s: %v", kind, err)
				}
				for _, rate := range rates {
					r, err := g.churn(b, churn, n4, n6, rate, d)
					if err != nil {
						b.Fatalf("%s at %.0f/s: %v", kind, rate, err)
					}
					res = append(res, r)
				}
				if err := g.close(); err != nil {
					b.Error(err)
				}
			}
		}
		for i, r := range res[:len(rates)] {
			bird := res[len(rates)+i]
			b.ReportMetric(r.kernel/bird.kernel, fmt.Sprintf("rate-ratio@%.0f", rates[i]))
			b.ReportMetric(float64(r.p99)/float64(bird.p99), fmt.Sprintf("p99-ratio@%.0f", rates[i]))
		}
		printChurn(res, len(rates))
	})
}

// churnWatch follows r's kernel route notifications for the churned
// prefixes.
type churnWatch struct {
	mu     gosync.Mutex
	state  map[netip.Prefix]*churnState
	open   int // transitions not seen yet
	lags   []time.Duration
	lost   int
	lastAt time.Time
	err    error
}

type churnState struct {
	up   bool      // announced (the state asked for)
	at   time.Time // when it was asked for
	seen bool      // the kernel shows it
}

// watchRoutes subscribes to r's route notifications until done closes.
func (g *rig) watchRoutes(churn [][]netip.Prefix, done <-chan struct{}) (*churnWatch, error) {
	w := &churnWatch{state: map[netip.Prefix]*churnState{}}
	for _, s := range churn {
		for _, p := range s {
			w.state[p] = &churnState{seen: true}
		}
	}
	h, err := netns.GetFromName(g.l.NS("r"))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ch := make(chan netlink.RouteUpdate, 1<<16)
	err = netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{
		Namespace: &h, ReceiveBufferSize: churnBuffer, ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			w.mu.Lock()
			w.err = fmt.Errorf("route watch: %w", err)
			w.mu.Unlock()
		},
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for u := range ch {
			w.note(u, time.Now())
		}
	}()
	return w, nil
}

// note matches one notification against the state asked for.
func (w *churnWatch) note(u netlink.RouteUpdate, at time.Time) {
	if u.Table != unix.RT_TABLE_MAIN || u.Dst == nil {
		return
	}
	a, ok := netip.AddrFromSlice(u.Dst.IP)
	ones, _ := u.Dst.Mask.Size()
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.state[netip.PrefixFrom(a.Unmap(), ones)]
	if s == nil || s.seen || s.up != (u.Type == unix.RTM_NEWROUTE) {
		return
	}
	s.seen = true
	w.open--
	w.lags = append(w.lags, at.Sub(s.at))
	w.lastAt = at
}

// toggle records that ps are asked to be announced (up) or withdrawn.
func (w *churnWatch) toggle(ps []netip.Prefix, up bool, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		s := w.state[p]
		if !s.seen {
			w.lost++
			w.open--
		}
		*s = churnState{up: up, at: at}
		w.open++
	}
}

// churn offers rate prefix changes per second for about d and measures
// what reaches r's sinks. Every slice is withdrawn again at the end.
func (g *rig) churn(b *testing.B, churn [][]netip.Prefix, n4, n6 int, rate float64, d time.Duration) (churnResult, error) {
	r := churnResult{kind: g.kind, updatesPerStep: churnSlice}
	done := make(chan struct{})
	defer close(done)
	w, err := g.watchRoutes(churn, done)
	if err != nil {
		return r, err
	}
	before, err := g.claims()
	if err != nil {
		return r, err
	}
	interval := time.Duration(float64(time.Second) * churnSlice / rate)
	steps := max(1, int(d/interval)/(2*churnSlices)) * 2 * churnSlices // ends with every slice withdrawn
	up := make([]bool, len(churn))
	profiled := g.profile(fmt.Sprintf("churn-%.0f", rate), d)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	t0 := time.Now()
	var last time.Time
	for k := range steps {
		if k > 0 {
			<-tick.C // pacing, not synchronization
		}
		i := k % len(churn)
		up[i] = !up[i]
		cmd := "disable"
		if up[i] {
			cmd = "enable"
		}
		last = time.Now()
		w.toggle(churn[i], up[i], last)
		if _, err := birdCmd(g.upSocket(), fmt.Sprintf("%s churn%d", cmd, i)); err != nil {
			return r, err
		}
	}
	r.offered = float64(churnSlice*(steps-1)) / last.Sub(t0).Seconds()
	var xdpAt time.Time
	var after rcounts
	err = lab.PollEvery(b.Context(), time.Minute, convergePoll, func() error {
		w.mu.Lock()
		open, werr := w.open, w.err
		w.mu.Unlock()
		if werr != nil {
			return werr
		}
		if open > 0 {
			return fmt.Errorf("%d changes not in the kernel yet", open)
		}
		if g.kind != kindXDP {
			return nil
		}
		t := time.Now()
		if after, err = g.claims(); err != nil {
			return err
		}
		if c := after; c.x4-g.base.x4 != n4 || c.x6-g.base.x6 != n6 || c.pending > 0 {
			return fmt.Errorf("XDP %d+%d of %d+%d, %d pending", c.x4-g.base.x4, c.x6-g.base.x6, n4, n6, c.pending)
		}
		xdpAt = t
		return nil
	})
	if err != nil {
		return r, err
	}
	w.mu.Lock()
	lags, lastAt, werr := slices.Clone(w.lags), w.lastAt, w.err
	r.lost = w.lost
	w.mu.Unlock()
	if werr != nil {
		return r, werr
	}
	r.changes = len(lags)
	r.kernel = float64(len(lags)) / lastAt.Sub(t0).Seconds()
	r.kernelDrain = lastAt.Sub(last)
	slices.Sort(lags)
	if n := len(lags); n > 0 {
		r.p50, r.p99, r.max = lags[n/2], lags[n*99/100], lags[n-1]
	}
	if g.kind == kindXDP {
		r.xdp = float64(after.writes-before.writes) / xdpAt.Sub(t0).Seconds()
		r.xdpDrain = xdpAt.Sub(last)
	}
	return r, profiled()
}

// printChurn prints the comparison table; res holds xdprouterd's results
// per rate, then BIRD's.
func printChurn(res []churnResult, rates int) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nchurn: %d-prefix slices announced/withdrawn in turn; lag = step → kernel notification\n", churnSlice)
	fmt.Fprintf(&sb, "%-11s %9s %9s %7s %8s %8s %7s %8s %7s %9s %9s %9s\n", "router", "offered/s", "kernel/s", "/bird", "p50 ms", "p99 ms", "/bird", "max ms", "lost", "drain ms", "XDP wr/s", "XDP drain")
	for i, r := range res {
		bird := res[rates+i%rates]
		xdp, drain := "-", "-"
		if r.kind == kindXDP {
			xdp, drain = fmt.Sprintf("%.0f", r.xdp), fmt.Sprintf("%d", r.xdpDrain.Milliseconds())
		}
		fmt.Fprintf(&sb, "%-11s %9.0f %9.0f %6.2fx %8.1f %8.1f %6.2fx %8.1f %7d %9d %9s %9s\n", r.kind, r.offered, r.kernel, r.kernel/bird.kernel,
			ms(r.p50), ms(r.p99), float64(r.p99)/float64(bird.p99), ms(r.max), r.lost, r.kernelDrain.Milliseconds(), xdp, drain)
	}
	fmt.Print(sb.String())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
