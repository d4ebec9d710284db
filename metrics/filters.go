package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdprouter/xdprouter/bpf"
)

// Filters reads the filter rules in force (implemented by *bpf.Datapath).
type Filters interface {
	Filters() ([]bpf.FilterRule, error)
}

var (
	filterPacketsDesc = prometheus.NewDesc("xdprouter_filter_packets_total",
		"Packets that matched a filter rule in XDP, by rule name and origin (config, flowspec).", []string{"rule", "origin"}, nil)
	filterBytesDesc = prometheus.NewDesc("xdprouter_filter_bytes_total",
		"Bytes that matched a filter rule in XDP, by rule name and origin.", []string{"rule", "origin"}, nil)
	filterDroppedDesc = prometheus.NewDesc("xdprouter_filter_rate_limited_total",
		"Packets a rate-limit filter rule dropped, by rule name and origin.", []string{"rule", "origin"}, nil)
	filterRulesDesc = prometheus.NewDesc("xdprouter_filter_rules",
		"Filter rules in force in XDP, by origin.", []string{"origin"}, nil)
	filterRejectedDesc = prometheus.NewDesc("xdprouter_flowspec_rejected_rules",
		"Flowspec rules received but not in force (not feasible, unsupported, no room).", nil, nil)
	filterErrDesc = prometheus.NewDesc("xdprouter_filter_scrape_errors_total",
		"Errors reading the filter counters during scrapes.", nil, nil)
)

// FilterCollector emits the per-rule counters of the filters in force.
type FilterCollector struct {
	src      Filters
	rejected func() int
	errs     atomic.Uint64
}

// NewFilters returns a collector of src's rules; rejected (may be nil)
// counts the Flowspec rules not in force.
func NewFilters(src Filters, rejected func() int) *FilterCollector {
	return &FilterCollector{src: src, rejected: rejected}
}

// Describe implements prometheus.Collector.
func (c *FilterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{filterPacketsDesc, filterBytesDesc, filterDroppedDesc, filterRulesDesc, filterRejectedDesc, filterErrDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *FilterCollector) Collect(ch chan<- prometheus.Metric) {
	defer func() {
		ch <- prometheus.MustNewConstMetric(filterErrDesc, prometheus.CounterValue, float64(c.errs.Load()))
	}()
	rules, err := c.src.Filters()
	if err != nil {
		c.errs.Add(1)
		return
	}
	perOrigin := map[string]int{"config": 0, "flowspec": 0}
	seen := map[[2]string]bool{}
	for _, r := range rules {
		origin := string(r.Origin)
		perOrigin[origin]++
		l := [2]string{r.Name, origin}
		if seen[l] { // two rules of one name (Flowspec v4 and v6): the first
			continue
		}
		seen[l] = true
		ch <- prometheus.MustNewConstMetric(filterPacketsDesc, prometheus.CounterValue, float64(r.Packets), r.Name, origin)
		ch <- prometheus.MustNewConstMetric(filterBytesDesc, prometheus.CounterValue, float64(r.Bytes), r.Name, origin)
		ch <- prometheus.MustNewConstMetric(filterDroppedDesc, prometheus.CounterValue, float64(r.Dropped), r.Name, origin)
	}
	for o, n := range perOrigin {
		ch <- prometheus.MustNewConstMetric(filterRulesDesc, prometheus.GaugeValue, float64(n), o)
	}
	n := 0
	if c.rejected != nil {
		n = c.rejected()
	}
	ch <- prometheus.MustNewConstMetric(filterRejectedDesc, prometheus.GaugeValue, float64(n))
}
