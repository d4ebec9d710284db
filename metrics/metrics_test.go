package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xdprouter/xdprouter/bpf"
	"github.com/xdprouter/xdprouter/bypass"
	"github.com/xdprouter/xdprouter/filter"
	xsync "github.com/xdprouter/xdprouter/sync"
)

type fakeStats struct {
	s   []bpf.StatCounter
	err error
}

func (f *fakeStats) Stats() ([]bpf.StatCounter, error) { return f.s, f.err }

type fakeCounts xsync.Counts

func (f fakeCounts) Counts() xsync.Counts { return xsync.Counts(f) }

func TestCollector(t *testing.T) {
	stats := &fakeStats{s: []bpf.StatCounter{
		{Action: bpf.ActionRedirect, Packets: 10, Bytes: 1000},
		{Action: bpf.ActionPass, Reason: bpf.ReasonNoRoute, Packets: 2, Bytes: 120},
	}}
	c := New(stats, fakeCounts{XDP4: 5, XDP6: 1, FIB4: 3, Pending: 7})
	c.ObserveApply(3 * time.Millisecond)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP xdprouter_routes Routes installed right now: dest=xdp in the XDP tries, dest=kernel by xdprouterd in the kernel FIB.
# TYPE xdprouter_routes gauge
xdprouter_routes{dest="kernel",family="ipv4"} 3
xdprouter_routes{dest="kernel",family="ipv6"} 0
xdprouter_routes{dest="xdp",family="ipv4"} 5
xdprouter_routes{dest="xdp",family="ipv6"} 1
# HELP xdprouter_sync_pending Route changes received but not applied yet.
# TYPE xdprouter_sync_pending gauge
xdprouter_sync_pending 7
# HELP xdprouter_xdp_packets_total Packets seen by the XDP program, by action and reason.
# TYPE xdprouter_xdp_packets_total counter
xdprouter_xdp_packets_total{action="pass",reason="no_route"} 2
xdprouter_xdp_packets_total{action="redirect",reason=""} 10
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"xdprouter_routes", "xdprouter_sync_pending", "xdprouter_xdp_packets_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "xdprouter_sync_apply_seconds"); n != 1 {
		t.Errorf("apply histogram: %d series", n)
	}

	// A failing read is counted, not fatal: the other metrics still come.
	stats.err = errors.New("map gone")
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP xdprouter_scrape_errors_total Errors reading the XDP counters during scrapes.
# TYPE xdprouter_scrape_errors_total counter
xdprouter_scrape_errors_total 1
`), "xdprouter_scrape_errors_total"); err != nil {
		t.Error(err)
	}
}

type fakeFindings []bypass.Finding

func (f fakeFindings) Findings() []bypass.Finding { return f }

func TestBypassCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewBypass(fakeFindings{
		{Kind: bypass.KindNFTForward, Detail: "a", Count: 3},
		{Kind: bypass.KindNFTForward, Detail: "b", Count: 1},
		{Kind: bypass.KindRPFilter, Detail: "c", Count: 1},
	}))
	want := `
# HELP xdprouter_bypassed_policy Kernel policy not applied to packets XDP forwards, by kind: rules of netfilter chains (a drop policy counts as one), ports with rp_filter; 0 when none.
# TYPE xdprouter_bypassed_policy gauge
xdprouter_bypassed_policy{kind="iptables-forward"} 0
xdprouter_bypassed_policy{kind="iptables-legacy"} 0
xdprouter_bypassed_policy{kind="nftables-forward"} 4
xdprouter_bypassed_policy{kind="nftables-ingress"} 0
xdprouter_bypassed_policy{kind="nftables-prerouting"} 0
xdprouter_bypassed_policy{kind="rp-filter"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "xdprouter_bypassed_policy"); err != nil {
		t.Error(err)
	}
}

type fakeFilters []bpf.FilterRule

func (f fakeFilters) Filters() ([]bpf.FilterRule, error) { return f, nil }

func TestFilterCollector(t *testing.T) {
	rule := func(name string, o filter.Origin, pkts, dropped uint64) bpf.FilterRule {
		return bpf.FilterRule{Rule: filter.Rule{Name: name, Origin: o}, Packets: pkts, Bytes: 100 * pkts, Dropped: dropped}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewFilters(fakeFilters{
		rule("ntp", filter.FromConfig, 5, 0),
		rule("dst 192.0.2.0/24", filter.FromFlowspec, 7, 2),
		rule("dst 192.0.2.0/24", filter.FromFlowspec, 1, 0), // same name: counted once
	}, func() int { return 3 }))
	want := `
# HELP xdprouter_filter_packets_total Packets that matched a filter rule in XDP, by rule name and origin (config, flowspec).
# TYPE xdprouter_filter_packets_total counter
xdprouter_filter_packets_total{origin="config",rule="ntp"} 5
xdprouter_filter_packets_total{origin="flowspec",rule="dst 192.0.2.0/24"} 7
# HELP xdprouter_filter_rate_limited_total Packets a rate-limit filter rule dropped, by rule name and origin.
# TYPE xdprouter_filter_rate_limited_total counter
xdprouter_filter_rate_limited_total{origin="config",rule="ntp"} 0
xdprouter_filter_rate_limited_total{origin="flowspec",rule="dst 192.0.2.0/24"} 2
# HELP xdprouter_filter_rules Filter rules in force in XDP, by origin.
# TYPE xdprouter_filter_rules gauge
xdprouter_filter_rules{origin="config"} 1
xdprouter_filter_rules{origin="flowspec"} 2
# HELP xdprouter_flowspec_rejected_rules Flowspec rules received but not in force (not feasible, unsupported, no room).
# TYPE xdprouter_flowspec_rejected_rules gauge
xdprouter_flowspec_rejected_rules 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "xdprouter_filter_packets_total",
		"xdprouter_filter_rate_limited_total", "xdprouter_filter_rules", "xdprouter_flowspec_rejected_rules"); err != nil {
		t.Error(err)
	}
}

type fakeSizes bpf.MapSizes

func (f fakeSizes) Sizes() bpf.MapSizes { return bpf.MapSizes(f) }

func TestMapCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewMaps(fakeSizes{RoutesV4: 2000000, RoutesV6: 500000, Groups: 65536, NextHops: 65536, Neighbors: 262144,
		Records4: 10, Leaves4: 30, RecordsCap4: 1100000, LeavesCap4: 2000000, Records6: 4, Leaves6: 6, RecordsCap6: 750000, LeavesCap6: 1000000},
		fakeCounts{XDP4: 5, XDP6: 1, Groups: 3, NextHops: 4, Neighbors: 2, Failovers: 7}))
	want := `
# HELP xdprouter_map_capacity Entries an XDP map holds (max_entries; for lpm_leaves4/6, leaves: two per array element), by BPF map name.
# TYPE xdprouter_map_capacity gauge
xdprouter_map_capacity{map="lpm_leaves4"} 2e+06
xdprouter_map_capacity{map="lpm_leaves6"} 1e+06
xdprouter_map_capacity{map="lpm_nodes4"} 1.1e+06
xdprouter_map_capacity{map="lpm_nodes6"} 750000
xdprouter_map_capacity{map="neighbors"} 262144
xdprouter_map_capacity{map="nexthops"} 65536
xdprouter_map_capacity{map="nhgs"} 65536
xdprouter_map_capacity{map="routes_v4"} 2e+06
xdprouter_map_capacity{map="routes_v6"} 500000
# HELP xdprouter_map_entries Entries in use in an XDP map, by BPF map name: routes_v4/6 (routes written, every table), nhgs and nexthops (ids held), neighbors, and the compiled structure's lpm_nodes4/6 (records) and lpm_leaves4/6 (leaves).
# TYPE xdprouter_map_entries gauge
xdprouter_map_entries{map="lpm_leaves4"} 30
xdprouter_map_entries{map="lpm_leaves6"} 6
xdprouter_map_entries{map="lpm_nodes4"} 10
xdprouter_map_entries{map="lpm_nodes6"} 4
xdprouter_map_entries{map="neighbors"} 2
xdprouter_map_entries{map="nexthops"} 4
xdprouter_map_entries{map="nhgs"} 3
xdprouter_map_entries{map="routes_v4"} 5
xdprouter_map_entries{map="routes_v6"} 1
# HELP xdprouter_sync_failovers_total Next-hop groups switched from their primary next hops to their backups in XDP (bgp.pic), one per group however many routes use it.
# TYPE xdprouter_sync_failovers_total counter
xdprouter_sync_failovers_total 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestApplyHistogram: the sync latency histogram has its buckets from the
// start (dashboards' quantiles need them), and counts observations.
func TestApplyHistogram(t *testing.T) {
	c := New(&fakeStats{}, fakeCounts{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	c.ObserveApply(3 * time.Millisecond)
	c.ObserveApply(2 * time.Second)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "xdprouter_sync_apply_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 2 || len(h.GetBucket()) != 10 {
			t.Errorf("histogram: %d samples, %d buckets", h.GetSampleCount(), len(h.GetBucket()))
		}
		return
	}
	t.Error("no xdprouter_sync_apply_seconds")
}
