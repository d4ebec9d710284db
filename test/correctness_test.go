package test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// agree checks that XDP does for dst what the kernel's `ip route get`
// says: where the kernel forwards, XDP redirects out of the same port;
// where the kernel has no route, XDP does not forward.
func (r *router) agree(dst string) error {
	d := r.lookup(dst)
	out, err := r.Output("r", "ip", "-j", "route", "get", dst)
	if err != nil {
		if d.Action == bpf.ActionRedirect {
			return fmt.Errorf("%s: the kernel has no route (%v) but XDP forwards it: %+v", dst, err, d)
		}
		return nil
	}
	var kr []struct{ Type, Gateway, Dev string }
	if err := json.Unmarshal([]byte(out), &kr); err != nil || len(kr) != 1 {
		return fmt.Errorf("%s: ip route get: %q: %v", dst, out, err)
	}
	if kr[0].Type == "local" {
		if d.Action == bpf.ActionRedirect {
			return fmt.Errorf("%s: local in the kernel, forwarded by XDP: %+v", dst, d)
		}
		return nil
	}
	idx, err := r.Output("r", "cat", "/sys/class/net/"+kr[0].Dev+"/ifindex")
	if err != nil {
		return err
	}
	ifindex, _ := strconv.Atoi(strings.TrimSpace(idx))
	if d.Action != bpf.ActionRedirect || len(d.Candidates) == 0 || d.Candidates[0].Ifindex != ifindex {
		return fmt.Errorf("%s: the kernel forwards via %s dev %s (ifindex %d), XDP: %+v", dst, kr[0].Gateway, kr[0].Dev, ifindex, d)
	}
	return nil
}

// agreeAll polls until XDP and the kernel agree on every destination.
func (r *router) agreeAll(what string, dsts []string) {
	r.t.Helper()
	r.poll(20*time.Second, func() error {
		for _, d := range dsts {
			if err := r.agree(d); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		return nil
	})
}

// hosts returns the first address of each prefix, as strings.
func hosts(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Addr().Next().String())
	}
	return out
}

// waitNotInstalled waits until xdprouterctl routes shows the BGP route of
// p in neither sink, with a reason containing why.
func (r *router) waitNotInstalled(p netip.Prefix, why string) {
	r.t.Helper()
	r.poll(10*time.Second, func() error {
		var routes []xsync.RouteInfo
		if err := r.ctl(&routes, "routes", p.String()); err != nil {
			return err
		}
		if len(routes) != 1 || routes[0].InXDP || routes[0].InKernel || !strings.Contains(routes[0].Error, why) {
			return fmt.Errorf("routes %s = %+v: want in neither sink, with a reason containing %q", p, routes, why)
		}
		return nil
	})
}

// TestLinkFlapIPv4: an IPv4 router port goes down and up. The kernel drops
// the routes through it without a message per route; XDP must drop them
// too, and after the link is back every BGP route is in both sinks again
// (the static route through it stays gone, as in the kernel).
func TestLinkFlapIPv4(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	const n = 40
	table := announced(n, 0)
	p := r.peer(up1, table)
	p.Multihop = true // the session outlives the flap: nothing is re-announced
	if _, err := r.StartBIRD(p); err != nil {
		t.Fatal(err)
	}
	r.start(neighbors("multihop = 2", up1))
	if err := r.Run("r", "ip", "route", "add", "192.0.2.0/24", "via", lab.H2v4); err != nil {
		t.Fatal(err)
	}
	r.waitRoutes("learned", n, 0)
	learned := time.Now()
	dsts := append(hosts(table), "192.0.2.1")
	r.agreeAll("before the flap", dsts)
	if d := r.lookup("192.0.2.1"); d.Action != bpf.ActionRedirect {
		t.Fatalf("static route not forwarded by XDP before the flap: %+v", d)
	}

	if err := r.Run("r", "ip", "link", "set", "eth2", "down"); err != nil {
		t.Fatal(err)
	}
	r.agreeAll("link down", dsts)
	if err := r.Run("r", "ip", "link", "set", "eth2", "up"); err != nil {
		t.Fatal(err)
	}
	r.waitRoutes("link up", n, 0)
	r.agreeAll("link up", dsts)
	// The routes came back through re-resolution, not a new session.
	for _, ps := range r.status().Peers {
		// Uptime counts whole seconds.
		if ps.Address == netip.MustParseAddr(up1.v4()) && (!ps.Up || ps.Uptime+time.Second <= time.Since(learned)) {
			t.Errorf("the BGP session flapped with the link (%+v): the test proves nothing", ps)
		}
	}
	if d := r.lookup("192.0.2.1"); d.Action == bpf.ActionRedirect {
		t.Errorf("the static route the kernel flushed is still forwarded by XDP: %+v", d)
	}
	r.pingXDP(dst4)
}

// TestStaleRoutesAfterRestart: routes a previous instance left in the
// kernel (keep-routes-on-exit) are forwarded by XDP as the kernel does
// while BGP has not re-learned them, not by a covering default route.
func TestStaleRoutesAfterRestart(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	const n = 20
	table := announced(n, 0)
	bird, err := r.StartBIRD(r.peer(up1, table))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run("r", "ip", "route", "add", "default", "via", lab.H1v4); err != nil {
		t.Fatal(err)
	}
	cfg := "[fib]\nkeep-routes-on-exit = true\n\n" + neighbors("", up1)
	r.start(cfg)
	r.waitRoutes("first start", n, 0)
	if err := r.daemon.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := bird.Stop(10 * time.Second); err != nil { // nothing to re-learn from
		t.Fatal(err)
	}
	r.start(cfg)
	r.agreeAll("restarted, routes stale", hosts(table))
	var routes []xsync.RouteInfo
	if err := r.ctl(&routes, "routes", table[0].String()); err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(routes, func(ri xsync.RouteInfo) bool { return ri.Prefix == table[0] }); i < 0 || !routes[i].InXDP || !routes[i].InKernel {
		t.Errorf("routes %s = %+v; want the stale route in XDP and the kernel", table[0], routes)
	}
}

// TestKernelRefusedNextHop: a BGP next hop the kernel refuses (a gateway
// that is a broadcast address in its local table) is not forwarded by XDP
// either; the refusal is logged once, shown and counted.
func TestKernelRefusedNextHop(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	refused := netip.MustParsePrefix("198.51.100.0/24")
	p := r.peer(up1, announced(5, 0))
	p.Via = map[netip.Prefix]netip.Addr{refused: netip.MustParseAddr("10.0.2.50")}
	if _, err := r.StartBIRD(p); err != nil {
		t.Fatal(err)
	}
	if err := r.Run("r", "ip", "route", "add", "broadcast", "10.0.2.50", "dev", "eth2", "table", "local"); err != nil {
		t.Fatal(err)
	}
	r.start(neighbors("", up1))
	r.waitRoutes("learned", 5, 0)
	r.waitNotInstalled(refused, "rejected")
	if err := r.agree("198.51.100.1"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(r.metrics(), "xdprouter_sync_rejected_routes 1") {
		t.Error("metrics do not count the refused route")
	}
	// Not retried (and logged) every second: wait for a few retry rounds.
	r.poll(10*time.Second, func() error {
		if c := strings.Count(r.daemon.Out.String(), "sync: changes failed"); c > 0 {
			t.Fatalf("refusal retried as a transient failure (%d log lines)", c)
		}
		if c := strings.Count(r.daemon.Out.String(), "kernel refused"); c != 1 {
			return fmt.Errorf("refusal logged %d times, want 1", c)
		}
		return nil
	})
}

// TestOwnAddressNextHopIgnored: a BGP next hop that is one of the router's
// own addresses is never installed (RFC 4271 9.1.2), and the reason is
// shown.
func TestOwnAddressNextHopIgnored(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	own := netip.MustParsePrefix("198.51.100.0/24")
	// A second address of r on the shared link: BIRD announces nothing
	// via the session's own peer address.
	const second = "10.0.2.3"
	if err := r.Run("r", "ip", "addr", "add", second+"/24", "dev", "eth2"); err != nil {
		t.Fatal(err)
	}
	p := r.peer(up1, announced(5, 0))
	p.Via = map[netip.Prefix]netip.Addr{own: netip.MustParseAddr(second)}
	if _, err := r.StartBIRD(p); err != nil {
		t.Fatal(err)
	}
	r.start(neighbors("", up1))
	r.waitRoutes("learned", 5, 0)
	r.waitNotInstalled(own, "address of this router")
	if err := r.agree("198.51.100.1"); err != nil {
		t.Error(err)
	}
	// Never resolved: the router does not ARP for itself.
	if out, _ := r.Output("r", "ip", "neigh", "show", second); strings.TrimSpace(out) != "" {
		t.Errorf("neighbor entry for the router's own address: %s", out)
	}
}
