package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// waitDecision polls until the XDP decision for addr satisfies ok, and logs
// how long the change took to reach the maps.
func (r *router) waitDecision(addr, what string, ok func(bpf.Decision) bool) bpf.Decision {
	r.t.Helper()
	start := time.Now()
	var d bpf.Decision
	r.poll(5*time.Second, func() error {
		d = r.lookup(addr)
		if !ok(d) {
			return fmt.Errorf("%s: lookup %s = %+v", what, addr, d)
		}
		return nil
	})
	r.t.Logf("%s: in the XDP maps after %v", what, time.Since(start).Round(time.Millisecond))
	return d
}

// TestFollowsKernelChanges changes a route, a neighbor's MAC and a link in
// r's kernel and checks XDP follows, with traffic.
func TestFollowsKernelChanges(t *testing.T) {
	r := newLab(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const dst = "192.0.2.1"
	must(r.Run("h2", "ip", "addr", "add", dst+"/32", "dev", "lo"))
	r.start("")
	must(r.Run("r", "ip", "route", "add", "192.0.2.0/24", "via", lab.H2v4))

	h2mac := func() string {
		out, err := r.Output("h2", "cat", "/sys/class/net/eth0/address")
		must(err)
		return strings.TrimSpace(out)
	}
	d := r.waitDecision(dst, "static route added", func(d bpf.Decision) bool { return d.Action == bpf.ActionRedirect })
	if got := d.Candidates[0].DstMAC.String(); got != h2mac() {
		t.Errorf("next-hop MAC %s, want h2's %s", got, h2mac())
	}
	pingThroughXDP := func() {
		t.Helper()
		before := r.counter(bpf.ActionRedirect, "")
		must(r.Run("h1", "ping", "-c3", "-i0.05", "-W1", dst))
		if got := r.counter(bpf.ActionRedirect, "") - before; got != 6 {
			t.Errorf("redirected %d packets for 3 pings, want 6", got)
		}
	}
	pingThroughXDP()

	// Route kinds.
	must(r.Run("r", "ip", "route", "replace", "blackhole", "192.0.2.0/24"))
	r.waitDecision(dst, "blackhole route", func(d bpf.Decision) bool { return d.Action == bpf.ActionDrop })
	drops := r.counter(bpf.ActionDrop, bpf.ReasonBlackhole)
	if err := r.Run("h1", "ping", "-c2", "-i0.05", "-W1", dst); err == nil {
		t.Error("ping through a blackhole route succeeded")
	}
	if got := r.counter(bpf.ActionDrop, bpf.ReasonBlackhole) - drops; got != 2 {
		t.Errorf("dropped %d packets at the blackhole, want 2", got)
	}
	must(r.Run("r", "ip", "route", "replace", "unreachable", "192.0.2.0/24"))
	r.waitDecision(dst, "unreachable route", func(d bpf.Decision) bool { return d.Reason == bpf.ReasonUnreachable })
	must(r.Run("r", "ip", "route", "replace", "192.0.2.0/24", "via", lab.H2v4))
	r.waitDecision(dst, "route restored", func(d bpf.Decision) bool { return d.Action == bpf.ActionRedirect })

	// The neighbor's MAC changes: XDP rewrites with the new one.
	const newMAC = "02:00:00:00:22:22"
	must(r.Run("h2", "ip", "link", "set", "eth0", "address", newMAC))
	must(r.Run("r", "ip", "neigh", "replace", lab.H2v4, "lladdr", newMAC, "dev", "eth2", "nud", "reachable"))
	r.waitDecision(dst, "neighbor MAC change", func(d bpf.Decision) bool {
		return d.Action == bpf.ActionRedirect && d.Candidates[0].DstMAC.String() == newMAC
	})
	pingThroughXDP()

	// The link goes down (carrier lost): its next hops leave every group.
	must(r.Run("h2", "ip", "link", "set", "eth0", "down"))
	r.waitDecision(dst, "link down", func(d bpf.Decision) bool { return d.Action == bpf.ActionPass })
	var groups []xsync.GroupInfo
	must(r.ctl(&groups, "nexthops"))
	for _, g := range groups {
		for _, m := range g.Members {
			if m.Ifindex == d.Candidates[0].Ifindex && len(g.Active) > 0 {
				t.Errorf("group %d still forwards over the down link: %+v", g.ID, g)
			}
		}
	}
	must(r.Run("h2", "ip", "link", "set", "eth0", "up"))
	// Carrier back: the kernels re-add the connected routes; the routes
	// via the link were flushed with it and are added again.
	r.poll(5*time.Second, func() error { return r.Run("h2", "ip", "route", "replace", "default", "via", lab.R2v4) })
	r.poll(5*time.Second, func() error {
		return r.Run("r", "ip", "route", "replace", "192.0.2.0/24", "via", lab.H2v4)
	})
	r.waitDecision(dst, "link up", func(d bpf.Decision) bool { return d.Action == bpf.ActionRedirect })
	r.poll(5*time.Second, func() error { return r.Run("h1", "ping", "-c1", "-W1", dst) })
}

// TestPortRecreated deletes a router port and creates it again (a new
// ifindex): xdprouterd puts XDP on it and forwards again.
func TestPortRecreated(t *testing.T) {
	r := newLab(t)
	r.start("")
	r.waitRedirect(lab.H2v4)
	before := r.status().Interfaces
	if err := r.Run("r", "ip", "link", "del", "eth2"); err != nil { // takes h2's end along
		t.Fatal(err)
	}
	if err := r.Link("r", "eth2", "h2", "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]string{
		{"r", "ip", "addr", "add", lab.R2v4 + "/24", "dev", "eth2"},
		{"h2", "ip", "addr", "add", lab.H2v4 + "/24", "dev", "eth0"},
		{"h2", "ip", "route", "add", "default", "via", lab.R2v4},
		{"r", "ping", "-c1", "-W2", lab.H2v4},
	} {
		if err := r.Run(s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.HostPort("h2", "eth0"); err != nil {
		t.Fatal(err)
	}
	d := r.waitRedirect(lab.H2v4)
	if d.Candidates[0].Ifindex == before[1].Ifindex {
		t.Fatalf("egress still the old ifindex %d", before[1].Ifindex)
	}
	r.waitDecision(lab.H2v4, "re-created port", func(d bpf.Decision) bool { return d.Action == bpf.ActionRedirect })
	redirects := r.counter(bpf.ActionRedirect, "")
	if err := r.Run("h1", "ping", "-c3", "-i0.05", "-W1", lab.H2v4); err != nil {
		t.Fatal(err)
	}
	// Requests leave through the new port and replies arrive on it: both
	// directions are forwarded by XDP.
	if got := r.counter(bpf.ActionRedirect, "") - redirects; got != 6 {
		t.Errorf("redirected %d packets for 3 pings over the re-created port, want 6", got)
	}
}
