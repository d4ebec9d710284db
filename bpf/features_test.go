package bpf

import (
	"testing"

	"github.com/vishvananda/netlink"
)

// TestQueryXDPFeatures asks the kernel about a veth and a bridge in a
// namespace: a veth transmits redirected frames once its peer has GRO on
// (or an XDP program), a bridge never does.
func TestQueryXDPFeatures(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: needs a network namespace (not in -short mode)")
	}
	ns := newTestNS(t)
	v, peer := ns.veth(t, "fa", "fa-peer")
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "fbr"}}
	if err := ns.nl.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	brl, err := ns.nl.LinkByName("fbr")
	if err != nil {
		t.Fatal(err)
	}
	query := func(ifindex int) XDPFeatures {
		t.Helper()
		var f XDPFeatures
		if err := ns.Do(func() (err error) { f, err = QueryXDPFeatures(ifindex); return err }); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := query(brl.Attrs().Index); f&XDPNdoXmit != 0 {
		t.Errorf("bridge features %v: claims NDO_XMIT", f)
	}
	t.Logf("veth, peer without GRO or XDP: %v", query(v.Attrs().Index))
	sink := loadTest(t)
	if err := ns.Do(func() error { return sink.Attach(peer.Attrs().Index, ModeNative) }); err != nil {
		t.Fatal(err)
	}
	if f := query(v.Attrs().Index); f&XDPNdoXmit == 0 || f&XDPBasic == 0 {
		t.Errorf("veth features %v with XDP on the peer: want BASIC and NDO_XMIT", f)
	}
	if err := ns.Do(func() error { _, err := QueryXDPFeatures(1 << 30); return err }); err == nil {
		t.Error("features of a missing ifindex: no error")
	}
}

// TestSetInterfaceRedirectTarget: a bridge port (no ndo_xdp_xmit) gets an
// ifaces entry but no tx_ports entry, so XDP passes its packets to the
// kernel instead of redirecting them into a drop; a veth port is a target.
func TestSetInterfaceRedirectTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: needs a network namespace (not in -short mode)")
	}
	d := loadTest(t)
	ns := newTestNS(t)
	v, _ := ns.veth(t, "ta", "ta-peer")
	if err := ns.nl.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "tbr"}}); err != nil {
		t.Fatal(err)
	}
	br, err := ns.nl.LinkByName("tbr")
	if err != nil {
		t.Fatal(err)
	}
	ib, iv := br.Attrs().Index, v.Attrs().Index
	err = ns.Do(func() error {
		if err := d.Attach(ib, ModeAuto); err != nil { // generic: a bridge has no native XDP
			return err
		}
		if err := d.SetInterface(ib, macB, 1500); err != nil {
			return err
		}
		return d.SetInterface(iv, macA, 1500)
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := d.RedirectTarget(ib); ok || why == "" {
		t.Errorf("bridge: redirect target %v (%q), want not, with a reason", ok, why)
	} else {
		t.Logf("bridge: %s", why)
	}
	var port uint32
	if err := d.objs.TxPorts.Lookup(uint32(ib), &port); err == nil {
		t.Error("bridge in tx_ports")
	}
	var ifc fwdIface
	if err := d.objs.Ifaces.Lookup(uint32(ib), &ifc); err != nil {
		t.Errorf("bridge not in ifaces (XDP would not pass with egress_not_xdp): %v", err)
	}
	if ok, why := d.RedirectTarget(iv); !ok {
		t.Errorf("veth: not a redirect target: %s", why)
	}
	if err := d.objs.TxPorts.Lookup(uint32(iv), &port); err != nil {
		t.Errorf("veth not in tx_ports: %v", err)
	}
	if ok, _ := d.RedirectTarget(iv + 100); ok {
		t.Error("unknown ifindex is a redirect target")
	}
}
