package test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metric returns the value of one sample of xdprouterd's /metrics (the
// line starting with name, labels included), or 0.
func (r *router) metric(name string) float64 {
	r.t.Helper()
	for _, l := range strings.Split(r.metrics(), "\n") {
		if strings.HasPrefix(l, name+" ") {
			v, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return v
		}
	}
	return 0
}

// TestNexthopObjects: BGP routes are installed by a kernel nexthop group
// (ip route shows nhid); when their next hop resolves differently (a more
// specific IGP route to it appears, then goes) the group is replaced and
// every route follows, in the kernel and in XDP, with no route written.
func TestNexthopObjects(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	r.addUpstream2() // the IGP path moves to h3
	// The routes' next hop is a third address on h2's link, which h2
	// answers for; h3 forwards to it too once r routes it via h3.
	const nh = "10.0.2.99"
	for _, c := range [][]string{{"h2", "ip", "addr", "add", nh + "/24", "dev", "eth0"}, {"h3", "ip", "route", "add", nh, "via", "10.0.3.1"}} {
		if err := r.Run(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	const n = 50
	table := announced(n, 0)
	p := r.peer(up1, nil)
	p.Via = map[netip.Prefix]netip.Addr{}
	for _, pf := range table {
		p.Via[pf] = netip.MustParseAddr(nh)
	}
	if _, err := r.StartBIRD(p); err != nil {
		t.Fatal(err)
	}
	r.start(neighbors("", up1))
	r.waitRoutes("learned", n, 0)
	dsts := hosts(table)
	r.agreeAll("via h2", dsts)
	out, err := r.Output("r", "ip", "route", "show", "proto", "200")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out, " nhid "); got != n {
		t.Fatalf("%d of %d BGP routes by a nexthop object (nhid):\n%s", got, n, out)
	}

	installs := func() float64 { return r.metric(`xdprouter_route_writes_total{dest="kernel",op="install"}`) }
	nhWrites := func() float64 { return r.metric("xdprouter_kernel_nexthop_writes_total") }
	for _, step := range []struct {
		what string
		cmd  []string
		dev  string
	}{
		{"IGP route via h3", []string{"ip", "route", "add", nh + "/32", "via", "10.0.3.2"}, "eth3"},
		{"IGP route gone", []string{"ip", "route", "del", nh + "/32"}, "eth2"},
	} {
		i0, n0 := installs(), nhWrites()
		if err := r.Run("r", step.cmd...); err != nil {
			t.Fatal(err)
		}
		r.poll(20*time.Second, func() error {
			out, err := r.Output("r", "ip", "route", "get", dsts[n-1])
			if err != nil || !strings.Contains(out, "dev "+step.dev) {
				return fmt.Errorf("%s: the kernel routes %s: %q, %v; want dev %s", step.what, dsts[n-1], out, err, step.dev)
			}
			return nil
		})
		r.agreeAll(step.what, dsts)
		if d := installs() - i0; d != 0 {
			t.Errorf("%s: %v kernel routes written, want none (the group follows)", step.what, d)
		}
		if d := nhWrites() - n0; d == 0 {
			t.Errorf("%s: no nexthop object written", step.what)
		}
	}
}
