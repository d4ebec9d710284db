package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdprouter/xdprouter/config"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// steps records what the fake components do, in order.
type steps struct {
	mu  sync.Mutex
	log []string
}

func (s *steps) add(step string) {
	s.mu.Lock()
	s.log = append(s.log, step)
	s.mu.Unlock()
}

func (s *steps) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

type fakeBGP struct {
	s        *steps
	startErr error
	gate     chan struct{} // Start returns once it is closed
}

func (f *fakeBGP) Start(context.Context) error {
	<-f.gate
	f.s.add("bgp started")
	return f.startErr
}
func (f *fakeBGP) Stop() { f.s.add("bgp stopped") }

type fakeSync struct {
	s       *steps
	running chan struct{}
}

func (f *fakeSync) Run(ctx context.Context, _ <-chan any) error {
	close(f.running)
	<-ctx.Done()
	f.s.add("sync stopped")
	return nil
}
func (f *fakeSync) RemoveKernelRoutes() error { f.s.add("kernel routes removed"); return nil }
func (f *fakeSync) Counts() xsync.Counts      { return xsync.Counts{} }

func fakeComponents(s *steps, keep bool, bgpErr error, gate chan struct{}) (components, *fakeSync) {
	fs := &fakeSync{s: s, running: make(chan struct{})}
	block := func(ctx context.Context) error { <-ctx.Done(); return nil }
	return components{
		log:        slog.New(slog.DiscardHandler),
		bgp:        &fakeBGP{s: s, startErr: bgpErr, gate: gate},
		sync:       fs,
		watch:      func(ctx context.Context, _ chan<- any) error { return block(ctx) },
		serve:      block,
		keepRoutes: keep,
		handles: []closer{
			{"fib", closeFunc(func() error { s.add("fib closed"); return nil })},
			{"data path", closeFunc(func() error { s.add("data path closed"); return nil })},
		},
	}, fs
}

func TestShutdownOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		keep   bool
		bgpErr error
		want   []string
	}{
		{"stop", false, nil, []string{"bgp started", "bgp stopped", "sync stopped", "kernel routes removed", "fib closed", "data path closed"}},
		{"keep-routes-on-exit", true, nil, []string{"bgp started", "bgp stopped", "sync stopped", "fib closed", "data path closed"}},
		{"BGP fails to start", false, errors.New("port busy"), []string{"bgp started", "bgp stopped", "sync stopped", "kernel routes removed", "fib closed", "data path closed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &steps{}
			gate := make(chan struct{})
			c, fs := fakeComponents(s, tc.keep, tc.bgpErr, gate)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.run(ctx) }()
			if tc.bgpErr == nil {
				// The signal comes while BGP is still starting: it stops
				// once started, not before.
				<-fs.running
				cancel()
			}
			close(gate)
			select {
			case err := <-done:
				if !errors.Is(err, tc.bgpErr) {
					t.Errorf("run = %v, want %v", err, tc.bgpErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("run did not return; steps so far %v", s.get())
			}
			if got := s.get(); !slices.Equal(got, tc.want) {
				t.Errorf("steps\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

// A failing component stops everything, in the same order.
func TestShutdownOnComponentError(t *testing.T) {
	s := &steps{}
	open := make(chan struct{})
	close(open)
	c, _ := fakeComponents(s, false, nil, open)
	boom := errors.New("netlink gone")
	c.watch = func(context.Context, chan<- any) error { s.add("watch failed"); return boom }
	if err := c.run(context.Background()); !errors.Is(err, boom) {
		t.Errorf("run = %v, want %v", err, boom)
	}
	got := s.get()
	i := slices.Index(got, "bgp stopped")
	if i < 0 || !slices.Equal(got[i:], []string{"bgp stopped", "sync stopped", "kernel routes removed", "fib closed", "data path closed"}) {
		t.Errorf("steps %v: want BGP, sync, routes, handles in that order at the end", got)
	}
}

func TestPProfOnlyWhenEnabled(t *testing.T) {
	for _, on := range []bool{false, true} {
		mux := newMux(config.API{PProf: on}, prometheus.NewRegistry(), http.NotFoundHandler())
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if want := map[bool]int{false: 404, true: 200}[on]; rec.Code != want {
				t.Errorf("pprof = %v: GET %s = %d, want %d", on, path, rec.Code, want)
			}
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			t.Errorf("pprof = %v: GET /metrics = %d", on, rec.Code)
		}
	}
}
