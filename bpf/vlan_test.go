package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/route"
)

var (
	macTrunk = mustMAC("02:00:00:00:0c:01") // the parent's and its VLAN devices' MAC
	macGw100 = mustMAC("02:00:00:00:64:fe")
	macGw200 = mustMAC("02:00:00:00:c8:fe")
)

// vlanPorts is setupPorts plus a parent veth "pt" (no router port) with
// the VLAN ports pt.100 and pt.200.
type vlanPorts struct {
	ports
	parent, v100, v200 int
}

// vlan adds VLAN device name on parent. Without 802.1Q in the kernel
// (CONFIG_VLAN_8021Q, missing on some CI VMs) it adds a veth instead and
// makes d take it for the VLAN device: the XDP side is the same, only
// portVLAN's netlink query is not exercised.
func (n *testNS) vlan(tb testing.TB, d *Datapath, name string, parent, vid int) int {
	tb.Helper()
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent}, VlanId: vid}
	err := n.nl.LinkAdd(v)
	if errors.Is(err, unix.EOPNOTSUPP) {
		l, _ := n.veth(tb, name, name+"p")
		if err := n.nl.LinkSetHardwareAddr(l, macTrunk); err != nil {
			tb.Fatal(err)
		}
		fakeVLAN(d, l.Attrs().Index, vlanPort{parent: parent, vid: uint16(vid)})
		return l.Attrs().Index
	}
	if err != nil {
		tb.Fatalf("add VLAN %s: %v", name, err)
	}
	l, err := n.nl.LinkByName(name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := n.nl.LinkSetUp(l); err != nil {
		tb.Fatal(err)
	}
	return l.Attrs().Index
}

// fakeVLAN makes d see ifindex as VLAN port v.
func fakeVLAN(d *Datapath, ifindex int, v vlanPort) {
	d.egressMu.Lock()
	defer d.egressMu.Unlock()
	real := d.vlanOf
	d.vlanOf = func(i int) (vlanPort, bool, error) {
		if i == ifindex {
			return v, true, nil
		}
		return real(i)
	}
}

// setupVLANs adds the VLAN ports and routes through them: 10.100.0.0/16
// and 2001:db8:100::/48 via pt.100, 10.200.0.0/16 via pt.200 (gateways
// resolved), 10.201.0.0/24 connected on pt.200.
func setupVLANs(tb testing.TB, d *Datapath) vlanPorts {
	tb.Helper()
	p := vlanPorts{ports: setupPorts(tb, d)}
	setupTable(tb, d, p.ports)
	pt, _ := p.ns.veth(tb, "pt", "pt-peer")
	if err := p.ns.nl.LinkSetHardwareAddr(pt, macTrunk); err != nil {
		tb.Fatal(err)
	}
	p.parent = pt.Attrs().Index
	p.v100 = p.ns.vlan(tb, d, "pt.100", p.parent, 100)
	p.v200 = p.ns.vlan(tb, d, "pt.200", p.parent, 200)
	err := p.ns.Do(func() error {
		for _, v := range []int{p.v100, p.v200} {
			if err := d.SetInterface(v, macTrunk, 1500); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	for id, nh := range map[uint32]route.Egress{
		100: {Ifindex: p.v100, MAC: macGw100},
		200: {Ifindex: p.v200, MAC: macGw200},
		201: {Ifindex: p.v200, Connected: true},
	} {
		if err := d.SetNextHop(id, nh); err != nil {
			tb.Fatal(err)
		}
		if err := d.SetGroup(id, []uint32{id}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := d.UpdateRoutes([]route.Entry{
		{Prefix: pfx("10.100.0.0/16"), Group: 100},
		{Prefix: pfx("2001:db8:100::/48"), Group: 100},
		{Prefix: pfx("10.200.0.0/16"), Group: 200},
		{Prefix: pfx("10.201.0.0/24"), Group: 201},
	}); err != nil {
		tb.Fatal(err)
	}
	if err := d.SetNeighbor(p.v200, ip("10.201.0.9"), macNbr); err != nil {
		tb.Fatal(err)
	}
	return p
}

// tagged inserts an 802.1Q tag (or another TPID's) after the MACs.
func tagged(frame []byte, tpid, vid uint16) []byte {
	out := append([]byte(nil), frame[:12]...)
	out = binary.BigEndian.AppendUint16(out, tpid)
	out = binary.BigEndian.AppendUint16(out, vid)
	return append(out, frame[12:]...)
}

// untag removes the tag of a tagged frame.
func untag(frame []byte) []byte {
	return append(append([]byte(nil), frame[:12]...), frame[16:]...)
}

// TestVLAN: tagged frames on the parent arrive on their VLAN port; frames
// routed out of a VLAN port leave its parent tagged; the tag is popped,
// pushed or rewritten as the ports want, and everything else is untouched
// on its way to the kernel.
func TestVLAN(t *testing.T) {
	d := loadTest(t)
	p := setupVLANs(t, d)

	// tx_ports sends the VLAN ports' frames out of the parent.
	for _, v := range []int{p.v100, p.v200} {
		var out uint32
		if err := d.objs.TxPorts.Lookup(uint32(v), &out); err != nil || int(out) != p.parent {
			t.Fatalf("tx_ports[%d] = %d (%v), want the parent %d", v, out, err, p.parent)
		}
	}

	toPort := func(f []byte, mac net.HardwareAddr) []byte {
		f = append([]byte(nil), f...)
		copy(f, mac)
		return f
	}
	for _, tc := range []struct {
		name    string
		frame   []byte
		ingress int
		ret     uint32
		stat    string
		want    []byte // the frame sent: untagged, as checkRewrite expects, then tagged
		dmac    net.HardwareAddr
		smac    net.HardwareAddr
		outVID  uint16 // 0: untagged
	}{
		{name: "tagged in, untagged out (pop)", frame: tagged(toPort(v4("10.2.0.1").build(), macTrunk), 0x8100, 100),
			ingress: p.parent, ret: xdpRedirect, stat: "redirect/", dmac: macGwB, smac: macB},
		{name: "untagged in, tagged out (push)", frame: toPort(v4("10.200.0.1").build(), macA),
			ingress: p.a, ret: xdpRedirect, stat: "redirect/", dmac: macGw200, smac: macTrunk, outVID: 200},
		{name: "tagged in, tagged out (rewrite)", frame: tagged(toPort(v4("10.200.0.1").build(), macTrunk), 0x8100, 100),
			ingress: p.parent, ret: xdpRedirect, stat: "redirect/", dmac: macGw200, smac: macTrunk, outVID: 200},
		{name: "same VLAN (hairpin)", frame: tagged(toPort(v4("10.100.0.1").build(), macTrunk), 0x8100, 100),
			ingress: p.parent, ret: xdpRedirect, stat: "redirect/", dmac: macGw100, smac: macTrunk, outVID: 100},
		{name: "PCP and DEI bits in the tag", frame: tagged(toPort(v4("10.2.0.1").build(), macTrunk), 0x8100, 0xb000|100),
			ingress: p.parent, ret: xdpRedirect, stat: "redirect/", dmac: macGwB, smac: macB},
		{name: "connected, neighbor on the VLAN port", frame: toPort(v4("10.201.0.9").build(), macA),
			ingress: p.a, ret: xdpRedirect, stat: "redirect/", dmac: macNbr, smac: macTrunk, outVID: 200},
		{name: "IPv6 push", frame: toPort(v6("2001:db8:100::1").build(), macA),
			ingress: p.a, ret: xdpRedirect, stat: "redirect/", dmac: macGw100, smac: macTrunk, outVID: 100},
		{name: "IPv6 pop", frame: tagged(toPort(v6("2001:db8:2::1").build(), macTrunk), 0x8100, 200),
			ingress: p.parent, ret: xdpRedirect, stat: "redirect/", dmac: macGwB, smac: macB},
		{name: "unknown VLAN id", frame: tagged(toPort(v4("10.2.0.1").build(), macTrunk), 0x8100, 300),
			ingress: p.parent, ret: xdpPass, stat: "pass/vlan_unknown"},
		{name: "a VLAN id on another device", frame: tagged(toPort(v4("10.2.0.1").build(), macA), 0x8100, 100),
			ingress: p.a, ret: xdpPass, stat: "pass/vlan_unknown"},
		{name: "untagged on the parent (no router port)", frame: toPort(v4("10.2.0.1").build(), macTrunk),
			ingress: p.parent, ret: xdpPass, stat: "pass/vlan_unknown"},
		{name: "802.1ad", frame: tagged(toPort(v4("10.2.0.1").build(), macTrunk), 0x88a8, 100),
			ingress: p.parent, ret: xdpPass, stat: "pass/vlan_other"},
		{name: "stacked tags", frame: tagged(tagged(toPort(v4("10.2.0.1").build(), macTrunk), 0x8100, 100), 0x8100, 100),
			ingress: p.parent, ret: xdpPass, stat: "pass/vlan_other"},
		{name: "ARP on a VLAN", frame: tagged(toPort(v4("10.2.0.1").with(func(k *pkt) { k.ethertype = 0x0806 }).build(), macTrunk), 0x8100, 100),
			ingress: p.parent, ret: xdpPass, stat: "pass/not_ip"},
		{name: "truncated tag", frame: append(toPort(v4("10.2.0.1").build(), macTrunk)[:12], 0x81, 0x00, 0),
			ingress: p.parent, ret: xdpPass, stat: "pass/malformed"},
		{name: "another host on the VLAN", frame: tagged(toPort(v4("10.2.0.1").build(), macPeer), 0x8100, 100),
			ingress: p.parent, ret: xdpPass, stat: "pass/other_host"},
		{name: "local on the VLAN: tag kept", frame: tagged(toPort(v4("192.0.2.1").build(), macTrunk), 0x8100, 100),
			ingress: p.parent, ret: xdpPass, stat: "pass/local"},
		{name: "TTL 1 on the VLAN: tag kept", frame: tagged(toPort(v4("10.2.0.1").with(func(k *pkt) { k.ttl = 1 }).build(), macTrunk), 0x8100, 100),
			ingress: p.parent, ret: xdpPass, stat: "pass/ttl_exceeded"},
		{name: "too big for the VLAN port", frame: toPort(v4("10.200.0.1").with(func(k *pkt) { k.payload = 1600 }).build(), macA),
			ingress: p.a, ret: xdpPass, stat: "pass/too_big"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := statsMap(t, d)[tc.stat].Packets
			ret, out := checkedRun(t, d, tc.frame, tc.ingress, p.ns.Do)
			if ret != tc.ret {
				t.Fatalf("verdict %s, want %s", xdpNames[ret], xdpNames[tc.ret])
			}
			if got := statsMap(t, d)[tc.stat].Packets - before; got != 1 {
				t.Errorf("counter %s +%d, want +1", tc.stat, got)
			}
			if ret != xdpRedirect {
				if !bytes.Equal(out, tc.frame) {
					t.Errorf("frame modified on the way to the kernel\n%x\nwant\n%x", out, tc.frame)
				}
				return
			}
			in := tc.frame
			if binary.BigEndian.Uint16(in[12:]) == 0x8100 {
				in = untag(in)
			}
			if tc.outVID == 0 {
				checkRewrite(t, in, out, tc.dmac, tc.smac)
				return
			}
			if len(out) < 18 || binary.BigEndian.Uint16(out[12:]) != 0x8100 || binary.BigEndian.Uint16(out[14:]) != tc.outVID {
				t.Fatalf("sent %x, want tagged %d (PCP 0)", out, tc.outVID)
			}
			checkRewrite(t, in, untag(out), tc.dmac, tc.smac)
		})
	}
}

// TestVLANPortChanges: the parent as a router port itself forwards its
// untagged frames; a deleted VLAN port's tag goes to the kernel; uRPF and
// the ingress port are the VLAN port's.
func TestVLANPortChanges(t *testing.T) {
	d := loadTest(t)
	p := setupVLANs(t, d)
	onParent := func(f []byte) (uint32, []byte) { return checkedRun(t, d, f, p.parent, p.ns.Do) }
	plain := v4("10.2.0.1").build()
	copy(plain, macTrunk)

	// Strict uRPF on pt.100: 172.16.0.0/16 (the test source) is routed via
	// pt.200, so it is spoofed on pt.100 and fine on pt.200.
	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("172.16.0.0/16"), Group: 200}}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{p.v100, p.v200} {
		if err := d.SetURPF(v, URPFStrict); err != nil {
			t.Fatal(err)
		}
	}
	if ret, _ := onParent(tagged(plain, 0x8100, 100)); ret != xdpDrop {
		t.Errorf("strict uRPF, source via pt.200, in on pt.100: %s, want XDP_DROP", xdpNames[ret])
	}
	if ret, _ := onParent(tagged(plain, 0x8100, 200)); ret != xdpRedirect {
		t.Errorf("strict uRPF, source via pt.200, in on pt.200: %s, want XDP_REDIRECT", xdpNames[ret])
	}

	// The parent becomes a router port: its untagged frames are forwarded.
	if err := p.ns.Do(func() error { return d.SetInterface(p.parent, macTrunk, 1500) }); err != nil {
		t.Fatal(err)
	}
	if ret, _ := onParent(plain); ret != xdpRedirect {
		t.Errorf("untagged on the parent as a router port: %s, want XDP_REDIRECT", xdpNames[ret])
	}
	// ... and no longer: its VLAN ports keep it a trunk.
	if err := d.DeleteInterface(p.parent); err != nil {
		t.Fatal(err)
	}
	if ret, _ := onParent(plain); ret != xdpPass {
		t.Errorf("untagged on the parent after DeleteInterface: %s, want XDP_PASS", xdpNames[ret])
	}
	var it fwdIface
	if err := d.objs.Ifaces.Lookup(uint32(p.parent), &it); err != nil || it.Flags&uint8(fwdIfaceFlagsIFACE_F_TRUNK) == 0 {
		t.Errorf("parent's ifaces entry %+v (%v), want a trunk", it, err)
	}

	// A deleted VLAN port: its tag goes to the kernel, frames routed out
	// of it too.
	if err := d.DeleteInterface(p.v100); err != nil {
		t.Fatal(err)
	}
	before := statsMap(t, d)["pass/vlan_unknown"].Packets
	if ret, _ := onParent(tagged(plain, 0x8100, 100)); ret != xdpPass {
		t.Errorf("tagged for a deleted VLAN port: %s, want XDP_PASS", xdpNames[ret])
	}
	if got := statsMap(t, d)["pass/vlan_unknown"].Packets - before; got != 1 {
		t.Errorf("vlan_unknown +%d, want +1", got)
	}
	to100 := v4("10.100.0.1").build()
	copy(to100, macA)
	if ret, _ := checkedRun(t, d, to100, p.a, p.ns.Do); ret != xdpPass {
		t.Errorf("routed out of a deleted VLAN port: %s, want XDP_PASS", xdpNames[ret])
	}
	// The last VLAN port gone (and no XDP on the parent): no trunk entry.
	if err := d.DeleteInterface(p.v200); err != nil {
		t.Fatal(err)
	}
	if err := d.objs.Ifaces.Lookup(uint32(p.parent), &it); err == nil {
		t.Errorf("parent's ifaces entry %+v left after its last VLAN port", it)
	}
}

// TestVLANPinnedRestart: a restarted daemon takes the VLAN ports back from
// the pinned maps: their VLAN ids (next hops rewritten later keep pushing
// the tag), the trunk parent not taken for a port.
func TestVLANPinnedRestart(t *testing.T) {
	requireBPF(t)
	dir := bpffs(t)
	d := loadPinned(t, dir)
	ns := newTestNS(t)
	pt, _ := ns.veth(t, "pt", "pt-peer")
	parent := pt.Attrs().Index
	v100 := ns.vlan(t, d, "pt.100", parent, 100)
	if err := ns.Do(func() error { return d.SetInterface(v100, macTrunk, 1500) }); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d = loadPinned(t, dir)
	t.Cleanup(func() {
		if err := d.Teardown(); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	d.egressMu.Lock()
	v, isVLAN := d.vlans[v100]
	port, isPort := d.ports[v100]
	_, parentPort := d.ports[parent]
	d.egressMu.Unlock()
	if !isVLAN || v != (vlanPort{parent: parent, vid: 100}) || !isPort || port.vid != 100 || parentPort {
		t.Fatalf("taken over: VLAN %+v (%v), port %+v (%v), parent a port %v; want VLAN 100 on %d, a port with vid 100, the parent none",
			v, isVLAN, port, isPort, parentPort, parent)
	}
	if err := d.SetNextHop(1, route.Egress{Ifindex: v100, MAC: macGw100}); err != nil {
		t.Fatal(err)
	}
	var nh fwdNexthop
	if err := d.objs.Nexthops.Lookup(uint32(1), &nh); err != nil || nh.Vid != 100 || nh.Flags&uint8(fwdNhFlagsNH_F_PORT) == 0 {
		t.Errorf("next hop via the VLAN port after the restart: %+v (%v), want vid 100, a port", nh, err)
	}
}

// TestVLANExplain: Explain (xdprouterctl lookup --in) of a flow arriving
// on a VLAN port runs a tagged frame on the parent; the program, its
// report (egress port, VLAN) and the model agree.
func TestVLANExplain(t *testing.T) {
	d := loadTest(t)
	p := setupVLANs(t, d)
	for _, c := range []struct {
		in       int
		dst      string
		out      int
		vlan     uint16
		dmac     net.HardwareAddr
		parentIn bool
	}{
		{p.v100, "10.200.0.1", p.v200, 200, macGw200, true},
		{p.v100, "10.2.0.1", p.b, 0, macGwB, true},
		{p.a, "10.100.0.1", p.v100, 100, macGw100, false},
		{p.v200, "2001:db8:100::1", p.v100, 100, macGw100, true},
	} {
		f := Flow{Src: src4, Dst: ip(c.dst), Iif: c.in, Proto: protoUDP, Sport: 1, Dport: 2}
		if f.Dst.Is6() {
			f.Src = src6
		}
		var (
			r   ProgramRun
			dec Decision
		)
		err := p.ns.Do(func() error {
			var err error
			if r, err = d.Explain(f); err != nil {
				return err
			}
			dec, err = d.LookupFlow(f)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Action != ActionRedirect || r.Egress != c.out || r.VLAN != c.vlan || r.DstMAC.String() != c.dmac.String() || r.Ingress != c.in || r.TTL != DefaultTTL-1 {
			t.Errorf("explain %s in on %d: %+v, want a redirect out of %d tagged %d to %s", c.dst, c.in, r, c.out, c.vlan, c.dmac)
		}
		if why := dec.Disagreement(r); why != "" {
			t.Errorf("explain %s in on %d: %s", c.dst, c.in, why)
		}
		frame, err := d.FlowFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		if tagged := binary.BigEndian.Uint16(frame[12:]) == 0x8100; tagged != c.parentIn {
			t.Errorf("explain's frame for ingress %d tagged %v, want %v", c.in, tagged, c.parentIn)
		}
	}
}
