package test

import (
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
)

// TestForeignBGPRoutesKept: another routing daemon (FRR's zebra) writes
// `proto bgp metric 20` routes into r's table. xdprouterd, which has its own
// protocol, mirrors them into XDP like any kernel route and never deletes
// them, also across a restart (without BGP the stale sweep runs right at
// start: the harsher case).
func TestForeignBGPRoutesKept(t *testing.T) {
	r := newLab(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.Run("h2", "ip", "addr", "add", "198.51.100.1/32", "dev", "lo"))
	must(r.Run("h2", "ip", "addr", "add", "198.51.101.1/32", "dev", "lo"))
	// One before xdprouterd starts, one while it runs.
	must(r.Run("r", "ip", "route", "add", "198.51.101.0/24", "via", lab.H2v4, "proto", "bgp", "metric", "20"))
	r.start("")
	must(r.Run("r", "ip", "route", "add", "198.51.100.0/24", "via", lab.H2v4, "proto", "bgp", "metric", "20"))

	checkKept := func(when string) {
		t.Helper()
		for _, dst := range []string{"198.51.100.1", "198.51.101.1"} {
			r.waitDecision(dst, when+": proto bgp route of another daemon", func(d bpf.Decision) bool {
				return d.Action == bpf.ActionRedirect
			})
			before := r.counter(bpf.ActionRedirect, "")
			must(r.Run("h1", "ping", "-c3", "-i0.05", "-W1", dst))
			if got := r.counter(bpf.ActionRedirect, "") - before; got != 6 {
				t.Errorf("%s: redirected %d packets for 3 pings to %s, want 6", when, got, dst)
			}
		}
		out, err := r.Output("r", "ip", "route", "show", "proto", "bgp")
		must(err)
		for _, p := range []string{"198.51.100.0/24", "198.51.101.0/24"} {
			if !strings.Contains(out, p) {
				t.Errorf("%s: xdprouterd deleted the other daemon's route %s; proto bgp routes:\n%s", when, p, out)
			}
		}
	}
	checkKept("running")
	must(r.daemon.Stop(10 * time.Second))
	r.start("")
	checkKept("after restart")
}

// TestUnknownRouteTypesKernelOnly: a route type XDP does not model (here
// local) is mirrored as kernel-only, so XDP passes its packets instead of
// forwarding them by a shorter match.
func TestUnknownRouteTypesKernelOnly(t *testing.T) {
	r := newLab(t)
	r.start("")
	if err := r.Run("r", "ip", "route", "add", "10.9.0.0/16", "via", lab.H2v4); err != nil {
		t.Fatal(err)
	}
	r.waitDecision("10.9.9.1", "covering route", func(d bpf.Decision) bool { return d.Action == bpf.ActionRedirect })
	if err := r.Run("r", "ip", "route", "add", "local", "10.9.9.0/24", "dev", "lo", "table", "main"); err != nil {
		t.Fatal(err)
	}
	r.waitDecision("10.9.9.1", "local route", func(d bpf.Decision) bool {
		return d.Action == bpf.ActionPass && d.Reason == bpf.ReasonKernelRoute
	})
	r.waitDecision("10.9.8.1", "covering route outside the local one", func(d bpf.Decision) bool { return d.Action == bpf.ActionRedirect })
}

// TestBridgePortPassedToKernel: a router port that is a Linux bridge has
// no ndo_xdp_xmit ("auto" attaches it in generic mode). A redirect into it
// would be counted and then dropped by the kernel; instead XDP passes
// packets routed out of it (egress_not_xdp) and the kernel, forwarding on
// for this test, delivers them.
func TestBridgePortPassedToKernel(t *testing.T) {
	r := newLab(t)
	for _, s := range [][]string{
		{"ip", "addr", "del", lab.R2v4 + "/24", "dev", "eth2"},
		{"ip", "addr", "del", lab.R2v6 + "/64", "dev", "eth2"},
		{"ip", "link", "add", "br2", "type", "bridge"},
		{"ip", "link", "set", "eth2", "master", "br2"},
		{"ip", "link", "set", "br2", "up"},
		{"ip", "addr", "add", lab.R2v4 + "/24", "dev", "br2"},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
	} {
		if err := r.Run("r", s...); err != nil {
			t.Fatal(err)
		}
	}
	r.poll(5*time.Second, func() error { return r.Run("r", "ping", "-c1", "-W1", lab.H2v4) })
	r.ports = []string{"eth1", "br2"}
	r.edit = func(cfg string) string { return strings.Replace(cfg, `xdp-mode = "native"`, `xdp-mode = "auto"`, 1) }
	r.start("")

	r.waitDecision(lab.H2v4, "route out of the bridge", func(d bpf.Decision) bool {
		return d.Action == bpf.ActionPass && d.Reason == bpf.ReasonEgressNotXDP
	})
	passed := r.counter(bpf.ActionPass, bpf.ReasonEgressNotXDP)
	if err := r.Run("h1", "ping", "-c3", "-i0.05", "-W1", lab.H2v4); err != nil {
		t.Fatalf("h1 → h2 across the bridge port: %v", err)
	}
	if got := r.counter(bpf.ActionPass, bpf.ReasonEgressNotXDP) - passed; got < 3 {
		t.Errorf("egress_not_xdp counted %d packets for 3 pings, want >= 3", got)
	}
	// The reverse direction enters through the bridge and leaves through
	// the veth eth1, a redirect target.
	r.waitDecision(lab.H1v4, "route out of the veth", func(d bpf.Decision) bool { return d.Action == bpf.ActionRedirect })
}
