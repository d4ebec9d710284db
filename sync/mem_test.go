package sync

import (
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/xdprouter/xdprouter/lpm"
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
