package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
)

// A fake daemon streaming trace events.
func traceServer(t *testing.T, evs []api.TraceEvent) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/trace" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("to") != "10.0.0.0/8" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "want to=10.0.0.0/8, got " + r.URL.RawQuery})
			return
		}
		enc := json.NewEncoder(w)
		for _, e := range evs {
			enc.Encode(e)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestTraceAndTop(t *testing.T) {
	a := netip.MustParseAddr
	ev := func(dst string, out string) api.TraceEvent {
		e := api.TraceEvent{TraceEvent: bpf.TraceEvent{Src: a("172.16.0.1"), Dst: a(dst), Proto: 17, Sport: 1000, Dport: 53,
			Action: bpf.ActionRedirect, Ingress: 2, Egress: 3}, In: "eth1", Out: out}
		if out == "" {
			e.Action, e.Reason, e.Egress = bpf.ActionPass, bpf.ReasonNoRoute, 0
		}
		return e
	}
	addr := traceServer(t, []api.TraceEvent{ev("10.1.2.3", "eth2"), ev("10.1.2.4", "eth2"), ev("10.9.0.1", ""), ev("10.1.2.5", "eth2")})
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--api", addr, "trace", "10.0.0.0/8", "--count", "2"}, &stdout, &stderr); code != 0 {
		t.Fatalf("trace: exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "172.16.0.1:1000 -> 10.1.2.3:53") || !strings.Contains(lines[1], "eth1") ||
		!strings.Contains(lines[1], "redirect") || !strings.Contains(lines[1], "eth2") {
		t.Errorf("trace --count 2:\n%s", stdout.String())
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"--api", addr, "--json", "top", "--to", "10.0.0.0/8", "--seconds", "5"}, &stdout, &stderr); code != 0 {
		t.Fatalf("top: exit %d: %s", code, stderr.String())
	}
	var top Top
	if err := json.Unmarshal(stdout.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	if top.Events != 4 || len(top.Entries) != 2 || top.Entries[0].Key != "10.1.2.0/24" || top.Entries[0].Sampled != 3 {
		t.Errorf("top: %+v", top)
	}
	if code := run(context.Background(), []string{"--api", addr, "trace", "--family", "5"}, &stdout, &stderr); code != 2 {
		t.Errorf("trace --family 5: exit %d, want 2", code)
	}
}

func TestPrintExplain(t *testing.T) {
	var b bytes.Buffer
	printExplain(&b, &api.Explain{Assumed: []string{"proto udp"},
		Program:  &bpf.ProgramRun{Action: bpf.ActionPass, Reason: bpf.ReasonTTLExceeded, Frame: 42},
		Decision: bpf.Decision{Action: bpf.ActionRedirect},
		Flags:    []string{"the model says redirect, the program pass/ttl_exceeded"}})
	for _, s := range []string{"assumed", "xdp", "pass ttl_exceeded", "model", "DISAGREE"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("lacks %q:\n%s", s, b.String())
		}
	}
}
