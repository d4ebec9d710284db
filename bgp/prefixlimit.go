package bgp

import (
	"context"
	"net/netip"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"google.golang.org/protobuf/proto"
)

// Max-prefixes is enforced here rather than by GoBGP's prefix limit: GoBGP
// checks a limit on every UPDATE by counting the peer's whole Adj-RIB-In
// (peer.isPrefixLimit → AdjRib.Count), which made a full table take 114 s
// instead of 16. Peers are given to GoBGP without their limit; once a second
// the received counts (the same walk the status cache does anyway) are
// compared with the configured limits, and a peer over its limit gets the
// limit set in GoBGP, which then does what it always does: the CEASE
// "maximum number of prefixes reached" NOTIFICATION and the session held
// down (PFX_CT) until it is reset. A leak is cut within about a second.

// limitEvery is how often received counts are compared with the limits.
const limitEvery = time.Second

// limitWarnPct is where a peer's count is logged as near its limit (once a
// session).
const limitWarnPct = 90

// unarmed returns peer as GoBGP is given it: without prefix limits.
func unarmed(peer *api.Peer) *api.Peer {
	c := proto.Clone(peer).(*api.Peer)
	for _, as := range c.AfiSafis {
		as.PrefixLimits = nil
	}
	return c
}

// enforceLimits runs until ctx ends.
func (s *Speaker) enforceLimits(ctx context.Context) {
	tick := time.NewTicker(limitEvery)
	defer tick.Stop()
	warned := map[netip.Addr]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		limits := map[netip.Addr]uint64{}
		for _, n := range s.cfg.Neighbors {
			if n.MaxPrefixes > 0 {
				limits[n.Addr()] = uint64(n.MaxPrefixes)
			}
		}
		s.mu.Unlock()
		if len(limits) == 0 {
			continue
		}
		peers, err := s.Peers(ctx)
		if err != nil {
			continue
		}
		for _, st := range peers {
			max, ok := limits[st.Address]
			if !ok || !st.Up {
				delete(warned, st.Address)
				continue
			}
			if st.Received*100 > max*limitWarnPct && !warned[st.Address] {
				warned[st.Address] = true
				s.log.Warn("BGP peer near its max-prefixes", "peer", st.Address, "received", st.Received, "max-prefixes", max)
			}
			if st.Received > max {
				s.tripLimit(ctx, st.Address, st.Received, max)
			}
		}
	}
}

// tripLimit hands GoBGP the configured limit of a peer over it: GoBGP
// finds it exceeded and shuts the session down with Cease/max-prefixes.
func (s *Speaker) tripLimit(ctx context.Context, addr netip.Addr, received, max uint64) {
	s.mu.Lock()
	srv := s.srv
	var armed *api.Peer
	for _, p := range s.plan.peers {
		if a, err := netip.ParseAddr(p.Conf.NeighborAddress); err == nil && a == addr {
			armed = p
		}
	}
	s.mu.Unlock()
	if srv == nil || armed == nil {
		return
	}
	// With the description GoBGP has: a new one would reset the session
	// by itself (see liveDescription).
	running := armed.Conf.Description
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		running = p.GetConf().GetDescription()
	})
	s.log.Warn("BGP peer over its max-prefixes: shutting the session down", "peer", addr, "received", received, "max-prefixes", max)
	if _, err := srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: liveDescription(armed, running)}); err != nil {
		s.log.Error("max-prefixes: set the limit in GoBGP", "peer", addr, "err", err)
	}
}
