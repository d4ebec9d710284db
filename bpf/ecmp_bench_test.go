package bpf

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xdprouter/xdprouter/route"
)

// BenchmarkECMPSelect: the per-packet cost (BPF_PROG_TEST_RUN,
// kernel-measured ns/pkt) of forwarding through a 2-member and a
// 64-member group: the member choice is hash → bucket → member, so the
// group's size should not matter (ratio-64/2 ≈ 1). The next hops are
// unresolved, so the whole path runs (parse, lookup, hash, group, next
// hop) and the frame passes unmodified (see BenchmarkXDP).
//
// With XDPROUTER_BASELINE_OBJ naming the object of an older build (e.g.
// `git show <commit>:bpf/fwd_x86_bpfel.o > /tmp/base.o`, a commit before
// resilient groups: 16 members, hash % count), that program runs side by
// side on the same maps with 2 and 16 members: ratio-new/old compares the
// two selections.
func BenchmarkECMPSelect(b *testing.B) {
	d := loadTest(b)
	for i := range MaxECMP {
		if err := d.SetNextHop(uint32(1+i), route.Egress{Ifindex: 1}); err != nil {
			b.Fatal(err)
		}
	}
	ids := func(n int) []uint32 {
		var out []uint32
		for i := range n {
			out = append(out, uint32(1+i))
		}
		return out
	}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(d.SetGroup(2, ids(2)))
	must(d.SetGroup(64, ids(64)))
	_, err := d.UpdateRoutes([]route.Entry{{Prefix: pfx("10.2.0.0/16"), Group: 2}, {Prefix: pfx("10.64.0.0/16"), Group: 64}})
	must(err)

	type variant struct {
		name string
		prog *ebpf.Program
		dst  string
	}
	vs := []variant{{"new-2", d.Program(), "10.2.0.1"}, {"new-64", d.Program(), "10.64.0.1"}}
	if old := loadBaseline(b, d, map[uint32][]uint32{2: ids(2), 64: ids(16)}); old != nil {
		vs = append(vs, variant{"old-2", old, "10.2.0.1"}, variant{"old-16", old, "10.64.0.1"})
	}
	// 32 flows per variant, so that different buckets and members run.
	frames := make([][][]byte, len(vs))
	for i, v := range vs {
		for f := range 32 {
			frame := pkt{src: src4, dst: ip(v.dst), proto: protoTCP, sport: uint16(1000 + 7*f), dport: 443}.build()
			if ret, _, err := v.prog.Benchmark(frame, 1, nil); err != nil || ret != xdpPass {
				b.Fatalf("%s: verdict %d, %v; want XDP_PASS (unresolved next hop)", v.name, ret, err)
			}
			frames[i] = append(frames[i], frame)
		}
	}
	const repeat = 2000
	total := make([]float64, len(vs))
	b.ResetTimer()
	for b.Loop() {
		for i, v := range vs { // interleaved: drift hits every variant alike
			for _, f := range frames[i] {
				_, dur, err := v.prog.Benchmark(f, repeat, nil)
				if err != nil {
					b.Fatal(err)
				}
				total[i] += float64(dur.Nanoseconds()) / float64(len(frames[i]))
			}
		}
	}
	ns := make(map[string]float64, len(vs))
	for i, v := range vs {
		ns[v.name] = total[i] / float64(b.N)
		b.ReportMetric(ns[v.name], v.name+"-ns/pkt")
	}
	b.ReportMetric(ns["new-64"]/ns["new-2"], "ratio-64/2")
	if _, ok := ns["old-2"]; ok {
		b.ReportMetric(ns["new-2"]/ns["old-2"], "ratio-new/old")
		b.ReportMetric(ns["new-64"]/ns["old-16"], "ratio-new64/old16")
	}
}

// loadBaseline loads the program of XDPROUTER_BASELINE_OBJ on d's maps,
// with groups of its own (the old layout: count, 16 next-hop ids); nil
// without the variable.
func loadBaseline(b *testing.B, d *Datapath, groups map[uint32][]uint32) *ebpf.Program {
	path := os.Getenv("XDPROUTER_BASELINE_OBJ")
	if path == "" {
		b.Log("XDPROUTER_BASELINE_OBJ unset: no baseline program")
		return nil
	}
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		b.Fatal(err)
	}
	live := d.liveMaps()
	repl := map[string]*ebpf.Map{}
	for name, ms := range spec.Maps {
		m := live[name]
		if m == nil || name == fwdMapNhgs || name == fwdMapMeta || strings.HasPrefix(name, ".") ||
			m.KeySize() != ms.KeySize || m.ValueSize() != ms.ValueSize || m.Type() != ms.Type {
			continue
		}
		ms.MaxEntries, ms.Flags = m.MaxEntries(), m.Flags()
		repl[name] = m
	}
	var objs struct {
		Prog *ebpf.Program `ebpf:"xdp_fwd"`
		Nhgs *ebpf.Map     `ebpf:"nhgs"`
	}
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{MapReplacements: repl}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { objs.Prog.Close(); objs.Nhgs.Close() })
	if objs.Nhgs.ValueSize() != 4+16*4 {
		b.Fatalf("baseline nhgs value of %d bytes: not the 16-member layout", objs.Nhgs.ValueSize())
	}
	for id, members := range groups {
		v := make([]byte, objs.Nhgs.ValueSize())
		binary.NativeEndian.PutUint32(v, uint32(len(members)))
		for i := range 16 {
			binary.NativeEndian.PutUint32(v[4+4*i:], members[i%len(members)])
		}
		if err := objs.Nhgs.Put(id, v); err != nil {
			b.Fatal(err)
		}
	}
	return objs.Prog
}
