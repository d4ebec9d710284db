package test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
)

// VLAN 100 between h1 and r, on top of their eth0 / eth1.
const (
	vlanR, vlanH1 = "10.100.1.1", "10.100.1.2"
	vlanH1MAC     = "02:00:00:01:00:64" // not eth0's: an untagged frame to it is another host's
)

// TestVLANForwardedByXDP: r's port eth1.100 is an 802.1Q VLAN device on
// eth1 (also a port). h1 pings h2 from its VLAN address: XDP on eth1 takes
// the tagged requests as arriving on eth1.100 and sends them out of eth2
// untagged; the replies, routed by the kernel's route via eth1.100, leave
// eth1 tagged 100 with h1's VLAN MAC, pushed by XDP. xdprouterctl lookup
// --in eth1.100 agrees with the program and the kernel.
func TestVLANForwardedByXDP(t *testing.T) {
	r := newLab(t)
	if err := r.Run("r", "ip", "link", "add", "link", "eth1", "name", "eth1.100", "type", "vlan", "id", "100"); err != nil {
		if strings.Contains(err.Error(), "not supported") || strings.Contains(err.Error(), "Unknown device type") {
			t.Skipf("skipping: no 802.1Q VLAN devices in this kernel (CONFIG_VLAN_8021Q): %v", err)
		}
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"h1", "ip", "link", "add", "link", "eth0", "name", "eth0.100", "address", vlanH1MAC, "type", "vlan", "id", "100"},
		// The tag in the frame, not in veth's offload metadata: XDP on r's
		// eth1 sees what a NIC without VLAN stripping delivers.
		{"h1", "ethtool", "-K", "eth0", "txvlan", "off"},
		{"h1", "ip", "addr", "add", vlanH1 + "/24", "dev", "eth0.100"},
		{"h1", "ip", "link", "set", "eth0.100", "up"},
		{"h1", "ip", "route", "add", "10.0.2.0/24", "via", vlanR, "src", vlanH1},
		{"r", "ip", "addr", "add", vlanR + "/24", "dev", "eth1.100"},
		{"r", "ip", "link", "set", "eth1.100", "up"},
		{"r", "ping", "-c1", "-W2", vlanH1}, // r learns h1's VLAN MAC (forwarding is off)
	} {
		if err := r.Run(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	r.ports = []string{"eth1", "eth1.100", "eth2"}
	r.start("")

	ifindex := map[string]int{}
	err := r.Do("r", func() error {
		for _, n := range []string{"eth1", "eth1.100", "eth2"} {
			l, err := netlink.LinkByName(n)
			if err != nil {
				return err
			}
			ifindex[n] = l.Attrs().Index
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The XDP program, the model and the kernel agree on both directions.
	for _, c := range []struct {
		dst, from, in, out string
		vlan               uint16
	}{
		{lab.H2v4, vlanH1, "eth1.100", "eth2", 0},
		{vlanH1, lab.H2v4, "eth2", "eth1.100", 100},
	} {
		var e api.Explain
		r.poll(5*time.Second, func() error {
			e = api.Explain{}
			if err := r.ctl(&e, "lookup", c.dst, "--from", c.from, "--in", c.in, "--proto", "1"); err != nil {
				return err
			}
			if e.Program == nil || e.Program.Action != bpf.ActionRedirect {
				b, _ := json.Marshal(e)
				return fmt.Errorf("lookup %s --from %s --in %s: %s", c.dst, c.from, c.in, b)
			}
			return nil
		})
		if e.Program.Egress != ifindex[c.out] || e.Program.VLAN != c.vlan {
			t.Errorf("lookup %s --in %s: program out of ifindex %d tagged %d, want %s (%d) tagged %d",
				c.dst, c.in, e.Program.Egress, e.Program.VLAN, c.out, ifindex[c.out], c.vlan)
		}
		if e.Kernel == nil || e.Kernel.Ifindex != ifindex[c.out] {
			t.Errorf("lookup %s --in %s: the kernel's route %+v, want out of %s", c.dst, c.in, e.Kernel, c.out)
		}
		if len(e.Flags) > 0 {
			t.Errorf("lookup %s --in %s: %v", c.dst, c.in, e.Flags)
		}
	}

	// Real traffic: h2 is resolved by the kernel on the first packets.
	r.poll(5*time.Second, func() error { return r.Run("h1", "ping", "-c1", "-W1", "-I", vlanH1, lab.H2v4) })
	r.waitRedirect(lab.H2v4)
	before := r.counter(bpf.ActionRedirect, "")
	unknown := r.counter(bpf.ActionPass, bpf.ReasonVLANUnknown)
	if err := r.Run("h1", "ping", "-c5", "-i0.05", "-W1", "-I", vlanH1, lab.H2v4); err != nil {
		t.Fatal(err)
	}
	// 5 requests in on eth1.100 and 5 replies out of it, all by XDP.
	if got := r.counter(bpf.ActionRedirect, "") - before; got != 10 {
		t.Errorf("redirected %d packets for 5 pings over VLAN 100, want 10", got)
	}
	if got := r.counter(bpf.ActionPass, bpf.ReasonVLANUnknown) - unknown; got != 0 {
		t.Errorf("vlan_unknown +%d during the pings, want 0", got)
	}

	// A VLAN r has no port for goes to the kernel, counted.
	for _, c := range [][]string{
		{"h1", "ip", "link", "add", "link", "eth0", "name", "eth0.300", "type", "vlan", "id", "300"},
		{"h1", "ip", "addr", "add", "10.30.0.2/24", "dev", "eth0.300"},
		{"h1", "ip", "link", "set", "eth0.300", "up"},
	} {
		if err := r.Run(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	_ = r.Run("h1", "ping", "-c2", "-i0.05", "-W1", "10.30.0.1") // nobody answers on VLAN 300
	if got := r.counter(bpf.ActionPass, bpf.ReasonVLANUnknown) - unknown; got == 0 {
		t.Error("frames of VLAN 300 (no port) not counted as vlan_unknown")
	}
}

// TestVLANUnknownCounted: tagged frames of VLANs r has no port for reach
// the live program on eth1 and are passed to the kernel, counted as
// vlan_unknown (802.1Q) and vlan_other (802.1ad), never forwarded. Runs
// without kernel VLAN support: the frames come from a packet socket.
func TestVLANUnknownCounted(t *testing.T) {
	r := newLab(t)
	r.start("")
	var rMAC, hMAC net.HardwareAddr
	if err := r.Do("r", func() error {
		i, err := net.InterfaceByName("eth1")
		rMAC = i.HardwareAddr
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.Do("h1", func() error {
		i, err := net.InterfaceByName("eth0")
		hMAC = i.HardwareAddr
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tpid   uint16
		reason string
	}{
		{0x8100, bpf.ReasonVLANUnknown},
		{0x88a8, bpf.ReasonVLANOther},
	} {
		frame := tagFrame(rMAC, hMAC, c.tpid, 100, netip.MustParseAddr(lab.H1v4), netip.MustParseAddr(lab.H2v4))
		before, redirects := r.counter(bpf.ActionPass, c.reason), r.counter(bpf.ActionRedirect, "")
		f, err := r.StartFlow("h1", "eth0", [][]byte{frame}, 2000)
		if err != nil {
			t.Fatal(err)
		}
		r.poll(5*time.Second, func() error {
			if f.Sent() < 20 {
				return fmt.Errorf("%d frames sent", f.Sent())
			}
			return nil
		})
		if err := f.Stop(); err != nil {
			t.Fatal(err)
		}
		sent := f.Sent()
		r.poll(5*time.Second, func() error {
			if got := r.counter(bpf.ActionPass, c.reason) - before; got != sent {
				return fmt.Errorf("TPID %#x: %s +%d, want +%d (the frames sent)", c.tpid, c.reason, got, sent)
			}
			return nil
		})
		if got := r.counter(bpf.ActionRedirect, "") - redirects; got != 0 {
			t.Errorf("TPID %#x: %d frames redirected, want none", c.tpid, got)
		}
	}
}

// tagFrame is a UDP datagram src → dst (udp4's) in an Ethernet frame with
// one tag.
func tagFrame(dmac, smac net.HardwareAddr, tpid, vid uint16, src, dst netip.Addr) []byte {
	f := udp4(src, dst, 1000, 2000, 0)
	b := append(append([]byte{}, dmac...), smac...)
	b = binary.BigEndian.AppendUint16(b, tpid)
	b = binary.BigEndian.AppendUint16(b, vid)
	return append(b, f[12:]...) // EtherType 0x0800 and the datagram
}
