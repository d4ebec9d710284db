package test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/packet/bmp"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// up2ASN is the second upstream's AS in the RPKI test: origins differ,
// so one prefix can be valid from one upstream and invalid from the other.
const up2ASN = 65010

// rpkiNeighbors is the [router] and [[neighbor]] TOML of the RPKI test:
// up1 in AS lab.UpstreamASN, up2 in up2ASN, both accept-all.
func rpkiNeighbors(up2 upstream) string {
	var b strings.Builder
	b.WriteString(routerHeader())
	for _, n := range []struct {
		u   upstream
		asn int
	}{{up1, lab.UpstreamASN}, {up2, up2ASN}} {
		for _, a := range []string{n.u.v4(), n.u.v6()} {
			fmt.Fprintf(&b, "[[neighbor]]\naddress = %q\npeer-asn = %d\ndescription = %q\nimport = \"accept-all\"\n\n", a, n.asn, n.u.role)
		}
	}
	return b.String()
}

// TestRPKI: route origin validation against a real RTR cache (stayrtr
// serving a VRP file the test writes) with BIRD upstreams in two ASes.
// Invalid routes are rejected (neither in the kernel nor in XDP), valid
// and not-found ones installed, the state shown by xdprouterctl routes,
// the cache in status and metrics. A changed VRP file reaches the routes
// without any BGP event (xdprouterd re-evaluates): a valid route turns
// invalid and leaves, an invalid one turns valid and comes. With
// rpki-reject-invalid = false (SIGHUP) invalid routes are installed but
// lose to valid ones (rpki-valid-local-pref): the path chosen for a
// prefix both upstreams announce follows the VRPs.
func TestRPKI(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	needBinary(t, lab.StayRTR)
	r := newLab(t)
	up2 := r.addUpstream2()
	pfx := netip.MustParsePrefix
	valid4, invalid4, notFound4, shared4 := pfx("8.8.8.0/24"), pfx("9.9.9.0/24"), pfx("1.1.1.0/24"), pfx("7.7.7.0/24")
	valid6, invalid6 := pfx("2a00:1::/48"), pfx("2a00:2::/48")
	p1 := r.peer(up1, []netip.Prefix{valid4, invalid4, notFound4, shared4, valid6, invalid6})
	p2 := r.peer(up2, []netip.Prefix{shared4})
	p2.ASN = up2ASN
	for _, p := range []lab.BGPPeer{p1, p2} {
		if _, err := r.StartBIRD(p); err != nil {
			t.Fatal(err)
		}
	}

	vrpFile := filepath.Join(t.TempDir(), "vrps.json")
	writeVRPs := func(vrps ...lab.VRP) {
		t.Helper()
		if err := lab.WriteVRPs(vrpFile, vrps); err != nil {
			t.Fatal(err)
		}
	}
	writeVRPs(
		lab.VRP{Prefix: valid4, MaxLength: 24, ASN: lab.UpstreamASN},
		lab.VRP{Prefix: invalid4, MaxLength: 24, ASN: 64999}, // another origin
		lab.VRP{Prefix: shared4, MaxLength: 24, ASN: up2ASN},
		lab.VRP{Prefix: valid6, MaxLength: 48, ASN: lab.UpstreamASN},
		lab.VRP{Prefix: pfx("2a00:2::/32"), MaxLength: 32, ASN: lab.UpstreamASN}, // too long: invalid
	)
	if _, err := r.StartStayRTR("r", vrpFile, "127.0.0.1:8282"); err != nil {
		t.Fatal(err)
	}
	conf := func(rejectInvalid bool) string {
		return rpkiNeighbors(up2) + fmt.Sprintf("[bgp]\nrpki-reject-invalid = %v\nrpki-valid-local-pref = 200\n\n[[rpki]]\naddress = \"127.0.0.1\"\nport = 8282\n", rejectInvalid)
	}
	r.start(conf(true))

	// want checks the BGP routes: each prefix installed (in the kernel
	// and XDP, via the upstream named) with its state, or absent.
	type want struct {
		via   string // "": not installed
		state string
	}
	check := func(what string, wants map[netip.Prefix]want) {
		t.Helper()
		r.poll(60*time.Second, func() error {
			var routes []xsync.RouteInfo
			if err := r.ctl(&routes, "routes"); err != nil {
				return err
			}
			var errs []string
			for p, w := range wants {
				i := slices.IndexFunc(routes, func(ri xsync.RouteInfo) bool { return ri.Prefix == p && ri.Source == "bgp" })
				kernel := r.ourRoute(p.String())
				switch {
				case w.via == "" && (i >= 0 || kernel != ""):
					errs = append(errs, fmt.Sprintf("%s installed (kernel %q)", p, kernel))
				case w.via == "":
				case i < 0:
					errs = append(errs, fmt.Sprintf("%s not in routes", p))
				case !routes[i].InXDP || !routes[i].InKernel || kernel == "" || !slices.Equal(routes[i].BGPNextHops, []netip.Addr{netip.MustParseAddr(w.via)}):
					errs = append(errs, fmt.Sprintf("%s: xdp %v kernel %v %q via %v, want via %s", p, routes[i].InXDP, routes[i].InKernel, kernel, routes[i].BGPNextHops, w.via))
				case routes[i].RPKI != w.state:
					errs = append(errs, fmt.Sprintf("%s: rpki %q, want %q", p, routes[i].RPKI, w.state))
				}
			}
			if len(errs) > 0 {
				slices.Sort(errs)
				return fmt.Errorf("%s: %s", what, strings.Join(errs, "; "))
			}
			return nil
		})
	}
	check("first VRPs", map[netip.Prefix]want{
		valid4:    {up1.v4(), "valid"},
		notFound4: {up1.v4(), "not-found"},
		invalid4:  {},
		shared4:   {up2.v4(), "valid"}, // up1's path is invalid
		valid6:    {up1.v6(), "valid"},
		invalid6:  {},
	})
	// Not forwarded by XDP either.
	for _, a := range []string{"9.9.9.1", "2a00:2::1"} {
		if d := r.lookup(a); d.Action == bpf.ActionRedirect {
			t.Errorf("XDP lookup %s (invalid) = %+v, want no route", a, d)
		}
	}
	r.pingXDP("8.8.8.1") // up1 owns it
	// Status and metrics come from a poll of the cache every few seconds.
	r.poll(30*time.Second, func() error {
		st := r.status()
		if len(st.RPKI) != 1 || !st.RPKI[0].Up || st.RPKI[0].VRPs4 != 3 || st.RPKI[0].VRPs6 != 2 || st.RPKI[0].Address != netip.MustParseAddr("127.0.0.1") || st.RPKI[0].Port != 8282 {
			return fmt.Errorf("status rpki = %+v, want 127.0.0.1:8282 up with 3+2 VRPs", st.RPKI)
		}
		m := r.metrics()
		for _, line := range []string{
			`xdprouter_rpki_session_up{server="127.0.0.1:8282"} 1`,
			`xdprouter_rpki_vrps{family="ipv4",server="127.0.0.1:8282"} 3`,
			`xdprouter_rpki_vrps{family="ipv6",server="127.0.0.1:8282"} 2`,
		} {
			if !strings.Contains(m, line+"\n") {
				return fmt.Errorf("metrics lack %q", line)
			}
		}
		return nil
	})
	text, err := r.Output("r", filepath.Join(bin, "xdprouterctl"), "--api", "127.0.0.1:"+lab.MetricsPort, "routes", "8.8.8.0/24")
	if err != nil || !regexp.MustCompile(`(?m)^8\.8\.8\.0/24\s.*\svalid\s*$`).MatchString(text) || !strings.Contains(text, "RPKI") {
		t.Errorf("xdprouterctl routes 8.8.8.0/24:\n%s(%v), want an RPKI column saying valid", text, err)
	}
	revalidations := func() int {
		t.Helper()
		sub := regexp.MustCompile(`(?m)^xdprouter_rpki_revalidations_total (\d+)$`).FindStringSubmatch(r.metrics())
		if sub == nil {
			t.Fatal("no xdprouter_rpki_revalidations_total")
		}
		n, _ := strconv.Atoi(sub[1])
		return n
	}
	before := revalidations()

	// New VRPs: valid4 becomes invalid, invalid4 valid, shared4 is up1's.
	writeVRPs(
		lab.VRP{Prefix: valid4, MaxLength: 24, ASN: 64999},
		lab.VRP{Prefix: invalid4, MaxLength: 24, ASN: lab.UpstreamASN},
		lab.VRP{Prefix: shared4, MaxLength: 24, ASN: lab.UpstreamASN},
		lab.VRP{Prefix: valid6, MaxLength: 48, ASN: lab.UpstreamASN},
	)
	check("changed VRPs", map[netip.Prefix]want{
		valid4:    {},
		invalid4:  {up1.v4(), "valid"},
		notFound4: {up1.v4(), "not-found"},
		shared4:   {up1.v4(), "valid"},
		valid6:    {up1.v6(), "valid"},
		invalid6:  {up1.v6(), "not-found"}, // its VRP is gone
	})
	if n := revalidations(); n <= before {
		t.Errorf("xdprouter_rpki_revalidations_total %d after a VRP change, was %d", n, before)
	}

	// Invalid routes accepted, valid ones preferred: both paths of shared4
	// are in, and the valid one wins whichever upstream it is.
	r.sighup(conf(false), 1)
	check("rpki-reject-invalid = false", map[netip.Prefix]want{
		valid4:  {up1.v4(), "invalid"},
		shared4: {up1.v4(), "valid"},
	})
	writeVRPs(
		lab.VRP{Prefix: valid4, MaxLength: 24, ASN: 64999},
		lab.VRP{Prefix: shared4, MaxLength: 24, ASN: up2ASN},
	)
	check("shared prefix valid from up2", map[netip.Prefix]want{
		valid4:   {up1.v4(), "invalid"},
		invalid4: {up1.v4(), "not-found"},
		shared4:  {up2.v4(), "valid"},
	})
	var n4 int
	for _, p := range r.status().Peers {
		if p.Address == netip.MustParseAddr(up1.v4()) {
			n4 = int(p.Received)
		}
	}
	if n4 != 4 {
		t.Errorf("up1 IPv4 session received %d prefixes, want 4 (re-evaluation must not reset it)", n4)
	}
}

// bmpCollector is a BMP station (RFC 7854) in a namespace: it accepts
// connections and parses every message with GoBGP's BMP parser.
type bmpCollector struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []*bmp.BMPMessage
	errs []error
}

func startBMPCollector(t *testing.T, r *router, role string) *bmpCollector {
	t.Helper()
	c := &bmpCollector{}
	err := r.Do(role, func() error {
		var err error
		c.ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.ln.Close() })
	go func() {
		for {
			conn, err := c.ln.Accept()
			if err != nil {
				return
			}
			go c.read(conn)
		}
	}()
	return c
}

func (c *bmpCollector) read(conn net.Conn) {
	defer conn.Close()
	s := bufio.NewScanner(conn)
	s.Buffer(make([]byte, 0, 1<<16), 1<<20)
	s.Split(bmp.SplitBMP)
	for s.Scan() {
		m, err := bmp.ParseBMPMessage(s.Bytes())
		c.mu.Lock()
		if err != nil {
			c.errs = append(c.errs, err)
		} else {
			c.msgs = append(c.msgs, m)
		}
		c.mu.Unlock()
	}
}

func (c *bmpCollector) port() int { return c.ln.Addr().(*net.TCPAddr).Port }

// seen sums up what arrived: Initiation sysName, peers up, prefixes in
// route monitoring per peer, terminations, parse errors.
func (c *bmpCollector) seen() (sysName string, peersUp []netip.Addr, routes map[netip.Addr][]netip.Prefix, terms int, errs []error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	routes = map[netip.Addr][]netip.Prefix{}
	for _, m := range c.msgs {
		switch b := m.Body.(type) {
		case *bmp.BMPInitiation:
			for _, tlv := range b.Info {
				if s, ok := tlv.(*bmp.BMPInfoTLVString); ok && s.Type == bmp.BMP_INIT_TLV_TYPE_SYS_NAME {
					sysName = s.Value
				}
			}
		case *bmp.BMPPeerUpNotification:
			peersUp = append(peersUp, m.PeerHeader.PeerAddress)
		case *bmp.BMPTermination:
			terms++
		case *bmp.BMPRouteMonitoring:
			u, ok := b.BGPUpdate.Body.(*bgp.BGPUpdate)
			if !ok {
				continue
			}
			nlris := slices.Clone(u.NLRI)
			for _, a := range u.PathAttributes {
				if mp, ok := a.(*bgp.PathAttributeMpReachNLRI); ok {
					nlris = append(nlris, mp.Value...)
				}
			}
			for _, n := range nlris {
				if p, err := netip.ParsePrefix(n.NLRI.String()); err == nil {
					routes[m.PeerHeader.PeerAddress] = append(routes[m.PeerHeader.PeerAddress], p)
				}
			}
		}
	}
	return sysName, peersUp, routes, terms, slices.Clone(c.errs)
}

// TestBMP: xdprouterd streams BMP to a collector (in r's namespace, in
// the test process): Initiation, Peer Up for the BIRD upstream's
// sessions, Route Monitoring with the prefixes it announces (pre-policy:
// as received). The session shows in status and metrics; removing the
// [[bmp]] station by SIGHUP sends Termination.
func TestBMP(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	prefixes := []netip.Prefix{netip.MustParsePrefix("8.8.8.0/24"), netip.MustParsePrefix("8.8.9.0/24"), netip.MustParsePrefix("2a00:1::/48")}
	if _, err := r.StartBIRD(r.peer(up1, prefixes)); err != nil {
		t.Fatal(err)
	}
	c := startBMPCollector(t, r, "r")
	station := fmt.Sprintf("[[bmp]]\naddress = \"127.0.0.1\"\nport = %d\n", c.port())
	r.start(neighbors("", up1) + station)
	r.waitRoutes("learned", 2, 1)
	v4, v6 := netip.MustParseAddr(up1.v4()), netip.MustParseAddr(up1.v6())
	r.poll(30*time.Second, func() error {
		name, up, routes, _, errs := c.seen()
		if len(errs) > 0 {
			t.Fatalf("collector could not parse: %v", errs)
		}
		if name != "xdprouter" {
			return fmt.Errorf("no Initiation with sysName xdprouter (got %q)", name)
		}
		if !slices.Contains(up, v4) || !slices.Contains(up, v6) {
			return fmt.Errorf("peers up %v, want %s and %s", up, v4, v6)
		}
		got := append(slices.Clone(routes[v4]), routes[v6]...)
		for _, p := range prefixes {
			if !slices.Contains(got, p) {
				return fmt.Errorf("route monitoring has %v, want %v", routes, prefixes)
			}
		}
		return nil
	})
	want := fmt.Sprintf("127.0.0.1:%d", c.port())
	if st := r.status(); len(st.BMP) != 1 || !st.BMP[0].Up || netip.AddrPortFrom(st.BMP[0].Address, st.BMP[0].Port).String() != want {
		t.Errorf("status bmp = %+v, want %s up", st.BMP, want)
	}
	if m := r.metrics(); !strings.Contains(m, fmt.Sprintf("xdprouter_bmp_session_up{station=%q} 1\n", want)) {
		t.Errorf("metrics lack xdprouter_bmp_session_up 1 for %s", want)
	}

	r.sighup(neighbors("", up1), 1)
	r.poll(10*time.Second, func() error {
		if _, _, _, terms, _ := c.seen(); terms != 1 {
			return fmt.Errorf("%d Termination messages after removing the station, want 1", terms)
		}
		return nil
	})
	var st api.Status
	if err := r.ctl(&st, "status"); err != nil || len(st.BMP) != 0 {
		t.Errorf("status bmp after removal = %+v, %v", st.BMP, err)
	}
}
