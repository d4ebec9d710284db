package test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
)

// xdp runs the daemon's own XDP program (found through its pinned link)
// on test frames, as if they arrived on a port: the real decision,
// without sending anything.
type xdp struct {
	r       *router
	prog    *ebpf.Program
	ifindex map[string]int
	mac     map[string]net.HardwareAddr
}

func (r *router) xdp(pin string) *xdp {
	t := r.t
	t.Helper()
	x := &xdp{r: r, ifindex: map[string]int{}, mac: map[string]net.HardwareAddr{}}
	for _, p := range r.ports {
		out, err := r.Output("r", "cat", "/sys/class/net/"+p+"/ifindex")
		if err != nil {
			t.Fatal(err)
		}
		var idx int
		fmt.Sscan(strings.TrimSpace(out), &idx)
		x.ifindex[p] = idx
		x.mac[p] = linkMAC(t, r, "r", p)
	}
	var prog *ebpf.Program
	r.poll(10*time.Second, func() error {
		matches, _ := filepath.Glob(filepath.Join(pin, "xdp-*"))
		if len(matches) == 0 {
			return errors.New("no pinned XDP link yet")
		}
		l, err := link.LoadPinnedLink(matches[0], nil)
		if err != nil {
			return err
		}
		defer l.Close()
		info, err := l.Info()
		if err != nil {
			return err
		}
		prog, err = ebpf.NewProgramFromID(info.Program)
		return err
	})
	t.Cleanup(func() { prog.Close() })
	x.prog = prog
	return x
}

// xdpMD is struct xdp_md, the context BPF_PROG_TEST_RUN takes.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// run returns the verdict for frame arriving on port (its MAC as the
// destination).
func (x *xdp) run(port string, frame []byte) uint32 {
	x.r.t.Helper()
	copy(frame, x.mac[port])
	var ret uint32
	err := x.r.Do("r", func() error { // the ingress ifindex is resolved in the caller's namespace
		var err error
		ret, err = x.prog.Run(&ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256),
			Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(x.ifindex[port])}})
		return err
	})
	if err != nil {
		x.r.t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret
}

const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

// udp4 is an Ethernet + IPv4 + UDP frame (MACs set by run).
func udp4(src, dst netip.Addr, sport, dport uint16, payload int) []byte {
	b := make([]byte, 14+20+8+payload)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payload))
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	setIPv4Checksum(ip)
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+payload))
	return b
}

// setIPv4Checksum fills in the checksum of the IPv4 header (no options)
// at the start of ip.
func setIPv4Checksum(ip []byte) {
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
}

// TestURPFAgreesWithKernel: with uRPF on eth1 in XDP and the same
// rp_filter mode in the kernel, for 2,000 random sources arriving on eth1
// (routes via eth1, via eth2, ECMP over both, blackhole, unreachable,
// none, a default route added half-way), XDP drops exactly the packets
// the kernel's input route lookup refuses (`ip route get ... from SRC iif
// eth1`), in strict and in loose mode.
func TestURPFAgreesWithKernel(t *testing.T) {
	for _, mode := range []struct {
		name      string
		rpFilter  string
		urpfPorts string
	}{{"strict", "1", `urpf-ports = { eth1 = "strict" }`}, {"loose", "2", `urpf-ports = { eth1 = "loose" }`}} {
		t.Run(mode.name, func(t *testing.T) {
			r := newLab(t)
			pin := r.pinned()
			for _, c := range [][]string{
				// The kernel's input lookup of transit traffic needs
				// forwarding on (XDP forwards here either way).
				{"sysctl", "-qw", "net.ipv4.conf.all.forwarding=1"},
				{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
				{"sysctl", "-qw", "net.ipv4.conf.eth1.rp_filter=" + mode.rpFilter},
				{"ip", "route", "add", "198.18.0.0/24", "via", lab.H2v4},
				{"ip", "route", "add", "198.18.1.0/24", "via", lab.H1v4},
				{"ip", "route", "add", "198.18.2.0/24", "nexthop", "via", lab.H1v4, "nexthop", "via", lab.H2v4},
				{"ip", "route", "add", "blackhole", "198.18.3.0/24"},
				{"ip", "route", "add", "unreachable", "198.18.4.0/24"},
				{"ip", "route", "add", "198.18.5.0/24", "dev", "eth2"},
			} {
				if err := r.Run("r", c...); err != nil {
					t.Fatal(err)
				}
			}
			r.edit = chainEdit(r.edit, func(s string) string {
				return strings.Replace(s, "[dataplane]\n", "[dataplane]\n"+mode.urpfPorts+"\n", 1)
			})
			r.start("")
			// The API answers before the first snapshot is applied: wait
			// for the routes the sources are checked against.
			for _, a := range []string{lab.H1v4, lab.H2v4, "198.18.0.1", "198.18.1.1", "198.18.2.1", "198.18.3.1", "198.18.4.1", "198.18.5.1"} {
				r.waitDecision(a, "the route of "+a, func(d bpf.Decision) bool { return d.Prefix.IsValid() })
			}
			x := r.xdp(pin)
			ns, err := netns.GetFromName(r.NS("r"))
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			h, err := netlink.NewHandleAt(ns)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			dst := netip.MustParseAddr(lab.H2v4)
			rng := rand.New(rand.NewPCG(7, uint64(len(mode.name))))
			check := func(what string, n int) {
				disagree := 0
				for i := range n {
					var src netip.Addr
					if i%4 == 3 {
						src = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(223)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
					} else {
						src = netip.AddrFrom4([4]byte{198, 18, byte(rng.IntN(7)), byte(1 + rng.IntN(254))})
					}
					if i%50 == 0 {
						src = netip.MustParseAddr([]string{lab.H1v4, lab.H2v4, lab.R1v4, lab.R2v4}[i/50%4])
					}
					_, kerr := h.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{Iif: "eth1", SrcAddr: src.AsSlice()})
					ret := x.run("eth1", udp4(src, dst, 1000, 7, 10))
					kernelOK, xdpOK := kerr == nil, ret != xdpDrop
					if kernelOK != xdpOK {
						disagree++
						if disagree <= 5 {
							t.Errorf("%s: from %s on eth1: kernel %v, XDP verdict %d", what, src, kerr, ret)
						}
					}
				}
				if disagree > 0 {
					t.Errorf("%s: %d of %d sources disagree", what, disagree, n)
				}
			}
			check("without a default route", 1000)
			if err := r.Run("r", "ip", "route", "add", "default", "via", lab.H2v4); err != nil {
				t.Fatal(err)
			}
			r.waitDecision("8.8.8.8", "the default route in XDP", func(d bpf.Decision) bool { return d.Action == bpf.ActionRedirect })
			check("with a default route via eth2", 1000)
			if n := r.counter("drop", "urpf"); n == 0 {
				t.Error("no drop/urpf counted")
			}
			if n := r.counter("drop", "blackhole_source"); n == 0 {
				t.Error("no drop/blackhole_source counted")
			}
		})
	}
}

// chainEdit applies f after the edit already set (e.g. the pin path).
func chainEdit(prev, f func(string) string) func(string) string {
	return func(s string) string {
		if prev != nil {
			s = prev(s)
		}
		return f(s)
	}
}

// TestFilterPing: a config filter drops ICMP echo requests to h2 in XDP
// (pings fail, the rule counts them, nothing else is filtered); SIGHUP
// with the filter changed to rate-limit, then removed, applies live.
func TestFilterPing(t *testing.T) {
	r := newLab(t)
	filterConf := fmt.Sprintf(`
[[filter]]
name = "no-ping-h2"
dst = %q
protocol = "icmp"
icmp-type = 8
action = "drop"
`, lab.H2v4)
	r.start(filterConf)
	r.waitRedirect(lab.H2v4)
	before := r.counter("drop", "filter")
	if err := r.Run("h1", "ping", "-c3", "-i0.05", "-W1", lab.H2v4); err == nil {
		t.Error("ping to h2 went through the drop filter")
	}
	if got := r.counter("drop", "filter") - before; got != 3 {
		t.Errorf("drop/filter +%d for 3 pings, want +3", got)
	}
	var fs []api.Filter
	if err := r.ctl(&fs, "filters"); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Name != "no-ping-h2" || fs[0].Packets != 3 || !fs[0].InForce {
		t.Errorf("xdprouterctl filters = %+v, want no-ping-h2 with 3 packets", fs)
	}
	r.pingXDP(lab.H2v6) // other traffic flows

	// Reload without the filter: pings go through XDP again.
	if err := os.WriteFile(r.config, []byte(strings.Replace(mustRead(t, r.config), filterConf, "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.daemon.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.poll(10*time.Second, func() error {
		var fs []api.Filter
		if err := r.ctl(&fs, "filters"); err != nil {
			return err
		}
		if len(fs) != 0 {
			return fmt.Errorf("filters after reload: %+v", fs)
		}
		return nil
	})
	r.pingXDP(lab.H2v4)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
