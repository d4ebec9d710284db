package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/bpf/trafficgen"
	"github.com/xdprouter/xdprouter/lab"
)

// BenchmarkFilterDrop (issue 10): how fast r drops a flood of spoofed
// sources with a packet filter rule, xdprouterd's XDP filter against the
// kernel with the equivalent nftables rule in the netdev ingress hook and
// in the inet forward hook, side by side in one run, while a legitimate flow
// mixed into the same frames keeps crossing r to h2.
//
// Labs h1 — r — h2 as BenchmarkForwarding's, one per path, identical but
// for r:
//
//   - xdp: xdprouterd on r's ports (native XDP, kernel forwarding off) with
//     one config rule [[filter]] src = floodPrefix, action = "drop";
//   - nft-ingress: no XDP on r, ip_forward=1, rule `ip saddr floodPrefix
//     counter drop` in a netdev table's ingress chain on eth1;
//   - nft-forward: the same rule in an inet table's forward chain;
//   - direct: h1 — h2 without a router, the generator and h2's sink
//     alone: the ceiling of the harness (the sink drops everything with XDP).
//
// h1 sends 60-byte UDP frames to h2 with trafficgen's live-frames generator,
// the same program and frames for every path: sources drawn at random from
// floodPrefix (and random source ports), except every legitEvery-th frame,
// which comes from h1's own address, the legitimate flow. h2's sink counts
// what arrives (only the legitimate frames, unless the rule leaks).
// rp_filter is off in r (the namespace default, set explicitly): with it on,
// the kernel would drop the spoofed sources as martians before the forward
// hook.
//
// Offered load: the generator runs flat out on CPU 0 and veth runs the
// receivers' NAPI on the sending CPU, so generator, r and sink share one CPU
// and the chain clocks itself: the offered rate is what the generator
// achieves behind each r (reported as <path>_offered_Mpps, frames generated
// per second; frames r's ring refuses would show as xmit errors and make the
// drop rate fall short of it). The drop rate is the rule's counter (XDP's
// drop/filter outcome, nft's rule counter) over the whole send call, which
// lasts about dropWindow. So the ratios x_nft_* compare whole chains, the
// generator's share included; r's own cost per dropped frame is the chain's
// time per frame minus the direct path's (<path>_ns/pkt), and xr_nft_*
// compare those.
//
// Run with `make bench` or
// `go test -run '^$' -bench BenchmarkFilterDrop -benchtime 3x ./test/bench/`
// (root; b.N rounds, each measuring every path once, order rotating).
func BenchmarkFilterDrop(b *testing.B) {
	if err := lab.Root(); err != nil {
		b.Skip("filter benchmarks skipped:", err)
	}
	bins := buildBinaries(b)
	start := time.Now()
	paths := []*path{newFilterPath(b, "xdp", bins), newFilterPath(b, "nft-ingress", ""), newFilterPath(b, "nft-forward", ""), newDirect(b, 1)}
	b.Logf("set up %d labs in %v", len(paths), time.Since(start).Round(time.Millisecond))
	gens := make([]*trafficgen.Generator, len(paths))
	for i, p := range paths {
		g, err := trafficgen.NewGenerator(floodConfig(p))
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		gens[i] = g
		if p.name != "direct" {
			p.probe(b, g)
		}
	}
	for _, cpus := range []int{1, 2} {
		b.Run(fmt.Sprintf("cpus=%d", cpus), func(b *testing.B) {
			if cpus == 2 {
				for _, p := range paths {
					if err := p.napiThread(1); err != nil {
						b.Fatal(err)
					}
				}
			}
			measureDrops(b, cpus, paths, gens)
		})
	}
}

// measureDrops runs b.N rounds of every path and reports.
func measureDrops(b *testing.B, cpus int, paths []*path, gens []*trafficgen.Generator) {
	total := make([]dropSample, len(paths))
	rates := make([]float64, len(paths))
	round := 0
	for b.Loop() {
		for j := range paths {
			k := (j + round) % len(paths)
			s, err := paths[k].flood(gens[k], &rates[k])
			if err != nil {
				b.Fatal(err)
			}
			total[k].add(s)
		}
		round++
	}
	b.ReportMetric(0, "ns/op") // a round's duration is fixed by dropWindow
	direct := total[len(total)-1]
	b.ReportMetric(direct.dropMpps(), "direct_Mpps")
	xdp := total[0]
	for i, p := range paths[:len(paths)-1] {
		t := total[i]
		m := strings.ReplaceAll(p.name, "-", "_")
		b.Logf("%s: %d frames generated in %v (%.2f Mpps offered), %d taken by r's ring (%d refused), %d dropped by the rule, %d of %d legitimate at h2; counters: %s",
			p.name, t.sent, t.d.Round(time.Millisecond), t.offeredMpps(), t.xmit, t.xmitErr, t.dropped, t.atH2, t.legitSent(), t.lost())
		b.ReportMetric(t.dropMpps(), m+"_Mpps")
		b.ReportMetric(t.offeredMpps(), m+"_offered_Mpps")
		b.ReportMetric(100*t.legitDelivered(), m+"_legit_%")
		if i > 0 {
			b.ReportMetric(xdp.dropMpps()/t.dropMpps(), "x_"+m)
		}
		if cpus == 1 {
			b.ReportMetric(routerNsPerFrame(t, direct), m+"_ns/pkt")
			if i > 0 {
				b.ReportMetric(routerNsPerFrame(t, direct)/routerNsPerFrame(xdp, direct), "xr_"+m)
			}
		}
		if t.dropped == 0 {
			b.Errorf("%s: the rule dropped nothing\n%s", p.name, p.diagnose())
		}
		if leak := int64(t.atH2) - int64(t.legitSent()); leak > int64(t.legitSent()/100)+100 {
			b.Errorf("%s: h2 received %d frames more than the %d legitimate ones: the rule leaks", p.name, leak, t.legitSent())
		}
		// The target: the flood must not stop the legitimate flow (with
		// cpus=2, r is overloaded: its ring refuses legitimate frames too).
		if cpus == 1 && p.name == "xdp" && t.legitDelivered() < minDelivered {
			b.Errorf("xdp: %d of %d legitimate frames reached h2 (%.2f%%); counters: %s", t.atH2, t.legitSent(), 100*t.legitDelivered(), t.lost())
		}
	}
	printDropTable(cpus, paths, total)
}

const (
	// floodPrefix is where the spoofed sources come from (RFC 2544's
	// benchmarking range, routed nowhere).
	floodPrefix = "198.18.0.0/15"
	// legitEvery: one frame in legitEvery is from h1's own address.
	legitEvery = 100
	// dropWindow is the length of one send call per path and round.
	dropWindow = 3 * time.Second
)

// floodConfig is the generator's configuration on p: the spoofed flood to
// h2 with the legitimate flow mixed in.
func floodConfig(p *path) trafficgen.Config {
	return trafficgen.Config{
		SrcMAC: p.h1MAC, DstMAC: p.rMAC,
		Src: netip.MustParseAddr(lab.H1v4), Dst: netip.MustParseAddr(lab.H2v4),
		Mode: trafficgen.Fixed, SrcPrefix: netip.MustParsePrefix(floodPrefix), LegitEvery: legitEvery,
	}
}

// newFilterPath builds the lab h1 — r — h2 of one path: name "xdp" runs
// xdprouterd from bins with the filter rule, "nft-ingress" and
// "nft-forward" make r a kernel router with the nftables rule.
func newFilterPath(b *testing.B, name, bins string) *path {
	b.Helper()
	p := newBasicPath(b, name, "xf"+name[:1]+name[len(name)-1:])
	l := p.l
	for _, k := range []string{"all", "default", "eth1", "eth2"} {
		if err := l.Sysctl("r", "net.ipv4.conf."+k+".rp_filter", "0"); err != nil {
			b.Fatal(err)
		}
	}
	var nft []string
	switch name {
	case "xdp":
		p.ctl = filepath.Join(bins, "xdprouterctl")
		p.startDaemonWith(b, filepath.Join(bins, "xdprouterd"), 0,
			fmt.Sprintf("\n[[filter]]\nname = \"spoofed\"\nsrc = %q\naction = \"drop\"\n", floodPrefix))
	case "nft-ingress":
		nft = []string{
			"add table netdev f",
			"add chain netdev f in { type filter hook ingress device eth1 priority 0 ; }",
			"add rule netdev f in ip saddr " + floodPrefix + " counter drop",
		}
	case "nft-forward":
		nft = []string{
			"add table inet f",
			"add chain inet f fw { type filter hook forward priority 0 ; policy accept ; }",
			"add rule inet f fw ip saddr " + floodPrefix + " counter drop",
		}
	default:
		b.Fatalf("unknown filter path %q", name)
	}
	for _, c := range nft {
		if err := l.Run("r", append([]string{"nft"}, strings.Fields(c)...)...); err != nil {
			b.Fatal(err)
		}
	}
	if nft != nil {
		if err := l.Sysctl("r", "net.ipv4.ip_forward", "1"); err != nil {
			b.Fatal(err)
		}
	}
	p.attach(b)
	return p
}

// dropped reads the counter of what r's rule dropped (the sink's on the
// direct path).
func (p *path) dropped() (uint64, error) {
	switch p.name {
	case "direct":
		return p.sink.Received()
	case "xdp":
		var st []bpf.StatCounter
		if err := p.l.Ctl("r", p.ctl, &st, "stats"); err != nil {
			return 0, err
		}
		for _, c := range st {
			if c.Action == bpf.ActionDrop && c.Reason == bpf.ReasonFilter {
				return c.Packets, nil
			}
		}
		return 0, errors.New("xdprouterctl stats: no drop/filter counter")
	}
	out, err := p.l.Output("r", "nft", "-j", "list", "ruleset")
	if err != nil {
		return 0, err
	}
	return nftCounter(out)
}

// nftCounter sums the packets of the rule counters in `nft -j list
// ruleset` output.
func nftCounter(js string) (uint64, error) {
	var rs struct {
		Nftables []struct {
			Rule *struct {
				Expr []struct {
					Counter *struct{ Packets uint64 } `json:"counter"`
				} `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(js), &rs); err != nil {
		return 0, fmt.Errorf("nft -j list ruleset: %w", err)
	}
	var n uint64
	found := false
	for _, o := range rs.Nftables {
		if o.Rule == nil {
			continue
		}
		for _, e := range o.Rule.Expr {
			if e.Counter != nil {
				n += e.Counter.Packets
				found = true
			}
		}
	}
	if !found {
		return 0, errors.New("nft ruleset has no rule counter")
	}
	return n, nil
}

// probe sends a short burst of the flood and fails unless the rule drops
// most of it and legitimate frames arrive: a broken setup fails loudly.
func (p *path) probe(b *testing.B, g *trafficgen.Generator) {
	b.Helper()
	const n = 20_000
	d0, err := p.dropped()
	if err != nil {
		b.Fatal(err)
	}
	h0, err := p.sink.Received()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.l.Do("h1", func() error { return g.Send(p.h1Ifindex, n) }); err != nil {
		b.Fatal(err)
	}
	var dropped, legit uint64
	_ = lab.Poll(b.Context(), 2*time.Second, func() error {
		d1, err := p.dropped()
		if err != nil {
			return err
		}
		h1, err := p.sink.Received()
		if err != nil {
			return err
		}
		if dropped, legit = d1-d0, h1-h0; dropped < n/2 || legit < n/legitEvery/2 {
			return fmt.Errorf("%d dropped, %d legitimate", dropped, legit)
		}
		return nil
	})
	if dropped < n/2 || legit < n/legitEvery/2 {
		b.Fatalf("%s path: of %d frames the rule dropped %d and h2 received %d (of %d legitimate)\n%s",
			p.name, n, dropped, legit, n/legitEvery, p.diagnose())
	}
}

// dropSample is what one or more send calls on a path did.
type dropSample struct {
	sent     uint64        // frames generated
	d        time.Duration // length of the send calls
	xmit     uint64        // taken by the next hop's ring (h1's veth)
	xmitErr  uint64        // refused by it
	dropped  uint64        // by r's rule (the sink on the direct path)
	atH2     uint64        // received by h2's sink
	counters map[string]int64
}

func (s *dropSample) add(o dropSample) {
	s.sent += o.sent
	s.d += o.d
	s.xmit += o.xmit
	s.xmitErr += o.xmitErr
	s.dropped += o.dropped
	s.atH2 += o.atH2
	for k, v := range o.counters {
		if s.counters == nil {
			s.counters = map[string]int64{}
		}
		s.counters[k] += v
	}
}

func (s dropSample) dropMpps() float64 {
	if s.d <= 0 {
		return 0
	}
	return float64(s.dropped) / s.d.Seconds() / 1e6
}

func (s dropSample) offeredMpps() float64 {
	if s.d <= 0 {
		return 0
	}
	return float64(s.sent) / s.d.Seconds() / 1e6
}

// legitSent is the number of legitimate frames generated (one in
// legitEvery; the generator's phase carries over between calls).
func (s dropSample) legitSent() uint64 { return s.sent / legitEvery }

func (s dropSample) legitDelivered() float64 {
	if s.legitSent() == 0 {
		return 0
	}
	return float64(s.atH2) / float64(s.legitSent())
}

// lost lists the nonzero counters that explain frames neither dropped by
// the rule nor delivered (see sample.lost).
func (s dropSample) lost() string {
	c := map[string]int64{}
	for k, v := range s.counters {
		if k != "xdp:"+bpf.ActionDrop+"/"+bpf.ReasonFilter {
			c[k] = v
		}
	}
	return sample{counters: c}.lost()
}

// routerNsPerFrame is r's time per frame: the chain's minus the direct
// path's (generator and sink alone).
func routerNsPerFrame(path, direct dropSample) float64 {
	if path.offeredMpps() == 0 || direct.offeredMpps() == 0 {
		return 0
	}
	return 1e3/path.offeredMpps() - 1e3/direct.offeredMpps()
}

// flood runs g on h1 for about dropWindow in one BPF_PROG_TEST_RUN call
// (sized from *rate, frames per second, 0: unknown; updated). A call much
// shorter than the window (a bad estimate) is repeated.
func (p *path) flood(g *trafficgen.Generator, rate *float64) (dropSample, error) {
	for {
		est := *rate
		if est == 0 {
			est = 2e6
		}
		n := uint32(min(est*dropWindow.Seconds(), 1<<31))
		s, err := p.floodOnce(g, n)
		if err != nil {
			return s, err
		}
		*rate = float64(s.sent) / s.d.Seconds()
		if s.d >= dropWindow/2 {
			return s, nil
		}
	}
}

func (p *path) floodOnce(g *trafficgen.Generator, n uint32) (s dropSample, err error) {
	k0, err := p.counters()
	if err != nil {
		return s, err
	}
	d0, err := p.dropped()
	if err != nil {
		return s, err
	}
	h0, err := p.sink.Received()
	if err != nil {
		return s, err
	}
	var elapsed time.Duration
	err = p.l.Do("h1", func() error {
		// CPU 0, as BenchmarkForwarding's generator (see sendOnce).
		var cpu unix.CPUSet
		cpu.Set(0)
		if err := unix.SchedSetaffinity(0, &cpu); err != nil {
			return fmt.Errorf("pin generator thread: %w", err)
		}
		t := time.Now()
		err := g.Send(p.h1Ifindex, n)
		elapsed = time.Since(t)
		return err
	})
	if err != nil {
		return s, err
	}
	h1, err1 := p.settled()
	d1, err2 := p.dropped()
	k1, err3 := p.counters()
	if err := errors.Join(err1, err2, err3); err != nil {
		return s, err
	}
	s = dropSample{sent: uint64(n), d: elapsed, dropped: d1 - d0, atH2: h1 - h0, counters: map[string]int64{}}
	for k, v := range k1 {
		if d := int64(v - k0[k]); d != 0 {
			s.counters[k] = d
		}
	}
	s.xmit = uint64(s.counters["h1:eth0:tx_queue_0_xdp_xmit"])
	s.xmitErr = uint64(s.counters["h1:eth0:tx_queue_0_xdp_xmit_errors"])
	return s, nil
}

// printDropTable prints one line per path with the ratios to xdp.
func printDropTable(cpus int, paths []*path, total []dropSample) {
	var sb strings.Builder
	direct := total[len(total)-1]
	fmt.Fprintf(&sb, "\nDropping a flood of spoofed sources (%s, random) at r, %d-byte UDP frames, 1 in %d legitimate (from h1 to h2);\n", floodPrefix, trafficgen.FrameLen, legitEvery)
	fmt.Fprintf(&sb, "one run, paths in turn, %v per path and round. direct (generator + XDP sink alone): %.2f Mpps.\n", dropWindow, direct.dropMpps())
	if cpus == 1 {
		fmt.Fprintf(&sb, "cpus=1: generator, r and sink on CPU 0; ns/pkt r = 1/offered − 1/direct; xdp/path: drop rates, r cost: ns/pkt path / ns/pkt xdp.\n")
	} else {
		fmt.Fprintf(&sb, "cpus=2: generator on CPU 0, r's (direct: h2's) receive NAPI threaded on CPU 1; frames r cannot take are refused; xdp/path: drop rates.\n")
	}
	fmt.Fprintf(&sb, "%-12s %9s %9s %9s %9s %9s %9s %10s\n", "path", "drop Mpps", "offered", "refused", "ns/pkt r", "xdp/path", "r cost", "legit")
	xdp := total[0]
	for i, p := range paths[:len(paths)-1] {
		t := total[i]
		ns, cost := routerNsPerFrame(t, direct), routerNsPerFrame(t, direct)/routerNsPerFrame(xdp, direct)
		if cpus != 1 {
			ns, cost = 0, 0
		}
		fmt.Fprintf(&sb, "%-12s %9.2f %9.2f %9d %9.0f %8.2fx %8.2fx %9.2f%%\n", p.name, t.dropMpps(), t.offeredMpps(), t.xmitErr,
			ns, xdp.dropMpps()/t.dropMpps(), cost, 100*t.legitDelivered())
	}
	fmt.Print(sb.String())
}

// napiThread makes the receive NAPI of r's eth1 (h2's eth0 on the direct
// path) a kernel thread (/sys/class/net/<port>/threaded) and pins it to
// cpu, so that the router (or sink) gets a CPU of its own instead of
// running on the generator's. The thread is found by name, napi/<port>-<id>,
// as the one that appears when threading is switched on.
func (p *path) napiThread(cpu int) error {
	role, port := "r", "eth1"
	if p.name == "direct" {
		role, port = "h2", "eth0"
	}
	before, err := napiThreads(port)
	if err != nil {
		return err
	}
	if err := p.l.Run(role, "sh", "-c", "echo 1 > /sys/class/net/"+port+"/threaded"); err != nil {
		return err
	}
	var pid int
	err = lab.Poll(context.Background(), 2*time.Second, func() error {
		after, err := napiThreads(port)
		if err != nil {
			return err
		}
		var fresh []int
		for q := range after {
			if !before[q] {
				fresh = append(fresh, q)
			}
		}
		if len(fresh) != 1 {
			return fmt.Errorf("%s path: %d new napi/%s-* threads, want 1", p.name, len(fresh), port)
		}
		pid = fresh[0]
		return nil
	})
	if err != nil {
		return err
	}
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(pid, &set); err != nil {
		return fmt.Errorf("%s path: pin napi thread %d to CPU %d: %w", p.name, pid, cpu, err)
	}
	return nil
}

// napiThreads returns the pids of the kernel threads napi/<port>-*.
func napiThreads(port string) (map[int]bool, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	pids := map[int]bool{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err == nil && strings.HasPrefix(string(comm), "napi/"+port+"-") {
			pids[pid] = true
		}
	}
	return pids, nil
}
