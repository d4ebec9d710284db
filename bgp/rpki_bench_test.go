package bgp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/rtr"

	"github.com/xdprouter/xdprouter/config"
	"github.com/xdprouter/xdprouter/lab"
)

// benchRPKIPrefixes is the table size of BenchmarkRPKI.
const benchRPKIPrefixes = 200_000

// serveRTR is a minimal RTR cache (RFC 6810) for benchmarks: to every
// Reset Query it answers with all of vrps and End of Data. It returns the
// port on 127.0.0.1 and stops when the test ends.
func serveRTR(tb testing.TB, vrps []*rtr.RTRIPPrefix) uint32 {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				hdr := make([]byte, rtr.RTR_MIN_LEN)
				for {
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					if hdr[1] != rtr.RTR_RESET_QUERY {
						continue // serial queries: nothing changes
					}
					w := bufio.NewWriter(c)
					write := func(m interface{ Serialize() ([]byte, error) }) {
						b, _ := m.Serialize()
						_, _ = w.Write(b)
					}
					write(rtr.NewRTRCacheResponse(1))
					for _, v := range vrps {
						write(v)
					}
					write(rtr.NewRTREndOfData(1, 1))
					if w.Flush() != nil {
						return
					}
				}
			}()
		}
	}()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

// rpkiRun is one BenchmarkRPKI configuration's measurements.
type rpkiRun struct {
	load, reset time.Duration // table in (wall); soft reset in of all paths (median of 3)
	installed   int
}

// runRPKI: a peer (AS 65001) announces n /24s to a speaker importing
// accept-all, with or without an RTR cache whose VRPs make a quarter of
// the prefixes valid, a quarter invalid (another origin), the rest
// not-found. Measured: the load until the best paths are in (invalid ones
// rejected), then what a VRP change costs: one soft reset in of every path
// (watchRPKI's re-evaluation), called directly.
func runRPKI(tb testing.TB, n int, withRPKI bool) rpkiRun {
	const us, A = "127.0.0.1", "127.0.0.2"
	table := benchTable(n)
	pUs, pA := freePort(tb, us), freePort(tb, A)
	peer := startPeerOwned(tb, peerSpec{addr: A, port: pA, asn: 65001, speaker: us, speakerPt: pUs, passive: true})
	defer peer.srv.Stop()
	loadTable(tb, peer, table, 0)
	cfg := &config.Config{
		Router: config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		BGP:    config.BGP{ListenPort: int32(pUs), ListenAddresses: []string{us}, RPKIRejectInvalid: true},
	}
	want := n
	if withRPKI {
		var vrps []*rtr.RTRIPPrefix
		for i, p := range table[:n/2] {
			asn := uint32(65001)
			if i%2 == 1 {
				asn = 64999 // invalid
				want--
			}
			vrps = append(vrps, rtr.NewRTRIPPrefix(p.Addr(), 24, 24, asn, rtr.ANNOUNCEMENT))
		}
		cfg.RPKI = []config.RPKI{{Address: us, Port: serveRTR(tb, vrps), Lifetime: 60}}
	}
	st := &tableState{m: make(map[netip.Prefix][2]netip.Addr, n), wake: make(chan struct{}, 1)}
	s, err := New(Options{Config: cfg, Logger: testLogger(tb), OnBest: st.onBest})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	defer s.Stop()
	if withRPKI { // the VRPs first, as in a router that runs for a while
		err := lab.PollEvery(ctx, time.Minute, 50*time.Millisecond, func() error {
			if st := s.RPKI(); len(st) == 0 || st[0].VRPs4 != uint32(n/2) {
				return fmt.Errorf("VRPs not loaded: %+v", st)
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	// The neighbor comes by Reload, after the VRPs.
	withPeer := *cfg
	withPeer.Neighbors = []config.Neighbor{{Address: A, PeerASN: 65001, Port: pA, LocalAddress: us, ConnectRetry: 1,
		Import: "accept-all", Export: "reject-all"}}
	start := time.Now()
	if err := s.Reload(ctx, &withPeer); err != nil {
		tb.Fatal(err)
	}
	st.waitCount(tb, want, netip.MustParseAddr(A), netip.Addr{}, nil)
	load := time.Since(start)
	var resets []time.Duration
	for range 3 {
		t := time.Now()
		if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_IN}); err != nil {
			tb.Fatal(err)
		}
		resets = append(resets, time.Since(t))
	}
	slices.Sort(resets)
	return rpkiRun{load: load, reset: resets[1], installed: st.count(netip.MustParseAddr(A), netip.Addr{})}
}

// BenchmarkRPKI compares a speaker with an RTR cache (reject invalid)
// with one without, side by side: the table load and the re-evaluation
// that a VRP change costs (a soft reset in of every path).
//
// Measured (2 cores, shared with other work; ratios within one run),
// 200k paths and 100k VRPs: with critbitgo v1.4.0 as GoBGP has it, load
// x5.7 (20 s → 116 s) and soft reset x18 (3.3 s → 60 s): its WalkMatch
// visited a share of all VRPs per lookup. With the copy in
// third_party/critbitgo (one exact lookup per prefix length): load x1.31
// (28 s → 37 s), soft reset x1.33 (7.5 s → 9.9 s).
//
//	go test -run '^$' -bench BenchmarkRPKI -benchtime 1x ./bgp/
func BenchmarkRPKI(b *testing.B) {
	for range b.N {
		base := runRPKI(b, benchRPKIPrefixes, false)
		with := runRPKI(b, benchRPKIPrefixes, true)
		if with.installed != benchRPKIPrefixes*3/4 || base.installed != benchRPKIPrefixes {
			b.Fatalf("installed %d with rpki (want %d), %d without", with.installed, benchRPKIPrefixes*3/4, base.installed)
		}
		b.Logf("%d prefixes: load %v without rpki, %v with (x%.2f); soft reset in (re-evaluation) %v without, %v with (x%.2f)",
			benchRPKIPrefixes, base.load.Round(time.Millisecond), with.load.Round(time.Millisecond), float64(with.load)/float64(base.load),
			base.reset.Round(time.Millisecond), with.reset.Round(time.Millisecond), float64(with.reset)/float64(base.reset))
		b.ReportMetric(float64(with.reset)/float64(base.reset), "reset-ratio")
		b.ReportMetric(with.reset.Seconds(), "reset-s")
	}
}

// BenchmarkListRPKI is the cost of watchRPKI's poll (ListRpki, which
// counts the VRPs per cache in GoBGP's main loop) with 500k VRPs, about
// the Internet's.
//
//	go test -run '^$' -bench BenchmarkListRPKI ./bgp/
func BenchmarkListRPKI(b *testing.B) {
	const n = 500_000
	vrps := make([]*rtr.RTRIPPrefix, 0, n)
	for _, p := range benchTable(n) {
		vrps = append(vrps, rtr.NewRTRIPPrefix(p.Addr(), 24, 24, 65001, rtr.ANNOUNCEMENT))
	}
	port := serveRTR(b, vrps)
	pUs := freePort(b, "127.0.0.1")
	cfg := &config.Config{
		Router: config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		BGP:    config.BGP{ListenPort: int32(pUs), ListenAddresses: []string{"127.0.0.1"}},
		RPKI:   []config.RPKI{{Address: "127.0.0.1", Port: port, Lifetime: 60}},
	}
	s, err := New(Options{Config: cfg, Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	err = lab.PollEvery(ctx, 2*time.Minute, 100*time.Millisecond, func() error {
		st, err := listRPKI(ctx, s.srv)
		if err == nil && (len(st) != 1 || st[0].VRPs4 != n) {
			err = fmt.Errorf("VRPs not loaded: %+v", st)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := listRPKI(ctx, s.srv); err != nil {
			b.Fatal(err)
		}
	}
}
