package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdprouter/xdprouter/bpf"
)

// fakeStats serves /api/v1/stats with counters growing by a fixed step
// per request: redirect +100 packets (of 1000 bytes), pass no_route +5,
// drop filter never.
func fakeStats(t *testing.T) (addr string, requests *atomic.Int64) {
	addr, requests, _ = fakeStatsN(t, 0)
	return addr, requests
}

// fakeStatsN is fakeStats whose channel is closed at the n-th request.
func fakeStatsN(t *testing.T, n int64) (addr string, requests *atomic.Int64, reached chan struct{}) {
	t.Helper()
	requests = &atomic.Int64{}
	reached = make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/stats" {
			http.NotFound(w, r)
			return
		}
		i := requests.Add(1)
		if i == n {
			close(reached)
		}
		n := uint64(i)
		json.NewEncoder(w).Encode([]bpf.StatCounter{
			{Action: bpf.ActionRedirect, Packets: 100 * n, Bytes: 100000 * n},
			{Action: bpf.ActionPass, Reason: bpf.ReasonNoRoute, Packets: 5 * n, Bytes: 300 * n},
			{Action: bpf.ActionDrop, Reason: bpf.ReasonFilter},
		})
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), requests, reached
}

func TestStatsWatch(t *testing.T) {
	addr, requests := fakeStats(t)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--api", addr, "stats", "--watch", "--interval", "10ms", "--count", "3"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if n := strings.Count(out, "PACKETS/S"); n != 3 {
		t.Errorf("%d reports, want 3:\n%s", n, out)
	}
	if got := requests.Load(); got != 4 { // the baseline, then one per report
		t.Errorf("%d requests, want 4", got)
	}
	for _, s := range []string{"redirect", "no_route", "total"} {
		if !strings.Contains(out, s) {
			t.Errorf("no %q in:\n%s", s, out)
		}
	}
	if strings.Contains(out, "filter") {
		t.Errorf("a counter that never counted is shown:\n%s", out)
	}

	// --json: one object a line, rates consistent with the steps.
	stdout.Reset()
	if code := run(context.Background(), []string{"--api", addr, "--json", "stats", "--watch", "--interval", "10ms", "--count", "2"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	lines := 0
	for sc.Scan() {
		lines++
		var r Rates
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v: %s", lines, err, sc.Text())
		}
		if len(r.Rates) != 2 || r.Interval <= 0 {
			t.Fatalf("line %d: %+v", lines, r)
		}
		// Per interval: 100 redirected packets, 5 passed; bits = 8000 per packet.
		red, pass := r.Rates[0], r.Rates[1]
		if d := red.Packets*r.Interval - 100; d < -1e-6 || d > 1e-6 {
			t.Errorf("redirect rate %.1f over %.3fs: not 100 packets", red.Packets, r.Interval)
		}
		if d := pass.Packets*r.Interval - 5; d < -1e-6 || d > 1e-6 || pass.Reason != bpf.ReasonNoRoute {
			t.Errorf("pass rate %+v over %.3fs: not 5 packets", pass, r.Interval)
		}
		if d := red.Bits/(8000*red.Packets) - 1; d < -1e-9 || d > 1e-9 {
			t.Errorf("redirect bits %.0f for %.0f packets of 1000 bytes", red.Bits, red.Packets)
		}
	}
	if lines != 2 {
		t.Errorf("%d JSON lines, want 2", lines)
	}
}

// TestStatsWatchInterrupt: without --count, it runs until the context
// ends, and that is no error.
func TestStatsWatchInterrupt(t *testing.T) {
	addr, requests, third := fakeStatsN(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--api", addr, "stats", "--watch", "--interval", "10ms"}, &stdout, &stderr)
	}()
	select {
	case <-third:
	case <-time.After(10 * time.Second):
		t.Fatal("not 3 requests within 10s")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after interrupt: %s", code, stderr.String())
	}
	if n := strings.Count(stdout.String(), "PACKETS/S"); int64(n) > requests.Load()-1 || n < 1 {
		t.Errorf("%d reports for %d requests:\n%s", n, requests.Load(), stdout.String())
	}
}

func TestRates(t *testing.T) {
	prev := []bpf.StatCounter{{Action: "redirect", Packets: 1000, Bytes: 64000}, {Action: "pass", Reason: "local", Packets: 10, Bytes: 1000}}
	cur := []bpf.StatCounter{{Action: "redirect", Packets: 3000, Bytes: 192000}, {Action: "pass", Reason: "local", Packets: 4, Bytes: 400},
		{Action: "drop", Reason: "urpf"}}
	got := rates(prev, cur, 2*time.Second)
	want := []Rate{{Action: "redirect", Packets: 1000, Bits: 512000}, {Action: "pass", Reason: "local", Packets: 2, Bits: 1600}}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rate %d: %+v, want %+v (a counter that went back counts from 0)", i, got[i], want[i])
		}
	}
}

func TestStatsWatchUsage(t *testing.T) {
	addr, _ := fakeStats(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stats", "--interval", "1s"}, "need --watch"},
		{[]string{"stats", "--watch", "--interval", "1ms"}, "at least 10ms"},
		{[]string{"stats", "--watch", "--count", "-1"}, "must not be negative"},
		{[]string{"stats", "--watch", "extra"}, `unexpected "extra"`},
		{[]string{"stats", "--frobnicate"}, "flags: --watch"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"--api", addr}, tc.args...), &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, stderr.String(), tc.want)
		}
	}
}
