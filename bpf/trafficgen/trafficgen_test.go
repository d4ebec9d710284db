package trafficgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

func TestPrefixSpread(t *testing.T) {
	block := netip.MustParsePrefix("64.0.0.0/4")
	seen := make(map[netip.Prefix]bool)
	for i := range 100_000 {
		p := Prefix(i)
		if !block.Contains(p.Addr()) || p.Bits() != 24 || p.Masked() != p {
			t.Fatalf("Prefix(%d) = %v, want a /24 in %v", i, p, block)
		}
		if seen[p] {
			t.Fatalf("Prefix(%d) = %v repeats", i, p)
		}
		seen[p] = true
	}
	if a, b := Prefix(0).Addr().As4(), Prefix(1).Addr().As4(); a[0] == b[0] && a[1] == b[1] {
		t.Errorf("Prefix(0) = %v and Prefix(1) = %v are neighbors, want them spread", Prefix(0), Prefix(1))
	}
}

func TestFrameChecksum(t *testing.T) {
	f := testConfig(Fixed).Frame()
	if len(f) != FrameLen {
		t.Fatalf("frame length %d, want %d", len(f), FrameLen)
	}
	if !validIPv4(f) {
		t.Errorf("bad IPv4 checksum in % x", f[14:34])
	}
}

func testConfig(m Mode) Config {
	return Config{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		Src:    netip.MustParseAddr("10.0.1.2"),
		Dst:    netip.MustParseAddr("64.0.0.1"),
		Mode:   m,
		Routes: 1000,
	}
}

// validIPv4 checks the IPv4 header checksum of an Ethernet frame.
func validIPv4(f []byte) bool {
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

func requireBPF(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping under -short: loads BPF (privileged)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (BPF_PROG_LOAD)")
	}
}

func newGenerator(t *testing.T, c Config) *Generator {
	t.Helper()
	requireBPF(t)
	g, err := NewGenerator(c)
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, os.ErrPermission) {
		t.Skipf("skipping: BPF unavailable: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// runOnce runs the generator once (no live frames) on in and returns the
// frame it would transmit.
func runOnce(t *testing.T, g *Generator, in []byte) []byte {
	t.Helper()
	out := make([]byte, len(in))
	ret, err := g.Program().Run(&ebpf.RunOptions{Data: in, DataOut: out})
	if err != nil {
		t.Fatal(err)
	}
	if ret != 3 { // XDP_TX
		t.Fatalf("verdict %d, want XDP_TX", ret)
	}
	return out
}

// A router downstream rewrites MACs, TTL and checksum of recycled frames:
// the generator must restore every header field on every run.
func scribbled() []byte {
	f := make([]byte, FrameLen)
	for i := range f {
		f[i] = 0xa5
	}
	return f
}

func TestGeneratorFixed(t *testing.T) {
	c := testConfig(Fixed)
	g := newGenerator(t, c)
	if got, want := runOnce(t, g, scribbled()), c.Frame(); !bytes.Equal(got[:hdrLen], want[:hdrLen]) {
		t.Errorf("header\n got % x\nwant % x", got[:hdrLen], want[:hdrLen])
	}
}

func TestGeneratorRandom(t *testing.T) {
	c := testConfig(Random)
	g := newGenerator(t, c)
	prefixes := make(map[netip.Prefix]bool)
	for i := range c.Routes {
		prefixes[Prefix(i)] = true
	}
	hit := make(map[netip.Prefix]bool)
	ports := make(map[uint16]bool)
	want := c.Frame()
	for range 2000 {
		f := runOnce(t, g, scribbled())
		dst := netip.AddrFrom4([4]byte(f[30:34]))
		p := netip.PrefixFrom(dst, 24).Masked()
		if !prefixes[p] {
			t.Fatalf("destination %v is in none of the %d prefixes", dst, c.Routes)
		}
		hit[p] = true
		ports[binary.BigEndian.Uint16(f[34:])] = true
		if !validIPv4(f) {
			t.Fatalf("bad IPv4 checksum in % x", f[14:34])
		}
		// Everything but checksum, destination and source port is the template.
		for _, r := range [][2]int{{0, ipCheckOff}, {ipCheckOff + 2, ipDaddrOff}, {36, hdrLen}} {
			if !bytes.Equal(f[r[0]:r[1]], want[r[0]:r[1]]) {
				t.Fatalf("bytes %d..%d: got % x, want % x", r[0], r[1], f[r[0]:r[1]], want[r[0]:r[1]])
			}
		}
	}
	if len(hit) < c.Routes/2 || len(ports) < 500 {
		t.Errorf("2000 frames hit %d of %d prefixes and %d source ports: not random", len(hit), c.Routes, len(ports))
	}
}

func TestGeneratorSpoofed(t *testing.T) {
	for _, m := range []Mode{Fixed, Random} {
		t.Run(m.String(), func(t *testing.T) {
			c := testConfig(m)
			c.SrcPrefix = netip.MustParsePrefix("198.18.0.0/15")
			c.LegitEvery = 10
			g := newGenerator(t, c)
			srcs := make(map[netip.Addr]bool)
			legit := 0
			for i := 1; i <= 2000; i++ {
				f := runOnce(t, g, scribbled())
				if !validIPv4(f) {
					t.Fatalf("frame %d: bad IPv4 checksum in % x", i, f[14:34])
				}
				src, dst := netip.AddrFrom4([4]byte(f[26:30])), netip.AddrFrom4([4]byte(f[30:34]))
				if m == Fixed && dst != c.Dst {
					t.Fatalf("frame %d: destination %v, want %v", i, dst, c.Dst)
				}
				if src == c.Src {
					legit++
					if i%c.LegitEvery != 0 {
						t.Fatalf("frame %d has the legitimate source, want every %dth", i, c.LegitEvery)
					}
					if sport := binary.BigEndian.Uint16(f[34:]); m == Fixed && sport != udpSrcPort {
						t.Fatalf("legitimate frame %d: source port %d, want %d", i, sport, udpSrcPort)
					}
					continue
				}
				if !c.SrcPrefix.Contains(src) {
					t.Fatalf("frame %d: source %v outside %v", i, src, c.SrcPrefix)
				}
				srcs[src] = true
			}
			if legit != 200 || len(srcs) < 1700 {
				t.Errorf("2000 frames: %d legitimate (want 200), %d distinct spoofed sources (want most of 1800)", legit, len(srcs))
			}
		})
	}
}

func TestSinkCounts(t *testing.T) {
	requireBPF(t)
	s, err := NewSink()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ret, err := s.Program().Run(&ebpf.RunOptions{Data: testConfig(Fixed).Frame(), Repeat: 10})
	if err != nil {
		t.Fatal(err)
	}
	if ret != 1 { // XDP_DROP
		t.Errorf("verdict %d, want XDP_DROP", ret)
	}
	if n, err := s.Received(); err != nil || n != 10 {
		t.Errorf("Received() = %d, %v; want 10", n, err)
	}
	// ARP goes to the host's kernel, uncounted: the router in front must
	// be able to resolve the host.
	arp := make([]byte, 42)
	copy(arp, testConfig(Fixed).Frame()[:12])
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	if ret, err = s.Program().Run(&ebpf.RunOptions{Data: arp}); err != nil || ret != 2 { // XDP_PASS
		t.Errorf("ARP frame: verdict %d, %v; want XDP_PASS", ret, err)
	}
	if n, err := s.Received(); err != nil || n != 10 {
		t.Errorf("after ARP: Received() = %d, %v; want 10", n, err)
	}
}

func TestConfigErrors(t *testing.T) {
	c := testConfig(Random)
	c.Routes = 0
	c.Src = netip.MustParseAddr("fd00::1")
	if _, err := NewGenerator(c); err == nil {
		t.Error("NewGenerator accepted routes=0 and an IPv6 source")
	}
	c = testConfig(Fixed)
	c.LegitEvery = 10
	if _, err := NewGenerator(c); err == nil {
		t.Error("NewGenerator accepted legit-every without a source prefix")
	}
	c.SrcPrefix = netip.MustParsePrefix("fd00::/8")
	if _, err := NewGenerator(c); err == nil {
		t.Error("NewGenerator accepted an IPv6 source prefix")
	}
}
