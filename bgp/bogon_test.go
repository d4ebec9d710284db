package bgp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/xdprouter/xdprouter/config"
)

// announceTagged announces prefix with the given communities.
func (p *testPeer) announceTagged(t *testing.T, prefix string, communities ...uint32) {
	t.Helper()
	path, err := localPath(netip.MustParsePrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	path.Attrs = append(path.Attrs, bgp.NewPathAttributeCommunities(communities))
	if _, err := p.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}}); err != nil {
		t.Fatalf("peer %s: announce %s: %v", p.addr, prefix, err)
	}
}

// last returns the last update of prefix (false: none yet).
func (h *history) last(prefix string) (PathUpdate, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := netip.MustParsePrefix(prefix)
	for i := len(h.ups) - 1; i >= 0; i-- {
		if h.ups[i].Prefix == p {
			return h.ups[i], true
		}
	}
	return PathUpdate{}, false
}

// waitBlackhole waits until prefix is installed with the blackhole flag bh.
func (e *reloadEnv) waitBlackhole(prefix string, bh bool) {
	e.t.Helper()
	waitFor(e.t, e.hist.rec, prefix+" installed, blackhole "+map[bool]string{true: "yes", false: "no"}[bh], func() bool {
		u, ok := e.hist.last(prefix)
		return ok && len(u.NextHops) > 0 && u.Blackhole == bh
	})
}

const (
	rfc7999  = uint32(bgp.COMMUNITY_BLACKHOLE) // 65535:666
	custom   = 65000<<16 | 666
	tagOther = 65000<<16 | 100
)

// TestBogonFilterAndBlackholes: with bogon-filter, routes inside bogon
// ranges and routes longer than the bounds are rejected on import, except
// the blackhole routes of the neighbor with accept-blackhole (not when
// inside a bogon range); those come out as Blackhole, the same community
// from another neighbor is ignored. SIGHUP-style reloads switch the filter
// off, take accept-blackhole away and change the communities without
// resetting sessions. Learned blackhole-tagged routes are never exported.
func TestBogonFilterAndBlackholes(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2", "127.0.0.3")
	a, b := e.nbr("127.0.0.2"), e.nbr("127.0.0.3")
	a.AcceptBlackhole = true
	b.Export = "accept-all"
	conf := func(filter bool, communities []string, nbrs ...config.Neighbor) *config.Config {
		c := e.cfg(nbrs)
		c.BGP.BogonFilter = filter
		c.BGP.BlackholeCommunities = communities
		return c
	}
	std := []string{config.CommunityBlackhole}
	e.start(conf(true, std, a, b))
	peerA, peerB := e.peer("127.0.0.2"), e.peer("127.0.0.3")
	e.waitUp("127.0.0.2", "127.0.0.3")

	peerA.announce(t, "8.8.8.0/24", "0.0.0.0/0", // public, a default route: accepted
		"8.8.8.0/25",                                                                      // too long
		"192.168.5.0/24", "198.18.1.0/24", "10.20.0.0/16", "100.64.0.0/24", "240.0.0.0/8") // bogons
	peerA.announceTagged(t, "8.8.4.4/32", rfc7999)     // a blackhole: any length
	peerA.announceTagged(t, "192.168.1.1/32", rfc7999) // a blackhole in a bogon range
	peerA.announceTagged(t, "1.2.3.0/24", tagOther)
	peerB.announceTagged(t, "9.9.9.9/32", rfc7999) // not allowed: a normal /32, too long
	peerB.announceTagged(t, "9.9.9.0/24", rfc7999) // not allowed: a normal route

	e.waitBlackhole("8.8.4.4/32", true)
	e.waitBlackhole("9.9.9.0/24", false)
	e.waitBlackhole("1.2.3.0/24", false)
	waitRoute(t, e.hist.rec, "8.8.8.0/24", "127.0.0.2")
	waitRoute(t, e.hist.rec, "0.0.0.0/0", "127.0.0.2")
	peerA.announce(t, "1.1.1.0/24") // a marker: what came before is delivered
	waitRoute(t, e.hist.rec, "1.1.1.0/24", "127.0.0.2")
	rejected := []string{"8.8.8.0/25", "192.168.5.0/24", "198.18.1.0/24", "10.20.0.0/16", "100.64.0.0/24", "240.0.0.0/8", "192.168.1.1/32", "9.9.9.9/32"}
	for _, p := range rejected {
		if u, ok := e.hist.last(p); ok {
			t.Errorf("bogon %s installed: %+v", p, u)
		}
	}
	// Exported to B: learned routes, but none tagged with a blackhole
	// community (8.8.4.4/32 from A, 9.9.9.0/24 B's own anyway).
	waitFor(t, nil, "B receives A's routes", func() bool {
		return slices.Contains(peerB.received(t, bgp.RF_IPv4_UC), "1.1.1.0/24")
	})
	if got := peerB.received(t, bgp.RF_IPv4_UC); slices.Contains(got, "8.8.4.4/32") || !slices.Contains(got, "1.2.3.0/24") {
		t.Errorf("B received %v: want 1.2.3.0/24 (another community), not the blackhole 8.8.4.4/32", got)
	}
	stA, stB := e.session("127.0.0.2"), e.session("127.0.0.3")

	// Filter off: everything is accepted, without a session reset.
	e.mustReload(conf(false, std, a, b))
	for _, p := range rejected {
		waitFor(t, e.hist.rec, p+" accepted", func() bool { _, ok := e.hist.rec.get(p); return ok })
	}
	e.waitBlackhole("192.168.1.1/32", true)
	e.waitBlackhole("9.9.9.9/32", false)
	e.checkSession("127.0.0.2", stA)
	e.checkSession("127.0.0.3", stB)

	// A may no longer send blackholes: its routes become normal ones,
	// although nothing about them changed in GoBGP.
	a2 := a
	a2.AcceptBlackhole = false
	e.mustReload(conf(false, std, a2, b))
	e.waitBlackhole("8.8.4.4/32", false)
	e.waitBlackhole("192.168.1.1/32", false)

	// Allowed again, with the operator's community only.
	peerA.announceTagged(t, "8.8.4.0/24", custom)
	e.waitBlackhole("8.8.4.0/24", false)
	e.mustReload(conf(false, []string{"65000:666"}, a, b))
	e.waitBlackhole("8.8.4.0/24", true)
	e.waitBlackhole("8.8.4.4/32", false) // RFC 7999's is no longer one
	e.checkSession("127.0.0.2", stA)
	e.checkPolicyState(conf(false, []string{"65000:666"}, a, b))

	// Withdrawn: gone.
	peerA.withdraw(t, "8.8.4.0/24")
	waitRoute(t, e.hist.rec, "8.8.4.0/24")
}

// TestBogonTranslate: the filter's sets hold every bogon range with all
// its more-specifics, one family each; the length sets follow the bounds
// (none at /32 or /128); the import policy of a neighbor with
// accept-blackhole exempts blackhole-tagged routes from the length bound
// only; the filter off adds nothing to import.
func TestBogonTranslate(t *testing.T) {
	cfg := &config.Config{
		Router: config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		BGP: config.BGP{BogonFilter: true, BogonMaxLengthV4: 32, BogonMaxLengthV6: 64,
			BlackholeCommunities: []string{"65535:666"}},
		Neighbors: []config.Neighbor{
			{Address: "192.0.2.1", PeerASN: 65001, Import: "accept-all", Export: "accept-all", AcceptBlackhole: true},
			{Address: "2001:db8::1", PeerASN: 65002, Import: "accept-all", Export: "reject-all"},
		},
	}
	p, err := translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]*api.DefinedSet{}
	for _, ds := range p.definedSets {
		sets[ds.Name] = ds
	}
	for _, name := range []string{bogonSetV4, bogonSetV6, tooLongSetV6, blackholeComms} {
		if sets[name] == nil {
			t.Fatalf("no defined set %s", name)
		}
	}
	if sets[tooLongSetV4] != nil {
		t.Errorf("length set for IPv4 with a /32 bound: %v", sets[tooLongSetV4])
	}
	if got := sets[tooLongSetV6].Prefixes[0]; got.IpPrefix != "::/0" || got.MaskLengthMin != 65 || got.MaskLengthMax != 128 {
		t.Errorf("IPv6 length set %v", got)
	}
	n := 0
	for _, name := range []string{bogonSetV4, bogonSetV6} {
		for _, e := range sets[name].Prefixes {
			pfx := netip.MustParsePrefix(e.IpPrefix)
			if pfx.Addr().Is4() != (name == bogonSetV4) || int(e.MaskLengthMin) != pfx.Bits() || int(e.MaskLengthMax) != pfx.Addr().BitLen() {
				t.Errorf("%s entry %v", name, e)
			}
			n++
		}
	}
	if n != len(Bogons) {
		t.Errorf("%d bogon entries, want %d", n, len(Bogons))
	}
	pol := func(name string) *api.Policy {
		t.Helper()
		for _, x := range p.policies {
			if x.Name == name {
				return x
			}
		}
		t.Fatalf("no policy %s", name)
		return nil
	}
	imp := pol(derivedPolicyName("import", netip.MustParseAddr("192.0.2.1"), "accept-all"))
	// bogons v4, v6, too long v6 (with the blackhole exemption), accept.
	if len(imp.Statements) != 4 || imp.Statements[2].Conditions.CommunitySet.GetType() != api.MatchSet_TYPE_INVERT {
		t.Errorf("import policy of the accept-blackhole neighbor: %v", imp)
	}
	imp6 := pol(derivedPolicyName("import", netip.MustParseAddr("2001:db8::1"), "accept-all"))
	if len(imp6.Statements) != 4 || imp6.Statements[2].Conditions.CommunitySet != nil {
		t.Errorf("import policy of the other neighbor: %v", imp6)
	}
	exp := pol(derivedPolicyName("export", netip.MustParseAddr("192.0.2.1"), "accept-all"))
	if len(exp.Statements) != 3 || exp.Statements[0].Conditions.CommunitySet.GetName() != blackholeComms {
		t.Errorf("export policy: %v", exp)
	}
	if rej := pol(derivedPolicyName("export", netip.MustParseAddr("2001:db8::1"), "reject-all")); len(rej.Statements) != 1 {
		t.Errorf("reject-all export policy grew: %v", rej)
	}

	cfg.BGP.BogonFilter = false
	p, _ = translate(cfg)
	for _, x := range p.policies {
		if x.Name == imp.Name && len(x.Statements) != 1 {
			t.Errorf("filter off: import policy %v", x)
		}
	}
}

func TestParseCommunity(t *testing.T) {
	for s, want := range map[string]uint32{"65535:666": rfc7999, "blackhole": rfc7999, "65000:666": custom, "0:0": 0} {
		if got, ok := parseCommunity(s); !ok || got != want {
			t.Errorf("parseCommunity(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	if _, ok := parseCommunity("65536:1"); ok {
		t.Error("65536:1 parsed")
	}
}
