package bgp

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/config"
)

// picRecorder keeps the last update of every prefix, backup included.
type picRecorder struct {
	*recorder
	mu   sync.Mutex
	last map[netip.Prefix]PathUpdate
}

func newPICRecorder() *picRecorder {
	return &picRecorder{recorder: newRecorder(), last: map[netip.Prefix]PathUpdate{}}
}

func (r *picRecorder) onBest(ups []PathUpdate) {
	r.mu.Lock()
	for _, u := range ups {
		if len(u.NextHops) == 0 {
			if len(u.Backup) != 0 {
				panic(fmt.Sprintf("backup without primary: %+v", u))
			}
			delete(r.last, u.Prefix)
			continue
		}
		r.last[u.Prefix] = u
	}
	r.mu.Unlock()
	r.recorder.onBest(ups)
}

func (r *picRecorder) lookup(p string) (PathUpdate, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, ok := r.last[netip.MustParsePrefix(p)]
	return u, ok
}

// waitPIC waits until prefix has the given primary next hops (none: no
// route) and backup ("" = none). Next hops are the test peers' addresses,
// so they name the peers too.
func waitPIC(t *testing.T, r *picRecorder, prefix string, primary []string, backup string) {
	t.Helper()
	var got PathUpdate
	defer func() {
		if t.Failed() {
			t.Logf("%s: last update %+v", prefix, got)
		}
	}()
	waitFor(t, r.recorder, fmt.Sprintf("%s via %v backup %q", prefix, primary, backup), func() bool {
		u, ok := r.lookup(prefix)
		got = u
		if len(primary) == 0 {
			return !ok
		}
		if !ok || !slices.Equal(u.NextHops, addrs(primary...)) || !slices.Contains(addrs(primary...), u.Peer) {
			return false
		}
		if backup == "" {
			return len(u.Backup) == 0 && !u.BackupPeer.IsValid()
		}
		b := netip.MustParseAddr(backup)
		return slices.Equal(u.Backup, []netip.Addr{b}) && u.BackupPeer == b
	})
}

// announcePrepend announces prefixes with an AS path longer by n hops.
func (p *testPeer) announcePrepend(t *testing.T, n int, prefixes ...string) {
	t.Helper()
	for _, s := range prefixes {
		path, err := localPath(netip.MustParsePrefix(s))
		if err != nil {
			t.Fatal(err)
		}
		path.Attrs = append(path.Attrs, prependAttr(n))
		if _, err := p.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err != nil {
			t.Fatalf("peer %s: announce %s: %v", p.addr, s, err)
		}
	}
}

func prependAttr(n int) bgp.PathAttributeInterface {
	as := make([]uint32, n)
	for i := range as {
		as[i] = 64999
	}
	return bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, as)})
}

// picEnv is a speaker with Backup on and neighbors 127.0.0.2 (a), .3 (b)
// and .4 (c); b's import policy gives 10.20.0.0/16 local-pref 200.
type picEnv struct {
	*reloadEnv
	rec     *picRecorder
	dropped chan netip.Addr
}

func newPICEnv(t *testing.T, multipath bool) (*picEnv, *testPeer, *testPeer, *testPeer) {
	e := &picEnv{reloadEnv: newReloadEnv(t, "127.0.0.2", "127.0.0.3", "127.0.0.4"), rec: newPICRecorder(), dropped: make(chan netip.Addr, 10)}
	cfg := e.picCfg(false)
	cfg.BGP.UseMultiplePaths = multipath
	s, err := New(Options{Config: cfg, Logger: testLogger(t), OnBest: e.rec.onBest, Backup: true,
		OnPeerDropped: func(a netip.Addr) { e.dropped <- a }})
	if err != nil {
		t.Fatal(err)
	}
	startStarted(t, s)
	e.s = s
	var ps []*testPeer
	for _, a := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		asn := 65000 + uint32(netip.MustParseAddr(a).As4()[3])
		ps = append(ps, startPeer(t, peerSpec{addr: a, port: e.ports[a], asn: asn, speaker: "127.0.0.1", speakerPt: e.port, multipath: multipath}))
	}
	e.waitUp("127.0.0.2", "127.0.0.3", "127.0.0.4")
	return e, ps[0], ps[1], ps[2]
}

// picCfg: b's routes in 10.20.0.0/16 get local-pref 200, with demote its
// routes in 10.30.0.0/16 get 50; everything else keeps the default (100).
func (e *picEnv) picCfg(demote bool) *config.Config {
	nbrs := []config.Neighbor{e.nbr("127.0.0.2"), e.nbr("127.0.0.3"), e.nbr("127.0.0.4")}
	nbrs[1].Import = "prefer-b"
	c := e.cfg(nbrs)
	c.PrefixSets = append(c.PrefixSets,
		config.PrefixSet{Name: "up", Prefixes: []string{"10.20.0.0/16 16..24"}},
		config.PrefixSet{Name: "down", Prefixes: []string{"10.30.0.0/16 16..24"}})
	st := []config.Statement{{Name: "up", MatchPrefixSet: "up", Action: "accept", SetLocalPref: 200}}
	if demote {
		st = append(st, config.Statement{Name: "down", MatchPrefixSet: "down", Action: "accept", SetLocalPref: 50})
	}
	st = append(st, config.Statement{Name: "rest", Action: "accept"})
	c.Policies = append(c.Policies, config.Policy{Name: "prefer-b", Statements: st})
	return c
}

func startStarted(t *testing.T, s *Speaker) {
	t.Helper()
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
}

func TestBackupPaths(t *testing.T) {
	e, a, b, c := newPICEnv(t, false)
	const A, B, C = "127.0.0.2", "127.0.0.3", "127.0.0.4"
	r := e.rec

	t.Run("first path: primary, no backup", func(t *testing.T) {
		a.announce(t, "10.1.0.0/24")
		waitPIC(t, r, "10.1.0.0/24", []string{A}, "")
	})
	t.Run("b arrives after a: best unchanged, b is the backup", func(t *testing.T) {
		b.announce(t, "10.1.0.0/24") // eBGP tie: a's path is older (or, same second, from the lower address)
		waitPIC(t, r, "10.1.0.0/24", []string{A}, B)
	})
	t.Run("b withdraws: backup cleared", func(t *testing.T) {
		b.withdraw(t, "10.1.0.0/24")
		waitPIC(t, r, "10.1.0.0/24", []string{A}, "")
	})
	t.Run("a withdraws: b primary, no backup", func(t *testing.T) {
		b.announce(t, "10.1.0.0/24")
		waitPIC(t, r, "10.1.0.0/24", []string{A}, B)
		a.withdraw(t, "10.1.0.0/24")
		waitPIC(t, r, "10.1.0.0/24", []string{B}, "")
		b.withdraw(t, "10.1.0.0/24")
		waitPIC(t, r, "10.1.0.0/24", nil, "")
	})
	t.Run("local-pref decides the primary", func(t *testing.T) {
		a.announce(t, "10.20.1.0/24")
		waitPIC(t, r, "10.20.1.0/24", []string{A}, "")
		b.announce(t, "10.20.1.0/24") // local-pref 200 from b's import policy
		waitPIC(t, r, "10.20.1.0/24", []string{B}, A)
	})
	t.Run("third, worse path becomes the backup when b withdraws", func(t *testing.T) {
		a.announce(t, "10.3.0.0/24")
		b.announce(t, "10.3.0.0/24")
		c.announcePrepend(t, 2, "10.3.0.0/24")
		waitPIC(t, r, "10.3.0.0/24", []string{A}, B)
		b.withdraw(t, "10.3.0.0/24")
		waitPIC(t, r, "10.3.0.0/24", []string{A}, C)
	})
	t.Run("policy change moves only the backup (soft reset in, no UPDATE, no best-path change)", func(t *testing.T) {
		a.announce(t, "10.30.1.0/24")
		waitPIC(t, r, "10.30.1.0/24", []string{A}, "")
		b.announce(t, "10.30.1.0/24")
		c.announcePrepend(t, 1, "10.30.1.0/24")
		waitPIC(t, r, "10.30.1.0/24", []string{A}, B)
		e.mustReload(e.picCfg(true)) // b's path now local-pref 50: c's is next after a
		waitPIC(t, r, "10.30.1.0/24", []string{A}, C)
	})
	t.Run("session down: a's paths leave, b takes over", func(t *testing.T) {
		b.announce(t, "10.4.0.0/24")
		a.announcePrepend(t, 1, "10.4.0.0/24")
		waitPIC(t, r, "10.4.0.0/24", []string{B}, A)
		waitPIC(t, r, "10.3.0.0/24", []string{A}, C)
		a.srv.Stop()
		select {
		case got := <-e.dropped:
			if got != netip.MustParseAddr(A) {
				t.Errorf("OnPeerDropped(%v), want a", got)
			}
		case <-time.After(waitTimeout):
			t.Fatal("OnPeerDropped not called")
		}
		waitPIC(t, r, "10.4.0.0/24", []string{B}, "")
		waitPIC(t, r, "10.3.0.0/24", []string{C}, "")
		waitPIC(t, r, "10.20.1.0/24", []string{B}, "")
		waitPIC(t, r, "10.30.1.0/24", []string{C}, B)
	})
}

func TestBackupPathsMultipath(t *testing.T) {
	e, a, b, c := newPICEnv(t, true)
	const A, B, C = "127.0.0.2", "127.0.0.3", "127.0.0.4"
	r := e.rec
	a.announce(t, "10.9.0.0/24")
	b.announce(t, "10.9.0.0/24")
	waitPIC(t, r, "10.9.0.0/24", []string{A, B}, "")
	c.announcePrepend(t, 1, "10.9.0.0/24")
	waitPIC(t, r, "10.9.0.0/24", []string{A, B}, C) // the best path outside the set
	a.withdraw(t, "10.9.0.0/24")
	waitPIC(t, r, "10.9.0.0/24", []string{B}, C)
	b.withdraw(t, "10.9.0.0/24")
	waitPIC(t, r, "10.9.0.0/24", []string{C}, "")
}

func TestSelectPaths(t *testing.T) {
	best := func(p *apiutil.Path) *apiutil.Path { p.Best = true; return p }
	pfx := "10.0.0.0/24"
	cases := []struct {
		name    string
		paths   []*apiutil.Path
		primary []string
		backup  string
	}{
		{"none", nil, nil, ""},
		{"one", []*apiutil.Path{best(tpath(t, pfx, "192.0.2.1", "192.0.2.1", false))}, []string{"192.0.2.1"}, ""},
		{"two", []*apiutil.Path{
			best(tpath(t, pfx, "192.0.2.1", "192.0.2.1", false)),
			tpath(t, pfx, "192.0.2.2", "192.0.2.2", false),
		}, []string{"192.0.2.1"}, "192.0.2.2"},
		{"same next hop as the primary is skipped", []*apiutil.Path{
			best(tpath(t, pfx, "192.0.2.1", "192.0.2.1", false)),
			tpath(t, pfx, "192.0.2.1", "192.0.2.9", false),
			tpath(t, pfx, "192.0.2.3", "192.0.2.3", false),
		}, []string{"192.0.2.1"}, "192.0.2.3"},
		{"our own path best: nothing", []*apiutil.Path{
			best(tpath(t, pfx, "0.0.0.0", "", false)),
			tpath(t, pfx, "192.0.2.2", "192.0.2.2", false),
		}, nil, ""},
		{"our own path as a backup candidate is skipped", []*apiutil.Path{
			best(tpath(t, pfx, "192.0.2.1", "192.0.2.1", false)),
			tpath(t, pfx, "0.0.0.0", "", false),
			tpath(t, pfx, "192.0.2.2", "192.0.2.2", false),
		}, []string{"192.0.2.1"}, "192.0.2.2"},
		{"multipath set, then backup", []*apiutil.Path{
			best(tpath(t, pfx, "192.0.2.5", "192.0.2.5", false)),
			best(tpath(t, pfx, "192.0.2.4", "192.0.2.4", false)),
			tpath(t, pfx, "192.0.2.4", "192.0.2.8", false),
			tpath(t, pfx, "192.0.2.6", "192.0.2.6", false),
		}, []string{"192.0.2.4", "192.0.2.5"}, "192.0.2.6"},
	}
	for _, c := range cases {
		u := selectPaths(netip.MustParsePrefix(pfx), c.paths, nil, slog.New(slog.DiscardHandler))
		wantB := []netip.Addr(nil)
		if c.backup != "" {
			wantB = addrs(c.backup)
		}
		if !slices.Equal(u.NextHops, addrs(c.primary...)) || !slices.Equal(u.Backup, wantB) {
			t.Errorf("%s: got primary %v backup %v, want %v %v", c.name, u.NextHops, u.Backup, c.primary, c.backup)
		}
		if len(u.NextHops) > 0 && u.Peer != u.NextHops[0] {
			t.Errorf("%s: peer %v, want the lowest next hop's %v", c.name, u.Peer, u.NextHops[0])
		}
		if len(u.Backup) > 0 && u.BackupPeer != u.Backup[0] {
			t.Errorf("%s: backup peer %v", c.name, u.BackupPeer)
		}
	}
}

// TestBackupPathsIPv6: the worker reads the IPv6 table too (one neighbor:
// lo has only ::1, so no second path to be a backup).
func TestBackupPathsIPv6(t *testing.T) {
	cfg, us, pUs, pPeer := ipv6Loopback(t)
	r := newPICRecorder()
	s, err := New(Options{Config: cfg, Logger: testLogger(t), OnBest: r.onBest, Backup: true})
	if err != nil {
		t.Fatal(err)
	}
	startStarted(t, s)
	peer := startPeer(t, peerSpec{addr: "::1", port: pPeer, asn: 65001, speaker: us, speakerPt: pUs, passive: true})
	waitPeer(t, s, "::1", func(ps PeerStatus) bool { return ps.Up }, "up")
	peer.announce(t, "2001:db8:9::/48")
	waitPIC(t, r, "2001:db8:9::/48", []string{"::1"}, "")
	peer.withdraw(t, "2001:db8:9::/48")
	waitPIC(t, r, "2001:db8:9::/48", nil, "")
}
