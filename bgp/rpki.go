package bgp

// RPKI route origin validation (RFC 6811) with GoBGP's RTR client.
//
// The [[rpki]] caches are GoBGP RPKI servers (AddRpki); their VRPs make
// GoBGP's ROA table, and GoBGP's policy engine evaluates the validation
// state when a path meets the import policy: every derived import policy
// starts with the statements of rpkiImportStatements (reject invalid, set
// LOCAL_PREF of valid), before the neighbor's own policy.
//
// GoBGP does not re-run import policy when the ROA table changes: a path
// keeps the decision taken when it arrived. Sessions usually come up
// before the cache has sent its VRPs, so without more every path of the
// first minutes would be not-found for good. watchRPKI therefore polls the
// caches' state (ListRpki) every rpkiPoll (longer with many VRPs) and,
// when a cache's serial, End-of-Data count or VRP counts changed,
// soft-resets every neighbor in:
// GoBGP keeps each Adj-RIB-In before policy, so that re-evaluates every
// path against the current VRPs locally (no ROUTE-REFRESH), and the best
// paths that change reach OnBest as usual. The cost is one import-policy
// run over all paths per VRP change (caches change every few minutes).
// ListRpki walks the whole ROA table in GoBGP's main loop (it counts VRPs
// per cache): the poll is its only caller, metrics and status read the
// poll's answer.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/xdprouter/xdprouter/config"
)

// watchRPKI reads the caches' state every rpkiPoll, or less often when
// a read takes long: ListRpki walks every VRP in GoBGP's main loop (380 ms
// with 500k VRPs, BenchmarkListRPKI), stalling UPDATEs meanwhile, so the
// reads take at most 1/rpkiPollShare of the time, and are at most
// rpkiMaxPoll apart. The wait is how long a VRP change takes to reach the
// routes (plus the re-evaluation): 5 s with few VRPs, about 40 s with
// the Internet's.
var rpkiPoll = 5 * time.Second

const (
	rpkiPollShare = 100
	rpkiMaxPoll   = time.Minute
)

// RPKIStatus is the state of one [[rpki]] cache.
type RPKIStatus struct {
	Address netip.Addr `json:"address"`
	Port    uint16     `json:"port"`
	Up      bool       `json:"up"`
	Serial  uint32     `json:"serial"`
	// VRPs4 and VRPs6: the validated ROA payloads it gave, per family.
	VRPs4 uint32 `json:"vrps_ipv4"`
	VRPs6 uint32 `json:"vrps_ipv6"`
	// EndOfData counts the complete answers (End of Data PDUs) received.
	EndOfData int64 `json:"end_of_data"`
}

// Validation states (RFC 6811) as routes and status show them.
const (
	RPKIValid    = "valid"
	RPKIInvalid  = "invalid"
	RPKINotFound = "not-found"
)

// translateRPKI returns the AddRpki requests of the [[rpki]] caches.
func translateRPKI(cfg *config.Config) []*api.AddRpkiRequest {
	var out []*api.AddRpkiRequest
	for _, r := range cfg.RPKI {
		a, err := netip.ParseAddr(r.Address)
		if err != nil {
			continue // validated
		}
		port := r.Port
		if port == 0 {
			port = config.DefaultRPKIPort
		}
		lt := r.Lifetime
		if lt == 0 {
			lt = config.DefaultRPKILifetime
		}
		out = append(out, &api.AddRpkiRequest{Address: a.Unmap().String(), Port: port, Lifetime: int64(lt)})
	}
	return out
}

// rpkiKey is how GoBGP names a cache (DeleteRpki takes it as address).
func rpkiKey(r *api.AddRpkiRequest) string {
	return net.JoinHostPort(r.Address, strconv.Itoa(int(r.Port)))
}

// rpkiImportStatements start every derived import policy (but
// reject-all) when RPKI is configured: invalid routes are rejected
// (bgp.rpki-reject-invalid), valid ones get bgp.rpki-valid-local-pref.
func rpkiImportStatements(cfg *config.Config, pname string, scope func() *api.MatchSet) []*api.Statement {
	if len(cfg.RPKI) == 0 {
		return nil
	}
	var out []*api.Statement
	if cfg.BGP.RPKIRejectInvalid {
		out = append(out, &api.Statement{
			Name:       pname + "-rpki-invalid",
			Conditions: &api.Conditions{NeighborSet: scope(), RpkiResult: api.ValidationState_VALIDATION_STATE_INVALID},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
		})
	}
	if lp := cfg.BGP.RPKIValidLocalPref; lp != 0 {
		// No disposition: the neighbor's policy decides next.
		out = append(out, &api.Statement{
			Name:       pname + "-rpki-valid",
			Conditions: &api.Conditions{NeighborSet: scope(), RpkiResult: api.ValidationState_VALIDATION_STATE_VALID},
			Actions:    &api.Actions{LocalPref: &api.LocalPrefAction{Value: lp}},
		})
	}
	return out
}

// addRPKI adds the caches of p to a running server.
func addRPKI(ctx context.Context, srv *server.BgpServer, reqs []*api.AddRpkiRequest) error {
	for _, r := range reqs {
		if err := srv.AddRpki(ctx, r); err != nil {
			return fmt.Errorf("rpki %s: %w", rpkiKey(r), err)
		}
	}
	return nil
}

// deleteRPKI removes caches from a running server (their VRPs go too).
func deleteRPKI(ctx context.Context, srv *server.BgpServer, reqs []*api.AddRpkiRequest) error {
	var errs []error
	for _, r := range reqs {
		if err := srv.DeleteRpki(ctx, &api.DeleteRpkiRequest{Address: rpkiKey(r), Port: r.Port}); err != nil {
			errs = append(errs, fmt.Errorf("rpki %s: %w", rpkiKey(r), err))
		}
	}
	return errors.Join(errs...)
}

// listRPKI asks GoBGP for the caches' state, sorted by address and port.
func listRPKI(ctx context.Context, srv *server.BgpServer) ([]RPKIStatus, error) {
	var out []RPKIStatus
	err := srv.ListRpki(ctx, &api.ListRpkiRequest{}, func(r *api.Rpki) {
		a, _ := netip.ParseAddr(r.GetConf().GetAddress())
		st := r.GetState()
		out = append(out, RPKIStatus{
			Address:   a,
			Port:      uint16(r.GetConf().GetRemotePort()),
			Up:        st.GetUp(),
			Serial:    st.GetSerial(),
			VRPs4:     st.GetRecordIpv4(),
			VRPs6:     st.GetRecordIpv6(),
			EndOfData: st.GetEndOfData(),
		})
	})
	slices.SortFunc(out, func(a, b RPKIStatus) int {
		if c := a.Address.Compare(b.Address); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	return out, err
}

// vrpChange reports whether the VRPs may differ between two answers.
func vrpChange(old, cur []RPKIStatus) bool {
	key := func(s RPKIStatus) RPKIStatus { s.Up = false; return s } // a session state is no VRP change
	return !slices.EqualFunc(old, cur, func(a, b RPKIStatus) bool { return key(a) == key(b) })
}

// watchRPKI polls the caches until ctx ends, keeps their state for RPKI,
// and re-evaluates every neighbor's paths when the VRPs changed.
func (s *Speaker) watchRPKI(ctx context.Context, srv *server.BgpServer) {
	// Not at once: a cache usually connects right after AddRpki, and
	// GoBGP's RTR client then writes its state from its own goroutine,
	// unsynchronised with ListRpki (a data race inside GoBGP).
	t := time.NewTimer(min(time.Second, rpkiPoll))
	defer t.Stop()
	var last []RPKIStatus // no cache, no VRPs: what paths were evaluated against at start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		cur, err := listRPKI(ctx, srv)
		t.Reset(min(max(rpkiPoll, rpkiPollShare*time.Since(start)), rpkiMaxPoll))
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("rpki: list caches", "err", err)
			}
			continue
		}
		s.rpkiMu.Lock()
		s.rpkiState = cur
		s.rpkiMu.Unlock()
		if !vrpChange(zeroVRPs(last), zeroVRPs(cur)) {
			last = cur
			continue
		}
		start = time.Now()
		s.softMu.Lock()
		err = srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_IN})
		s.softMu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("rpki: re-evaluate paths after a VRP change", "err", err)
			}
			continue // again at the next poll
		}
		s.mu.Lock()
		if s.backup != nil {
			s.backup.requestResync() // re-evaluated paths come with no UPDATE
		}
		s.mu.Unlock()
		s.revalidations.Add(1)
		s.log.Info("rpki: VRPs changed, paths re-evaluated", "caches", cur, "took", time.Since(start).Round(time.Millisecond))
		last = cur
	}
}

// zeroVRPs drops the caches without VRPs: a cache that was added but has
// sent nothing yet changes no validation state.
func zeroVRPs(l []RPKIStatus) []RPKIStatus {
	return slices.DeleteFunc(slices.Clone(l), func(s RPKIStatus) bool { return s.VRPs4 == 0 && s.VRPs6 == 0 && s.EndOfData == 0 })
}

// RPKI reports the state of the [[rpki]] caches as of the last poll
// (at most rpkiPoll old); nil without caches or before the first poll.
func (s *Speaker) RPKI() []RPKIStatus {
	s.rpkiMu.Lock()
	defer s.rpkiMu.Unlock()
	return slices.Clone(s.rpkiState)
}

// RPKIStates returns the origin validation state of the best path of
// every prefix of the global instance's unicast RIB that overlaps within
// (all when within is the zero Prefix), and the kernel table those routes
// go to. Nil without [[rpki]]. Invalid paths are in no RIB when
// bgp.rpki-reject-invalid is on. GoBGP validates the paths against the
// VRPs of now, in its main loop: a full table stalls it for a moment.
func (s *Speaker) RPKIStates(ctx context.Context, within netip.Prefix) (table int, states map[netip.Prefix]string, err error) {
	s.mu.Lock()
	srv, cfg := s.srv, s.cfg
	s.mu.Unlock()
	if srv == nil {
		return 0, nil, ErrNotRunning
	}
	if len(cfg.RPKI) == 0 {
		return cfg.FIB.Table, nil, nil
	}
	states = map[netip.Prefix]string{}
	rib := s.guarded(srv)
	for _, fam := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		req := apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: fam}
		if within.IsValid() {
			if within.Addr().Is4() != (fam == bgp.RF_IPv4_UC) {
				continue
			}
			for _, o := range []apiutil.LookupOption{apiutil.LOOKUP_LONGER, apiutil.LOOKUP_SHORTER} {
				req.Prefixes = append(req.Prefixes, &apiutil.LookupPrefix{Prefix: within.String(), LookupOption: o})
			}
		}
		err := rib.ListPath(req, func(nlri bgp.NLRI, paths []*apiutil.Path) {
			p, err := netip.ParsePrefix(nlri.String())
			if err != nil {
				return
			}
			for _, path := range paths {
				if path.Best {
					if st := validationName(path.Validation.GetState()); st != "" {
						states[p.Masked()] = st
					}
					return
				}
			}
		})
		if err != nil {
			return 0, nil, fmt.Errorf("bgp: list paths: %w", err)
		}
	}
	return cfg.FIB.Table, states, nil
}

func validationName(v api.ValidationState) string {
	switch v {
	case api.ValidationState_VALIDATION_STATE_VALID:
		return RPKIValid
	case api.ValidationState_VALIDATION_STATE_INVALID:
		return RPKIInvalid
	case api.ValidationState_VALIDATION_STATE_NOT_FOUND:
		return RPKINotFound
	}
	return ""
}

// hasRPKI says whether the applied configuration has [[rpki]] caches.
func (s *Speaker) hasRPKI() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cfg.RPKI) > 0
}

// guardedRIB is GoBGP's ListPath under softMu's read lock (see softMu):
// every ListPath of the speaker goes through it.
type guardedRIB struct {
	srv *server.BgpServer
	mu  *sync.RWMutex
}

func (g guardedRIB) ListPath(r apiutil.ListPathRequest, fn func(bgp.NLRI, []*apiutil.Path)) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.srv.ListPath(r, fn)
}

func (s *Speaker) guarded(srv *server.BgpServer) ribReader { return guardedRIB{srv, &s.softMu} }
