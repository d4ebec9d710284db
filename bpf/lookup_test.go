package bpf

import (
	"bytes"
	"github.com/xdprouter/xdprouter/route"
	"net/netip"
	"testing"
)

// TestLookupMatchesProgram compares Lookup's decision with what the
// program does to a packet for the same destination.
func TestLookupMatchesProgram(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)

	tests := []struct {
		dst    string
		prefix string // matched route, "" for none
	}{
		{"10.1.2.3", "10.1.0.0/16"},
		{"10.1.5.9", "10.1.5.0/24"},
		{"10.2.0.1", "10.2.0.0/16"},
		{"10.3.0.7", "10.3.0.0/24"},
		{"10.3.0.8", "10.3.0.0/24"},
		{"10.4.0.1", "10.4.0.0/16"},
		{"10.5.0.1", "10.5.0.0/16"},
		{"10.6.0.1", "10.6.0.0/16"},
		{"10.7.0.1", "10.7.0.0/16"},
		{"10.8.0.1", "10.8.0.0/16"},
		{"192.0.2.1", "192.0.2.1/32"},
		{"192.0.2.2", ""},
		{"198.51.100.7", "198.51.100.0/24"},
		{"203.0.113.9", "203.0.113.0/24"},
		{"100.64.0.1", ""},
		{"224.0.0.5", ""},
		{"127.0.0.1", ""},
		{"2001:db8:1::1", "2001:db8:1::/48"},
		{"2001:db8:1:5::1", "2001:db8:1:5::/64"},
		{"2001:db8:3::7", "2001:db8:3::/64"},
		{"2001:db8:3::8", "2001:db8:3::/64"},
		{"2001:db8:4::1", "2001:db8:4::/48"},
		{"2001:db8:5::1", "2001:db8:5::/48"},
		{"2001:db8:6::1", "2001:db8:6::/48"},
		{"2001:db8:8::1", "2001:db8:8::/48"},
		{"2001:db8:ffff::1", "2001:db8:ffff::1/128"},
		{"2001:db8:dead::1", "2001:db8:dead::/48"},
		{"2001:db8:beef::1", "2001:db8:beef::/48"},
		{"2001:db9::1", ""},
		{"fe80::1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.dst, func(t *testing.T) {
			dst := ip(tc.dst)
			dec, err := d.Lookup(dst)
			if err != nil {
				t.Fatal(err)
			}
			wantPrefix := netip.Prefix{}
			if tc.prefix != "" {
				wantPrefix = pfx(tc.prefix)
			}
			if dec.Prefix != wantPrefix {
				t.Errorf("prefix %v, want %v", dec.Prefix, wantPrefix)
			}

			f := pkt{src: src4, dst: dst, sport: 1, dport: 2}
			if dst.Is6() {
				f.v6, f.src = true, src6
			}
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
			if want := dec.Action + "/" + dec.Reason; got != want {
				t.Fatalf("program: %s, Lookup: %s (%+v)", got, want, dec)
			}
			if ret == xdpRedirect {
				found := false
				for _, c := range dec.Candidates {
					if c.Action == ActionRedirect && bytes.Equal(out[0:6], c.DstMAC) && bytes.Equal(out[6:12], c.SrcMAC) {
						found = true
					}
				}
				if !found {
					t.Errorf("program rewrote MACs to %x/%x, not among Lookup's candidates %+v", out[0:6], out[6:12], dec.Candidates)
				}
			}
		})
	}
}

func TestLookupCandidates(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)

	// A group mixing a working, an unresolved and a non-port next hop.
	if err := d.SetGroup(60, []uint32{4, 1, 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.60.0.0/16"), Group: 60}}); err != nil {
		t.Fatal(err)
	}
	dec, err := d.Lookup(ip("10.60.1.1"))
	if err != nil {
		t.Fatal(err)
	}
	if dec.Action != ActionRedirect || dec.Reason != "" || dec.Group != 60 || dec.Kind != route.Unicast || len(dec.Candidates) != 3 {
		t.Fatalf("decision %+v", dec)
	}
	want := []Candidate{
		{NextHop: 4, Ifindex: p.a, Action: ActionPass, Reason: ReasonNeighborUnresolved},
		{NextHop: 1, Ifindex: p.a, SrcMAC: macA, DstMAC: macGwA, Action: ActionRedirect},
		{NextHop: 5, Ifindex: p.unused, DstMAC: macGwA, Action: ActionPass, Reason: ReasonEgressNotXDP},
	}
	for i, c := range dec.Candidates {
		w := want[i]
		if c.NextHop != w.NextHop || c.Ifindex != w.Ifindex || c.Action != w.Action || c.Reason != w.Reason ||
			!bytes.Equal(c.SrcMAC, w.SrcMAC) || !bytes.Equal(c.DstMAC, w.DstMAC) {
			t.Errorf("candidate %d: %+v, want %+v", i, c, w)
		}
	}

	// Without a working member, the first candidate's outcome wins.
	if err := d.SetGroup(60, []uint32{5, 4}); err != nil {
		t.Fatal(err)
	}
	dec, err = d.Lookup(ip("10.60.1.1"))
	if err != nil {
		t.Fatal(err)
	}
	if dec.Action != ActionPass || dec.Reason != ReasonEgressNotXDP {
		t.Errorf("decision %+v, want pass/%s", dec, ReasonEgressNotXDP)
	}

	// Default routes and host routes at the ends of the probe.
	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("0.0.0.0/0"), Kind: route.Unreachable}, {Prefix: pfx("::/0"), Kind: route.Blackhole}}); err != nil {
		t.Fatal(err)
	}
	for dst, want := range map[string]string{"100.64.0.1": "0.0.0.0/0", "2001:db9::1": "::/0", "10.1.0.0": "10.1.0.0/16", "192.0.2.1": "192.0.2.1/32"} {
		dec, err := d.Lookup(ip(dst))
		if err != nil {
			t.Fatal(err)
		}
		if dec.Prefix != pfx(want) {
			t.Errorf("Lookup(%s): prefix %v, want %s", dst, dec.Prefix, want)
		}
	}
}
