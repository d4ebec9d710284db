package test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/lab"
)

// TestBFDDetectsPausedPeer: with bfd = true on both sides, a BIRD that
// stops answering (SIGSTOP by PID: its TCP sessions stay open, so only the
// hold timer, 30 s, would notice) loses its sessions within BFD's
// detection time; its routes leave both sinks, and status and metrics
// show the BFD state. Once BIRD runs again (SIGCONT) BFD and the sessions
// come back and so do the routes.
func TestBFDDetectsPausedPeer(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	const n4, n6 = 100, 10
	p := r.peer(up1, announced(n4, n6))
	bird := r.startBIRD(p, birdConf(p, birdBFD(p), "bfd on; hold time 30; connect retry time 1; error wait time 1, 5;"))
	t.Cleanup(func() { _ = bird.Cmd.Process.Signal(syscall.SIGCONT) }) // before the lab stops it
	r.start(neighbors("hold-time = 30\nconnect-retry = 1\nidle-hold-after-reset = 2\nbfd = true\nbfd-min-rx = 100\nbfd-min-tx = 100\nbfd-multiplier = 3", up1))
	r.waitRoutes("learned from BIRD", n4, n6)
	r.peersWhere(20*time.Second, "BFD up", func(ps bgp.PeerStatus) bool { return ps.Up && ps.BFD == "up" })
	r.bfdMetrics(1, up1.v4(), up1.v6())
	with := r.status().Routes // XDP also holds the connected routes

	if err := bird.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Well before the 30 s hold timer could expire.
	start := time.Now()
	r.poll(5*time.Second, func() error {
		for _, ps := range r.status().Peers {
			if ps.Up || ps.BFD == "up" {
				return fmt.Errorf("peer %s still up (bfd %s)", ps.Address, ps.BFD)
			}
		}
		s := r.status().Routes
		if k4, k6 := r.kernelBGPRoutes(); k4 != 0 || k6 != 0 || s.XDP4 > with.XDP4-n4 || s.XDP6 > with.XDP6-n6 {
			return fmt.Errorf("still installed: kernel %d+%d BGP routes, xdp %d+%d routes (%d+%d with BIRD's)", k4, k6, s.XDP4, s.XDP6, with.XDP4, with.XDP6)
		}
		for _, dst := range []string{dst4, dst6} {
			if d := r.lookup(dst); d.Prefix.IsValid() {
				return fmt.Errorf("XDP still routes %s by %s", dst, d.Prefix)
			}
		}
		return nil
	})
	t.Logf("sessions down and routes withdrawn %v after BIRD stopped answering", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(r.daemon.Out.String(), "BFD") {
		t.Error("the daemon log does not mention BFD")
	}
	r.bfdMetrics(0, up1.v4(), up1.v6())

	// BIRD runs again: BFD comes up again, the sessions re-establish
	// (after the idle hold following the reset) and the routes return.
	if err := bird.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	r.waitRoutes("after BIRD resumed", n4, n6)
	r.peersWhere(20*time.Second, "BFD up again", func(ps bgp.PeerStatus) bool { return ps.Up && ps.BFD == "up" })
	t.Logf("sessions, BFD and routes back %v after BIRD resumed", time.Since(start).Round(time.Millisecond))
	r.bfdMetrics(1, up1.v4(), up1.v6())
	// Two expected (one per session, at the pause); more mean BFD flapped
	// while coming up (harmless for this test if it converged, but telling).
	t.Logf("BFD expiries in the daemon log: %d", strings.Count(r.daemon.Out.String(), "msg=Expired"))
}

// bfdMetrics checks xdprouter_bgp_bfd_up is want for each peer.
func (r *router) bfdMetrics(want int, peers ...string) {
	r.t.Helper()
	m := r.metrics()
	for _, a := range peers {
		if line := fmt.Sprintf("xdprouter_bgp_bfd_up{peer=%q} %d", a, want); !strings.Contains(m, line) {
			r.t.Errorf("metrics lack %s", line)
		}
	}
}

// birdBFD is BIRD's BFD protocol for p's sessions, 100 ms x 3. Each
// session is also a static BFD neighbor: BIRD then keeps the BFD session
// (and its discriminator) while its BGP session restarts, instead of
// removing it with the BGP protocol's request. Without that, every BGP
// reset tears BIRD's BFD session down and GoBGP's expires, which GoBGP
// turns into a reset of the next session to come up (docs/BFD.md).
func birdBFD(p lab.BGPPeer) string {
	var b strings.Builder
	b.WriteString("protocol bfd {\n  interface \"eth0\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n")
	for _, n := range p.Peers {
		fmt.Fprintf(&b, "  neighbor %s dev \"eth0\" local %s;\n", n.Remote, n.Local)
	}
	b.WriteString("}")
	return b.String()
}
