package test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/lab"
	xsync "github.com/xdprouter/xdprouter/sync"
)

const (
	nV4, nV6 = 10000, 2000
	// Destinations inside the announced prefixes, owned by the upstreams
	// (lab.Upstream: the first address of the first prefixes).
	dst4, dst6 = "100.64.0.1", "2001:db8:1000::1"
)

// exportOurs originates 192.0.2.0/24 and exports only it (with
// `export = "announce-ours"` on a neighbor).
const exportOurs = `
[[network]]
prefix = "192.0.2.0/24"

[[prefix-set]]
name = "ours"
prefixes = ["192.0.2.0/24"]

[[policy]]
name = "announce-ours"
[[policy.statement]]
name = "ours"
match-prefix-set = "ours"
action = "accept"
`

func announced(n4, n6 int) []netip.Prefix { return lab.Table(n4, n6) }

// upstream describes a peer host on r's eth<port>.
type upstream struct {
	role string
	port int
}

func (u upstream) v4() string { return fmt.Sprintf("10.0.%d.2", u.port) }
func (u upstream) v6() string { return fmt.Sprintf("fd00:%d::2", u.port) }

// h2 is the basic lab's second host, used as the first upstream.
var up1 = upstream{"h2", 2}

// addUpstream2 adds h3 on r's eth3 (a router port) as a second upstream.
func (r *router) addUpstream2() upstream {
	r.t.Helper()
	up2 := upstream{"h3", 3}
	if err := r.AddHost(up2.role, up2.port); err != nil {
		r.t.Fatal(err)
	}
	r.ports = append(r.ports, "eth3")
	return up2
}

// peer returns the BGP peer config for u, announcing prefixes; the peer
// owns dst4/dst6 so that traffic to them is answered.
func (r *router) peer(u upstream, prefixes []netip.Prefix) lab.BGPPeer {
	r.t.Helper()
	p, _, err := r.Upstream(u.role, u.port, prefixes, r.t.TempDir())
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// neighbors returns the [[neighbor]] TOML for sessions to ups.
func neighbors(extra string, ups ...upstream) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[router]\nasn = %d\nrouter-id = \"10.0.1.1\"\n\n", lab.RouterASN)
	for _, u := range ups {
		for _, a := range []string{u.v4(), u.v6()} {
			fmt.Fprintf(&b, "[[neighbor]]\naddress = %q\npeer-asn = %d\ndescription = %q\nimport = \"accept-all\"\n%s\n", a, lab.UpstreamASN, u.role, extra)
		}
	}
	return b.String()
}

func (r *router) status() api.Status {
	r.t.Helper()
	var s api.Status
	if err := r.ctl(&s, "status"); err != nil {
		r.t.Fatal(err)
	}
	return s
}

// waitRoutes waits until both sinks hold want4/want6 BGP routes: the
// kernel (ip route ... proto 200) and XDP (xdprouterctl status), and
// reports how long that took.
func (r *router) waitRoutes(what string, want4, want6 int) {
	r.t.Helper()
	start := time.Now()
	r.poll(60*time.Second, func() error {
		s := r.status()
		k4, k6 := r.kernelBGPRoutes()
		if s.Routes.FIB4 != want4 || s.Routes.FIB6 != want6 || k4 != want4 || k6 != want6 || s.Routes.Pending != 0 {
			return fmt.Errorf("%s: want %d+%d routes; xdprouterd reports kernel %d+%d, xdp %d+%d (pending %d); ip route shows %d+%d; peers %+v",
				what, want4, want6, s.Routes.FIB4, s.Routes.FIB6, s.Routes.XDP4, s.Routes.XDP6, s.Routes.Pending, k4, k6, s.Peers)
		}
		return nil
	})
	r.t.Logf("%s: %d+%d routes in both sinks after %v", what, want4, want6, time.Since(start).Round(time.Millisecond))
}

// kernelBGPRoutes counts r's kernel routes with xdprouterd's protocol.
func (r *router) kernelBGPRoutes() (v4, v6 int) {
	r.t.Helper()
	count := func(fam string) int {
		out, err := r.Output("r", "ip", fam, "route", "show", "proto", strconv.Itoa(fib.DefaultProtocol))
		if err != nil {
			r.t.Fatal(err)
		}
		n := 0 // routes, not the "nexthop via" lines of multipath routes
		for _, line := range strings.Split(out, "\n") {
			if line != "" && line[0] != ' ' && line[0] != '\t' {
				n++
			}
		}
		return n
	}
	return count("-4"), count("-6")
}

// pingXDP pings dst from h1 and checks XDP forwarded every packet.
func (r *router) pingXDP(dst string) {
	r.t.Helper()
	r.waitRedirect(dst)
	before := r.counter(bpf.ActionRedirect, "")
	if err := r.Run("h1", "ping", "-c3", "-i0.05", "-W1", dst); err != nil {
		r.t.Fatal(err)
	}
	if got := r.counter(bpf.ActionRedirect, "") - before; got != 6 {
		r.t.Errorf("redirected %d packets for 3 pings to %s, want 6", got, dst)
	}
}

func needBinary(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not installed (make deps): %v", path, err)
	}
}

// TestBGPWithBIRD: a BIRD 2 upstream announces 10k IPv4 and 2k IPv6
// prefixes over v4 and v6 sessions.
func TestBGPWithBIRD(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	p := r.peer(up1, announced(nV4, nV6))
	bird, err := r.StartBIRD(p)
	if err != nil {
		t.Fatal(err)
	}
	// We originate one prefix and export only it (an export policy).
	export := exportOurs
	r.start(neighbors(`export = "announce-ours"`, up1) + export)
	r.waitRoutes("learned from BIRD", nV4, nV6)
	r.poll(10*time.Second, func() error {
		out, err := r.BirdC(p, "show", "route", "protocol", "peer0")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "192.0.2.0/24") || strings.Contains(out, "100.64.") {
			return fmt.Errorf("BIRD should learn exactly our network from us:\n%s", out)
		}
		return nil
	})

	// The stock gobgp CLI sees the sessions.
	out, err := r.Output("r", filepath.Join(bin, "gobgp"), "-p", lab.GRPCPort, "neighbor")
	if err != nil || strings.Count(out, "Establ") != 2 {
		t.Errorf("gobgp neighbor: want 2 established sessions: %v\n%s", err, out)
	}
	// The kernel FIB holds what XDP does.
	if out, err := r.Output("r", "ip", "route", "get", dst4); err != nil || !strings.Contains(out, "via "+up1.v4()) {
		t.Errorf("ip route get %s: %v %s", dst4, err, out)
	}
	var routes []xsync.RouteInfo
	if err := r.ctl(&routes, "routes", "100.64.0.0/24"); err != nil || len(routes) != 1 || !routes[0].InXDP || !routes[0].InKernel {
		t.Errorf("xdprouterctl routes 100.64.0.0/24 = %+v, %v", routes, err)
	}
	r.pingXDP(dst4)
	r.pingXDP(dst6)

	// Withdraw (v4 only), then announce again.
	if _, err := r.BirdC(p, "disable", "static_ipv4"); err != nil {
		t.Fatal(err)
	}
	r.waitRoutes("IPv4 withdrawn", 0, nV6)
	if d := r.lookup(dst4); d.Action != bpf.ActionPass || d.Reason != bpf.ReasonNoRoute {
		t.Errorf("after withdraw, lookup %s = %+v, want pass no_route", dst4, d)
	}
	if _, err := r.BirdC(p, "enable", "static_ipv4"); err != nil {
		t.Fatal(err)
	}
	r.waitRoutes("IPv4 announced again", nV4, nV6)

	// The peer goes away: everything it announced goes with it.
	if err := bird.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.waitRoutes("BIRD stopped", 0, 0)
}

// TestBGPWithFRR: FRR's bgpd as the upstream, v4 and v6 sessions.
func TestBGPWithFRR(t *testing.T) {
	needBinary(t, lab.FRRBin+"/bgpd")
	r := newLab(t)
	p := r.peer(up1, announced(nV4, nV6))
	frr, err := r.StartFRR(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bgpd output:\n%s", frr.Out.String())
		}
	})
	r.start(neighbors("", up1))
	r.waitRoutes("learned from FRR", nV4, nV6)
	r.pingXDP(dst4)
	r.pingXDP(dst6)
	if err := frr.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.waitRoutes("FRR stopped", 0, 0)
}

// TestBGPECMP: two upstreams announce the same prefixes; with
// use-multiple-paths every prefix gets both, and flows spread over both.
func TestBGPECMP(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	up2 := r.addUpstream2()
	prefixes := announced(100, 10)
	for _, u := range []upstream{up1, up2} {
		if _, err := r.StartBIRD(r.peer(u, prefixes)); err != nil {
			t.Fatal(err)
		}
	}
	r.start("[bgp]\nuse-multiple-paths = true\n\n" + neighbors("", up1, up2))
	r.waitRoutes("learned from two upstreams", 100, 10)
	d := r.waitDecision(dst4, "two next hops", func(d bpf.Decision) bool { return len(d.Candidates) == 2 })
	if d.Candidates[0].Ifindex == d.Candidates[1].Ifindex {
		t.Errorf("both ECMP members leave through ifindex %d", d.Candidates[0].Ifindex)
	}
	if out, _ := r.Output("r", "ip", "route", "show", "100.64.0.0/24"); strings.Count(out, "nexthop via") != 2 {
		t.Errorf("kernel route is not multipath:\n%s", out)
	}

	// 64 UDP flows (distinct source ports): both upstreams get a share.
	rx := func(role string) int {
		out, err := r.Output(role, "cat", "/sys/class/net/eth0/statistics/rx_packets")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		return n
	}
	// Something listens on the flows' port: no ICMP errors come back.
	for _, u := range []upstream{up1, up2} {
		if err := r.Do(u.role, func() error {
			c, err := net.ListenPacket("udp4", ":9")
			if err == nil {
				t.Cleanup(func() { c.Close() })
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	a0, b0 := rx(up1.role), rx(up2.role)
	before := r.counter(bpf.ActionRedirect, "")
	const flows = 64
	if err := r.Do("h1", func() error { return sendFlows("udp4", dst4+":9", flows) }); err != nil {
		t.Fatal(err)
	}
	a, b := rx(up1.role)-a0, rx(up2.role)-b0
	t.Logf("flows split %d / %d", a, b)
	if a < flows/8 || b < flows/8 {
		t.Errorf("ECMP split %d / %d of %d flows: not spread", a, b, flows)
	}
	if got := r.counter(bpf.ActionRedirect, "") - before; got != flows {
		t.Errorf("redirected %d, want %d", got, flows)
	}
}

// TestBGPMaxPrefixes: a peer sending more than max-prefixes is shut down
// with the Cease "maximum number of prefixes reached" NOTIFICATION (as the
// peer reports it), nothing it sent stays installed, and after
// max-prefixes-restart the session is started again: it trips again, since
// the peer still sends too many.
func TestBGPMaxPrefixes(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	bird := r.peer(up1, announced(500, 0))
	if _, err := r.StartBIRD(bird); err != nil {
		t.Fatal(err)
	}
	r.start(neighbors("max-prefixes = 100\nmax-prefixes-restart = 3", up1))
	shut := func() error {
		for _, p := range r.status().Peers {
			if p.Address.Is4() && p.State == "max-prefixes" {
				return nil
			}
		}
		return fmt.Errorf("peer not shut down for max-prefixes: %+v", r.status().Peers)
	}
	r.poll(30*time.Second, shut)
	r.poll(10*time.Second, func() error {
		out, err := r.BirdC(bird, "show", "protocols", "all", "peer0")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "Maximum number of prefixes reached") {
			return fmt.Errorf("BIRD does not report the max-prefixes Cease:\n%s", out)
		}
		return nil
	})
	r.waitRoutes("after max-prefixes", 0, 0)

	// Restarted after 3 s, over the limit again, shut down again: counted
	// once per shutdown.
	trips := func() int {
		for _, l := range strings.Split(r.metrics(), "\n") {
			if strings.HasPrefix(l, "xdprouter_bgp_max_prefixes_shutdowns_total{peer=\""+up1.v4()+"\"} ") {
				n, _ := strconv.Atoi(strings.Fields(l)[1])
				return n
			}
		}
		return 0
	}
	r.poll(60*time.Second, func() error {
		if n := trips(); n < 2 {
			return fmt.Errorf("%d max-prefixes shutdowns, want 2 (restarted after max-prefixes-restart)", n)
		}
		return nil
	})
	r.poll(30*time.Second, shut)
	r.waitRoutes("after the second max-prefixes shutdown", 0, 0)
}

// blockPolicy is an import policy rejecting 100.64.0.0/22 and everything
// more specific (the first 4 of the announced /24s), accepting the rest.
const blockPolicy = `
[[prefix-set]]
name = "blocked"
prefixes = ["100.64.0.0/22 22..24"]

[[policy]]
name = "upstream-in"
[[policy.statement]]
name = "drop-blocked"
match-prefix-set = "blocked"
action = "reject"
[[policy.statement]]
name = "rest"
action = "accept"
`

// TestBGPImportPolicy: an import policy rejects a prefix set.
func TestBGPImportPolicy(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	if _, err := r.StartBIRD(r.peer(up1, announced(100, 0))); err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(neighbors("", up1), `import = "accept-all"`, `import = "upstream-in"`)
	r.start(cfg + blockPolicy)
	r.waitRoutes("filtered", 96, 0)
	var routes []xsync.RouteInfo
	if err := r.ctl(&routes, "routes", "100.64.0.0/22"); err != nil {
		t.Fatal(err)
	}
	if len(routes) != 0 {
		t.Errorf("filtered prefixes installed: %+v", routes)
	}
}

// TestBGPRestartKeepsRoutes: with fib.keep-routes-on-exit, a stop leaves the
// BGP routes in the kernel (which keeps forwarding), and the next start
// reconciles without rewriting any route that is already right.
func TestBGPRestartKeepsRoutes(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	if _, err := r.StartBIRD(r.peer(up1, announced(nV4, nV6))); err != nil {
		t.Fatal(err)
	}
	cfg := "[fib]\nkeep-routes-on-exit = true\n\n" + neighbors("", up1)
	r.start(cfg)
	r.waitRoutes("first start", nV4, nV6)
	if err := r.daemon.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if k4, k6 := r.kernelBGPRoutes(); k4 != nV4 || k6 != nV6 {
		t.Fatalf("after stop the kernel has %d+%d BGP routes, want %d+%d kept", k4, k6, nV4, nV6)
	}
	r.start(cfg)
	// The kept routes count as installed at once; wait until BGP has
	// re-learned them all (XDP holds them again) before judging the writes.
	r.poll(60*time.Second, func() error {
		s := r.status()
		if s.Routes.XDP4 < nV4 || s.Routes.XDP6 < nV6 || s.Routes.Pending != 0 {
			return fmt.Errorf("re-learning: %+v", s.Routes)
		}
		return nil
	})
	r.waitRoutes("after restart", nV4, nV6)
	m := r.metrics()
	for _, want := range []string{
		`xdprouter_route_writes_total{dest="kernel",op="install"} 0`,
		`xdprouter_route_writes_total{dest="kernel",op="delete"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("restart rewrote kernel routes: metrics lack %q", want)
		}
	}
	r.pingXDP(dst4)
}

// TestBGPReload: SIGHUP applies a new import policy live (the session stays
// up, the filtered prefixes leave both sinks) and refuses a change that
// needs a restart.
func TestBGPReload(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	if _, err := r.StartBIRD(r.peer(up1, announced(100, 10))); err != nil {
		t.Fatal(err)
	}
	r.start(neighbors("", up1))
	r.waitRoutes("accept-all", 100, 10)
	uptime := func() time.Duration {
		for _, p := range r.status().Peers {
			if p.Address.Is4() {
				return p.Uptime
			}
		}
		t.Fatal("no IPv4 peer")
		return 0
	}
	before := uptime()

	rewrite := func(extra string) {
		t.Helper()
		cfg, err := lab.DaemonConfigFile(filepath.Dir(r.config), r.ports, extra)
		if err != nil || cfg != r.config {
			t.Fatalf("rewrite config: %v", err)
		}
		if err := r.daemon.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitLog := func(what string, n int) {
		t.Helper()
		r.poll(10*time.Second, func() error {
			if c := strings.Count(r.daemon.Out.String(), what); c < n {
				return fmt.Errorf("log has %q %d times, want %d", what, c, n)
			}
			return nil
		})
	}
	rewrite(strings.ReplaceAll(neighbors("", up1), `import = "accept-all"`, `import = "upstream-in"`) + blockPolicy)
	waitLog("SIGHUP: configuration reloaded", 1)
	r.waitRoutes("after reload with a filtering policy", 96, 10)
	if after := uptime(); after < before {
		t.Errorf("the session restarted: uptime %v before, %v after", before, after)
	}

	// A dataplane change needs a restart: refused, nothing changes.
	r.ports = []string{"eth1"}
	rewrite(neighbors("", up1))
	waitLog("SIGHUP: these changes need a restart; nothing applied", 1)
	r.waitRoutes("after a refused reload", 96, 10)
	if exited, err := r.daemon.Exited(); exited {
		t.Fatalf("xdprouterd exited: %v", err)
	}
	r.ports = []string{"eth1", "eth2"} // what the daemon still runs with
}
