package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf/trafficgen"
	"github.com/xdprouter/xdprouter/lab"
)

// BenchmarkRestart: xdprouterd with a full table is killed (kill -9) and
// started again while h1 sends 50k frames/s through r to an address of the
// table (kernel forwarding off in r, so only XDP forwards). Side by side in
// one run: with the dataplane pinned (hitless restart) and without pins
// (the program dies with the process; the restarted daemon attaches and
// fills fresh maps). Reported: frames lost, the longest gap in delivery,
// how long the restarted daemon took until its XDP state was complete
// (taken over, or written) and until BGP had re-learned every route, and
// the routes it wrote.
func BenchmarkRestart(b *testing.B) {
	if err := rootAndBIRD(); err != nil {
		b.Skip("restart benchmark skipped:", err)
	}
	table, n4, n6 := benchTable(b, "XDPROUTER_BENCH_TABLE", defaultTable)
	bins := buildDaemon(b)
	b.Run(fmt.Sprintf("table=%d+%d", n4, n6), func(b *testing.B) {
		var res []restartResult
		for b.Loop() {
			res = res[:0]
			for _, pinned := range []bool{true, false} {
				r, err := restartOnce(b, bins, table, n4, n6, pinned)
				if err != nil {
					b.Fatal(err)
				}
				res = append(res, r)
			}
		}
		b.ReportMetric(float64(res[0].lost), "pinned-lost")
		b.ReportMetric(float64(res[1].lost), "unpinned-lost")
		printRestart(res)
	})
}

type restartResult struct {
	mode              string
	sent, lost        int64
	gap               time.Duration // longest time without a frame delivered
	complete, learned time.Duration // since the kill: XDP state complete; BGP re-learned all
	first             time.Duration // the first convergence, for comparison
	xdpWrites         uint64
	kernelInstalls    uint64
}

func restartOnce(b *testing.B, bins string, table []netip.Prefix, n4, n6 int, pinned bool) (restartResult, error) {
	res := restartResult{mode: "unpinned"}
	dir, err := os.MkdirTemp("", "xbr-")
	if err != nil {
		return res, err
	}
	cfg := daemonConfig()
	cfg = strings.Replace(cfg, `interfaces = ["eth2"]`, `interfaces = ["eth1", "eth2"]`, 1)
	if pinned {
		res.mode = "pinned"
		mnt := filepath.Join(dir, "bpf")
		if err := os.Mkdir(mnt, 0o700); err != nil {
			return res, err
		}
		if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
			return res, fmt.Errorf("mount bpffs: %w", err)
		}
		defer unix.Unmount(mnt, unix.MNT_DETACH)
		cfg = strings.Replace(cfg, `pin-path = ""`, fmt.Sprintf("pin-path = %q", filepath.Join(mnt, "xdprouter")), 1)
	}
	g := &rig{kind: kindXDP, l: lab.New("xr" + res.mode[:1]), dir: dir}
	defer g.close()
	if err := g.l.Basic(); err != nil {
		return res, err
	}
	path := filepath.Join(dir, "xdprouter.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return res, err
	}
	start := func() error {
		g.router, err = g.l.Start("r", "xdprouterd", filepath.Join(bins, "xdprouterd"), "--config", path, "--log-level", "warn")
		if err != nil {
			return err
		}
		return lab.Poll(b.Context(), 30*time.Second, func() error {
			if exited, err := g.router.Exited(); exited {
				return fmt.Errorf("xdprouterd exited: %v\n%s", err, g.router.Out.String())
			}
			var st api.Status
			return g.status(&st)
		})
	}
	if err := start(); err != nil {
		return res, err
	}
	if g.base, err = g.kernelCounts(); err != nil {
		return res, err
	}
	c, err := g.claims()
	if err != nil {
		return res, err
	}
	g.base.x4, g.base.x6 = c.x4, c.x6
	conv, err := g.converge(b, table, n4, n6, nil)
	if err != nil {
		return res, err
	}
	res.first = conv.all

	// The flow: h1 → r → h2, to an address of the table's first IPv4
	// prefix; h2 (forwarding off) counts it in IpInAddrErrors.
	var dst netip.Addr
	for _, p := range table {
		if p.Addr().Is4() && p.Bits() <= 30 {
			dst = p.Addr().Next()
			break
		}
	}
	h1, err1 := ifMAC(g.l, "h1", "eth0")
	r1, err2 := ifMAC(g.l, "r", "eth1")
	if err := errors.Join(err1, err2); err != nil {
		return res, err
	}
	frame := trafficgen.Config{SrcMAC: h1, DstMAC: r1, Src: netip.MustParseAddr(lab.H1v4), Dst: dst, Mode: trafficgen.Fixed}.Frame()
	received := func() (uint64, error) { return inAddrErrors(g.up.Cmd.Process.Pid) }
	base, err := received()
	if err != nil {
		return res, err
	}
	f, err := g.l.StartFlow("h1", "eth0", [][]byte{frame}, 50000)
	if err != nil {
		return res, err
	}
	defer f.Stop()
	// Delivery samples every 10 ms until the end: the longest gap.
	type sample struct {
		t time.Time
		n uint64
	}
	var samples []sample
	sampleDone := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampleDone)
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tk.C:
			}
			if n, err := received(); err == nil {
				samples = append(samples, sample{time.Now(), n})
			}
		}
	}()
	err = lab.Poll(b.Context(), 10*time.Second, func() error {
		if n, err := received(); err != nil || n < base+5000 {
			return fmt.Errorf("flow not through yet (%v)", err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}

	killed := time.Now()
	if err := g.router.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return res, err
	}
	if err := lab.Poll(b.Context(), 10*time.Second, func() error {
		if exited, _ := g.router.Exited(); !exited {
			return errors.New("still running")
		}
		return nil
	}); err != nil {
		return res, err
	}
	if err := start(); err != nil {
		return res, err
	}
	var st api.Status
	err = lab.PollEvery(b.Context(), 5*time.Minute, 50*time.Millisecond, func() error {
		if err := g.status(&st); err != nil {
			return err
		}
		rt := st.Routes
		x := rt.XDP4 - g.base.x4 + rt.XDP6 - g.base.x6
		if res.complete == 0 && x >= n4+n6 {
			res.complete = time.Since(killed)
		}
		if res.complete == 0 || rt.Stale > 0 || rt.Pending > 0 {
			return fmt.Errorf("XDP %d of %d, %d stale, %d pending", x, n4+n6, rt.Stale, rt.Pending)
		}
		res.learned = time.Since(killed)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("%s: after the restart: %w\n%s", res.mode, err, g.router.Out.String())
	}
	res.xdpWrites, res.kernelInstalls = st.Routes.XDPWrites, st.Routes.FIBInstalls
	// A second more of traffic, then drain.
	sentAt := f.Sent()
	_ = lab.Poll(b.Context(), 10*time.Second, func() error {
		if f.Sent() < sentAt+50000 {
			return errors.New("sending")
		}
		return nil
	})
	if err := f.Stop(); err != nil {
		return res, err
	}
	res.sent = int64(f.Sent())
	var last uint64
	still := time.Now()
	_ = lab.PollEvery(b.Context(), 10*time.Second, 10*time.Millisecond, func() error {
		n, err := received()
		if err != nil {
			return err
		}
		if int64(n-base) >= res.sent {
			return nil
		}
		if n != last {
			last, still = n, time.Now()
		}
		if time.Since(still) > 500*time.Millisecond {
			return nil
		}
		return errors.New("in flight")
	})
	close(stopSampling)
	<-sampleDone
	n, err := received()
	if err != nil {
		return res, err
	}
	res.lost = res.sent - int64(n-base)
	// The longest time between two samples that saw the count move.
	for i, prev := 1, 0; i < len(samples); i++ {
		if samples[i].n != samples[prev].n {
			res.gap = max(res.gap, samples[i].t.Sub(samples[prev].t))
			prev = i
		}
	}
	return res, nil
}

func ifMAC(l *lab.Lab, role, ifname string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := l.Do(role, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err == nil {
			mac = ifc.HardwareAddr
		}
		return err
	})
	return mac, err
}

func printRestart(res []restartResult) {
	fmt.Println("\nkill -9 and restart of xdprouterd under 50k frames/s, full table (kernel forwarding off)")
	fmt.Println("(times since the kill; max gap: the longest time between two 10 ms samples of h2's counter that saw it move)")
	fmt.Printf("%-9s %9s %9s %10s %13s %12s %13s %11s %15s\n", "mode", "sent", "lost", "max gap", "XDP complete", "BGP learned", "first conv.", "XDP writes", "kernel installs")
	for _, r := range res {
		fmt.Printf("%-9s %9d %9d %10s %12.2fs %11.2fs %12.2fs %11d %15d\n", r.mode, r.sent, r.lost, r.gap.Round(time.Millisecond),
			r.complete.Seconds(), r.learned.Seconds(), r.first.Seconds(), r.xdpWrites, r.kernelInstalls)
	}
}
