// Command xdprouter-lab is the demo behind `make lab`: in throwaway network
// namespaces it builds a client h1, a router r running xdprouterd (kernel
// forwarding off) and an upstream BGP peer "up" (BIRD 2 or FRR) announcing
// a table; it sends traffic through r for a while and prints one summary
// line. Everything it creates is removed at the end, also on failure or
// Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
)

func main() {
	duration := flag.Duration("duration", 30*time.Second, "how long to send traffic")
	n4 := flag.Int("prefixes", 10000, "IPv4 prefixes the upstream announces (/24s from 100.64.0.0, or from 1.0.0.0 beyond 16384)")
	n6 := flag.Int("prefixes6", 1000, "IPv6 prefixes the upstream announces (/48s from 2001:db8:1000::)")
	peer := flag.String("peer", "bird", "upstream BGP daemon: bird or frr")
	hold := flag.Bool("hold", false, "after the traffic, keep the lab up for inspection until Ctrl-C")
	maxPrefixes := flag.Uint("max-prefixes", 0, "max-prefixes of xdprouterd's neighbors, as a careful operator sets it (0: none)")
	flag.Parse()
	if *n4 < 0 || *n6 < 0 || *n4+*n6 == 0 || *n4 > 1<<24 || *n6 > 1<<24 {
		fmt.Println("lab: FAILED -prefixes and -prefixes6: want 0..16777216 each, not both 0")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, *duration, *n4, *n6, *peer, *hold, *maxPrefixes)
	if err != nil {
		fmt.Printf("lab: FAILED %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("lab: ok routes=%d xdp_redirect=%d kernel_pass=%d\n", sum.routes, sum.redirect, sum.pass)
}

type summary struct {
	routes         int
	redirect, pass uint64
}

func run(ctx context.Context, duration time.Duration, n4, n6 int, peer string, hold bool, maxPrefixes uint) (s summary, err error) {
	if err := lab.Root(); err != nil {
		return s, err
	}
	exe, err := os.Executable()
	if err != nil {
		return s, err
	}
	bin := filepath.Dir(exe)
	daemon, ctl := filepath.Join(bin, "xdprouterd"), filepath.Join(bin, "xdprouterctl")
	for _, b := range []string{daemon, ctl} {
		if _, err := os.Stat(b); err != nil {
			return s, fmt.Errorf("%s missing: run make build", b)
		}
	}
	dir, err := os.MkdirTemp("", "xdprouter-lab-")
	if err != nil {
		return s, err
	}
	defer os.RemoveAll(dir)

	l := lab.New("xl")
	defer func() {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}()
	step := func(msg string, args ...any) { fmt.Printf("lab: "+msg+"\n", args...) }
	if err := l.Basic(); err != nil {
		return s, err
	}
	step("built namespaces %s (client), %s (router), %s (upstream)", l.NS("h1"), l.NS("r"), l.NS("h2"))
	// h2 of the basic topology is the upstream; traffic goes to the
	// addresses it owns in the table (one per family announced).
	prefixes := lab.Table(n4, n6)
	p, dsts, err := l.Upstream("h2", 2, prefixes, dir)
	if err != nil {
		return s, err
	}
	step("starting %s in up, announcing %d IPv4 + %d IPv6 prefixes", peer, n4, n6)
	switch peer {
	case "bird":
		_, err = l.StartBIRD(p)
	case "frr":
		_, err = l.StartFRR(p)
	default:
		err = fmt.Errorf("-peer %q: want bird or frr", peer)
	}
	if err != nil {
		return s, err
	}
	cfg, err := lab.DaemonConfigFile(dir, []string{"eth1", "eth2"}, fmt.Sprintf(`[router]
asn = %[1]d
router-id = %[2]q

[[neighbor]]
address = %[3]q
peer-asn = %[5]d
description = "upstream v4"
import = "accept-all"
max-prefixes = %[6]d

[[neighbor]]
address = %[4]q
peer-asn = %[5]d
description = "upstream v6"
import = "accept-all"
max-prefixes = %[6]d
`, lab.RouterASN, lab.R1v4, lab.H2v4, lab.H2v6, lab.UpstreamASN, maxPrefixes))
	if err != nil {
		return s, err
	}
	step("starting xdprouterd in r (config %s)", cfg)
	d, err := l.Start("r", "xdprouterd", daemon, "--config", cfg)
	if err != nil {
		return s, err
	}
	defer func() {
		if err != nil {
			fmt.Printf("lab: xdprouterd output:\n%s", d.Out.String())
		}
	}()
	var st api.Status
	start := time.Now()
	lastReport := start
	err = lab.PollEvery(ctx, 300*time.Second, 250*time.Millisecond, func() error {
		if exited, err := d.Exited(); exited {
			return fmt.Errorf("xdprouterd exited: %v", err)
		}
		if err := l.Ctl("r", ctl, &st, "status"); err != nil {
			return err
		}
		if time.Since(lastReport) > 5*time.Second {
			lastReport = time.Now()
			var rcv uint64
			for _, p := range st.Peers {
				rcv += p.Received
			}
			step("%5.1fs: received %d, installed kernel %d+%d, xdp %d+%d, pending %d",
				time.Since(start).Seconds(), rcv, st.Routes.FIB4, st.Routes.FIB6, st.Routes.XDP4, st.Routes.XDP6, st.Routes.Pending)
		}
		if st.Routes.FIB4 != n4 || st.Routes.FIB6 != n6 || st.Routes.Pending > 0 {
			return fmt.Errorf("routes installed: %d+%d of %d+%d", st.Routes.FIB4, st.Routes.FIB6, n4, n6)
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	step("%d+%d BGP routes in the kernel and XDP after %v", n4, n6, time.Since(start).Round(time.Millisecond))
	step("try: ip netns exec %s %s --api 127.0.0.1:%s status   (while traffic runs)", l.NS("r"), ctl, lab.MetricsPort)

	step("sending traffic h1 → up for %v (UDP to random addresses in the table, pings)", duration)
	tctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	if err := l.Do("h1", func() error { return traffic(tctx, prefixes) }); err != nil {
		return s, err
	}
	for _, dst := range dsts {
		if err := l.Run("h1", "ping", "-c3", "-i0.2", "-W1", dst.String()); err != nil {
			return s, err
		}
	}
	if err := l.Run("h1", "ping", "-c3", "-i0.2", "-W1", lab.R1v4); err != nil { // local: kernel path
		return s, err
	}
	if ctx.Err() != nil {
		return s, errors.New("interrupted")
	}
	if err := l.Ctl("r", ctl, &st, "status"); err != nil {
		return s, err
	}
	s.routes = st.Routes.FIB4 + st.Routes.FIB6
	for _, c := range st.Stats {
		switch c.Action {
		case bpf.ActionRedirect:
			s.redirect += c.Packets
		case bpf.ActionPass:
			s.pass += c.Packets
		case bpf.ActionAborted:
			if c.Packets > 0 {
				return s, fmt.Errorf("XDP aborted %d packets", c.Packets)
			}
		}
	}
	if s.redirect == 0 {
		return s, errors.New("XDP redirected nothing")
	}
	if hold {
		r, h1 := "ip netns exec "+l.NS("r"), "ip netns exec "+l.NS("h1")
		fmt.Printf(`lab: holding; in another shell try:
  %[1]s %[2]s -p %[3]s neighbor
  %[1]s ip route show proto 200 | head
  %[1]s %[4]s --api 127.0.0.1:%[5]s routes 100.64.0.0/24
  %[1]s %[4]s --api 127.0.0.1:%[5]s lookup %[6]s
  %[1]s %[4]s --api 127.0.0.1:%[5]s stats
  %[7]s ping %[6]s
lab: Ctrl-C ends the lab and removes everything
`, r, filepath.Join(bin, "gobgp"), lab.GRPCPort, ctl, lab.MetricsPort, dsts[0], h1)
		<-ctx.Done()
		return s, d.Stop(60 * time.Second)
	}
	if hwm, err := peakRSS(d.Cmd.Process.Pid); err == nil {
		step("xdprouterd peak RSS %d MB", hwm>>20)
	}
	stopStart := time.Now()
	if err := d.Stop(60 * time.Second); err != nil {
		return s, fmt.Errorf("xdprouterd stop: %w", err)
	}
	step("xdprouterd stopped in %v (routes removed from the kernel)", time.Since(stopStart).Round(time.Millisecond))
	return s, nil
}

// traffic sends paced UDP datagrams from h1 to random addresses of the
// announced prefixes until ctx ends.
func traffic(ctx context.Context, prefixes []netip.Prefix) error {
	c4, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		return err
	}
	defer c4.Close()
	c6, err := net.ListenPacket("udp6", ":0")
	if err != nil {
		return err
	}
	defer c6.Close()
	payload := make([]byte, 64)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for range 20 {
			a := prefixes[rand.IntN(len(prefixes))].Addr().AsSlice()
			a[len(a)-1] = byte(1 + rand.IntN(250))
			dst, _ := netip.AddrFromSlice(a)
			c := c4
			if dst.Is6() {
				c = c6
			}
			if _, err := c.WriteTo(payload, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9))); err != nil {
				return err
			}
		}
	}
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM")
}
