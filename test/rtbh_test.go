package test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/lab"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// neighborBlocks returns the [[neighbor]] TOML (v4 and v6 sessions) for
// one upstream, with extra keys; routerHeader the [router] table.
func neighborBlocks(extra string, u upstream) string {
	var b strings.Builder
	for _, a := range []string{u.v4(), u.v6()} {
		fmt.Fprintf(&b, "[[neighbor]]\naddress = %q\npeer-asn = %d\ndescription = %q\nimport = \"accept-all\"\n%s\n\n", a, lab.UpstreamASN, u.role, extra)
	}
	return b.String()
}

func routerHeader() string {
	return fmt.Sprintf("[router]\nasn = %d\nrouter-id = \"10.0.1.1\"\n\n", lab.RouterASN)
}

// ourRoutes returns r's kernel routes of xdprouterd's protocol, one line
// each (ip -4 and ip -6 route show proto 200).
func (r *router) ourRoutes() []string {
	r.t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		s, err := r.Output("r", "ip", fam, "route", "show", "table", "main", "proto", strconv.Itoa(fib.DefaultProtocol))
		if err != nil {
			r.t.Fatal(err)
		}
		for _, l := range strings.Split(s, "\n") {
			if l != "" && l[0] != ' ' && l[0] != '\t' {
				out = append(out, l)
			}
		}
	}
	return out
}

// ourRoute returns the line of our kernel route to dst (as ip prints it:
// host routes without their length), "" if none.
func (r *router) ourRoute(dst string) string {
	r.t.Helper()
	for _, l := range r.ourRoutes() {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "blackhole" {
			f = f[1:]
		}
		if len(f) > 0 && f[0] == dst {
			return l
		}
	}
	return ""
}

// sighup rewrites r's config with extra and sends SIGHUP; it waits for
// the n-th "configuration reloaded" log line.
func (r *router) sighup(extra string, n int) {
	r.t.Helper()
	cfg, err := lab.DaemonConfigFile(filepath.Dir(r.config), r.ports, extra)
	if err != nil || cfg != r.config {
		r.t.Fatalf("rewrite config: %v", err)
	}
	if r.edit != nil { // as start wrote it (pin path, ...)
		if err := os.WriteFile(cfg, []byte(r.edit(mustRead(r.t, cfg))), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := r.daemon.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		r.t.Fatal(err)
	}
	r.poll(10*time.Second, func() error {
		if c := strings.Count(r.daemon.Out.String(), "SIGHUP: configuration reloaded"); c < n {
			return fmt.Errorf("reloaded %d times, want %d", c, n)
		}
		return nil
	})
}

// v4Uptime is the uptime of the first IPv4 session to u.
func (r *router) uptime(u upstream) time.Duration {
	r.t.Helper()
	for _, p := range r.status().Peers {
		if p.Address == netip.MustParseAddr(u.v4()) {
			return p.Uptime
		}
	}
	r.t.Fatalf("no peer %s", u.v4())
	return 0
}

// TestRTBH: remotely triggered blackholing (RFC 7999) with BIRD peers. The
// upstream with accept-blackhole sends routes tagged 65535:666 (and the
// operator's 65000:666): they are kernel blackhole routes of ours and
// dropped in XDP (counted drop/blackhole), a /32 and a /128 included. The
// same community from the upstream without accept-blackhole is ignored:
// its /32 is a normal route, until the bogon filter (turned on by SIGHUP,
// sessions kept) rejects it for its length, while the blackholes stay.
// Withdrawn, the blackholes leave both sinks.
func TestRTBH(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	up2 := r.addUpstream2()
	p1 := r.peer(up1, []netip.Prefix{netip.MustParsePrefix("8.8.8.0/24"), netip.MustParsePrefix("2a00:1::/48")})
	p1.Tagged = map[netip.Prefix][]string{
		netip.MustParsePrefix("8.8.4.4/32"):    {"65535:666"},
		netip.MustParsePrefix("8.8.5.0/24"):    {"65000:666", "65000:1"},
		netip.MustParsePrefix("2a00:2::1/128"): {"65535:666"},
	}
	p2 := r.peer(up2, []netip.Prefix{netip.MustParsePrefix("9.9.8.0/24")})
	p2.Tagged = map[netip.Prefix][]string{netip.MustParsePrefix("9.9.9.9/32"): {"65535:666"}}
	for _, p := range []lab.BGPPeer{p1, p2} {
		if _, err := r.StartBIRD(p); err != nil {
			t.Fatal(err)
		}
	}
	conf := func(filter bool) string {
		return routerHeader() + fmt.Sprintf("[bgp]\nbogon-filter = %v\nblackhole-communities = [\"65535:666\", \"65000:666\"]\n\n", filter) +
			neighborBlocks("accept-blackhole = true", up1) + neighborBlocks("", up2)
	}
	// Loose uRPF on the upstream port: traffic *from* a blackholed prefix
	// is dropped too (source-based RTBH).
	pin := r.pinned()
	r.edit = chainEdit(r.edit, func(s string) string {
		return strings.Replace(s, "[dataplane]\n", "[dataplane]\nurpf-ports = { eth2 = \"loose\" }\n", 1)
	})
	r.start(conf(false))
	r.waitRoutes("learned", 5, 2)

	for _, dst := range []string{"8.8.4.4", "8.8.5.0/24", "2a00:2::1"} {
		if l := r.ourRoute(dst); !strings.HasPrefix(l, "blackhole ") {
			t.Errorf("kernel route to %s = %q, want a blackhole of ours", dst, l)
		}
		addr := strings.TrimSuffix(dst, "/24")
		if d := r.lookup(addr); d.Action != bpf.ActionDrop || d.Reason != bpf.ReasonBlackhole {
			t.Errorf("XDP lookup %s = %+v, want drop/blackhole", addr, d)
		}
	}
	if l := r.ourRoute("9.9.9.9"); strings.HasPrefix(l, "blackhole") || !strings.Contains(l, "via "+up2.v4()) {
		t.Errorf("kernel route to 9.9.9.9 (not allowed to blackhole) = %q, want via %s", l, up2.v4())
	}
	var routes []xsync.RouteInfo
	if err := r.ctl(&routes, "routes", "8.8.4.4/32"); err != nil || len(routes) != 1 || routes[0].Kind != "blackhole" || routes[0].Source != "bgp" || !routes[0].InXDP || !routes[0].InKernel {
		t.Errorf("xdprouterctl routes 8.8.4.4/32 = %+v, %v", routes, err)
	}
	// Traffic to a blackhole is dropped in XDP.
	drops := r.counter(bpf.ActionDrop, bpf.ReasonBlackhole)
	_ = r.Run("h1", "ping", "-c3", "-i0.05", "-W1", "8.8.4.4") // no answer
	if got := r.counter(bpf.ActionDrop, bpf.ReasonBlackhole) - drops; got < 3 {
		t.Errorf("drop/blackhole counted %d packets for 3 pings, want 3", got)
	}

	x := r.xdp(pin)
	for src, drop := range map[string]bool{"8.8.4.4": true, "8.8.5.7": true, "8.8.8.8": false} {
		before := r.counter(bpf.ActionDrop, bpf.ReasonBlackholeSource)
		ret := x.run("eth2", udp4(netip.MustParseAddr(src), netip.MustParseAddr(lab.H1v4), 1000, 7, 10))
		if (ret == xdpDrop) != drop {
			t.Errorf("from %s on eth2 (uRPF loose): verdict %d, want dropped=%v", src, ret, drop)
		}
		if n := r.counter(bpf.ActionDrop, bpf.ReasonBlackholeSource) - before; (n == 1) != drop {
			t.Errorf("from %s: drop/blackhole_source +%d", src, n)
		}
	}

	// The bogon filter on: up2's tagged /32 is too long (the community
	// does not count for it); up1's blackholes stay. No session reset.
	before := r.uptime(up1)
	r.sighup(conf(true), 1)
	r.waitRoutes("bogon filter on", 4, 2)
	if l := r.ourRoute("9.9.9.9"); l != "" {
		t.Errorf("9.9.9.9/32 still installed with the bogon filter: %q", l)
	}
	if l := r.ourRoute("8.8.4.4"); !strings.HasPrefix(l, "blackhole ") {
		t.Errorf("blackhole 8.8.4.4 gone with the bogon filter: %q", l)
	}
	if after := r.uptime(up1); after < before {
		t.Errorf("the session restarted on reload: uptime %v, then %v", before, after)
	}

	// Withdrawn: gone from the kernel and XDP.
	for _, proto := range []string{"tagged_ipv4", "tagged_ipv6"} {
		if _, err := r.BirdC(p1, "disable", proto); err != nil {
			t.Fatal(err)
		}
	}
	r.waitRoutes("blackholes withdrawn", 2, 1)
	if d := r.lookup("8.8.4.4"); d.Action == bpf.ActionDrop {
		t.Errorf("after withdrawal, XDP lookup 8.8.4.4 = %+v", d)
	}
	if d := r.lookup("2a00:2::1"); d.Action == bpf.ActionDrop {
		t.Errorf("after withdrawal, XDP lookup 2a00:2::1 = %+v", d)
	}
}

// TestBogonFilter: with [bgp] bogon-filter, a BIRD upstream's routes to
// bogon ranges (RFC 1918, benchmarking, CGN, documentation, ULA) and
// longer than /24 and /48 are not installed (GoBGP's adj-in still shows
// them); the rest is, and forwarded by XDP. SIGHUP without the filter
// installs them all, the session staying up.
func TestBogonFilter(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	good := []string{"8.8.8.0/24", "2a00:1::/48"}
	bogons := []string{"8.8.8.0/25", "192.168.5.0/24", "198.18.1.0/24", "100.64.0.0/24", "2001:db8:1::/48", "fc00:1::/48", "2a00:1::/49"}
	var prefixes []netip.Prefix
	for _, p := range append(good, bogons...) {
		prefixes = append(prefixes, netip.MustParsePrefix(p))
	}
	p := r.peer(up1, prefixes) // owns 8.8.8.1 and 2a00:1::1
	if _, err := r.StartBIRD(p); err != nil {
		t.Fatal(err)
	}
	conf := func(filter bool) string {
		return routerHeader() + fmt.Sprintf("[bgp]\nbogon-filter = %v\n\n", filter) + neighborBlocks("", up1)
	}
	r.start(conf(true))
	// Received (adj-in), not installed.
	gobgp := filepath.Join(bin, "gobgp")
	r.poll(30*time.Second, func() error {
		for _, q := range []struct{ nbr, fam, want string }{
			{up1.v4(), "ipv4", "198.18.1.0/24"}, {up1.v4(), "ipv4", "8.8.8.0/25"},
			{up1.v6(), "ipv6", "fc00:1::/48"}, {up1.v6(), "ipv6", "2a00:1::/49"},
		} {
			out, err := r.Output("r", gobgp, "-p", lab.GRPCPort, "neighbor", q.nbr, "adj-in", "-a", q.fam)
			if err != nil || !strings.Contains(out, q.want) {
				return fmt.Errorf("adj-in of %s lacks %s: %v\n%s", q.nbr, q.want, err, out)
			}
		}
		return nil
	})
	r.waitRoutes("bogons filtered", 1, 1)
	for _, dst := range []string{"8.8.8.0/24", "2a00:1::/48"} {
		if r.ourRoute(dst) == "" {
			t.Errorf("%s not installed: %v", dst, r.ourRoutes())
		}
	}
	for _, b := range bogons {
		var routes []xsync.RouteInfo
		if err := r.ctl(&routes, "routes", b); err != nil {
			t.Fatal(err)
		}
		for _, ri := range routes {
			if ri.Prefix.String() == b {
				t.Errorf("bogon %s known to sync: %+v", b, ri)
			}
		}
	}
	r.pingXDP("8.8.8.1")
	r.pingXDP("2a00:1::1")

	before := r.uptime(up1)
	r.sighup(conf(false), 1)
	r.waitRoutes("bogon filter off", 5, 4)
	if after := r.uptime(up1); after < before {
		t.Errorf("the session restarted on reload: uptime %v, then %v", before, after)
	}
}
