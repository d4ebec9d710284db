package bpf

import (
	"bytes"
	"context"
	"golang.org/x/sys/unix"
	"reflect"
	"runtime"
	"testing"

	"github.com/xdprouter/xdprouter/filter"
)

// flowOf is the Flow of a test packet, if lookup's flags can express it
// (no options, fragments, VLAN or corruption).
func flowOf(k pkt) (Flow, bool) {
	if k.mutate != nil || k.options != 0 || k.frag != 0 || k.vlan || k.ethertype != 0 {
		return Flow{}, false
	}
	proto := k.proto
	if proto == 0 {
		proto = protoUDP
	}
	hlen := 20
	if k.v6 {
		hlen = 40
	}
	return Flow{Src: k.src, Dst: k.dst, Proto: proto, Sport: k.sport, Dport: k.dport, Tos: k.tos,
		TTL: k.ttl, Size: hlen + 8 + k.payload}, true
}

// TestExplainAgrees is issue 13's acceptance for the forwarding cases:
// xdprouterctl lookup's path (Datapath.Explain on the flow's own frame)
// gives the verdict and reason the live program gives the unit test's
// frame, and moves no live counter. (Every frame run through run or
// runIn, in every BPF unit test, is also checked against the explain
// instance: see checkedRun.) Where the Go model disagrees with the
// program, the disagreement is reported (logged here: the model does not
// know TTL, MTU or martian sources).
func TestExplainAgrees(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	n, flagged := 0, 0
	for _, tc := range forwardCases() {
		f, ok := flowOf(tc.pkt)
		if tc.raw != nil || !ok {
			continue
		}
		n++
		before := statsMap(t, d)
		r, err := d.Explain(f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if after := statsMap(t, d); !reflect.DeepEqual(before, after) {
			t.Errorf("%s: explain moved the live counters", tc.name)
		}
		if got := r.Action + "/" + r.Reason; got != tc.stat {
			t.Errorf("%s: explain says %s, want %s (as the program)", tc.name, got, tc.stat)
		}
		if tc.expect != nil && (!bytes.Equal(r.DstMAC, tc.expect.dmac) || !bytes.Equal(r.SrcMAC, tc.expect.smac)) {
			t.Errorf("%s: explain's frame %s -> %s, want %s -> %s", tc.name, r.SrcMAC, r.DstMAC, tc.expect.smac, tc.expect.dmac)
		}
		if tc.expect != nil {
			wantOut := map[string]int{macA.String(): p.a, macB.String(): p.b}[tc.expect.smac.String()]
			if r.Egress != wantOut {
				t.Errorf("%s: egress %d, want %d", tc.name, r.Egress, wantOut)
			}
		}
		dec, err := d.LookupFlow(f)
		if err != nil {
			t.Fatal(err)
		}
		if why := dec.Disagreement(r); why != "" {
			flagged++
			t.Logf("%s: flagged: %s", tc.name, why)
		}
		// The direct run of the unit test's frame, checked against
		// the explain instance too (checkedRun).
		if ret, _ := run(t, d, tc.pkt.build()); ret != tc.ret {
			t.Errorf("%s: program %s, want %s", tc.name, xdpNames[ret], xdpNames[tc.ret])
		}
	}
	if n < 50 {
		t.Fatalf("only %d cases expressible as flows", n)
	}
	t.Logf("%d cases; the model disagrees with the program on %d (flagged)", n, flagged)
}

// TestExplainOnPort: a frame explained as arriving on a port is addressed
// to the port's MAC, and the program's port checks apply.
func TestExplainOnPort(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	must(t, p.ns.Do(func() error { return d.SetURPF(p.a, URPFStrict) }))
	var on, strict ProgramRun
	must(t, p.ns.Do(func() error {
		var err error
		if on, err = d.Explain(Flow{Src: ip("10.2.0.9"), Dst: ip("10.2.0.1"), Iif: p.b, Proto: protoUDP}); err != nil {
			return err
		}
		// 172.16.0.1 has no route: strict uRPF on port a drops it.
		strict, err = d.Explain(Flow{Src: src4, Dst: ip("10.2.0.1"), Iif: p.a, Proto: protoUDP})
		return err
	}))
	if on.Action != ActionRedirect || on.Ingress != p.b || on.Egress != p.b || on.TTL != DefaultTTL-1 {
		t.Errorf("on port b: %+v, want a redirect out of b with TTL 63", on)
	}
	if strict.Action != ActionDrop || strict.Reason != ReasonURPF {
		t.Errorf("uRPF strict on port a: %+v, want drop/urpf", strict)
	}
}

// TestExplainBucketsApart: explaining a rate-limited flow spends neither
// the live token bucket nor the live counters, and live traffic does not
// spend the explain instance's.
func TestExplainBucketsApart(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	udp53 := filter.Rule{Name: "dns", Protocols: rng(17, 17), DstPorts: rng(53, 53), Action: filter.Action{Kind: filter.RateLimit, PPS: 1}}
	setFilters(t, d, udp53)
	f := Flow{Src: src4, Dst: ip("10.1.2.3"), Proto: protoUDP, Sport: 1000, Dport: 53}
	for i := range 5 {
		r, err := d.Explain(f)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && r.Action != ActionRedirect {
			t.Errorf("first explain: %+v, want redirect", r)
		}
	}
	fs, err := d.Filters()
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Packets != 0 || fs[0].Dropped != 0 {
		t.Errorf("live filter counters moved: %+v", fs)
	}
	// The live bucket is full: the first live packet conforms.
	if ret, _ := run(t, d, v4("10.1.2.3").build()); ret != xdpRedirect {
		t.Errorf("first live packet after explains: %s, want XDP_REDIRECT", xdpNames[ret])
	}
}

// TestExplainFollowsGlobals: the explain instance shares .data and .bss
// with the live program: switching the live program to the trie is seen
// at once.
func TestExplainFollowsGlobals(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	f := Flow{Src: src4, Dst: ip("100.100.1.1")}
	// A route only the trie has (the compiled structure is not told).
	must(t, d.objs.RoutesV4.Put(v4Key(0, pfx("100.100.0.0/16")), fwdRouteVal{Nhg: gA}))
	for _, tc := range []struct {
		compiled uint32
		want     string
	}{{1, "pass/no_route"}, {0, "redirect/"}, {1, "pass/no_route"}} {
		must(t, d.objs.LookupCompiled.Set(tc.compiled))
		r, err := d.Explain(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Action + "/" + r.Reason; got != tc.want {
			t.Errorf("lookup_compiled %d: explain says %s, want %s", tc.compiled, got, tc.want)
		}
		if ret, _ := run(t, d, v4("100.100.1.1").build()); (ret == xdpRedirect) != (tc.want == "redirect/") {
			t.Errorf("lookup_compiled %d: program %s", tc.compiled, xdpNames[ret])
		}
	}
}

// TestTrace: with tracing on, frames through the program produce events
// with their fields; the filter applies in XDP; with tracing off nothing
// is written.
func TestTrace(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	seen := func() uint64 {
		var per []fwdTraceState
		must(t, d.objs.TraceStates.Lookup(uint32(0), &per))
		var n uint64
		for _, s := range per {
			n += s.Seen
		}
		return n
	}
	// Off: nothing is looked at, nothing written.
	run(t, d, v4("10.1.2.3").build())
	if n := seen(); n != 0 {
		t.Fatalf("tracing off: %d packets seen by the tracer", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan TraceEvent, 16)
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		errc <- d.trace(ctx, TraceFilter{Dst: pfx("10.0.0.0/8"), Proto: protoUDP}, func(e TraceEvent) { events <- e }, started)
	}()
	<-started
	run(t, d, v4("198.51.100.7").build())                                       // blackhole: not 10/8
	run(t, d, v4("10.1.2.3").with(func(k *pkt) { k.proto = protoTCP }).build()) // not UDP
	frame := v4("10.2.0.1").with(func(k *pkt) { k.sport, k.dport = 1234, 53; k.tos = 0x10 }).build()
	run(t, d, frame)
	run(t, d, v4("10.4.0.1").build()) // unresolved
	e := <-events
	want := TraceEvent{Src: src4, Dst: ip("10.2.0.1"), Proto: protoUDP, Sport: 1234, Dport: 53, Tos: 0x10, TTL: 63,
		Len: len(frame), Action: ActionRedirect, Egress: p.b, Ingress: 1 /* lo: no port */}
	if e.Src != want.Src || e.Dst != want.Dst || e.Proto != want.Proto || e.Sport != want.Sport || e.Dport != want.Dport ||
		e.Tos != want.Tos || e.TTL != want.TTL || e.Len != want.Len || e.Action != want.Action || e.Reason != "" ||
		e.Egress != want.Egress || !bytes.Equal(e.DstMAC, macGwB) || !bytes.Equal(e.SrcMAC, macB) {
		t.Errorf("event %+v\nwant %+v (MACs %s -> %s)", e, want, macB, macGwB)
	}
	if e := <-events; e.Dst != ip("10.4.0.1") || e.Action != ActionPass || e.Reason != ReasonNeighborUnresolved || e.Egress != 0 {
		t.Errorf("event %+v, want pass/neighbor_unresolved to 10.4.0.1", e)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var on uint32
	must(t, d.objs.TraceOn.Get(&on))
	if on != 0 {
		t.Fatal("trace_on still set after the last tracer left")
	}
	n := seen()
	run(t, d, v4("10.1.2.3").build())
	if m := seen(); m != n {
		t.Errorf("tracing off again: the tracer saw %d more packets", m-n)
	}
	select {
	case e := <-events:
		t.Errorf("event after the tracer left: %+v", e)
	default:
	}
}

// TestTraceSampling: 1 in N and the per-second budget apply in XDP.
func TestTraceSampling(t *testing.T) {
	d := loadTest(t)
	p := setupPorts(t, d)
	setupTable(t, d, p)
	for _, tc := range []struct {
		f    TraceFilter
		want int
	}{
		{TraceFilter{Sample: 4}, 5},
		{TraceFilter{Rate: 3}, 3}, // within one second, unless it ends meanwhile
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var got []TraceEvent
		done := make(chan error, 1)
		started := make(chan struct{})
		ch := make(chan TraceEvent, 64)
		go func() { done <- d.trace(ctx, tc.f, func(e TraceEvent) { ch <- e }, started) }()
		<-started
		// On one CPU: sampling and budget are per CPU.
		runtime.LockOSThread()
		var was, one unix.CPUSet
		must(t, unix.SchedGetaffinity(0, &was))
		one.Set(0)
		must(t, unix.SchedSetaffinity(0, &one))
		for range 20 {
			run(t, d, v4("10.1.2.3").build())
		}
		must(t, unix.SchedSetaffinity(0, &was))
		runtime.UnlockOSThread()
		for len(got) < tc.want {
			got = append(got, <-ch)
		}
		cancel()
		must(t, <-done)
		close(ch)
		for e := range ch {
			got = append(got, e)
		}
		if len(got) != tc.want && !(tc.f.Rate != 0 && len(got) >= tc.want && len(got) <= 2*tc.want) {
			t.Errorf("%+v: %d events of 20 packets, want %d", tc.f, len(got), tc.want)
		}
	}
}
