package bench

// Failover (BenchmarkFailover): how long traffic is lost when the link to
// the preferred upstream fails, for xdprouterd with BGP PIC edge against
// BIRD 2 with kernel forwarding (and xdprouterd without PIC, and with PIC
// but kernel routes without nexthop objects), on the same table in the
// same run.
//
// Each router gets a fresh, identical lab
//
//	h1 eth0 ── eth1 r eth2 ── eth0 hA   (upstream A, preferred)
//	                  eth3 ── eth0 hB   (upstream B, AS path prepended)
//
// hA and hB run BIRD 2, each announcing the same lpm.SyntheticTable with
// the per-route AS paths of the convergence benchmark; B prepends its AS
// failoverPrepend more times, so every best path is A's and B's is the
// next best. r runs the router under test:
//   - xdprouterd (the binary, XDP native on eth1-eth3, kernel forwarding
//     off), [bgp] pic = true: GoBGP's next best path is pre-installed as a
//     backup in the next-hop groups (and kernel routes carry their next
//     hops, not nexthop objects: on carrier loss the kernel deletes the
//     routes by nexthop objects through the link before it sends the link
//     message xdprouterd switches on, 565k deletions first); or pic =
//     false (routes by nexthop objects);
//   - BIRD 2 as the router: every best path into the kernel's main table
//     (routers_test.go's kernel protocols), kernel forwarding on, no XDP.
//
// Both routers' sessions have hold time failoverHold, as an operator
// shortens BGP's 90 s default: it bounds the failover of a router that only
// learns of the failure from BGP (xdprouterd without PIC, as GoBGP does not
// watch the link), and is what xdprouterd with PIC has to live through
// without loss when the session with A finally expires. BIRD shuts a direct
// session down as soon as its interface loses its link.
//
// Before the failure every route must be in the kernel (and XDP), and for
// xdprouterd with PIC every route must have its backup: the next-hop groups
// (status API /api/v1/nexthops, one request) must hold A and B for the whole
// table, confirmed on a sample of routes (/api/v1/routes?prefix=).
//
// h1 then sends 60-byte UDP frames to failoverDsts random hosts of the table
// (prefixes_test.go's destinations) from an AF_PACKET socket, paced to
// XDPROUTER_BENCH_FAILOVER_PPS (default failoverPPS). hA and hB have
// forwarding off: their kernels drop those frames and count each in
// IpInAddrErrors (/proc/PID/net/snmp of their BIRD), which is what arrived
// there. The benchmark samples h1's sent count and the two receive counters
// every millisecond. After a second of traffic (all of which must reach A),
// A's end of its link goes down (netlink, in hA): r's eth2 loses its carrier.
//
// From the samples: lost(t) = sent - received at A and B. Recovery is the
// first moment after the failure from which failoverStable passes with at
// most failoverSlack frames lost; the gap is the frames lost from the
// failure to recovery divided by the measured send rate (ms of traffic);
// "first B" is when the first frame reached B; "later" is what was lost
// after recovery until the end (e.g. when xdprouterd's session with A
// expires and the table moves from the backups to B's own paths). The run
// ends once the router's session with A is down and, for xdprouterd,
// nothing is pending, and recovery is established; or after a timeout.
//
// XDPROUTER_BENCH_FAILOVER sets the table sizes (IPv4 prefixes,
// comma-separated; default defaultFailoverSizes, 10000 with BENCH=quick),
// XDPROUTER_BENCH_FAILOVER_ROUTERS the routers (pic, bird, nopic,
// pic-nhoff: PIC with fib.nexthop-objects = false, the same since PIC
// implies it; default pic, bird, nopic),
// XDPROUTER_BENCH_FAILOVER_TRACE a directory for CSV traces of the samples.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/bpf/trafficgen"
	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/lpm"
	xsync "github.com/xdprouter/xdprouter/sync"
)

const (
	defaultFailoverSizes   = "10000,565000"
	defaultFailoverRouters = "pic,bird,nopic"
	// failoverPPS is the default send rate: one frame is 0.05 ms.
	failoverPPS = 20000
	// failoverHold is the hold time of the routers' sessions, seconds.
	failoverHold = 9
	// failoverPrepend is how many more times B prepends its AS.
	failoverPrepend = 2
	// failoverDsts is the number of distinct destinations h1 cycles over.
	failoverDsts = 1 << 16
	// failoverSample is the sampling interval of the counters.
	failoverSample = time.Millisecond
	// failoverStable and failoverSlack define recovery: from then on,
	// failoverStable with at most failoverSlack frames lost.
	failoverStable = time.Second
	failoverSlack  = 3
	// failoverSettle is how long the counters take to settle after the
	// sender pauses (frames in flight arrive within it).
	failoverSettle = 50 * time.Millisecond
	// failoverPre is the traffic before the failure (all must reach A).
	failoverPre = time.Second
	// failoverSampled is how many routes are checked one by one.
	failoverSampled = 100
)

// foRouter is one router under test.
type foRouter struct {
	name string // as printed
	kind string // kindXDP or kindBIRD
	pic  bool
	// noNexthopObjects: xdprouterd installs kernel routes with their next
	// hops, not by nexthop objects (fib.nexthop-objects = false).
	noNexthopObjects bool
}

var foRouters = map[string]foRouter{
	"pic":   {"xdprouterd+pic", kindXDP, true, false},
	"bird":  {"bird", kindBIRD, false, false},
	"nopic": {"xdprouterd", kindXDP, false, false},
	// Kernel routes without nexthop objects, as xdprouterd does with PIC
	// anyway since it was measured here: on carrier loss the kernel
	// flushes routes by nexthop objects before it sends the link message
	// (see docs/BENCHMARKS.md); routes with plain next hops stay, linkdown.
	"pic-nhoff": {"xdprouterd+pic/nh-off", kindXDP, true, true},
}

// failoverConfig returns the table sizes and the routers to measure.
func failoverConfig(b *testing.B) (sizes []int, routers []foRouter) {
	s := os.Getenv("XDPROUTER_BENCH_FAILOVER")
	if s == "" {
		s = defaultFailoverSizes
	}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 || n > 2_000_000 {
			b.Fatalf("XDPROUTER_BENCH_FAILOVER=%q: want table sizes 100..2000000, comma-separated", s)
		}
		sizes = append(sizes, n)
	}
	r := os.Getenv("XDPROUTER_BENCH_FAILOVER_ROUTERS")
	if r == "" {
		r = defaultFailoverRouters
	}
	for _, f := range strings.Split(r, ",") {
		fr, ok := foRouters[strings.TrimSpace(f)]
		if !ok {
			b.Fatalf("XDPROUTER_BENCH_FAILOVER_ROUTERS=%q: want pic, bird, nopic, pic-nhoff, comma-separated", r)
		}
		routers = append(routers, fr)
	}
	return sizes, routers
}

// failoverRate is the send rate (XDPROUTER_BENCH_FAILOVER_PPS).
func failoverRate(b *testing.B) float64 {
	s := os.Getenv("XDPROUTER_BENCH_FAILOVER_PPS")
	if s == "" {
		return failoverPPS
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r < 1000 || r > 1e6 {
		b.Fatalf("XDPROUTER_BENCH_FAILOVER_PPS=%q: want 1000..1000000 frames per second", s)
	}
	return r
}

// failover is one router's measurement.
type failover struct {
	router string
	n      int
	pps    float64       // measured send rate
	pre    float64       // share of the frames lost before the failure
	firstB time.Duration // failure → first frame at B (-1: never)
	rec    time.Duration // failure → recovery (-1: not within the run)
	gap    float64       // ms of traffic lost until recovery
	later  float64       // ms of traffic lost after recovery
	// The router's view (polled every failoverProbe): its session with A
	// down, xdprouterd's pending changes drained after that, the kernel's
	// route count (fewest after the failure, and when it had the whole
	// table again).
	sessionDown, drained, kernelBack time.Duration
	kernelMin                        int
	end                              time.Duration // the run's length after the failure
	jitter                           int64         // range of frames in flight before the failure
	xdpLost                          string        // xdprouterd: XDP outcomes other than redirect during the run
}

// BenchmarkFailover measures each router's failover on each table size
// and prints a comparison table.
func BenchmarkFailover(b *testing.B) {
	if err := rootAndBIRD(); err != nil {
		b.Skip("failover benchmark skipped:", err)
	}
	sizes, routers := failoverConfig(b)
	pps := failoverRate(b)
	bins := buildBinaries(b)
	var res []failover
	for _, n := range sizes {
		b.Run(fmt.Sprintf("table=%d", n), func(b *testing.B) {
			table := failoverTable(n)
			dsts := destinations(table, failoverDsts, tableSeed)
			for b.Loop() {
				for _, fr := range routers {
					g := newFailoverRig(b, fr, bins, table)
					f, err := g.run(b, dsts, pps)
					if err != nil {
						b.Fatalf("%s: %v", fr.name, err)
					}
					b.Logf("%s %d: gap %.2f ms, first at B %v, recovered %v, later %.2f ms; session with A down %v",
						fr.name, n, f.gap, f.firstB, f.rec, f.later, f.sessionDown)
					res = append(res, f)
					if err := g.close(); err != nil { // free the memory before the next
						b.Error(err)
					}
				}
			}
			for _, f := range res {
				if f.n == n {
					b.ReportMetric(f.gap, f.router+"-gap-ms")
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
	printFailover(res)
}

// failoverTable is the announced table: lpm.SyntheticTable's IPv4
// prefixes (none overlaps the lab's 10.0.0.0/8).
func failoverTable(n int) []netip.Prefix { return lpm.SyntheticTable(n, 32, tableSeed) }

// foRig is one failover lab; rig's probes (status, counts, close) work on it.
type foRig struct {
	*rig
	fr       foRouter
	n        int
	upA, upB *lab.Proc
	rA, rB   int // r's ifindexes of eth2 (A) and eth3 (B)
	h1MAC    net.HardwareAddr
	rMAC     net.HardwareAddr // r's eth1
	logAt    int              // length of the router's output at the failure
}

const (
	portA, portB = 2, 3
	// failoverProbe is how often the router's view is polled during the
	// run; the kernel's route count (fib_triestat walks the trie) every
	// fourth time.
	failoverProbe = 250 * time.Millisecond
)

func upAddr(port int) string { return fmt.Sprintf("10.0.%d.2", port) }
func rAddr(port int) string  { return fmt.Sprintf("10.0.%d.1", port) }

// newFailoverRig builds the lab, starts the router, then the upstreams,
// and waits until the router has the whole table (with backups for PIC).
func newFailoverRig(b *testing.B, fr foRouter, bins string, table []netip.Prefix) *foRig {
	b.Helper()
	dir, err := os.MkdirTemp("", "xbf-") // short: unix socket paths
	if err != nil {
		b.Fatal(err)
	}
	letter := map[string]string{"xdprouterd+pic": "p", "bird": "b", "xdprouterd": "x", "xdprouterd+pic/nh-off": "o"}[fr.name]
	g := &foRig{rig: &rig{kind: fr.kind, l: lab.New("xf" + letter), dir: dir}, fr: fr, n: len(table)}
	b.Cleanup(func() {
		if err := g.close(); err != nil {
			b.Errorf("%s lab cleanup: %v", fr.name, err)
		}
	})
	l := g.l
	if err := errors.Join(l.AddNS("r"), l.AddHost("h1", 1), l.AddHost("hA", portA), l.AddHost("hB", portB)); err != nil {
		b.Fatal(err)
	}
	// The upstreams drop (and count) what they receive for the table;
	// forwarding on would send it back to r. A new namespace inherits
	// IPv4 forwarding from the root namespace: set it either way.
	if err := errors.Join(l.ForwardingOff("hA"), l.ForwardingOff("hB")); err != nil {
		b.Fatal(err)
	}
	if fr.kind == kindXDP {
		err = l.ForwardingOff("r")
	} else {
		err = l.Sysctl("r", "net.ipv4.ip_forward", "1")
	}
	if err != nil {
		b.Fatal(err)
	}
	if err := g.learnPorts(); err != nil {
		b.Fatal(err)
	}
	switch fr.kind {
	case kindXDP:
		cfg := filepath.Join(dir, "xdprouter.toml")
		if err := os.WriteFile(cfg, []byte(failoverDaemonConfig(fr.pic, !fr.noNexthopObjects)), 0o644); err != nil {
			b.Fatal(err)
		}
		g.router, err = l.Start("r", "xdprouterd", filepath.Join(bins, "xdprouterd"), "--config", cfg, "--log-level", "info")
	case kindBIRD:
		rdir := filepath.Join(dir, "r")
		if err = os.Mkdir(rdir, 0o755); err == nil {
			g.router, err = l.StartBIRDConf("r", rdir, failoverBIRDConfig())
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	err = lab.Poll(b.Context(), 30*time.Second, func() error {
		if exited, err := g.router.Exited(); exited {
			return fmt.Errorf("%s exited: %v", fr.name, err)
		}
		if fr.kind == kindBIRD {
			_, err := birdCmd(g.birdSocket(), "show status")
			return err
		}
		var st api.Status
		return g.status(&st)
	})
	if err != nil {
		b.Fatalf("%v\n%s", err, g.router.Out.String())
	}
	if g.base, err = g.kernelCounts(); err == nil && fr.kind == kindXDP {
		var c rcounts
		c, err = g.claims()
		g.base.x4, g.base.x6 = c.x4, c.x6
	}
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range []struct {
		role    string
		port    int
		prepend int
		p       **lab.Proc
	}{{"hA", portA, 0, &g.upA}, {"hB", portB, failoverPrepend, &g.upB}} {
		udir := filepath.Join(dir, u.role)
		if err := os.Mkdir(udir, 0o755); err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(udir, "bird.conf")
		if err := writeFailoverUpstream(path, table, u.port, u.prepend); err != nil {
			b.Fatal(err)
		}
		if *u.p, err = l.StartBIRDFile(u.role, udir, path); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	if err := g.waitTable(b, table); err != nil {
		b.Fatalf("%s: %v\n%s", fr.name, err, tail(g.router.Out.String(), 30))
	}
	b.Logf("%s: %d routes (A best, B backup) in %v", fr.name, len(table), time.Since(start).Round(time.Millisecond))
	return g
}

func (g *foRig) birdSocket() string { return lab.BIRDSocket(filepath.Join(g.dir, "r")) }

// learnPorts reads the ifindexes and MACs the benchmark needs.
func (g *foRig) learnPorts() error {
	ifc := func(role, name string) (*net.Interface, error) {
		var out *net.Interface
		err := g.l.Do(role, func() error {
			var err error
			out, err = net.InterfaceByName(name)
			return err
		})
		return out, err
	}
	a, err1 := ifc("r", "eth2")
	bb, err2 := ifc("r", "eth3")
	r1, err3 := ifc("r", "eth1")
	h1, err4 := ifc("h1", "eth0")
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	g.rA, g.rB, g.rMAC, g.h1MAC = a.Index, bb.Index, r1.HardwareAddr, h1.HardwareAddr
	return nil
}

// failoverDaemonConfig is xdprouterd's config in r: XDP on the three
// ports, a session with each upstream (max-prefixes as in the
// convergence benchmark, hold time failoverHold), PIC on or off, kernel
// routes by nexthop objects (the default) or not.
func failoverDaemonConfig(pic, nexthopObjects bool) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `[router]
asn = %d
router-id = %q

[api]
metrics-listen = "127.0.0.1:%s"
grpc-listen = ""

[dataplane]
interfaces = ["eth1", "eth2", "eth3"]
xdp-mode = "native"
pin-path = ""

[fib]
keep-routes-on-exit = true # the namespace goes: no route deletes at exit
nexthop-objects = %t

[bgp]
pic = %t
`, lab.RouterASN, lab.R1v4, lab.MetricsPort, nexthopObjects, pic)
	for _, port := range []int{portA, portB} {
		fmt.Fprintf(&sb, "\n[[neighbor]]\naddress = %q\npeer-asn = %d\nimport = \"accept-all\"\nmax-prefixes = %d\nhold-time = %d\n",
			upAddr(port), lab.UpstreamASN, benchMaxPrefixes, failoverHold)
	}
	return sb.String()
}

// failoverBIRDConfig is BIRD as the router in r: sessions with A and B,
// every best path into the kernel's main table (kernel protocols k4 and k6
// as in birdRouterConfig, which claims reads).
func failoverBIRDConfig() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `router id %s;
timeformat protocol iso long ms;
protocol device {}
protocol kernel k4 { ipv4 { import none; export all; }; metric 20; persist; }
protocol kernel k6 { ipv6 { import none; export all; }; metric 20; persist; }
`, lab.R1v4)
	for _, port := range []int{portA, portB} {
		fmt.Fprintf(&sb, "protocol bgp up%d { local %s as %d; neighbor %s as %d; hold time %d; ipv4 { import all; export none; }; }\n",
			port, rAddr(port), lab.RouterASN, upAddr(port), lab.UpstreamASN, failoverHold)
	}
	return sb.String()
}

// writeFailoverUpstream writes the config of the upstream on r's
// eth<port>: the table as static routes with the convergence benchmark's
// per-route AS paths (the same for every upstream: the same seed), one
// IPv4 session with r, its AS prepended prepend more times on export.
func writeFailoverUpstream(path string, table []netip.Prefix, port, prepend int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(tableSeed, 8))
	group, left, transit := 0, 0, 0
	fmt.Fprintf(w, "router id %s;\ntimeformat protocol iso long ms;\nprotocol device {}\nprotocol static table_ipv4 {\n  ipv4;\n", upAddr(port))
	for _, p := range table {
		if left == 0 {
			group, left, transit = group+1, 1+rng.IntN(8), 3000+rng.IntN(40)
		}
		left--
		fmt.Fprintf(w, "  route %s blackhole { bgp_path.prepend(%d); bgp_path.prepend(%d); };\n", p, upstreamASN0+group, transit)
	}
	w.WriteString("}\n")
	export := "all"
	if prepend > 0 {
		export = "filter { " + strings.Repeat(fmt.Sprintf("bgp_path.prepend(%d); ", lab.UpstreamASN), prepend) + "accept; }"
	}
	fmt.Fprintf(w, "protocol bgp r4 { local %s as %d; neighbor %s as %d; ipv4 { import none; export %s; next hop self; }; }\n",
		upAddr(port), lab.UpstreamASN, rAddr(port), lab.RouterASN, export)
	return errors.Join(w.Flush(), f.Close())
}

// waitTable waits until r has every prefix of table in the kernel (and
// XDP), via A, and for xdprouterd with PIC, B as every route's backup.
func (g *foRig) waitTable(b *testing.B, table []netip.Prefix) error {
	n := len(table)
	timeout := 3*time.Minute + time.Duration(n)*time.Millisecond
	confirmed := false
	err := lab.PollEvery(b.Context(), timeout, 500*time.Millisecond, func() error {
		for _, p := range []*lab.Proc{g.router, g.upA, g.upB} {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited: %v\n%s", p.Name, err, tail(p.Out.String(), 20))
			}
		}
		cl, err := g.claims()
		if err != nil {
			return err
		}
		if cl.k4 < n || g.kind == kindXDP && (cl.x4-g.base.x4 < n || cl.pending > 0) {
			return fmt.Errorf("router claims %d of %d in the kernel, %d in XDP (%d pending)", cl.k4, n, cl.x4-g.base.x4, cl.pending)
		}
		if g.kind == kindBIRD {
			if err := g.birdImported(n); err != nil {
				return err
			}
		} else if err := g.groupsReady(n); err != nil {
			return err
		}
		if !confirmed {
			k, err := g.kernelCounts()
			if err != nil {
				return err
			}
			if k.k4-g.base.k4 < n {
				return fmt.Errorf("kernel holds %d of %d", k.k4-g.base.k4, n)
			}
			confirmed = true
		}
		return nil
	})
	if err != nil || g.kind != kindXDP {
		return err
	}
	return g.sampleRoutes(table)
}

// birdImported checks that BIRD has n routes from each upstream.
func (g *foRig) birdImported(n int) error {
	for _, port := range []int{portA, portB} {
		out, err := birdCmd(g.birdSocket(), fmt.Sprintf("show protocols all up%d", port))
		if err != nil {
			return err
		}
		_, rest, ok := strings.Cut(out, "Routes:")
		var imported int
		if !ok {
			return fmt.Errorf("up%d: no routes yet", port)
		}
		if _, err := fmt.Sscanf(rest, "%d imported", &imported); err != nil {
			return fmt.Errorf("bird show protocols all up%d: %v:\n%s", port, err, out)
		}
		if imported < n {
			return fmt.Errorf("up%d: %d of %d imported", port, imported, n)
		}
	}
	return nil
}

// groupsReady checks xdprouterd's next-hop groups: routes in groups
// forwarding via A hold the whole table, and with PIC those groups hold B
// as well (the backup).
func (g *foRig) groupsReady(n int) error {
	body, err := g.get("/api/v1/nexthops")
	if err != nil {
		return err
	}
	var groups []xsync.GroupInfo
	if err := json.Unmarshal(body, &groups); err != nil {
		return err
	}
	viaA, withB := 0, 0
	for _, gr := range groups {
		active := false
		hasB := false
		for _, m := range gr.Members {
			if m.Ifindex == g.rA && slices.Contains(gr.Active, m.ID) {
				active = true
			}
			hasB = hasB || m.Ifindex == g.rB
		}
		if active {
			viaA += gr.Routes
			if hasB {
				withB += gr.Routes
			}
		}
	}
	if viaA < n {
		return fmt.Errorf("%d of %d routes forwarded via A", viaA, n)
	}
	if g.fr.pic && withB < n {
		return fmt.Errorf("%d of %d routes have B as their backup", withB, n)
	}
	return nil
}

// sampleRoutes checks failoverSampled random routes one by one: in the
// kernel and XDP, and with PIC with a backup.
func (g *foRig) sampleRoutes(table []netip.Prefix) error {
	rng := rand.New(rand.NewPCG(tableSeed, 3))
	for range min(failoverSampled, len(table)) {
		p := table[rng.IntN(len(table))]
		body, err := g.get("/api/v1/routes?prefix=" + url.QueryEscape(p.String()))
		if err != nil {
			return err
		}
		var ris []xsync.RouteInfo
		if err := json.Unmarshal(body, &ris); err != nil {
			return err
		}
		i := slices.IndexFunc(ris, func(ri xsync.RouteInfo) bool { return ri.Prefix == p })
		if i < 0 {
			return fmt.Errorf("route %v: not known to xdprouterd", p)
		}
		ri := ris[i]
		if !ri.InXDP || !ri.InKernel || len(ri.NextHops) == 0 || !strings.HasSuffix(ri.NextHops[0], " eth2") {
			return fmt.Errorf("route %v: want in XDP and the kernel via eth2: %+v", p, ri)
		}
		if g.fr.pic && len(ri.Backup) == 0 {
			return fmt.Errorf("route %v: no backup: %+v", p, ri)
		}
	}
	return nil
}

// foSample is the counters at one moment.
type foSample struct {
	t          time.Time
	sent, a, b uint64
}

func (s foSample) lost() int64 { return int64(s.sent) - int64(s.a) - int64(s.b) }

// quiescent waits, with the sender paused or stopped, until the frames in
// flight have arrived: every frame sent is counted, or (after the
// failure, when some are lost for good) the counts stopped moving for
// failoverSettle. It returns the sample then.
func quiescent(b *testing.B, smp *sampler) foSample {
	last := smp.now()
	since := time.Now()
	_ = lab.PollEvery(b.Context(), 20*failoverSettle, time.Millisecond, func() error {
		p := smp.now()
		if p.lost() <= 0 {
			last = p
			return nil
		}
		if p.a != last.a || p.b != last.b || p.sent != last.sent {
			last, since = p, time.Now()
		}
		if time.Since(since) >= failoverSettle {
			return nil
		}
		return errors.New("frames in flight")
	})
	return last
}

// run sends traffic, fails A's link and measures.
func (g *foRig) run(b *testing.B, dsts []netip.Addr, pps float64) (failover, error) {
	f := failover{router: g.fr.name, n: g.n, firstB: -1, rec: -1, sessionDown: -1, drained: -1, kernelBack: -1, kernelMin: -1}
	frames := make([][]byte, len(dsts))
	for i, d := range dsts {
		frames[i] = trafficgen.Config{SrcMAC: g.h1MAC, DstMAC: g.rMAC, Src: netip.MustParseAddr(lab.H1v4), Dst: d, Mode: trafficgen.Fixed}.Frame()
		frames[i][35] = byte(i) // UDP source port: flows differ
	}
	snd, err := g.l.StartFlow("h1", "eth0", frames, pps)
	if err != nil {
		return f, err
	}
	defer snd.Stop()
	smp := g.newSampler(snd)
	defer smp.stop()

	// Warm up, then the reference second: everything must reach A. The
	// sender pauses around it so that the counters settle: the loss
	// counted from then on is exact.
	settled := func() foSample {
		snd.Pause()
		p := quiescent(b, smp)
		snd.Resume()
		return p
	}
	time.Sleep(300 * time.Millisecond) // warm-up traffic (a measured window, not a wait)
	p0 := settled()
	time.Sleep(failoverPre) // the reference window of traffic
	p1 := settled()
	sent := p1.sent - p0.sent
	if sent == 0 {
		return f, errors.New("h1 sent nothing")
	}
	f.pre = float64(p1.lost()-p0.lost()) / float64(sent)
	if p1.a-p0.a < sent*9/10 || p1.b != p0.b {
		return f, fmt.Errorf("before the failure: %d frames sent, %d reached A, %d B\n%s", sent, p1.a-p0.a, p1.b-p0.b, g.diagnose())
	}
	// lost(t) also counts frames in flight (queued in r or a host, not
	// counted yet), which varies: its range over the reference second, for
	// the record (settledLost takes them out).
	{
		ss := smp.samples()
		lo, hi := p1.lost(), p1.lost()
		for _, x := range ss[at(ss, p0.t.Add(failoverSettle)):at(ss, p1.t.Add(-failoverSettle))] {
			lo, hi = min(lo, x.lost()), max(hi, x.lost())
		}
		f.jitter = hi - lo
	}
	time.Sleep(100 * time.Millisecond) // traffic flows at the failure
	var stats0 []bpf.StatCounter
	if g.kind == kindXDP {
		if stats0, err = g.stats(); err != nil {
			return f, err
		}
	}
	g.logAt = len(g.router.Out.String())

	var t0 time.Time
	if err := g.l.Do("hA", func() error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		t0 = time.Now()
		return netlink.LinkSetDown(link)
	}); err != nil {
		return f, fmt.Errorf("fail A's link: %w", err)
	}

	// Watch the router until it has reacted and traffic has recovered
	// (or the timeout: then the figures say what did not happen).
	timeout := 60*time.Second + failoverHold*time.Second + time.Duration(g.n)*100*time.Microsecond
	var probeErr error
	i := 0
	_ = lab.PollEvery(b.Context(), timeout, failoverProbe, func() error {
		defer func() { i++ }()
		since := time.Since(t0)
		if probeErr = g.probe(&f, t0, i%4 == 0); probeErr != nil {
			return nil // stop watching: reported below
		}
		rec := time.Duration(-1)
		if i%4 == 3 {
			rec, _ = recovery(smp.samples(), t0)
		}
		if f.sessionDown >= 0 && rec >= 0 && (g.kind != kindXDP || f.drained >= 0) &&
			since > f.sessionDown+2*time.Second && since > rec+failoverStable {
			return nil
		}
		return errors.New("not recovered yet")
	})
	if probeErr != nil {
		return f, probeErr
	}
	running := smp.now()
	sendErr := snd.Stop()
	quiescent(b, smp)
	smp.stop()
	if sendErr != nil {
		return f, sendErr
	}
	if smp.err != nil {
		return f, smp.err
	}
	ss := smp.samples()
	last := ss[len(ss)-1]
	at0 := at(ss, t0)
	f.end = running.t.Sub(t0)
	f.pps = float64(running.sent-ss[at0].sent) / running.t.Sub(ss[at0].t).Seconds()
	total := last.lost() - p1.lost() // settled at both ends: exact
	var recLost int64
	f.rec, recLost = recovery(ss, t0)
	for _, s := range ss[at0:] {
		if s.b > ss[at0].b {
			f.firstB = s.t.Sub(t0)
			break
		}
	}
	gap := total
	if f.rec >= 0 {
		gap = min(total, max(0, recLost-p1.lost()))
	}
	f.gap = float64(gap) / f.pps * 1e3
	f.later = float64(total-gap) / f.pps * 1e3
	if err := saveTrace(g.fr.name, g.n, ss, t0); err != nil {
		return f, err
	}
	if g.kind == kindXDP {
		stats1, err := g.stats()
		if err != nil {
			return f, err
		}
		f.xdpLost = statsDelta(stats0, stats1)
	}
	if out := g.router.Out.String(); len(out) > g.logAt {
		b.Logf("%s log after the failure (t0 %s):\n%s", g.fr.name, t0.UTC().Format("15:04:05.000Z"), tail(out[g.logAt:], 40))
	}
	return f, nil
}

// probe reads the router's view after the failure: when its session with
// A went down (BIRD's state change time stamp; xdprouterd's "Peer Down" log
// line: its status API caches peer states for 20 times as long as GoBGP
// took to list them, which after a drop was minutes here),
// xdprouterd's pending changes, and (withKernel) the kernel's routes.
func (g *foRig) probe(f *failover, t0 time.Time, withKernel bool) error {
	since := time.Since(t0)
	if g.kind == kindBIRD {
		out, err := birdCmd(g.birdSocket(), fmt.Sprintf("show protocols up%d", portA))
		if err != nil {
			return err
		}
		for _, ln := range strings.Split(out, "\n") {
			// "up2        BGP        ---        start  2026-12-01 20:28:06.365  Active ..."
			fl := strings.Fields(ln)
			if len(fl) < 6 || fl[0] != fmt.Sprintf("up%d", portA) || f.sessionDown >= 0 || strings.Contains(ln, "Established") {
				continue
			}
			t, err := time.ParseInLocation("2006-01-02 15:04:05.000", fl[4]+" "+fl[5], time.Local)
			if err != nil {
				return fmt.Errorf("bird show protocols: %q: %w", ln, err)
			}
			f.sessionDown = t.Sub(t0)
		}
	} else {
		if f.sessionDown < 0 {
			f.sessionDown = peerDownLogged(g.router.Out.String()[g.logAt:], upAddr(portA), t0)
		}
		var st api.Status
		if err := g.status(&st); err != nil {
			return err
		}
		if f.sessionDown >= 0 && f.drained < 0 && st.Routes.Pending == 0 {
			f.drained = since
		}
	}
	if !withKernel {
		return nil
	}
	k, err := g.kernelCounts()
	if err != nil {
		return err
	}
	n := k.k4 - g.base.k4
	if f.kernelMin < 0 || n < f.kernelMin {
		f.kernelMin = n
		f.kernelBack = -1
	}
	if n >= g.n && f.kernelBack < 0 && f.kernelMin < g.n {
		f.kernelBack = since
	}
	return nil
}

// stats reads xdprouterd's XDP outcome counters.
func (g *foRig) stats() ([]bpf.StatCounter, error) {
	body, err := g.get("/api/v1/stats")
	if err != nil {
		return nil, err
	}
	var st []bpf.StatCounter
	return st, json.Unmarshal(body, &st)
}

// statsDelta lists the XDP outcomes other than redirect that grew.
func statsDelta(a, b []bpf.StatCounter) string {
	key := func(c bpf.StatCounter) string { return c.Action + "/" + c.Reason }
	before := map[string]uint64{}
	for _, c := range a {
		before[key(c)] = c.Packets
	}
	var out []string
	for _, c := range b {
		if d := c.Packets - before[key(c)]; d > 0 && c.Action != bpf.ActionRedirect {
			out = append(out, fmt.Sprintf("%s=%d", strings.TrimSuffix(key(c), "/"), d))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// at returns the index of the last sample at or before t (0 if none).
func at(ss []foSample, t time.Time) int {
	i, _ := slices.BinarySearchFunc(ss, t, func(s foSample, t time.Time) int { return s.t.Compare(t) })
	if i < len(ss) && ss[i].t.Equal(t) {
		return i
	}
	return max(0, i-1)
}

// settledLost returns, per sample, the fewest frames lost over the next
// failoverSettle: frames in flight (sent, not yet counted, as many as a
// few ms of traffic when the CPUs are busy) arrive within that, so this
// is the true loss up to then, without the transient spikes of lost().
// Samples less than failoverSettle before the last have none (-1).
func settledLost(ss []foSample) []int64 {
	m := make([]int64, len(ss))
	var dq []int // indexes with increasing lost
	j := 0
	for i := range ss {
		for ; j < len(ss) && !ss[j].t.After(ss[i].t.Add(failoverSettle)); j++ {
			for len(dq) > 0 && ss[dq[len(dq)-1]].lost() >= ss[j].lost() {
				dq = dq[:len(dq)-1]
			}
			dq = append(dq, j)
		}
		for dq[0] < i {
			dq = dq[1:]
		}
		m[i] = ss[dq[0]].lost()
		if j == len(ss) {
			m[i] = -1
		}
	}
	return m
}

// recovery returns the time from t0 to the first sample from which
// failoverStable passes with at most failoverSlack frames lost (settled
// counts), and the settled loss then; -1 while there is none.
func recovery(ss []foSample, t0 time.Time) (time.Duration, int64) {
	m := settledLost(ss)
	j := at(ss, t0)
	for i := j; i < len(ss) && m[i] >= 0; i++ {
		for j < len(ss) && ss[j].t.Before(ss[i].t.Add(failoverStable)) {
			j++
		}
		if j == len(ss) || m[j] < 0 {
			break
		}
		if m[j]-m[i] <= failoverSlack {
			return ss[i].t.Sub(t0), m[i]
		}
	}
	return -1, -1
}

// sender sends frames round robin from h1's eth0 at a paced rate; it can
// pause (so that the counters settle) and resume.
// sampler records h1's sent count and A's and B's receive counters every
// failoverSample.
type sampler struct {
	mu   gosync.Mutex
	ss   []foSample
	err  error
	done chan struct{}
	wg   gosync.WaitGroup
	once gosync.Once
}

func (g *foRig) newSampler(snd *lab.Flow) *sampler {
	sm := &sampler{done: make(chan struct{})}
	pa, pb := g.upA.Cmd.Process.Pid, g.upB.Cmd.Process.Pid
	read := func() foSample {
		// Receivers first: a frame counted there was counted as sent.
		a, err1 := inAddrErrors(pa)
		bb, err2 := inAddrErrors(pb)
		s := foSample{t: time.Now(), sent: snd.Sent(), a: a, b: bb}
		if err := errors.Join(err1, err2); err != nil {
			sm.mu.Lock()
			sm.err = err
			sm.mu.Unlock()
		}
		return s
	}
	sm.ss = append(sm.ss, read())
	sm.wg.Add(1)
	go func() {
		defer sm.wg.Done()
		tk := time.NewTicker(failoverSample)
		defer tk.Stop()
		for {
			select {
			case <-sm.done:
				return
			case <-tk.C:
			}
			s := read()
			sm.mu.Lock()
			sm.ss = append(sm.ss, s)
			sm.mu.Unlock()
		}
	}()
	return sm
}

func (sm *sampler) now() foSample {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.ss[len(sm.ss)-1]
}

func (sm *sampler) samples() []foSample {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return slices.Clone(sm.ss)
}

func (sm *sampler) stop() {
	sm.once.Do(func() {
		close(sm.done)
		sm.wg.Wait()
	})
}

// inAddrErrors reads IpInAddrErrors of the network namespace of process
// pid: IPv4 packets for other hosts a host with forwarding off dropped.
func inAddrErrors(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/snmp", pid))
	if err != nil {
		return 0, err
	}
	return lab.SNMPCounter(string(b), "Ip", "InAddrErrors")
}

// diagnose collects what explains frames that did not reach A.
func (g *foRig) diagnose() string {
	var sb strings.Builder
	for _, c := range [][]string{
		{"r", "ip", "-s", "link"}, {"r", "ip", "neigh"}, {"r", "nstat", "-az", "IpInAddrErrors", "IpOutNoRoutes", "IpForwDatagrams", "IpInDiscards"},
		{"hA", "nstat", "-az", "IpInAddrErrors", "IpInReceives"},
	} {
		out, err := g.l.Output(c[0], c[1:]...)
		fmt.Fprintf(&sb, "%s: %s (err %v):\n%s\n", c[0], strings.Join(c[1:], " "), err, out)
	}
	if g.kind == kindXDP {
		st, err := g.stats()
		fmt.Fprintf(&sb, "XDP stats (err %v): %+v\n", err, st)
	}
	return sb.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-n):], "\n")
}

// printFailover prints the comparison table: per table size, each
// router's figures and xdprouterd's relative to BIRD's.
func printFailover(res []failover) {
	if len(res) == 0 {
		return
	}
	ms := func(d time.Duration) string {
		if d < 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(d)/1e6)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nfailover: A's link down at t=0; h1 → random hosts of the table; hold time %d s\n", failoverHold)
	fmt.Fprintf(&sb, "%-21s %7s %8s %9s %7s %9s %10s %8s %7s %9s %9s %10s %9s %6s  %s\n", "router", "table", "gap ms", "/bird",
		"first B", "recovery", "/bird", "later ms", "kpps", "pre lost", "A down", "kernel min", "back", "jitter", "XDP not redirected")
	for _, f := range res {
		var bird *failover
		for i := range res {
			if res[i].n == f.n && res[i].router == "bird" {
				bird = &res[i]
			}
		}
		gapRatio, recRatio := "-", "-"
		if bird != nil && bird.gap > 0 {
			gapRatio = fmt.Sprintf("%.3gx", f.gap/bird.gap)
		}
		if bird != nil && bird.rec > 0 && f.rec >= 0 {
			recRatio = fmt.Sprintf("%.3gx", float64(f.rec)/float64(bird.rec))
		}
		fmt.Fprintf(&sb, "%-21s %7d %8.2f %9s %7s %9s %10s %8.2f %7.1f %8.3f%% %9s %10d %9s %6d  %s\n", f.router, f.n, f.gap, gapRatio,
			ms(f.firstB), ms(f.rec), recRatio, f.later, f.pps/1e3, 100*f.pre, ms(f.sessionDown), f.kernelMin, ms(f.kernelBack), f.jitter, f.xdpLost)
	}
	fmt.Fprintf(&sb, "times in ms after the failure; gap = frames lost until recovery / send rate; later = lost after recovery (ms of traffic);\n")
	fmt.Fprintf(&sb, "A down = the router's session with A down (its log or state time stamp); kernel min/back (polled every %v) = fewest kernel routes after the failure, and when all were back;\njitter = range of frames in flight (sent, not counted yet) before the failure; recovery: then %v with at most %d frames lost\n", failoverProbe, failoverStable, failoverSlack)
	fmt.Print(sb.String())
}

// saveTrace writes the samples as CSV (ms after the failure, sent, at A,
// at B, lost) when XDPROUTER_BENCH_FAILOVER_TRACE names a directory.
func saveTrace(router string, n int, ss []foSample, t0 time.Time) error {
	dir := os.Getenv("XDPROUTER_BENCH_FAILOVER_TRACE")
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("failover-%s-%d.csv", strings.ReplaceAll(router, "/", "-"), n)))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "ms,sent,a,b,lost")
	for _, s := range ss {
		fmt.Fprintf(w, "%.3f,%d,%d,%d,%d\n", float64(s.t.Sub(t0))/1e6, s.sent, s.a, s.b, s.lost())
	}
	return errors.Join(w.Flush(), f.Close())
}

// peerDownLogged returns when xdprouterd's log (slog text) says the
// session with addr went down, relative to t0; -1 if it does not.
func peerDownLogged(log, addr string, t0 time.Time) time.Duration {
	for _, ln := range strings.Split(log, "\n") {
		if !strings.Contains(ln, `msg="Peer Down"`) || !strings.Contains(ln, "Key="+addr+" ") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(ln, "time="), " ")
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return t.Sub(t0)
		}
	}
	return -1
}
