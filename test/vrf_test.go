package test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/lab"
)

// vrfConfig: red = {eth1 (h1), eth3 (u1)} in table 100 with neighbor u1,
// blue = {eth2 (h2), eth4 (u2)} in table 200 with neighbor u2.
const vrfConfig = `[router]
asn = 65000
router-id = "10.0.1.1"

[[vrf]]
name = "red"
table = 100
interfaces = ["eth1", "eth3"]

[[vrf]]
name = "blue"
table = 200
interfaces = ["eth2", "eth4"]

[[neighbor]]
address = "10.0.3.2"
peer-asn = 65001
description = "u1"
import = "accept-all"
vrf = "red"

[[neighbor]]
address = "10.0.4.2"
peer-asn = 65001
description = "u2"
import = "accept-all"
vrf = "blue"
`

// TestVRFLite: two VRF-lite instances with overlapping prefixes and their
// own BGP peers forward independently: u1 and u2 (BIRD) both announce
// 198.51.100.0/24 and own 198.51.100.1; h1's traffic (red) goes to u1,
// h2's (blue) to u2, in the kernel and in XDP (kernel forwarding is off
// in r); red cannot reach blue; a withdrawal in red leaves blue alone.
func TestVRFLite(t *testing.T) {
	needBinary(t, "/usr/sbin/bird")
	r := newLab(t)
	for _, port := range []int{3, 4} {
		if err := r.AddHost(fmt.Sprintf("u%d", port-2), port); err != nil {
			t.Fatal(err)
		}
	}
	r.ports = []string{"eth1", "eth2", "eth3", "eth4"}
	shared := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	var peers []lab.BGPPeer
	for _, port := range []int{3, 4} {
		p, _, err := r.Upstream(fmt.Sprintf("u%d", port-2), port, shared, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		p.Peers = p.Peers[:1] // IPv4 sessions only
		if _, err := r.StartBIRD(p); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
	}
	r.start(vrfConfig)

	// The kernel's tables and rules.
	r.poll(30*time.Second, func() error {
		for _, c := range []struct{ table, via string }{{"100", "10.0.3.2"}, {"200", "10.0.4.2"}} {
			out, err := r.Output("r", "ip", "route", "show", "table", c.table, "198.51.100.0/24")
			if err != nil || !strings.Contains(out, "via "+c.via) {
				return fmt.Errorf("table %s: %q %v, want via %s", c.table, out, err, c.via)
			}
		}
		return nil
	})
	out, err := r.Output("r", "ip", "route", "show", "table", "main", "198.51.100.0/24")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("main table has the VRF prefix: %q %v", out, err)
	}
	for _, c := range []struct{ table, conn string }{{"100", "10.0.3.0/24 dev eth3"}, {"100", "10.0.1.0/24 dev eth1"}, {"200", "10.0.4.0/24 dev eth4"}} {
		if out, _ := r.Output("r", "ip", "route", "show", "table", c.table); !strings.Contains(out, c.conn) {
			t.Errorf("table %s lacks the connected route %s:\n%s", c.table, c.conn, out)
		}
	}
	rules, _ := r.Output("r", "ip", "rule", "show")
	for _, s := range []string{"1000:\tfrom all iif eth1 lookup 100 proto 200", "1001:\tfrom all iif eth3 unreachable proto 200",
		"1010:\tfrom all iif eth2 lookup 200 proto 200", "1011:\tfrom all iif eth4 unreachable proto 200"} {
		if !strings.Contains(rules, s) {
			t.Errorf("ip rule lacks %q:\n%s", s, rules)
		}
	}
	// The kernel answers `ip route get ... iif` for transit traffic only
	// with forwarding on: on for the question, off again for the proof
	// that XDP forwarded.
	if err := r.Sysctl("r", "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, iif, via string }{{lab.H1v4, "eth1", "10.0.3.2"}, {lab.H2v4, "eth2", "10.0.4.2"}} {
		out, err := r.Output("r", "ip", "route", "get", "198.51.100.1", "from", c.from, "iif", c.iif)
		if err != nil || !strings.Contains(out, "via "+c.via) {
			t.Errorf("ip route get 198.51.100.1 from %s iif %s: %q %v, want via %s", c.from, c.iif, out, err, c.via)
		}
	}
	// Red's host has no route to blue's subnets (unreachable rule).
	if out, err := r.Output("r", "ip", "route", "get", "10.0.4.2", "from", lab.H1v4, "iif", "eth1"); err == nil {
		t.Errorf("ip route get 10.0.4.2 from h1 iif eth1 = %q, want unreachable", out)
	}
	if err := r.ForwardingOff("r"); err != nil {
		t.Fatal(err)
	}
	// gobgp shows each instance's RIB.
	for _, c := range []struct{ vrf, nh string }{{"red", "10.0.3.2"}, {"blue", "10.0.4.2"}} {
		out, err := r.Output("r", filepath.Join(bin, "gobgp"), "-p", lab.GRPCPort, "vrf", c.vrf, "rib")
		if err != nil || !strings.Contains(out, "198.51.100.0/24") || !strings.Contains(out, c.nh) {
			t.Errorf("gobgp vrf %s rib: %v\n%s", c.vrf, err, out)
		}
	}
	if out, _ := r.Output("r", filepath.Join(bin, "gobgp"), "-p", lab.GRPCPort, "global", "rib"); strings.Contains(out, "198.51.100.0") {
		t.Errorf("the global RIB has the VRF prefix:\n%s", out)
	}

	// XDP forwards each host's traffic to its instance's upstream: the
	// reply comes from the address that instance's upstream owns, and
	// every packet (3 echo requests, 3 replies) was redirected by XDP.
	for _, c := range []struct{ host, up string }{{"h1", "u1"}, {"h2", "u2"}} {
		r.poll(10*time.Second, func() error { return r.Run(c.host, "ping", "-c1", "-W1", "198.51.100.1") })
		before := r.counter(bpf.ActionRedirect, "")
		// The upstream sees the echo requests.
		n0 := icmpIn(t, r, c.up)
		if err := r.Run(c.host, "ping", "-c3", "-i0.05", "-W1", "198.51.100.1"); err != nil {
			t.Fatalf("%s: ping 198.51.100.1: %v", c.host, err)
		}
		if got := r.counter(bpf.ActionRedirect, "") - before; got != 6 {
			t.Errorf("%s: XDP redirected %d packets for 3 pings, want 6", c.host, got)
		}
		if n := icmpIn(t, r, c.up) - n0; n < 3 {
			t.Errorf("%s's pings reached %s %d times, want 3", c.host, c.up, n)
		}
	}

	// Isolation: red reaches neither blue's upstream nor its host.
	for _, dst := range []string{"10.0.4.2", lab.H2v4} {
		if err := r.Run("h1", "ping", "-c1", "-W1", dst); err == nil {
			t.Errorf("h1 (red) reached %s (blue)", dst)
		}
	}

	// A withdrawal in red removes the route from table 100 only.
	if out, err := r.BirdC(peers[0], "disable", "static_ipv4"); err != nil {
		t.Fatalf("birdc disable: %v %s", err, out)
	}
	r.poll(10*time.Second, func() error {
		out, err := r.Output("r", "ip", "route", "show", "table", "100", "198.51.100.0/24")
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("table 100 still has it: %q %v", out, err)
		}
		return nil
	})
	if out, _ := r.Output("r", "ip", "route", "show", "table", "200", "198.51.100.0/24"); !strings.Contains(out, "via 10.0.4.2") {
		t.Errorf("table 200 lost its route: %q", out)
	}
	if err := r.Run("h2", "ping", "-c1", "-W1", "198.51.100.1"); err != nil {
		t.Errorf("h2 (blue) lost 198.51.100.1: %v", err)
	}
	if err := r.Run("h1", "ping", "-c1", "-W1", "198.51.100.1"); err == nil {
		t.Error("h1 (red) still reaches 198.51.100.1 after the withdrawal")
	}
}

// icmpIn is how many ICMP echo requests role received (Icmp InEchos).
func icmpIn(t *testing.T, r *router, role string) int {
	t.Helper()
	out, err := r.Output(role, "nstat", "-az", "IcmpInEchos")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "IcmpInEchos" {
			var n int
			fmt.Sscan(f[1], &n)
			return n
		}
	}
	t.Fatalf("no IcmpInEchos in %q", out)
	return 0
}
