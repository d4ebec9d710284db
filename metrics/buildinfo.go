package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdprouter/xdprouter/version"
)

// NewBuildInfo returns xdprouter_build_info{version, commit, goversion} 1,
// the identity of the running daemon (join on it to see which build an
// anomaly started with).
func NewBuildInfo(i version.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "xdprouter_build_info",
		Help:        "The running xdprouterd's version, commit and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}
