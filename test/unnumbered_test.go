package test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bgp"
	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/fib"
	"github.com/xdprouter/xdprouter/lab"
)

// TestUnnumberedFRR: BGP unnumbered with FRR (`neighbor eth0 interface
// remote-as external`, RFC 8950). f is linked to r's eth3 with link-local
// addresses only; xdprouterd has `interface = "eth3"`. The session comes
// up on the link-local addresses, FRR's IPv4 routes arrive with its IPv6
// link-local next hop and are installed `via inet6 fe80::... dev eth3`,
// and XDP forwards IPv4 packets to FRR's MAC, as `ip route get` says.
func TestUnnumberedFRR(t *testing.T) {
	needBinary(t, lab.FRRBin+"/zebra")
	needBinary(t, lab.FRRBin+"/bgpd")
	r := newLab(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.AddNS("f"))
	must(r.Link("r", "eth3", "f", "eth0"))
	must(r.HostPort("f", "eth0"))
	must(r.Sysctl("f", "net.ipv4.ip_forward", "1"))
	must(r.Sysctl("f", "net.ipv6.conf.all.forwarding", "1"))
	r.ports = append(r.ports, "eth3")
	const dst = "100.64.0.1" // f's, inside the first prefix
	must(r.Run("f", "ip", "addr", "add", dst+"/32", "dev", "lo"))
	prefixes := []netip.Prefix{netip.MustParsePrefix("100.64.0.0/24"), netip.MustParsePrefix("100.64.1.0/24"),
		netip.MustParsePrefix("100.64.2.0/24"), netip.MustParsePrefix("2001:db8:1000::/48")}
	// f's side is down at first: nothing answers on eth3.
	must(r.Run("f", "ip", "link", "set", "eth0", "down"))
	zebra, bgpd, err := r.StartFRRUnnumbered("f", "eth0", lab.UpstreamASN, "10.255.0.1", prefixes)
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range []*lab.Proc{zebra, bgpd} {
				if p != nil {
					t.Logf("FRR output:\n%s", p.Out.String())
				}
			}
		}
	})
	must(err)

	r.start(fmt.Sprintf(`[router]
asn = %d
router-id = "10.0.1.1"

[[neighbor]]
interface = "eth3"
peer-asn = %d
description = "frr-unnumbered"
import = "accept-all"
export = "announce-h1"
connect-retry = 2

[[network]]
prefix = "10.0.1.0/24"

[[prefix-set]]
name = "h1"
prefixes = ["10.0.1.0/24"]

[[policy]]
name = "announce-h1"
[[policy.statement]]
match-prefix-set = "h1"
action = "accept"
`, lab.RouterASN, lab.UpstreamASN))

	// The link-local address of ifname in role.
	linkLocal := func(role, ifname string) netip.Addr {
		t.Helper()
		out, err := r.Output(role, "ip", "-6", "-j", "addr", "show", "dev", ifname, "scope", "link")
		must(err)
		var l []struct {
			AddrInfo []struct{ Local string } `json:"addr_info"`
		}
		if json.Unmarshal([]byte(out), &l) != nil || len(l) != 1 || len(l[0].AddrInfo) != 1 {
			t.Fatalf("link-local address of %s in %s: %q", ifname, role, out)
		}
		return netip.MustParseAddr(l[0].AddrInfo[0].Local)
	}
	// No peer on the link: status shows the neighbor by its interface.
	r.poll(10*time.Second, func() error {
		for _, p := range r.status().Peers {
			if p.Interface == "eth3" && p.State == bgp.StateNoPeer && !p.Address.IsValid() && p.ASN == lab.UpstreamASN {
				return nil
			}
		}
		return fmt.Errorf("status does not show eth3 waiting for its peer: %+v", r.status().Peers)
	})
	if m := r.metrics(); strings.Contains(m, "xdprouter_bgp_peer_up{") {
		t.Errorf("a peer_up metric without a peer:\n%s", m)
	}
	must(r.Run("f", "ip", "link", "set", "eth0", "up"))

	fLL := linkLocal("f", "eth0")
	peer := fLL.WithZone("eth3")

	r.poll(60*time.Second, func() error {
		for _, p := range r.status().Peers {
			if p.Address == peer && p.Up && p.Description == "frr-unnumbered" && p.Interface == "eth3" {
				return nil
			}
		}
		return fmt.Errorf("no established session with %s: %+v", peer, r.status().Peers)
	})
	r.waitRoutes("learned from FRR over the unnumbered session", 3, 1)
	if m, want := r.metrics(), fmt.Sprintf("xdprouter_bgp_peer_up{peer=%q} 1", peer); !strings.Contains(m, want) {
		t.Errorf("metrics lack %s", want)
	}

	// The kernel has FRR's IPv4 routes via its IPv6 link-local address.
	out, err := r.Output("r", "ip", "route", "show", "proto", fmt.Sprint(fib.DefaultProtocol))
	must(err)
	if strings.Count(out, "via inet6 "+fLL.String()+" dev eth3") != 3 {
		t.Errorf("kernel routes are not via inet6 %s dev eth3:\n%s", fLL, out)
	}

	// XDP forwards to FRR's MAC, out of the port the kernel names.
	fmac, err := r.Output("f", "cat", "/sys/class/net/eth0/address")
	must(err)
	d := r.waitDecision(dst, "IPv4 via the IPv6 next hop", func(d bpf.Decision) bool {
		return d.Action == bpf.ActionRedirect && len(d.Candidates) == 1 && d.Candidates[0].DstMAC.String() == strings.TrimSpace(fmac)
	})
	if want := r.ifindex("r", "eth3"); d.Candidates[0].Ifindex != want {
		t.Errorf("XDP egress ifindex %d, want eth3's %d", d.Candidates[0].Ifindex, want)
	}
	r.agreeAll("IPv4 via IPv6", []string{dst, "100.64.1.1", "100.64.2.1"})
	// xdprouterctl lookup runs the real XDP program on a frame: out of
	// eth3 to FRR's MAC. The kernel's answer (RTA_VIA) names FRR's
	// link-local address on eth3.
	var ex api.Explain
	must(r.ctl(&ex, "lookup", dst))
	if p := ex.Program; p == nil || p.Action != bpf.ActionRedirect || p.Egress != d.Candidates[0].Ifindex || p.DstMAC.String() != strings.TrimSpace(fmac) {
		t.Errorf("xdprouterctl lookup %s: the program did %+v (%s), want a redirect to %s", dst, p, ex.ProgramError, strings.TrimSpace(fmac))
	}
	must(r.Do("r", func() error {
		k, err := fib.RouteGet(fib.RouteQuery{Dst: netip.MustParseAddr(dst)})
		if err != nil || k.Gateway != fLL || k.Ifindex != d.Candidates[0].Ifindex {
			return fmt.Errorf("route get %s: %+v %v, want via %s on ifindex %d", dst, k, err, fLL, d.Candidates[0].Ifindex)
		}
		return nil
	}))

	// The other direction: FRR learned h1's subnet from us with our IPv6
	// link-local next hop (GoBGP over the extended next hop capability)
	// and its zebra installed it.
	r.poll(20*time.Second, func() error {
		out, err := r.Output("f", "ip", "route", "show", "10.0.1.0/24", "proto", "bgp")
		if err != nil || !strings.Contains(out, "dev eth0") {
			return fmt.Errorf("f has no BGP route to 10.0.1.0/24: %q %v", out, err)
		}
		return nil
	})

	// Traffic: h1 pings f's address; f answers through r. Both directions
	// are forwarded by XDP.
	r.pingXDP(dst)

	// FRR goes away: its routes go with it.
	must(bgpd.Stop(10 * time.Second))
	r.waitRoutes("FRR stopped", 0, 0)
}
