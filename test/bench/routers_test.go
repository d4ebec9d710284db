package bench

// The routers of the convergence and churn benchmarks (convergence_test.go,
// churn_test.go): a lab r — h2 per router, h2 running a BIRD 2 upstream,
// r running xdprouterd or BIRD 2 as the router under test, and the cheap
// probes the benchmarks poll.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/lab"
)

const (
	// benchMaxPrefixes is xdprouterd's neighbor max-prefixes, as an
	// operator sets it above a full table.
	benchMaxPrefixes = 2_000_000
	// upstreamASN0 is the first origin AS of the upstream's AS paths (one
	// per group of prefixes); transit ASes are below it.
	upstreamASN0 = 200_000
)

// Router kinds.
const (
	kindXDP  = "xdprouterd"
	kindBIRD = "bird"
)

// rig is one lab r — h2: the router under test in r, the upstream in h2.
type rig struct {
	kind   string
	l      *lab.Lab
	dir    string // configs and control sockets
	router *lab.Proc
	up     *lab.Proc
	// base are r's kernel (and, for xdprouterd, XDP) route counts before
	// BGP: connected and local routes, subtracted from every count.
	base rcounts
}

// rcounts are r's routes as the probes see them.
type rcounts struct {
	k4, k6  int // in the kernel (kernelCounts), or as the router counts them (claims)
	x4, x6  int // xdprouterd's XDP tries (including mirrored kernel routes)
	pending int // xdprouterd's changes not applied yet
	writes  uint64
}

// newRig builds r — h2 and starts the router of kind in r (bins: the
// directory of xdprouterd), ready to accept the upstream's sessions.
func newRig(b *testing.B, kind, bins string) *rig {
	b.Helper()
	dir, err := os.MkdirTemp("", "xbc-") // short: unix socket paths
	if err != nil {
		b.Fatal(err)
	}
	g := &rig{kind: kind, l: lab.New("xc" + kind[:1]), dir: dir}
	b.Cleanup(func() {
		if err := g.close(); err != nil {
			b.Errorf("%s lab cleanup: %v", kind, err)
		}
	})
	if err := errors.Join(g.l.AddNS("r"), g.l.AddHost("h2", 2)); err != nil {
		b.Fatal(err)
	}
	switch kind {
	case kindXDP:
		cfg := filepath.Join(dir, "xdprouter.toml")
		if err := os.WriteFile(cfg, []byte(daemonConfig()), 0o644); err != nil {
			b.Fatal(err)
		}
		g.router, err = g.l.Start("r", "xdprouterd", filepath.Join(bins, "xdprouterd"), "--config", cfg, "--log-level", "warn")
	case kindBIRD:
		rdir := filepath.Join(dir, "r")
		if err = os.Mkdir(rdir, 0o755); err == nil {
			g.router, err = g.l.StartBIRDConf("r", rdir, birdRouterConfig())
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	err = lab.Poll(b.Context(), 30*time.Second, func() error {
		if exited, err := g.router.Exited(); exited {
			return fmt.Errorf("%s exited: %v", kind, err)
		}
		if kind == kindBIRD {
			_, err := birdCmd(lab.BIRDSocket(filepath.Join(dir, "r")), "show status")
			return err
		}
		var st api.Status
		return g.status(&st)
	})
	if err != nil {
		b.Fatalf("%v\n%s", err, g.router.Out.String())
	}
	if g.base, err = g.kernelCounts(); err == nil && kind == kindXDP {
		var c rcounts
		c, err = g.claims()
		g.base.x4, g.base.x6 = c.x4, c.x6
	}
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// daemonConfig is xdprouterd's config in r: XDP on eth2 (towards the
// upstream), two sessions to h2 with max-prefixes, pprof on the metrics
// address.
func daemonConfig() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `[router]
asn = %d
router-id = %q

[api]
metrics-listen = "127.0.0.1:%s"
grpc-listen = ""
pprof = true

[dataplane]
interfaces = ["eth2"]
xdp-mode = "native"
pin-path = ""

[fib]
keep-routes-on-exit = true # the namespace goes: no 1M route deletes at exit
`, lab.RouterASN, lab.R2v4, lab.MetricsPort)
	for _, a := range []string{lab.H2v4, lab.H2v6} {
		fmt.Fprintf(&sb, "\n[[neighbor]]\naddress = %q\npeer-asn = %d\nimport = \"accept-all\"\nmax-prefixes = %d\n", a, lab.UpstreamASN, benchMaxPrefixes)
	}
	return sb.String()
}

// birdRouterConfig is BIRD as the router in r: BGP from h2, every best
// path into the kernel's main table with metric 20 (xdprouterd's), nothing
// learned from the kernel; persist, as xdprouterd keeps its routes, so
// that neither spends its exit deleting a table the namespace takes away.
func birdRouterConfig() string {
	return fmt.Sprintf(`router id %s;
protocol device {}
protocol kernel k4 { ipv4 { import none; export all; }; metric 20; persist; }
protocol kernel k6 { ipv6 { import none; export all; }; metric 20; persist; }
protocol bgp up4 { local %s as %d; neighbor %s as %d; ipv4 { import all; export none; }; }
protocol bgp up6 { local %s as %d; neighbor %s as %d; ipv6 { import all; export none; }; }
`, lab.R2v4, lab.R2v4, lab.RouterASN, lab.H2v4, lab.UpstreamASN, lab.R2v6, lab.RouterASN, lab.H2v6, lab.UpstreamASN)
}

// writeUpstreamConfig writes the upstream's BIRD config to path: table as
// static routes, then each slice of churn as a static protocol churnN,
// disabled, and BGP sessions to r over IPv4 and IPv6 exporting all.
//
// Real tables carry many distinct attribute sets, a few prefixes each, so
// an UPDATE holds a few prefixes, not thousands: prefixes are taken in
// groups of 1-8 (in the table's random order) that share an AS path of a
// transit AS (one of 40) and an origin AS of their own, set per route.
func writeUpstreamConfig(path string, table []netip.Prefix, churn [][]netip.Prefix) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(tableSeed, 8))
	group, left, transit := 0, 0, 0
	routes := func(ps []netip.Prefix, fam bool) {
		for _, p := range ps {
			if p.Addr().Is4() != fam {
				continue
			}
			if left == 0 {
				group, left, transit = group+1, 1+rng.IntN(8), 3000+rng.IntN(40)
			}
			left--
			fmt.Fprintf(w, "  route %s blackhole { bgp_path.prepend(%d); bgp_path.prepend(%d); };\n", p, upstreamASN0+group, transit)
		}
	}
	fmt.Fprintf(w, "router id %s;\ntimeformat protocol iso long ms;\nprotocol device {}\n", lab.H2v4)
	for _, fam := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(w, "protocol static table_%s {\n  %s;\n", fam, fam)
		routes(table, fam == "ipv4")
		w.WriteString("}\n")
	}
	for i, s := range churn {
		fam := "ipv4"
		if s[0].Addr().Is6() {
			fam = "ipv6"
		}
		fmt.Fprintf(w, "protocol static churn%d {\n  %s;\n  disabled;\n", i, fam)
		routes(s, fam == "ipv4")
		w.WriteString("}\n")
	}
	fmt.Fprintf(w, `protocol bgp r4 { local %s as %d; neighbor %s as %d; ipv4 { import none; export all; next hop self; }; }
protocol bgp r6 { local %s as %d; neighbor %s as %d; ipv6 { import none; export all; next hop self; }; }
`, lab.H2v4, lab.UpstreamASN, lab.R2v4, lab.RouterASN, lab.H2v6, lab.UpstreamASN, lab.R2v6, lab.RouterASN)
	return errors.Join(w.Flush(), f.Close())
}

// startUpstream starts the upstream BIRD in h2 with the config written by
// writeUpstreamConfig.
func (g *rig) startUpstream(table []netip.Prefix, churn [][]netip.Prefix) error {
	udir := filepath.Join(g.dir, "up")
	if err := os.Mkdir(udir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(udir, "bird.conf")
	if err := writeUpstreamConfig(path, table, churn); err != nil {
		return err
	}
	var err error
	g.up, err = g.l.StartBIRDFile("h2", udir, path)
	return err
}

// upSocket is the upstream's control socket.
func (g *rig) upSocket() string { return lab.BIRDSocket(filepath.Join(g.dir, "up")) }

// established returns the earliest time one of the upstream's BGP
// sessions reached Established (BIRD's own time stamp, ms), or the zero
// time while none has.
func (g *rig) established() (time.Time, error) {
	out, err := birdCmd(g.upSocket(), "show protocols")
	if err != nil {
		return time.Time{}, err
	}
	var first time.Time
	for _, ln := range strings.Split(out, "\n") {
		// "r4         BGP        ---        up     2026-11-20 10:11:12.345  Established"
		f := strings.Fields(ln)
		if len(f) < 7 || f[1] != "BGP" || f[3] != "up" || f[6] != "Established" {
			continue
		}
		t, err := time.ParseInLocation("2006-01-02 15:04:05.000", f[4]+" "+f[5], time.Local)
		if err != nil {
			return time.Time{}, fmt.Errorf("upstream show protocols: %q: %w", ln, err)
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first, nil
}

// kernelCounts reads how many routes r's kernel holds from /proc of the
// router's process (in r's namespace): fib_triestat's prefixes of the main
// trie (the kernel walks the trie: ~70 ms at 565k routes here, so the
// benchmarks read it only when the router claims to be done) and
// rt6_stats' route entries (a counter).
func (g *rig) kernelCounts() (rcounts, error) {
	var c rcounts
	pid := g.router.Cmd.Process.Pid
	tri, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/fib_triestat", pid))
	if err != nil {
		return c, err
	}
	_, main, _ := strings.Cut(string(tri), "Main:")
	_, pfx, ok := strings.Cut(main, "Prefixes:")
	if !ok {
		return c, fmt.Errorf("fib_triestat: no Main prefixes:\n%s", tri)
	}
	if _, err := fmt.Sscan(pfx, &c.k4); err != nil {
		return c, fmt.Errorf("fib_triestat: %w", err)
	}
	rt6, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/rt6_stats", pid))
	if err != nil {
		return c, err
	}
	// fib6_nodes fib6_route_nodes fib6_rt_alloc fib6_rt_entries ... (hex)
	f := strings.Fields(string(rt6))
	if len(f) < 4 {
		return c, fmt.Errorf("rt6_stats: %q", rt6)
	}
	n, err := strconv.ParseUint(f[3], 16, 32)
	if err != nil {
		return c, fmt.Errorf("rt6_stats: %w", err)
	}
	c.k6 = int(n)
	return c, nil
}

// claims reads what the router says it has put into the kernel (and, for
// xdprouterd, XDP), cheaply: xdprouterd's status API (its own BGP routes
// in the kernel; XDP counts include the mirrored kernel routes), BIRD's
// kernel protocols' exported routes (BIRD writes each route
// synchronously).
func (g *rig) claims() (rcounts, error) {
	var c rcounts
	if g.kind == kindBIRD {
		sock := lab.BIRDSocket(filepath.Join(g.dir, "r"))
		for _, k := range []struct {
			proto string
			n     *int
		}{{"k4", &c.k4}, {"k6", &c.k6}} {
			out, err := birdCmd(sock, "show protocols all "+k.proto)
			if err != nil {
				return c, err
			}
			// "    Routes:         0 imported, 565000 exported, 0 preferred"
			_, rest, ok := strings.Cut(out, "Routes:")
			var imported int
			if !ok {
				return c, fmt.Errorf("bird show protocols all %s: no Routes:\n%s", k.proto, out)
			}
			if _, err := fmt.Sscanf(rest, "%d imported, %d exported", &imported, k.n); err != nil {
				return c, fmt.Errorf("bird show protocols all %s: %v:\n%s", k.proto, err, out)
			}
		}
		return c, nil
	}
	var st api.Status
	if err := g.status(&st); err != nil {
		return c, err
	}
	r := st.Routes
	return rcounts{k4: r.FIB4, k6: r.FIB6, x4: r.XDP4, x6: r.XDP6, pending: r.Pending, writes: r.XDPWrites}, nil
}

// status reads xdprouterd's /api/v1/status.
func (g *rig) status(st *api.Status) error {
	body, err := g.get("/api/v1/status")
	if err != nil {
		return err
	}
	return json.Unmarshal(body, st)
}

// get fetches path from xdprouterd's metrics address in r's namespace,
// over a connection made from a thread in that namespace (one request per
// connection; no xdprouterctl process per poll).
func (g *rig) get(path string) ([]byte, error) {
	var body []byte
	err := g.l.Do("r", func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+lab.MetricsPort, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+lab.MetricsPort+path, nil)
		if err != nil {
			return err
		}
		req.Close = true
		if err := req.Write(c); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if body, err = io.ReadAll(resp.Body); err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
		}
		return err
	})
	return body, err
}

// heap summarizes xdprouterd's Go memory (runtime.MemStats from
// /debug/pprof/heap?debug=1) in MB: heap in use, idle but not returned,
// and everything obtained from the OS.
func (g *rig) heap() (string, error) {
	body, err := g.get("/debug/pprof/heap?debug=1")
	if err != nil {
		return "", err
	}
	ms := map[string]uint64{}
	for _, ln := range strings.Split(string(body), "\n") {
		var k string
		var v uint64
		if n, _ := fmt.Sscanf(ln, "# %s = %d", &k, &v); n == 2 {
			ms[k] = v
		}
	}
	return fmt.Sprintf("inuse %d idle-retained %d sys %d", ms["HeapInuse"]>>20, (ms["HeapIdle"]-ms["HeapReleased"])>>20, ms["Sys"]>>20), nil
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(p *lab.Proc) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscan(rest, &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM")
}

// close stops the processes and removes the lab; safe to call twice.
func (g *rig) close() error {
	var err error
	if g.router != nil { // first, with time to spare: a full table may take a while
		if err = g.router.Stop(time.Minute); err != nil && isExitErr(err) {
			err = nil
		}
	}
	err = errors.Join(err, g.l.Close())
	return errors.Join(err, os.RemoveAll(g.dir))
}

func isExitErr(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// birdCmd runs one command on BIRD's control socket and returns the reply
// text (codes stripped). The socket is a file, not bound to a namespace.
func birdCmd(socket, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	if _, err := birdReply(r); err != nil { // "0001 BIRD 2.0.12 ready."
		return "", err
	}
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	return birdReply(r)
}

// birdReply reads one reply: lines "CODE-text" or " text" continue it,
// "CODE text" ends it; codes 8xxx and 9xxx are errors.
func birdReply(r *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		ln, err := r.ReadString('\n')
		if err != nil {
			return sb.String(), err
		}
		if len(ln) >= 5 && ln[4] != '-' && ln[0] >= '0' && ln[0] <= '9' {
			sb.WriteString(ln[5:])
			if ln[0] >= '8' {
				return sb.String(), fmt.Errorf("bird: %s", strings.TrimSpace(sb.String()))
			}
			return sb.String(), nil
		}
		if len(ln) >= 5 && ln[4] == '-' {
			ln = ln[5:]
		}
		sb.WriteString(ln)
	}
}

// buildDaemon builds xdprouterd into a directory of b's (the go build
// cache makes every build after the first a link).
func buildDaemon(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir, "../../cmd/xdprouterd").CombinedOutput(); err != nil {
		b.Fatalf("build xdprouterd: %v\n%s", err, out)
	}
	return dir
}

// saveHeap saves xdprouterd's heap profile as name.pprof when
// XDPROUTER_BENCH_PROFILE names a directory.
func (g *rig) saveHeap(name string) error {
	dir := os.Getenv("XDPROUTER_BENCH_PROFILE")
	if dir == "" || g.kind != kindXDP {
		return nil
	}
	for _, prof := range []string{"heap", "mutex", "block"} {
		body, err := g.get("/debug/pprof/" + prof)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, strings.Replace(name, "heap", prof, 1)+".pprof"), body, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// profile starts a CPU profile of xdprouterd over the next d when
// XDPROUTER_BENCH_PROFILE names a directory, saved there as name.pprof
// (read it with go tool pprof and the daemon binary); the returned
// function waits for it. A no-op otherwise, and for BIRD.
func (g *rig) profile(name string, d time.Duration) func() error {
	dir := os.Getenv("XDPROUTER_BENCH_PROFILE")
	if dir == "" || g.kind != kindXDP {
		return func() error { return nil }
	}
	errc := make(chan error, 1)
	go func() {
		body, err := g.get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(1, int(d.Seconds()))))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name+".pprof"), body, 0o644)
		}
		errc <- err
	}()
	return func() error { return <-errc }
}
