// Package metrics exposes the data path and sync state to Prometheus. Values
// are read at scrape time (const metrics), so nothing is kept twice.
package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdprouter/xdprouter/bpf"
	xsync "github.com/xdprouter/xdprouter/sync"
)

// Stats reads the XDP counters (implemented by *bpf.Datapath).
type Stats interface {
	Stats() ([]bpf.StatCounter, error)
}

// Counts reads the sync state (implemented by *sync.Syncer).
type Counts interface {
	Counts() xsync.Counts
}

var (
	packetsDesc = prometheus.NewDesc("xdprouter_xdp_packets_total",
		"Packets seen by the XDP program, by action and reason.", []string{"action", "reason"}, nil)
	bytesDesc = prometheus.NewDesc("xdprouter_xdp_bytes_total",
		"Bytes seen by the XDP program, by action and reason.", []string{"action", "reason"}, nil)
	routesDesc = prometheus.NewDesc("xdprouter_routes",
		"Routes installed right now: dest=xdp in the XDP tries, dest=kernel by xdprouterd in the kernel FIB.",
		[]string{"family", "dest"}, nil)
	pendingDesc = prometheus.NewDesc("xdprouter_sync_pending",
		"Route changes received but not applied yet.", nil, nil)
	failedDesc = prometheus.NewDesc("xdprouter_sync_failed",
		"Route changes whose last apply failed (retried every second).", nil, nil)
	rejectedDesc = prometheus.NewDesc("xdprouter_sync_rejected_routes",
		"BGP routes the kernel refused for good (XDP keeps what the kernel has; retried when the route changes).", nil, nil)
	refusedDesc = prometheus.NewDesc("xdprouter_sync_refused_routes",
		"Routes passed to the kernel in XDP because the next-hop group or next-hop map is full.", nil, nil)
	staleDesc = prometheus.NewDesc("xdprouter_sync_stale_routes",
		"Routes a previous instance left (kept as they were) that BGP has not re-learned yet; swept at End-of-RIB or the stale timer.", nil, nil)
	repairsDesc = prometheus.NewDesc("xdprouter_sync_repairs_total",
		"XDP map entries the periodic audit found different from sync's state and rewrote.", nil, nil)
	writesDesc = prometheus.NewDesc("xdprouter_route_writes_total",
		"Route writes since start: dest=kernel op=install|delete, dest=xdp op=write.", []string{"dest", "op"}, nil)
	nexthopWritesDesc = prometheus.NewDesc("xdprouter_kernel_nexthop_writes_total",
		"Kernel nexthop objects written or deleted since start (fib.nexthop-objects).", nil, nil)
	scrapeErrDesc = prometheus.NewDesc("xdprouter_scrape_errors_total",
		"Errors reading the XDP counters during scrapes.", nil, nil)
)

// Collector emits the xdprouter_* metrics of the data path and sync.
type Collector struct {
	stats      Stats
	counts     Counts
	apply      prometheus.Histogram
	scrapeErrs atomic.Uint64
}

// New returns a collector; register it on your registry.
func New(stats Stats, counts Counts) *Collector {
	return &Collector{stats: stats, counts: counts, apply: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "xdprouter_sync_apply_seconds",
		Help:    "Duration of applying one batch of route changes to both sinks.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})}
}

// ObserveApply records one applied batch (pass as sync.Options.OnApply).
func (c *Collector) ObserveApply(d time.Duration) { c.apply.Observe(d.Seconds()) }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{packetsDesc, bytesDesc, routesDesc, pendingDesc, failedDesc, rejectedDesc, refusedDesc, staleDesc, repairsDesc, writesDesc, nexthopWritesDesc, scrapeErrDesc} {
		ch <- d
	}
	c.apply.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if stats, err := c.stats.Stats(); err != nil {
		c.scrapeErrs.Add(1)
	} else {
		for _, s := range stats {
			ch <- prometheus.MustNewConstMetric(packetsDesc, prometheus.CounterValue, float64(s.Packets), s.Action, s.Reason)
			ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(s.Bytes), s.Action, s.Reason)
		}
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.CounterValue, float64(c.scrapeErrs.Load()))
	n := c.counts.Counts()
	for _, r := range []struct {
		fam, dest string
		v         int
	}{{"ipv4", "xdp", n.XDP4}, {"ipv6", "xdp", n.XDP6}, {"ipv4", "kernel", n.FIB4}, {"ipv6", "kernel", n.FIB6}} {
		ch <- prometheus.MustNewConstMetric(routesDesc, prometheus.GaugeValue, float64(r.v), r.fam, r.dest)
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n.Pending))
	ch <- prometheus.MustNewConstMetric(failedDesc, prometheus.GaugeValue, float64(n.Failed))
	ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.GaugeValue, float64(n.Rejected))
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.GaugeValue, float64(n.Refused))
	ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, float64(n.Stale))
	ch <- prometheus.MustNewConstMetric(repairsDesc, prometheus.CounterValue, float64(n.Repairs))
	ch <- prometheus.MustNewConstMetric(writesDesc, prometheus.CounterValue, float64(n.FIBInstalls), "kernel", "install")
	ch <- prometheus.MustNewConstMetric(writesDesc, prometheus.CounterValue, float64(n.FIBDeletes), "kernel", "delete")
	ch <- prometheus.MustNewConstMetric(writesDesc, prometheus.CounterValue, float64(n.XDPWrites), "xdp", "write")
	ch <- prometheus.MustNewConstMetric(nexthopWritesDesc, prometheus.CounterValue, float64(n.NexthopWrites))
	c.apply.Collect(ch)
}
