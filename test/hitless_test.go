package test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/bpf/trafficgen"
	"github.com/xdprouter/xdprouter/lab"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// pinned gives r's daemon a pin path on a bpf filesystem of the test's
// own (mounted in the root mount namespace, so it outlives every daemon
// process: `ip netns exec` gives each its own /sys) and returns it.
func (r *router) pinned() string {
	r.t.Helper()
	mnt := r.t.TempDir()
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		r.t.Skipf("skipping: cannot mount bpffs: %v", err)
	}
	r.t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	pin := filepath.Join(mnt, "xdprouter")
	r.edit = func(s string) string {
		return strings.Replace(s, `pin-path = ""`, fmt.Sprintf("pin-path = %q", pin), 1)
	}
	return pin
}

// pinnedMaps reads the pinned state maps as raw bytes, by map and key
// (the counters excepted): equal dumps mean nothing was rewritten
// differently. (Neighbors mirror the kernel's neighbor table, which may
// gain or lose entries meanwhile: diffMaps compares those both have.)
func pinnedMaps(t *testing.T, pin string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, name := range []string{"routes_v4", "routes_v6", "nhgs", "nexthops", "nh_gateways", "neighbors", "ifaces", "tx_ports"} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(pin, name), nil)
		if err != nil {
			t.Fatalf("open pinned map %s: %v", name, err)
		}
		entries := map[string]string{}
		k, v := make([]byte, m.KeySize()), make([]byte, m.ValueSize())
		it := m.Iterate()
		for it.Next(&k, &v) {
			if allZero(v) && m.Type() == ebpf.Array {
				continue
			}
			entries[string(k)] = string(v)
		}
		if err := it.Err(); err != nil {
			t.Fatalf("iterate %s: %v", name, err)
		}
		m.Close()
		out[name] = entries
	}
	return out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func diffMaps(a, b map[string]map[string]string) string {
	var d []string
	for name, am := range a {
		bm := b[name]
		for k, v := range am {
			if bv, ok := bm[k]; !ok {
				if name == "neighbors" {
					continue // the kernel's neighbor table may change meanwhile
				}
				d = append(d, fmt.Sprintf("%s: key %x gone", name, k))
			} else if bv != v {
				d = append(d, fmt.Sprintf("%s: key %x: %x -> %x", name, k, v, bv))
			}
		}
		for k := range bm {
			if _, ok := am[k]; !ok && name != "neighbors" {
				d = append(d, fmt.Sprintf("%s: key %x new", name, k))
			}
		}
	}
	if len(d) > 10 {
		d = append(d[:10], fmt.Sprintf("... %d differences", len(d)))
	}
	return strings.Join(d, "\n")
}

// flow sends UDP frames from h1 through r to h2 (to h2's own address, a
// connected route, and to dst4, a BGP route via h2) at a steady rate and
// counts what h2 received (its Udp NoPorts: nothing listens on port 9).
type flow struct {
	*lab.Flow
	r    *router
	base uint64
}

func linkMAC(t *testing.T, r *router, role, ifname string) net.HardwareAddr {
	t.Helper()
	out, err := r.Output(role, "ip", "-j", "link", "show", ifname)
	if err != nil {
		t.Fatal(err)
	}
	var ls []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 1 {
		t.Fatalf("ip -j link show %s in %s: %v %q", ifname, role, err, out)
	}
	mac, err := net.ParseMAC(ls[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

func (r *router) udpNoPorts(role string) uint64 {
	r.t.Helper()
	out, err := r.Output(role, "cat", "/proc/net/snmp")
	if err != nil {
		r.t.Fatal(err)
	}
	n, err := lab.SNMPCounter(out, "Udp", "NoPorts")
	if err != nil {
		r.t.Fatalf("%s: %v", role, err)
	}
	return n
}

// startFlow starts sending at pps.
func (r *router) startFlow(pps float64) *flow {
	t := r.t
	t.Helper()
	src, dst := linkMAC(t, r, "h1", "eth0"), linkMAC(t, r, "r", "eth1")
	var frames [][]byte
	for _, d := range []string{lab.H2v4, dst4} {
		frames = append(frames, trafficgen.Config{SrcMAC: src, DstMAC: dst, Src: netip.MustParseAddr(lab.H1v4),
			Dst: netip.MustParseAddr(d), Mode: trafficgen.Fixed}.Frame())
	}
	base := r.udpNoPorts("h2")
	lf, err := r.StartFlow("h1", "eth0", frames, pps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lf.Stop() })
	return &flow{Flow: lf, r: r, base: base}
}

// lost stops the flow and returns how many frames h2 did not receive,
// once its counter has caught up (or stayed still for a while).
func (f *flow) lost() (sent, lost int64) {
	f.r.t.Helper()
	if err := f.Stop(); err != nil {
		f.r.t.Fatalf("sender: %v", err)
	}
	sent = int64(f.Sent())
	var last uint64
	stillSince := time.Now()
	_ = lab.PollEvery(context.Background(), 10*time.Second, 10*time.Millisecond, func() error {
		got := f.r.udpNoPorts("h2") - f.base
		if int64(got) >= sent {
			return nil
		}
		if got != last {
			last, stillSince = got, time.Now()
		}
		if time.Since(stillSince) > 500*time.Millisecond {
			return nil // nothing more in flight
		}
		return errors.New("frames in flight")
	})
	return sent, sent - int64(f.r.udpNoPorts("h2")-f.base)
}

// routeMonitor records the kernel's route messages in r.
func (r *router) routeMonitor() *lab.Proc {
	r.t.Helper()
	p, err := r.Start("r", "ip monitor", "ip", "monitor", "route")
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func deletions(p *lab.Proc) []string {
	var out []string
	for _, l := range strings.Split(p.Out.String(), "\n") {
		if strings.HasPrefix(l, "Deleted") {
			out = append(out, l)
		}
	}
	return out
}

// settled waits until the restarted daemon has re-learned every route
// (both sinks complete, nothing pending, none left as the previous
// instance's).
func (r *router) settled(what string) {
	r.t.Helper()
	r.poll(60*time.Second, func() error {
		s := r.status()
		if s.Routes.XDP4 < nV4 || s.Routes.XDP6 < nV6 || s.Routes.Pending != 0 || s.Routes.Failed != 0 {
			return fmt.Errorf("%s: %+v", what, s.Routes)
		}
		var rs []xsync.RouteInfo
		if err := r.ctl(&rs, "routes"); err != nil {
			return err
		}
		stale := 0
		for _, ri := range rs {
			if strings.Contains(ri.Source, "previous instance") {
				stale++
			}
		}
		if stale > 0 {
			return fmt.Errorf("%s: %d routes not re-learned yet", what, stale)
		}
		return nil
	})
}

// hashSeed is the ECMP hash seed the running daemon logged at start.
func (r *router) hashSeed() string {
	r.t.Helper()
	m := regexp.MustCompile(`msg="ECMP hash seed".* seed=(\d+)`).FindStringSubmatch(r.daemon.Out.String())
	if m == nil {
		r.t.Fatalf("xdprouterd logged no ECMP hash seed:\n%s", r.daemon.Out.String())
	}
	return m[1]
}

// TestHitlessRestart: with the dataplane pinned, XDP forwards across a
// kill -9 of xdprouterd and its restart, across SIGTERM and a start, and
// across an upgrade to a program whose pinned maps have another layout
// version (rebuilt side by side and swapped in): no frame lost, no kernel
// route deleted, the pinned maps byte for byte as before, the ECMP hash
// seed the same (flows stay on their members). Two daemons on
// one pin path: the second refuses. --teardown removes everything.
func TestHitlessRestart(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	pin := r.pinned()
	if _, err := r.StartBIRD(r.peer(up1, announced(nV4, nV6))); err != nil {
		t.Fatal(err)
	}
	cfg := neighbors("", up1)
	r.start(cfg)
	r.waitRoutes("first start", nV4, nV6)
	r.pingXDP(dst4)
	r.pingXDP(lab.H2v4)
	seed := r.hashSeed()

	restarts := []struct {
		name string
		stop func()
	}{
		{"kill -9", func() {
			if err := r.daemon.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			r.poll(10*time.Second, func() error {
				if exited, _ := r.daemon.Exited(); !exited {
					return errors.New("still running")
				}
				return nil
			})
		}},
		{"SIGTERM", func() {
			if err := r.daemon.Stop(30 * time.Second); err != nil {
				t.Fatalf("stop: %v\n%s", err, r.daemon.Out.String())
			}
		}},
		{"upgrade to another map layout", func() {
			if err := r.daemon.Stop(30 * time.Second); err != nil {
				t.Fatalf("stop: %v", err)
			}
			// What a new version with another layout finds.
			m, err := ebpf.LoadPinnedMap(filepath.Join(pin, "meta"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			v := make([]byte, m.ValueSize()) // magic, version, ...
			if err := m.Lookup(uint32(0), &v); err != nil {
				t.Fatal(err)
			}
			binary.NativeEndian.PutUint32(v[4:], binary.NativeEndian.Uint32(v[4:])+1)
			if err := m.Put(uint32(0), v); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, rs := range restarts {
		before := pinnedMaps(t, pin)
		mon := r.routeMonitor()
		f := r.startFlow(20000)
		// Some traffic before, while the daemon is gone, and after.
		waitSent := func(n uint64) {
			r.poll(10*time.Second, func() error {
				if f.Sent() < n {
					return errors.New("sending")
				}
				return nil
			})
		}
		waitSent(2000)
		rs.stop()
		dead := f.Sent()
		waitSent(dead + 20000) // about a second without a daemon
		r.start(cfg)
		r.settled("after " + rs.name)
		if got := r.hashSeed(); got != seed {
			t.Errorf("%s: ECMP hash seed %s, before %s: flows would move", rs.name, got, seed)
		}
		waitSent(f.Sent() + 2000)
		sent, lost := f.lost()
		if err := mon.Stop(5 * time.Second); err != nil && !isExit(err) {
			t.Errorf("ip monitor: %v", err)
		}
		msgs := strings.Split(strings.TrimSpace(mon.Out.String()), "\n")
		t.Logf("%s: %d frames sent, %d lost; %d route messages, first %q", rs.name, sent, lost, len(msgs), msgs[0])
		if lost != 0 {
			t.Errorf("%s: %d of %d frames lost", rs.name, lost, sent)
		}
		if d := deletions(mon); len(d) > 0 {
			t.Errorf("%s: %d kernel routes deleted, first %q", rs.name, len(d), d[0])
		}
		m := r.metrics()
		for _, want := range []string{
			`xdprouter_route_writes_total{dest="kernel",op="install"} 0`,
			`xdprouter_route_writes_total{dest="kernel",op="delete"} 0`,
			`xdprouter_route_writes_total{dest="xdp",op="write"} 0`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("%s: the restarted daemon rewrote routes: metrics lack %q", rs.name, want)
			}
		}
		if d := diffMaps(before, pinnedMaps(t, pin)); d != "" {
			t.Errorf("%s: pinned maps changed:\n%s", rs.name, d)
		}
		if !strings.Contains(r.daemon.Out.String(), "took over") {
			t.Errorf("%s: the daemon did not report taking over the pinned dataplane", rs.name)
		}
	}

	// A second daemon on the same pin path (its own API ports) refuses,
	// naming why.
	second, err := lab.DaemonConfigFile(t.TempDir(), r.ports, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(lab.MetricsPort, "9189", lab.GRPCPort, "50061").Replace(r.edit(string(b)))
	if err := os.WriteFile(second, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := r.Output("r", "timeout", "30", filepath.Join(bin, "xdprouterd"), "--config", second)
	if err == nil || !strings.Contains(err.Error(), "in use by another xdprouterd") {
		t.Errorf("second daemon on the pin path: %v\n%s", err, out)
	}

	// Teardown: refused while the daemon runs; after it stopped, nothing
	// is left: no XDP on the ports, no pins, no kernel routes of ours.
	if out, err := r.Output("r", filepath.Join(bin, "xdprouterd"), "--teardown", "--config", r.config); err == nil {
		t.Errorf("teardown while the daemon runs succeeded:\n%s", out)
	}
	if err := r.daemon.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if k4, _ := r.kernelBGPRoutes(); k4 != nV4 {
		t.Errorf("after stop the kernel has %d BGP routes, want %d kept", k4, nV4)
	}
	if out, err := r.Output("r", filepath.Join(bin, "xdprouterd"), "--teardown", "--config", r.config); err != nil {
		t.Fatalf("teardown: %v\n%s", err, out)
	}
	if k4, k6 := r.kernelBGPRoutes(); k4+k6 != 0 {
		t.Errorf("after teardown the kernel has %d+%d routes of ours", k4, k6)
	}
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin path after teardown: %v", err)
	}
	r.poll(5*time.Second, func() error {
		out, err := r.Output("r", "ip", "link", "show", "eth1")
		if err != nil {
			return err
		}
		if strings.Contains(out, "xdp") {
			return errors.New("XDP still on eth1 after teardown")
		}
		return nil
	})
}

func isExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
