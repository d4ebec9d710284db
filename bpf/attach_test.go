package bpf

import (
	"errors"
	"github.com/xdprouter/xdprouter/route"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// xdpState reports whether an XDP program is attached to ifindex and in
// which mode, as seen by netlink.
func xdpState(t *testing.T, ns *testNS, ifindex int) (bool, uint32) {
	t.Helper()
	l, err := ns.nl.LinkByIndex(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	x := l.Attrs().Xdp
	if x == nil {
		return false, 0
	}
	return x.Attached, x.AttachMode
}

const (
	xdpAttachedDrv = 1 // XDP_ATTACHED_DRV
	xdpAttachedSKB = 2 // XDP_ATTACHED_SKB
)

func TestAttach(t *testing.T) {
	d := loadTest(t)
	ns := newTestNS(t)
	a, _ := ns.veth(t, "va", "va-peer")
	b, _ := ns.veth(t, "vb", "vb-peer")
	ia, ib := a.Attrs().Index, b.Attrs().Index

	do := func(f func() error) error { return ns.Do(f) }

	if err := do(func() error { return d.Attach(ia, ModeNative) }); err != nil {
		t.Fatalf("native attach on veth: %v", err)
	}
	if att, mode := xdpState(t, ns, ia); !att || mode != xdpAttachedDrv {
		t.Errorf("after native attach: attached %v mode %d", att, mode)
	}
	if err := do(func() error { return d.Attach(ia, ModeNative) }); err != nil {
		t.Errorf("repeated attach: %v", err)
	}
	if err := do(func() error { return d.Attach(ia, ModeGeneric) }); !errors.Is(err, ErrModeMismatch) {
		t.Errorf("attach in another mode: %v, want ErrModeMismatch", err)
	}
	if err := d.Detach(ia); err != nil {
		t.Fatal(err)
	}
	if att, _ := xdpState(t, ns, ia); att {
		t.Error("still attached after Detach")
	}
	if err := d.Detach(ia); err != nil {
		t.Errorf("second Detach: %v", err)
	}

	if err := do(func() error { return d.Attach(ia, ModeGeneric) }); err != nil {
		t.Fatalf("generic attach: %v", err)
	}
	if att, mode := xdpState(t, ns, ia); !att || mode != xdpAttachedSKB {
		t.Errorf("after generic attach: attached %v mode %d", att, mode)
	}
	if err := do(func() error { return d.Attach(ib, ModeAuto) }); err != nil {
		t.Fatalf("auto attach: %v", err)
	}
	if att, mode := xdpState(t, ns, ib); !att || mode != xdpAttachedDrv {
		t.Errorf("after auto attach on veth: attached %v mode %d", att, mode)
	}
	if m, ok := d.AttachedMode(ib); !ok || m != ModeNative {
		t.Errorf("AttachedMode after auto on veth = %v %v, want native", m, ok)
	}
	if _, ok := d.AttachedMode(ib + 1000); ok {
		t.Error("AttachedMode reports an interface that was never attached")
	}

	// Errors name the interface.
	err := do(func() error { return d.Attach(ib+1000, ModeAuto) })
	if err == nil {
		t.Error("attach to a missing interface succeeded")
	} else {
		t.Logf("missing interface: %v", err)
	}

	// Close detaches everything it attached.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{ia, ib} {
		if att, _ := xdpState(t, ns, i); att {
			t.Errorf("ifindex %d still attached after Close", i)
		}
	}
}

// TestForwardLive forwards a frame through real veths: sent into the
// router namespace's port A (live-frames mode), redirected out of port B,
// and seen arriving on B's peer.
func TestForwardLive(t *testing.T) {
	d := loadTest(t)
	ns := newTestNS(t)
	a, _ := ns.veth(t, "ra", "ra-peer")
	b, bPeer := ns.veth(t, "rb", "rb-peer")
	ia, ib := a.Attrs().Index, b.Attrs().Index

	sink := loadTest(t) // any XDP program on the receiving peer keeps veth from dropping
	err := ns.Do(func() error {
		if err := d.SetInterface(ib, macB, 1500); err != nil {
			return err
		}
		if err := d.Attach(ia, ModeNative); err != nil {
			return err
		}
		return sink.Attach(bPeer.Attrs().Index, ModeNative)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetNextHop(1, route.Egress{Ifindex: ib, MAC: macGwB}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetGroup(1, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.9.0.0/16"), Group: 1}}); err != nil {
		t.Fatal(err)
	}

	frame := v4("10.9.0.1").build()
	before, err := peerRx(ns, bPeer.Attrs().Name)
	if err != nil {
		t.Fatal(err)
	}
	// Live frames: the redirect really happens. The ingress ifindex is
	// resolved in the calling thread's namespace.
	err = ns.Do(func() error {
		_, err := d.Program().Run(&ebpf.RunOptions{
			Data:    frame,
			Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
			Repeat:  1,
			Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ia)},
		})
		return err
	})
	if err != nil {
		t.Skipf("skipping: live-frames test run unavailable: %v", err)
	}
	st := statsMap(t, d)
	if st["redirect/"].Packets != 1 {
		t.Fatalf("stats after live run: %+v", st)
	}
	// The sink program (another forwarder without routes) counts what
	// arrived on the peer.
	got := statsMap(t, sink)
	total := uint64(0)
	for _, c := range got {
		total += c.Packets
	}
	after, _ := peerRx(ns, bPeer.Attrs().Name)
	if total == 0 && after == before {
		t.Errorf("nothing arrived on %s", bPeer.Attrs().Name)
	}
	if got["pass/no_route"].Packets != 1 {
		t.Errorf("sink saw %+v, want one no_route pass", got)
	}
}

func peerRx(ns *testNS, name string) (uint64, error) {
	l, err := ns.nl.LinkByName(name)
	if err != nil {
		return 0, err
	}
	if s := l.Attrs().Statistics; s != nil {
		return s.RxPackets, nil
	}
	return 0, nil
}
