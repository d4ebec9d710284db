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
// down (PFX_CT). A leak is cut within about a second. After the
// neighbor's max-prefixes-restart the limit is taken back and the session
// enabled again (it trips again if the peer still sends too many).

// limitEvery is how often received counts are compared with the limits.
const limitEvery = time.Second

// prefixLimit is a neighbor's configured max-prefixes.
type prefixLimit struct {
	max     uint64
	warnPct uint64
	restart time.Duration // 0: stay down until enabled
}

// limitState is what enforceLimits remembers of one peer.
type limitState struct {
	warned  bool      // the warning was logged this session
	armed   bool      // GoBGP holds the limit
	tripped time.Time // when the session was seen shut down for max-prefixes
}

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
	state := map[netip.Addr]*limitState{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		limits := map[netip.Addr]prefixLimit{}
		for _, n := range s.cfg.Neighbors {
			if n.MaxPrefixes > 0 {
				limits[n.Addr()] = prefixLimit{uint64(n.MaxPrefixes), uint64(n.MaxPrefixesWarning),
					time.Duration(n.MaxPrefixesRestart) * time.Second}
			}
		}
		s.mu.Unlock()
		for a := range state {
			if _, ok := limits[a]; !ok {
				delete(state, a) // limit removed: a reload disarmed it
			}
		}
		if len(limits) == 0 {
			continue
		}
		peers, err := s.Peers(ctx)
		if err != nil {
			continue
		}
		now := time.Now()
		for _, st := range peers {
			lim, ok := limits[st.Address]
			if !ok {
				continue
			}
			ls := state[st.Address]
			if ls == nil {
				ls = &limitState{}
				state[st.Address] = ls
			}
			s.checkLimit(ctx, st, lim, ls, now)
		}
	}
}

// checkLimit acts on one peer's count: warn, shut down, restart after the
// idle time, or take the limit back from GoBGP once the session is up
// within it again (GoBGP's own check costs a walk of the Adj-RIB-In per
// UPDATE).
func (s *Speaker) checkLimit(ctx context.Context, st PeerStatus, lim prefixLimit, ls *limitState, now time.Time) {
	switch {
	case st.State == "max-prefixes":
		ls.armed = true // GoBGP tripped it, whoever armed it
		if ls.tripped.IsZero() {
			ls.tripped = now
			s.tripsMu.Lock()
			if s.trips == nil {
				s.trips = map[netip.Addr]uint64{}
			}
			s.trips[st.Address]++
			s.tripsMu.Unlock()
		}
		if lim.restart > 0 && now.Sub(ls.tripped) >= lim.restart {
			s.log.Info("max-prefixes: restarting the session after its idle time", "peer", st.Address, "max-prefixes-restart", lim.restart)
			if s.setLimit(ctx, st.Address, false) == nil && s.enablePeer(ctx, st.Address) == nil {
				ls.armed, ls.tripped = false, time.Time{}
			}
		}
	case !st.Up:
		ls.warned, ls.tripped = false, time.Time{}
	case st.Received > lim.max:
		if !ls.armed {
			s.log.Warn("BGP peer over its max-prefixes: shutting the session down", "peer", st.Address, "received", st.Received, "max-prefixes", lim.max)
			ls.armed = s.setLimit(ctx, st.Address, true) == nil
		}
	default:
		if st.Received*100 > lim.max*lim.warnPct && !ls.warned {
			ls.warned = true
			s.log.Warn("BGP peer near its max-prefixes", "peer", st.Address, "received", st.Received, "max-prefixes", lim.max, "max-prefixes-warning", lim.warnPct)
		}
		if ls.armed && s.setLimit(ctx, st.Address, false) == nil {
			ls.armed = false // enabled by hand, and within its limit
		}
	}
}

// setLimit hands GoBGP the configured limit of a peer (armed: GoBGP finds
// it exceeded and shuts the session down with Cease/max-prefixes) or takes
// it back.
func (s *Speaker) setLimit(ctx context.Context, addr netip.Addr, arm bool) error {
	s.mu.Lock()
	srv := s.srv
	var peer *api.Peer
	for _, p := range s.plan.peers {
		if a, err := netip.ParseAddr(p.Conf.NeighborAddress); err == nil && a == addr {
			peer = p
		}
	}
	s.mu.Unlock()
	if srv == nil || peer == nil {
		return ErrNotRunning
	}
	if !arm {
		peer = unarmed(peer)
	}
	// With the description GoBGP has: a new one would reset the session
	// by itself (see liveDescription).
	running := peer.Conf.Description
	_ = srv.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		running = p.GetConf().GetDescription()
	})
	if _, err := srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: liveDescription(peer, running)}); err != nil {
		s.log.Error("max-prefixes: update the peer in GoBGP", "peer", addr, "armed", arm, "err", err)
		return err
	}
	return nil
}

func (s *Speaker) enablePeer(ctx context.Context, addr netip.Addr) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return ErrNotRunning
	}
	if err := srv.EnablePeer(ctx, &api.EnablePeerRequest{Address: addr.String()}); err != nil {
		s.log.Error("max-prefixes: enable the peer", "peer", addr, "err", err)
		return err
	}
	return nil
}
