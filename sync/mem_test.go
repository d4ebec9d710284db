package sync

import (
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"unsafe"

	"github.com/xdprouter/xdprouter/lpm"
	"github.com/xdprouter/xdprouter/route"
)

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkStateMemory reports the bytes of sync state per BGP route with
// a full table applied (XDPROUTER_BENCH_TABLE, default 565000 IPv4
// prefixes, one next-hop set), beside the table's own prefixes (32 B
// each as netip.Prefix) as the baseline.
func BenchmarkStateMemory(b *testing.B) {
	n := 565000
	if s := os.Getenv("XDPROUTER_BENCH_TABLE"); s != "" {
		if v, err := strconv.Atoi(s); err == nil {
			n = v
		}
	}
	tbl := lpm.SyntheticTable(n, 32, 1)
	for b.Loop() {
		r := newRig(b)
		r.dp.discard = true
		r.fib.discard = true
		h0 := heapInUse()
		for _, p := range tbl {
			r.st.setBGP(p, []netip.Addr{ip("10.0.1.2")}, nil, peerA, false)
		}
		loading := heapInUse() - h0
		for r.st.apply(4096) {
		}
		applied := heapInUse() - h0
		b.ReportMetric(float64(loading)/float64(n), "B/route-queued")
		b.ReportMetric(float64(applied)/float64(n), "B/route")
		b.ReportMetric(float64(applied)/float64(n)/32, "x-prefix")
		runtime.KeepAlive(r)
	}
	runtime.KeepAlive(tbl)
}

// TestCompactKeys: the table of a key costs no memory per route (see
// BenchmarkStateMemory): it lives in the IPv4 key's spare bits and the
// IPv6 key's padding, and round-trips.
func TestCompactKeys(t *testing.T) {
	if n := unsafe.Sizeof(v6key{}); n != 24 {
		t.Errorf("v6key is %d bytes, want 24", n)
	}
	if n := unsafe.Sizeof(entry{}); n != 24 {
		t.Errorf("entry is %d bytes, want 24", n)
	}
	tables := newTableIndex()
	et := newEntryTable(tables)
	keys := []route.TablePrefix{mk("10.0.0.0/8"), tk(100, "10.0.0.0/8"), tk(0xffffffff, "255.255.255.255/32"),
		tk(7, "0.0.0.0/0"), mk("2001:db8::/32"), tk(100, "2001:db8::/32"), tk(1<<31, "ffff::1/128")}
	for i, k := range keys {
		et.add(k).bgpSet = uint32(i + 1)
	}
	for i, k := range keys {
		if e := et.get(k); e == nil || e.bgpSet != uint32(i+1) {
			t.Errorf("%v: entry %+v", k, e)
		}
	}
	if e := et.get(route.TablePrefix{Prefix: pfx("10.0.0.0/8")}); e == nil || e.bgpSet != 1 {
		t.Errorf("table 0 is not main: %+v", e)
	}
	got := map[route.TablePrefix]bool{}
	for k := range et.all() {
		got[k] = true
	}
	for _, k := range keys {
		if !got[k] {
			t.Errorf("%v not listed: %v", k, got)
		}
	}
	et.remove(tk(100, "10.0.0.0/8"))
	if et.get(tk(100, "10.0.0.0/8")) != nil || et.get(mk("10.0.0.0/8")) == nil {
		t.Error("remove took the wrong table's entry")
	}
	ps := newPrefixSet(tables)
	for _, k := range keys {
		ps.add(k)
	}
	taken, _ := ps.take(0)
	eq(t, "taken", len(taken), len(keys))
	for _, k := range taken {
		if !got[k] {
			t.Errorf("took %v", k)
		}
	}
}
