// Package bench measures forwarding throughput through a router namespace:
// the kernel's own IPv4 forwarding against xdprouterd's XDP path, side by
// side in one run (this machine's absolute numbers drift by ±20% from run
// to run; ratios within a run are what to compare).
//
// Labs h1 — r — h2 (lab.Basic) are built per route count, identical but
// for r: in one, kernel forwarding is on and nothing else runs; in the
// others, forwarding is off and xdprouterd forwards with XDP, looking
// routes up in its compiled structure or (full table only) in the BPF LPM
// trie (dataplane.lookup). With one route, xdprouterd's rate is the
// ceiling the full-table rates are compared with. h1 sends
// 60-byte UDP frames with trafficgen's live-frames generator, h2 counts
// and drops them with trafficgen's XDP sink, whose kernel answers ARP so
// that r keeps an ordinary neighbor entry for h2. h1's kernel stays silent
// (see silence). Generator, r and sink share one CPU: the rates are those of
// the whole chain, every frame sent must arrive (the benchmark fails
// otherwise, naming the counters that lost them), and the cost of crossing
// r is the path's time per frame minus that of the direct h1 — h2 wire. The
// paths are measured in alternating windows so that drift hits all alike.
//
// Run with `make bench` (root). Only Benchmark functions live here: plain
// `go test ./...` runs nothing in this package.
package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/bpf/trafficgen"
	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

const (
	// fewRoutes is the small table of the lookup benchmark.
	fewRoutes = 10
	// ceilingRoutes is the small table of the forwarding benchmark: XDP
	// forwarding with one route is the ceiling of the full-table rates.
	ceilingRoutes = 1
	// manyRoutes is the default of XDPROUTER_BENCH_ROUTES: a full IPv4
	// table with headroom, as /24s (trafficgen.Prefix) so that the
	// generator's random destinations cover all of it.
	manyRoutes = 1_000_000
	// window is how long h2's counter is sampled per path and round; every
	// round measures every path (b.Loop iterations = rounds; `make bench`
	// runs 4).
	window = 500 * time.Millisecond
	// warmup precedes the window in each BPF_PROG_TEST_RUN call. A
	// live-frames run spends ~30 ms outside the packet loop here (page
	// pool setup and teardown), whatever its length: short calls would
	// measure that, so each path sends in one long call and h2's counter
	// is sampled while frames flow.
	warmup = 100 * time.Millisecond
	// minDelivered is the share of the frames sent that must reach h2 (and
	// be redirected by XDP on the xdp path).
	minDelivered = 0.999
)

// routeCounts returns the table sizes to measure: ceilingRoutes and
// XDPROUTER_BENCH_ROUTES (default manyRoutes).
func routeCounts(b *testing.B) []int {
	many := manyRoutes
	if s := os.Getenv("XDPROUTER_BENCH_ROUTES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= fewRoutes || n > trafficgen.MaxRoutes {
			b.Fatalf("XDPROUTER_BENCH_ROUTES=%q: want an integer in %d..%d", s, fewRoutes+1, trafficgen.MaxRoutes)
		}
		many = n
	}
	return []int{ceilingRoutes, many}
}

// BenchmarkForwarding reports, per route count and destination mode, the
// rate of each path (kernel, xdp-compiled and, with the full table,
// xdp-trie) and its ratio to the kernel's, and prints a summary table with
// the ratios to the one-route XDP rate too.
func BenchmarkForwarding(b *testing.B) {
	if err := lab.Root(); err != nil {
		b.Skip("forwarding benchmarks skipped:", err)
	}
	bins := buildBinaries(b)
	var rows []row
	for _, n := range routeCounts(b) {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			start := time.Now()
			paths := []*path{newPath(b, "kernel", n, "", ""), newPath(b, "xdp-compiled", n, bins, config.LookupCompiled)}
			if n > ceilingRoutes {
				paths = append(paths, newPath(b, "xdp-trie", n, bins, config.LookupTrie))
			}
			paths = append(paths, newDirect(b, n)) // last: see compare
			b.Logf("set up %d labs with %d routes in %v", len(paths), n, time.Since(start).Round(time.Millisecond))
			for _, m := range []trafficgen.Mode{trafficgen.Fixed, trafficgen.Random} {
				b.Run("dst="+m.String(), func(b *testing.B) {
					rows = append(rows, compare(b, n, m, paths))
				})
			}
			// Free the labs now (b.Cleanup would keep them until the end).
			var errs []error
			for _, p := range paths {
				errs = append(errs, p.close())
			}
			if err := errors.Join(errs...); err != nil {
				b.Error(err)
			}
		})
	}
	printTable(rows)
}

// row is one scenario of the summary table: a sample per path, the
// kernel's first and direct last.
type row struct {
	routes  int
	mode    trafficgen.Mode
	names   []string
	samples []sample
}

// sample is what h2 received during sampling windows, and frames sent by
// h1 and received by h2 over whole runs.
type sample struct {
	received uint64        // in the windows
	d        time.Duration // total length of the windows
	sent     uint64        // whole runs
	arrived  uint64        // whole runs
	// counters are the changes of r's and the ports' counters over the
	// whole runs (see path.counters): where frames that did not arrive
	// went.
	counters map[string]int64
}

func (s *sample) add(o sample) {
	s.received += o.received
	s.d += o.d
	s.sent += o.sent
	s.arrived += o.arrived
	for k, v := range o.counters {
		if s.counters == nil {
			s.counters = map[string]int64{}
		}
		s.counters[k] += v
	}
}

// misses is the number of IPv4 frames r's XDP program did not redirect:
// every outcome but redirect, except the reasons h1's and h2's own
// background traffic (ARP, IPv6 neighbor discovery) has.
func (s sample) misses() int64 {
	var n int64
	for k, v := range s.counters {
		if r, ok := strings.CutPrefix(k, "xdp:"); ok && r != bpf.ActionRedirect &&
			r != bpf.ActionPass+"/"+bpf.ReasonNotIP && r != bpf.ActionPass+"/"+bpf.ReasonLinkLocalMulticast {
			n += v
		}
	}
	return n
}

// ipDrops are the IPv4 MIB counters of r where the kernel path drops (or
// forwards) frames.
var ipDrops = map[string]bool{
	"nstat:IpForwDatagrams": true, "nstat:IpInAddrErrors": true, "nstat:IpInDiscards": true,
	"nstat:IpInHdrErrors": true, "nstat:IpOutDiscards": true, "nstat:IpOutNoRoutes": true,
}

// lost explains frames sent but not delivered: the nonzero counters that
// count drops or non-forwarded frames.
func (s sample) lost() string {
	var keys []string
	for k, v := range s.counters {
		if v != 0 && (strings.Contains(k, "err") || strings.Contains(k, "drops") && !strings.HasPrefix(k, "h2:") ||
			strings.HasPrefix(k, "xdp:") && k != "xdp:"+bpf.ActionRedirect || ipDrops[k]) {
			keys = append(keys, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}

func (s sample) mpps() float64 {
	if s.d <= 0 {
		return 0
	}
	return float64(s.received) / s.d.Seconds() / 1e6
}

// delivered is the share of the frames sent that reached h2. Everything
// runs on one CPU, so the generator cannot outrun r or h2: anything short of
// 100% is a fault (see sample.lost), not overload.
func (s sample) delivered() float64 {
	if s.sent == 0 {
		return 0
	}
	return float64(s.arrived) / float64(s.sent)
}

// routerNs estimates what crossing r costs per packet: the path's time per
// packet minus the harness's (generator and sink, measured on the direct
// h1 — h2 path). Everything runs on one CPU: veth hands frames to the
// receiver's NAPI on the sending CPU.
func routerNs(path, direct sample) float64 {
	if path.mpps() == 0 || direct.mpps() == 0 {
		return 0
	}
	return 1e3/path.mpps() - 1e3/direct.mpps()
}

// compare measures the paths (kernel, xdp-..., direct) in turn, one
// window each per b.Loop iteration (the order rotates every round).
func compare(b *testing.B, routes int, m trafficgen.Mode, paths []*path) row {
	gens := make([]*trafficgen.Generator, len(paths))
	rates := make([]float64, len(paths)) // estimates, frames per second
	for i, p := range paths {
		g, err := p.generator(m, routes)
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		gens[i] = g
	}
	total := make([]sample, len(paths))
	round := 0
	for b.Loop() {
		for j := range paths {
			k := (j + round) % len(paths)
			s, err := paths[k].send(gens[k], &rates[k])
			if err != nil {
				b.Fatal(err)
			}
			total[k].add(s)
		}
		round++
	}
	r := row{routes: routes, mode: m, samples: total}
	for i, p := range paths {
		r.names = append(r.names, p.name)
		t := total[i]
		if t.received == 0 {
			b.Fatalf("%s path: no frame reached h2 (%d sent)\n%s", p.name, t.sent, p.diagnose())
		}
		c := t.counters
		fwd := c["xdp:"+bpf.ActionRedirect]
		if p.ctl == "" {
			fwd = c["nstat:IpForwDatagrams"]
		}
		b.Logf("%s: %d frames sent, %d taken by the next hop's ring (%d refused), %d forwarded by r, %d not redirected by XDP, %d at h2",
			p.name, t.sent, c["h1:eth0:tx_queue_0_xdp_xmit"], c["h1:eth0:tx_queue_0_xdp_xmit_errors"], fwd, t.misses(), t.arrived)
		// A lost frame means a broken setup or a router fault, never
		// overload: say where they went.
		if t.delivered() < minDelivered || float64(t.misses()) > (1-minDelivered)*float64(t.sent) {
			b.Errorf("%s path: %d of %d frames reached h2 (%.2f%%), %d not redirected by XDP; counters: %s\n%s",
				p.name, t.arrived, t.sent, 100*t.delivered(), t.misses(), t.lost(), p.diagnose())
		}
	}
	b.ReportMetric(0, "ns/op") // a round's duration is fixed by window
	direct := total[len(total)-1]
	b.ReportMetric(direct.mpps(), "direct-Mpps")
	for i, name := range r.names[:len(r.names)-1] {
		b.ReportMetric(total[i].mpps(), name+"-Mpps")
		b.ReportMetric(routerNs(total[i], direct), name+"-ns/pkt")
		b.ReportMetric(100*total[i].delivered(), name+"-delivered-%")
		if i > 0 {
			b.ReportMetric(total[i].mpps()/total[0].mpps(), name+"/kernel")
		}
	}
	return r
}

// printTable prints one line per scenario and path, with the ratios to the
// kernel's rate and to the ceiling: xdp-compiled with ceilingRoutes, same
// destination mode, same run.
func printTable(rows []row) {
	if len(rows) == 0 {
		return
	}
	ceiling := map[trafficgen.Mode]float64{}
	for _, r := range rows {
		if r.routes == ceilingRoutes {
			for i, n := range r.names {
				if n == "xdp-compiled" {
					ceiling[r.mode] = r.samples[i].mpps()
				}
			}
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nForwarding h1 → r → h2, %d-byte UDP frames, Mpps received at h2 (one run, paths measured in turn, %v windows).\n", trafficgen.FrameLen, window)
	fmt.Fprintf(&sb, "direct: h1 — h2 without a router (generator + sink alone); ns/pkt in r = 1/path rate − 1/direct rate;\n")
	fmt.Fprintf(&sb, "ceiling: xdp-compiled with %d route, same destinations mode. Random destinations cover the whole table.\n", ceilingRoutes)
	fmt.Fprintf(&sb, "%-25s %-13s %7s %7s %10s %9s %10s %9s\n", "scenario", "path", "Mpps", "direct", "ns/pkt r", "/kernel", "/ceiling", "delivered")
	for _, r := range rows {
		direct := r.samples[len(r.samples)-1]
		kernel := r.samples[0].mpps()
		for i, name := range r.names[:len(r.names)-1] {
			s := r.samples[i]
			fmt.Fprintf(&sb, "%-25s %-13s %7.2f %7.2f %10.0f %8.2fx %9.2fx %8.1f%%\n", fmt.Sprintf("routes=%d dst=%s", r.routes, r.mode), name,
				s.mpps(), direct.mpps(), routerNs(s, direct), s.mpps()/kernel, s.mpps()/ceiling[r.mode], 100*s.delivered())
		}
	}
	fmt.Print(sb.String())
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// buildBinaries builds xdprouterd and xdprouterctl once per process (as the
// integration tests do) and returns their directory.
func buildBinaries(b *testing.B) string {
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "xdprouter-bench-bin")
		if buildErr != nil {
			return
		}
		for _, c := range []string{"xdprouterd", "xdprouterctl"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, c), "../../cmd/"+c).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", c, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	b.Cleanup(func() { os.RemoveAll(buildDir) })
	return buildDir
}

// path is one lab h1 — r — h2 whose r forwards with the kernel or with
// xdprouterd.
type path struct {
	name string
	l    *lab.Lab
	ctl  string // xdprouterctl binary; "" on the kernel path
	sink *trafficgen.Sink

	h1Ifindex   int
	h1MAC, rMAC net.HardwareAddr
	closeOnce   sync.Once
	closeErr    error
}

// newBasicPath builds the lab h1 — r — h2 of a path (namespaces named
// from prefix), with r's end prepared for a live-frames flood from h1.
func newBasicPath(b *testing.B, name, prefix string) *path {
	b.Helper()
	p := &path{name: name, l: lab.New(prefix)}
	b.Cleanup(func() {
		if err := p.close(); err != nil {
			b.Errorf("%s lab cleanup: %v", name, err)
		}
	})
	l := p.l
	if err := l.Basic(); err != nil {
		b.Fatal(err)
	}
	h2MAC, err := p.mac("h2", "eth0")
	if err != nil {
		b.Fatal(err)
	}
	if p.rMAC, err = p.mac("r", "eth1"); err != nil {
		b.Fatal(err)
	}
	for _, s := range [][]string{
		// Frames XDP_TX'd by h1 into eth1 need NAPI there (KERNEL-NOTES
		// gotcha 1); on the XDP path xdprouterd's program provides it.
		{"ethtool", "-K", "eth1", "gro", "on"},
		// r reaches h2 through an ordinary (dynamic) neighbor entry:
		// h2's sink passes ARP to h2's kernel, which answers, so the
		// entry stays valid when it goes STALE and the kernel (or
		// xdprouterd's periodic refresh) re-confirms it. Not a permanent
		// entry: xdprouterd's refresh (NTF_USE) turns a PERMANENT entry
		// INCOMPLETE on this kernel, and with nobody answering ARP every
		// frame was then passed as neighbor_unresolved.
		{"ip", "neigh", "replace", lab.H2v4, "lladdr", h2MAC.String(), "dev", "eth2", "nud", "reachable"},
	} {
		if err := l.Run("r", s...); err != nil {
			b.Fatal(err)
		}
	}
	if err := silence(l); err != nil {
		b.Fatal(err)
	}
	return p
}

// newPath builds a lab with routes /24 routes (trafficgen.Prefix) via h2 in
// r. bins == "" selects kernel forwarding, else xdprouterd from bins with
// dataplane.lookup = lookup.
func newPath(b *testing.B, name string, routes int, bins, lookup string) *path {
	b.Helper()
	p := newBasicPath(b, name, "xb"+strings.TrimPrefix(name, "xdp-")[:1])
	l := p.l
	if err := addRoutes(l, routes); err != nil {
		b.Fatal(err)
	}
	if bins == "" {
		if err := l.Sysctl("r", "net.ipv4.ip_forward", "1"); err != nil {
			b.Fatal(err)
		}
	} else {
		p.ctl = filepath.Join(bins, "xdprouterctl")
		p.startDaemon(b, filepath.Join(bins, "xdprouterd"), routes, lookup)
	}
	p.attach(b)
	p.check(b, routes)
	return p
}

// newDirect builds h1 — h2 without a router: the harness's own ceiling.
func newDirect(b *testing.B, routes int) *path {
	b.Helper()
	p := &path{name: "direct", l: lab.New("xbd")}
	b.Cleanup(func() {
		if err := p.close(); err != nil {
			b.Errorf("direct lab cleanup: %v", err)
		}
	})
	l := p.l
	if err := errors.Join(l.AddNS("h1"), l.AddNS("h2")); err != nil {
		b.Fatal(err)
	}
	if err := l.Link("h1", "eth0", "h2", "eth0"); err != nil {
		b.Fatal(err)
	}
	if err := silence(l); err != nil {
		b.Fatal(err)
	}
	p.attach(b)
	var err error
	if p.rMAC, err = p.mac("h2", "eth0"); err != nil {
		b.Fatal(err)
	}
	p.check(b, routes)
	return p
}

// silence stops h1's kernel from sending anything (ARP, IPv6 neighbor
// discovery and the like) out of eth0: only the generator sends there.
// veth runs the receiver's NAPI on the CPU that queued the frame and keeps
// it there while the ring stays busy, so a single reply of h1's kernel sent
// from CPU 1 moved r's receive processing off the generator's CPU for the
// rest of a run; the generator then outran r and r's ring refused frames.
// r needs no neighbor entry for h1: traffic only flows h1 → h2.
func silence(l *lab.Lab) error {
	return errors.Join(
		l.Sysctl("h1", "net.ipv6.conf.eth0.disable_ipv6", "1"),
		l.Run("h1", "ip", "link", "set", "dev", "eth0", "arp", "off"),
	)
}

// mac returns the address of role's interface ifname.
func (p *path) mac(role, ifname string) (net.HardwareAddr, error) {
	out, err := p.l.Output(role, "cat", "/sys/class/net/"+ifname+"/address")
	if err != nil {
		return nil, err
	}
	return net.ParseMAC(strings.TrimSpace(out))
}

// attach puts the sink on h2's eth0 and looks up h1's eth0.
func (p *path) attach(b *testing.B) {
	b.Helper()
	var err error
	if p.sink, err = trafficgen.NewSink(); err != nil {
		b.Fatal(err)
	}
	if err := p.l.Do("h2", func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		return p.sink.Attach(ifc.Index)
	}); err != nil {
		b.Fatal(err)
	}
	if err := p.l.Do("h1", func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		p.h1Ifindex, p.h1MAC = ifc.Index, ifc.HardwareAddr
		return nil
	}); err != nil {
		b.Fatal(err)
	}
}

// addRoutes installs trafficgen.Prefix(0 ... n-1) via h2 in r's main
// table with fib's batched writer (1M routes in seconds; proto static:
// xdprouterd mirrors every protocol but its own).
func addRoutes(l *lab.Lab, n int) error {
	return l.Do("r", func() error {
		link, err := netlink.LinkByName("eth2")
		if err != nil {
			return err
		}
		t, err := fib.Open(254)
		if err != nil {
			return err
		}
		defer t.Close()
		t.Protocol = unix.RTPROT_STATIC
		nh := []route.NextHop{{Gateway: netip.MustParseAddr(lab.H2v4), Ifindex: link.Attrs().Index}}
		cs := make([]route.Change, n)
		for i := range cs {
			cs[i] = route.Change{Route: route.Route{Prefix: trafficgen.Prefix(i), Kind: route.Unicast, NextHops: nh}}
		}
		var errs []error
		for i, err := range t.Apply(cs) {
			if err != nil && len(errs) < 5 {
				errs = append(errs, fmt.Errorf("route %d (%v): %w", i, cs[i].Route.Prefix, err))
			}
		}
		return errors.Join(errs...)
	})
}

// status is the part of `xdprouterctl status` the benchmark reads.
type status struct {
	Routes struct{ XDP4, Pending, Failed int }
}

// startDaemon runs xdprouterd in r (forwarding stays off) with
// dataplane.lookup = lookup and waits until it has mirrored every route
// into XDP.
func (p *path) startDaemon(b *testing.B, daemon string, routes int, lookup string) {
	b.Helper()
	p.startDaemonWith(b, daemon, routes, fmt.Sprintf("lookup = %q\n", lookup))
}

// startDaemonWith is startDaemon with extra appended to the config: it
// lands in the [dataplane] table, unless it opens tables of its own. With
// routes > 0, the first and last routes must be forwarded by XDP.
func (p *path) startDaemonWith(b *testing.B, daemon string, routes int, extra string) {
	b.Helper()
	cfg, err := lab.DaemonConfigFile(b.TempDir(), []string{"eth1", "eth2"}, extra)
	if err != nil {
		b.Fatal(err)
	}
	proc, err := p.l.Start("r", "xdprouterd", daemon, "--config", cfg, "--log-level", "warn")
	if err != nil {
		b.Fatal(err)
	}
	var st status
	err = lab.Poll(b.Context(), 60*time.Second+time.Duration(routes)*100*time.Microsecond, func() error {
		if exited, err := proc.Exited(); exited {
			return fmt.Errorf("xdprouterd exited: %v", err)
		}
		if err := p.l.Ctl("r", p.ctl, &st, "status"); err != nil {
			return err
		}
		if st.Routes.XDP4 < routes || st.Routes.Pending > 0 {
			return fmt.Errorf("xdprouterd mirrored %d of %d routes into XDP (%d pending)", st.Routes.XDP4, routes, st.Routes.Pending)
		}
		return nil
	})
	if err != nil {
		b.Fatalf("%v\n%s", err, proc.Out.String())
	}
	for _, i := range []int{0, routes - 1} {
		if routes == 0 {
			break
		}
		dst := trafficgen.Prefix(i).Addr().Next()
		var d bpf.Decision
		if err := p.l.Ctl("r", p.ctl, &d, "lookup", dst.String()); err != nil {
			b.Fatal(err)
		}
		if d.Action != bpf.ActionRedirect {
			b.Fatalf("XDP would not forward %v: %s %s", dst, d.Action, d.Reason)
		}
	}
}

func (p *path) generator(m trafficgen.Mode, routes int) (*trafficgen.Generator, error) {
	return trafficgen.NewGenerator(trafficgen.Config{
		SrcMAC: p.h1MAC, DstMAC: p.rMAC,
		Src:  netip.MustParseAddr(lab.H1v4),
		Dst:  trafficgen.Prefix(0).Addr().Next(),
		Mode: m, Routes: routes,
	})
}

// send runs g on h1 in one BPF_PROG_TEST_RUN call and samples h2's
// counter during window, after warmup. *rate is the expected rate (0:
// unknown); the call is sized from it, and it is updated with the
// measurement. A call that ends before the window does is repeated with
// more frames.
func (p *path) send(g *trafficgen.Generator, rate *float64) (sample, error) {
	for {
		est := *rate
		if est == 0 {
			est = 1e6
		}
		n := uint32(min(est*(warmup+window).Seconds()*1.25+1e5, 1<<31))
		s, ended, err := p.sendOnce(g, n)
		if err != nil {
			return s, err
		}
		if !ended {
			*rate = s.mpps() * 1e6
			return s, nil
		}
		*rate = 2 * est
	}
}

// sendOnce sends n frames; ended reports that the run finished before the
// sampling window did (the sample is then useless).
func (p *path) sendOnce(g *trafficgen.Generator, n uint32) (s sample, ended bool, err error) {
	k0, err := p.counters()
	if err != nil {
		return s, false, err
	}
	c0, err := p.sink.Received()
	if err != nil {
		return s, false, err
	}
	done := make(chan error, 1)
	go func() {
		done <- p.l.Do("h1", func() error {
			// One CPU for every run: the receivers' NAPI follows the
			// sender's CPU (veth schedules it where frames are queued).
			var cpu unix.CPUSet
			cpu.Set(0)
			if err := unix.SchedSetaffinity(0, &cpu); err != nil {
				return fmt.Errorf("pin generator thread: %w", err)
			}
			return g.Send(p.h1Ifindex, n)
		})
	}()
	wait := func(d time.Duration) bool {
		select {
		case err = <-done:
			return true
		case <-time.After(d):
			return false
		}
	}
	if wait(warmup) {
		return s, true, err
	}
	c1, err1 := p.sink.Received()
	t1 := time.Now()
	ended = wait(window)
	c2, err2 := p.sink.Received()
	s.d = time.Since(t1)
	if !ended {
		err = <-done
	}
	c3, err3 := p.settled()
	k1, err4 := p.counters()
	if err := errors.Join(err, err1, err2, err3, err4); err != nil {
		return s, ended, err
	}
	s.received, s.sent, s.arrived = c2-c1, uint64(n), c3-c0
	s.counters = map[string]int64{}
	for k, v := range k1 {
		if d := int64(v - k0[k]); d != 0 {
			s.counters[k] = d
		}
	}
	return s, ended, nil
}

// settled returns h2's counter once the frames still queued in the veth
// rings when the generator returned have arrived (it stops changing).
func (p *path) settled() (uint64, error) {
	last, err := p.sink.Received()
	for i := 0; i < 50 && err == nil; i++ {
		time.Sleep(2 * time.Millisecond)
		var c uint64
		if c, err = p.sink.Received(); c == last {
			break
		}
		last = c
	}
	return last, err
}

// counters reads what accounts for every frame of a run, as absolute
// values: the veth counters of h1 — r — h2 (ethtool -S; frames refused by
// a full receive ring show as tx_queue_*_xdp_xmit_errors on the sending
// side), r's IPv4 MIB (the kernel path's forwarding and drops) and, on the
// xdp path, xdprouterd's XDP outcomes ("xdp:action/reason": no_route or
// neighbor_unresolved would mean frames that missed their route).
func (p *path) counters() (map[string]uint64, error) {
	m := map[string]uint64{}
	ports := [][2]string{{"h1", "eth0"}, {"h2", "eth0"}}
	if p.name != "direct" {
		ports = append(ports, [2]string{"r", "eth1"}, [2]string{"r", "eth2"})
	}
	for _, pt := range ports {
		out, err := p.l.Output(pt[0], "ethtool", "-S", pt[1])
		if err != nil {
			return nil, err
		}
		for _, ln := range strings.Split(out, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(ln), ": ")
			if n, err := strconv.ParseUint(v, 10, 64); ok && err == nil && k != "peer_ifindex" {
				m[pt[0]+":"+pt[1]+":"+k] = n
			}
		}
	}
	if p.name == "direct" {
		return m, nil
	}
	out, err := p.l.Output("r", "cat", "/proc/net/snmp")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, ln := range strings.Split(out, "\n") {
		f := strings.Fields(ln)
		if len(f) < 2 || f[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if n, err := strconv.ParseUint(v, 10, 64); err == nil && i < len(names) {
				m["nstat:Ip"+names[i]] = n
			}
		}
	}
	if p.ctl != "" {
		var st []bpf.StatCounter
		if err := p.l.Ctl("r", p.ctl, &st, "stats"); err != nil {
			return nil, err
		}
		for _, c := range st {
			k := "xdp:" + c.Action
			if c.Reason != "" {
				k += "/" + c.Reason
			}
			m[k] = c.Packets
		}
	}
	return m, nil
}

// check sends a few frames over random routes and fails unless a good part
// arrives (veth queues may overflow), so that a broken setup fails loudly
// instead of measuring noise.
func (p *path) check(b *testing.B, routes int) {
	b.Helper()
	g, err := p.generator(trafficgen.Random, routes)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	const n = 10_000
	before, err := p.sink.Received()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.l.Do("h1", func() error { return g.Send(p.h1Ifindex, n) }); err != nil {
		b.Fatal(err)
	}
	var got uint64
	_ = lab.Poll(b.Context(), 2*time.Second, func() error {
		after, err := p.sink.Received()
		if got = after - before; err == nil && got < n/10 {
			err = fmt.Errorf("%d of %d", got, n)
		}
		return err
	})
	if got < n/10 {
		b.Fatalf("%s path: h2 received %d of %d frames sent by h1\n%s", p.name, got, n, p.diagnose())
	}
}

// diagnose collects what explains lost frames: veth queue drops, XDP and
// kernel counters.
func (p *path) diagnose() string {
	var sb strings.Builder
	for _, c := range [][]string{
		{"r", "ethtool", "-S", "eth1"}, {"r", "ethtool", "-S", "eth2"}, {"h2", "ethtool", "-S", "eth0"},
		{"r", "ip", "neigh"}, {"r", "nstat", "-az", "IpInAddrErrors", "IpOutNoRoutes", "IpExtInNoRoutes", "IpForwDatagrams"},
	} {
		out, err := p.l.Output(c[0], c[1:]...)
		fmt.Fprintf(&sb, "%s: %s (err %v):\n%s\n", c[0], strings.Join(c[1:], " "), err, out)
	}
	if p.ctl != "" {
		out, err := p.l.Output("r", p.ctl, "--api", "127.0.0.1:"+lab.MetricsPort, "stats")
		fmt.Fprintf(&sb, "xdprouterctl stats (err %v):\n%s\n", err, out)
	}
	return sb.String()
}

// close detaches the sink, stops xdprouterd and removes the lab; safe to
// call twice.
func (p *path) close() error {
	p.closeOnce.Do(func() {
		var errs []error
		if p.sink != nil {
			errs = append(errs, p.sink.Close())
		}
		errs = append(errs, p.l.Close())
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}
