package test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// TestPICFailover: two upstreams announce the same table; with bgp.pic the
// second best path is pre-installed as a backup. The best path's link
// loses its carrier: traffic to every prefix, sent right after, reaches
// the backup upstream through XDP while the BGP session with the failed
// upstream is still up (its hold timer has not expired: BGP has not
// withdrawn a single route).
func TestPICFailover(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	up2 := r.addUpstream2()
	const n = 50
	table := announced(n, 0)
	for _, u := range []upstream{up1, up2} {
		if _, err := r.StartBIRD(r.peer(u, table)); err != nil {
			t.Fatal(err)
		}
	}
	r.start("[bgp]\npic = true\n\n" + neighbors("", up1, up2))
	r.waitRoutes("learned from two upstreams", n, 0)
	r.poll(20*time.Second, func() error {
		var routes []xsync.RouteInfo
		if err := r.ctl(&routes, "routes"); err != nil {
			return err
		}
		with := 0
		for _, ri := range routes {
			if ri.Source == "bgp" && len(ri.Backup) > 0 {
				with++
			}
		}
		if with < n {
			return fmt.Errorf("%d of %d routes with a backup", with, n)
		}
		return nil
	})
	dsts := hosts(table)
	r.agreeAll("before the failure", dsts)

	// Which upstream is primary: XDP's egress for the table.
	d := r.lookup(dsts[0])
	if d.Action != bpf.ActionRedirect || len(d.Candidates) != 1 {
		t.Fatalf("before the failure: %+v", d)
	}
	primary, backup := up1, up2
	if d.Candidates[0].Ifindex == r.ifindex("r", "eth3") {
		primary, backup = up2, up1
	}
	for _, dst := range dsts {
		if d := r.lookup(dst); d.Action != bpf.ActionRedirect || d.Candidates[0].Ifindex != r.ifindex("r", fmt.Sprintf("eth%d", primary.port)) {
			t.Fatalf("%s not via the primary %s: %+v", dst, primary.role, d)
		}
	}

	rx := func(role string) uint64 {
		out, err := r.Output(role, "cat", "/sys/class/net/eth0/statistics/rx_packets")
		if err != nil {
			t.Fatal(err)
		}
		v, _ := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
		return v
	}
	if err := r.Run(primary.role, "ip", "link", "set", "eth0", "down"); err != nil { // r's port loses carrier
		t.Fatal(err)
	}
	failed := time.Now()
	r.waitDecision(dsts[0], "switched to the backup", func(d bpf.Decision) bool {
		return d.Action == bpf.ActionRedirect && d.Candidates[0].Ifindex == r.ifindex("r", fmt.Sprintf("eth%d", backup.port))
	})
	redirected, got := r.counter(bpf.ActionRedirect, ""), rx(backup.role)
	if err := r.Do("h1", func() error {
		for _, dst := range dsts {
			if err := sendFlows("udp4", dst+":9", 1); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r.poll(10*time.Second, func() error {
		if d := rx(backup.role) - got; d < n {
			return fmt.Errorf("the backup %s received %d of %d packets sent to the table", backup.role, d, n)
		}
		return nil
	})
	if d := r.counter(bpf.ActionRedirect, "") - redirected; d < n {
		t.Errorf("XDP redirected %d of the %d packets, want all", d, n)
	}
	// BGP has not reacted: the session with the failed upstream is up.
	for _, ps := range r.status().Peers {
		if ps.Address == netip.MustParseAddr(primary.v4()) && !ps.Up {
			t.Errorf("the session with %s went down %v after the failure: the test proves nothing", primary.role, time.Since(failed))
		}
	}
}

// ifindex returns the interface index of ifname in role's namespace.
func (r *router) ifindex(role, ifname string) int {
	r.t.Helper()
	out, err := r.Output(role, "cat", "/sys/class/net/"+ifname+"/ifindex")
	if err != nil {
		r.t.Fatal(err)
	}
	i, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		r.t.Fatal(err)
	}
	return i
}
