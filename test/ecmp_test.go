package test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	"github.com/xdprouter/xdprouter/api"
	"github.com/xdprouter/xdprouter/bpf"
)

// TestECMPResilient: a real 8-way multipath route in r's kernel, mirrored
// into XDP by xdprouterd; one next hop leaves (ip route replace with 7).
// The daemon's own program (through its lookup API, which runs it on a
// frame per flow) keeps ≥ 85% of the other members' flows on their
// member - with resilient hashing, all of them - and spreads the leaving
// member's flows over the others.
func TestECMPResilient(t *testing.T) {
	r := newLab(t)
	const dst = "198.51.100.1"
	gws := make([]string, 8)
	for i := range gws {
		gws[i] = fmt.Sprintf("10.0.2.%d", 10+i)
		// Each next hop a distinct MAC: the flow's member is its dst MAC.
		if err := r.Run("r", "ip", "neigh", "replace", gws[i], "lladdr", fmt.Sprintf("02:00:00:00:ee:%02x", i),
			"dev", "eth2", "nud", "permanent"); err != nil {
			t.Fatal(err)
		}
	}
	setRoute := func(gws []string) {
		t.Helper()
		args := []string{"ip", "route", "replace", "198.51.100.0/24"}
		for _, g := range gws {
			args = append(args, "nexthop", "via", g, "dev", "eth2")
		}
		if err := r.Run("r", args...); err != nil {
			t.Fatal(err)
		}
	}
	setRoute(gws)
	r.start("")
	a := r.api()
	r.waitDecision(dst, "8 next hops", func(d bpf.Decision) bool { return len(d.Candidates) == 8 })

	rng := rand.New(rand.NewPCG(5, 6))
	type flow struct {
		src          netip.Addr
		sport, dport uint16
	}
	flows := make([]flow, 800)
	for i := range flows {
		flows[i] = flow{netip.AddrFrom4([4]byte{172, 16, byte(rng.IntN(256)), byte(rng.IntN(256))}), uint16(1024 + rng.IntN(60000)), 443}
	}
	members := func() []int {
		t.Helper()
		out := make([]int, len(flows))
		for i, f := range flows {
			var e api.Explain
			q := url.Values{"addr": {dst}, "from": {f.src.String()}, "in": {"eth1"}, "proto": {"tcp"},
				"sport": {strconv.Itoa(int(f.sport))}, "dport": {strconv.Itoa(int(f.dport))}}
			if err := a.getJSON("/api/v1/lookup", q, &e); err != nil {
				t.Fatal(err)
			}
			if e.Program == nil || e.Program.Action != bpf.ActionRedirect || len(e.Program.DstMAC) != 6 {
				t.Fatalf("flow %+v: the program did not forward it: %+v %s", f, e.Program, e.ProgramError)
			}
			out[i] = int(e.Program.DstMAC[5])
		}
		return out
	}
	before := members()
	used := map[int]int{}
	for _, m := range before {
		used[m]++
	}
	if len(used) != 8 {
		t.Fatalf("flows used members %v, want all 8", used)
	}

	const gone = 5
	setRoute(append(append([]string(nil), gws[:gone]...), gws[gone+1:]...))
	r.waitDecision(dst, "7 next hops", func(d bpf.Decision) bool { return len(d.Candidates) == 7 })
	after := members()
	kept, others, spread := 0, 0, map[int]int{}
	for i, m := range before {
		if m == gone {
			spread[after[i]]++
			continue
		}
		others++
		if after[i] == m {
			kept++
		}
	}
	t.Logf("kept %d of %d flows of the members left; the removed member's %d went to %v", kept, others, len(flows)-others, spread)
	if kept*100 < others*85 {
		t.Errorf("only %d of %d flows of the remaining members kept their member, want ≥ 85%%", kept, others)
	}
	if spread[gone] > 0 || len(spread) < 4 {
		t.Errorf("the removed member's flows went to %v: want spread over the others", spread)
	}
}
