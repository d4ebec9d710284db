package lookupbench

import (
	"net/netip"
	"os"
	"testing"
)

// TestDriver drives the do-nothing target over two destinations and
// rejects a destination count that is not a power of two.
func TestDriver(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("skipping: needs root (BPF_PROG_LOAD); not under -short")
	}
	if _, err := New(make([]netip.Addr, 3)); err == nil {
		t.Error("3 destinations accepted")
	}
	d, err := New([]netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	frame := make([]byte, 60)
	frame[12], frame[13], frame[14] = 0x08, 0x00, 0x45 // IPv4
	ret, _, err := d.Run(d.Pass(), frame, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if ret != 2 {
		t.Errorf("verdict %d, want XDP_PASS", ret)
	}
}
