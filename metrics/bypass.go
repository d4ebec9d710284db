package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdprouter/xdprouter/bypass"
)

// Findings reads what XDP bypasses (implemented by *bypass.Watcher).
type Findings interface {
	Findings() []bypass.Finding
}

var bypassDesc = prometheus.NewDesc("xdprouter_bypassed_policy",
	"Kernel policy not applied to packets XDP forwards, by kind: rules of netfilter chains (a drop policy counts as one), ports with rp_filter; 0 when none.",
	[]string{"kind"}, nil)

// BypassCollector emits xdprouter_bypassed_policy, one series per kind.
type BypassCollector struct{ src Findings }

// NewBypass returns a collector of src's findings; register it on your
// registry.
func NewBypass(src Findings) *BypassCollector { return &BypassCollector{src: src} }

// Describe implements prometheus.Collector.
func (c *BypassCollector) Describe(ch chan<- *prometheus.Desc) { ch <- bypassDesc }

// Collect implements prometheus.Collector.
func (c *BypassCollector) Collect(ch chan<- prometheus.Metric) {
	totals := bypass.Totals(c.src.Findings())
	for _, k := range bypass.Kinds {
		ch <- prometheus.MustNewConstMetric(bypassDesc, prometheus.GaugeValue, float64(totals[k]), k)
	}
}
