package bgp

// Unnumbered neighbors ([[neighbor]] interface = "eth1"; RFC 8950, FRR's
// `neighbor eth1 interface`). The session runs between the link-local
// addresses of the interface and of the one router on its other end.
//
// GoBGP can find that address itself (PeerConf.NeighborInterface), but
// only once, when the neighbor is added, and it fails the add while the
// kernel's neighbor table has no entry. So the speaker finds it: the
// configuration as written (Speaker.want) is turned into an effective one
// (Speaker.cfg) in which each unnumbered neighbor whose peer is known has
// the address "fe80::...%eth1", and the others are left out. Everything
// downstream (policies scoped to the neighbor, limits, status) then works
// on a plain address. A loop watches the neighbor tables and applies a
// change (peer found, peer replaced) as a reload would: only the neighbors
// that changed are touched.
//
// Both sides must learn each other's address. FRR learns its unnumbered
// peer from router advertisements only (zebra's RA listener), and Linux
// creates a neighbor entry for whoever sends it a router advertisement or
// answers its ping. So, on each unnumbered interface, the loop sends a
// router advertisement with router lifetime 0 (no host takes us as its
// default router; no prefix is advertised) and an all-nodes echo request
// (ff02::1): the peer's RA or its echo reply (with the neighbor
// solicitation before it) puts it into our table.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdprouter/xdprouter/config"
)

// How often the loop looks for unnumbered peers and solicits them: fast
// while one is missing, slow once all are found (FRR forgets nothing, but
// a restarted FRR needs a new advertisement to find us).
const (
	unnumberedFast = time.Second
	unnumberedSlow = 10 * time.Second
)

// unnumberedInterfaces returns the interfaces of cfg's unnumbered neighbors.
func unnumberedInterfaces(cfg *config.Config) []string {
	var out []string
	for _, n := range cfg.Neighbors {
		if n.Interface != "" {
			out = append(out, n.Interface)
		}
	}
	return out
}

// withUnnumbered returns cfg with each unnumbered neighbor's address set
// to its peer's link-local address in found (zone: the interface), and
// those not found left out; cfg itself when it has none.
func withUnnumbered(cfg *config.Config, found map[string]netip.Addr) *config.Config {
	if len(unnumberedInterfaces(cfg)) == 0 {
		return cfg
	}
	c := *cfg
	c.Neighbors = make([]config.Neighbor, 0, len(cfg.Neighbors))
	for _, n := range cfg.Neighbors {
		if n.Interface != "" {
			a, ok := found[n.Interface]
			if !ok {
				continue
			}
			n.Address = a.WithZone(n.Interface).String()
		}
		c.Neighbors = append(c.Neighbors, n)
	}
	return &c
}

// translateUnnumbered is translate of want with the unnumbered peers
// found: the effective configuration and its plan.
func translateUnnumbered(want *config.Config, found map[string]netip.Addr) (*config.Config, *plan, error) {
	cfg := withUnnumbered(want, found)
	p, err := translate(cfg)
	if err != nil {
		return nil, nil, err
	}
	for _, ifname := range unnumberedInterfaces(want) {
		if _, ok := found[ifname]; !ok {
			p.unresolved = append(p.unresolved, ifname)
		}
	}
	return cfg, p, nil
}

// errNoPeer is returned by findPeer while the link shows no peer.
var errNoPeer = errors.New("no IPv6 link-local neighbor")

// linkNeighbor is one IPv6 neighbor entry of a link.
type linkNeighbor struct {
	addr   netip.Addr
	router bool // NTF_ROUTER: it advertised itself as a router
}

// pickPeer chooses the peer of a point-to-point link among its link-local
// neighbors (own addresses and unusable entries already left out): the
// current one while it is still there, else the only one, else the only
// router.
func pickPeer(ifname string, neighs []linkNeighbor, current netip.Addr) (netip.Addr, error) {
	if slices.ContainsFunc(neighs, func(n linkNeighbor) bool { return n.addr == current }) {
		return current, nil
	}
	switch len(neighs) {
	case 0:
		return netip.Addr{}, fmt.Errorf("%w on %s", errNoPeer, ifname)
	case 1:
		return neighs[0].addr, nil
	}
	var routers []netip.Addr
	for _, n := range neighs {
		if n.router {
			routers = append(routers, n.addr)
		}
	}
	if len(routers) == 1 {
		return routers[0], nil
	}
	return netip.Addr{}, fmt.Errorf("%d IPv6 link-local neighbors on %s (%d routers): an unnumbered neighbor needs a point-to-point link", len(neighs), ifname, len(routers))
}

// findPeer reads the kernel's IPv6 neighbor table of ifname (in the
// calling thread's network namespace) for the peer's link-local address.
func findPeer(ifname string, current netip.Addr) (netip.Addr, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", ifname, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", ifname, err)
	}
	own := map[netip.Addr]bool{}
	for _, a := range addrs {
		if x, ok := netip.AddrFromSlice(a.IP); ok {
			own[x] = true
		}
	}
	entries, err := netlink.NeighList(link.Attrs().Index, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("neighbors of %s: %w", ifname, err)
	}
	var neighs []linkNeighbor
	for _, e := range entries {
		a, ok := netip.AddrFromSlice(e.IP)
		if !ok || !a.IsLinkLocalUnicast() || own[a] || e.Flags&unix.NTF_PROXY != 0 ||
			e.State&(unix.NUD_FAILED|unix.NUD_INCOMPLETE) != 0 || e.State == unix.NUD_NONE {
			continue
		}
		neighs = append(neighs, linkNeighbor{addr: a, router: e.Flags&unix.NTF_ROUTER != 0})
	}
	return pickPeer(ifname, neighs, current.WithZone(""))
}

// solicit sends, on ifname, a router advertisement (lifetime 0, our MAC as
// source link-layer address) and an echo request to all nodes (ff02::1),
// from the interface's link-local address.
func solicit(ifname string, seq uint16) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return fmt.Errorf("ICMPv6 socket: %w", err)
	}
	defer unix.Close(fd)
	// Nothing is read from it: let nothing queue.
	var block unix.ICMPv6Filter
	for i := range block.Data {
		block.Data[i] = ^uint32(0)
	}
	for _, o := range []struct{ opt, v int }{
		{unix.IPV6_MULTICAST_HOPS, 255}, // ND messages with another hop limit are dropped (RFC 4861)
		{unix.IPV6_MULTICAST_IF, ifi.Index},
		{unix.IPV6_MULTICAST_LOOP, 0},
	} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o.opt, o.v); err != nil {
			return fmt.Errorf("ICMPv6 socket option %d: %w", o.opt, err)
		}
	}
	if err := unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &block); err != nil {
		return fmt.Errorf("ICMPv6 filter: %w", err)
	}
	to := &unix.SockaddrInet6{Addr: netip.IPv6LinkLocalAllNodes().As16(), ZoneId: uint32(ifi.Index)}
	// The kernel fills in the checksums.
	ra := []byte{134, 0, 0, 0, // router advertisement
		0, 0, 0, 0, // hop limit, flags, router lifetime 0
		0, 0, 0, 0, 0, 0, 0, 0} // reachable time, retransmission timer
	if len(ifi.HardwareAddr) == 6 {
		ra = append(append(ra, 1, 1), ifi.HardwareAddr...) // source link-layer address option
	}
	echo := []byte{128, 0, 0, 0, 'x', 'r', byte(seq >> 8), byte(seq)}
	var errs []error
	for _, m := range [][]byte{ra, echo} {
		if err := unix.Sendto(fd, m, 0, to); err != nil {
			errs = append(errs, fmt.Errorf("send on %s: %w", ifname, err))
		}
	}
	return errors.Join(errs...)
}

// foundNow looks once for the peers of cfg's unnumbered neighbors,
// keeping those of found still there.
func foundNow(cfg *config.Config, found map[string]netip.Addr) map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for _, ifname := range unnumberedInterfaces(cfg) {
		if a, err := findPeer(ifname, found[ifname]); err == nil {
			out[ifname] = a
		}
	}
	return out
}

// runUnnumbered finds the peers of the unnumbered neighbors until ctx
// ends, soliciting them, and applies what it finds to the running
// speaker. The first round runs at once.
func (s *Speaker) runUnnumbered(ctx context.Context) {
	var seq uint16
	lastSlow := time.Time{}
	warned := map[string]string{}
	for {
		s.mu.Lock()
		want, found := s.want, s.found
		s.mu.Unlock()
		ifaces := unnumberedInterfaces(want)
		next := map[string]netip.Addr{}
		missing := false
		for _, ifname := range ifaces {
			a, err := findPeer(ifname, found[ifname])
			if err != nil {
				missing = true
				if warned[ifname] != err.Error() {
					warned[ifname] = err.Error()
					s.log.Warn("unnumbered neighbor: waiting for its link-local address", "interface", ifname, "err", err)
				}
				continue
			}
			delete(warned, ifname)
			next[ifname] = a
		}
		if slow := time.Since(lastSlow) >= unnumberedSlow; slow || missing {
			seq++
			for _, ifname := range ifaces {
				if _, ok := next[ifname]; ok && !slow {
					continue
				}
				if err := solicit(ifname, seq); err != nil {
					s.log.Debug("unnumbered neighbor: solicit", "interface", ifname, "err", err)
				}
			}
			if slow {
				lastSlow = time.Now()
			}
		}
		s.applyUnnumbered(ctx, want, next)
		wait := unnumberedSlow
		if missing {
			wait = unnumberedFast
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// applyUnnumbered makes found (for the configuration want) the running
// one, if want is still the configuration and found differs.
func (s *Speaker) applyUnnumbered(ctx context.Context, want *config.Config, found map[string]netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.want != want || s.srv == nil || maps.Equal(s.found, found) {
		return
	}
	for ifname, a := range found {
		if old, ok := s.found[ifname]; !ok || old != a {
			s.log.Info("unnumbered neighbor found", "interface", ifname, "address", a.WithZone(ifname))
		}
	}
	eff, np, err := translateUnnumbered(want, found)
	if err == nil {
		err = s.reloadLocked(ctx, eff, np)
	}
	if err != nil {
		s.log.Error("unnumbered neighbors: applying what was found", "err", err)
		return // tried again next round: s.found is unchanged
	}
	s.found = found
}
