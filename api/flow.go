package api

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/xdprouter/xdprouter/bpf"
)

// FlowKeys are the query parameters of GET /api/v1/lookup beyond addr:
// what a packet's route depends on under policy rules.
var FlowKeys = []string{"from", "in", "proto", "sport", "dport", "tos", "ttl", "size"}

// ParseFlow reads a lookup query: addr (the destination), and optionally
// from (source address), in (ingress interface name, or ifindex), proto
// (tcp, udp, icmp, icmpv6, sctp or a number), sport, dport (0-65535) and
// tos (the IPv4 TOS byte or IPv6 traffic class, decimal or 0x hex), and
// for the explained frame ttl and size (the IP packet's length).
// ifindex resolves interface names (ok false: no such interface).
func ParseFlow(q url.Values, ifindex func(name string) (int, bool)) (bpf.Flow, error) {
	var f bpf.Flow
	a, err := netip.ParseAddr(q.Get("addr"))
	if err != nil {
		return f, fmt.Errorf("addr: %w", err)
	}
	f.Dst = a
	if s := q.Get("from"); s != "" {
		if f.Src, err = netip.ParseAddr(s); err != nil {
			return f, fmt.Errorf("from: %w", err)
		}
		if f.Src.Is4() != f.Dst.Is4() {
			return f, fmt.Errorf("from: %v and addr %v are of different families", f.Src, f.Dst)
		}
	}
	if s := q.Get("in"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			f.Iif = n
		} else if n, ok := ifindex(s); ok {
			f.Iif = n
		} else {
			return f, fmt.Errorf("in: no interface %q", s)
		}
	}
	if s := q.Get("proto"); s != "" {
		p, err := parseProto(s)
		if err != nil {
			return f, fmt.Errorf("proto: %w", err)
		}
		f.Proto = p
	}
	for _, p := range []struct {
		key string
		v   *uint16
	}{{"sport", &f.Sport}, {"dport", &f.Dport}} {
		if s := q.Get(p.key); s != "" {
			n, err := strconv.ParseUint(s, 10, 16)
			if err != nil {
				return f, fmt.Errorf("%s: %q is not a port (0-65535)", p.key, s)
			}
			*p.v = uint16(n)
		}
	}
	if s := q.Get("ttl"); s != "" {
		n, err := strconv.ParseUint(s, 10, 8)
		if err != nil || n == 0 {
			return f, fmt.Errorf("ttl: %q is not a TTL (1-255)", s)
		}
		f.TTL = uint8(n)
	}
	if s := q.Get("size"); s != "" {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return f, fmt.Errorf("size: %q is not an IP packet length (0-65535)", s)
		}
		f.Size = int(n)
	}
	if s := q.Get("tos"); s != "" {
		n, err := strconv.ParseUint(s, 0, 8)
		if err != nil {
			return f, fmt.Errorf("tos: %q is not a byte (0-255, or 0x00-0xff)", s)
		}
		f.Tos = uint8(n)
	}
	return f, nil
}

func parseProto(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "icmp":
		return 1, nil
	case "icmpv6", "ipv6-icmp":
		return 58, nil
	case "sctp":
		return 132, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("%q is not a protocol (tcp, udp, icmp, icmpv6, sctp or 0-255)", s)
	}
	return uint8(n), nil
}

// ifindexByName resolves an interface name in the daemon's namespace:
// the router ports first, then any interface (lo, or one no port is).
func ifindexByName(ports []Interface) func(string) (int, bool) {
	return func(name string) (int, bool) {
		for _, p := range ports {
			if p.Name == name {
				return p.Ifindex, true
			}
		}
		if i, err := net.InterfaceByName(name); err == nil {
			return i.Index, true
		}
		return 0, false
	}
}
