package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// AddHost adds namespace role linked to r's interface eth<port>, with
// 10.0.<port>.2/24 and fd00:<port>::2/64 (r has .1 and ::1) and default
// routes via r. r learns the host's MAC (kernel forwarding is off in r).
func (l *Lab) AddHost(role string, port int) error {
	if err := l.AddNS(role); err != nil {
		return err
	}
	rif := fmt.Sprintf("eth%d", port)
	if err := l.Link("r", rif, role, "eth0"); err != nil {
		return err
	}
	v4, v6 := fmt.Sprintf("10.0.%d.", port), fmt.Sprintf("fd00:%d::", port)
	steps := [][]string{
		{"r", "ip", "addr", "add", v4 + "1/24", "dev", rif},
		{"r", "ip", "addr", "add", v6 + "1/64", "dev", rif, "nodad"},
		{role, "ip", "addr", "add", v4 + "2/24", "dev", "eth0"},
		{role, "ip", "addr", "add", v6 + "2/64", "dev", "eth0", "nodad"},
		{role, "ip", "route", "add", "default", "via", v4 + "1"},
		{role, "ip", "-6", "route", "add", "default", "via", v6 + "1"},
		{"r", "ping", "-c1", "-W2", v4 + "2"},
		{"r", "ping", "-c1", "-W2", v6 + "2"},
	}
	for _, s := range steps {
		if err := l.Run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return l.HostPort(role, "eth0")
}

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
	Dir      string         // config and sockets
}

// StartBIRD runs BIRD 2 in p.Role's namespace, in the foreground (the lab
// stops it by PID).
func (l *Lab) StartBIRD(p BGPPeer) (*Proc, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "router id %s;\nprotocol device {}\n", p.RouterID)
	for _, fam := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, "protocol static static_%s {\n  %s;\n", fam, fam)
		for _, pf := range p.Prefixes {
			if pf.Addr().Is4() == (fam == "ipv4") {
				fmt.Fprintf(&b, "  route %s blackhole;\n", pf)
			}
		}
		b.WriteString("}\n")
	}
	for i, n := range p.Peers {
		fam := "ipv4"
		if n.Remote.Is6() {
			fam = "ipv6"
		}
		fmt.Fprintf(&b, "protocol bgp peer%d {\n  local %s as %d;\n  neighbor %s as %d;\n  %s { import all; export all; next hop self; };\n}\n",
			i, n.Local, p.ASN, n.Remote, n.RemoteASN, fam)
	}
	conf := filepath.Join(p.Dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("bird"); err != nil {
		return nil, errors.New("bird not installed (apt-get install bird2, or make deps)")
	}
	return l.Start(p.Role, "bird", "bird", "-f", "-c", conf, "-s", filepath.Join(p.Dir, "bird.ctl"), "-P", filepath.Join(p.Dir, "bird.pid"))
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
