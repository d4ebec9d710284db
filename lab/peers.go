package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Prefixes returns n consecutive prefixes of length bits starting at base
// (IPv6: bits <= 64).
func Prefixes(base netip.Addr, bits, n int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	if base.Is4() {
		b := binary.BigEndian.Uint32(base.AsSlice())
		for i := range n {
			var a [4]byte
			binary.BigEndian.PutUint32(a[:], b+uint32(i)<<(32-bits))
			out = append(out, netip.PrefixFrom(netip.AddrFrom4(a), bits))
		}
		return out
	}
	a := base.As16()
	hi := binary.BigEndian.Uint64(a[:8])
	for i := range n {
		binary.BigEndian.PutUint64(a[:8], hi+uint64(i)<<(64-bits))
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(a), bits))
	}
	return out
}

// Peer is one BGP session of a test peer.
type Peer struct {
	Local, Remote netip.Addr
	RemoteASN     uint32
}

// BGPPeer is a routing daemon playing an upstream router.
type BGPPeer struct {
	Role     string
	ASN      uint32
	RouterID string
	Peers    []Peer
	Prefixes []netip.Prefix // announced with next hop self
	// Via are prefixes announced with a third-party next hop on the
	// shared link (BIRD only): the address the router is told to use.
	Via map[netip.Prefix]netip.Addr
	// Tagged are prefixes announced with BGP communities ("65535:666"),
	// from static protocols of their own, tagged_ipv4 and tagged_ipv6
	// (BIRD only), so that a test can withdraw them alone
	// (`birdc disable tagged_ipv4`).
	Tagged map[netip.Prefix][]string
	// Multihop keeps BIRD's sessions up while the shared link flaps (a
	// directly connected session ends when its interface goes down).
	Multihop bool
	// GracefulRestart configures graceful restart on an FRR peer (StartFRR:
	// `bgp graceful-restart`, with the forwarding state preserved across a
	// restart of bgpd). BIRD configs say so themselves.
	GracefulRestart bool
	// BIRDTop is added to a BIRD config before the protocols (e.g.
	// "protocol bfd {}"), BIRDBGP to every bgp protocol (e.g. timers).
	BIRDTop, BIRDBGP string
	// Flowspec are BIRD static flow routes the peer announces (BIRD only),
	// each "flow4 { MATCH } { ACTIONS }" or "flow6 ...", e.g.
	// `flow4 { dst 100.64.0.0/24; proto = 17; dport = 53; } { bgp_ext_community.add((generic, 0x80060000, 0)); }`
	// (traffic-rate 0: discard). With any, the sessions carry flow4 (IPv4
	// sessions) and flow6 (IPv6 sessions) channels.
	Flowspec []string
	Dir      string // config and sockets
}

// StartBIRD runs BIRD 2 in p.Role's namespace, in the foreground (the lab
// stops it by PID).
func (l *Lab) StartBIRD(p BGPPeer) (*Proc, error) {
	conf := filepath.Join(p.Dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(p.BIRDConfig()), 0o644); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("bird"); err != nil {
		return nil, errors.New("bird not installed (apt-get install bird2, or make deps)")
	}
	return l.Start(p.Role, "bird", "bird", "-f", "-c", conf, "-s", filepath.Join(p.Dir, "bird.ctl"), "-P", filepath.Join(p.Dir, "bird.pid"))
}

// BIRDConfig is the BIRD 2 configuration StartBIRD runs p with.
func (p BGPPeer) BIRDConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\nprotocol device {}\n%s\n", p.RouterID, p.BIRDTop)
	for _, fam := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, "protocol static static_%s {\n  %s;\n", fam, fam)
		for _, pf := range p.Prefixes {
			if pf.Addr().Is4() == (fam == "ipv4") {
				fmt.Fprintf(&b, "  route %s blackhole;\n", pf)
			}
		}
		for pf, gw := range p.Via {
			if pf.Addr().Is4() == (fam == "ipv4") {
				fmt.Fprintf(&b, "  route %s via %s;\n", pf, gw)
			}
		}
		b.WriteString("}\n")
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, "protocol static tagged_%s {\n  %s;\n", fam, fam)
		for pf, coms := range p.Tagged {
			if pf.Addr().Is4() != (fam == "ipv4") {
				continue
			}
			var adds strings.Builder
			for _, c := range coms {
				fmt.Fprintf(&adds, " bgp_community.add((%s));", strings.Replace(c, ":", ",", 1))
			}
			fmt.Fprintf(&b, "  route %s blackhole {%s };\n", pf, adds.String())
		}
		b.WriteString("}\n")
	}
	if len(p.Flowspec) > 0 {
		// BIRD has no default flow tables: they are declared, with a
		// static protocol each.
		for _, fam := range []string{"flow4", "flow6"} {
			fmt.Fprintf(&b, "%s table %stab;\nprotocol static static_%s {\n  %s { table %stab; };\n", fam, fam, fam, fam, fam)
			for _, r := range p.Flowspec {
				if strings.HasPrefix(strings.TrimSpace(r), fam+" ") {
					fmt.Fprintf(&b, "  route %s;\n", strings.TrimSpace(r))
				}
			}
			b.WriteString("}\n")
		}
	}
	for i, n := range p.Peers {
		fam := "ipv4"
		if n.Remote.Is6() {
			fam = "ipv6"
		}
		// Without "next hop self" BIRD sends a static route's gateway on the
		// shared link as the next hop (third party), its own address for
		// the others.
		nhSelf := " next hop self;"
		if len(p.Via) > 0 {
			nhSelf = ""
		}
		extra := ""
		if p.Multihop {
			extra = "  multihop 2;\n"
		}
		if p.BIRDBGP != "" {
			extra += "  " + p.BIRDBGP + "\n"
		}
		if len(p.Flowspec) > 0 {
			flow := "flow4"
			if n.Remote.Is6() {
				flow = "flow6"
			}
			extra += fmt.Sprintf("  %s { table %stab; import none; export all; };\n", flow, flow)
		}
		fmt.Fprintf(&b, "protocol bgp peer%d {\n  local %s as %d;\n  neighbor %s as %d;\n%s  %s { import all; export all;%s };\n}\n",
			i, n.Local, p.ASN, n.Remote, n.RemoteASN, extra, fam, nhSelf)
	}
	return b.String()
}

// BirdC runs a birdc command against a peer started by StartBIRD.
func (l *Lab) BirdC(p BGPPeer, args ...string) (string, error) {
	return l.Output(p.Role, append([]string{"birdc", "-s", filepath.Join(p.Dir, "bird.ctl")}, args...)...)
}

// FRRBin is where Debian installs FRR's daemons.
const FRRBin = "/usr/lib/frr"

// StartFRR runs FRR's bgpd (without zebra: the peer only announces) in
// p.Role's namespace, in the foreground.
func (l *Lab) StartFRR(p BGPPeer) (*Proc, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname %s\nlog stdout informational\n!\nrouter bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp network import-check\n no bgp default ipv4-unicast\n",
		p.Role, p.ASN, p.RouterID)
	if p.GracefulRestart {
		b.WriteString(" bgp graceful-restart\n bgp graceful-restart preserve-fw-state\n")
	}
	for _, n := range p.Peers {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s update-source %s\n", n.Remote, n.RemoteASN, n.Remote, n.Local)
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, " address-family %s unicast\n", fam)
		for _, n := range p.Peers {
			if n.Remote.Is4() == (fam == "ipv4") {
				fmt.Fprintf(&b, "  neighbor %s activate\n  neighbor %s next-hop-self\n", n.Remote, n.Remote)
			}
		}
		for _, pf := range p.Prefixes {
			if pf.Addr().Is4() == (fam == "ipv4") {
				fmt.Fprintf(&b, "  network %s\n", pf)
			}
		}
		b.WriteString(" exit-address-family\n")
	}
	// bgpd drops privileges to Debian's frr user, which must reach its
	// config, pid file and vty socket: a world-accessible directory.
	dir, err := os.MkdirTemp("", "xdprouter-frr-")
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.dirs = append(l.dirs, dir)
	l.mu.Unlock()
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	bgpd := filepath.Join(FRRBin, "bgpd")
	if _, err := os.Stat(bgpd); err != nil {
		return nil, errors.New("FRR not installed (apt-get install frr, or make deps)")
	}
	return l.Start(p.Role, "bgpd", bgpd, "-f", conf, "-Z",
		"-i", filepath.Join(dir, "bgpd.pid"), "--vty_socket", dir, "-N", filepath.Base(dir), "-P", "0")
}

// ASNs of the BGP labs: r, and every upstream peer.
const (
	RouterASN   = 65000
	UpstreamASN = 65001
)

// Table returns the prefixes an upstream announces in the BGP labs: n4
// IPv4 /24s from 100.64.0.0 (from 1.0.0.0 when more than 100.64.0.0/10
// holds) and n6 IPv6 /48s from 2001:db8:1000::.
func Table(n4, n6 int) []netip.Prefix {
	base4 := netip.MustParseAddr("100.64.0.0")
	if n4 > 1<<14 {
		base4 = netip.MustParseAddr("1.0.0.0")
	}
	return append(Prefixes(base4, 24, n4), Prefixes(netip.MustParseAddr("2001:db8:1000::"), 48, n6)...)
}

// Upstream makes role (a host on r's eth<port>, see AddHost) a BGP
// upstream of r over IPv4 and IPv6 announcing prefixes. It owns the first
// address of the first IPv4 and IPv6 prefix, returned as the destinations
// traffic can be sent to (and is answered). Start it with StartBIRD or
// StartFRR.
func (l *Lab) Upstream(role string, port int, prefixes []netip.Prefix, dir string) (p BGPPeer, dsts []netip.Addr, err error) {
	seen4, seen6 := false, false
	for _, pf := range prefixes {
		if (pf.Addr().Is4() && seen4) || (pf.Addr().Is6() && seen6) {
			continue
		}
		seen4, seen6 = seen4 || pf.Addr().Is4(), seen6 || pf.Addr().Is6()
		dst := pf.Addr().Next()
		if err := l.Run(role, "ip", "addr", "add", netip.PrefixFrom(dst, dst.BitLen()).String(), "dev", "lo"); err != nil {
			return p, nil, err
		}
		dsts = append(dsts, dst)
	}
	host4 := netip.MustParseAddr(fmt.Sprintf("10.0.%d.2", port))
	host6 := netip.MustParseAddr(fmt.Sprintf("fd00:%d::2", port))
	return BGPPeer{Role: role, ASN: UpstreamASN, RouterID: host4.String(), Prefixes: prefixes, Dir: dir,
		Peers: []Peer{
			{Local: host4, Remote: netip.MustParseAddr(fmt.Sprintf("10.0.%d.1", port)), RemoteASN: RouterASN},
			{Local: host6, Remote: netip.MustParseAddr(fmt.Sprintf("fd00:%d::1", port)), RemoteASN: RouterASN},
		}}, dsts, nil
}

// StartFRRUnnumbered runs FRR's zebra and bgpd in role's namespace as an
// unnumbered peer on ifname (`neighbor IFNAME interface remote-as
// external`, RFC 8950), announcing prefixes (IPv4 ones with its IPv6
// link-local next hop). zebra is needed: it sends the router
// advertisements that tell the other side our link-local address, and
// learns the other side's from its advertisements. Both are stopped with
// the lab.
func (l *Lab) StartFRRUnnumbered(role, ifname string, asn uint32, routerID string, prefixes []netip.Prefix) (zebra, bgpd *Proc, err error) {
	for _, d := range []string{"zebra", "bgpd"} {
		if _, err := os.Stat(filepath.Join(FRRBin, d)); err != nil {
			return nil, nil, errors.New("FRR not installed (apt-get install frr, or make deps)")
		}
	}
	var b strings.Builder
	// datacenter defaults: 10 s connect retry, fast timers.
	fmt.Fprintf(&b, "frr defaults datacenter\nhostname %s\nlog stdout informational\n!\nrouter bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor %s interface remote-as external\n",
		role, asn, routerID, ifname)
	for _, fam := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, " address-family %s unicast\n  neighbor %s activate\n", fam, ifname)
		for _, pf := range prefixes {
			if pf.Addr().Is4() == (fam == "ipv4") {
				fmt.Fprintf(&b, "  network %s\n", pf)
			}
		}
		b.WriteString(" exit-address-family\n")
	}
	dir, err := os.MkdirTemp("", "xdprouter-frr-")
	if err != nil {
		return nil, nil, err
	}
	l.mu.Lock()
	l.dirs = append(l.dirs, dir)
	l.mu.Unlock()
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, nil, err
	}
	zconf, bconf := filepath.Join(dir, "zebra.conf"), filepath.Join(dir, "bgpd.conf")
	zserv := filepath.Join(dir, "zserv.api")
	if err := errors.Join(
		os.WriteFile(zconf, []byte(fmt.Sprintf("hostname %s\nlog stdout informational\n", role)), 0o644),
		os.WriteFile(bconf, []byte(b.String()), 0o644)); err != nil {
		return nil, nil, err
	}
	common := []string{"-z", zserv, "--vty_socket", dir, "-N", filepath.Base(dir), "-P", "0"}
	zebra, err = l.Start(role, "zebra", append([]string{filepath.Join(FRRBin, "zebra"), "-f", zconf, "-i", filepath.Join(dir, "zebra.pid")}, common...)...)
	if err != nil {
		return nil, nil, err
	}
	// bgpd gives up on a zebra socket that is not there yet.
	if err := Poll(context.Background(), 10*time.Second, func() error {
		_, err := os.Stat(zserv)
		return err
	}); err != nil {
		return zebra, nil, fmt.Errorf("zebra did not open its socket: %w\n%s", err, zebra.Out.String())
	}
	bgpd, err = l.Start(role, "bgpd", append([]string{filepath.Join(FRRBin, "bgpd"), "-f", bconf, "-i", filepath.Join(dir, "bgpd.pid")}, common...)...)
	return zebra, bgpd, err
}
