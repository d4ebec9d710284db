package test

// Resilience (issue 9, "Prove it"): session flaps, link flaps, a full-table
// withdraw and re-announce, a restart with a changed config. Each ends with
// both sinks compared against what they must hold, prefix by prefix.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/lab"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// fastBIRDConf is StartBIRD's configuration for p with BGP timers short
// enough for flap tests: BIRD reconnects a second after a session ends or
// the protocol is enabled (defaults: 5 s connect delay, 120 s connect
// retry, 60-300 s error wait).
func fastBIRDConf(p lab.BGPPeer) string {
	return birdConf(p, "", "connect delay time 1; connect retry time 1; error wait time 1, 2;")
}

// startFastBIRD runs BIRD for p with fastBIRDConf.
func (r *router) startFastBIRD(p lab.BGPPeer) *lab.Proc {
	r.t.Helper()
	needBinary(r.t, "/usr/sbin/bird")
	bird, err := r.StartBIRDConf(p.Role, p.Dir, fastBIRDConf(p))
	if err != nil {
		r.t.Fatal(err)
	}
	return bird
}

// enablePProf is a router.edit that turns on /debug/pprof/.
func enablePProf(cfg string) string {
	return strings.Replace(cfg, "[api]\n", "[api]\npprof = true\n", 1)
}

// apiClient talks HTTP to xdprouterd's metrics listener inside r over a
// kept-alive connection: thousands of lookups cost no process each.
type apiClient struct {
	r *router
	c *http.Client
}

func (r *router) api() *apiClient {
	c := r.HTTPClient("r")
	r.t.Cleanup(c.CloseIdleConnections)
	return &apiClient{r, c}
}

func (a *apiClient) get(path string, q url.Values) ([]byte, error) {
	u := url.URL{Scheme: "http", Host: "127.0.0.1:" + lab.MetricsPort, Path: path, RawQuery: q.Encode()}
	resp, err := a.c.Get(u.String())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u.String(), resp.Status, body)
	}
	return body, nil
}

func (a *apiClient) getJSON(path string, q url.Values, out any) error {
	b, err := a.get(path, q)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func (a *apiClient) status() (api.Status, error) {
	var s api.Status
	return s, a.getJSON("/api/v1/status", nil, &s)
}

func (a *apiClient) routes() ([]xsync.RouteInfo, error) {
	var rs []xsync.RouteInfo
	return rs, a.getJSON("/api/v1/routes", nil, &rs)
}

func (a *apiClient) lookup(addr netip.Addr) (bpf.Decision, error) {
	var d bpf.Decision
	return d, a.getJSON("/api/v1/lookup", url.Values{"addr": {addr.String()}}, &d)
}

// goroutines is the daemon's goroutine count (its goroutine profile's
// first line: "goroutine profile: total N"); needs api.pprof.
func (a *apiClient) goroutines() (int, error) {
	b, err := a.get("/debug/pprof/goroutine", url.Values{"debug": {"1"}})
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %q: %v", first, err)
	}
	return n, nil
}

// heap returns the daemon's live heap and the memory its runtime has
// returned to the kernel, in KiB, just after a garbage collection (the
// MemStats the heap profile ends with); needs api.pprof.
func (a *apiClient) heap() (alloc, released int, err error) {
	b, err := a.get("/debug/pprof/heap", url.Values{"gc": {"1"}, "debug": {"1"}})
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		var v int
		if _, err := fmt.Sscanf(line, "# HeapAlloc = %d", &v); err == nil {
			alloc = v >> 10
		} else if _, err := fmt.Sscanf(line, "# HeapReleased = %d", &v); err == nil {
			released = v >> 10
		}
	}
	if alloc == 0 {
		return 0, 0, errors.New("no HeapAlloc in the heap profile")
	}
	return alloc, released, nil
}

// memUse is the daemon's memory from /proc/PID/status, in KiB.
type memUse struct {
	RSS, HWM int // VmRSS, VmHWM (peak)
	// Anon is the process's own memory (Go heap, stacks, runtime). The rest
	// of RSS is mostly the BPF arrays the daemon mmaps (the compiled LPM):
	// preallocated at max-prefixes, their pages count once first touched,
	// and the arena touches fresh ones while freed nodes wait out the grace
	// period. That is bounded by the maps' size, not a leak.
	Anon, File, Shmem int
}

func (m memUse) String() string {
	return fmt.Sprintf("RSS %d KiB (anon %d, file %d, shmem %d; peak %d)", m.RSS, m.Anon, m.File, m.Shmem, m.HWM)
}

// mem reads the daemon's memUse. `ip netns exec` execs the daemon in place:
// its PID is the started process's.
func (r *router) mem() memUse {
	r.t.Helper()
	pid := r.daemon.Cmd.Process.Pid
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "xdprouterd" {
		r.t.Fatalf("process %d is %q (%v), not xdprouterd", pid, comm, err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var m memUse
	fields := map[string]*int{"VmRSS": &m.RSS, "VmHWM": &m.HWM, "RssAnon": &m.Anon, "RssFile": &m.File, "RssShmem": &m.Shmem}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		if p, ok := fields[k]; ok {
			*p, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	if m.RSS == 0 || m.Anon == 0 {
		r.t.Fatalf("no VmRSS/RssAnon in /proc/%d/status", pid)
	}
	return m
}

// kernelOurs returns r's kernel routes with xdprouterd's protocol (all
// tables' worth of table 254) by prefix, with their metric.
func (r *router) kernelOurs() (map[netip.Prefix]int, error) {
	out := map[netip.Prefix]int{}
	for _, fam := range []string{"-4", "-6"} {
		s, err := r.Output("r", "ip", "-j", fam, "route", "show", "proto", strconv.Itoa(fib.DefaultProtocol))
		if err != nil {
			return nil, err
		}
		var rs []struct {
			Dst    string
			Metric int
		}
		if err := json.Unmarshal([]byte(s), &rs); err != nil {
			return nil, fmt.Errorf("ip -j %s route show: %v", fam, err)
		}
		for _, kr := range rs {
			p, err := netip.ParsePrefix(kr.Dst)
			if err != nil {
				a, aerr := netip.ParseAddr(kr.Dst)
				if aerr != nil {
					return nil, fmt.Errorf("ip route dst %q: %v", kr.Dst, err)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			if _, dup := out[p]; dup {
				return nil, fmt.Errorf("two routes of ours for %s in the kernel", p)
			}
			out[p] = kr.Metric
		}
	}
	return out, nil
}

// errList collects mismatches and reports the first few and how many.
type errList struct{ errs []string }

func (e *errList) add(format string, args ...any) {
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}
func (e *errList) err(what string) error {
	if len(e.errs) == 0 {
		return nil
	}
	shown := e.errs[:min(len(e.errs), 8)]
	return fmt.Errorf("%s: %d mismatches:\n  %s", what, len(e.errs), strings.Join(shown, "\n  "))
}

// checkSinks compares the kernel, XDP and xdprouterd's own view with want,
// the BGP prefixes that must be installed: exactly those in the kernel
// (with our protocol and metric; no other route of ours), in XDP (looked
// up: every prefix of table if sample is 0, else every sample-th), none
// marked as a previous instance's, nothing pending or failed.
func (r *router) checkSinks(a *apiClient, what string, table []netip.Prefix, want map[netip.Prefix]bool, metric, sample int) error {
	var e errList
	st, err := a.status()
	if err != nil {
		return err
	}
	if st.Routes.Pending != 0 || st.Routes.Failed != 0 {
		e.add("sync pending %d, failed %d", st.Routes.Pending, st.Routes.Failed)
	}
	var want4, want6 int
	for p := range want {
		if p.Addr().Is4() {
			want4++
		} else {
			want6++
		}
	}
	if st.Routes.FIB4 != want4 || st.Routes.FIB6 != want6 {
		e.add("xdprouterd counts %d+%d kernel routes, want %d+%d", st.Routes.FIB4, st.Routes.FIB6, want4, want6)
	}

	kernel, err := r.kernelOurs()
	if err != nil {
		return err
	}
	for p, m := range kernel {
		if !want[p] {
			e.add("kernel: stale route %s metric %d", p, m)
		} else if m != metric {
			e.add("kernel: %s has metric %d, want %d", p, m, metric)
		}
	}
	for p := range want {
		if _, ok := kernel[p]; !ok {
			e.add("kernel: %s missing", p)
		}
	}

	routes, err := a.routes()
	if err != nil {
		return err
	}
	var base4, base6 int // XDP routes not from BGP: connected, local
	seen := map[netip.Prefix]xsync.RouteInfo{}
	for _, ri := range routes {
		seen[ri.Prefix] = ri
		if strings.Contains(ri.Source, "previous") || strings.Contains(ri.Source, "stale") {
			e.add("routes: %s is %q", ri.Prefix, ri.Source)
		}
		if ri.InXDP && !strings.HasPrefix(ri.Source, "bgp") {
			if ri.Prefix.Addr().Is4() {
				base4++
			} else {
				base6++
			}
		}
		if strings.HasPrefix(ri.Source, "bgp") && !want[ri.Prefix] && (ri.InXDP || ri.InKernel) {
			e.add("routes: %s installed (xdp %v, kernel %v), not wanted", ri.Prefix, ri.InXDP, ri.InKernel)
		}
	}
	for p := range want {
		if ri, ok := seen[p]; !ok || ri.Source != "bgp" || !ri.InXDP || !ri.InKernel {
			e.add("routes: %s = %+v (listed %v), want bgp in both sinks", p, ri, ok)
		}
	}
	if st.Routes.XDP4 != base4+want4 || st.Routes.XDP6 != base6+want6 {
		e.add("XDP holds %d+%d routes, want %d+%d (%d+%d not from BGP)", st.Routes.XDP4, st.Routes.XDP6,
			base4+want4, base6+want6, base4, base6)
	}

	// What XDP does, prefix by prefix.
	for i, p := range table {
		if sample > 1 && i%sample != 0 && i != len(table)-1 {
			continue
		}
		d, err := a.lookup(p.Addr().Next())
		if err != nil {
			return err
		}
		switch {
		case want[p] && (d.Action != bpf.ActionRedirect || d.Prefix != p):
			e.add("xdp: %s: %+v, want redirect by %s", p.Addr().Next(), d, p)
		case !want[p] && d.Prefix == p:
			e.add("xdp: %s: %+v: a route for %s, which is not wanted", p.Addr().Next(), d, p)
		}
	}
	return e.err(what)
}

// pollSinks polls checkSinks until it holds (each round costs seconds at
// 10k routes: a longer interval than r.poll's).
func (r *router) pollSinks(a *apiClient, what string, timeout time.Duration, table []netip.Prefix, want map[netip.Prefix]bool, metric, sample int) {
	r.t.Helper()
	start := time.Now()
	err := lab.PollEvery(r.t.Context(), timeout, 500*time.Millisecond, func() error {
		return r.checkSinks(a, what, table, want, metric, sample)
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Logf("%s: both sinks hold exactly the %d wanted routes after %v", what, len(want), time.Since(start).Round(time.Millisecond))
}

func setOf(ps []netip.Prefix) map[netip.Prefix]bool {
	m := make(map[netip.Prefix]bool, len(ps))
	for _, p := range ps {
		m[p] = true
	}
	return m
}

// v4Neighbor is the [router] and the IPv4 [[neighbor]] of u, with extra
// neighbor keys.
func v4Neighbor(u upstream, extra string) string {
	return fmt.Sprintf("[router]\nasn = %d\nrouter-id = \"10.0.1.1\"\n\n[[neighbor]]\naddress = %q\npeer-asn = %d\ndescription = %q\nimport = \"accept-all\"\n%s\n",
		lab.RouterASN, u.v4(), lab.UpstreamASN, u.role, extra)
}

// peerUp reports whether the session with addr is established.
func peerUp(st api.Status, addr string) bool {
	for _, p := range st.Peers {
		if p.Address.String() == addr {
			return p.Up
		}
	}
	return false
}

// TestFlapSessions: a BIRD peer announcing 10k prefixes flaps its session
// (birdc disable/enable) again and again; each flap waits until every route
// is gone from both sinks and back. Afterwards nothing is stale in the
// kernel or XDP, the daemon has no more goroutines than after the first
// load (+20), its live heap is back within 10%, and so is its anonymous
// RSS (without the race detector). A flap takes ~10 s here
// (GoBGP idles 5 s after a session ends, a constant in its FSM, then the
// session and 10k routes come back), so make test does 5 flaps and
// XDPROUTER_FLAPS=100 the full run (~17 min).
func TestFlapSessions(t *testing.T) {
	flaps := 5
	if s := os.Getenv("XDPROUTER_FLAPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("XDPROUTER_FLAPS=%q: want a positive number", s)
		}
		flaps = n
	}
	r := newLab(t)
	const n = 10000
	table := announced(n, 0)
	p := r.peer(up1, table)
	p.Peers = p.Peers[:1] // the IPv4 session
	r.startFastBIRD(p)
	r.edit = enablePProf
	r.start(v4Neighbor(up1, "connect-retry = 2"))
	r.waitRoutes("first load", n, 0)
	a := r.api()
	want := setOf(table)
	r.pollSinks(a, "first load", 30*time.Second, table, want, 20, 10)

	// Baselines after the first full load, garbage collected.
	g0, err := a.goroutines()
	if err != nil {
		t.Fatal(err)
	}
	heap0, rel0, err := a.heap()
	if err != nil {
		t.Fatal(err)
	}
	m0 := r.mem()
	t.Logf("after the first load: %d goroutines, %v, live heap %d KiB (%d KiB released)", g0, m0, heap0, rel0)

	peer := up1.v4()
	wait := func(what string, ok func(api.Status) bool) {
		t.Helper()
		err := lab.Poll(t.Context(), 60*time.Second, func() error {
			st, err := a.status()
			if err != nil {
				return err
			}
			if !ok(st) {
				return fmt.Errorf("%s: status %+v", what, st.Routes)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var downTime, upTime time.Duration
	for i := range flaps {
		t0 := time.Now()
		if _, err := r.BirdC(p, "disable", "peer0"); err != nil {
			t.Fatal(err)
		}
		wait(fmt.Sprintf("flap %d: session down, routes gone", i+1), func(st api.Status) bool {
			return !peerUp(st, peer) && st.Routes.FIB4 == 0 && st.Routes.Pending == 0 && st.Routes.Failed == 0
		})
		t1 := time.Now()
		if _, err := r.BirdC(p, "enable", "peer0"); err != nil {
			t.Fatal(err)
		}
		wait(fmt.Sprintf("flap %d: session up, routes back", i+1), func(st api.Status) bool {
			return peerUp(st, peer) && st.Routes.FIB4 == n && st.Routes.Pending == 0 && st.Routes.Failed == 0
		})
		downTime += t1.Sub(t0)
		upTime += time.Since(t1)
	}
	t.Logf("%d flaps of %d prefixes in %v: withdrawn in %v, back in %v on average", flaps, n,
		time.Since(start).Round(time.Millisecond), (downTime / time.Duration(flaps)).Round(time.Millisecond),
		(upTime / time.Duration(flaps)).Round(time.Millisecond))

	r.waitRoutes("after the flaps", n, 0)
	r.pollSinks(a, "after the flaps", 30*time.Second, table, want, 20, 5)

	// Goroutines of sessions that ended exit shortly after: poll.
	var g1 int
	r.poll(30*time.Second, func() error {
		if g1, err = a.goroutines(); err != nil {
			return err
		}
		if g1 > g0+20 {
			return fmt.Errorf("%d goroutines after %d flaps, %d after the first load", g1, flaps, g0)
		}
		return nil
	})
	// The runtime returns freed memory to the kernel gradually (its
	// scavenger): collect and poll.
	// A leak shows in the live heap (Go) or in anonymous memory (Go's
	// runtime, stacks): both must come back within 10%. Not anonymous
	// memory under the race detector: its shadow memory of every heap
	// address ever used stays (RSS +48 MB after 5 flaps with a flat heap).
	var m1 memUse
	var heap1, rel1 int
	err = lab.PollEvery(t.Context(), 60*time.Second, time.Second, func() error {
		var err error
		if heap1, rel1, err = a.heap(); err != nil {
			return err
		}
		m1 = r.mem()
		if heap1 > heap0+heap0/10+1024 {
			return fmt.Errorf("live heap %d KiB after %d flaps, %d KiB after the first load", heap1, flaps, heap0)
		}
		if !raceEnabled && m1.Anon > m0.Anon+m0.Anon/10 {
			return fmt.Errorf("anonymous RSS %d KiB after %d flaps, %d KiB after the first load", m1.Anon, flaps, m0.Anon)
		}
		return nil
	})
	t.Logf("after %d flaps: %d goroutines (%d before), %v (before: %v), live heap %d KiB (%d before; %d KiB released)",
		flaps, g1, g0, m1, m0, heap1, heap0, rel1)
	if err != nil {
		t.Fatal(err)
	}
}

// routeGet is the kernel's answer to `ip route get` for one address.
type routeGet struct {
	Type, Dst, Gateway, Dev string
	Flags                   []string
}

// kernelAgrees compares, for every address, the XDP decision with the
// kernel's `ip route get` (one `ip -batch` for all) and its neighbor table:
//   - where the kernel has no unicast route, XDP does not forward;
//   - where XDP forwards, it is out of the kernel's device, to the MAC the
//     kernel has for the kernel's next hop;
//   - strict: where the kernel forwards to a resolved neighbor (and not
//     over a link without carrier), XDP forwards too.
func (r *router) kernelAgrees(a *apiClient, addrs []netip.Addr, strict bool) error {
	batch := filepath.Join(r.t.TempDir(), "route-get")
	var b strings.Builder
	for _, ad := range addrs {
		fmt.Fprintf(&b, "route get %s\n", ad)
	}
	if err := os.WriteFile(batch, []byte(b.String()), 0o644); err != nil {
		return err
	}
	// -force: go on after "Network is unreachable"; those have no line.
	out, _ := r.Output("r", "ip", "-j", "-force", "-batch", batch)
	kernel := map[netip.Addr]routeGet{}
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rg []routeGet
		if err := json.Unmarshal([]byte(line), &rg); err != nil || len(rg) != 1 {
			return fmt.Errorf("ip route get: %q: %v", line, err)
		}
		ad, err := netip.ParseAddr(rg[0].Dst)
		if err != nil {
			return err
		}
		kernel[ad] = rg[0]
	}
	var neighs []struct {
		Dst, Dev, Lladdr string
		State            []string
	}
	s, err := r.Output("r", "ip", "-j", "neigh", "show")
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(s), &neighs); err != nil {
		return err
	}
	mac := map[string]string{} // dev/addr -> lladdr
	for _, n := range neighs {
		if n.Lladdr != "" && !slices.Contains(n.State, "FAILED") && !slices.Contains(n.State, "INCOMPLETE") {
			mac[n.Dev+"/"+n.Dst] = n.Lladdr
		}
	}
	var links []struct {
		Ifindex int
		Ifname  string
	}
	if s, err = r.Output("r", "ip", "-j", "link", "show"); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(s), &links); err != nil {
		return err
	}
	ifindex := map[string]int{}
	for _, l := range links {
		ifindex[l.Ifname] = l.Ifindex
	}

	var e errList
	for _, ad := range addrs {
		d, err := a.lookup(ad)
		if err != nil {
			return err
		}
		k, ok := kernel[ad]
		if !ok || (k.Type != "" && k.Type != "unicast") { // ip -j omits the type of unicast routes
			if d.Action == bpf.ActionRedirect {
				e.add("%s: the kernel does not forward (%+v) but XDP does: %+v", ad, k, d)
			}
			continue
		}
		hop := k.Gateway
		if hop == "" {
			hop = ad.String()
		}
		lladdr, resolved := mac[k.Dev+"/"+hop]
		if d.Action == bpf.ActionRedirect {
			if !slices.ContainsFunc(d.Candidates, func(c bpf.Candidate) bool {
				return c.Action == bpf.ActionRedirect && c.Ifindex == ifindex[k.Dev] && c.DstMAC.String() == lladdr
			}) {
				e.add("%s: the kernel forwards via %s dev %s (MAC %q), XDP: %+v", ad, k.Gateway, k.Dev, lladdr, d)
			}
			continue
		}
		if strict && resolved && !slices.Contains(k.Flags, "linkdown") {
			e.add("%s: the kernel forwards via %s dev %s (MAC %s), XDP does not: %+v", ad, k.Gateway, k.Dev, lladdr, d)
		}
	}
	return e.err("kernel vs XDP")
}

// dumpKernel logs r's nexthop objects and a few of its routes of each
// family when the test failed.
func (r *router) dumpKernel() {
	if !r.t.Failed() {
		return
	}
	for _, c := range [][]string{{"ip", "nexthop", "show"}, {"ip", "-4", "route", "show"}, {"ip", "-6", "route", "show"}, {"ip", "neigh", "show"}} {
		out, err := r.Output("r", c...)
		lines := strings.Split(out, "\n")
		if len(lines) > 12 {
			lines = append(lines[:12], fmt.Sprintf("... %d lines", len(lines)))
		}
		r.t.Logf("%s: %v\n%s", strings.Join(c, " "), err, strings.Join(lines, "\n"))
	}
}

// TestLinkFlap: BGP routes (a directly connected BIRD peer on r's eth2)
// and static routes through eth2; the link goes down for 2 s and up again,
// once on r's side (admin down: the kernel flushes the IPv4 routes through
// it without a message per route) and once on the peer's (carrier loss).
// While down and afterwards, XDP agrees with `ip route get` and the
// kernel's neighbors for a host of every prefix; once the session is back
// every BGP route is in both sinks again.
func TestLinkFlap(t *testing.T) {
	r := newLab(t)
	const n4, n6 = 500, 100
	table := announced(n4, n6)
	p := r.peer(up1, table)
	r.startFastBIRD(p)
	// Routers keep their IPv6 addresses across an admin down (the kernel's
	// default flushes them, and with them the session's and the next
	// hop's subnet).
	for _, c := range [][]string{{"r", "eth2"}, {"h2", "eth0"}} {
		if err := r.Sysctl(c[0], "net.ipv6.conf."+c[1]+".keep_addr_on_down", "1"); err != nil {
			t.Fatal(err)
		}
	}
	// What the kernel did with nexthops and routes, logged on failure.
	mon, err := r.Start("r", "ip monitor", "ip", "-ts", "monitor", "nexthop", "route")
	if err != nil {
		t.Fatal(err)
	}
	r.start(neighbors("connect-retry = 2\nhold-time = 9", up1))
	t.Cleanup(func() {
		r.dumpKernel()
		if t.Failed() {
			var keep []string
			for _, l := range strings.Split(mon.Out.String(), "\n") {
				if strings.Contains(l, "] id ") || strings.Contains(l, "Deleted id") || strings.Contains(l, "2001:db8:1000::/48") || strings.Contains(l, "100.64.0.0/24") || strings.Contains(l, "ffff::/48") || strings.Contains(l, "198.51.100.0/24") {
					keep = append(keep, l)
				}
			}
			t.Logf("ip monitor nexthop route (nexthops, the first prefix of each family, the static routes):\n%s", strings.Join(keep, "\n"))
		}
	})
	r.waitRoutes("learned", n4, n6)
	a := r.api()
	statics := [][]string{
		{"ip", "route", "replace", "198.51.100.0/24", "via", lab.H2v4},
		{"ip", "-6", "route", "replace", "2001:db8:ffff::/48", "via", lab.H2v6},
	}
	staticDst := []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:ffff::1")}
	var dsts []netip.Addr
	for _, pf := range table {
		dsts = append(dsts, pf.Addr().Next())
	}
	dsts = append(dsts, staticDst...)
	agree := func(what string, strict bool, timeout time.Duration) {
		t.Helper()
		start := time.Now()
		if err := lab.PollEvery(t.Context(), timeout, 200*time.Millisecond, func() error {
			return r.kernelAgrees(a, dsts, strict)
		}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: XDP agrees with the kernel for all %d addresses after %v", what, len(dsts), time.Since(start).Round(time.Millisecond))
	}

	for _, c := range []struct{ what, role, ifname string }{
		{"router port admin down", "r", "eth2"},
		{"carrier loss (peer side down)", "h2", "eth0"},
	} {
		for _, s := range statics {
			if err := r.Run("r", s...); err != nil {
				t.Fatal(err)
			}
		}
		r.waitRoutes(c.what+": static routes added", n4, n6)
		agree(c.what+": before", true, 30*time.Second)
		for _, ad := range staticDst {
			if d, err := a.lookup(ad); err != nil || d.Action != bpf.ActionRedirect {
				t.Fatalf("%s: the static route to %s is not forwarded by XDP: %+v %v", c.what, ad, d, err)
			}
		}
		down := time.Now()
		if err := r.Run(c.role, "ip", "link", "set", c.ifname, "down"); err != nil {
			t.Fatal(err)
		}
		agree(c.what+": link down", false, 10*time.Second)
		time.Sleep(time.Until(down.Add(2 * time.Second))) // the link-down window (a test input)
		if err := r.Run(c.role, "ip", "link", "set", c.ifname, "up"); err != nil {
			t.Fatal(err)
		}
		up := time.Now()
		// h2's default routes (for the answers to the pings at the end)
		// went with its admin down, as the kernel does it.
		for _, c := range [][]string{{"ip", "route", "replace", "default", "via", lab.R2v4}, {"ip", "-6", "route", "replace", "default", "via", lab.R2v6}} {
			if err := r.Run("h2", c...); err != nil {
				t.Fatal(err)
			}
		}
		// BIRD ends its directly connected sessions when its interface
		// loses carrier (either way here); GoBGP hears of it when BIRD's
		// NOTIFICATION or a keepalive's reset gets through, or at the hold
		// time: wait for both sessions established again since the flap.
		r.poll(60*time.Second, func() error {
			st, err := a.status()
			if err != nil {
				return err
			}
			for _, ps := range st.Peers {
				if !ps.Up || ps.Uptime+time.Second > time.Since(down) {
					return fmt.Errorf("%s: the session with %s has not been re-established since the link went down: %+v", c.what, ps.Address, ps)
				}
			}
			return nil
		})
		sessionsBack := time.Now()
		r.waitRoutes(c.what+": link up", n4, n6)
		agree(c.what+": link up", true, 30*time.Second)
		kept := []string{}
		for _, ad := range staticDst {
			if out, err := r.Output("r", "ip", "route", "show", "match", ad.String(), "proto", "boot"); err == nil && strings.TrimSpace(out) != "" {
				kept = append(kept, ad.String())
			}
		}
		t.Logf("%s: static routes still in the kernel for %v; sessions back %v after the link came up", c.what, kept,
			sessionsBack.Sub(up).Round(time.Millisecond))
	}
	r.pingXDP(dst4)
	r.pingXDP(dst6)
}

// TestFullWithdrawReannounce: the peer withdraws its whole table at once
// (its static protocols disabled) and announces it again, twice: at each
// step both sinks hold exactly what they should (nothing, then all).
func TestFullWithdrawReannounce(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	const n4, n6 = 20000, 2000
	table := announced(n4, n6)
	p := r.peer(up1, table)
	if _, err := r.StartBIRD(p); err != nil {
		t.Fatal(err)
	}
	r.start(neighbors("", up1))
	a := r.api()
	all, none := setOf(table), map[netip.Prefix]bool{}
	r.waitRoutes("announced", n4, n6)
	r.pollSinks(a, "announced", 60*time.Second, table, all, 20, 50)
	for round := 1; round <= 2; round++ {
		for _, c := range []struct {
			cmd    string
			want   map[netip.Prefix]bool
			n4, n6 int
		}{{"disable", none, 0, 0}, {"enable", all, n4, n6}} {
			what := fmt.Sprintf("round %d: %s", round, c.cmd)
			for _, proto := range []string{"static_ipv4", "static_ipv6"} {
				if _, err := r.BirdC(p, c.cmd, proto); err != nil {
					t.Fatal(err)
				}
			}
			r.waitRoutes(what, c.n4, c.n6)
			r.pollSinks(a, what, 60*time.Second, table, c.want, 20, 50)
		}
	}
	if st, err := a.status(); err != nil || !peerUp(st, up1.v4()) || !peerUp(st, up1.v6()) {
		t.Errorf("the sessions did not stay up throughout: %+v %v", st.Peers, err)
	}
}

// TestRestartChangedConfig: the daemon learns a table, stops (keeping its
// routes in the kernel) and starts with a changed config: an import policy
// that takes half the IPv4 prefixes, the IPv6 neighbor removed, another
// fib.metric. Once the previous instance's routes are swept, exactly the
// new config's routes are installed, nothing of the old left in the kernel
// or XDP. Then back to the first config: all routes, the first metric.
func TestRestartChangedConfig(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	const n4, n6 = 1024, 128
	table := announced(n4, n6) // 100.64.0.0/24 .. 100.67.255.0/24
	if _, err := r.StartBIRD(r.peer(up1, table)); err != nil {
		t.Fatal(err)
	}
	first := "[fib]\nkeep-routes-on-exit = true\n\n" + neighbors("", up1)
	second := `[fib]
keep-routes-on-exit = true
metric = 30

[[prefix-set]]
name = "half"
prefixes = ["100.64.0.0/15 24..24"]

[[policy]]
name = "take-half"
[[policy.statement]]
name = "half"
match-prefix-set = "half"
action = "accept"

` + v4Neighbor(up1, "") // the IPv6 neighbor removed
	second = strings.Replace(second, "import = \"accept-all\"", "import = \"take-half\"", 1)
	half := map[netip.Prefix]bool{}
	for _, pf := range table {
		if netip.MustParsePrefix("100.64.0.0/15").Contains(pf.Addr()) {
			half[pf] = true
		}
	}
	if len(half) != n4/2 {
		t.Fatalf("half of the table: %d prefixes", len(half))
	}

	r.start(first)
	r.waitRoutes("first config", n4, n6)
	a := r.api()
	r.pollSinks(a, "first config", 30*time.Second, table, setOf(table), 20, 0)

	for _, c := range []struct {
		what, cfg string
		want      map[netip.Prefix]bool
		metric    int
	}{
		{"restarted with half the IPv4 prefixes, no IPv6 neighbor, metric 30", second, half, 30},
		{"restarted with the first config", first, setOf(table), 20},
	} {
		if err := r.daemon.Stop(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		if kernel, err := r.kernelOurs(); err != nil || len(kernel) == 0 {
			t.Fatalf("no routes of ours left in the kernel after the stop (keep-routes-on-exit): %v", err)
		}
		stopped := time.Now()
		r.start(c.cfg)
		// The stale sweep is a timer today (daemon.staleAfter, 30 s), End-of-RIB
		// soon: a generous deadline.
		r.pollSinks(a, c.what, 60*time.Second, table, c.want, c.metric, 0)
		t.Logf("%s: converged %v after the stop", c.what, time.Since(stopped).Round(time.Millisecond))
	}
}
