package sync

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/lab"
	"github.com/xdprouter/xdprouter/route"
)

// TestSweepStaleOnRequest: with a long StaleAfter, SweepStale removes the
// routes a previous instance left and nothing wants, at once, and keeps
// those BGP re-learned (queued before the request), also when the request
// comes before the first kernel snapshot.
func TestSweepStaleOnRequest(t *testing.T) {
	for _, early := range []bool{false, true} {
		name := "after snapshot"
		if early {
			name = "before snapshot"
		}
		t.Run(name, func(t *testing.T) {
			right := route.Route{Prefix: pfx("198.51.100.0/24"), Kind: route.Unicast, Metric: 20, Protocol: protoOurs,
				NextHops: []route.NextHop{gw("10.0.1.2", eth1)}}
			stale := route.Route{Prefix: pfx("198.51.200.0/24"), Kind: route.Unicast, Metric: 20, Protocol: protoOurs,
				NextHops: []route.NextHop{gw("10.0.1.2", eth1)}}
			dp, f := newFakeDP(), &fakeFIB{routes: map[netip.Prefix]route.Route{right.Prefix: right, stale.Prefix: stale}}
			s := New(Options{Datapath: dp, FIB: f, Metric: 20, Ports: []string{"eth1"}, StaleAfter: time.Hour,
				Log: slog.New(slog.DiscardHandler)})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			events := make(chan any)
			done := make(chan struct{})
			go func() { _ = s.Run(ctx, events); close(done) }()
			defer func() { cancel(); <-done }()
			snap := &route.Snapshot{
				Links:     []route.Link{{Index: eth1, Name: "eth1", MTU: 1500, Up: true, MAC: mac3}},
				Addrs:     []route.Addr{{Ifindex: eth1, Prefix: pfx("10.0.1.1/24")}},
				Routes:    []route.Route{connected("10.0.1.0/24", eth1)},
				Neighbors: []route.Neighbor{{Ifindex: eth1, Addr: ip("10.0.1.2"), MAC: mac1, Valid: true}},
				Ours:      []route.Route{right, stale},
			}
			s.Best([]BestPath{{Prefix: right.Prefix, NextHops: []netip.Addr{ip("10.0.1.2")}, Peer: ip("10.0.1.2")}})
			if early {
				s.SweepStale()
				events <- snap
			} else {
				events <- snap
				waitCounts(t, s, func(c Counts) bool { return c.FIB4 == 2 }, "both routes adopted")
				if _, ok := f.routes[stale.Prefix]; !ok {
					t.Fatal("the stale route went before the sweep")
				}
				s.SweepStale()
			}
			waitCounts(t, s, func(c Counts) bool { return c.FIB4 == 1 && c.Pending == 0 }, "stale route swept")
			s.mu.Lock()
			defer s.mu.Unlock()
			if _, ok := f.routes[stale.Prefix]; ok {
				t.Error("the stale route is still in the kernel")
			}
			if _, ok := f.routes[right.Prefix]; !ok {
				t.Error("the re-learned route was swept")
			}
			if _, ok := dp.routes[stale.Key()]; ok {
				t.Error("the stale route is still in XDP")
			}
			if _, ok := dp.routes[right.Key()]; !ok {
				t.Error("the re-learned route is not in XDP")
			}
		})
	}
}

func waitCounts(t *testing.T, s *Syncer, ok func(Counts) bool, what string) {
	t.Helper()
	err := lab.PollEvery(context.Background(), 10*time.Second, time.Millisecond, func() error {
		if !ok(s.Counts()) {
			return fmt.Errorf("%s: counts %+v", what, s.Counts())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
