package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Addresses of the basic topology:
//
//	h1 eth0 ── eth1 r eth2 ── eth0 h2
//	10.0.1.2     10.0.1.1  10.0.2.1    10.0.2.2
//	fd00:1::2    fd00:1::1 fd00:2::1   fd00:2::2
const (
	H1v4, H1v6  = "10.0.1.2", "fd00:1::2"
	R1v4, R1v6  = "10.0.1.1", "fd00:1::1"
	R2v4, R2v6  = "10.0.2.1", "fd00:2::1"
	H2v4, H2v6  = "10.0.2.2", "fd00:2::2"
	MetricsPort = "9179"
	GRPCPort    = "50051"
)

// Basic builds h1 — r — h2. Kernel forwarding is off in r, so whatever
// crosses r was forwarded by XDP.
func (l *Lab) Basic() error {
	if err := l.AddNS("r"); err != nil {
		return err
	}
	if err := l.ForwardingOff("r"); err != nil {
		return err
	}
	if err := l.AddHost("h1", 1); err != nil {
		return err
	}
	return l.AddHost("h2", 2)
}

// AddHost adds namespace role linked to r's interface eth<port>, with
// 10.0.<port>.2/24 and fd00:<port>::2/64 (r has .1 and ::1) and default
// routes via r. r learns the host's MAC by pinging it: with forwarding off
// the kernel does not resolve neighbors for transit packets.
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

// ForwardingOff disables kernel forwarding (IPv4 and IPv6) in role.
func (l *Lab) ForwardingOff(role string) error {
	return errors.Join(
		l.Sysctl(role, "net.ipv4.ip_forward", "0"),
		l.Sysctl(role, "net.ipv6.conf.all.forwarding", "0"),
	)
}

// DaemonConfigFile writes an xdprouterd config for r (XDP on ports, APIs
// on 127.0.0.1 of r's namespace) with extra TOML appended into dir, and
// returns its path. extra may hold [router], [[neighbor]] and the like.
func DaemonConfigFile(dir string, ports []string, extra string) (string, error) {
	quoted := make([]string, len(ports))
	for i, p := range ports {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	cfg := fmt.Sprintf(`[api]
metrics-listen = "127.0.0.1:%s"
grpc-listen = "127.0.0.1:%s"

[dataplane]
interfaces = [%s]
xdp-mode = "native"
pin-path = ""

%s`, MetricsPort, GRPCPort, strings.Join(quoted, ", "), extra)
	path := filepath.Join(dir, "xdprouter.toml")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// HostPort prepares a host's veth end facing a router port: XDP_REDIRECT
// into a veth is dropped unless the far end has NAPI (GRO on, or its own XDP
// program); and veth's checksum offload leaves TCP/UDP checksums to be
// filled in later, which a frame forwarded by XDP never gets, so the host
// computes them itself (a real NIC does it on the wire).
func (l *Lab) HostPort(role, ifname string) error {
	return l.Run(role, "ethtool", "-K", ifname, "gro", "on", "tx", "off")
}
