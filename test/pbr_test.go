package test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
)

// pbrDst is owned by both h2 (the main table's way) and alt (the policy
// route's next hop): who answers tells which way a packet went.
const pbrDst = "198.51.100.1"

// pbrRoutes: h1's subnet goes to alt (10.0.3.2) while alt is usable, but
// to the lab's own subnets by the main table (without that exception the
// replies to h2 would go to alt too: a policy route without "to" takes
// all traffic of its sources).
const pbrRoutes = `
[[policy-route]]
name = "h1-local"
from = "10.0.1.0/24"
to = "10.0.0.0/16"
table = 254
priority = 490

[[policy-route]]
name = "h1-via-alt"
from = "10.0.1.0/24"
next-hop = "10.0.3.2"
`

// TestPolicyRouteNextHop (issue 11): a [[policy-route]] with next-hop
// sends h1's traffic to alt while h2's goes by the main table: the rule
// and the next hop's table are in the kernel (`ip rule`, `ip route get`
// agree), XDP forwards by them (kernel forwarding is off in r); alt's
// link down: h1's traffic falls back to the main table (to h2) within a
// deadline, and back to alt when it comes up; a SIGHUP removing the
// policy route removes its rule and its table's route.
func TestPolicyRouteNextHop(t *testing.T) {
	r := newLab(t)
	if err := r.AddHost("alt", 3); err != nil {
		t.Fatal(err)
	}
	r.ports = []string{"eth1", "eth2", "eth3"}
	for _, host := range []string{"h2", "alt"} {
		if err := r.Run(host, "ip", "addr", "add", pbrDst+"/32", "dev", "lo"); err != nil {
			t.Fatal(err)
		}
	}
	// The main table's way to pbrDst: h2 (a kernel route, mirrored).
	if err := r.Run("r", "ip", "route", "add", "198.51.100.0/24", "via", lab.H2v4); err != nil {
		t.Fatal(err)
	}
	r.start(pbrRoutes)

	// The kernel: our rules, and the next hop's table with its route.
	r.poll(10*time.Second, func() error {
		out, err := r.Output("r", "ip", "route", "show", "table", "20000")
		if err != nil || !strings.Contains(out, "default via 10.0.3.2 dev eth3 proto 200") {
			return fmt.Errorf("table 20000: %q %v", out, err)
		}
		return nil
	})
	rules, _ := r.Output("r", "ip", "rule", "show")
	for _, s := range []string{"490:\tfrom 10.0.1.0/24 to 10.0.0.0/16 lookup main proto 200", "510:\tfrom 10.0.1.0/24 lookup 20000 proto 200"} {
		if !strings.Contains(rules, s) {
			t.Errorf("ip rule lacks %q:\n%s", s, rules)
		}
	}
	if out, _ := r.Output("r", "ip", "-6", "rule", "show"); strings.Contains(out, "proto 200") {
		t.Errorf("IPv6 rules for an IPv4 policy route:\n%s", out)
	}
	routeGet := func(from, iif, via string) {
		t.Helper()
		// The kernel answers `ip route get ... iif` for transit traffic
		// only with forwarding on: on for the question, off again.
		if err := r.Sysctl("r", "net.ipv4.ip_forward", "1"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := r.ForwardingOff("r"); err != nil {
				t.Fatal(err)
			}
		}()
		out, err := r.Output("r", "ip", "route", "get", pbrDst, "from", from, "iif", iif)
		if err != nil || !strings.Contains(out, "via "+via) {
			t.Errorf("ip route get %s from %s iif %s: %q %v, want via %s", pbrDst, from, iif, out, err, via)
		}
	}
	routeGet(lab.H1v4, "eth1", "10.0.3.2")
	routeGet(lab.H2v4, "eth2", lab.H2v4)

	// XDP: h1's pings reach alt, not h2, every packet redirected by XDP.
	eth3 := ifindexIn(t, r, "r", "eth3")
	pingVia := func(want, other string) {
		t.Helper()
		r.poll(10*time.Second, func() error {
			n0, o0 := icmpIn(t, r, want), icmpIn(t, r, other)
			if err := r.Run("h1", "ping", "-c1", "-W1", pbrDst); err != nil {
				return err
			}
			if icmpIn(t, r, want) == n0 || icmpIn(t, r, other) != o0 {
				return fmt.Errorf("h1's ping to %s did not (only) reach %s", pbrDst, want)
			}
			return nil
		})
	}
	pingVia("alt", "h2")
	before := r.counter(bpf.ActionRedirect, "")
	n0 := icmpIn(t, r, "alt")
	if err := r.Run("h1", "ping", "-c3", "-i0.05", "-W1", pbrDst); err != nil {
		t.Fatalf("h1: ping %s: %v", pbrDst, err)
	}
	if got := r.counter(bpf.ActionRedirect, "") - before; got != 6 {
		t.Errorf("XDP redirected %d packets for 3 pings, want 6", got)
	}
	if n := icmpIn(t, r, "alt") - n0; n != 3 {
		t.Errorf("alt got %d of h1's 3 pings", n)
	}
	var d bpf.Decision
	if err := r.ctl(&d, "lookup", pbrDst, "--from", lab.H1v4, "--in", "eth1"); err != nil {
		t.Fatal(err)
	}
	if d.Table != 20000 || len(d.Candidates) != 1 || d.Candidates[0].Ifindex != eth3 {
		t.Errorf("xdprouterctl lookup %s --from h1 --in eth1: %+v, want table 20000 via eth3 (%d)", pbrDst, d, eth3)
	}
	// h2's traffic goes by main: h2 reaches h1 (and h1's replies, by the
	// h1-local exception, reach h2).
	if err := r.Run("h2", "ping", "-c1", "-W1", lab.H1v4); err != nil {
		t.Errorf("h2 → h1: %v", err)
	}

	// alt's link goes down: the route leaves table 20000, h1's traffic
	// goes by the main table to h2.
	if err := r.Run("alt", "ip", "link", "set", "eth0", "down"); err != nil {
		t.Fatal(err)
	}
	r.poll(10*time.Second, func() error {
		out, err := r.Output("r", "ip", "route", "show", "table", "20000")
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("table 20000 after alt went down: %q %v", out, err)
		}
		return nil
	})
	pingVia("h2", "alt")
	routeGet(lab.H1v4, "eth1", lab.H2v4)
	if err := r.ctl(&d, "lookup", pbrDst, "--from", lab.H1v4, "--in", "eth1"); err != nil {
		t.Fatal(err)
	}
	if d.Table != 254 {
		t.Errorf("XDP lookup with alt down: table %d, want 254 (main): %+v", d.Table, d)
	}

	// alt comes back (its default route went with the link): h1's traffic
	// returns to it once r has resolved it again.
	for _, args := range [][]string{{"ip", "link", "set", "eth0", "up"}, {"ip", "route", "replace", "default", "via", "10.0.3.1"}} {
		if err := r.Run("alt", args...); err != nil {
			t.Fatal(err)
		}
	}
	r.poll(15*time.Second, func() error {
		out, err := r.Output("r", "ip", "route", "show", "table", "20000")
		if err != nil || !strings.Contains(out, "default via 10.0.3.2") {
			return fmt.Errorf("table 20000 after alt came back: %q %v", out, err)
		}
		return nil
	})
	pingVia("alt", "h2")

	// SIGHUP without the policy route: its rule and table route go, the
	// exception stays; h1's traffic goes by main.
	b, err := os.ReadFile(r.config)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "[[policy-route]]\nname = \"h1-via-alt\"")
	if i < 0 {
		t.Fatalf("config without the policy route:\n%s", b)
	}
	if err := os.WriteFile(r.config, b[:i], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.daemon.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.poll(10*time.Second, func() error {
		rules, err := r.Output("r", "ip", "rule", "show")
		if err != nil || strings.Contains(rules, "lookup 20000") || !strings.Contains(rules, "490:") {
			return fmt.Errorf("rules after SIGHUP: %v\n%s", err, rules)
		}
		out, err := r.Output("r", "ip", "route", "show", "table", "20000")
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("table 20000 after SIGHUP: %q %v", out, err)
		}
		return nil
	})
	pingVia("h2", "alt")
	if !strings.Contains(r.daemon.Out.String(), "SIGHUP: configuration reloaded") {
		t.Errorf("no reload logged:\n%s", r.daemon.Out.String())
	}
}

// ifindexIn returns the index of interface name in role.
func ifindexIn(t *testing.T, r *router, role, name string) int {
	t.Helper()
	out, err := r.Output(role, "cat", "/sys/class/net/"+name+"/ifindex")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscan(out, &n); err != nil {
		t.Fatalf("ifindex of %s: %q", name, out)
	}
	return n
}

// TestMirrorTablesRuleToKernel (issue 11): with [fib] mirror-tables = []
// an operator's table 300 is not mirrored: its routes are not in XDP, and
// h1's traffic that the operator's rule sends to it is passed to the
// kernel (pass/rule_kernel), which forwards it to alt; other traffic is
// still XDP's.
func TestMirrorTablesRuleToKernel(t *testing.T) {
	r := newLab(t)
	if err := r.AddHost("alt", 3); err != nil {
		t.Fatal(err)
	}
	r.ports = []string{"eth1", "eth2", "eth3"}
	for _, args := range [][]string{
		{"ip", "route", "add", "198.51.100.0/24", "via", "10.0.3.2", "table", "300"},
		{"ip", "route", "add", "198.51.101.0/24", "via", "10.0.3.2", "table", "301"},
		{"ip", "rule", "add", "from", lab.H1v4, "to", "198.51.100.0/24", "lookup", "300", "pref", "300"},
	} {
		if err := r.Run("r", args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Run("alt", "ip", "addr", "add", pbrDst+"/32", "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	r.start("[fib]\nmirror-tables = [301]\n")

	var d bpf.Decision
	r.poll(10*time.Second, func() error {
		if err := r.ctl(&d, "lookup", pbrDst, "--from", lab.H1v4, "--in", "eth1"); err != nil {
			return err
		}
		if d.Action != bpf.ActionPass || d.Reason != bpf.ReasonRuleKernel {
			return fmt.Errorf("lookup %s from h1: %+v, want pass/%s", pbrDst, d, bpf.ReasonRuleKernel)
		}
		return nil
	})
	var routes []struct {
		Table  int
		Prefix string
	}
	if err := r.ctl(&routes, "routes"); err != nil {
		t.Fatal(err)
	}
	has := map[int]bool{}
	for _, rt := range routes {
		has[rt.Table] = true
	}
	if has[300] || !has[301] {
		t.Errorf("tables in XDP: %v, want 301 and not 300", has)
	}
	// The kernel forwards what XDP passed (forwarding on for that).
	before := r.counter(bpf.ActionPass, bpf.ReasonRuleKernel)
	if err := r.Sysctl("r", "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	n0 := icmpIn(t, r, "alt")
	r.poll(10*time.Second, func() error { return r.Run("h1", "ping", "-c1", "-W1", pbrDst) })
	if icmpIn(t, r, "alt") == n0 {
		t.Error("h1's ping did not reach alt")
	}
	if r.counter(bpf.ActionPass, bpf.ReasonRuleKernel) == before {
		t.Error("no packet passed to the kernel for the rule of an unmirrored table")
	}
	if err := r.ForwardingOff("r"); err != nil {
		t.Fatal(err)
	}
	// h2 → h1 is still XDP's (forwarding off again).
	if err := r.Run("h2", "ping", "-c1", "-W1", lab.H1v4); err != nil {
		t.Errorf("h2 → h1 with forwarding off: %v", err)
	}
}
