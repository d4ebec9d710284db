package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdprouter/xdprouter/bpf"
)

// Sizes reads the capacities of the data path's maps (implemented by
// *bpf.Datapath).
type Sizes interface {
	Sizes() bpf.MapSizes
}

var (
	mapEntriesDesc = prometheus.NewDesc("xdprouter_map_entries",
		"Entries in use in an XDP map, by BPF map name: routes_v4/6 (routes written, every table), nhgs and nexthops (ids held), neighbors, and the compiled structure's lpm_nodes4/6 (records) and lpm_leaves4/6 (leaves).",
		[]string{"map"}, nil)
	mapCapacityDesc = prometheus.NewDesc("xdprouter_map_capacity",
		"Entries an XDP map holds (max_entries; for lpm_leaves4/6, leaves: two per array element), by BPF map name.",
		[]string{"map"}, nil)
	failoversDesc = prometheus.NewDesc("xdprouter_sync_failovers_total",
		"Next-hop groups switched from their primary next hops to their backups in XDP (bgp.pic), one per group however many routes use it.",
		nil, nil)
)

// MapCollector emits the fill levels of the XDP maps (xdprouter_map_entries
// and xdprouter_map_capacity) and PIC failovers.
type MapCollector struct {
	sizes  Sizes
	counts Counts
}

// NewMaps returns a collector of the maps' fill levels: capacities from
// sizes, entries from sizes (compiled structure) and counts (the rest);
// register it on your registry.
func NewMaps(sizes Sizes, counts Counts) *MapCollector {
	return &MapCollector{sizes: sizes, counts: counts}
}

// Describe implements prometheus.Collector.
func (c *MapCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- mapEntriesDesc
	ch <- mapCapacityDesc
	ch <- failoversDesc
}

// Collect implements prometheus.Collector.
func (c *MapCollector) Collect(ch chan<- prometheus.Metric) {
	s, n := c.sizes.Sizes(), c.counts.Counts()
	for _, m := range []struct {
		name          string
		entries, capa uint64
	}{
		{"routes_v4", uint64(n.XDP4), uint64(s.RoutesV4)},
		{"routes_v6", uint64(n.XDP6), uint64(s.RoutesV6)},
		{"nhgs", uint64(n.Groups), uint64(s.Groups)},
		{"nexthops", uint64(n.NextHops), uint64(s.NextHops)},
		{"neighbors", uint64(n.Neighbors), uint64(s.Neighbors)},
		{"lpm_nodes4", uint64(s.Records4), uint64(s.RecordsCap4)},
		{"lpm_leaves4", uint64(s.Leaves4), uint64(s.LeavesCap4)},
		{"lpm_nodes6", uint64(s.Records6), uint64(s.RecordsCap6)},
		{"lpm_leaves6", uint64(s.Leaves6), uint64(s.LeavesCap6)},
	} {
		ch <- prometheus.MustNewConstMetric(mapEntriesDesc, prometheus.GaugeValue, float64(m.entries), m.name)
		ch <- prometheus.MustNewConstMetric(mapCapacityDesc, prometheus.GaugeValue, float64(m.capa), m.name)
	}
	ch <- prometheus.MustNewConstMetric(failoversDesc, prometheus.CounterValue, float64(n.Failovers))
}
