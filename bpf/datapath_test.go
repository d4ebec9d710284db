package bpf

import (
	"errors"
	"github.com/xdprouter/xdprouter/route"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

func TestParseMode(t *testing.T) {
	for s, want := range map[string]Mode{"auto": ModeAuto, "native": ModeNative, "generic": ModeGeneric, "Generic": ModeGeneric} {
		m, err := ParseMode(s)
		if err != nil || m != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", s, m, err, want)
		}
		if err == nil && m.String() != strings.ToLower(s) {
			t.Errorf("%v.String() = %q", m, m.String())
		}
	}
	for _, s := range []string{"", "skb", "drv", "offload"} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) succeeded", s)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	requireBPF(t)
	d, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// fwd.h's DEFAULT_MAX_*.
	for m, want := range map[*ebpf.Map]uint32{
		d.objs.RoutesV4: 2_000_000, d.objs.RoutesV6: 500_000,
		d.objs.Nhgs: 65536, d.objs.Nexthops: 65536,
		d.objs.Neighbors: 262144, d.objs.Stats: uint32(fwdStatSTAT__MAX),
	} {
		if m.MaxEntries() != want {
			t.Errorf("%v: max_entries %d, want %d", m, m.MaxEntries(), want)
		}
	}
	if c := d.Capacity(); c != (Capacity{Groups: 65536, NextHops: 65536}) {
		t.Errorf("capacity %+v", c)
	}
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != int(fwdStatSTAT__MAX) {
		t.Fatalf("%d counters, want %d", len(st), fwdStatSTAT__MAX)
	}
	seen := map[string]bool{}
	for i, c := range st {
		k := c.Action + "/" + c.Reason
		if c.Action == "" || seen[k] || c.Packets != 0 || c.Bytes != 0 {
			t.Errorf("counter %d: %+v (duplicate or not zero)", i, c)
		}
		seen[k] = true
	}
}

func TestLoadOptions(t *testing.T) {
	requireBPF(t)
	d, err := Load(Options{MaxRoutesV4: 10, MaxRoutesV6: 11, MaxGroups: 12, MaxNextHops: 13, MaxNeighbors: 14})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for m, want := range map[*ebpf.Map]uint32{d.objs.RoutesV4: 10, d.objs.RoutesV6: 11, d.objs.Nhgs: 12, d.objs.Nexthops: 13, d.objs.Neighbors: 14} {
		if m.MaxEntries() != want {
			t.Errorf("%v: max_entries %d, want %d", m, m.MaxEntries(), want)
		}
	}
	// A full trie reports the map and the prefix.
	var rs []route.Entry
	for i := 0; i < 11; i++ {
		rs = append(rs, route.Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)})
	}
	// A v6 route first: the count covers runs of both families in order.
	rs = append([]route.Entry{{Prefix: pfx("2001:db8::/32")}}, rs...)
	n, err := d.UpdateRoutes(rs)
	if err == nil || !strings.Contains(err.Error(), "routes_v4") || !strings.Contains(err.Error(), "10.10.0.0/16") {
		t.Errorf("overfilling routes_v4: %v", err)
	}
	// What was written is reported exactly, so the caller can commit it.
	got, lerr := d.Routes()
	if lerr != nil {
		t.Fatal(lerr)
	}
	if n != 11 || len(got) != 11 {
		t.Errorf("partial batch: reported %d written, maps hold %d; want 11 (1 v6 + 10 v4)", n, len(got))
	}
	// Deleting reports progress the same way.
	if n, err := d.DeleteRoutes(inMain([]netip.Prefix{pfx("10.0.0.0/16"), {}, pfx("10.1.0.0/16")})); err == nil || n != 1 {
		t.Errorf("delete with an invalid prefix: n=%d err=%v, want 1 and an error", n, err)
	}
}

func TestRoutes(t *testing.T) {
	d := loadTest(t)
	in := []route.Entry{
		{Prefix: pfx("10.0.0.0/8"), Group: 7},
		{Prefix: pfx("10.1.2.3/16"), Kind: route.Blackhole}, // stored masked
		{Prefix: pfx("0.0.0.0/0"), Kind: route.Unreachable},
		{Prefix: pfx("192.0.2.1/32"), Kind: route.Local},
		{Prefix: pfx("2001:db8::/32"), Group: 1<<20 - 1},
		{Prefix: pfx("::/0"), Group: 3},
		{Prefix: pfx("2001:db8::1/128"), Kind: route.Local},
		{Prefix: pfx("::ffff:10.0.0.0/104"), Group: 9},    // IPv4-mapped stays IPv6
		{Table: 100, Prefix: pfx("10.0.0.0/8"), Group: 5}, // same prefix, another table
		{Table: 100, Prefix: pfx("2001:db8::/32"), Kind: route.Throw},
	}
	if _, err := d.UpdateRoutes(in); err != nil {
		t.Fatal(err)
	}
	// Replacing an entry.
	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.0.0.0/8"), Group: 8}}); err != nil {
		t.Fatal(err)
	}
	got, err := d.Routes()
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(in)
	want[0].Group = 8
	want[1].Prefix = pfx("10.1.0.0/16")
	for i := range want {
		want[i].Table = route.NormTable(want[i].Table)
	}
	sortRoutes(got)
	sortRoutes(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Routes() =\n%v\nwant\n%v", got, want)
	}
	for _, r := range got {
		if r.Prefix.Addr().Is4() != (r.Prefix.Addr().Is4() && !r.Prefix.Addr().Is4In6()) {
			t.Errorf("%v: unexpected address form", r.Prefix)
		}
	}

	// Deleting twice, with prefixes that never existed in between.
	del := []netip.Prefix{pfx("10.0.0.0/8"), pfx("172.16.0.0/12"), pfx("10.1.0.0/16"), pfx("2001:db8::/32"), pfx("2001:db8::2/128")}
	for i := 0; i < 2; i++ {
		if _, err := d.DeleteRoutes(inMain(del)); err != nil {
			t.Fatalf("delete round %d: %v", i, err)
		}
	}
	got, err = d.Routes()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in)-3 {
		t.Errorf("after delete: %v", got)
	}

	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: netip.Prefix{}}}); err == nil {
		t.Error("invalid prefix accepted")
	}
	if _, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.0.0.0/8"), Kind: 9}}); err == nil {
		t.Error("invalid route type accepted")
	}
}

func sortRoutes(rs []route.Entry) {
	slices.SortFunc(rs, func(a, b route.Entry) int {
		if a.Table != b.Table {
			return a.Table - b.Table
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
}

func TestManyRoutes(t *testing.T) {
	d := loadTest(t)
	var rs []route.Entry
	var ps []netip.Prefix
	for i := 0; i < 100000; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		rs = append(rs, route.Entry{Prefix: p, Group: uint32(i)})
		ps = append(ps, p)
	}
	if _, err := d.UpdateRoutes(rs); err != nil {
		t.Fatal(err)
	}
	got, err := d.Routes()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rs) {
		t.Fatalf("%d routes, want %d", len(got), len(rs))
	}
	// Delete every other one, then all (half of them missing).
	var half []netip.Prefix
	for i := 0; i < len(ps); i += 2 {
		half = append(half, ps[i])
	}
	if _, err := d.DeleteRoutes(inMain(half)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteRoutes(inMain(ps)); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Routes(); len(got) != 0 {
		t.Errorf("%d routes left", len(got))
	}
}

func TestGroupsAndNextHops(t *testing.T) {
	d := loadTest(t)
	// Slots past the count repeat the members: a half-written group read
	// by XDP still names members only.
	if err := d.SetGroup(3, []uint32{5, 6, 7}); err != nil {
		t.Fatal(err)
	}
	var raw fwdNhg
	if err := d.objs.Nhgs.Lookup(uint32(3), &raw); err != nil {
		t.Fatal(err)
	}
	for i, id := range raw.Nh {
		if id != []uint32{5, 6, 7}[i%3] {
			t.Fatalf("group slots %v: slot %d is not a member", raw.Nh, i)
		}
	}
	if err := d.SetGroup(3, []uint32{5, 6, 7}); err != nil {
		t.Fatal(err)
	}
	g, err := d.Group(3)
	if err != nil || !slices.Equal(g, []uint32{5, 6, 7}) {
		t.Errorf("Group(3) = %v, %v", g, err)
	}
	if err := d.SetGroup(3, nil); err != nil {
		t.Fatal(err)
	}
	if g, err := d.Group(3); err != nil || len(g) != 0 {
		t.Errorf("emptied Group(3) = %v, %v", g, err)
	}
	if err := d.SetGroup(4, make([]uint32, MaxECMP+1)); !errors.Is(err, ErrTooManyNextHops) {
		t.Errorf("17 next hops: %v", err)
	}
	if err := d.SetGroup(4, make([]uint32, MaxECMP)); err != nil {
		t.Errorf("16 next hops: %v", err)
	}
	if _, err := d.Group(1 << 30); err == nil || !strings.Contains(err.Error(), "nhgs") {
		t.Errorf("group beyond max: %v", err)
	}

	for id, nh := range map[uint32]route.Egress{
		1: {Ifindex: 4, MAC: macGwA},
		2: {Ifindex: 5},
		3: {Ifindex: 6, Connected: true},
	} {
		if err := d.SetNextHop(id, nh); err != nil {
			t.Fatal(err)
		}
		got, err := d.NextHopAt(id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Ifindex != nh.Ifindex || got.Connected != nh.Connected || got.MAC.String() != nh.MAC.String() || (got.MAC == nil) != (nh.MAC == nil) {
			t.Errorf("NextHopAt(%d) = %+v, want %+v", id, got, nh)
		}
	}
	if err := d.SetNextHop(9, route.Egress{Ifindex: 1, MAC: net.HardwareAddr{1, 2, 3}}); err == nil {
		t.Error("short MAC accepted")
	}
	if err := d.SetNextHop(9, route.Egress{Ifindex: 0}); err == nil {
		t.Error("ifindex 0 accepted")
	}
	if _, err := d.NextHopAt(1 << 30); err == nil {
		t.Error("next hop beyond max")
	}
}

func TestNeighbors(t *testing.T) {
	d := loadTest(t)
	in := []Neighbor{
		{Ifindex: 2, Addr: ip("10.0.0.1"), MAC: macGwA},
		{Ifindex: 3, Addr: ip("10.0.0.1"), MAC: macGwB},
		{Ifindex: 2, Addr: ip("2001:db8::1"), MAC: macNbr},
	}
	for _, n := range in {
		if err := d.SetNeighbor(n.Ifindex, n.Addr, n.MAC); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.Neighbors()
	if err != nil {
		t.Fatal(err)
	}
	key := func(n Neighbor) string { return n.Addr.String() + "%" + n.MAC.String() + string(rune('0'+n.Ifindex)) }
	var gk, wk []string
	for _, n := range got {
		gk = append(gk, key(n))
	}
	for _, n := range in {
		wk = append(wk, key(n))
	}
	slices.Sort(gk)
	slices.Sort(wk)
	if !slices.Equal(gk, wk) {
		t.Errorf("Neighbors() = %v, want %v", gk, wk)
	}
	for i := 0; i < 2; i++ {
		if err := d.DeleteNeighbor(2, ip("10.0.0.1")); err != nil {
			t.Errorf("delete round %d: %v", i, err)
		}
	}
	if got, _ := d.Neighbors(); len(got) != 2 {
		t.Errorf("after delete: %v", got)
	}
	if err := d.SetNeighbor(2, netip.Addr{}, macGwA); err == nil {
		t.Error("invalid address accepted")
	}
	if err := d.SetNeighbor(2, ip("10.0.0.2"), nil); err == nil {
		t.Error("nil MAC accepted")
	}
}

func TestInterfaces(t *testing.T) {
	d := loadTest(t)
	ns := newTestNS(t)
	l, _ := ns.veth(t, "px", "px-peer")
	idx := l.Attrs().Index
	err := ns.Do(func() error {
		if err := d.SetInterface(idx, macA, 9000); err != nil {
			return err
		}
		if err := d.SetInterface(idx+1000, macA, 1500); err == nil {
			return errors.New("nonexistent ifindex accepted by tx_ports")
		}
		if err := d.SetInterface(idx, macA[:5], 1500); err == nil {
			return errors.New("short MAC accepted")
		}
		if err := d.SetInterface(idx, macA, 0); err == nil {
			return errors.New("MTU 0 accepted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ifc fwdIface
	if err := d.objs.Ifaces.Lookup(uint32(idx), &ifc); err != nil || ifc.Mtu != 9000 || net.HardwareAddr(ifc.Mac[:]).String() != macA.String() {
		t.Errorf("ifaces[%d] = %+v, %v", idx, ifc, err)
	}
	for i := 0; i < 2; i++ {
		if err := d.DeleteInterface(idx); err != nil {
			t.Errorf("delete round %d: %v", i, err)
		}
	}
	var port uint32
	if err := d.objs.TxPorts.Lookup(uint32(idx), &port); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("tx_ports after delete: %v", err)
	}
}
