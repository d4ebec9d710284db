package bgp

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/xdprouter/xdprouter/config"
)

// Reload tests: the speaker on 127.0.0.1, test peers on 127.0.0.2 and up,
// every one on a free port (see speaker_test.go).

// history records every PathUpdate in order, next to a recorder.
type history struct {
	rec *recorder
	mu  sync.Mutex
	ups []PathUpdate
}

func newHistory() *history { return &history{rec: newRecorder()} }

func (h *history) onBest(ups []PathUpdate) {
	h.mu.Lock()
	h.ups = append(h.ups, ups...)
	h.mu.Unlock()
	h.rec.onBest(ups)
}

func (h *history) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ups)
}

// withdrawnSince lists the prefixes withdrawn since mark m, sorted.
func (h *history) withdrawnSince(m int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, u := range h.ups[m:] {
		if len(u.NextHops) == 0 && !slices.Contains(out, u.Prefix.String()) {
			out = append(out, u.Prefix.String())
		}
	}
	slices.Sort(out)
	return out
}

// reloadEnv is a speaker on 127.0.0.1 with its configuration factory.
type reloadEnv struct {
	t     *testing.T
	port  uint32            // the speaker's
	ports map[string]uint32 // test peers' by address
	hist  *history
	s     *Speaker
}

func newReloadEnv(t *testing.T, peers ...string) *reloadEnv {
	e := &reloadEnv{t: t, port: freePort(t, "127.0.0.1"), ports: map[string]uint32{}, hist: newHistory()}
	for _, p := range peers {
		e.ports[p] = freePort(t, p)
	}
	return e
}

// nbr is a neighbor on a test peer address: AS 65000+last octet, import
// accept-all, export reject-all.
func (e *reloadEnv) nbr(addr string) config.Neighbor {
	return config.Neighbor{
		Address: addr, PeerASN: 65000 + uint32(netip.MustParseAddr(addr).As4()[3]), Port: e.ports[addr],
		LocalAddress: "127.0.0.1", ConnectRetry: 1, Import: "accept-all", Export: "reject-all",
	}
}

// cfg builds a fresh config (no slices shared with earlier ones).
func (e *reloadEnv) cfg(nbrs []config.Neighbor, networks ...string) *config.Config {
	c := &config.Config{
		Router:    config.Router{ASN: 65000, RouterID: "192.0.2.254"},
		BGP:       config.BGP{ListenPort: int32(e.port), ListenAddresses: []string{"127.0.0.1"}},
		Neighbors: slices.Clone(nbrs),
		PrefixSets: []config.PrefixSet{
			{Name: "bogons", Prefixes: []string{"10.66.0.0/16 16..24"}},
		},
		Policies: []config.Policy{{Name: "no-bogons", Statements: []config.Statement{
			{Name: "drop", MatchPrefixSet: "bogons", Action: "reject"},
			{Name: "rest", Action: "accept", SetMED: 7},
		}}},
	}
	for _, n := range networks {
		c.Networks = append(c.Networks, config.Network{Prefix: n})
	}
	return c
}

func (e *reloadEnv) start(cfg *config.Config) *Speaker {
	t := e.t
	t.Helper()
	s := startSpeaker(t, cfg, e.hist.onBest)
	e.s = s
	return s
}

func (e *reloadEnv) peer(addr string) *testPeer {
	asn := 65000 + uint32(netip.MustParseAddr(addr).As4()[3])
	return startPeer(e.t, peerSpec{addr: addr, port: e.ports[addr], asn: asn, speaker: "127.0.0.1", speakerPt: e.port})
}

func (e *reloadEnv) reload(cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return e.s.Reload(ctx, cfg)
}

func (e *reloadEnv) mustReload(cfg *config.Config) {
	e.t.Helper()
	if err := e.reload(cfg); err != nil {
		e.t.Fatalf("Reload: %v", err)
	}
}

func (e *reloadEnv) waitUp(addrs ...string) {
	e.t.Helper()
	for _, a := range addrs {
		waitPeer(e.t, e.s, a, func(ps PeerStatus) bool { return ps.Up }, "up")
	}
}

// stamp identifies one BGP session: a flap changes the flop count (and the
// uptime, to the second).
type stamp struct {
	flops  uint32
	uptime int64
	up     bool
}

func (e *reloadEnv) session(addr string) stamp {
	e.t.Helper()
	var st stamp
	found := false
	err := e.server().ListPeer(context.Background(), &api.ListPeerRequest{Address: addr}, func(p *api.Peer) {
		found = true
		st = stamp{
			flops:  p.GetState().GetFlops(),
			uptime: p.GetTimers().GetState().GetUptime().GetSeconds(),
			up:     p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED,
		}
	})
	if err != nil || !found {
		e.t.Fatalf("neighbor %s: found %v, %v", addr, found, err)
	}
	return st
}

func (e *reloadEnv) checkSession(addr string, was stamp) {
	e.t.Helper()
	if now := e.session(addr); now != was || !now.up {
		e.t.Errorf("session with %s changed: was %+v, now %+v", addr, was, now)
	}
}

func (e *reloadEnv) server() *server.BgpServer {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	return e.s.srv
}

// policyState renders a server's defined sets, policies and global
// assignments.
func policyState(t *testing.T, srv *server.BgpServer) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, typ := range []api.DefinedType{api.DefinedType_DEFINED_TYPE_PREFIX, api.DefinedType_DEFINED_TYPE_NEIGHBOR, api.DefinedType_DEFINED_TYPE_COMMUNITY} {
		var l []string
		if err := srv.ListDefinedSet(ctx, &api.ListDefinedSetRequest{DefinedType: typ}, func(ds *api.DefinedSet) {
			l = append(l, prototext.Format(ds))
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(l)
		b.WriteString(strings.Join(l, "\n"))
	}
	var l []string
	if err := srv.ListPolicy(ctx, &api.ListPolicyRequest{}, func(p *api.Policy) { l = append(l, prototext.Format(p)) }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(l)
	b.WriteString(strings.Join(l, "\n"))
	if err := srv.ListPolicyAssignment(ctx, &api.ListPolicyAssignmentRequest{}, func(a *api.PolicyAssignment) {
		b.WriteString(prototext.Format(a))
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkPolicyState compares the speaker's policy state with what Start
// installs for cfg on a fresh server: Reload must leave exactly that.
func (e *reloadEnv) checkPolicyState(cfg *config.Config) {
	t := e.t
	t.Helper()
	p, err := translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref := server.NewBgpServer(server.LoggerOption(testLogger(t).With("ref", true), nil))
	go ref.Serve()
	defer ref.Stop()
	ctx := context.Background()
	// No StartBgp: it rewrites GoBGP's package-level path selection
	// settings under the running servers (a data race). An empty
	// SetPolicies initializes the policy engine as StartBgp would.
	if err := ref.SetPolicies(ctx, &api.SetPoliciesRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := installPolicies(ctx, ref, p); err != nil {
		t.Fatal(err)
	}
	if got, want := policyState(t, e.server()), policyState(t, ref); got != want {
		t.Errorf("policy state after reload:\n%s\nwant (fresh start):\n%s", got, want)
	}
}

func TestReloadAddNeighbor(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2", "127.0.0.3")
	a, b := e.nbr("127.0.0.2"), e.nbr("127.0.0.3")
	cfg1 := e.cfg([]config.Neighbor{a})
	e.start(cfg1)
	peerA, peerB := e.peer("127.0.0.2"), e.peer("127.0.0.3")
	e.waitUp("127.0.0.2")
	peerA.announce(t, "10.1.0.0/24")
	waitRoute(t, e.hist.rec, "10.1.0.0/24", "127.0.0.2")
	stA := e.session("127.0.0.2")

	b.Import = "no-bogons"
	cfg2 := e.cfg([]config.Neighbor{a, b})
	e.mustReload(cfg2)
	e.waitUp("127.0.0.3")
	peerB.announce(t, "10.66.3.0/24", "10.3.0.0/24")
	waitRoute(t, e.hist.rec, "10.3.0.0/24", "127.0.0.3")
	if nh, ok := e.hist.rec.get("10.66.3.0/24"); ok {
		t.Errorf("10.66.3.0/24 from the new neighbor passed its import policy: %v", nh)
	}
	e.checkSession("127.0.0.2", stA)
	if _, ok := e.hist.rec.get("10.1.0.0/24"); !ok {
		t.Error("10.1.0.0/24 from the kept neighbor lost")
	}
	e.checkPolicyState(cfg2)

	// The same config again changes nothing.
	stB := e.session("127.0.0.3")
	e.mustReload(e.cfg([]config.Neighbor{a, b}))
	e.checkSession("127.0.0.2", stA)
	e.checkSession("127.0.0.3", stB)
}

func TestReloadRemoveNeighbor(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2", "127.0.0.3")
	a, b := e.nbr("127.0.0.2"), e.nbr("127.0.0.3")
	e.start(e.cfg([]config.Neighbor{a, b}))
	peerA, peerB := e.peer("127.0.0.2"), e.peer("127.0.0.3")
	e.waitUp("127.0.0.2", "127.0.0.3")
	peerA.announce(t, "10.1.0.0/24")
	peerB.announce(t, "10.2.0.0/24", "10.2.1.0/24")
	for _, p := range []string{"10.2.0.0/24", "10.2.1.0/24"} {
		waitRoute(t, e.hist.rec, p, "127.0.0.3")
	}
	waitRoute(t, e.hist.rec, "10.1.0.0/24", "127.0.0.2")
	stA := e.session("127.0.0.2")
	m := e.hist.mark()

	cfg2 := e.cfg([]config.Neighbor{a})
	e.mustReload(cfg2)
	for _, p := range []string{"10.2.0.0/24", "10.2.1.0/24"} {
		waitRoute(t, e.hist.rec, p) // withdrawn
	}
	// A later route from a proves the reload's events are all delivered.
	peerA.announce(t, "10.1.9.0/24")
	waitRoute(t, e.hist.rec, "10.1.9.0/24", "127.0.0.2")
	if got, want := e.hist.withdrawnSince(m), []string{"10.2.0.0/24", "10.2.1.0/24"}; !slices.Equal(got, want) {
		t.Errorf("withdrawn = %v, want %v", got, want)
	}
	ps, err := e.s.Peers(context.Background())
	if err != nil || len(ps) != 1 || ps[0].Address != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("Peers = %v, %v; want only 127.0.0.2", ps, err)
	}
	e.checkSession("127.0.0.2", stA)
	e.checkPolicyState(cfg2)
}

func TestReloadImportPolicy(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2")
	a := e.nbr("127.0.0.2")
	cfg1 := e.cfg([]config.Neighbor{a})
	e.start(cfg1)
	peerA := e.peer("127.0.0.2")
	e.waitUp("127.0.0.2")
	peerA.announce(t, "10.1.0.0/24", "10.66.1.0/24", "10.66.2.0/24")
	for _, p := range []string{"10.1.0.0/24", "10.66.1.0/24", "10.66.2.0/24"} {
		waitRoute(t, e.hist.rec, p, "127.0.0.2")
	}
	stA := e.session("127.0.0.2")
	m := e.hist.mark()

	a.Import = "no-bogons"
	cfg2 := e.cfg([]config.Neighbor{a})
	e.mustReload(cfg2)
	waitRoute(t, e.hist.rec, "10.66.1.0/24")
	waitRoute(t, e.hist.rec, "10.66.2.0/24")
	peerA.announce(t, "10.1.9.0/24") // a marker: everything before it is delivered
	waitRoute(t, e.hist.rec, "10.1.9.0/24", "127.0.0.2")
	if got, want := e.hist.withdrawnSince(m), []string{"10.66.1.0/24", "10.66.2.0/24"}; !slices.Equal(got, want) {
		t.Errorf("withdrawn = %v, want exactly %v", got, want)
	}
	if _, ok := e.hist.rec.get("10.1.0.0/24"); !ok {
		t.Error("10.1.0.0/24 lost")
	}
	e.checkSession("127.0.0.2", stA)
	e.checkPolicyState(cfg2)

	// The prefix set changes, the policy name does not: soft-in again.
	cfg3 := e.cfg([]config.Neighbor{a})
	cfg3.PrefixSets[0].Prefixes = []string{"10.66.2.0/24"}
	e.mustReload(cfg3)
	waitRoute(t, e.hist.rec, "10.66.1.0/24", "127.0.0.2")
	if _, ok := e.hist.rec.get("10.66.2.0/24"); ok {
		t.Error("10.66.2.0/24 accepted although still in the prefix set")
	}
	e.checkPolicyState(cfg3)

	// And back to accept-all.
	e.mustReload(cfg1)
	waitRoute(t, e.hist.rec, "10.66.1.0/24", "127.0.0.2")
	waitRoute(t, e.hist.rec, "10.66.2.0/24", "127.0.0.2")
	e.checkSession("127.0.0.2", stA)
	e.checkPolicyState(cfg1)
}

func TestReloadNetworks(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2")
	a := e.nbr("127.0.0.2")
	a.Export = "accept-all"
	e.start(e.cfg([]config.Neighbor{a}, "198.51.100.0/24"))
	peerA := e.peer("127.0.0.2")
	e.waitUp("127.0.0.2")
	waitFor(t, nil, "peer learns 198.51.100.0/24", func() bool {
		return slices.Equal(peerA.received(t, bgp.RF_IPv4_UC), []string{"198.51.100.0/24"})
	})
	stA := e.session("127.0.0.2")

	e.mustReload(e.cfg([]config.Neighbor{a}, "203.0.113.0/24", "192.0.2.0/25"))
	waitFor(t, nil, "peer RIB = the new networks", func() bool {
		return slices.Equal(peerA.received(t, bgp.RF_IPv4_UC), []string{"192.0.2.0/25", "203.0.113.0/24"})
	})
	e.mustReload(e.cfg([]config.Neighbor{a}))
	waitFor(t, nil, "peer RIB empty", func() bool { return len(peerA.received(t, bgp.RF_IPv4_UC)) == 0 })
	e.checkSession("127.0.0.2", stA)
	if _, ok := e.hist.rec.get("203.0.113.0/24"); ok {
		t.Error("our own network was reported to OnBest")
	}

	// Export to a turned to reject-all: soft-out withdraws what it has.
	e.mustReload(e.cfg([]config.Neighbor{a}, "203.0.113.0/24"))
	waitFor(t, nil, "peer learns 203.0.113.0/24", func() bool {
		return slices.Equal(peerA.received(t, bgp.RF_IPv4_UC), []string{"203.0.113.0/24"})
	})
	a.Export = "reject-all"
	e.mustReload(e.cfg([]config.Neighbor{a}, "203.0.113.0/24"))
	waitFor(t, nil, "peer RIB empty after export reject-all", func() bool { return len(peerA.received(t, bgp.RF_IPv4_UC)) == 0 })
	e.checkSession("127.0.0.2", stA)
}

func TestReloadRefusesRestartKeys(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2")
	a := e.nbr("127.0.0.2")
	a.Export = "accept-all"
	cfg1 := e.cfg([]config.Neighbor{a})
	s := e.start(cfg1)
	e.peer("127.0.0.2")
	e.waitUp("127.0.0.2")
	stA := e.session("127.0.0.2")

	cfg2 := e.cfg([]config.Neighbor{a}, "203.0.113.0/24")
	cfg2.Router.ASN = 65099
	cfg2.BGP.ListenPort++
	cfg2.API.GRPCListen = "127.0.0.1:50051"
	err := e.reload(cfg2)
	if !errors.Is(err, ErrNeedsRestart) {
		t.Fatalf("Reload changing router.asn: err = %v", err)
	}
	for _, key := range []string{"router.asn: changing it needs a restart", "bgp.listen-port", "api.grpc-listen"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	if strings.Contains(err.Error(), "router-id") || strings.Contains(err.Error(), "use-multiple-paths") {
		t.Errorf("error %q names keys that did not change", err)
	}
	checkConfig(t, s, cfg1)
	if got := adjOut(t, s, "127.0.0.2"); len(got) != 0 {
		t.Errorf("refused reload announced %v", got)
	}
	e.checkSession("127.0.0.2", stA)
	e.checkPolicyState(cfg1)

	// Equivalent spellings are no change.
	cfg3 := e.cfg([]config.Neighbor{a})
	cfg3.BGP.ListenAddresses = []string{"127.0.0.1", "127.0.0.1"}
	if err := e.reload(cfg3); err != nil {
		t.Errorf("Reload with the same listen address twice: %v", err)
	}
}

func TestReloadRefusesInvalid(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2", "127.0.0.3")
	a := e.nbr("127.0.0.2")
	cfg1 := e.cfg([]config.Neighbor{a}, "198.51.100.0/24")
	s := e.start(cfg1)
	peerA := e.peer("127.0.0.2")
	e.waitUp("127.0.0.2")
	peerA.announce(t, "10.66.1.0/24")
	waitRoute(t, e.hist.rec, "10.66.1.0/24", "127.0.0.2")
	stA := e.session("127.0.0.2")

	// A policy naming a prefix set that does not exist (built in code:
	// config validation catches it first; GoBGP refuses it too).
	bad := e.cfg([]config.Neighbor{a, e.nbr("127.0.0.3")})
	bad.Neighbors[0].Import = "no-bogons"
	bad.Policies[0].Statements[0].MatchPrefixSet = "missing"
	err := e.reload(bad)
	if err == nil || !strings.Contains(err.Error(), "reload refused: policies") {
		t.Fatalf("Reload with a dangling prefix-set: err = %v", err)
	}
	// Passes translation, GoBGP rejects it: the community set is no valid
	// regular expression.
	bad = e.cfg([]config.Neighbor{a, e.nbr("127.0.0.3")})
	bad.Neighbors[0].Import = "no-bogons"
	bad.CommunitySets = []config.CommunitySet{{Name: "broken", Communities: []string{"("}}}
	err = e.reload(bad)
	if err == nil || !strings.Contains(err.Error(), "policies") {
		t.Fatalf("Reload with an invalid community regexp: err = %v", err)
	}

	checkConfig(t, s, cfg1)
	ps, err := s.Peers(context.Background())
	if err != nil || len(ps) != 1 {
		t.Errorf("Peers after refused reloads = %v, %v; want a only", ps, err)
	}
	e.checkPolicyState(cfg1)
	e.checkSession("127.0.0.2", stA)
	// The old state keeps working: new routes, old policy.
	peerA.announce(t, "10.66.4.0/24")
	waitRoute(t, e.hist.rec, "10.66.4.0/24", "127.0.0.2")
	if _, ok := e.hist.rec.get("10.66.1.0/24"); !ok {
		t.Error("10.66.1.0/24 lost")
	}

	// And a valid reload afterwards applies.
	a.Import = "no-bogons"
	e.mustReload(e.cfg([]config.Neighbor{a}))
	waitRoute(t, e.hist.rec, "10.66.1.0/24")
	waitRoute(t, e.hist.rec, "10.66.4.0/24")
	e.checkSession("127.0.0.2", stA)
}

// A changed neighbor setting GoBGP updates in place keeps the session;
// any other change replaces that neighbor only.
func TestReloadChangedNeighbor(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2", "127.0.0.3")
	a, b := e.nbr("127.0.0.2"), e.nbr("127.0.0.3")
	e.start(e.cfg([]config.Neighbor{a, b}))
	e.peer("127.0.0.2")
	peerB := e.peer("127.0.0.3")
	e.waitUp("127.0.0.2", "127.0.0.3")
	peerB.announce(t, "10.3.0.0/24")
	waitRoute(t, e.hist.rec, "10.3.0.0/24", "127.0.0.3")
	stA, stB := e.session("127.0.0.2"), e.session("127.0.0.3")

	a.MaxPrefixes, a.HoldTime = 100, 60
	e.mustReload(e.cfg([]config.Neighbor{a, b}))
	e.checkSession("127.0.0.2", stA)
	e.checkSession("127.0.0.3", stB)

	b.Multihop = 5
	e.mustReload(e.cfg([]config.Neighbor{a, b}))
	waitPeer(t, e.s, "127.0.0.3", func(ps PeerStatus) bool { return ps.Up }, "up again")
	if st := e.session("127.0.0.3"); st == stB {
		t.Errorf("a multihop change did not replace the neighbor: session %+v", st)
	}
	waitRoute(t, e.hist.rec, "10.3.0.0/24", "127.0.0.3")
	e.checkSession("127.0.0.2", stA)
}

// A description is a label: changing it (alone, or with a timer) keeps the
// session and the routes (GoBGP would send Cease 6/6 and drop the routes
// if it were handed the new description).
func TestReloadDescriptionKeepsSession(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.2")
	a := e.nbr("127.0.0.2")
	a.Description = "upstream-a"
	e.start(e.cfg([]config.Neighbor{a}))
	peerA := e.peer("127.0.0.2")
	e.waitUp("127.0.0.2")
	peerA.announce(t, "10.1.0.0/24")
	waitRoute(t, e.hist.rec, "10.1.0.0/24", "127.0.0.2")
	stA := e.session("127.0.0.2")
	m := e.hist.mark()

	a.Description = "upstream-a (renamed)"
	e.mustReload(e.cfg([]config.Neighbor{a}))
	a.Description, a.HoldTime = "renamed again", 60
	e.mustReload(e.cfg([]config.Neighbor{a}))
	// A later route proves every event of the reloads was delivered.
	peerA.announce(t, "10.1.9.0/24")
	waitRoute(t, e.hist.rec, "10.1.9.0/24", "127.0.0.2")
	e.checkSession("127.0.0.2", stA)
	if w := e.hist.withdrawnSince(m); len(w) != 0 {
		t.Errorf("description change withdrew %v", w)
	}
	if ps := peerByAddr(t, e.s, "127.0.0.2"); ps.Description != "renamed again" {
		t.Errorf("Peers description = %q, want the configured %q", ps.Description, "renamed again")
	}
}

// checkConfig asserts a refused reload left the speaker's configuration.
func checkConfig(t *testing.T, s *Speaker, want *config.Config) {
	t.Helper()
	s.mu.Lock()
	same := s.cfg == want
	s.mu.Unlock()
	if !same {
		t.Error("refused reload replaced the configuration")
	}
}

// TestReloadDynamicNeighbors: a range added by a reload accepts a session
// (any AS), whose routes meet the peer group's import policy; a second
// session is over the range's limit, and its routes never get in. A new
// import policy is applied to the admitted session's routes (which stay
// admitted across the policy swap). Removed, the range closes its
// session, withdraws its routes and leaves the policies as a fresh start
// has them.
func TestReloadDynamicNeighbors(t *testing.T) {
	e := newReloadEnv(t, "127.0.0.5", "127.0.0.6")
	cfg1 := e.cfg(nil)
	e.start(cfg1)
	peer := e.peer("127.0.0.5")

	cfg2 := e.cfg(nil)
	cfg2.PeerGroups = []config.PeerGroup{{Name: "servers", Neighbor: config.Neighbor{
		Import: "no-bogons", Export: "reject-all", HoldTime: 90, KeepaliveInterval: 30, ConnectRetry: 1}}}
	cfg2.DynamicNeighbors = []config.DynamicNeighbor{{Prefix: "127.0.0.4/30", PeerGroup: "servers", Limit: 1}}
	e.mustReload(cfg2)
	var st PeerStatus
	waitFor(t, e.hist.rec, "the dynamic neighbor up", func() bool {
		ps, _ := e.s.Peers(context.Background())
		for _, p := range ps {
			if p.Address.String() == "127.0.0.5" {
				st = p
			}
		}
		return st.Up
	})
	if st.ASN != 65005 {
		t.Errorf("dynamic neighbor's AS %d, want the one it sent, 65005", st.ASN)
	}
	peer.announce(t, "10.66.3.0/24", "10.5.0.0/24")
	waitRoute(t, e.hist.rec, "10.5.0.0/24", "127.0.0.5")
	if nh, ok := e.hist.rec.get("10.66.3.0/24"); ok {
		t.Errorf("10.66.3.0/24 passed the peer group's import policy: %v", nh)
	}

	// Over the limit: refused (counted). It sends its route as soon as
	// its session is up, which may be before it is refused: the route
	// never was a best path, not even for a moment.
	late := e.peer("127.0.0.6")
	late.announce(t, "10.6.0.0/24")
	waitFor(t, e.hist.rec, "127.0.0.6 refused", func() bool {
		_, refused := e.s.dynamicCounts()
		return refused[netip.MustParsePrefix("127.0.0.4/30")] >= 1
	})
	e.hist.mu.Lock()
	for _, u := range e.hist.ups {
		if u.Prefix.String() == "10.6.0.0/24" {
			t.Errorf("a best-path update for the session over the limit: %+v", u)
		}
	}
	e.hist.mu.Unlock()

	// A new import policy for the range: re-applied to what it sent.
	cfg3 := e.cfg(nil)
	cfg3.PeerGroups = slices.Clone(cfg2.PeerGroups)
	cfg3.PeerGroups[0].Import = "accept-all"
	cfg3.DynamicNeighbors = cfg2.DynamicNeighbors
	e.mustReload(cfg3)
	waitRoute(t, e.hist.rec, "10.66.3.0/24", "127.0.0.5")
	if _, ok := e.hist.rec.get("10.5.0.0/24"); !ok {
		t.Error("10.5.0.0/24 lost across the policy change")
	}
	if sessions, _ := e.s.dynamicCounts(); sessions[netip.MustParsePrefix("127.0.0.4/30")] != 1 {
		t.Errorf("sessions admitted: %v", sessions)
	}

	e.mustReload(cfg1)
	waitRoute(t, e.hist.rec, "10.5.0.0/24")
	e.checkPolicyState(cfg1)
	var left []string
	if err := e.server().ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		left = append(left, peerAddr(p).String())
	}); err != nil || len(left) != 0 {
		t.Errorf("peers after the range was removed: %v, %v", left, err)
	}
}
