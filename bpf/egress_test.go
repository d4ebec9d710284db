package bpf

import (
	"bytes"
	"net"
	"testing"

	"github.com/xdprouter/xdprouter/route"
)

// Next hops carry their port's source MAC and MTU (struct nexthop): these
// tests change a port after its next hops were written and check that
// the program, Lookup and NextHopAt follow.

// expectOutcome runs frame and checks the verdict, the stat it counted
// and, for a redirect, the MACs written (for a pass: the frame untouched).
// It also checks that Lookup agrees with the program.
func expectOutcome(t *testing.T, d *Datapath, f pkt, stat string, dmac, smac net.HardwareAddr) {
	t.Helper()
	frame := f.build()
	before := statsMap(t, d)
	ret, out := run(t, d, frame)
	after := statsMap(t, d)
	var got string
	for k, a := range after {
		if a.Packets != before[k].Packets {
			got = k
		}
	}
	if got != stat {
		t.Fatalf("%v: program counted %s (%s), want %s", f.dst, got, xdpNames[ret], stat)
	}
	if stat == "redirect/" {
		if ret != xdpRedirect {
			t.Fatalf("%v: verdict %s", f.dst, xdpNames[ret])
		}
		checkRewrite(t, frame, out, dmac, smac)
	} else if !bytes.Equal(out, frame) {
		t.Errorf("%v: frame modified although not redirected", f.dst)
	}

	dec, err := d.Lookup(f.dst)
	if err != nil {
		t.Fatal(err)
	}
	// Lookup does not model the MTU check.
	if want := dec.Action + "/" + dec.Reason; stat != "pass/too_big" && want != stat {
		t.Errorf("%v: Lookup says %s, program %s (%+v)", f.dst, want, stat, dec)
	}
	if stat == "redirect/" {
		found := false
		for _, c := range dec.Candidates {
			if c.Action == ActionRedirect && bytes.Equal(c.DstMAC, dmac) && bytes.Equal(c.SrcMAC, smac) {
				found = true
			}
		}
		if !found {
			t.Errorf("%v: Lookup's candidates %+v lack %v/%v", f.dst, dec.Candidates, dmac, smac)
		}
	}
}

func setInterface(t *testing.T, d *Datapath, p ports, ifindex int, mac net.HardwareAddr, mtu int) {
	t.Helper()
	if err := p.ns.Do(func() error { return d.SetInterface(ifindex, mac, mtu) }); err != nil {
		t.Fatal(err)
	}
}

// checkNextHopsUnchanged: the read-back (sync's audit) does not see the
// port's MAC, MTU or presence.
func checkNextHopsUnchanged(t *testing.T, d *Datapath, p ports) {
	t.Helper()
	want := map[uint32]route.Egress{
		1: {Ifindex: p.a, MAC: macGwA},
		3: {Ifindex: p.a, Connected: true},
		4: {Ifindex: p.a},
		5: {Ifindex: p.unused, MAC: macGwA},
	}
	for id, w := range want {
		got, err := d.NextHopAt(id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Ifindex != w.Ifindex || got.Connected != w.Connected || !bytes.Equal(got.MAC, w.MAC) {
			t.Errorf("NextHopAt(%d) = %+v, want %+v", id, got, w)
		}
	}
}

func TestPortMACChange(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	macA2 := mustMAC("02:00:00:00:0a:02")

	expectOutcome(t, d, v4("10.1.2.3"), "redirect/", macGwA, macA)
	setInterface(t, d, p, p.a, macA2, 1500)
	expectOutcome(t, d, v4("10.1.2.3"), "redirect/", macGwA, macA2)
	expectOutcome(t, d, v6("2001:db8:1::1"), "redirect/", macGwA, macA2)
	expectOutcome(t, d, v4("10.3.0.7"), "redirect/", macNbr, macA2) // connected
	// The other port's next hops keep theirs.
	expectOutcome(t, d, v4("10.2.0.1"), "redirect/", macGwB, macB)
	checkNextHopsUnchanged(t, d, p)

	// A next hop written after the change gets the new MAC too.
	if err := d.SetNextHop(1, route.Egress{Ifindex: p.a, MAC: macGwB}); err != nil {
		t.Fatal(err)
	}
	expectOutcome(t, d, v4("10.1.2.3"), "redirect/", macGwB, macA2)
}

func TestPortMTUChange(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	at1500 := v4("10.1.2.3").with(func(p *pkt) { p.payload = 1500 - 28 })
	over1500 := v4("10.1.2.3").with(func(p *pkt) { p.payload = 1500 - 28 + 1 })
	at1400 := v4("10.1.2.3").with(func(p *pkt) { p.payload = 1400 - 28 })
	at1400v6 := v6("2001:db8:1::1").with(func(p *pkt) { p.payload = 1400 - 48 })
	over1400v6 := v6("2001:db8:1::1").with(func(p *pkt) { p.payload = 1400 - 48 + 1 })

	expectOutcome(t, d, at1500, "redirect/", macGwA, macA)
	setInterface(t, d, p, p.a, macA, 1400)
	expectOutcome(t, d, at1500, "pass/too_big", nil, nil)
	expectOutcome(t, d, at1400, "redirect/", macGwA, macA)
	expectOutcome(t, d, at1400v6, "redirect/", macGwA, macA)
	expectOutcome(t, d, over1400v6, "pass/too_big", nil, nil)
	// Port b is unchanged.
	expectOutcome(t, d, v4("10.2.0.1").with(func(p *pkt) { p.payload = 1500 - 28 }), "redirect/", macGwB, macB)

	setInterface(t, d, p, p.a, macA, 9000)
	expectOutcome(t, d, over1500, "redirect/", macGwA, macA)
	checkNextHopsUnchanged(t, d, p)
}

func TestPortDeleteAndAdd(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)

	if err := d.DeleteInterface(p.a); err != nil {
		t.Fatal(err)
	}
	expectOutcome(t, d, v4("10.1.2.3"), "pass/egress_not_xdp", nil, nil)
	expectOutcome(t, d, v6("2001:db8:1::1"), "pass/egress_not_xdp", nil, nil)
	expectOutcome(t, d, v4("10.3.0.7"), "pass/egress_not_xdp", nil, nil)
	expectOutcome(t, d, v4("10.4.0.1"), "pass/neighbor_unresolved", nil, nil) // unresolved comes first
	expectOutcome(t, d, v4("10.2.0.1"), "redirect/", macGwB, macB)
	checkNextHopsUnchanged(t, d, p)
	// Deleting it again is not an error and changes nothing.
	if err := d.DeleteInterface(p.a); err != nil {
		t.Fatal(err)
	}
	// A next hop written while the port is gone passes too.
	if err := d.SetNextHop(1, route.Egress{Ifindex: p.a, MAC: macGwA}); err != nil {
		t.Fatal(err)
	}
	expectOutcome(t, d, v4("10.1.2.3"), "pass/egress_not_xdp", nil, nil)

	// Back as a port (with another MAC): its next hops forward again.
	macA2 := mustMAC("02:00:00:00:0a:02")
	setInterface(t, d, p, p.a, macA2, 1500)
	expectOutcome(t, d, v4("10.1.2.3"), "redirect/", macGwA, macA2)
	expectOutcome(t, d, v4("10.3.0.7"), "redirect/", macNbr, macA2)

	// A next hop written before its interface became a port.
	expectOutcome(t, d, v4("10.5.0.1"), "pass/egress_not_xdp", nil, nil)
	macC := mustMAC("02:00:00:00:0c:01")
	setInterface(t, d, p, p.unused, macC, 1500)
	expectOutcome(t, d, v4("10.5.0.1"), "redirect/", macGwA, macC)
	checkNextHopsUnchanged(t, d, p)
}
