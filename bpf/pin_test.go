package bpf

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

// bpffs mounts a bpf filesystem for the test and returns a pin path in it.
func bpffs(t *testing.T) string {
	t.Helper()
	mnt := t.TempDir()
	if err := unix.Mount("bpf", mnt, "bpf", 0, ""); err != nil {
		t.Skipf("skipping: cannot mount bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	return filepath.Join(mnt, "xdprouter")
}

func loadPinned(t *testing.T, dir string) *Datapath {
	t.Helper()
	d, err := Load(Options{PinPath: dir, MaxRoutesV4: 1000, MaxRoutesV6: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPinnedRestart: a pinned dataplane outlives Close (the program stays
// attached and keeps its maps), one daemon per pin path, the next Load
// reads the state back and swaps its program into the pinned link, and
// Teardown removes it all.
func TestPinnedRestart(t *testing.T) {
	requireBPF(t)
	if _, err := Load(Options{PinPath: t.TempDir()}); !errors.Is(err, ErrNotBPFFS) {
		t.Fatalf("pin path on tmpfs: %v, want ErrNotBPFFS", err)
	}
	dir := bpffs(t)

	// A stale pin of another kind is replaced.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale, err := ebpf.NewMap(&ebpf.MapSpec{Name: "routes_v4", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := stale.Pin(filepath.Join(dir, "routes_v4")); err != nil {
		t.Fatal(err)
	}
	stale.Close()

	d := loadPinned(t, dir)
	if d.Adopted() != nil || d.Preserved() || d.Rebuilt() == "" {
		t.Errorf("first load: adopted %v preserved %v rebuilt %q; want fresh maps, rebuilt", d.Adopted() != nil, d.Preserved(), d.Rebuilt())
	}
	if _, err := Load(Options{PinPath: dir}); !errors.Is(err, ErrPinPathBusy) {
		t.Errorf("second daemon on the pin path: %v, want ErrPinPathBusy", err)
	}
	p := setupPorts(t, d)
	if err := p.ns.Do(func() error { return d.Attach(p.a, ModeNative) }); err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddr("192.0.2.1")
	must(t, d.SetNextHop(1, route.Egress{Ifindex: p.b, MAC: macGwB, Gateway: gw}))
	must(t, d.SetNextHop(2, route.Egress{Ifindex: p.b, Connected: true}))
	must(t, d.SetGroup(1, []uint32{1}))
	must(t, d.SetGroup(2, []uint32{2, 1}))
	must(t, d.SetNeighbor(p.b, netip.MustParseAddr("192.0.2.9"), macGwB))
	routes := []route.Entry{
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Group: 1},
		{Prefix: netip.MustParsePrefix("10.1.0.0/16"), Group: 2},
		{Prefix: netip.MustParsePrefix("2001:db8::/32"), Group: 1},
		{Prefix: netip.MustParsePrefix("192.0.2.254/32"), Kind: route.Local},
		{Table: 100, Prefix: netip.MustParsePrefix("10.1.0.0/16"), Kind: route.Blackhole},
	}
	if _, err := d.UpdateRoutes(routes); err != nil {
		t.Fatal(err)
	}
	// A policy rule sends 172.16.0.1's packets to table 100 (a blackhole).
	rules := append(route.DefaultRules(), route.Rule{Family: 4, Priority: 100, Src: netip.MustParsePrefix("172.16.0.1/32"),
		Action: route.RuleLookup, Table: 100, SuppressPrefixlen: -1, SuppressIfgroup: -1})
	must(t, p.ns.Do(func() error { return d.SetRules(rules, func(string) int { return 0 }) }))
	ruled := func(d *Datapath) uint32 {
		ret, _ := runIn(t, d, p, p.a, v4("10.1.2.3").with(func(k *pkt) { k.src = ip("172.16.0.1") }).build())
		return ret
	}
	if ret := ruled(d); ret != xdpDrop {
		t.Fatalf("before the restart: %s, want XDP_DROP by table 100", xdpNames[ret])
	}
	before := d.lookupOf(t, "10.1.2.3")
	must(t, d.Close())
	if att, _ := xdpState(t, p.ns, p.a); !att {
		t.Fatal("Close of a pinned dataplane detached the program")
	}

	d2 := loadPinned(t, dir)
	defer d2.Close()
	if !d2.Preserved() || d2.Rebuilt() != "" {
		t.Errorf("restart: preserved %v rebuilt %q, want the pinned maps reused", d2.Preserved(), d2.Rebuilt())
	}
	st := d2.Adopted()
	if st == nil {
		t.Fatal("restart: nothing adopted")
	}
	if len(st.Routes) != len(routes) {
		t.Errorf("adopted routes %v, want %v", st.Routes, routes)
	}
	if !reflect.DeepEqual(st.Groups, map[uint32][]uint32{1: {1}, 2: {2, 1}}) {
		t.Errorf("adopted groups %v", st.Groups)
	}
	if nh := st.NextHops[1]; nh.Gateway != gw || nh.Ifindex != p.b || nh.MAC.String() != macGwB.String() {
		t.Errorf("adopted next hop 1: %+v", nh)
	}
	if nh := st.NextHops[2]; nh.Gateway.IsValid() || !nh.Connected {
		t.Errorf("adopted next hop 2: %+v", nh)
	}
	if len(st.Neighbors) != 1 {
		t.Errorf("adopted neighbors %v", st.Neighbors)
	}
	// The compiled structure was rebuilt from the trie.
	if after := d2.lookupOf(t, "10.1.2.3"); after != before {
		t.Errorf("lookup after restart %+v, before %+v", after, before)
	}
	// The rules stay in force (with the trie's source classes) until the
	// new instance sets them, and then too.
	if ret := ruled(d2); ret != xdpDrop {
		t.Errorf("after the restart: %s, want XDP_DROP by the pinned rule and table 100", xdpNames[ret])
	}
	must(t, p.ns.Do(func() error { return d2.SetRules(rules, func(string) int { return 0 }) }))
	if ret := ruled(d2); ret != xdpDrop {
		t.Errorf("after SetRules: %s, want XDP_DROP", xdpNames[ret])
	}
	progBefore := attachedProg(t, p)
	if err := p.ns.Do(func() error { return d2.Attach(p.a, ModeAuto) }); err != nil {
		t.Fatal(err)
	}
	if progAfter := attachedProg(t, p); progAfter == progBefore || progAfter == 0 {
		t.Errorf("program id %d after the swap, %d before: want the new program", progAfter, progBefore)
	}
	if released := d2.ReleaseAdopted(); len(released) != 0 {
		t.Errorf("released %v, want none left", released)
	}
	must(t, d2.Close())

	// A layout of another version is rebuilt side by side; what agrees is
	// copied.
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, fwdMapMeta), nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, m.Put(uint32(0), fwdPinMeta{Magic: pinMagic, Version: layoutVersion + 1}))
	m.Close()
	d3 := loadPinned(t, dir)
	if d3.Rebuilt() == "" || d3.Adopted() == nil {
		t.Errorf("other layout: rebuilt %q adopted %v, want rebuilt and copied", d3.Rebuilt(), d3.Adopted() != nil)
	}
	must(t, d3.Close())

	if err := Teardown(dir); err != nil {
		t.Fatal(err)
	}
	// The kernel releases a link whose pin went from a work queue.
	err = lab.Poll(context.Background(), 5*time.Second, func() error {
		if att, _ := xdpState(t, p.ns, p.a); att {
			return errors.New("still attached after Teardown")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin path after Teardown: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (d *Datapath) lookupOf(t *testing.T, a string) [2]uint32 {
	t.Helper()
	k, _, g, ok := d.compiledLookup(0, netip.MustParseAddr(a))
	if !ok {
		t.Fatalf("compiled lookup of %s: no route", a)
	}
	return [2]uint32{uint32(k), g}
}

func attachedProg(t *testing.T, p ports) uint32 {
	t.Helper()
	l, err := p.ns.nl.LinkByIndex(p.a)
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().Xdp == nil {
		return 0
	}
	return l.Attrs().Xdp.ProgId
}

// TestPinnedHashSeed: a random hash seed is chosen once and kept in the
// pins, so a restart keeps every flow on its member (with the groups'
// buckets, which a rewrite with the same members leaves as they are); a
// configured seed wins and is kept in turn.
func TestPinnedHashSeed(t *testing.T) {
	requireBPF(t)
	dir := bpffs(t)
	d := loadPinned(t, dir)
	seed := d.HashSeed()
	if seed == 0 {
		t.Fatal("no hash seed chosen")
	}
	for i := uint32(1); i <= 8; i++ {
		must(t, d.SetNextHop(i, route.Egress{Ifindex: 1, MAC: macGwB}))
	}
	members := []uint32{1, 2, 3, 4, 5, 6, 7, 8}
	must(t, d.SetGroup(1, members[:7]))
	must(t, d.SetGroup(1, members)) // buckets no longer the fresh layout
	buckets, err := d.GroupBuckets(1)
	must(t, err)
	must(t, d.Close())

	d = loadPinned(t, dir)
	if got := d.HashSeed(); got != seed {
		t.Errorf("restart: hash seed %#x, before %#x", got, seed)
	}
	must(t, d.SetGroup(1, []uint32{8, 7, 6, 5, 4, 3, 2, 1})) // sync rewrites it
	after, err := d.GroupBuckets(1)
	must(t, err)
	if !slices.Equal(after, buckets) {
		t.Errorf("restart: the group's buckets changed:\n%v\nbefore\n%v", after, buckets)
	}
	must(t, d.Close())

	d, err = Load(Options{PinPath: dir, MaxRoutesV4: 1000, MaxRoutesV6: 1000, HashSeed: 42})
	must(t, err)
	if got := d.HashSeed(); got != 42 {
		t.Errorf("configured seed 42: have %#x", got)
	}
	must(t, d.Close())
	d = loadPinned(t, dir)
	if got := d.HashSeed(); got != 42 {
		t.Errorf("after a configured seed: %#x, want it kept (42)", got)
	}
	must(t, d.Close())
	must(t, Teardown(dir))
}
