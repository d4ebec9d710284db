package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
)

// waitRedirect waits until XDP would redirect packets to addr.
func (r *router) waitRedirect(addr string) bpf.Decision {
	r.t.Helper()
	var d bpf.Decision
	r.poll(5*time.Second, func() error {
		d = r.lookup(addr)
		if d.Action != bpf.ActionRedirect {
			return fmt.Errorf("lookup %s: %s %s", addr, d.Action, d.Reason)
		}
		return nil
	})
	return d
}

func TestPingForwardedByXDP(t *testing.T) {
	r := newLab(t)
	r.start("")
	for _, dst := range []string{lab.H2v4, lab.H2v6} {
		t.Run(dst, func(t *testing.T) {
			r := r.with(t)
			// First contact: the kernel resolves h2 (and XDP passes until
			// it has); ping until XDP forwards.
			r.poll(5*time.Second, func() error { return r.Run("h1", "ping", "-c1", "-W1", dst) })
			r.waitRedirect(dst)
			before := r.counter(bpf.ActionRedirect, "")
			if err := r.Run("h1", "ping", "-c5", "-i0.05", "-W1", dst); err != nil {
				t.Fatal(err)
			}
			// 5 requests h1→h2 and 5 replies h2→h1, all forwarded by XDP.
			if got := r.counter(bpf.ActionRedirect, "") - before; got != 10 {
				t.Errorf("redirected %d packets for 5 pings, want 10", got)
			}
		})
	}
	// SIGHUP re-checks the config and never stops the router.
	if err := r.daemon.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.poll(5*time.Second, func() error {
		if exited, err := r.daemon.Exited(); exited {
			t.Fatalf("xdprouterd exited on SIGHUP: %v", err)
		}
		if !strings.Contains(r.daemon.Out.String(), "SIGHUP: configuration unchanged") {
			return errors.New("no SIGHUP answer in the log yet")
		}
		return nil
	})

	// Prometheus sees the same counters and routes as xdprouterctl: in
	// XDP the connected subnets and local addresses; nothing of ours in the
	// kernel.
	m, st := r.metrics(), r.status()
	if st.Routes.XDP4 < 4 || st.Routes.XDP6 < 4 {
		t.Errorf("routes in XDP: %+v, want at least 2 connected + 2 local per family", st.Routes)
	}
	for _, want := range []string{
		fmt.Sprintf(`xdprouter_xdp_packets_total{action="redirect",reason=""} %d`, r.counter(bpf.ActionRedirect, "")),
		fmt.Sprintf(`xdprouter_routes{dest="xdp",family="ipv4"} %d`, st.Routes.XDP4),
		fmt.Sprintf(`xdprouter_routes{dest="xdp",family="ipv6"} %d`, st.Routes.XDP6),
		`xdprouter_routes{dest="kernel",family="ipv4"} 0`,
		`xdprouter_sync_pending 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
}

// TestUDPFlow sends a UDP flow h1 → h2 and checks every datagram arrived
// and was redirected by XDP.
func TestUDPFlow(t *testing.T) {
	r := newLab(t)
	r.start("")
	for _, tc := range []struct{ net, dst string }{{"udp4", lab.H2v4}, {"udp6", lab.H2v6}} {
		t.Run(tc.net, func(t *testing.T) {
			r := r.with(t)
			r.poll(5*time.Second, func() error { return r.Run("h1", "ping", "-c1", "-W1", tc.dst) })
			r.waitRedirect(tc.dst)
			var srv net.PacketConn
			if err := r.Do("h2", func() (err error) {
				srv, err = net.ListenPacket(tc.net, net.JoinHostPort(tc.dst, "0"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			var cli net.Conn
			if err := r.Do("h1", func() (err error) {
				cli, err = net.Dial(tc.net, srv.LocalAddr().String())
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			const n, window = 200, 25
			before := r.counter(bpf.ActionRedirect, "")
			var received atomic.Int64
			got := make(chan int)
			go func() {
				buf := make([]byte, 2048)
				for received.Load() < n {
					_ = srv.SetReadDeadline(time.Now().Add(3 * time.Second))
					if _, _, err := srv.ReadFrom(buf); err != nil {
						break
					}
					received.Add(1)
				}
				got <- int(received.Load())
			}()
			// At most a window in flight: the veth rings are short and a
			// loaded machine drops a burst (what XDP forwards is counted).
			for i := range n {
				if _, err := cli.Write(fmt.Appendf(nil, "datagram %d", i)); err != nil {
					t.Fatal(err)
				}
				if (i+1)%window == 0 {
					if err := lab.Poll(context.Background(), 3*time.Second, func() error {
						if received.Load() < int64(i+1) {
							return fmt.Errorf("received %d of %d", received.Load(), i+1)
						}
						return nil
					}); err != nil {
						break // counted below
					}
				}
			}
			if c := <-got; c != n {
				t.Errorf("received %d of %d datagrams", c, n)
			}
			if d := r.counter(bpf.ActionRedirect, "") - before; d != n {
				t.Errorf("XDP redirected %d packets, want %d", d, n)
			}
		})
	}
}

// sendFlows sends one datagram on each of n flows (distinct source ports)
// to dst. Call it inside the sender's namespace (lab.Do).
func sendFlows(network, dst string, n int) error {
	for i := range n {
		c, err := net.Dial(network, dst)
		if err != nil {
			return err
		}
		_, err = c.Write(fmt.Appendf(nil, "flow %d", i))
		c.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
