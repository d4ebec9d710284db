package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/bpf/trafficgen"
	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/lpm"
	"github.com/xdprouter/xdprouter/route"
)

// Policy routing (issue 11): what `ip rule`s cost per packet, in XDP and
// in the kernel, and the forwarding rate with them.

// policyTables are the extra tables the rules send traffic to.
var policyTables = []int{100, 101, 102}

// policyRules are n rules of the commonest kind, "from PREFIX lookup
// TABLE", of which only the last matches src: the kernel walks them all
// for every packet, as it would for a customer at the end of the list.
func policyRules(n int, src netip.Addr) []route.Rule {
	rs := route.DefaultRules()
	for i := range n {
		r := route.Rule{Family: 4, Priority: uint32(1000 + i), Action: route.RuleLookup,
			Table: policyTables[i%len(policyTables)], SuppressPrefixlen: -1, SuppressIfgroup: -1}
		r.Src = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(i/256), byte(i), 0}), 24)
		if i == n-1 {
			r.Src, r.Table = netip.PrefixFrom(src, 32), policyTables[len(policyTables)-1]
		}
		rs = append(rs, r)
	}
	return rs
}

// kernelRules replaces the calling thread's namespace's IPv4 rules above
// the defaults with rs's.
func kernelRules(rs []route.Rule) error {
	old, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, r := range old {
		if r.Priority >= 1000 && r.Priority < 32766 {
			if err := netlink.RuleDel(&r); err != nil {
				return fmt.Errorf("delete rule %d: %w", r.Priority, err)
			}
		}
	}
	for _, r := range rs {
		if r.Priority < 1000 || r.Priority >= 32766 {
			continue
		}
		nr := netlink.NewRule()
		nr.Family, nr.Priority, nr.Table = unix.AF_INET, int(r.Priority), r.Table
		nr.Src = &net.IPNet{IP: r.Src.Addr().AsSlice(), Mask: net.CIDRMask(r.Src.Bits(), 32)}
		if err := netlink.RuleAdd(nr); err != nil {
			return fmt.Errorf("add rule %s: %w", r, err)
		}
	}
	return nil
}

// BenchmarkRuleCost: the per-packet cost (BPF_PROG_TEST_RUN, the lookup
// benchmark's driver and random destinations) of xdprouter's XDP program
// and of bpf_fib_lookup (the kernel's FIB lookup, rules included) with 0,
// 1, 10 and 100 rules, the packet's rule last, over main and three tables
// of 100k routes each (XDPROUTER_BENCH_POLICY_ROUTES), side by side in
// one run, with each one's ratio to its cost without rules.
func BenchmarkRuleCost(b *testing.B) {
	if err := lab.Root(); err != nil {
		b.Skip("rule benchmarks skipped:", err)
	}
	n := policyRoutes(b)
	e := newLookupEnv(b, [2]int{n, fewRoutes}, 2*len(policyTables)*n) // sparse tables: ~3 leaves a route
	// The same routes in the three tables, kernel and XDP.
	table := lpm.SyntheticTable(n, 32, lookupSeed)
	err := e.l.Do("r", func() error {
		out, err := netlink.LinkByName("out0")
		if err != nil {
			return err
		}
		for _, id := range policyTables {
			t, err := fib.Open(id)
			if err != nil {
				return err
			}
			cs := make([]route.Change, len(table))
			for i, p := range table {
				cs[i] = route.Change{Route: route.Route{Table: id, Prefix: p, Kind: route.Unicast, Metric: 20,
					NextHops: []route.NextHop{{Gateway: gwV4, Ifindex: out.Attrs().Index}}}}
			}
			for i, err := range t.Apply(cs) {
				if err != nil {
					t.Close()
					return fmt.Errorf("table %d route %v: %w", id, cs[i].Route.Prefix, err)
				}
			}
			t.Close()
			for _, d := range e.dps {
				es := make([]route.Entry, len(table))
				for i, p := range table {
					es[i] = route.Entry{Table: id, Prefix: p, Group: 1}
				}
				if _, err := d.UpdateRoutes(es); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if m, why := e.dps[0].LookupState(); m != bpf.LookupCompiled {
		b.Fatalf("the compiled datapath looks up in %v: %s", m, why)
	}
	type costRow struct {
		rules              int
		compiled, fib, har float64
	}
	var rows []costRow
	for _, nr := range []int{0, 1, 10, 100} {
		rules := policyRules(nr, srcV4)
		if nr == 0 {
			rules = route.DefaultRules()
		}
		err := e.l.Do("r", func() error {
			errs := []error{kernelRules(rules)}
			for _, d := range e.dps {
				errs = append(errs, d.SetRules(rules, func(string) int { return 0 }))
			}
			return errors.Join(errs...)
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("rules=%d", nr), func(b *testing.B) {
			if nr > 0 {
				// The rule decides: the route is table 102's.
				var dec bpf.Decision
				if err := e.l.Do("r", func() error {
					var err error
					dec, err = e.dps[0].LookupFlow(bpf.Flow{Src: srcV4, Dst: table[0].Addr(), Iif: e.in})
					return err
				}); err != nil || dec.Table != policyTables[len(policyTables)-1] {
					b.Fatalf("XDP's decision with %d rules: %+v (%v), want table %d", nr, dec, err, policyTables[len(policyTables)-1])
				}
			}
			r := e.measure(b, 0)
			rows = append(rows, costRow{nr, net_(r.compiled, r.harness), net_(r.fibLkp, r.harness), r.harness})
		})
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nPer-packet cost with N policy rules (\"from P lookup T\", the packet's last), main + %d tables of %d IPv4 routes,\n", len(policyTables), n)
	fmt.Fprintf(&sb, "ns/packet net of the driver (BPF_PROG_TEST_RUN, %d random destinations); the kernel is bpf_fib_lookup with the same rules.\n", lookupDsts)
	fmt.Fprintf(&sb, "%6s %9s %9s %11s %10s %9s\n", "rules", "xdp", "xdp/@0", "fib_lookup", "fib/@0", "fib/xdp")
	for _, r := range rows {
		fmt.Fprintf(&sb, "%6d %9.1f %8.2fx %11.1f %9.2fx %8.2fx\n", r.rules, r.compiled, r.compiled/rows[0].compiled, r.fib, r.fib/rows[0].fib, r.fib/r.compiled)
	}
	fmt.Print(sb.String())
}

func policyRoutes(b *testing.B) int {
	n := 100_000
	if s := os.Getenv("XDPROUTER_BENCH_POLICY_ROUTES"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil || n <= fewRoutes || n > 1_000_000 {
			b.Fatalf("XDPROUTER_BENCH_POLICY_ROUTES=%q: want %d..1000000", s, fewRoutes+1)
		}
	}
	return n
}

// BenchmarkPolicyForwarding: BenchmarkForwarding's paths (the kernel, and
// xdprouterd with the compiled structure) with 100 rules "from P lookup
// T" in r, h1's the last, and three tables of the route count each (the
// rules and tables are the kernel's: xdprouterd mirrors them), side by
// side in one run.
func BenchmarkPolicyForwarding(b *testing.B) {
	if err := lab.Root(); err != nil {
		b.Skip("forwarding benchmarks skipped:", err)
	}
	bins := buildBinaries(b)
	n := policyRoutes(b)
	rules := policyRules(100, netip.MustParseAddr(lab.H1v4))
	var rows []row
	b.Run(fmt.Sprintf("routes=3x%d/rules=100", n), func(b *testing.B) {
		kernel := newPolicyPath(b, "kernel", n, rules, "")
		xdp := newPolicyPath(b, "xdp-compiled", n, rules, bins)
		paths := []*path{kernel, xdp, newDirect(b, n)}
		for _, m := range []trafficgen.Mode{trafficgen.Fixed, trafficgen.Random} {
			b.Run("dst="+m.String(), func(b *testing.B) { rows = append(rows, compare(b, n, m, paths)) })
		}
		var errs []error
		for _, p := range paths {
			errs = append(errs, p.close())
		}
		if err := errors.Join(errs...); err != nil {
			b.Error(err)
		}
	})
	printTable(rows)
}

// newPolicyPath is newPath with the routes in the three tables (not in
// main) and the rules in r before xdprouterd starts.
func newPolicyPath(b *testing.B, name string, routes int, rules []route.Rule, bins string) *path {
	b.Helper()
	p := newBasicPath(b, name, "xp"+strings.TrimPrefix(name, "xdp-")[:1])
	l := p.l
	err := l.Do("r", func() error {
		link, err := netlink.LinkByName("eth2")
		if err != nil {
			return err
		}
		nh := []route.NextHop{{Gateway: netip.MustParseAddr(lab.H2v4), Ifindex: link.Attrs().Index}}
		for _, id := range policyTables {
			t, err := fib.Open(id)
			if err != nil {
				return err
			}
			t.Protocol = unix.RTPROT_STATIC
			cs := make([]route.Change, routes)
			for i := range cs {
				cs[i] = route.Change{Route: route.Route{Table: id, Prefix: trafficgen.Prefix(i), Kind: route.Unicast, NextHops: nh}}
			}
			for i, err := range t.Apply(cs) {
				if err != nil {
					t.Close()
					return fmt.Errorf("table %d route %d: %w", id, i, err)
				}
			}
			t.Close()
		}
		return kernelRules(rules)
	})
	if err != nil {
		b.Fatal(err)
	}
	if bins == "" {
		if err := l.Sysctl("r", "net.ipv4.ip_forward", "1"); err != nil {
			b.Fatal(err)
		}
	} else {
		p.ctl = filepath.Join(bins, "xdprouterctl")
		// The daemon counts main's routes: wait for all three tables.
		p.startDaemonWith(b, filepath.Join(bins, "xdprouterd"), 0, fmt.Sprintf("lookup = %q\n", config.LookupCompiled))
		err := lab.Poll(b.Context(), 60*time.Second+time.Duration(3*routes)*100*time.Microsecond, func() error {
			var d bpf.Decision
			if err := p.l.Ctl("r", p.ctl, &d, "lookup", trafficgen.Prefix(routes-1).Addr().Next().String(), "--from", lab.H1v4, "--in", "eth1"); err != nil {
				return err
			}
			if d.Action != bpf.ActionRedirect || d.Table != policyTables[len(policyTables)-1] {
				return fmt.Errorf("XDP would %s %s the last route (table %d, rule %q)", d.Action, d.Reason, d.Table, d.Rule)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	p.attach(b)
	p.check(b, routes)
	return p
}
