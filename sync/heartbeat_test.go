package sync

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/route"
)

// TestAlive: a watchdog sees the worker alive while Run runs (idle, its
// loop turns every second), not before, not after, and not while it is
// stuck (the mutex a chunk holds, here held by the test).
func TestAlive(t *testing.T) {
	dp, f := newFakeDP(), &fakeFIB{routes: map[netip.Prefix]route.Route{}}
	s := New(Options{Datapath: dp, FIB: f, Metric: 20, Ports: []string{"eth1"}, Log: slog.New(slog.DiscardHandler)})
	if err := s.Alive(time.Minute); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("before Run: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan any)
	done := make(chan struct{})
	go func() { _ = s.Run(ctx, events); close(done) }()
	events <- &route.Snapshot{Links: []route.Link{{Index: eth1, Name: "eth1", MTU: 1500, Up: true, MAC: mac3}}}
	poll(t, func() bool { return s.Alive(1500*time.Millisecond) == nil })
	// Idle for longer than the threshold: still alive (the retry ticker).
	time.Sleep(2 * time.Second)
	if err := s.Alive(1500 * time.Millisecond); err != nil {
		t.Errorf("idle worker: %v", err)
	}
	s.mu.Lock() // the worker blocks at its next turn
	poll(t, func() bool {
		err := s.Alive(1500 * time.Millisecond)
		return err != nil && strings.Contains(err.Error(), "stuck")
	})
	s.mu.Unlock()
	poll(t, func() bool { return s.Alive(1500*time.Millisecond) == nil })
	cancel()
	<-done
	if err := s.Alive(time.Minute); !errors.Is(err, ErrNotRunning) {
		t.Errorf("after Run: %v", err)
	}
}

func poll(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
