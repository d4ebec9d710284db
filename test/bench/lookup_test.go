package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/xdprouter/xdprouter/lpm"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/bpf/fiblookup"
	"github.com/xdprouter/xdprouter/bpf/lookupbench"
	"github.com/xdprouter/xdprouter/bpf/trafficgen"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

const (
	// fullV4, fullV6 are the defaults of XDPROUTER_BENCH_LOOKUP (v4,v6):
	// a full IPv4 table with headroom, and a full IPv6 one.
	fullV4 = 1_000_000
	fullV6 = 200_000
	// lookupDsts destinations (16 bytes each, walked in order) are spread
	// over the table: far more lookups between two of the same than the
	// caches hold.
	lookupDsts = 1 << 18
	// lookupRepeat is the length of one BPF_PROG_TEST_RUN call: 45 ms
	// with few routes, 1-2 s with a full table.
	lookupRepeat = 1 << 20
	lookupSeed   = 2026
)

// Addresses and MACs of the lookup namespace: frames arrive on in0 (the
// router port, macRouter) and leave through out0 to the gateway.
var (
	macRouter = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macSender = net.HardwareAddr{0x02, 0, 0, 0, 0x99, 0x01}
	macOut    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	macGw     = net.HardwareAddr{0x02, 0, 0, 0, 0x99, 0x02}
	gwV4      = netip.MustParseAddr("10.99.0.2")
	gwV6      = netip.MustParseAddr("fd99::2")
	srcV4     = netip.MustParseAddr("10.99.1.2")
	srcV6     = netip.MustParseAddr("fd99:1::2")
)

// lookupSizes returns the (IPv4, IPv6) table sizes: 10 each, and
// XDPROUTER_BENCH_LOOKUP ("v4,v6", default fullV4,fullV6).
func lookupSizes(b *testing.B) [][2]int {
	full := [2]int{fullV4, fullV6}
	if s := os.Getenv("XDPROUTER_BENCH_LOOKUP"); s != "" {
		f := strings.Split(s, ",")
		for i := range full {
			n, err := strconv.Atoi(strings.TrimSpace(f[min(i, len(f)-1)]))
			if err != nil || n <= fewRoutes || n > 4_000_000 {
				b.Fatalf("XDPROUTER_BENCH_LOOKUP=%q: want v4,v6 route counts in %d..4000000", s, fewRoutes+1)
			}
			full[i] = n
		}
	}
	return [][2]int{{fewRoutes, fewRoutes}, full}
}

// BenchmarkLookup measures the per-packet cost of forwarding with each
// lookup structure, in one run and with the same routes: xdprouter's XDP
// program with LookupCompiled and with LookupTrie, and the same complete
// forwarder built on bpf_fib_lookup over the kernel's FIB (bpf/fiblookup).
// Each frame goes to another random destination of the table
// (bpf/lookupbench's driver rewrites it); the driver's own cost, measured
// alone, is subtracted. Every frame must be forwarded (redirected) by
// every program. It prints a table with the ratios.
func BenchmarkLookup(b *testing.B) {
	if testing.Short() {
		b.Skip("skipping under -short: needs root, network namespaces and BPF")
	}
	if err := lab.Root(); err != nil {
		b.Skip("lookup benchmarks skipped:", err)
	}
	var rows []lookupRow
	for _, sz := range lookupSizes(b) {
		b.Run(fmt.Sprintf("routes=%d+%d", sz[0], sz[1]), func(b *testing.B) {
			start := time.Now()
			e := newLookupEnv(b, sz, 0)
			b.Logf("installed %d IPv4 + %d IPv6 routes into the kernel and two datapaths in %v",
				sz[0], sz[1], time.Since(start).Round(time.Millisecond))
			for fam, name := range []string{"v4", "v6"} {
				b.Run(name, func(b *testing.B) { rows = append(rows, e.measure(b, fam)) })
			}
			if err := e.close(); err != nil {
				b.Error(err)
			}
		})
	}
	printLookupTable(rows)
}

// lookupEnv is one namespace with a table in its kernel FIB and in one
// Datapath per lookup mode, and a driver per family.
type lookupEnv struct {
	l       *lab.Lab
	in      int // ingress ifindex
	routes  [2]int
	dps     []*bpf.Datapath // LookupCompiled, LookupTrie
	fwd     *fiblookup.Forwarder
	drivers [2]*lookupbench.Driver
	frames  [2][]byte
}

var lookupModes = []bpf.LookupMode{bpf.LookupCompiled, bpf.LookupTrie}

// extra4 is room for more IPv4 routes in the datapaths (other tables).
func newLookupEnv(b *testing.B, routes [2]int, extra4 int) *lookupEnv {
	b.Helper()
	e := &lookupEnv{l: lab.New("xlk"), routes: routes}
	b.Cleanup(func() {
		if err := e.close(); err != nil {
			b.Error(err)
		}
	})
	if err := e.l.AddNS("r"); err != nil {
		b.Fatal(err)
	}
	for _, args := range [][]string{
		{"ip", "link", "add", "in0", "address", macRouter.String(), "type", "veth", "peer", "name", "in1"},
		{"ip", "link", "add", "out0", "address", macOut.String(), "type", "veth", "peer", "name", "out1"},
		{"ip", "link", "set", "in0", "up"}, {"ip", "link", "set", "in1", "up"},
		{"ip", "link", "set", "out0", "up"}, {"ip", "link", "set", "out1", "up"},
		{"ip", "addr", "add", "10.99.1.1/24", "dev", "in0"},
		{"ip", "addr", "add", "fd99:1::1/64", "dev", "in0", "nodad"},
		{"ip", "addr", "add", "10.99.0.1/24", "dev", "out0"},
		{"ip", "addr", "add", "fd99::1/64", "dev", "out0", "nodad"},
		// Permanent: nothing answers ARP / ND behind out0.
		{"ip", "neigh", "replace", gwV4.String(), "lladdr", macGw.String(), "dev", "out0", "nud", "permanent"},
		{"ip", "neigh", "replace", gwV6.String(), "lladdr", macGw.String(), "dev", "out0", "nud", "permanent"},
	} {
		if err := e.l.Run("r", args...); err != nil {
			b.Fatal(err)
		}
	}
	// bpf_fib_lookup answers FWD_DISABLED unless the ingress forwards.
	if err := errors.Join(e.l.Sysctl("r", "net.ipv4.ip_forward", "1"),
		e.l.Sysctl("r", "net.ipv6.conf.all.forwarding", "1")); err != nil {
		b.Fatal(err)
	}
	var tables [2][]netip.Prefix
	for fam := range tables {
		bits := 32
		if fam == 1 {
			bits = 128
		}
		tables[fam] = lpm.SyntheticTable(routes[fam], bits, lookupSeed+uint64(fam))
	}
	err := e.l.Do("r", func() error {
		in, err1 := netlink.LinkByName("in0")
		out, err2 := netlink.LinkByName("out0")
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		e.in = in.Attrs().Index
		if err := installKernel(tables, out.Attrs().Index); err != nil {
			return err
		}
		for _, m := range lookupModes {
			d, err := loadDatapath(m, tables, extra4, e.in, out.Attrs().Index)
			if err != nil {
				return fmt.Errorf("datapath %v: %w", m, err)
			}
			e.dps = append(e.dps, d)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if e.fwd, err = fiblookup.Load(); err != nil {
		b.Fatal(err)
	}
	for fam := range e.drivers {
		if e.drivers[fam], err = lookupbench.New(destinations(tables[fam], lookupDsts, lookupSeed+10+uint64(fam))); err != nil {
			b.Fatal(err)
		}
	}
	e.frames[0] = trafficgen.Config{SrcMAC: macSender, DstMAC: macRouter, Src: srcV4, Dst: tables[0][0].Addr(), Mode: trafficgen.Fixed}.Frame()
	e.frames[1] = frameV6(macSender, macRouter, srcV6, tables[1][0].Addr())
	return e
}

// installKernel writes the tables into the main table of the calling
// thread's namespace with fib's batched writer.
func installKernel(tables [2][]netip.Prefix, out int) error {
	t, err := fib.Open(254)
	if err != nil {
		return err
	}
	defer t.Close()
	var cs []route.Change
	for fam, gw := range []netip.Addr{gwV4, gwV6} {
		for _, p := range tables[fam] {
			cs = append(cs, route.Change{Route: route.Route{Prefix: p, Kind: route.Unicast, Metric: 20,
				NextHops: []route.NextHop{{Gateway: gw, Ifindex: out}}}})
		}
	}
	var errs []error
	for i, err := range t.Apply(cs) {
		if err != nil && len(errs) < 5 {
			errs = append(errs, fmt.Errorf("kernel route %v: %w", cs[i].Route.Prefix, err))
		}
	}
	return errors.Join(errs...)
}

// loadDatapath loads xdprouter's program with mode and the tables, all
// through one resolved next hop out of out (like bpf/bench_test.go, but
// forwarding). Runs on a thread in the namespace (devmap updates).
func loadDatapath(mode bpf.LookupMode, tables [2][]netip.Prefix, extra4, in, out int) (*bpf.Datapath, error) {
	d, err := bpf.Load(bpf.Options{MaxRoutesV4: uint32(len(tables[0]) + extra4 + 1024), MaxRoutesV6: uint32(len(tables[1]) + 1024),
		MaxGroups: 16, MaxNextHops: 16, MaxNeighbors: 16, Lookup: mode})
	if err != nil {
		return nil, err
	}
	rs := make([]route.Entry, 0, len(tables[0])+len(tables[1]))
	for _, t := range tables {
		for _, p := range t {
			rs = append(rs, route.Entry{Prefix: p, Kind: route.Unicast, Group: 1})
		}
	}
	_, err = d.UpdateRoutes(rs)
	if _, why := d.LookupState(); mode == bpf.LookupCompiled && why != "" {
		err = errors.Join(err, fmt.Errorf("compiled lookup unusable: %s", why))
	}
	err = errors.Join(err,
		d.SetInterface(in, macRouter, 1500), d.SetInterface(out, macOut, 1500),
		d.SetNextHop(1, route.Egress{Ifindex: out, MAC: macGw}), d.SetGroup(1, []uint32{1}))
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// frameV6 is a 62-byte UDP over IPv6 frame.
func frameV6(src, dst net.HardwareAddr, from, to netip.Addr) []byte {
	f := make([]byte, 14+40+8)
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 8)
	ip[6] = 17 // UDP
	ip[7] = 64
	s, d := from.As16(), to.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	binary.BigEndian.PutUint16(ip[40:], 1024)
	binary.BigEndian.PutUint16(ip[42:], 9)
	binary.BigEndian.PutUint16(ip[44:], 8)
	return f
}

// variant is one program behind the driver.
type variant struct {
	name string
	prog *ebpf.Program
	want uint32 // verdict of every frame
	// counts returns frames forwarded and not forwarded so far (nil for
	// the harness).
	counts func() (uint64, uint64, error)
}

const (
	xdpPass     = 2
	xdpRedirect = 4
)

func datapathCounts(d *bpf.Datapath) func() (uint64, uint64, error) {
	return func() (fwd, other uint64, err error) {
		st, err := d.Stats()
		for _, s := range st {
			if s.Action == bpf.ActionRedirect {
				fwd += s.Packets
			} else {
				other += s.Packets
			}
		}
		return fwd, other, err
	}
}

// lookupRow is one line of the summary: average ns per packet, raw.
type lookupRow struct {
	family                          string
	routes                          int
	harness, compiled, trie, fibLkp float64
}

// net_ is a variant's cost without the driver's.
func net_(raw, harness float64) float64 { return raw - harness }

func (e *lookupEnv) measure(b *testing.B, fam int) lookupRow {
	drv := e.drivers[fam]
	vs := []variant{
		{name: "harness", prog: drv.Pass(), want: xdpPass},
		{name: "compiled", prog: e.dps[0].Program(), want: xdpRedirect, counts: datapathCounts(e.dps[0])},
		{name: "trie", prog: e.dps[1].Program(), want: xdpRedirect, counts: datapathCounts(e.dps[1])},
		{name: "fib_lookup", prog: e.fwd.Program(), want: xdpRedirect, counts: e.fwd.Counts},
	}
	type counts struct{ fwd, other uint64 }
	before := make([]counts, len(vs))
	for i, v := range vs {
		if v.counts != nil {
			f, o, err := v.counts()
			if err != nil {
				b.Fatal(err)
			}
			before[i] = counts{f, o}
		}
	}
	total := make([]time.Duration, len(vs))
	runs := 0
	for b.Loop() {
		// bpf_fib_lookup and the devmap see the calling thread's namespace.
		err := e.l.Do("r", func() error {
			for j := range vs {
				k := (j + runs) % len(vs) // rotate: drift hits all alike
				ret, d, err := drv.Run(vs[k].prog, e.frames[fam], e.in, lookupRepeat)
				if err != nil {
					return fmt.Errorf("%s: %w", vs[k].name, err)
				}
				if ret != vs[k].want {
					return fmt.Errorf("%s: verdict %d, want %d (xdprouter counters: %s)", vs[k].name, ret, vs[k].want, e.stats())
				}
				total[k] += d
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		runs++
	}
	for i, v := range vs {
		if v.counts == nil {
			continue
		}
		f, o, err := v.counts()
		if err != nil {
			b.Fatal(err)
		}
		if o != before[i].other || f-before[i].fwd < uint64(runs)*lookupRepeat {
			b.Errorf("%s: %d frames forwarded, %d not, of %d sent: some destinations missed their route",
				v.name, f-before[i].fwd, o-before[i].other, runs*lookupRepeat)
		}
	}
	avg := func(i int) float64 { return float64(total[i].Nanoseconds()) / float64(runs) }
	r := lookupRow{family: []string{"IPv4", "IPv6"}[fam], routes: e.routes[fam],
		harness: avg(0), compiled: avg(1), trie: avg(2), fibLkp: avg(3)}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(r.harness, "harness-ns/pkt")
	b.ReportMetric(net_(r.compiled, r.harness), "compiled-ns/pkt")
	b.ReportMetric(net_(r.trie, r.harness), "trie-ns/pkt")
	b.ReportMetric(net_(r.fibLkp, r.harness), "fib_lookup-ns/pkt")
	b.ReportMetric(net_(r.compiled, r.harness)/net_(r.fibLkp, r.harness), "compiled/fib_lookup")
	b.ReportMetric(net_(r.trie, r.harness)/net_(r.compiled, r.harness), "trie/compiled")
	return r
}

func printLookupTable(rows []lookupRow) {
	if len(rows) == 0 {
		return
	}
	small := map[string]float64{} // compiled with fewRoutes, per family
	for _, r := range rows {
		if r.routes == fewRoutes {
			small[r.family] = net_(r.compiled, r.harness)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nPer-packet cost of forwarding one frame (BPF_PROG_TEST_RUN, %d random destinations over the table, %d per call),\n", lookupDsts, lookupRepeat)
	fmt.Fprintf(&sb, "ns/packet net of the driver's own cost (harness column); single-core rate = 1000/ns Mpps.\n")
	fmt.Fprintf(&sb, "%-5s %8s %8s %9s %7s %11s %12s %12s %13s\n", "", "routes", "harness", "compiled", "trie", "fib_lookup",
		"compiled/fib", "compiled/@10", "trie/compiled")
	for _, r := range rows {
		c, t, f := net_(r.compiled, r.harness), net_(r.trie, r.harness), net_(r.fibLkp, r.harness)
		fmt.Fprintf(&sb, "%-5s %8d %8.1f %9.1f %7.1f %11.1f %11.2fx %11.2fx %12.2fx\n", r.family, r.routes, r.harness, c, t, f,
			c/f, c/small[r.family], t/c)
	}
	fmt.Print(sb.String())
}

// stats lists the nonzero outcome counters of the datapaths.
func (e *lookupEnv) stats() string {
	var out []string
	for i, d := range e.dps {
		st, err := d.Stats()
		if err != nil {
			out = append(out, err.Error())
		}
		for _, s := range st {
			if s.Packets != 0 {
				out = append(out, fmt.Sprintf("%v:%s/%s=%d", lookupModes[i], s.Action, s.Reason, s.Packets))
			}
		}
	}
	return strings.Join(out, " ")
}

// close removes the namespace and unloads everything; safe to call twice.
func (e *lookupEnv) close() error {
	var errs []error
	for _, d := range e.dps {
		errs = append(errs, d.Close())
	}
	e.dps = nil
	if e.fwd != nil {
		errs = append(errs, e.fwd.Close())
		e.fwd = nil
	}
	for i, d := range e.drivers {
		if d != nil {
			errs = append(errs, d.Close())
			e.drivers[i] = nil
		}
	}
	if e.l != nil {
		errs = append(errs, e.l.Close())
		e.l = nil
	}
	return errors.Join(errs...)
}
